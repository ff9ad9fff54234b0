package pipeline

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/funnelhouse/funnelhouse/pipeline/rows"
	"github.com/funnelhouse/funnelhouse/schemas"
)

// liveRecord is a record of real-time traffic: at is when it arrives,
// which is also the processing clock then.
type liveRecord struct {
	topic      schemas.Topic
	key, value []byte
	at         time.Time
}

// liveTraffic is rate records/s of page views and orders stamped at their
// arrival (give or take 2 s), for d, with the cases a replay must get
// right: duplicates arriving 1 s, 5 min and 45 min after their original
// (the last after the original's id expired), a copy stamped 12 min later
// (its id outlives the original's), a duplicate in the other input, records 61 min in the future that the clock rejects then but
// would accept at a later restore, and orders that their release rejects
// (revenue_overflow).
func liveTraffic(rate int, d time.Duration) []liveRecord {
	rng := rand.New(rand.NewPCG(1, 2))
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	n := int(d.Seconds()) * rate
	var out []liveRecord
	var dups []liveRecord
	for i := range n {
		at := start.Add(time.Duration(i) * time.Second / time.Duration(rate))
		ts := at.Add(-time.Duration(rng.IntN(2000)) * time.Millisecond)
		v := fmt.Sprintf("v%d", rng.IntN(rate*60))
		id := fmt.Sprintf("e%d", i)
		r := liveRecord{topic: schemas.Clickstream, at: at}
		switch {
		case i%50 == 7:
			r.topic, r.key = schemas.Transactions, []byte(v)
			r.value = fmt.Appendf(nil, `{"event_id":%q,"type":"order_completed","ts":%q,"visitor_id":%q,"order_id":"o%d","amount":10.00,"currency":"USD"}`,
				id, ts.Format(time.RFC3339Nano), v, i)
		case i%997 == 3:
			r.key, r.value = pageView(id, v, at.Add(61*time.Minute))
		default:
			r.key, r.value = pageView(id, v, ts)
		}
		out = append(out, r)
		for _, delay := range []time.Duration{time.Second, 5 * time.Minute, 45 * time.Minute} {
			if rng.IntN(100) == 0 {
				dup := r
				dup.at = at.Add(delay)
				dups = append(dups, dup)
			}
		}
		if i%211 == 9 && r.topic == schemas.Clickstream { // the same id again, stamped 12 min later
			again := liveRecord{topic: r.topic, key: r.key, value: pageViewValue(id, v, ts.Add(12*time.Minute)), at: at.Add(12 * time.Minute)}
			late := again // and that copy once more, after the original expired
			late.at = at.Add(50 * time.Minute)
			dups = append(dups, again, late)
		}
		if i%5003 == 11 { // a session whose orders sum past Decimal(18,4): two are rejected at their release
			v := fmt.Sprintf("vrich%d", i)
			k, pv := pageView("p"+id, v, ts)
			dups = append(dups, liveRecord{topic: schemas.Clickstream, key: k, value: pv, at: at})
			for j, amount := range []string{"60000000000000", "50000000000000", "39999999999999.9999", "0.0001"} {
				dups = append(dups, liveRecord{topic: schemas.Transactions, key: k, at: at.Add(time.Duration(j+1) * time.Second),
					value: fmt.Appendf(nil, `{"event_id":"r%d-%s","type":"order_completed","ts":%q,"visitor_id":%q,"order_id":"r%d-%d","amount":%s,"currency":"USD"}`,
						j, id, ts.Add(time.Duration(j+1)*time.Second).Format(time.RFC3339Nano), v, i, j, amount)})
			}
		}
		if i%701 == 5 { // the same visitor and event id in the other input
			other := liveRecord{topic: schemas.Transactions, key: []byte(v), at: at.Add(time.Minute)}
			if r.topic == schemas.Transactions {
				other.topic, other.value = schemas.Clickstream, pageViewValue(id, v, ts)
			} else {
				other.value = fmt.Appendf(nil, `{"event_id":%q,"type":"order_completed","ts":%q,"visitor_id":%q,"order_id":"x%d","amount":1.00,"currency":"USD"}`,
					id, ts.Format(time.RFC3339Nano), v, i)
			}
			dups = append(dups, other)
		}
	}
	out = append(out, dups...)
	slices.SortStableFunc(out, func(a, b liveRecord) int { return a.at.Compare(b.at) })
	return out
}

