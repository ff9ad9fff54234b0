package pipeline

import (
	"cmp"
	"math"
	"slices"

	"github.com/funnelhouse/funnelhouse/pipeline/rows"
	"github.com/funnelhouse/funnelhouse/schemas"
)

// dedup remembers a 64-bit hash of (visitor, event id) of every event
// whose ts + gap the watermark has not passed (SPEC §2: at least the gap
// plus the lateness). On real-time traffic that is 40 minutes of events by
// default, 48M at 20,000 events/s, so the ids are kept compactly: one
// open-addressing table of bare hashes, each tagged with its span of
// event time (a quarter of gap + lateness). A span expires whole once the
// watermark is gap past it; its slots are then free for new ids, and the
// table is rebuilt from the live ones when it fills. One probe sequence
// per lookup, however many spans are live (historical replays keep
// hundreds), and 15-29 bytes per live id (TestDedupMemoryOnLiveTraffic):
// at 20,000 events/s, about 1.2 GB of ids once 40 minutes of them are
// live. An id whose span has already expired is not remembered. A 64-bit
// hash collision within the window would drop an event as a duplicate:
// about 1 in 10^8 for a million ids in the window.
//
// The ids are not checkpointed: a restore re-reads each input from the
// smallest offset of its live ids (replayFrom) and adds them again, which
// rebuilds the same live set. A duplicate in that range is found again
// when its original is re-read before it, in the same input; every other
// duplicate (its original expired since, or in the other input) and every
// record rejected by a time-dependent check is listed in the checkpoint as
// an offset the replay skips.
type dedup struct {
	gap, span int64 // ms

	// A slot is the hash with its lowest bit replaced by the input of the
	// first copy (0: empty), and its span relative to spanBase.
	keys  []uint64
	spans []uint32
	used  int        // slots holding an id, live or expired
	live  []liveSpan // by span, oldest first

	// dups are the duplicates of each input not yet behind its replay
	// start, in offset order; watched counts those of each hash whose
	// original is still live in the same input, so found again by a replay.
	dups    [2][]dupRef
	watched map[uint64]int
	// skips are other offsets the replay must skip: records rejected by
	// the processing clock, and skips carried over from the last restore.
	skips [2][]int64
}

// liveSpan counts the ids of a span not yet expired.
type liveSpan struct {
	span      int64
	n         int
	minOffset [2]int64 // smallest offset of an id of each input; MaxInt64 when none
}

func newDedup(r Rules) dedup {
	span := max((r.SessionGap+r.Lateness).Milliseconds()/4, 1000)
	return dedup{gap: r.SessionGap.Milliseconds(), span: span, watched: map[uint64]int{}}
}

// dupRef is a duplicate record; skip says that a replay cannot find it by
// lookup and must skip it by offset.
type dupRef struct {
	offset int64
	hash   uint64
	skip   bool
}

// idKey is the hash of (visitor, event id) as slots store it, without
// the input bit.
func idKey(visitorID, eventID string) uint64 {
	k := pairHash(visitorID, eventID) &^ 1
	if k == 0 {
		k = 2
	}
	return k
}

// spanBase is the span of the earliest valid ts (2000-01-01, SPEC §2):
// spans are stored relative to it, in 32 bits.
const spanBaseMs = 946684800000

// spanOf is the span of an event of ts.
func (d *dedup) spanOf(ts int64) int64 { return rows.FloorDiv(ts-spanBaseMs, d.span) }

// firstLive is the oldest span not yet expired at watermark: one whose
// events may have ts + gap ≥ watermark.
func (d *dedup) firstLive(watermark int64) int64 {
	if watermark == math.MinInt64 {
		return math.MinInt64
	}
	return d.spanOf(watermark - d.gap)
}

