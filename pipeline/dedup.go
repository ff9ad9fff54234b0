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
// open-addressing table of bare hashes, each tagged in 16 bits with its
// span of event time (an eighth of gap + lateness, so that an id outlives
// the window by at most an eighth of it). A span expires whole once the
// watermark is gap past it; its slots are then free for new ids, and the
// table is rebuilt from the live ones when it is 85 % full. One probe
// sequence per lookup, however many spans are live (historical replays
// keep hundreds), and at most 15 bytes per id of the window
// (TestDedupMemoryOnLiveTraffic; 25 with 32-bit spans, quarter spans and
// rebuilds to half full): at 20,000 events/s, about 700 MB of ids once 40
// minutes of them are live. BenchmarkDedupLive: as fast per id as
// before. An id whose span has already expired is not remembered. A 64-bit
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
	// first copy (0: empty), and its span's tag: the span relative to base,
	// pinned at maxTag when it is further (see tagOf).
	keys []uint64
	tags []uint16
	base int64 // a span at or before every tagged one
	// pinnedFrom is a span at or before every pinned id's, MaxInt64 when
	// none is: once no live span is at or after it, they have all expired.
	pinnedFrom int64
	used       int        // slots holding an id, live or expired
	live       []liveSpan // by span, oldest first

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
	span := max((r.SessionGap+r.Lateness).Milliseconds()/8, 1000)
	return dedup{gap: r.SessionGap.Milliseconds(), span: span, pinnedFrom: math.MaxInt64, watched: map[uint64]int{}}
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

// spanBase is the span of the earliest valid ts (2000-01-01, SPEC §2).
const spanBaseMs = 946684800000

// spanOf is the span of an event of ts.
func (d *dedup) spanOf(ts int64) int64 { return rows.FloorDiv(ts-spanBaseMs, d.span) }

// maxTag pins a span too far past base to be tagged (possible only while
// the watermark trails the newest ids by 65,535 spans, 227 days with the
// defaults): such an id does not expire by its tag, but at the first
// rebuild after every span it could be in has expired. It is kept longer
// than the window, never shorter.
const maxTag = math.MaxUint16

// tagOf is the tag of span, which is at or after base.
func (d *dedup) tagOf(span int64) uint16 { return uint16(min(span-d.base, maxTag)) }

// expired reports whether a slot of tag holds an id of a span before first.
func (d *dedup) expired(tag uint16, first int64) bool {
	return tag != maxTag && d.base+int64(tag) < first
}

// gone reports whether a rebuild drops a slot of tag, tagged from base old:
// its span is before first, or it is pinned and every pinned id expired.
func (d *dedup) gone(tag uint16, old, first int64) bool {
	if tag == maxTag {
		return d.pinnedExpired()
	}
	return old+int64(tag) < first
}

// pinnedExpired reports whether every pinned id's span has expired: no live
// span is at or after pinnedFrom.
func (d *dedup) pinnedExpired() bool {
	return len(d.live) == 0 || d.live[len(d.live)-1].span < d.pinnedFrom
}

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
		d.rebuild(64, first, math.MaxInt64)
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
		if d.expired(d.tags[i], first) {
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
	if span < d.base || span-d.base >= maxTag && d.baseFor(first, span)-d.base >= maxTag/2 {
		d.rebuild(len(d.keys)/2, first, span) // a new base, in place
		_, free = d.lookup(k, first)
	}
	d.insert(free, k, t, span, offset, first)
	return true
}