func pageViewValue(id, v string, ts time.Time) []byte { _, val := pageView(id, v, ts); return val }

// runLive processes records in arrival order with the clock at each
// arrival, cutting a checkpoint every 500 records and restarting from the
// stored state after the records at restartAt (re-reading each input from
// where the restore says). It returns every table row but the state,
// sorted, the counters, and the largest checkpoint row cut while the
// traffic flows. Not those of the end-of-input drain: there the watermark
// jumps hours at once, every duplicate's original expires, and each
// duplicate in the replay range becomes an offset to skip; where the
// release pauses (at the row byte bound) decides how long that range is.
func runLive(t *testing.T, records []liveRecord, restartAt []int) ([]string, Stats, int) {
	return runLiveWith(t, records, restartAt, func(*Processor) {})
}

// runLiveWith is runLive with setup called on each new processor.
func runLiveWith(t *testing.T, records []liveRecord, restartAt []int, setup func(*Processor)) ([]string, Stats, int) {
	t.Helper()
	var clock time.Time
	start := func() *Processor {
		p := NewProcessor("live", 0, [2]string{"clickstream", "transactions"}, DefaultRules(), func() time.Time { return clock })
		setup(p)
		p.SetEnd(schemas.Clickstream, 1<<62)
		p.SetEnd(schemas.Transactions, 1<<62)
		return p
	}
	// Offsets per input, as Kafka would number them.
	var offsets [][2]int64
	var next [2]int64
	for _, r := range records {
		offsets = append(offsets, next)
		next[r.topic]++
	}
	w := newWritten()
	p := start()
	advance := func() {
		p.Advance(clock)
		for _, r := range p.TakeRejected() {
			w.lines = append(w.lines, fmt.Sprintf("deadletter %d %d %s %q %q", r.Topic, r.Offset, r.Err.Reason, r.Key, r.Value))
		}
	}
	from := Offsets{-1, -1}
	restarted := -1
	for i := 0; i < len(records); i++ {
		r := records[i]
		clock = r.at
		if off := offsets[i][r.topic]; from[r.topic] < 0 || off >= from[r.topic] {
			p.Add(r.topic, r.key, r.value, off, clock)
		}
		if i%64 == 63 {
			advance()
		}
		restart := i > restarted && slices.Contains(restartAt, i)
		if i%500 == 499 || restart {
			b, _ := p.Cut()
			w.keep(b)
		}
		if restart {
			restarted = i
			p.Close()
			p = start()
			off, err := p.Restore(w.saved())
			if err != nil {
				t.Fatal(err)
			}
			from = off
			// Re-read from the first record of either input at or after its offset.
			for i = 0; i < len(records) && offsets[i][records[i].topic] < from[records[i].topic]; i++ {
			}
			i--
		}
	}
	flowing := w.largestCheckpoint
	p.SetEnd(schemas.Clickstream, 0)
	p.SetEnd(schemas.Transactions, 0)
	clock = clock.Add(2 * time.Hour)
	advance()
	clock = clock.Add(24 * time.Hour * 40)
	advance()
	b, _ := p.Cut()
	w.keep(b)
	return w.sortedLines(), p.Stats().clone(), flowing
}

// TestCheckpointSizeOnLiveTraffic: on real-time traffic every event is held
// for the lateness, yet a checkpoint holds none of them nor their ids: its
// size must not grow with rate × lateness. (Before, 200 events/s gave a
// 16 MB checkpoint after 10 minutes.)
func TestCheckpointSizeOnLiveTraffic(t *testing.T) {
	for _, rate := range []int{50, 200} {
		records := liveTraffic(rate, 12*time.Minute)
		_, stats, largest := runLive(t, records, nil)
		t.Logf("%d events/s: %d records, largest checkpoint row %d bytes", rate, len(records), largest)
		if largest > 2048 {
			t.Errorf("%d events/s: a checkpoint row of %d bytes, want ≤ 2 KiB whatever the rate", rate, largest)
		}
		if stats.Duplicates == 0 || stats.DeadLetters[schemas.ReasonBadTs] == 0 || stats.DeadLetters[schemas.ReasonRevenueOverflow] == 0 {
			t.Fatalf("the traffic lacks its hard cases: %+v", stats)
		}
	}
}

