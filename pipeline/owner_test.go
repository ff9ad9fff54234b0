package pipeline

import (
	"testing"
	"time"

	"github.com/funnelhouse/funnelhouse/schemas"
)

// TestFeedWaitsForUnreadBehindInput: the input behind in event time is
// waited for as long as it has unread records, however long its fetch
// takes, so that the other input's records stay in their queue instead of
// being held; only an input whose end is not known yet is given up on
// after IdleAdvance, and one read to its end at once.
func TestFeedWaitsForUnreadBehindInput(t *testing.T) {
	clock := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	now := func() time.Time { return clock }
	rules := DefaultRules()
	rules.IdleAdvance = 200 * time.Millisecond
	pl := &Pipeline{cfg: Config{Rules: rules, Now: now}}
	proc := NewProcessor("g", 0, [2]string{"clickstream", "transactions"}, rules, now)
	o := newOwner(pl, 0, proc, Offsets{}, make(chan struct{}))
	cs := int(schemas.Clickstream)
	later := clock.Add(time.Hour) // long past IdleAdvance since the last fetch

	if !o.waitFor(cs, clock) {
		t.Error("end not known yet, nothing fetched for 0 s: feeding does not wait")
	}
	if o.waitFor(cs, later) {
		t.Error("end not known yet, nothing fetched for an hour: feeding still waits")
	}
	o.ends[cs].Store(1000)
	if !o.waitFor(cs, later) {
		t.Error("1,000 records unread, nothing fetched for an hour: feeding feeds the other input (its records would all be held)")
	}
	o.ends[cs].Store(0)
	if o.waitFor(cs, clock) {
		t.Error("empty input: feeding waits for it")
	}
}
