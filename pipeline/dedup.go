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
// default, 48M at 20,000 events/s, so the ids are kept compactly: in
// generations, one per span of event time (a quarter of gap + lateness),
// each an open-addressing table of bare hashes, ~12 bytes per id. A
// generation is dropped whole once the watermark is gap past its span;
// an id whose generation is already gone is not remembered. A 64-bit hash
// collision within the window would drop an event as a duplicate: about 1
// in 10^8 for a million ids in the window.
//
// The ids are not checkpointed: a restore re-reads each input from the
// smallest offset of its live ids (replayFrom) and adds them again, which
// rebuilds the same generations. A duplicate in that range is found
// again when its original is re-read before it, in the same input; every
// other duplicate (its original expired since, or in the other input) and
// every record rejected by a time-dependent check is listed in the
// checkpoint as an offset the replay skips.
type dedup struct {
	gap, span int64           // ms
	gens      []*idGeneration // by span, oldest first
	spare     []*idGeneration // dropped generations, for new ones

	// dups are the duplicates of each input not yet behind its replay
	// start, in offset order; watched counts those of each hash whose
	// original is still live in the same input, so found again by a replay.
	dups    [2][]dupRef
	watched map[uint64]int
	// skips are other offsets the replay must skip: records rejected by
	// the processing clock, and skips carried over from the last restore.
	skips [2][]int64
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

// idGeneration holds the ids of events whose ts is in one span. A slot is
// the hash with its lowest bit replaced by the input of the first copy; 0
// is empty.
type idGeneration struct {
	span      int64
	slots     []uint64
	n         int
	minOffset [2]int64 // smallest offset of an id of each input; MaxInt64 when none
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

// find returns the slot of key k (its input bit aside) or the empty slot
// where it would go.
func (g *idGeneration) find(k uint64) int {
	mask := len(g.slots) - 1
	for i := int(k>>32) & mask; ; i = (i + 1) & mask {
		if s := g.slots[i]; s == 0 || s&^1 == k {
			return i
		}
	}
}

func (g *idGeneration) insert(k uint64, t schemas.Topic, offset int64) {
	if (g.n+1)*5 > len(g.slots)*4 { // above 80 % full
		g.grow()
	}
	g.slots[g.find(k)] = k | uint64(t)
	g.n++
	g.minOffset[t] = min(g.minOffset[t], offset)
}

func (g *idGeneration) grow() {
	old := g.slots
	g.slots = make([]uint64, max(64, 2*len(old)))
	for _, s := range old {
		if s != 0 {
			g.slots[g.find(s&^1)] = s
		}
	}
}

// spanOf is the generation of an event of ts.
func (d *dedup) spanOf(ts int64) int64 { return rows.FloorDiv(ts, d.span) }

// firstLive is the oldest span not yet expired at watermark: one whose
// events may have ts + gap ≥ watermark.
func (d *dedup) firstLive(watermark int64) int64 {
	if watermark == math.MinInt64 {
		return math.MinInt64
	}
	return rows.FloorDiv(watermark-d.gap, d.span)
}

// add records the first copy of an event and reports true, or records a
// duplicate and reports false. watermark decides whether an id is old
// enough to forget at once.
func (d *dedup) add(t schemas.Topic, visitorID, eventID string, ts, offset, watermark int64) bool {
	k := idKey(visitorID, eventID)
	for _, g := range d.gens {
		if s := g.slots[g.find(k)]; s != 0 {
			cross := schemas.Topic(s&1) != t
			d.dups[t] = append(d.dups[t], dupRef{offset: offset, hash: k, skip: cross})
			if !cross {
				d.watched[k]++
			}
			return false
		}
	}
	span := d.spanOf(ts)
	if span < d.firstLive(watermark) {
		return true // already forgotten, as it would be at the next expire
	}
	d.generation(span).insert(k, t, offset)
	return true
}

// generation returns the generation of span, created if need be.
func (d *dedup) generation(span int64) *idGeneration {
	i, found := slices.BinarySearchFunc(d.gens, span, func(g *idGeneration, s int64) int { return cmp.Compare(g.span, s) })
	if !found {
		var g *idGeneration
		if n := len(d.spare); n > 0 {
			g, d.spare = d.spare[n-1], d.spare[:n-1]
			clear(g.slots)
			g.n = 0
		} else {
			g = &idGeneration{}
			g.grow()
		}
		g.span, g.minOffset = span, [2]int64{math.MaxInt64, math.MaxInt64}
		d.gens = slices.Insert(d.gens, i, g)
	}
	return d.gens[i]
}

// expire drops the generations whose events all have ts + gap before the
// watermark.
func (d *dedup) expire(watermark int64) {
	first := d.firstLive(watermark)
	for len(d.gens) > 0 && d.gens[0].span < first {
		g := d.gens[0]
		d.gens[0] = nil
		d.gens = d.gens[1:]
		for k := range d.watched {
			if s := g.slots[g.find(k)]; s != 0 {
				d.unwatch(int(s&1), k)
			}
		}
		if len(d.spare) < 16 && len(g.slots) <= 1<<16 {
			d.spare = append(d.spare, g) // historical replays drop one every span
		}
	}
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
	for _, g := range d.gens {
		n += g.n
	}
	return n
}

// replayFrom is the offset from which a restore re-reads input t: the
// smallest of its live ids, or next when it has none. Every held event is
// at or after it (held events are live ids).
func (d *dedup) replayFrom(t int, next int64) int64 {
	from := next
	for _, g := range d.gens {
		from = min(from, g.minOffset[t])
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