// insert puts key k of input t into slot i (from lookup), and rebuilds the
// table if that made it more than 85 % full.
func (d *dedup) insert(i int, k uint64, t schemas.Topic, span, offset, first int64) {
	if d.keys[i] == 0 {
		d.used++
	}
	d.keys[i], d.tags[i] = k|uint64(t), d.tagOf(span)
	if d.tags[i] == maxTag {
		d.pinnedFrom = min(d.pinnedFrom, d.base+maxTag)
	}
	ls := d.liveSpan(span)
	ls.n++
	ls.minOffset[t] = min(ls.minOffset[t], offset)
	if d.used*100 > len(d.keys)*85 {
		d.rebuild(d.ids(), first, math.MaxInt64)
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

// rebuild empties the slots of expired ids and re-tags the live ones from
// a new base: first, or the lowest span (low or a live one) when there is
// no watermark yet. It makes a new table two-thirds full with room for n
// ids, of exactly 1.5n slots, not the next power of two, which would cost
// up to twice the memory: 48M ids at 20,000 events/s on real-time traffic.
// Linear probing stays as fast up to 85 % full (BenchmarkDedupLive); at
// 90 % it was a fifth slower per id for 4 % less memory. When
// that size is about the table's own (at most an eighth more: the live
// ids of steady traffic rise and fall as spans expire), the table is
// purged in place instead: a new table beside the old one doubled the
// partition's ids for the rebuild (100 MB more per partition at 20,000
// events/s over 12), and rehashed them all again each time the live ids
// peaked a little higher than before.
func (d *dedup) rebuild(n int, first, low int64) {
	base := d.baseFor(first, low)
	if d.pinnedFrom != math.MaxInt64 {
		n = max(n, d.kept(first)) // pinned ids are not in d.ids()
	}
	size := max(64, n*3/2)
	if size <= len(d.keys)*9/8 && 2*size > len(d.keys) {
		d.purge(first, base)
		return
	}
	keys, tags, old := d.keys, d.tags, d.base
	d.keys, d.tags, d.used, d.base = make([]uint64, size), make([]uint16, size), 0, base
	for j, s := range keys {
		if s == 0 || d.gone(tags[j], old, first) {
			continue
		}
		d.place(s, d.retag(tags[j], old))
	}
	d.unpin()
}

// kept is the number of ids a rebuild at first keeps.
func (d *dedup) kept(first int64) (n int) {
	for i, k := range d.keys {
		if k != 0 && !d.gone(d.tags[i], d.base, first) {
			n++
		}
	}
	return n
}

// unpin forgets pinnedFrom once a rebuild has dropped the pinned ids.
func (d *dedup) unpin() {
	if d.pinnedExpired() {
		d.pinnedFrom = math.MaxInt64
	}
}

// baseFor is the base of a rebuild: first, or when there is no watermark
// yet the oldest live span; low if lower.
func (d *dedup) baseFor(first, low int64) int64 {
	base := first
	if first == math.MinInt64 {
		base = low
		if len(d.live) > 0 {
			base = d.live[0].span
		}
	}
	return min(base, low)
}

// retag is the tag, from base, of a slot's tag from old.
func (d *dedup) retag(tag uint16, old int64) uint16 {
	if tag == maxTag {
		return maxTag // its span is unknown: it stays pinned
	}
	span := old + int64(tag)
	if span-d.base >= maxTag {
		d.pinnedFrom = min(d.pinnedFrom, d.base+maxTag)
	}
	return d.tagOf(span)
}

// place puts slot value k (a key with its input bit) of tag into the
// first empty slot of its probe sequence: during a rebuild, when no slot
// holds an expired id.
func (d *dedup) place(k uint64, tag uint16) {
	i := home(k, len(d.keys))
	for d.keys[i] != 0 {
		i = next(i, len(d.keys))
	}
	d.keys[i], d.tags[i] = k, tag
	d.used++
}

// purge empties the slots of expired ids and moves each live one, re-tagged
// from base, to the first empty slot of its probe sequence, in place. It
// goes once round the table from a slot that was empty before: no probe
// sequence crosses such a slot (slots only fill between rebuilds), so each
// id's sequence from its home up to it is already purged when it moves,
// and it moves back along that sequence, where lookups still find it.
func (d *dedup) purge(first, base int64) {
	size, old := len(d.keys), d.base
	start := slices.Index(d.keys, 0) // there is one: rebuilt at 85 % full
	d.used, d.base = 0, base
	for j := 1; j < size; j++ {
		i := (start + j) % size
		k, tag := d.keys[i], d.tags[i]
		if k == 0 {
			continue
		}
		d.keys[i] = 0
		if d.gone(tag, old, first) {
			continue
		}
		d.place(k, d.retag(tag, old))
	}
	d.unpin()
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
	if span < d.base {
		return -1 // dropped when base passed it
	}
	for i := home(k, len(d.keys)); d.keys[i] != 0; i = next(i, len(d.keys)) {
		if d.keys[i]&^1 == k && d.tags[i] == d.tagOf(span) {
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

// tableBytes is the memory of the table.
func (d *dedup) tableBytes() int { return 8*len(d.keys) + 2*len(d.tags) }

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
