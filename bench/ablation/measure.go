package ablation

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/funnelhouse/funnelhouse/bench/perf"
	chsink "github.com/funnelhouse/funnelhouse/sinks/clickhouse"
	fhsql "github.com/funnelhouse/funnelhouse/sql"
)

// Measure is one measurement of one step. CPU is the server's, in seconds,
// with its idle rate subtracted.
type Measure struct {
	Seconds   float64 `json:"seconds"`    // from the first insert until merges settled
	InsertCPU float64 `json:"insert_cpu"` // until the last insert was acknowledged
	MergeCPU  float64 `json:"merge_cpu"`  // after that, until the merges settled
	Parts     uint64  `json:"parts"`      // active parts once settled
}

// CPU is the measurement's total.
func (m Measure) CPU() float64 { return m.InsertCPU + m.MergeCPU }

// server is the ClickHouse being measured.
type server struct {
	endpoint chsink.Endpoint
	conn     driver.Conn
	db       string  // dropped and re-created for every measurement
	pid      int     // for its CPU seconds
	idle     float64 // its CPU seconds per second when nothing is sent
	// settleFor is how long the database must have no merge running and
	// the same active parts before it counts as settled: the background
	// pool picks a new merge within about a second of the last one ending.
	settleFor time.Duration
}

// cpu is the server's CPU seconds so far.
func (s *server) cpu() float64 { return perf.CPUSeconds(s.pid) }

// measureIdle sets the server's idle CPU rate over d, so that each
// measurement can subtract what the server spends anyway (its own
// background threads, system logs).
func (s *server) measureIdle(d time.Duration) {
	before, start := s.cpu(), time.Now()
	time.Sleep(d)
	s.idle = (s.cpu() - before) / time.Since(start).Seconds()
}

// run measures send: the server's CPU from its start until the database's
// merges settle after it returned, net of the idle rate.
func (s *server) run(ctx context.Context, send func() error) (Measure, error) {
	var m Measure
	before, start := s.cpu(), time.Now()
	if err := send(); err != nil {
		return m, err
	}
	sent, sentAt := s.cpu(), time.Now()
	parts, err := s.settle(ctx)
	if err != nil {
		return m, err
	}
	end := time.Now()
	m.InsertCPU = sent - before - s.idle*sentAt.Sub(start).Seconds()
	m.MergeCPU = s.cpu() - sent - s.idle*end.Sub(sentAt).Seconds()
	m.Seconds, m.Parts = end.Sub(start).Seconds(), parts
	return m, nil
}

// settle waits until no merge of the database runs and its active parts
// stayed the same for s.settleFor, and returns their number.
func (s *server) settle(ctx context.Context) (uint64, error) {
	deadline := time.Now().Add(10 * time.Minute)
	var last uint64
	stableSince := time.Now()
	for {
		var merges, parts uint64
		if err := s.conn.QueryRow(ctx, "SELECT count() FROM system.merges WHERE database = ?", s.db).Scan(&merges); err != nil {
			return 0, fmt.Errorf("cannot read system.merges: %w", err)
		}
		if err := s.conn.QueryRow(ctx, "SELECT count() FROM system.parts WHERE database = ? AND active", s.db).Scan(&parts); err != nil {
			return 0, fmt.Errorf("cannot read system.parts: %w", err)
		}
		if merges > 0 || parts != last {
			last, stableSince = parts, time.Now()
		} else if time.Since(stableSince) >= s.settleFor {
			return parts, nil
		}
		if time.Now().After(deadline) {
			return parts, fmt.Errorf("merges of %s did not settle in 10 minutes", s.db)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// reset drops and re-creates the database with every migration, then
// drops the materialised views the step leaves out.
func (s *server) reset(ctx context.Context, step Step) error {
	if err := s.conn.Exec(ctx, "DROP DATABASE IF EXISTS "+s.db); err != nil {
		return err
	}
	if _, err := fhsql.Migrate(ctx, s.conn, s.db); err != nil {
		return err
	}
	views, err := MaterializedViews()
	if err != nil {
		return err
	}
	keep := map[string]bool{}
	for _, v := range step.Views {
		keep[v] = true
	}
	for _, v := range views {
		if !keep[v] {
			if err := s.conn.Exec(ctx, "DROP TABLE "+s.db+"."+v); err != nil {
				return fmt.Errorf("cannot drop view %s: %w", v, err)
			}
		}
	}
	return nil
}

// measureStep inserts the workload's batches of the step's tables, each
// write as the pipeline's sink sends it, into a fresh database.
func (s *server) measureStep(ctx context.Context, step Step, w *Workload) (Measure, error) {
	if err := s.reset(ctx, step); err != nil {
		return Measure{}, err
	}
	if _, err := s.settle(ctx); err != nil {
		return Measure{}, err
	}
	sink, err := chsink.Open(ctx, chsink.Config{Endpoint: s.endpoint})
	if err != nil {
		return Measure{}, err
	}
	defer sink.Close()
	return s.run(ctx, func() error {
		for _, batches := range w.Writes {
			if err := sink.WriteTables(ctx, batches, step.Tables); err != nil {
				return err
			}
		}
		return nil
	})
}
