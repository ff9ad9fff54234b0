package perf

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/funnelhouse/funnelhouse/bench/expected"
	"github.com/funnelhouse/funnelhouse/bench/progress"
	"github.com/funnelhouse/funnelhouse/bench/querytime"
	"github.com/funnelhouse/funnelhouse/bench/verify"
	chsink "github.com/funnelhouse/funnelhouse/sinks/clickhouse"
)

// DashboardRounds is how many times the dashboard is read; the median
// round is reported.
const DashboardRounds = 5

// Dashboard is the time to read the four core views (querytime.Views) in
// full, one after the other, as a BI dashboard does.
type Dashboard struct {
	Ms     float64            `json:"ms"`      // median over the rounds of the four views' sum
	ViewMs map[string]float64 `json:"view_ms"` // median per view
	// ClickHouse's CPU seconds per round (mean), 0 without its pid.
	CHCPUSec float64 `json:"clickhouse_cpu_s,omitempty"`
}

// ViewCheck is how one of the query-time peer's views compares with the
// expected computation, with the likely reason when it differs.
type ViewCheck struct {
	verify.ViewDiff
	Reason string `json:"reason,omitempty"`
}

// timeDashboard reads the core views of db DashboardRounds times.
func timeDashboard(ctx context.Context, conn driver.Conn, db string, chPID int) (*Dashboard, error) {
	perView := map[string][]float64{}
	var sums []float64
	before := beginCPU(chPID)
	for range DashboardRounds {
		sum := 0.0
		for _, view := range querytime.Views {
			ms, _, err := readView(ctx, conn, db+"."+view)
			if err != nil {
				return nil, err
			}
			perView[view] = append(perView[view], ms)
			sum += ms
		}
		sums = append(sums, sum)
	}
	d := &Dashboard{Ms: median(sums), ViewMs: map[string]float64{},
		CHCPUSec: before.since(oneServer(chPID)).clickhouse / DashboardRounds}
	for view, ms := range perView {
		d.ViewMs[view] = median(ms)
	}
	return d, nil
}

// readView reads every row of a view, as a BI tool fetching it would,
// and returns the milliseconds it took and the rows it read. A count()
// over the view would let ClickHouse skip columns it does not need.
func readView(ctx context.Context, conn driver.Conn, view string) (float64, uint64, error) {
	start := time.Now()
	rows, err := conn.Query(ctx, "SELECT * FROM "+view)
	if err != nil {
		return 0, 0, fmt.Errorf("cannot read %s: %w", view, err)
	}
	defer rows.Close()
	var n uint64
	for rows.Next() {
		n++
	}
	if err := rows.Err(); err != nil {
		return 0, 0, fmt.Errorf("cannot read %s: %w", view, err)
	}
	return float64(time.Since(start).Microseconds()) / 1000, n, nil
}

// funnelhouseDashboard times the dashboard on the database of the last
// verified funnelhouse run, before the latency phase re-creates it with
// live traffic.
func (b *bench) funnelhouseDashboard(ctx context.Context) (*Dashboard, error) {
	conn, db, err := chsink.Connect(ctx, b.cfg.Endpoint)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return timeDashboard(ctx, conn, db, b.chPID)
}

