// Package e2e runs the pipeline end to end on an embedded broker: produce
// generated traffic, run the pipeline until it has drained it, verify
// every view against the expected computation (bench/verify). demo and
// the tests share it; the pipeline itself is started by a function the
// caller gives, so that this package knows nothing of the command line.
package e2e

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/funnelhouse/funnelhouse/bench/expected"
	"github.com/funnelhouse/funnelhouse/bench/feed"
	"github.com/funnelhouse/funnelhouse/bench/progress"
	"github.com/funnelhouse/funnelhouse/bench/traffic"
	"github.com/funnelhouse/funnelhouse/bench/verify"
	"github.com/funnelhouse/funnelhouse/deploy/kafka"
	"github.com/funnelhouse/funnelhouse/pipeline"
	chsink "github.com/funnelhouse/funnelhouse/sinks/clickhouse"
	fhsql "github.com/funnelhouse/funnelhouse/sql"
)

// StartFunc runs the pipeline on brokers until ctx ends. It calls ready
// with the pipeline once it is built, before it consumes; it returns when
// the pipeline has shut down.
type StartFunc func(ctx context.Context, brokers []string, ready func(*pipeline.Pipeline)) error

// Run is one end-to-end run: the fields up to Start say what to run, the
// rest are its results, set by Do.
type Run struct {
	Endpoint chsink.Endpoint // its database is dropped and re-created first
	Group    string          // the pipeline's consumer group
	// The pipeline's topics; the embedded broker creates them.
	ClickstreamTopic, TransactionsTopic, DLQTopic string
	Rules                                         pipeline.Rules // of the expected computation: session gap, churn, lateness
	Start                                         StartFunc

	Traffic      traffic.Config   // its topics are set to the pipeline's
	Partitions   int              // of the embedded topics
	Quiet        bool             // no progress output
	RestartAt    []float64        // stop and restart the pipeline once this share of the records is committed
	Extra        []traffic.Record // produced before the generated traffic
	BrokerConfig kafka.Config     // extra settings of the embedded broker (TLS, SASL)

	// Results.
	Broker      *kafka.Broker // left running for inspection; the caller closes it
	Expect      *verify.Expectation
	Want        *expected.Result
	Stats       pipeline.Stats // of the last pipeline, cumulative: counters are restored with the state
	Produced    traffic.Stats
	ProduceTime time.Duration
	ConsumeTime time.Duration // until every record was read and its rows written
	DrainTime   time.Duration // until drained, including the idle advance
	Database    string
}

// Do does it all, with keep (when not nil) seeing every generated record
// (its slices are only valid during the call).
func (r *Run) Do(ctx context.Context, keep func(*traffic.Record)) error {
	if err := ResetDatabase(ctx, r.Endpoint, os.Stdout); err != nil {
		return err
	}
	bc := r.BrokerConfig
	bc.Listen, bc.Partitions = "127.0.0.1:0", r.Partitions
	bc.Topics = []string{r.ClickstreamTopic, r.TransactionsTopic, r.DLQTopic}
	b, err := kafka.Start(ctx, bc)
	if err != nil {
		return err
	}
	r.Broker = b
	brokers := b.Addrs()
	r.Traffic.ClickstreamTopic, r.Traffic.TransactionsTopic = r.ClickstreamTopic, r.TransactionsTopic

	r.Expect = verify.NewExpectation(r.ClickstreamTopic, r.TransactionsTopic, time.Now)
	if err := feed.Records(ctx, brokers, r.Extra, bc.ClientOpts...); err != nil {
		return err
	}
	for _, rec := range r.Extra {
		r.Expect.Add(rec.Topic, rec.Key, rec.Value)
	}
	start := time.Now()
	r.Produced, err = feed.Traffic(ctx, brokers, r.Traffic, func(rec *traffic.Record) {
		r.Expect.Add(rec.Topic, rec.Key, rec.Value)
		if keep != nil {
			keep(rec)
		}
	}, bc.ClientOpts...)
	if err != nil {
		return err
	}
	r.ProduceTime = time.Since(start)
	if err := r.runPipeline(ctx, brokers); err != nil {
		return err
	}
	r.Want = r.Expect.Compute(expected.Config{SessionGap: r.Rules.SessionGap, ChurnAfter: r.Rules.ChurnAfter, HorizonMs: time.Now().Add(-r.Rules.Lateness).UnixMilli()})
	conn, db, err := chsink.Connect(ctx, r.Endpoint)
	if err != nil {
		return err
	}
	defer conn.Close()
	r.Database = db
	if err := verify.Views(ctx, conn, db, r.Want, len(r.Expect.Events)); err != nil {
		return err
	}
	return verify.Accounting(ctx, conn, db, r.Group, r.Expect)
}