// lookup returns the slot of live key k, or -1 and the slot where k would
// go: the first empty or expired one on its probe sequence.
func (d *dedup) lookup(k uint64, first int64) (found, free int) {
	if len(d.keys) == 0 {
		d.resize(64, first)
	}
	free = -1
	for i := home(k, len(d.keys)); ; i = next(i, len(d.keys)) {
		s := d.keys[i]
		if s == 0 {
			if free < 0 {
				free = i
			}
			return -1, free
		}
		if int64(d.spans[i]) < first {
			if free < 0 {
				free = i
			}
			continue
		}
		if s&^1 == k {
			return i, -1
		}
	}
}

// add records the first copy of an event and reports true, or records a
// duplicate and reports false. watermark decides whether an id is old
// enough to forget at once.
func (d *dedup) add(t schemas.Topic, visitorID, eventID string, ts, offset, watermark int64) bool {
	k := idKey(visitorID, eventID)
	first := d.firstLive(watermark)
	i, free := d.lookup(k, first)
	if i >= 0 {
		cross := schemas.Topic(d.keys[i]&1) != t
		d.dups[t] = append(d.dups[t], dupRef{offset: offset, hash: k, skip: cross})
		if !cross {
			d.watched[k]++
		}
		return false
	}
	span := d.spanOf(ts)
	if span < first {
		return true // already forgotten, as it would be at the next expire
	}
	d.insert(free, k, t, span, offset, first)
	return true
}

// insert puts key k of input t into slot i (from lookup), and rebuilds the
// table if that made it more than 80 % full.
func (d *dedup) insert(i int, k uint64, t schemas.Topic, span, offset, first int64) {
	if d.keys[i] == 0 {
		d.used++
	}
	if span < 0 || span > math.MaxUint32 {
		panic("BUG: event ts outside the decoder's range")
	}
	d.keys[i], d.spans[i] = k|uint64(t), uint32(span)
	ls := d.liveSpan(span)
	ls.n++
	ls.minOffset[t] = min(ls.minOffset[t], offset)
	if d.used*5 > len(d.keys)*4 {
		d.resize(d.ids(), first)
	}
}

// liveSpan returns the count of span, added if need be.
func (d *dedup) liveSpan(span int64) *liveSpan {
	n := len(d.live)
	if n > 0 && d.live[n-1].span == span { // the common case on any traffic
		return &d.live[n-1]
	}
	i, found := slices.BinarySearchFunc(d.live, span, func(l liveSpan, s int64) int { return cmp.Compare(l.span, s) })
	if !found {
		d.live = slices.Insert(d.live, i, liveSpan{span: span, minOffset: [2]int64{math.MaxInt64, math.MaxInt64}})
	}
	return &d.live[i]
}

// resize rebuilds the table half full with room for n ids, keeping only
// the live ones. Its size is exactly 2n, not the next power of two, which
// would cost up to twice the memory: 48M ids at 20,000 events/s on
// real-time traffic. When that size is about the table's own (at most
// an eighth more: the live ids of steady traffic rise and fall as spans
// expire), the table is purged in place instead: a new table beside the
// old one doubled the partition's ids for the rebuild (100 MB more per
// partition at 20,000 events/s over 12), and rehashed them all again each
// time the live ids peaked a little higher than before.
func (d *dedup) resize(n int, first int64) {
	size := max(64, 2*n)
	if size <= len(d.keys)*9/8 && 2*size > len(d.keys) {
		d.purge(first)
		return
	}
	keys, spans := d.keys, d.spans
	d.keys, d.spans, d.used = make([]uint64, size), make([]uint32, size), 0
	for j, s := range keys {
		if s == 0 || int64(spans[j]) < first {
			continue
		}
		d.place(s, spans[j])
	}
}

// place puts slot value k (a key with its input bit) of span into the
// first empty slot of its probe sequence: during a rebuild, when no slot
// holds an expired id.
func (d *dedup) place(k uint64, span uint32) {
	i := home(k, len(d.keys))
	for d.keys[i] != 0 {
		i = next(i, len(d.keys))
	}
	d.keys[i], d.spans[i] = k, span
	d.used++
}

