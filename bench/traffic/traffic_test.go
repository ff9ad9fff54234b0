package traffic_test

import (
	"bytes"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/funnelhouse/funnelhouse/bench/traffic"
	"github.com/funnelhouse/funnelhouse/schemas"
)

// record is a copy of a traffic.Record that outlives the next call.
type record struct {
	topic      string
	key, value []byte
	kind       traffic.Kind
	reason     schemas.Reason
}

func newGen(t testing.TB, cfg traffic.Config) *traffic.Generator {
	t.Helper()
	g, err := traffic.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// each calls f for every record of cfg, with the decoded event for Valid and
// Duplicate records (the decoder must accept them).
func each(t testing.TB, cfg traffic.Config, f func(r *traffic.Record, ev *schemas.Event)) *traffic.Generator {
	t.Helper()
	g := newGen(t, cfg)
	dec := schemas.NewDecoder(g.Horizon)
	var r traffic.Record
	var ev schemas.Event
	for g.Next(&r) {
		topic := schemas.Clickstream
		if r.Topic == cfg.TransactionsTopic {
			topic = schemas.Transactions
		}
		err := dec.Decode(topic, r.Key, r.Value, &ev)
		if r.Kind == traffic.Malformed {
			if err == nil {
				t.Fatalf("malformed record (want %s) decodes fine: topic %s key %q value %q", r.Reason, r.Topic, r.Key, r.Value)
			}
			if err.Reason != r.Reason {
				t.Fatalf("malformed record: want reason %s, got %v: topic %s key %q value %q", r.Reason, err, r.Topic, r.Key, r.Value)
			}
			f(&r, nil)
			continue
		}
		if err != nil {
			t.Fatalf("%s record does not decode: %v: topic %s key %q value %q", r.Kind, err, r.Topic, r.Key, r.Value)
		}
		f(&r, &ev)
	}
	return g
}

func collect(t testing.TB, cfg traffic.Config) []record {
	t.Helper()
	g := newGen(t, cfg)
	var out []record
	var r traffic.Record
	for g.Next(&r) {
		var key []byte
		if r.Key != nil {
			key = append([]byte{}, r.Key...)
		}
		out = append(out, record{r.Topic, key, append([]byte{}, r.Value...), r.Kind, r.Reason})
	}
	return out
}

func TestDeterminism(t *testing.T) {
	cfg := traffic.Config{Seed: 42, Events: 20_000, BadRate: 0.01}.WithDefaults()
	a, b := collect(t, cfg), collect(t, cfg)
	if len(a) != len(b) {
		t.Fatalf("same seed: %d and %d records", len(a), len(b))
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.topic != y.topic || !bytes.Equal(x.key, y.key) || (x.key == nil) != (y.key == nil) ||
			!bytes.Equal(x.value, y.value) || x.kind != y.kind || x.reason != y.reason {
			t.Fatalf("same seed: record %d differs:\n%+v\n%+v", i, x, y)
		}
	}
	cfg.Seed = 43
	c := collect(t, cfg)
	same := 0
	for i := range min(len(a), len(c)) {
		if bytes.Equal(a[i].value, c[i].value) {
			same++
		}
	}
	if same > 0 {
		t.Errorf("seeds 42 and 43 share %d identical records at the same position", same)
	}
}

// TestDeliveryOrder checks the lateness bound the pipeline relies on: no
// valid event is older than the largest ts delivered so far minus MaxDelay.
func TestDeliveryOrder(t *testing.T) {
	for _, maxDelay := range []time.Duration{5 * time.Minute, 0, time.Hour} {
		t.Run(maxDelay.String(), func(t *testing.T) {
			cfg := traffic.Config{Seed: 3, Events: 50_000}.WithDefaults()
			cfg.MaxDelay = maxDelay
			maxTs := int64(0)
			outOfOrder, n := 0, 0
			each(t, cfg, func(r *traffic.Record, ev *schemas.Event) {
				if r.Kind != traffic.Valid {
					return
				}
				n++
				if ev.TsMs < maxTs {
					outOfOrder++
				}
				if ev.TsMs < maxTs-maxDelay.Milliseconds() {
					t.Fatalf("record %d: ts %d is older than max ts %d - MaxDelay %s", n, ev.TsMs, maxTs, maxDelay)
				}
				maxTs = max(maxTs, ev.TsMs)
			})
			if maxDelay > 0 && outOfOrder < n/100 {
				t.Errorf("only %d of %d valid records out of order with MaxDelay %s", outOfOrder, n, maxDelay)
			}
			if maxDelay == 0 && outOfOrder > 0 {
				t.Errorf("%d valid records out of order with MaxDelay 0", outOfOrder)
			}
		})
	}
}

// TestDuplicates checks that a Duplicate is an identical copy of an earlier
// Valid record, delivered soon after it.
func TestDuplicates(t *testing.T) {
	for _, maxDelay := range []time.Duration{5 * time.Minute, 0} {
		t.Run(maxDelay.String(), func(t *testing.T) {
			cfg := traffic.Config{Seed: 5, Events: 50_000, DupRate: 0.05}.WithDefaults()
			cfg.MaxDelay = maxDelay
			window := 2 * max(maxDelay, time.Minute).Milliseconds()
			seen := map[string]bool{}
			maxTs := int64(0)
			valid, dups := 0, 0
			each(t, cfg, func(r *traffic.Record, ev *schemas.Event) {
				k := r.Topic + "\x00" + string(r.Key) + "\x00" + string(r.Value)
				switch r.Kind {
				case traffic.Valid:
					valid++
					if seen[k] {
						t.Fatalf("two valid records are identical: %s", r.Value)
					}
					seen[k] = true
				case traffic.Duplicate:
					dups++
					if !seen[k] {
						t.Fatalf("duplicate without an earlier identical valid record: %s %q %s", r.Topic, r.Key, r.Value)
					}
					if ev.TsMs < maxTs-window {
						t.Fatalf("duplicate delivered too late: ts %d, max ts %d", ev.TsMs, maxTs)
					}
				}
				if ev != nil {
					maxTs = max(maxTs, ev.TsMs)
				}
			})
			if share := float64(dups) / float64(valid); share < 0.04 || share > 0.06 {
				t.Errorf("duplicate share %.4f, want about 0.05", share)
			}
		})
	}
}

// TestMalformed checks the share of malformed records and that every reason
// shows up, on both topics, with the decoder agreeing on each reason (see
// each).
func TestMalformed(t *testing.T) {
	cfg := traffic.Config{Seed: 9, Events: 100_000, BadRate: 0.02}.WithDefaults()
	byReason := map[schemas.Reason]int{}
	byTopic := map[string]int{}
	valid, bad := 0, 0
	g := each(t, cfg, func(r *traffic.Record, ev *schemas.Event) {
		switch r.Kind {
		case traffic.Valid:
			valid++
		case traffic.Malformed:
			bad++
			byReason[r.Reason]++
			byTopic[r.Topic]++
		}
	})
	if share := float64(bad) / float64(valid); share < 0.017 || share > 0.023 {
		t.Errorf("malformed share %.4f, want about 0.02", share)
	}
	for _, reason := range schemas.DecodeReasons {
		if byReason[reason] == 0 {
			t.Errorf("no malformed record with reason %s", reason)
		}
	}
	if byTopic[cfg.ClickstreamTopic] == 0 || byTopic[cfg.TransactionsTopic] == 0 {
		t.Errorf("malformed records by topic: %v", byTopic)
	}
	st := g.Stats()
	if st.Malformed != uint64(bad) || st.Valid != uint64(valid) || st.Records != st.Valid+st.Duplicates+st.Malformed {
		t.Errorf("stats %+v, counted %d valid %d malformed", st, valid, bad)
	}
}

// TestDecode runs a default-shaped stream through schemas.Decoder: every
// valid and duplicate record decodes, with the record key as visitor_id and a
// ts before the horizon; every malformed one fails with its reason (each
// checks that).
func TestDecode(t *testing.T) {
	cfg := traffic.Config{Seed: 11, Events: 100_000, BadRate: 0.01, DupRate: 0.02}.WithDefaults()
	g := newGen(t, cfg)
	horizon := g.Horizon().UnixMilli()
	first := cfg.Start.UnixMilli()
	types := map[schemas.Type]int{}
	each(t, cfg, func(r *traffic.Record, ev *schemas.Event) {
		if ev == nil {
			return
		}
		if ev.VisitorID != string(r.Key) {
			t.Fatalf("key %q, visitor_id %q", r.Key, ev.VisitorID)
		}
		if ev.TsMs < first || ev.TsMs >= horizon {
			t.Fatalf("ts %d outside [Start %d, Horizon %d)", ev.TsMs, first, horizon)
		}
		types[ev.Type]++
	})
	for typ := schemas.PageView; int(typ) < schemas.NumTypes; typ++ {
		if types[typ] == 0 {
			t.Errorf("no %s event", typ)
		}
	}
}

func TestEventCount(t *testing.T) {
	for _, c := range []struct{ events, days int }{{200_000, 120}, {20_000, 30}} {
		cfg := traffic.Config{Seed: 1, Events: c.events, Days: c.days}.WithDefaults()
		g := newGen(t, cfg)
		var r traffic.Record
		for g.Next(&r) {
		}
		if got := g.Stats().Valid; math.Abs(float64(got)/float64(c.events)-1) > 0.08 {
			t.Errorf("Events %d, Days %d: %d valid events", c.events, c.days, got)
		}
	}
}

func TestConfig(t *testing.T) {
	d := traffic.Config{}.WithDefaults()
	want := traffic.Config{Events: 1_000_000, Start: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), Days: 120,
		MaxDelay: 5 * time.Minute, DupRate: 0.01, BadRate: 0.001,
		ClickstreamTopic: "clickstream", TransactionsTopic: "transactions"}
	if d != want {
		t.Errorf("defaults:\n got  %+v\n want %+v", d, want)
	}
	f := func(field string, mod func(*traffic.Config)) {
		t.Helper()
		cfg := traffic.Config{}.WithDefaults()
		mod(&cfg)
		_, err := traffic.New(cfg)
		if err == nil || !strings.Contains(err.Error(), "Config."+field) {
			t.Errorf("%s: error %v does not name the field", field, err)
		}
	}
	f("Events", func(c *traffic.Config) { c.Events = -1 })
	f("Start", func(c *traffic.Config) { c.Start = time.Date(2010, 1, 1, 0, 0, 0, 0, time.UTC) })
	f("Days", func(c *traffic.Config) { c.Days = -3 })
	f("MaxDelay", func(c *traffic.Config) { c.MaxDelay = -time.Second })
	f("DupRate", func(c *traffic.Config) { c.DupRate = 1.5 })
	f("BadRate", func(c *traffic.Config) { c.BadRate = math.NaN() })
	f("ClickstreamTopic", func(c *traffic.Config) { c.TransactionsTopic = c.ClickstreamTopic })
	if _, err := traffic.New(traffic.Config{}); err == nil || !strings.Contains(err.Error(), "Config.Events") {
		t.Errorf("New(Config{}): %v", err)
	}

	// Zero rates after WithDefaults turn the extras off.
	cfg := traffic.Config{Seed: 2, Events: 5_000}.WithDefaults()
	cfg.DupRate, cfg.BadRate = 0, 0
	g := newGen(t, cfg)
	var r traffic.Record
	for g.Next(&r) {
	}
	if st := g.Stats(); st.Duplicates != 0 || st.Malformed != 0 || st.Valid == 0 {
		t.Errorf("zero rates: %+v", st)
	}
}