// TestRestoreReplaysLiveTraffic restarts a partition of real-time traffic
// several times, each time re-reading the held events and live ids from
// the inputs: rows and counters must equal an uninterrupted run's.
func TestRestoreReplaysLiveTraffic(t *testing.T) {
	records := liveTraffic(100, 70*time.Minute)
	want, wantStats, _ := runLive(t, records, nil)
	got, gotStats, _ := runLive(t, records, []int{30_000, 30_001, 185_000, 290_000, 400_017})
	if !slices.Equal(got, want) {
		for i := range min(len(got), len(want)) {
			if got[i] != want[i] {
				t.Fatalf("%d rows after restarts, %d without; first difference:\n got %s\nwant %s", len(got), len(want), got[i], want[i])
			}
		}
		t.Fatalf("%d rows after restarts, %d without", len(got), len(want))
	}
	if fmt.Sprint(gotStats) != fmt.Sprint(wantStats) {
		t.Errorf("counters after restarts %+v, without %+v", gotStats, wantStats)
	}
	t.Logf("%d records, %d rows, %d duplicates, %d late", len(records), len(want), wantStats.Duplicates, wantStats.Late)
}

// TestReplayRangeGone: when the start of the replay range was deleted,
// the restore says so once, with the offsets, and goes on.
func TestReplayRangeGone(t *testing.T) {
	records := liveTraffic(50, 15*time.Minute)
	var clock time.Time
	p := NewProcessor("gone", 0, [2]string{"clickstream", "transactions"}, DefaultRules(), func() time.Time { return clock })
	var next [2]int64
	for _, r := range records[:20_000] {
		clock = r.at
		p.Add(r.topic, r.key, r.value, next[r.topic], clock)
		next[r.topic]++
	}
	p.Advance(clock)
	b, _ := p.Cut()
	q := NewProcessor("gone", 0, [2]string{"clickstream", "transactions"}, DefaultRules(), func() time.Time { return clock })
	from, err := q.Restore(slices.Clone(b.State.All()))
	if err != nil {
		t.Fatal(err)
	}
	if from[0] >= next[0] {
		t.Fatalf("no replay range: from %d, next %d", from[0], next[0])
	}
	k, v := pageView("new", "vnew", clock)
	q.Add(schemas.Clickstream, k, v, next[0]+5, clock) // the range and more are gone
	gotFrom, first, ok := q.ReplayGap(schemas.Clickstream)
	if !ok || gotFrom != from[0] || first != next[0]+5 {
		t.Errorf("ReplayGap = %d, %d, %v; want %d, %d, true", gotFrom, first, ok, from[0], next[0]+5)
	}
	if _, _, ok := q.ReplayGap(schemas.Clickstream); ok {
		t.Error("the gap is reported twice")
	}
	if q.Stats().Records[0] != p.Stats().Records[0]+1 {
		t.Errorf("the new record was not counted: %d records, want %d", q.Stats().Records[0], p.Stats().Records[0]+1)
	}
}

// TestColdHeldEventsKeepOrder: held events kept as compressed raw records
// beyond the hot limit are released in the same processing order, with the
// same rows, as when every held event stays decoded.
func TestColdHeldEventsKeepOrder(t *testing.T) {
	records := liveTraffic(100, 30*time.Minute)
	want, wantStats, _ := runLiveWith(t, records, nil, func(p *Processor) { p.hotLimit = 1 << 30 })
	for _, c := range []struct {
		hot      int
		spillDir string
	}{{0, t.TempDir()}, {1, t.TempDir()}, {100, t.TempDir()}, {0, "/nonexistent"}} {
		var last *Processor
		got, gotStats, _ := runLiveWith(t, records, []int{50_000}, func(p *Processor) {
			p.hotLimit = c.hot
			p.SpillTo(c.spillDir)
			p.cold.spill.segmentBytes = 32 << 10 // many segments
			last = p
		})
		if !slices.Equal(got, want) {
			t.Fatalf("hot limit %d, spill to %s: %d rows, %d with every held event decoded", c.hot, c.spillDir, len(got), len(want))
		}
		if fmt.Sprint(gotStats) != fmt.Sprint(wantStats) {
			t.Errorf("hot limit %d, spill to %s: counters %+v, want %+v", c.hot, c.spillDir, gotStats, wantStats)
		}
		spill := &last.cold.spill
		t.Logf("hot limit %d, spill to %s: %d segments written", c.hot, c.spillDir, spill.segments)
		if last.SpillError() == nil == (c.spillDir == "/nonexistent") {
			t.Errorf("spill to %s: SpillError %v", c.spillDir, last.SpillError())
		}
		if spill.bytes != 0 || spill.open > 1 {
			t.Errorf("spill to %s: once all is released, %d bytes spilled and %d files open, want 0 and at most 1", c.spillDir, spill.bytes, spill.open)
		}
		if files, _ := os.ReadDir(c.spillDir); len(files) > 0 {
			t.Errorf("spill to %s: %d files are left in it, want none (unlinked when created)", c.spillDir, len(files))
		}
		last.Close()
		if spill.open != 0 {
			t.Errorf("spill to %s: %d files open after Close", c.spillDir, spill.open)
		}
	}
}