// queryTime measures the same-job peer, bench/querytime: ingest like the
// kafka-engine peer (from creating its views until every record is in its
// raw table), then the dashboard read at query time, then each view
// compared with the expected computation.
func (b *bench) queryTime(ctx context.Context, cs, tx string, expect *verify.Expectation, want *expected.Result) (r *Result, _ error) {
	conn, db, err := chsink.Connect(ctx, b.cfg.Endpoint)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	peer, err := querytime.Create(ctx, conn, db+"_query_peer", b.brokers, cs, tx, fmt.Sprintf("query-peer-%d", time.Now().UnixNano()))
	if err != nil {
		return nil, err
	}
	keep := false // a run that stalled short is kept for inspection
	defer func() {
		if !keep {
			_ = peer.Drop(context.WithoutCancel(ctx))
		} else if err := peer.StopConsuming(context.WithoutCancel(ctx)); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}()
	before := b.servers().begin()
	start := time.Now()
	if err := peer.Start(ctx); err != nil {
		return nil, err
	}
	var lastRow cpuMark // CPU when the last row came: a stall's wait is not ingest
	n, err := waitIngest(ctx, "query-time", expect.Records, peer.Rows, func() { lastRow = b.servers().mark() })
	var stalled *stalledError
	if errors.As(err, &stalled) {
		// Measured anyway, up to its last row: the views are then compared
		// with the expected computation like any other run's.
		progress, perr := peer.Progress(ctx)
		if perr != nil {
			progress = "cannot say how far its consumers got: " + perr.Error()
		}
		fmt.Fprintf(os.Stderr, "query-time: %v; measured up to its last row. %s. Its database %s is kept, without its Kafka tables.\n", err, progress, peer.Database())
		err, keep = nil, true
		defer func() {
			if r != nil {
				r.Note += "; stalled short: " + progress
			}
		}()
	}
	if err != nil {
		return nil, err
	}
	end, used := time.Now(), before.since(b.servers())
	if stalled != nil {
		end = stalled.last
		used = before.until(lastRow)
	}
	secs := end.Sub(start).Seconds()
	r = &Result{System: "query-time", Runs: 1, Records: expect.Records, Rows: int64(n), Seconds: []float64{secs}, MedianSeconds: secs,
		RecordsPerSec: float64(n) / secs, CHCPUSecPerMEv: perMillion(used.clickhouse, int64(n)), BrokerCPUSecPerMEv: perMillion(used.broker, int64(n)), BenchCPUSecPerMEv: perMillion(used.self, int64(n)),
		Note: "Kafka engine (TabSeparated, one String per record) + materialised views extracting typed columns into one MergeTree; the four core views computed at query time"}
	if int64(n) != expect.Records {
		r.Note += fmt.Sprintf("; %d rows for %d records", n, expect.Records)
	}
	if r.DiskBytesPerEvent, _, err = storage(ctx, conn, peer.Database(), int64(len(expect.Events))); err != nil {
		return r, err
	}
	if r.Dashboard, err = timeDashboard(ctx, conn, peer.Database(), b.chPID); err != nil {
		return r, err
	}
	for _, d := range verify.CoreViews(ctx, conn, peer.Database(), want) {
		r.ViewChecks = append(r.ViewChecks, viewCheck(d, expect.Records-int64(n)))
	}
	return r, nil
}

// viewCheck adds the likely reason to a view that differs; missing is how
// many records the peer has no row for.
func viewCheck(d verify.ViewDiff, missing int64) ViewCheck {
	c := ViewCheck{ViewDiff: d}
	switch {
	case d.Error != "":
		c.Reason = "the view could not be read"
	case !d.Equal() && missing > 0:
		c.Reason = fmt.Sprintf("first %d records the Kafka engine consumed without writing a row; else: %s", missing, querytime.Limits[d.View])
	case !d.Equal():
		c.Reason = querytime.Limits[d.View]
	}
	return c
}

// stalledError: a peer's rows stopped growing short of its records.
type stalledError struct {
	n       uint64
	records int64
	last    time.Time // when the last row came
}

func (e *stalledError) Error() string {
	return fmt.Sprintf("only %d of %d records ingested, none for 2 minutes: see ClickHouse's error log (a materialised view that fails stops its Kafka table's consumer)", e.n, e.records)
}

// waitIngest waits until rows reports at least records rows, showing
// progress as name, calling onRow (when not nil) each time rows grew. It gives up after 30 minutes, or after 2 minutes
// without a new row: a Kafka table's consumer stops for good when its
// materialised view fails on a block (the error is in ClickHouse's log).
func waitIngest(ctx context.Context, name string, records int64, rows func(context.Context) uint64, onRow func()) (uint64, error) {
	prog := progress.New(name, records)
	deadline := time.Now().Add(30 * time.Minute)
	var last uint64
	lastChange := time.Now()
	for {
		n := rows(ctx)
		prog.Update(int64(n))
		if int64(n) >= records {
			prog.Done(int64(n))
			return n, nil
		}
		if n != last {
			last, lastChange = n, time.Now()
			if onRow != nil {
				onRow()
			}
		}
		switch {
		case ctx.Err() != nil:
			return n, ctx.Err()
		case time.Now().After(deadline):
			return n, fmt.Errorf("only %d of %d records ingested in 30 minutes", n, records)
		case time.Since(lastChange) > 2*time.Minute:
			return n, &stalledError{n: n, records: records, last: lastChange}
		}
		time.Sleep(100 * time.Millisecond)
	}
}
