package pipeline

import (
	"fmt"
	"testing"
	"time"

	"github.com/funnelhouse/funnelhouse/schemas"
)

// pageView is a valid clickstream record of visitor v at ts.
func pageView(id, v string, ts time.Time) (key, value []byte) {
	return []byte(v), fmt.Appendf(nil, `{"event_id":%q,"type":"page_view","ts":%q,"visitor_id":%q,"url":"/"}`, id, ts.Format(time.RFC3339Nano), v)
}

// TestFutureOutlierKeepsTrafficOnTime is the probe of issue 13: one record
// 59 minutes ahead of the clock (SPEC accepts up to 1 h) must not push the
// watermark ahead and make the next hour of real-time traffic late.
func TestFutureOutlierKeepsTrafficOnTime(t *testing.T) {
	clock := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	p := NewProcessor("h", 0, [2]string{"clickstream", "transactions"}, DefaultRules(), func() time.Time { return clock })
	p.SetEnd(schemas.Transactions, 0) // no transactions: idle after --idle-advance
	offset := int64(0)
	add := func(id, v string, ts time.Time) {
		k, val := pageView(id, v, ts)
		if err := p.Add(schemas.Clickstream, k, val, offset, clock); err != nil {
			t.Fatalf("record %s rejected: %v", id, err)
		}
		offset++
		p.SetEnd(schemas.Clickstream, offset+1) // more to come
		p.Advance(clock)
	}
	add("outlier", "vfuture", clock.Add(59*time.Minute))
	for i := range 3600 {
		clock = clock.Add(time.Second)
		add(fmt.Sprintf("e%d", i), fmt.Sprintf("v%d", i%50), clock)
	}
	if late := p.Stats().Late; late != 0 {
		t.Errorf("%d of 3,600 on-time records were late after one record 59 min in the future, want 0", late)
	}
	if w, limit := p.Watermark(), clock.Add(-DefaultRules().Lateness).UnixMilli(); w > limit {
		t.Errorf("watermark %s is ahead of the clock minus the lateness (%s)", time.UnixMilli(w).UTC(), time.UnixMilli(limit).UTC())
	}
}
