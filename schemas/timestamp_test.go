package schemas

import (
	"testing"
	"time"
)

// The future limit on ts follows the processing clock although the clock
// is not read for every event: forward at once when a ts needs it, and
// back (a clock set back) within tsLimitReuse events.
func TestTsLimitFollowsTheClock(t *testing.T) {
	clock := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	reads := 0
	l := tsLimit{now: func() time.Time { reads++; return clock }}
	at := func(d time.Duration) int64 { return clock.Add(d).UnixMilli() }

	if ok, _ := l.admits(at(time.Hour)); !ok {
		t.Fatal("a ts 1 h after the clock is refused")
	}
	if ok, _ := l.admits(at(time.Hour + time.Millisecond)); ok {
		t.Fatal("a ts 1 h 1 ms after the clock is admitted")
	}
	clock = clock.Add(time.Minute)
	if ok, _ := l.admits(at(time.Hour)); !ok {
		t.Fatal("after the clock moved on, a ts within the new limit is refused")
	}
	before := reads
	for range 100 {
		l.admits(at(-time.Hour))
	}
	if reads != before {
		t.Errorf("the clock was read %d times for 100 ts well within the limit, want 0", reads-before)
	}
	clock = clock.Add(-30 * time.Minute) // set back
	refused := false
	for range tsLimitReuse + 1 {
		if ok, _ := l.admits(at(time.Hour + time.Minute)); !ok {
			refused = true
			break
		}
	}
	if !refused {
		t.Errorf("a clock set back by 30 min was not obeyed within %d events", tsLimitReuse+1)
	}
}
