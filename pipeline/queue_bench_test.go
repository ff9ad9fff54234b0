package pipeline

import (
	"math/rand/v2"
	"testing"

	"github.com/funnelhouse/funnelhouse/schemas"
)

// BenchmarkQueueLive keeps the queue of decoded held events full
// (hotHeldLimit; the rest of a partition's held events are spilled runs)
// and, per op, releases the first and holds a new one, at 1,667 events/s
// of event time (20k/s over 12 partitions). "ordered" arrives in ts
// order; "jitter" up to 1 s late.
func BenchmarkQueueLive(b *testing.B) {
	for _, c := range []struct {
		name   string
		jitter int64
	}{{"ordered", 0}, {"jitter-1s", 1000}} {
		b.Run(c.name, func(b *testing.B) {
			const held, stepUs = hotHeldLimit, 600 // 1,667 events/s
			rng := rand.New(rand.NewPCG(1, 2))
			var q pendingQueue
			nowUs := int64(0)
			hold := func() {
				nowUs += stepUs
				i, h := q.slot()
				h.ev = schemas.Event{TsMs: nowUs/1000 - rng.Int64N(c.jitter+1)}
				h.topic = schemas.Topic(rng.IntN(2))
				q.push(i)
			}
			for range held {
				hold()
			}
			b.ResetTimer()
			for range b.N {
				q.release(q.pop())
				hold()
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