func TestTopicNames(t *testing.T) {
	cfg := traffic.Config{Seed: 2, Events: 2_000, ClickstreamTopic: "cs", TransactionsTopic: "tx"}.WithDefaults()
	got := map[string]int{}
	each(t, cfg, func(r *traffic.Record, ev *schemas.Event) { got[r.Topic]++ })
	if len(got) != 2 || got["cs"] == 0 || got["tx"] == 0 {
		t.Errorf("topics: %v", got)
	}
}

func BenchmarkGenerate(b *testing.B) {
	cfg := traffic.Config{Seed: 1, Events: 1_000_000}.WithDefaults()
	g := newGen(b, cfg)
	var r traffic.Record
	var bytes int64
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if !g.Next(&r) {
			g = newGen(b, cfg)
			g.Next(&r)
		}
		bytes += int64(len(r.Value))
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(bytes)/float64(b.N), "bytes/record")
}

func Example() {
	cfg := traffic.Config{Seed: 1, Events: 10}.WithDefaults()
	cfg.MaxDelay, cfg.DupRate, cfg.BadRate = 0, 0, 0
	g, err := traffic.New(cfg)
	if err != nil {
		panic(err)
	}
	var r traffic.Record
	for g.Next(&r) {
		fmt.Printf("%s %s %s\n", r.Topic, r.Key, r.Value)
		break
	}
	// Output:
	// clickstream v1jfq70yiseqas {"event_id":"2ugVO0A4O4U1dOJJ9FzphA07rgt","type":"page_view","ts":"2025-03-22T19:02:48.754Z","visitor_id":"v1jfq70yiseqas","url":"https://shop.example.com/p/2724","device":"desktop","country":"IT"}
}
