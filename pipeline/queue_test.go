package pipeline

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/funnelhouse/funnelhouse/schemas"
)

// TestPendingQueueOrder pushes events of two inputs, each mostly in ts
// order with some out of order, some at equal ts, and pops them between
// pushes: they must come out in processing order, from the runs and the
// heap alike, and the runs must stay bounded while they never empty.
func TestPendingQueueOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var q pendingQueue
	var want []pendingKeyText
	clock := [2]int64{}
	released := int64(-1 << 62) // every event pushed is at or past it
	var got []pendingKeyText
	popUntil := func(ts int64) {
		for {
			h := q.peek()
			if h == nil || h.ev.TsMs >= ts {
				return
			}
			i := q.pop()
			if &q.slab[i] != h {
				t.Fatalf("pop returned slot %d, peek another", i)
			}
			got = append(got, pendingKeyText{h.ev.TsMs, h.topic, h.ev.EventID})
			q.release(i)
		}
	}
	for n := 0; n < 200_000; n++ {
		topic := schemas.Topic(rng.IntN(2))
		clock[topic] += int64(rng.IntN(3)) // equal ts now and then
		ts := clock[topic]
		if rng.IntN(10) == 0 {
			ts -= int64(rng.IntN(50)) // out of order
		}
		if ts < released {
			continue // late: never held
		}
		slot, h := q.slot()
		h.ev.TsMs, h.topic, h.ev.EventID, h.size = ts, topic, fmt.Sprintf("e%06d", rng.IntN(1_000_000)), 1
		q.push(slot)
		want = append(want, pendingKeyText{ts, topic, h.ev.EventID})
		if n%97 == 0 {
			released = min(clock[0], clock[1]) - 60
			popUntil(released)
		}
		if r := &q.runs[topic]; cap(r.keys) > 4*q.len()+2048 {
			t.Fatalf("run of topic %d has capacity %d for %d held events", topic, cap(r.keys), q.len())
		}
	}
	runs0, runs1, heap := q.runs[0].len(), q.runs[1].len(), len(q.heap)
	popUntil(1 << 62)
	if q.len() != 0 || q.bytes != 0 {
		t.Fatalf("after popping all: %d held, %d bytes", q.len(), q.bytes)
	}
	if len(got) != len(want) {
		t.Fatalf("popped %d of %d pushed", len(got), len(want))
	}
	slices.SortStableFunc(want, pendingKeyText.compare)
	for i := range want {
		if got[i].compare(want[i]) != 0 {
			t.Fatalf("event %d popped: %v, want %v", i, got[i], want[i])
		}
	}
	if runs0 == 0 || runs1 == 0 || heap == 0 {
		t.Fatalf("runs %d and %d, heap %d before the end: the test should keep events in all three", runs0, runs1, heap)
	}
}

type pendingKeyText struct {
	ts    int64
	topic schemas.Topic
	id    string
}

func (a pendingKeyText) compare(b pendingKeyText) int {
	return cmp.Or(cmp.Compare(a.ts, b.ts), cmp.Compare(a.topic, b.topic), cmp.Compare(a.id, b.id))
}
