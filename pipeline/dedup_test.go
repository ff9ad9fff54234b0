package pipeline

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/funnelhouse/funnelhouse/schemas"
)

// TestDedupMemoryOnLiveTraffic: on real-time traffic the ids of the last
// gap + lateness (40 min by default) are live, millions per partition, and
// the table is most of a member's memory. Fed 4 hours of one partition's
// ids at 2,000 events/s, every event on time, it costs at most 16 bytes
// per id of the window (rate × (gap + lateness)) at every sample (14.5
// measured), and no new table is built after the first hour. Before 16-bit
// tags, eighth spans and rebuilds to two-thirds full it took 25 (12-byte
// slots, half full, a quarter of the window more ids); a table sized to
// the next power of two took up to 41; rebuilding into a new table at
// every fill, as before the purge in place, built 4 more tables, each
// beside the old one.
func TestDedupMemoryOnLiveTraffic(t *testing.T) {
	if testing.Short() {
		t.Skip("29M ids")
	}
	rules := DefaultRules()
	d := newDedup(rules)
	const rate, minutes = 2000, 240
	start := int64(1_796_000_000_000) // 2026-11-30
	lateness := rules.Lateness.Milliseconds()
	worst, samples, peak := 0.0, 0, 0
	tables, lateTables := 0, 0 // tables allocated, and those after the first hour
	var table *uint64
	for i := range rate * 60 * minutes {
		ts := start + int64(i)*1000/int64(rate)
		watermark := ts - lateness
		if !d.add(schemas.Clickstream, "v", fmt.Sprint(i), ts, int64(i), watermark) {
			t.Fatalf("id %d taken for a duplicate", i)
		}
		if i%1000 == 999 {
			d.expire(watermark)
		}
		if &d.keys[0] != table {
			table = &d.keys[0]
			if tables++; ts-start > time.Hour.Milliseconds() {
				lateTables++
			}
		}
		if ts-start >= (rules.SessionGap+rules.Lateness).Milliseconds() && i%100_000 == 0 {
			perID := float64(d.tableBytes()) / float64(d.ids())
			worst = max(worst, perID)
			peak = max(peak, d.tableBytes())
			samples++
		}
	}
	window := float64(rate) * (rules.SessionGap + rules.Lateness).Seconds()
	t.Logf("%d live ids at the end, %d slots; worst of %d samples after the first 40 minutes: %.1f bytes per live id, peak %.1f bytes per id of the window; %d tables allocated, %d after the first hour",
		d.ids(), len(d.keys), samples, worst, float64(peak)/window, tables, lateTables)
	if perWindowID := float64(peak) / window; perWindowID > 16 {
		t.Errorf("ids cost up to %.1f bytes per id of the window, want at most 16", perWindowID)
	}
	// On steady traffic the table is purged in place: a second table
	// beside it would double the ids' memory while it is built.
	if lateTables > 0 {
		t.Errorf("%d tables allocated after the first hour of steady traffic, want 0", lateTables)
	}
}

// TestDedupPurgeKeepsLiveIDs: ids out of order within the lateness, the
// table purged in place now and then besides its own rebuilds; every id
// still live is then found as a duplicate, and every forgotten one is
// taken as new.
func TestDedupPurgeKeepsLiveIDs(t *testing.T) {
	rules := DefaultRules()
	d := newDedup(rules)
	rng := rand.New(rand.NewPCG(1, 2))
	const rate = 200
	start := int64(1_796_000_000_000)
	lateness := rules.Lateness.Milliseconds()
	tsOf := map[int]int64{}
	maxTs := start
	n := rate * 60 * 90 // 90 minutes
	for i := range n {
		ts := start + int64(i)*1000/rate - rng.Int64N(lateness)
		maxTs = max(maxTs, ts)
		tsOf[i] = ts
		if !d.add(schemas.Clickstream, "v", fmt.Sprint(i), ts, int64(i), maxTs-lateness) {
			t.Fatalf("id %d taken for a duplicate", i)
		}
		if i%1000 == 999 {
			d.expire(maxTs - lateness)
		}
		if i%50_000 == 49_999 {
			first := d.firstLive(maxTs - lateness)
			d.purge(first, first)
		}
	}
	watermark := maxTs - lateness
	first := d.firstLive(watermark)
	live := 0
	for i := range n {
		isLive := d.spanOf(tsOf[i]) >= first
		if isLive {
			live++
		}
		if dup := !d.add(schemas.Clickstream, "v", fmt.Sprint(i), tsOf[i], int64(n+i), watermark); dup != isLive {
			t.Fatalf("id %d (span %d, first live %d): duplicate %v, want %v", i, d.spanOf(tsOf[i]), first, dup, isLive)
		}
	}
	if live == 0 || live == n {
		t.Fatalf("%d of %d ids live: the check tells nothing", live, n)
	}
}

