package pipeline

import (
	"fmt"
	"testing"

	"github.com/funnelhouse/funnelhouse/schemas"
)

// TestDedupMemoryOnLiveTraffic: on real-time traffic the ids of the last
// gap + lateness (40 min by default) are live, millions per partition, and
// the table is most of a member's memory. Fed 70 minutes of one
// partition's ids at 2,000 events/s, every event on time, it costs at most
// 32 bytes per live id at every sample (25 measured). A table sized to the
// next power of two instead of 2n took up to 41 here (23-41 at 1,400 to
// 2,600 events/s, against 23-29).
func TestDedupMemoryOnLiveTraffic(t *testing.T) {
	if testing.Short() {
		t.Skip("7.5M ids")
	}
	rules := DefaultRules()
	d := newDedup(rules)
	const rate, minutes = 2000, 70
	start := int64(1_796_000_000_000) // 2026-11-30
	lateness := rules.Lateness.Milliseconds()
	worst, samples := 0.0, 0
	for i := range rate * 60 * minutes {
		ts := start + int64(i)*1000/int64(rate)
		watermark := ts - lateness
		if !d.add(schemas.Clickstream, "v", fmt.Sprint(i), ts, int64(i), watermark) {
			t.Fatalf("id %d taken for a duplicate", i)
		}
		if i%1000 == 999 {
			d.expire(watermark)
		}
		if ts-start >= (rules.SessionGap+rules.Lateness).Milliseconds() && i%100_000 == 0 {
			perID := float64(12*len(d.keys)) / float64(d.ids())
			worst = max(worst, perID)
			samples++
		}
	}
	t.Logf("%d live ids at the end, %d slots; worst of %d samples after the first 40 minutes: %.1f bytes per live id", d.ids(), len(d.keys), samples, worst)
	if worst > 32 {
		t.Errorf("ids cost up to %.1f bytes each, want at most 32", worst)
	}
}