// runPipeline runs the pipeline until it has drained the produced records,
// then shuts it down gracefully. For each value in r.RestartAt it stops the
// pipeline gracefully once that share of the records is committed and starts a
// new one, which resumes from the checkpoint.
func (r *Run) runPipeline(ctx context.Context, brokers []string) error {
	total := r.Expect.Records
	committed, err := feed.NewCommitWatcher(brokers, r.BrokerConfig.ClientOpts, r.Group, r.ClickstreamTopic, r.TransactionsTopic)
	if err != nil {
		return err
	}
	defer committed.Close()
	prog := progress.New("pipeline", total)
	if r.Quiet {
		prog.Every = time.Hour
	}
	start := time.Now()
	restarts := r.RestartAt
	for {
		stopAt := int64(-1) // -1: run until drained
		if len(restarts) > 0 {
			stopAt, restarts = int64(restarts[0]*float64(total)), restarts[1:]
		}
		// Counters are restored with the state, so the last run's are
		// cumulative over all of them.
		r.Stats, err = r.runUntil(ctx, brokers, committed, prog, start, stopAt)
		if err != nil || stopAt < 0 {
			break
		}
	}
	if !r.Quiet {
		prog.Done(total)
	}
	return err
}

// runUntil runs one pipeline until stopAt records are committed, or until
// drained when stopAt < 0, and returns its stats.
func (r *Run) runUntil(ctx context.Context, brokers []string, committed *feed.CommitWatcher, prog *progress.Line, start time.Time, stopAt int64) (pipeline.Stats, error) {
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var pl *pipeline.Pipeline
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- r.Start(runCtx, brokers, func(p *pipeline.Pipeline) { pl = p; close(ready) })
	}()
	select {
	case err := <-done:
		return pipeline.Stats{}, err
	case <-ready:
	}
	for {
		select {
		case err := <-done:
			return pl.Totals(), fmt.Errorf("pipeline stopped early: %w", err)
		case <-time.After(50 * time.Millisecond):
		}
		n, err := committed.Records(ctx)
		if err != nil {
			continue
		}
		prog.Update(n)
		if stopAt >= 0 && n >= stopAt {
			break
		}
		if n >= r.Expect.Records && r.ConsumeTime == 0 {
			r.ConsumeTime = time.Since(start)
		}
		if stopAt < 0 && r.ConsumeTime > 0 && pl.Drained() {
			r.DrainTime = time.Since(start)
			break
		}
	}
	cancel()
	err := <-done
	return pl.Totals(), err
}

// ResetDatabase drops and re-creates the endpoint's database with every
// migration, saying on w what it applied: demo, bench and the tests start
// from nothing, as their broker does.
func ResetDatabase(ctx context.Context, e chsink.Endpoint, w io.Writer) error {
	conn, db, err := chsink.Connect(ctx, e)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+db); err != nil {
		return fmt.Errorf("cannot drop database %s: %w", db, err)
	}
	applied, err := fhsql.Migrate(ctx, conn, db)
	if err != nil {
		return err
	}
	fmt.Fprintln(w, fhsql.Applied(db, applied))
	return nil
}

// ResetClusterDatabase is ResetDatabase on a ClickHouse cluster: the
// endpoint's database is dropped on every server of cluster (ON CLUSTER)
// and migrated again in the cluster form (`migrate --cluster`), the other
// servers reached at the addresses system.clusters gives with e's
// credentials.
func ResetClusterDatabase(ctx context.Context, e chsink.Endpoint, cluster string, w io.Writer) error {
	if err := fhsql.ValidateIdentifier("cluster", cluster); err != nil {
		return err
	}
	conn, db, err := chsink.Connect(ctx, e)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := fhsql.ExecOnCluster(ctx, conn, "DROP DATABASE IF EXISTS "+db+" ON CLUSTER "+cluster); err != nil {
		return fmt.Errorf("cannot drop database %s on cluster %s: %w", db, cluster, err)
	}
	applied, err := fhsql.MigrateCluster(ctx, conn, db, fhsql.Cluster{Name: cluster, Dial: e.Dialer()})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%s (cluster %s)\n", fhsql.Applied(db, applied), cluster)
	return nil
}