// feedLive adds records to p in order, numbering each input's offsets as
// Kafka would, with *clock at each record's arrival, and calls Advance and
// then advanced every n records.
func feedLive(p *Processor, clock *time.Time, records []liveRecord, n int, advanced func()) {
	var next [2]int64
	for i, r := range records {
		*clock = r.at
		p.Add(r.topic, r.key, r.value, next[r.topic], *clock)
		next[r.topic]++
		if i%n == n-1 {
			p.Advance(*clock)
			advanced()
		}
	}
}

// TestHeldEventMemory measures the heap that real-time traffic's held
// events take (with their ids for deduplication): after 10 minutes of
// 1,667 events/s (20k/s over 12 partitions), every event of the last 10
// minutes is held. Beyond the few thousand kept decoded, held events are
// on disk; what stays in memory is mostly their ids.
func TestHeldEventMemory(t *testing.T) {
	records := liveTraffic(1667, 10*time.Minute)
	var clock time.Time
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	p := NewProcessor("mem", 0, [2]string{"clickstream", "transactions"}, DefaultRules(), func() time.Time { return clock })
	p.SpillTo(t.TempDir())
	defer p.Close()
	feedLive(p, &clock, records, 64, func() {})
	p.Advance(clock)
	used := heap() - before
	perHeld := float64(used) / float64(p.Held())
	t.Logf("%d held events (%d on disk in %d bytes), %d visitors, %d live ids: %.0f bytes of heap per held event (all state included)",
		p.Held(), p.cold.len(), p.cold.spill.bytes, p.Visitors(), p.seen.ids(), perHeld)
	if perHeld > 64 {
		t.Errorf("%.0f bytes per held event, want ≤ 64", perHeld)
	}
	runtime.KeepAlive(records)
}

// TestZombieOwnerIsFenced: owner A loses its partition to B (which
// restores A's checkpoint) but goes on and writes a later checkpoint, with
// visitors B has not written yet, after B's first one. A restore after
// that must follow B's lineage only: C's rows and counters equal those of
// an uninterrupted run.
func TestZombieOwnerIsFenced(t *testing.T) {
	records := benchRecords(t, 40_000)
	now := func() time.Time { return benchClock }
	start := func() *Processor {
		p := NewProcessor("z", 0, [2]string{"clickstream", "transactions"}, DefaultRules(), now)
		p.SetEnd(schemas.Clickstream, math.MaxInt64)
		p.SetEnd(schemas.Transactions, math.MaxInt64)
		return p
	}
	w := newWritten()
	write := func(b *rows.Batch) { w.keep(b) }
	restore := func() (*Processor, Offsets) {
		p := start()
		off, err := p.Restore(w.saved())
		if err != nil {
			t.Fatal(err)
		}
		return p, off
	}
	feed := func(p *Processor, from Offsets, to int) {
		for i := 0; i < to; i++ {
			if r := records[i]; from[r.topic] < 0 || int64(i) >= from[r.topic] {
				p.Add(r.topic, r.key, r.value, int64(i), benchClock)
			}
			if i%256 == 255 {
				p.Advance(benchClock)
			}
		}
		p.Advance(benchClock)
	}
	finish := func(p *Processor) Stats {
		p.SetEnd(schemas.Clickstream, 0)
		p.SetEnd(schemas.Transactions, 0)
		p.Advance(benchClock.Add(time.Hour))
		b, _ := p.Cut()
		write(b)
		return p.Stats().clone()
	}

	ref := start()
	feed(ref, Offsets{-1, -1}, len(records))
	wantStats := finish(ref)
	want := lineSet(w.lines)

	for _, zombieFirst := range []bool{false, true} {
		w = newWritten()
		a := start()
		feed(a, Offsets{-1, -1}, 10_000)
		b, _ := a.Cut()
		write(b)
		bOwner, off := restore() // B takes the partition over
		feed(bOwner, off, 20_000)
		feed(a, Offsets{10_000, 10_000}, 30_000) // the zombie goes on
		zb, _ := a.Cut()
		bb, _ := bOwner.Cut()
		if zombieFirst {
			write(zb)
			write(bb)
		} else {
			write(bb)
			write(zb)
		}
		c, off := restore()
		feed(c, off, len(records))
		gotStats := finish(c)
		compareLineage(t, fmt.Sprintf("zombie's write first: %v", zombieFirst), lineSet(w.lines), want, gotStats, wantStats)
	}
}

