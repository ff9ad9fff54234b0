package pipeline

import (
	"container/heap"

	"github.com/funnelhouse/funnelhouse/schemas"
)

// held is an event waiting for the watermark to pass it, with where it came
// from.
type held struct {
	ev     schemas.Event
	topic  schemas.Topic
	offset int64
}

// before is the processing order of docs/semantics.md: ts, then clickstream
// before transactions, then event_id.
func (a *held) before(b *held) bool {
	if a.ev.TsMs != b.ev.TsMs {
		return a.ev.TsMs < b.ev.TsMs
	}
	if a.topic != b.topic {
		return a.topic < b.topic
	}
	return a.ev.EventID < b.ev.EventID
}

// pendingQueue is a min-heap of held events in processing order.
type pendingQueue []*held

func (q pendingQueue) Len() int           { return len(q) }
func (q pendingQueue) Less(i, j int) bool { return q[i].before(q[j]) }
func (q pendingQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *pendingQueue) Push(x any)        { *q = append(*q, x.(*held)) }
func (q *pendingQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return x
}

func (q *pendingQueue) push(h *held) { heap.Push(q, h) }
func (q *pendingQueue) pop() *held   { return heap.Pop(q).(*held) }
func (q pendingQueue) peek() *held {
	if len(q) == 0 {
		return nil
	}
	return q[0]
}

// deadline is a visitor's timer: a session close or a churn. Entries are
// lazy: a visitor has at most one entry per queue, and when it pops early
// (the visitor was active since) it is pushed again at the new deadline.
// That keeps activity updates O(1).
type deadline struct {
	at int64
	v  *visitor
}

type deadlineQueue []deadline

func (q deadlineQueue) Len() int           { return len(q) }
func (q deadlineQueue) Less(i, j int) bool { return q[i].at < q[j].at }
func (q deadlineQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *deadlineQueue) Push(x any)        { *q = append(*q, x.(deadline)) }
func (q *deadlineQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	old[len(old)-1] = deadline{}
	*q = old[:len(old)-1]
	return x
}

func (q *deadlineQueue) push(at int64, v *visitor) { heap.Push(q, deadline{at, v}) }
func (q *deadlineQueue) pop() deadline             { return heap.Pop(q).(deadline) }

// next returns the earliest deadline, or false.
func (q deadlineQueue) next() (int64, bool) {
	if len(q) == 0 {
		return 0, false
	}
	return q[0].at, true
}
