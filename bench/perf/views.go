package perf

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	chsink "github.com/funnelhouse/funnelhouse/sinks/clickhouse"
	fhsql "github.com/funnelhouse/funnelhouse/sql"
)

// ViewRounds is how many times each view is read after one warm-up read;
// the median is reported (issue 14: median of 5).
const ViewRounds = 5

// mergeWait bounds the wait for ClickHouse's background merges before the
// views are timed.
const mergeWait = 2 * time.Minute

// ViewTimes is the query time of every view BI tools read (sql.Views) on
// one database.
type ViewTimes struct {
	Ms   map[string]float64 // median over ViewRounds reads of all rows, by view
	Rows map[string]uint64  // rows each view returned
	// Load1 is the 1-minute load average when the timing started (other
	// work on the machine slows every read).
	Load1 float64
}

// timeViews waits (up to mergeWait) until no background merge runs on db,
// so that the times are those of a database at rest after its ingest,
// then reads every row of each view through the driver, as readView does:
// one warm-up read, then ViewRounds timed reads.
func timeViews(ctx context.Context, conn driver.Conn, db string, views []string) (*ViewTimes, error) {
	if err := waitMerges(ctx, conn, db, mergeWait); err != nil {
		return nil, err
	}
	vt := &ViewTimes{Ms: map[string]float64{}, Rows: map[string]uint64{}, Load1: loadAverage()}
	for _, view := range views {
		if _, _, err := readView(ctx, conn, db+"."+view); err != nil {
			return nil, err
		}
		var times []float64
		for range ViewRounds {
			ms, n, err := readView(ctx, conn, db+"."+view)
			if err != nil {
				return nil, err
			}
			times = append(times, ms)
			vt.Rows[view] = n
		}
		vt.Ms[view] = median(times)
	}
	return vt, nil
}

// waitMerges waits until system.merges lists no merge of db, or max.
func waitMerges(ctx context.Context, conn driver.Conn, db string, max time.Duration) error {
	deadline := time.Now().Add(max)
	for {
		var n uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM system.merges WHERE database = ?", db).Scan(&n); err != nil {
			return fmt.Errorf("cannot read system.merges: %w", err)
		}
		if n == 0 || time.Now().After(deadline) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// loadAverage is the machine's 1-minute load average, 0 when unknown.
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f, _ := strconv.ParseFloat(strings.Fields(string(b) + " 0")[0], 64)
	return f
}

// funnelhouseViews times every view on the database of the last verified
// funnelhouse run, before the latency phase re-creates it.
func (b *bench) funnelhouseViews(ctx context.Context) (*ViewTimes, error) {
	conn, db, err := chsink.Connect(ctx, b.cfg.Endpoint)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return timeViews(ctx, conn, db, fhsql.Views)
}

// storage measures a database at rest (merges settled): its active parts'
// bytes on disk per event, and, with a pipeline_state table, the bytes of
// its newest visitor rows per visitor.
func storage(ctx context.Context, conn driver.Conn, db string, events int64) (diskPerEvent, statePerVisitor float64, err error) {
	if err := waitMerges(ctx, conn, db, mergeWait); err != nil {
		return 0, 0, err
	}
	var disk uint64
	if err := conn.QueryRow(ctx, "SELECT sum(bytes_on_disk) FROM system.parts WHERE database = ? AND active", db).Scan(&disk); err != nil {
		return 0, 0, fmt.Errorf("cannot read system.parts: %w", err)
	}
	diskPerEvent = float64(disk) / float64(max(events, 1))
	var exists uint8
	if err := conn.QueryRow(ctx, "SELECT count() > 0 FROM system.tables WHERE database = ? AND name = 'pipeline_state'", db).Scan(&exists); err != nil || exists == 0 {
		return diskPerEvent, 0, err
	}
	var bytes, visitors uint64
	if err := conn.QueryRow(ctx, "SELECT sum(length(data)), count() FROM "+db+".pipeline_state FINAL WHERE kind = 'visitor'").Scan(&bytes, &visitors); err != nil {
		return diskPerEvent, 0, fmt.Errorf("cannot read pipeline_state: %w", err)
	}
	return diskPerEvent, float64(bytes) / float64(max(visitors, 1)), nil
}

// storage measures the database of the last funnelhouse run (suffix ""),
// or of a peer on the same server (its database's suffix).
func (b *bench) storage(ctx context.Context, suffix string, events int64) (float64, float64, error) {
	conn, db, err := chsink.Connect(ctx, b.cfg.Endpoint)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close()
	return storage(ctx, conn, db+suffix, events)
}

// printViewTimes writes the view query times of each result that has them.
func printViewTimes(w io.Writer, results []*Result) {
	for _, r := range results {
		if len(r.ViewQueryMs) == 0 {
			continue
		}
		fmt.Fprintf(w, "\nviews of the last %s run: every row read through the driver, median of %d reads after a warm-up (1-minute load average %.2f)\n",
			r.System, ViewRounds, r.ViewQueryLoad1)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  view\trows\tms")
		for _, view := range fhsql.Views {
			if ms, ok := r.ViewQueryMs[view]; ok {
				fmt.Fprintf(tw, "  %s\t%d\t%.0f\n", view, r.ViewRows[view], ms)
			}
		}
		tw.Flush()
	}
}