// lineSet is lines as a set: rows written again replace themselves.
func lineSet(lines []string) map[string]bool {
	set := map[string]bool{}
	for _, l := range lines {
		set[l] = true
	}
	return set
}

func compareLineage(t *testing.T, name string, lines, want map[string]bool, gotStats, wantStats Stats) {
	t.Helper()
	if !maps.Equal(lines, want) {
		extra, missing := 0, 0
		for l := range lines {
			if !want[l] {
				extra++
			}
		}
		for l := range want {
			if !lines[l] {
				missing++
			}
		}
		t.Errorf("%s: %d rows not in the uninterrupted run's, %d of it missing", name, extra, missing)
	}
	if fmt.Sprint(gotStats) != fmt.Sprint(wantStats) {
		t.Errorf("%s: counters %+v, want %+v", name, gotStats, wantStats)
	}
}

// TestTwoOwnersOfOneCheckpoint: owner A restores the partition and loses
// it before its first checkpoint; B, assigned in a later generation,
// restores the same checkpoint. A goes on as a zombie and writes two
// checkpoints (a higher sequence number than B's), before or after B's
// first. A restore after that must follow B's lineage only. With the same
// fork for both, it took A's checkpoint with B's visitor rows and broke
// ("BUG: session deadline did not fire before a later event").
func TestTwoOwnersOfOneCheckpoint(t *testing.T) {
	records := benchRecords(t, 40_000)
	want, wantStats := runWithRestarts(t, records, nil)
	for _, zombieFirst := range []bool{false, true} {
		w := newWritten()
		restore := func(generation int32) (*Processor, Offsets) {
			p := unendingProcessor("r", func() time.Time { return benchClock })
			p.SetGeneration(generation)
			from, err := p.Restore(w.saved())
			if err != nil {
				t.Fatal(err)
			}
			return p, from
		}
		feed := func(p *Processor, from Offsets, to int) {
			for i := max(int(min(from[0], from[1])), 0); i < to; i++ {
				if r := records[i]; int64(i) >= from[r.topic] {
					p.Add(r.topic, r.key, r.value, int64(i), benchClock)
				}
				if i%256 == 255 {
					p.Advance(benchClock)
				}
			}
			p.Advance(benchClock)
		}
		first, from := restore(1)
		feed(first, from, 10_000)
		b, _ := first.Cut()
		w.keep(b)
		a, fromA := restore(2)
		bOwner, fromB := restore(3)
		if a.Epoch()>>forkShift >= bOwner.Epoch()>>forkShift {
			t.Fatalf("fork of the zombie %d, of the later owner %d", a.Epoch()>>forkShift, bOwner.Epoch()>>forkShift)
		}
		feed(a, fromA, 30_000)
		feed(bOwner, fromB, 20_000)
		za1, _ := a.Cut()
		za2, _ := a.Cut()
		bb, _ := bOwner.Cut()
		if zombieFirst {
			w.keep(za1)
			w.keep(za2)
			w.keep(bb)
		} else {
			w.keep(bb)
			w.keep(za1)
			w.keep(za2)
		}
		c, fromC := restore(4)
		feed(c, fromC, len(records))
		c.SetEnd(schemas.Clickstream, 0)
		c.SetEnd(schemas.Transactions, 0)
		c.Advance(benchClock.Add(time.Hour))
		b, _ = c.Cut()
		w.keep(b)
		compareLineage(t, fmt.Sprintf("zombie's writes first: %v", zombieFirst), lineSet(w.lines), lineSet(want), c.Stats().clone(), wantStats)
	}
}
