package pipeline

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"strings"
	"unsafe"

	"github.com/cespare/xxhash/v2"

	"github.com/funnelhouse/funnelhouse/pipeline/rows"
)

// visitor is one visitor's lifecycle state (SPEC §5) in 32 bytes without
// pointers: visitors live by value in a slab that the garbage collector
// does not scan, their strings in a stringStore and their first-touch
// source in the symbol table; an open-addressing index finds them by id.
// A dormant visitor (no open session) costs about 60 bytes with its id:
// a partition can hold millions.
type visitor struct {
	lastMs     int64      // last activity
	id         strRef     // visitor_id
	customerID strRef     // the last customer_id seen; 0: none
	firstOrder strRef     // order_id of the first order; 0: none
	session    uint32     // 1 + the open session's index in Processor.sessions; 0: none
	source     symbol     // first-touch source
	cohortDay  uint16     // days since 1970-01-01 of the first event (ts is validated to 2000 and later)
	stage      rows.Stage // 0 before awareness
	flags      visitorFlags
}

type visitorFlags uint8

const (
	churned    visitorFlags = 1 << iota
	hadSession              // a session of the visitor was opened: the next is not the first
	// Bookkeeping, not state: whether the visitor has an entry in the
	// session and churn deadline queues, and whether it changed since the
	// last checkpoint.
	sessionQueued
	churnQueued
	forgetQueued
	dirty
	freeSlot // the slot of a forgotten visitor, for the next add
)

func (v *visitor) is(f visitorFlags) bool { return v.flags&f != 0 }

func (v *visitor) set(f visitorFlags, on bool) {
	if on {
		v.flags |= f
	} else {
		v.flags &^= f
	}
}

func (v *visitor) customer() bool { return v.stage >= rows.StageConversion }

func (v *visitor) cohortDayMs() int64 { return int64(v.cohortDay) * dayMs }

// visitorTable holds a partition's visitors.
type visitorTable struct {
	slab  slab[visitor]
	free  []uint32 // slots of removed visitors
	index []uint32 // 1 + slab index, 0: empty; linear probing from home()
	strs  stringStore
	days  dayKeys // the pairs of each visitor's latest session day
}

// home is id's first slot in the index: its hash scaled to the index's
// length (which grows by half, not doubling, to waste fewer slots).
func (t *visitorTable) home(id string) int {
	hi, _ := bits.Mul64(xxhash.Sum64String(id), uint64(len(t.index)))
	return int(hi)
}

// find returns the index of the visitor with the given id and the
// visitor, or nil.
func (t *visitorTable) find(id string) (uint32, *visitor) {
	if len(t.index) == 0 {
		return 0, nil
	}
	for pos := t.home(id); ; pos = t.next(pos) {
		slot := t.index[pos]
		if slot == 0 {
			return 0, nil
		}
		if v := t.slab.at(slot - 1); t.strs.get(v.id) == id {
			return slot - 1, v
		}
	}
}

func (t *visitorTable) next(pos int) int {
	if pos++; pos == len(t.index) {
		return 0
	}
	return pos
}

// add adds a visitor with the given id, which must not be in the table,
// in a free slot if there is one.
func (t *visitorTable) add(id string) (uint32, *visitor) {
	if 4*(t.len()+1) > 3*len(t.index) { // at most 3/4 full
		t.grow()
	}
	var i uint32
	var v *visitor
	if n := len(t.free); n > 0 {
		i, t.free = t.free[n-1], t.free[:n-1]
		v = t.slab.at(i)
		*v = visitor{}
	} else {
		i, v = t.slab.add()
	}
	v.id = t.strs.put(id)
	t.place(id, i)
	return i, v
}

// remove takes visitor i out of the index and frees its slot and
// strings. The caller has dropped every other reference to it.
func (t *visitorTable) remove(i uint32) {
	v := t.slab.at(i)
	id := t.strs.get(v.id)
	pos := t.home(id)
	for t.index[pos] != i+1 {
		pos = t.next(pos)
	}
	// Backward-shift deletion: move up every later entry of the probe run
	// that may sit in the hole, so that no lookup stops early at it.
	hole := pos
	for j := t.next(hole); t.index[j] != 0; j = t.next(j) {
		h := t.home(t.strs.get(t.slab.at(t.index[j] - 1).id))
		if between := hole < h && h <= j || j < hole && (h > hole || h <= j); !between {
			t.index[hole] = t.index[j]
			hole = j
		}
	}
	t.index[hole] = 0
	for _, r := range []strRef{v.id, v.customerID, v.firstOrder} {
		t.strs.drop(r)
	}
	*v = visitor{flags: freeSlot}
	t.days.drop(i)
	t.free = append(t.free, i)
}

func (t *visitorTable) place(id string, i uint32) {
	pos := t.home(id)
	for t.index[pos] != 0 {
		pos = t.next(pos)
	}
	t.index[pos] = i + 1
}

func (t *visitorTable) grow() {
	t.index = make([]uint32, max(1024, len(t.index)*3/2))
	t.each(func(i uint32, v *visitor) { t.place(t.strs.get(v.id), i) })
}

func (t *visitorTable) len() int { return t.slab.len() - len(t.free) }

