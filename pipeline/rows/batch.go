// Package rows is the format between the pipeline and its sinks: the rows
// of each table (events, sessions, lifecycle_transitions, pipeline_state),
// the Batch that carries one checkpoint's rows, its free list, and the
// lifecycle Stage. Each table is described once (Table: its name and its
// columns, each a name and an accessor); appending, resetting and the
// columns a sink inserts all follow from that description. It knows no
// database driver.
package rows

import (
	"slices"
	"sync/atomic"
	"unsafe"

	"github.com/funnelhouse/funnelhouse/schemas"
)

// Batch holds the rows of one flush, one Rows per table. It is owned by one
// goroutine at a time: a partition's Processor appends to it, then the
// pipeline hands it to a sink, which only reads it, and gives it back with
// PutBatch.
type Batch struct {
	Events      EventRows
	Sessions    Rows[Session]
	Transitions Rows[Transition]
	State       Rows[State]

	// Text holds copies of strings whose source is reused before the
	// batch is written (a recycled session's id and URLs), for the life
	// of the batch.
	Text schemas.Arena
}

// freeBatches keeps batches for reuse. Not a sync.Pool: every garbage
// collection empties that, and at a million events per second that is
// several times per checkpoint, so each checkpoint would regrow its rows
// from nothing (about 800 bytes allocated per event). The batches kept are
// bounded in bytes too: a batch keeps the capacity of its largest flush
// (tens of MB), and a member has a batch per partition filling and one
// being written besides.
var (
	freeBatches = make(chan *Batch, 8)
	freeBytes   atomic.Int64 // capacity of the batches in freeBatches
	freeLimit   atomic.Int64 // at most this many bytes kept
)

func init() { freeLimit.Store(64 << 20) }

// LimitFreeBatches sets how many bytes of empty batches are kept for reuse
// (64 MiB by default).
func LimitFreeBatches(bytes int64) { freeLimit.Store(bytes) }

// GetBatch returns an empty batch, reusing the rows of one given back with
// PutBatch.
func GetBatch() *Batch {
	select {
	case b := <-freeBatches:
		freeBytes.Add(-b.capBytes())
		return b
	default:
		return new(Batch)
	}
}

// GetBatchLike returns an empty batch (GetBatch) with room for as many
// events, sessions and transitions as prev holds (their text grows by
// chunks, which copies nothing): a
// partition's flushes are alike, and rows grown from empty by doubling are
// copied about once more and leave as much again for the GC (4.8 % of a
// member's CPU at 5M events was growslice under the row appends, with
// fewer empty batches kept than a flush gives back).
func GetBatchLike(prev *Batch) *Batch {
	b := GetBatch()
	b.Events.reserve(&prev.Events.Rows)
	b.Sessions.reserve(&prev.Sessions)
	b.Transitions.reserve(&prev.Transitions)
	return b
}

// PutBatch gives a batch back once it is written; the caller must not use
// it afterwards.
func PutBatch(b *Batch) {
	b.Reset()
	n := b.capBytes()
	if freeBytes.Add(n) > freeLimit.Load() {
		freeBytes.Add(-n) // enough kept
		return
	}
	select {
	case freeBatches <- b:
	default: // enough kept
		freeBytes.Add(-n)
	}
}

// capBytes is the memory the batch's rows keep when empty.
func (b *Batch) capBytes() int64 {
	return b.Events.capBytes() + b.Sessions.capBytes() + b.Transitions.capBytes() + b.State.capBytes()
}

// Rows is the number of rows of every table.
func (b *Batch) Rows() int {
	n := 0
	for _, t := range Tables {
		n += t.Len(b)
	}
	return n
}

// Reset empties the batch and keeps its capacity.
func (b *Batch) Reset() {
	for _, t := range Tables {
		t.reset(b)
	}
	b.Text = schemas.Arena{} // its chunks go with the rows that used them
}

// Rows are the rows of one table in a batch, in the order appended, and
// the text their strings are kept in (events only).
type Rows[R any] struct {
	rows []R
	text texts
}

// Append adds a copy of row.
func (r *Rows[R]) Append(row *R) { r.rows = append(r.rows, *row) }

// reserve makes room in the empty r for as many rows as like holds. Its
// text needs none: it grows by chunks, copying nothing.
func (r *Rows[R]) reserve(like *Rows[R]) {
	r.rows = slices.Grow(r.rows[:0], len(like.rows))
}

func (r *Rows[R]) capBytes() int64 {
	var row R
	return int64(cap(r.rows))*int64(unsafe.Sizeof(row)) + r.text.capBytes()
}

// Len is the number of rows.
func (r *Rows[R]) Len() int { return len(r.rows) }

// All returns the rows; they belong to the batch (read them, do not keep
// them past PutBatch).
func (r *Rows[R]) All() []R { return r.rows }

// reset empties r, dropping the rows' references so that a free batch
// keeps no event buffer alive.
func (r *Rows[R]) reset() {
	clear(r.rows)
	r.rows = r.rows[:0]
	r.text.reset()
}

// FloorDiv is a / b rounded toward minus infinity, so that a time before
// 1970 falls into the second or day that holds it.
func FloorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}
