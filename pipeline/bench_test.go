package pipeline

import (
	"fmt"
	"math"
	"runtime"
	"testing"
	"time"

	"github.com/funnelhouse/funnelhouse/bench/traffic"
	"github.com/funnelhouse/funnelhouse/pipeline/rows"
	"github.com/funnelhouse/funnelhouse/schemas"
)

type benchRecord struct {
	topic      schemas.Topic
	key, value []byte
}

// benchRecords generates n events of realistic traffic (in delivery order,
// with out-of-order delivery and duplicates, no malformed records).
func benchRecords(b testing.TB, n int) []benchRecord {
	b.Helper()
	return generatedRecords(b, n, 0)
}

// generatedRecords is benchRecords with a share of malformed records.
func generatedRecords(b testing.TB, n int, badRate float64) []benchRecord {
	b.Helper()
	cfg := traffic.Config{Seed: 1, Events: n}.WithDefaults()
	cfg.BadRate = badRate
	gen, err := traffic.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	var out []benchRecord
	var r traffic.Record
	for gen.Next(&r) {
		t := schemas.Clickstream
		if r.Topic == cfg.TransactionsTopic {
			t = schemas.Transactions
		}
		out = append(out, benchRecord{t, append([]byte(nil), r.Key...), append([]byte(nil), r.Value...)})
	}
	return out
}

var benchClock = time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)

// runCore feeds records to a fresh Processor, releasing everything at the
// end and cutting a checkpoint every cutEvery records, as the pipeline does
// (records in → state → column buffers ready to send).
func runCore(records []benchRecord, cutEvery int) (*Processor, int) {
	now := func() time.Time { return benchClock }
	p := NewProcessor("bench", 0, [2]string{"clickstream", "transactions"}, DefaultRules(), now)
	p.SetEnd(schemas.Clickstream, math.MaxInt64)
	p.SetEnd(schemas.Transactions, math.MaxInt64)
	n := 0
	for i, r := range records {
		p.Add(r.topic, r.key, r.value, int64(i), benchClock)
		if i%256 == 255 {
			p.Advance(benchClock)
		}
		if i%cutEvery == cutEvery-1 {
			b, _ := p.Cut()
			n += b.Rows()
			rows.PutBatch(b)
		}
	}
	p.SetEnd(schemas.Clickstream, 0)
	p.SetEnd(schemas.Transactions, 0)
	p.Advance(benchClock.Add(time.Hour))
	b, _ := p.Cut()
	n += b.Rows()
	// As the sink does once a batch is written; and the processor is done
	// (a long-lived one would keep its batch).
	rows.PutBatch(b)
	rows.PutBatch(p.out)
	p.out = nil
	return p, n
}