// each calls f for every visitor in the table.
func (t *visitorTable) each(f func(uint32, *visitor)) {
	for i := range uint32(t.slab.len()) {
		if v := t.slab.at(i); !v.is(freeSlot) {
			f(i, v)
		}
	}
}

// compact moves the strings of the visitors (and of their open sessions,
// which sessionOf returns) into a new store once the removed ones take
// more than half of it: the old chunks are freed once no row refers to
// them (rows hold strings of the store, which stay valid).
func (t *visitorTable) compact(sessionOf func(*visitor) *session) {
	if t.strs.dead < compactAtDeadBytes || 2*t.strs.dead < t.strs.size() {
		return
	}
	old := t.strs
	t.strs = stringStore{}
	move := func(r strRef) strRef { return t.strs.put(old.get(r)) }
	t.each(func(_ uint32, v *visitor) {
		v.id, v.customerID, v.firstOrder = move(v.id), move(v.customerID), move(v.firstOrder)
		if s := sessionOf(v); s != nil {
			s.customerID = move(s.customerID)
		}
	})
}

// compactAtDeadBytes is the least of removed strings worth a compaction.
// Tests lower it.
var compactAtDeadBytes = 4 << 20

// slab holds values in fixed-size chunks, so that their addresses stay put
// as it grows, and growing copies nothing and leaves no spare half.
type slab[T any] struct {
	chunks [][]T
	n      int
}

const slabChunk = 1024

func (s *slab[T]) add() (uint32, *T) {
	if s.n == len(s.chunks)*slabChunk {
		s.chunks = append(s.chunks, make([]T, slabChunk))
	}
	i := uint32(s.n)
	s.n++
	return i, s.at(i)
}

func (s *slab[T]) at(i uint32) *T { return &s.chunks[i/slabChunk][i%slabChunk] }

func (s *slab[T]) len() int { return s.n }

// strRef addresses a string in a stringStore: chunk<<16 | offset. 0 is "".
type strRef uint32

// stringStore keeps the long-lived strings of visitor state (ids, customer
// ids, order ids) length-prefixed in 64 KiB append-only chunks, addressed
// by 4-byte references: 16 bytes less per string than a string header,
// and no object for the garbage collector. A dropped string's bytes stay
// until visitorTable.compact copies the live ones into a new store; a
// partition holds at most 4 GiB of them. Beyond that put fails: see err.
type stringStore struct {
	chunks [][]byte
	dead   int // bytes of dropped strings
	// err is set by the first put that found the store full; put returns
	// "" from then on. The state is then wrong, so the processor stops
	// (Processor.Err) and none of it is written.
	err error
}

const storeChunk = 1 << 16

// maxStoreChunks bounds a stringStore: 4 GiB of 64 KiB chunks, all that a
// strRef can address. Tests lower it.
var maxStoreChunks = storeChunk

func (s *stringStore) put(str string) strRef {
	if str == "" || s.err != nil {
		return 0
	}
	need := binary.MaxVarintLen16 + len(str)
	if len(s.chunks) == 0 || storeChunk-len(s.chunks[len(s.chunks)-1]) < need {
		if len(s.chunks) >= maxStoreChunks {
			s.err = fmt.Errorf("its visitor strings (visitor, customer and order ids) exceed the %.4g GiB a partition can hold",
				float64(maxStoreChunks)*storeChunk/(1<<30))
			return 0
		}
		// Offset 0 of chunk 0 is reserved for "": the first byte is padding.
		c := make([]byte, 1, storeChunk)
		s.chunks = append(s.chunks, c)
	}
	c := &s.chunks[len(s.chunks)-1]
	ref := strRef((len(s.chunks)-1)<<16 | len(*c))
	*c = binary.AppendUvarint(*c, uint64(len(str)))
	*c = append(*c, str...)
	return ref
}

// drop counts the string at ref as garbage, for compact.
func (s *stringStore) drop(ref strRef) {
	if ref != 0 {
		n := len(s.get(ref))
		s.dead += uvarintLen(n) + n
	}
}

// size is the bytes the store holds.
func (s *stringStore) size() int { return len(s.chunks) * storeChunk }

func uvarintLen(n int) int { return (bits.Len64(uint64(n)|1) + 6) / 7 }

// get returns the string at ref. Its bytes are never written again (the
// chunks only grow, within their capacity), which makes unsafe.String
// sound; the string keeps its chunk alive.
func (s *stringStore) get(ref strRef) string {
	if ref == 0 {
		return ""
	}
	c := s.chunks[ref>>16][ref&0xffff:]
	n, k := binary.Uvarint(c)
	return unsafe.String(&c[k], int(n))
}

// symbol is an interned low-cardinality string: a source, medium or
// campaign. 0 is "".
type symbol uint32

// symbols interns strings shared by many sessions and visitors. It keeps
// every distinct value for the partition's life, a few dozen bytes each.
type symbols struct {
	names []string
	ids   map[string]symbol
}

func newSymbols() symbols { return symbols{names: []string{""}, ids: map[string]symbol{"": 0}} }

func (s *symbols) intern(str string) symbol {
	if id, ok := s.ids[str]; ok {
		return id
	}
	c := strings.Clone(str) // str may live in an event's chunk
	id := symbol(len(s.names))
	s.names = append(s.names, c)
	s.ids[c] = id
	return id
}

func (s *symbols) name(id symbol) string { return s.names[id] }