// purge empties the slots of expired ids and moves each live one to the
// first empty slot of its probe sequence, in place. It goes once round
// the table from a slot that was empty before: no probe sequence crosses
// such a slot (slots only fill between rebuilds), so each id's sequence
// from its home up to it is already purged when it moves, and it moves
// back along that sequence, where lookups still find it.
func (d *dedup) purge(first int64) {
	size := len(d.keys)
	start := slices.Index(d.keys, 0) // there is one: rebuilt at 80 % full
	d.used = 0
	for j := 1; j < size; j++ {
		i := (start + j) % size
		k, span := d.keys[i], d.spans[i]
		if k == 0 {
			continue
		}
		d.keys[i] = 0
		if int64(span) < first {
			continue
		}
		d.place(k, span)
	}
}

// expire forgets the spans whose events all have ts + gap before the
// watermark.
func (d *dedup) expire(watermark int64) {
	first := d.firstLive(watermark)
	n := 0
	for n < len(d.live) && d.live[n].span < first {
		for k := range d.watched {
			if i := d.slotOf(k, d.live[n].span); i >= 0 {
				d.unwatch(int(d.keys[i]&1), k)
			}
		}
		n++
	}
	d.live = slices.Delete(d.live, 0, n)
}

// home is the first slot of key k's probe sequence in a table of size
// slots: its high 32 bits scaled to the size (the low bit is the input's).
func home(k uint64, size int) int { return int((k >> 32) * uint64(size) >> 32) }

// next is the slot after i, wrapping around.
func next(i, size int) int {
	if i++; i == size {
		return 0
	}
	return i
}

// slotOf returns the slot of key k in span, or -1.
func (d *dedup) slotOf(k uint64, span int64) int {
	for i := home(k, len(d.keys)); d.keys[i] != 0; i = next(i, len(d.keys)) {
		if d.keys[i]&^1 == k && int64(d.spans[i]) == span {
			return i
		}
	}
	return -1
}

// unwatch marks input t's duplicates of key k for skipping: their original
// expired, so a replay would take them for first copies.
func (d *dedup) unwatch(t int, k uint64) {
	n := d.watched[k]
	delete(d.watched, k)
	for i := range d.dups[t] {
		if r := &d.dups[t][i]; r.hash == k && !r.skip {
			r.skip = true
			if n--; n == 0 {
				return
			}
		}
	}
}

// ids is the number of ids remembered.
func (d *dedup) ids() (n int) {
	for _, l := range d.live {
		n += l.n
	}
	return n
}

// replayFrom is the offset from which a restore re-reads input t: the
// smallest of its live ids, or next when it has none. Every held event is
// at or after it (held events are live ids).
func (d *dedup) replayFrom(t int, next int64) int64 {
	from := next
	for _, l := range d.live {
		from = min(from, l.minOffset[t])
	}
	return from
}

// skipsFrom forgets input t's duplicates and skips before from and
// returns, in offset order, the offsets at or after it a replay must skip.
func (d *dedup) skipsFrom(t int, from int64) []int64 {
	dups := d.dups[t]
	n := 0
	for n < len(dups) && dups[n].offset < from {
		if !dups[n].skip {
			if d.watched[dups[n].hash]--; d.watched[dups[n].hash] <= 0 {
				delete(d.watched, dups[n].hash)
			}
		}
		n++
	}
	d.dups[t] = slices.Delete(dups, 0, n)
	k := 0
	for k < len(d.skips[t]) && d.skips[t][k] < from {
		k++
	}
	d.skips[t] = slices.Delete(d.skips[t], 0, k)
	out := slices.Clone(d.skips[t])
	for _, r := range d.dups[t] {
		if r.skip {
			out = append(out, r.offset)
		}
	}
	slices.Sort(out)
	return out
}
