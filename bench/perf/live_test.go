package perf

import (
	"encoding/json"
	"maps"
	"testing"
	"time"

	"github.com/funnelhouse/funnelhouse/bench/traffic"
	"github.com/funnelhouse/funnelhouse/schemas"
)

// TestWithTs rewrites the ts of generated records in every form the
// generator writes it: the decoder must accept each with ts = now, and
// every other field must stay as it was.
func TestWithTs(t *testing.T) {
	now := time.Date(2031, 5, 6, 7, 8, 9, 123_456_789, time.UTC)
	tc := traffic.Config{Seed: 3, Events: 20_000}.WithDefaults()
	tc.BadRate, tc.DupRate = 0, 0
	gen, err := traffic.New(tc)
	if err != nil {
		t.Fatal(err)
	}
	dec := schemas.NewDecoder(func() time.Time { return now })
	var rec traffic.Record
	var ev schemas.Event
	n := 0
	for ; gen.Next(&rec); n++ {
		out, err := withTs(nil, rec.Value, now)
		if err != nil {
			t.Fatal(err)
		}
		topic := schemas.Clickstream
		if rec.Topic == tc.TransactionsTopic {
			topic = schemas.Transactions
		}
		if derr := dec.Decode(topic, rec.Key, out, &ev); derr != nil {
			t.Fatalf("decode %s: %v", out, derr)
		}
		if ev.TsMs != now.UnixMilli() {
			t.Fatalf("ts %d, want %d: %s", ev.TsMs, now.UnixMilli(), out)
		}
		var before, after map[string]any
		if json.Unmarshal(rec.Value, &before) != nil || json.Unmarshal(out, &after) != nil {
			t.Fatalf("not JSON: %s -> %s", rec.Value, out)
		}
		delete(before, "ts")
		delete(after, "ts")
		if !maps.EqualFunc(before, after, func(a, b any) bool { x, _ := json.Marshal(a); y, _ := json.Marshal(b); return string(x) == string(y) }) {
			t.Fatalf("fields other than ts changed:\n%s\n%s", rec.Value, out)
		}
	}
	if n < 10_000 {
		t.Fatalf("only %d records", n)
	}
}

// TestSteadyWindow: the state rate is taken where held events are at
// their steady state, after the lateness, when the run is long enough.
func TestSteadyWindow(t *testing.T) {
	for _, c := range []struct {
		d, l   time.Duration
		from   time.Duration
		steady bool
	}{
		{10 * time.Minute, 2 * time.Minute, 5 * time.Minute, true},
		{3 * time.Minute, 2 * time.Minute, 2 * time.Minute, true},
		{3 * time.Minute, 10 * time.Minute, 90 * time.Second, false},
		{20 * time.Second, 5 * time.Second, 10 * time.Second, true},
	} {
		from, steady := steadyWindow(c.d, c.l)
		if from != c.from || steady != c.steady {
			t.Errorf("steadyWindow(%s, %s) = %s, %v; want %s, %v", c.d, c.l, from, steady, c.from, c.steady)
		}
	}
}

func TestShortDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{10 * time.Minute: "10m", 5 * time.Second: "5s", 10 * time.Second: "10s",
		90 * time.Second: "1m30s", 2 * time.Hour: "2h", 2*time.Hour + time.Minute: "2h1m"} {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%s) = %q, want %q", d, got, want)
		}
	}
}
