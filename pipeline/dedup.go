package pipeline

import (
	"slices"

	"github.com/funnelhouse/funnelhouse/schemas"
)

// dedup remembers (visitor, event id) hashes of recent events. Each input
// keeps its ids in arrival order, which within one topic-partition is
// nearly ts order, so the oldest expire first once the watermark is past
// their ts + gap. (One FIFO for both inputs would let an event of the input
// running ahead block the expiry of everything behind it.) A 64-bit hash
// collision within the window would drop an event as a duplicate: about 1
// in 10^8 for a million ids in the window.
//
// The ids are not checkpointed: a restore re-reads each input from the
// offset of its oldest live id (replayFrom) and adds them again, in the
// same order, which rebuilds the same set. A duplicate in that range is
// found again by the same lookup when its original is re-read before it,
// in the same input; every other duplicate (its original expired since,
// or in the other input) and every record rejected by a time-dependent
// check is listed in the checkpoint as an offset the replay skips.
type dedup struct {
	ids    [2]map[uint64]struct{} // by the input holding the first copy
	inputs [2]seenFIFO

	// dups are the duplicates of each input not yet behind its replay
	// start, in offset order; watched counts those of each hash whose
	// original is still live in the same input, so found again by a replay.
	dups    [2][]dupRef
	watched map[uint64]int
	// skips are other offsets the replay must skip: records rejected by
	// the processing clock, and skips carried over from the last restore.
	skips [2][]int64
}

func newDedup() dedup {
	return dedup{ids: [2]map[uint64]struct{}{{}, {}}, watched: map[uint64]int{}}
}

// seenFIFO is order[head:]; expired entries before head are compacted away.
type seenFIFO struct {
	order []seenID
	head  int
}

type seenID struct {
	hash   uint64
	ts     int64
	offset int64 // of the record in its input
}

// dupRef is a duplicate record; skip says that a replay cannot find it by
// lookup and must skip it by offset.
type dupRef struct {
	offset int64
	hash   uint64
	skip   bool
}

// add records the first copy of an event and reports true, or records a
// duplicate and reports false.
func (d *dedup) add(t schemas.Topic, visitorID, eventID string, ts, offset int64) bool {
	h := pairHash(visitorID, eventID)
	for i := range d.ids {
		if _, ok := d.ids[i][h]; ok {
			cross := i != int(t)
			d.dups[t] = append(d.dups[t], dupRef{offset: offset, hash: h, skip: cross})
			if !cross {
				d.watched[h]++
			}
			return false
		}
	}
	d.ids[t][h] = struct{}{}
	d.inputs[t].order = append(d.inputs[t].order, seenID{h, ts, offset})
	return true
}

// expire forgets ids whose ts + gap is before the watermark.
func (d *dedup) expire(watermark, gap int64) {
	for i := range d.inputs {
		f := &d.inputs[i]
		for f.head < len(f.order) && f.order[f.head].ts+gap < watermark {
			h := f.order[f.head].hash
			delete(d.ids[i], h)
			if d.watched[h] > 0 {
				d.unwatch(i, h)
			}
			f.head++
		}
		if f.head > 4096 && f.head*2 > len(f.order) {
			n := copy(f.order, f.order[f.head:])
			f.order = f.order[:n]
			f.head = 0
		}
	}
}

// unwatch marks input t's duplicates of hash h for skipping: their original
// expired, so a replay would take them for first copies.
func (d *dedup) unwatch(t int, h uint64) {
	n := d.watched[h]
	delete(d.watched, h)
	for i := range d.dups[t] {
		if r := &d.dups[t][i]; r.hash == h && !r.skip {
			r.skip = true
			if n--; n == 0 {
				return
			}
		}
	}
}

// live returns input t's ids not yet expired.
func (d *dedup) live(t int) []seenID { return d.inputs[t].order[d.inputs[t].head:] }

// replayFrom is the offset from which a restore re-reads input t: that of
// its oldest live id, or next when it has none. Every held event is at or
// after it (held events are live ids).
func (d *dedup) replayFrom(t int, next int64) int64 {
	if live := d.live(t); len(live) > 0 {
		return live[0].offset
	}
	return next
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
