package pipeline

import "github.com/funnelhouse/funnelhouse/schemas"

// held is an event waiting for the watermark to pass it, with where it came
// from.
type held struct {
	ev     schemas.Event
	topic  schemas.Topic
	offset int64
	size   int64 // its record's bytes: what it pins while held decoded
	// raw is the record's value, kept for an order_completed only: its
	// release may reject it (see Processor.overflows), and a dead letter
	// carries the value unchanged. The key is ev.VisitorID (Decode checks
	// that they are equal).
	raw []byte
}

// pendingQueue holds events in processing order. The events live by value
// in a slab whose free slots are reused; small keys that name their slots
// keep the order. So holding an event allocates nothing once the slab has
// grown.
//
// Each input delivers its events mostly in ts order, so a key that does not
// sort before the last one of its input is appended to that input's run,
// a FIFO: O(1) in and out, with no sifting. Only the keys that arrive out
// of order go to the heap. The first event is the least of the runs' heads
// and the heap's top.
type pendingQueue struct {
	slab  []held
	free  []uint32
	runs  [2]keyRun // by input topic
	heap  []pendingKey
	bytes int64 // sum of the held events' sizes
}

// pendingKey holds the sort fields of a held event that fit inline (see
// keyLess), so that ordering touches the slab only on a tie.
type pendingKey struct {
	ts    int64
	slot  uint32
	topic schemas.Topic
}

// keyRun is a FIFO of keys in processing order: keys[head:] are held.
type keyRun struct {
	keys []pendingKey
	head int
}

func (r *keyRun) len() int            { return len(r.keys) - r.head }
func (r *keyRun) first() *pendingKey  { return &r.keys[r.head] }
func (r *keyRun) last() *pendingKey   { return &r.keys[len(r.keys)-1] }
func (r *keyRun) append(k pendingKey) { r.keys = append(r.keys, k) }

// pop removes the first key. The spent prefix is dropped once it is as
// long as what is left, so that a run that never empties stays bounded.
func (r *keyRun) pop() {
	r.head++
	switch n := r.len(); {
	case n == 0:
		r.keys, r.head = r.keys[:0], 0
	case r.head >= 1024 && r.head >= n:
		r.keys = r.keys[:copy(r.keys, r.keys[r.head:])]
		r.head = 0
	}
}

func (q *pendingQueue) len() int { return q.runs[0].len() + q.runs[1].len() + len(q.heap) }

// slot returns a free slot for an event, to fill before push.
func (q *pendingQueue) slot() (uint32, *held) {
	if n := len(q.free); n > 0 {
		i := q.free[n-1]
		q.free = q.free[:n-1]
		return i, &q.slab[i]
	}
	q.slab = append(q.slab, held{})
	i := uint32(len(q.slab) - 1)
	return i, &q.slab[i]
}

// release returns a slot whose event has been processed.
func (q *pendingQueue) release(i uint32) {
	q.slab[i] = held{} // drop references to the decoder's buffer
	q.free = append(q.free, i)
}

// keyLess is the processing order of docs/semantics.md: ts, then
// clickstream before transactions, then event_id.
func (q *pendingQueue) keyLess(a, b *pendingKey) bool {
	if a.ts != b.ts {
		return a.ts < b.ts
	}
	if a.topic != b.topic {
		return a.topic < b.topic
	}
	return q.slab[a.slot].ev.EventID < q.slab[b.slot].ev.EventID
}

func (q *pendingQueue) less(i, j int) bool { return q.keyLess(&q.heap[i], &q.heap[j]) }

func (q *pendingQueue) push(i uint32) {
	h := &q.slab[i]
	q.bytes += h.size
	k := pendingKey{h.ev.TsMs, i, h.topic}
	if r := &q.runs[h.topic]; r.len() == 0 || !q.keyLess(&k, r.last()) {
		r.append(k)
		return
	}
	q.heap = append(q.heap, k)
	siftUp(len(q.heap)-1, q.less, q.swap)
}

// Where the first key is.
const (
	inHeap = -1
	inNone = -2
)

// firstKey returns where the first key in processing order is: a run's
// topic, inHeap or inNone.
func (q *pendingQueue) firstKey() int {
	at := inNone
	var best *pendingKey
	if len(q.heap) > 0 {
		at, best = inHeap, &q.heap[0]
	}
	for t := range q.runs {
		if r := &q.runs[t]; r.len() > 0 && (best == nil || q.keyLess(r.first(), best)) {
			at, best = t, r.first()
		}
	}
	return at
}

// peek returns the first event in processing order, or nil.
func (q *pendingQueue) peek() *held {
	switch at := q.firstKey(); at {
	case inNone:
		return nil
	case inHeap:
		return &q.slab[q.heap[0].slot]
	default:
		return &q.slab[q.runs[at].first().slot]
	}
}

// pop removes the first event and returns its slot; the caller releases it.
func (q *pendingQueue) pop() uint32 {
	var i uint32
	if at := q.firstKey(); at >= 0 {
		i = q.runs[at].first().slot
		q.runs[at].pop()
	} else {
		i = q.heap[0].slot
		last := len(q.heap) - 1
		q.heap[0] = q.heap[last]
		q.heap = q.heap[:last]
		siftDown(0, len(q.heap), q.less, q.swap)
	}
	q.bytes -= q.slab[i].size
	return i
}

func (q *pendingQueue) swap(i, j int) { q.heap[i], q.heap[j] = q.heap[j], q.heap[i] }

// deadline is a visitor's timer: a session close or a churn. Entries are
// lazy: a visitor has at most one entry per queue, and when it pops early
// (the visitor was active since) it is pushed again at the new deadline.
// That keeps activity updates O(1).
type deadline struct {
	at int64
	v  uint32 // the visitor's index
}

// deadlineQueue is a min-heap of deadlines.
type deadlineQueue []deadline

func (q deadlineQueue) less(i, j int) bool { return q[i].at < q[j].at }
func (q deadlineQueue) swap(i, j int)      { q[i], q[j] = q[j], q[i] }

func (q *deadlineQueue) push(at int64, v uint32) {
	*q = append(*q, deadline{at, v})
	siftUp(len(*q)-1, q.less, q.swap)
}

func (q *deadlineQueue) pop() deadline {
	old := *q
	d := old[0]
	last := len(old) - 1
	old[0] = old[last]
	*q = old[:last]
	siftDown(0, last, q.less, q.swap)
	if c := cap(*q); c > 4096 && last < c/4 {
		*q = append(make(deadlineQueue, 0, c/2), *q...) // give back what a burst of sessions took
	}
	return d
}

// next returns the earliest deadline, or false.
func (q deadlineQueue) next() (int64, bool) {
	if len(q) == 0 {
		return 0, false
	}
	return q[0].at, true
}

// siftUp and siftDown are container/heap's, without its interface: boxing
// each element in an `any` allocated on every push and pop.
func siftUp(j int, less func(i, j int) bool, swap func(i, j int)) {
	for j > 0 {
		i := (j - 1) / 2
		if !less(j, i) {
			break
		}
		swap(i, j)
		j = i
	}
}

func siftDown(i, n int, less func(i, j int) bool, swap func(i, j int)) {
	for {
		j1 := 2*i + 1
		if j1 >= n || j1 < 0 {
			return
		}
		j := j1
		if j2 := j1 + 1; j2 < n && less(j2, j1) {
			j = j2
		}
		if !less(j, i) {
			return
		}
		swap(i, j)
		i = j
	}
}
