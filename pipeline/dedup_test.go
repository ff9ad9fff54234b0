package pipeline

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/funnelhouse/funnelhouse/schemas"
)

// TestDedupMemoryOnLiveTraffic: on real-time traffic the ids of the last
// gap + lateness (40 min by default) are live, millions per partition, and
// the table is most of a member's memory. Fed 4 hours of one partition's
// ids at 2,000 events/s, every event on time, it costs at most 32 bytes
// per live id at every sample (25 measured), and no new table is built
// after the first hour. A table sized to the next power of two instead of
// 2n took up to 41 bytes here (23-41 at 1,400 to 2,600 events/s, against
// 23-29); rebuilding into a new table at every fill, as before the purge
// in place, took 29 and built 4 more tables, each beside the old one.
func TestDedupMemoryOnLiveTraffic(t *testing.T) {
	if testing.Short() {
		t.Skip("29M ids")
	}
	rules := DefaultRules()
	d := newDedup(rules)
	const rate, minutes = 2000, 240
	start := int64(1_796_000_000_000) // 2026-11-30
	lateness := rules.Lateness.Milliseconds()
	worst, samples := 0.0, 0
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
			perID := float64(12*len(d.keys)) / float64(d.ids())
			worst = max(worst, perID)
			samples++
		}
	}
	t.Logf("%d live ids at the end, %d slots; worst of %d samples after the first 40 minutes: %.1f bytes per live id; %d tables allocated, %d after the first hour",
		d.ids(), len(d.keys), samples, worst, tables, lateTables)
	if worst > 32 {
		t.Errorf("ids cost up to %.1f bytes each, want at most 32", worst)
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
			d.purge(d.firstLive(maxTs - lateness))
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