// BenchmarkCorePath is the whole per-event work without Kafka or
// ClickHouse: decode and validate, dedup, hold for the watermark, sessions,
// lifecycle, rows in column buffers, checkpoints. Run with -cpu 1.
func BenchmarkCorePath(b *testing.B) {
	records := benchRecords(b, 200_000)
	b.ReportAllocs()
	b.ResetTimer()
	events := 0
	for i := 0; i < b.N; i++ {
		runCore(records, 50_000)
		events += len(records)
	}
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkStateBytes measures the heap held per open session and per
// dormant visitor (a visitor with lifecycle state and no open session).
func BenchmarkStateBytes(b *testing.B) {
	records := benchRecords(b, 200_000)
	for i := 0; i < b.N; i++ {
		// Dormant visitors: everything released, every session closed.
		before := heapInUse()
		p, _ := runCore(records, 50_000)
		// Keep only the visitors (and the interned strings they share):
		// the rest is per partition, not per visitor: buffers and the
		// spare capacity of the (now empty) queues.
		if len(p.churns)+len(p.sessionDeadlines)+p.OpenSessions() > 0 {
			b.Fatal("not every deadline fired")
		}
		p.pending, p.sessions, p.freeSessions, p.seen, p.out, p.encodeBuf = pendingQueue{}, slab[session]{}, nil, newDedup(DefaultRules()), nil, nil
		p.decoder, p.dirty, p.churns, p.sessionDeadlines, p.encodeEnds = nil, nil, nil, nil, nil
		after := heapInUse()
		b.ReportMetric(float64(after-before)/float64(p.Visitors()), "B/visitor")
		runtime.KeepAlive(p)
	}
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkSessionBytes measures the heap held per open session: n visitors
// with one page_view each, released by the watermark but with their
// sessions open; then, after the sessions close, per dormant visitor. The
// difference is the open session's share.
func BenchmarkSessionBytes(b *testing.B) {
	// Real pages are longer than a test's "/": 50 shared landing pages, or
	// one URL per visitor (a query string each), the worst case for sharing.
	b.Run("shared-urls", func(b *testing.B) {
		benchSessionBytes(b, func(i int) string { return fmt.Sprintf("https://shop.example.com/landing/%d", i%50) })
	})
	b.Run("distinct-urls", func(b *testing.B) {
		benchSessionBytes(b, func(i int) string { return fmt.Sprintf("https://shop.example.com/p/%d?ref=mail", i) })
	})
}

func benchSessionBytes(b *testing.B, url func(i int) string) {
	const n = 100_000
	base := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	records := make([]benchRecord, 0, n+1)
	for i := 0; i <= n; i++ {
		visitor := fmt.Sprintf("v%012d", i)
		ts := base
		if i == n { // a later event moves the watermark past the others
			ts = base.Add(11 * time.Minute)
		}
		value := fmt.Sprintf(`{"event_id":"%s","type":"page_view","ts":"%s","visitor_id":"%s","url":"%s","utm_source":"google","utm_medium":"cpc"}`,
			ksuidLike(i), ts.Format(time.RFC3339Nano), visitor, url(i))
		records = append(records, benchRecord{schemas.Clickstream, []byte(visitor), []byte(value)})
	}
	for i := 0; i < b.N; i++ {
		now := func() time.Time { return benchClock }
		before := heapInUse()
		p := NewProcessor("bench", 0, [2]string{"clickstream", "transactions"}, DefaultRules(), now)
		p.SetEnd(schemas.Transactions, 0)
		for j, r := range records {
			p.Add(r.topic, r.key, r.value, int64(j), benchClock)
		}
		p.Advance(benchClock.Add(time.Minute)) // the empty transactions input goes idle
		// Rows are the sink's and the slab of held events is the partition's
		// (reused), not state per visitor.
		p.out, p.seen, p.pending = new(rows.Batch), newDedup(DefaultRules()), pendingQueue{}
		open := heapInUse()
		if p.OpenSessions() < n {
			b.Fatalf("%d sessions open, want %d", p.OpenSessions(), n)
		}
		p.SetEnd(schemas.Clickstream, int64(len(records)))
		p.Advance(benchClock.Add(time.Hour))
		p.out, p.sessions, p.freeSessions, p.pending = new(rows.Batch), slab[session]{}, nil, pendingQueue{}
		dormant := heapInUse()
		b.ReportMetric(float64(open-before)/n, "B/visitor+open-session")
		b.ReportMetric(float64(dormant-before)/n, "B/dormant-visitor")
		b.ReportMetric(float64(open-dormant)/n, "B/open-session")
		runtime.KeepAlive(p)
	}
}

func ksuidLike(i int) string { return fmt.Sprintf("2sgaGTJQktacUmnVvw%09d", i) }

// BenchmarkHeldLive runs one partition's share of 20k events/s over 12
// partitions (1,667 events/s of real-time traffic, up to 2 s late) for 12
// minutes: past the first 10, every event is held for the lateness,
// nearly all of them spilled, and released. It measures the cold path
// whole (hold, seal, spill, read back, decode again, process).
func BenchmarkHeldLive(b *testing.B) {
	records := liveTraffic(1667, 12*time.Minute)
	b.ResetTimer()
	for range b.N {
		var clock time.Time
		p := NewProcessor("live", 0, [2]string{"clickstream", "transactions"}, DefaultRules(), func() time.Time { return clock })
		p.SpillTo(b.TempDir())
		p.SetEnd(schemas.Clickstream, 1<<62)
		p.SetEnd(schemas.Transactions, 1<<62)
		feedLive(p, &clock, records, 256, func() { p.out.Reset(); p.TakeRejected() })
		if p.Err() != nil {
			b.Fatal(p.Err())
		}
		p.Close()
	}
	b.ReportMetric(float64(len(records)*b.N)/b.Elapsed().Seconds(), "events/s")
}