// BenchmarkDedupLive: one partition's ids on real-time traffic once the
// window is full (2,000 events/s for gap + lateness, 4.8M live ids), every
// add a new id: the probe sequences the table's fill gives on live traffic.
func BenchmarkDedupLive(b *testing.B) {
	rules := DefaultRules()
	d := newDedup(rules)
	const rate = 2000
	start := int64(1_796_000_000_000)
	lateness := rules.Lateness.Milliseconds()
	ids := make([]string, 1<<20)
	for i := range ids {
		ids[i] = fmt.Sprint(i)
	}
	i := 0
	add := func() {
		ts := start + int64(i)*1000/rate
		watermark := ts - lateness
		d.add(schemas.Clickstream, ids[i&(len(ids)-1)], ids[i>>20], ts, int64(i), watermark)
		if i%1000 == 999 {
			d.expire(watermark)
		}
		i++
	}
	for range rate * int((rules.SessionGap + rules.Lateness).Seconds()) {
		add()
	}
	b.ResetTimer()
	for range b.N {
		add()
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ids/s")
	b.ReportMetric(float64(d.tableBytes())/float64(d.ids()), "B/id")
}

// TestDedupTagsFarApart: 16-bit span tags under ids months apart. Before
// any watermark an id older than the base moves the base down, and one
// 65,535 spans past it is pinned: kept past its window, never forgotten
// early, and dropped by the first rebuild once its span has expired.
func TestDedupTagsFarApart(t *testing.T) {
	rules := DefaultRules()
	d := newDedup(rules)
	day := 24 * time.Hour.Milliseconds()
	now := int64(1_796_000_000_000)
	ids := []struct {
		id string
		ts int64
	}{{"a", now}, {"b", now - 30*day}, {"c", now + 365*day}}
	none := int64(math.MinInt64) // no watermark yet
	for i, e := range ids {
		if !d.add(schemas.Clickstream, "v", e.id, e.ts, int64(i), none) {
			t.Fatalf("%s taken for a duplicate", e.id)
		}
	}
	if d.pinnedFrom == math.MaxInt64 {
		t.Fatal("c, a year past the base, is not pinned: the check tells nothing")
	}
	for i, e := range ids {
		if d.add(schemas.Clickstream, "v", e.id, e.ts, int64(10+i), none) {
			t.Fatalf("%s forgotten before any watermark", e.id)
		}
	}
	// A watermark past a and b, before c: a and b are forgotten, c is not.
	watermark := now + day
	d.expire(watermark)
	if d.add(schemas.Clickstream, "v", "c", ids[2].ts, 20, watermark) {
		t.Fatal("c forgotten before its window ended")
	}
	// Past c: pinned, c is still remembered until a rebuild drops it.
	watermark = ids[2].ts + day
	d.expire(watermark)
	first := d.firstLive(watermark)
	d.rebuild(d.ids(), first, math.MaxInt64)
	if d.pinnedFrom != math.MaxInt64 {
		t.Errorf("pinnedFrom %d after c expired and a rebuild, want none", d.pinnedFrom)
	}
	if !d.add(schemas.Clickstream, "v", "c", ids[2].ts+day, 30, watermark) {
		t.Error("c's id is still remembered after its span expired and a rebuild")
	}
}

// TestDedupTagsOverAYear: one id every 5 minutes for 300 days, more than
// 65,535 spans: every rebuild moves the base up, nothing is pinned, and
// each id is remembered through its window.
func TestDedupTagsOverAYear(t *testing.T) {
	rules := DefaultRules()
	d := newDedup(rules)
	step := 5 * time.Minute.Milliseconds()
	start := int64(1_796_000_000_000)
	lateness := rules.Lateness.Milliseconds()
	n := int(300 * 24 * time.Hour.Milliseconds() / step)
	for i := range n {
		ts := start + int64(i)*step
		watermark := ts - lateness
		d.expire(watermark)
		if !d.add(schemas.Clickstream, "v", fmt.Sprint(i), ts, int64(i), watermark) {
			t.Fatalf("id %d taken for a duplicate", i)
		}
		// The id of gap + lateness ago is still in its window.
		back := int((rules.SessionGap + rules.Lateness).Milliseconds() / step)
		if j := i - back; j >= 0 && d.add(schemas.Clickstream, "v", fmt.Sprint(j), start+int64(j)*step, int64(i), watermark) {
			t.Fatalf("id %d forgotten within its window (at id %d)", j, i)
		}
	}
	if d.pinnedFrom != math.MaxInt64 || d.spanOf(start+int64(n)*step)-d.spanOf(start) <= maxTag {
		t.Fatalf("pinned %v, %d spans: the check tells nothing", d.pinnedFrom != math.MaxInt64, d.spanOf(start+int64(n)*step)-d.spanOf(start))
	}
}

// TestDedupManyPinned: pinned ids whose spans have expired are kept while
// a later pinned span is live, and are not counted as live ids; a rebuild
// must size its table for them too (it would loop forever on a full table
// otherwise), and drops them all once the last pinned span expires.
func TestDedupManyPinned(t *testing.T) {
	rules := DefaultRules()
	d := newDedup(rules)
	now := int64(1_796_000_000_000)
	none := int64(math.MinInt64)
	d.add(schemas.Clickstream, "v", "a", now, 0, none)
	const n = 3000
	tsOf := func(i int) int64 {
		return now + 365*24*time.Hour.Milliseconds() + int64(i)*10*time.Minute.Milliseconds()
	}
	for i := range n {
		d.add(schemas.Clickstream, "v", fmt.Sprint(i), tsOf(i), int64(1+i), none)
	}
	watermark := tsOf(n-5) + rules.SessionGap.Milliseconds()
	d.expire(watermark)
	first := d.firstLive(watermark)
	if d.ids() >= 10 {
		t.Fatalf("%d live ids, want the last few: the check tells nothing", d.ids())
	}
	d.rebuild(d.ids(), first, math.MaxInt64)
	for i := range n {
		if d.add(schemas.Clickstream, "v", fmt.Sprint(i), tsOf(i), int64(n+i), watermark) {
			t.Fatalf("pinned id %d forgotten while a later pinned span is live", i)
		}
	}
	watermark = tsOf(n) + rules.SessionGap.Milliseconds()
	d.expire(watermark)
	d.rebuild(d.ids(), d.firstLive(watermark), math.MaxInt64)
	if d.pinnedFrom != math.MaxInt64 || d.used != 0 {
		t.Errorf("after every pinned span expired and a rebuild: pinnedFrom %d, %d slots used; want none", d.pinnedFrom, d.used)
	}
}
