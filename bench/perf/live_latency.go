package perf

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// liveLatency times probes from their append to their row in events.
// With real-time ts a row is written only once the watermark (max ts -
// lateness) passes its ts, so every latency includes the lateness hold.
type liveLatency struct {
	conn     driver.Conn
	db       string
	lateness time.Duration
	probes   <-chan probe
	pending  map[string]probe // by visitor and event id
	visible  []timedProbe
}

type timedProbe struct {
	appended time.Time
	ms       float64 // append to visible
}

// collect takes the new probes and looks up those due: a probe cannot be
// visible before its lateness has passed, so only those are queried, by
// the primary key of events (visitor_id, event_id).
func (l *liveLatency) collect(ctx context.Context) {
	for len(l.probes) > 0 {
		p := <-l.probes
		l.pending[p.visitor+"\x00"+p.event] = p
	}
	now := time.Now()
	var visitors, events []any
	for _, p := range l.pending {
		if p.appended.Add(l.lateness-time.Second).Before(now) && len(visitors) < 2000 {
			visitors, events = append(visitors, p.visitor), append(events, p.event)
		}
	}
	if len(visitors) == 0 {
		return
	}
	rows, err := l.conn.Query(ctx, "SELECT visitor_id, event_id FROM "+l.db+".events WHERE visitor_id IN ? AND event_id IN ?",
		clickhouse.GroupSet{Value: visitors}, clickhouse.GroupSet{Value: events})
	if err != nil {
		return // looked up again at the next call
	}
	defer rows.Close()
	seen := time.Now()
	for rows.Next() {
		var v, e string
		if rows.Scan(&v, &e) != nil {
			return
		}
		if p, ok := l.pending[v+"\x00"+e]; ok {
			l.visible = append(l.visible, timedProbe{p.appended, float64(seen.Sub(p.appended).Microseconds()) / 1000})
			delete(l.pending, v+"\x00"+e)
		}
	}
}

// latencyGrace is how long after append + lateness a probe may take to
// become visible and still count: a flush interval, a checkpoint and the
// look-up's period, with room.
func latencyGrace(lateness time.Duration) time.Duration { return max(5*time.Second, lateness/10) }

// summarise sets the latency of the probes appended early enough in the
// run to be visible by its end (by end - lateness - grace); those not
// visible count as missing. Later probes are left out either way, so that
// a short run does not favour the fast ones.
func (l *liveLatency) summarise(res *LiveResult, end time.Time) {
	cutoff := end.Add(-l.lateness - latencyGrace(l.lateness))
	var ms []float64
	for _, p := range l.visible {
		if !p.appended.After(cutoff) {
			ms = append(ms, p.ms)
		}
	}
	for _, p := range l.pending {
		if !p.appended.After(cutoff) {
			res.LatencyMissing++
		}
	}
	res.LatencyN = len(ms)
	if len(ms) == 0 {
		res.LatencyNote = fmt.Sprintf("no latency: the traffic (%s) is not longer than the lateness plus %s", time.Duration(res.DurationS*float64(time.Second)), latencyGrace(l.lateness))
		return
	}
	slices.Sort(ms)
	res.LatencyP50S, res.LatencyP99S = ms[len(ms)/2]/1000, ms[len(ms)*99/100]/1000
	res.LatencyNote = fmt.Sprintf("append to visible in events, including the %s lateness hold; %d probes appended in the first %.0f s",
		l.lateness, len(ms)+res.LatencyMissing, cutoff.Sub(end).Seconds()+res.DurationS)
	if res.LatencyMissing > 0 {
		res.LatencyNote += fmt.Sprintf(", %d of them not visible within lateness + %s", res.LatencyMissing, latencyGrace(l.lateness))
	}
}
