package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/funnelhouse/funnelhouse/bench/expected"
	"github.com/funnelhouse/funnelhouse/bench/traffic"
	"github.com/funnelhouse/funnelhouse/deploy/kafka"
	"github.com/funnelhouse/funnelhouse/pipeline"
	chsink "github.com/funnelhouse/funnelhouse/sinks/clickhouse"
	"github.com/funnelhouse/funnelhouse/sql/report"
)

const demoDSN = "clickhouse://default@127.0.0.1:9000/funnelhouse_demo"

// e2eRun is one end-to-end run on an embedded broker: produce generated
// traffic, run the pipeline until drained, verify against the expected
// computation. demo, bench and the tests share it.
type e2eRun struct {
	pf         pipelineFlags
	traffic    traffic.Config
	partitions int
	quiet      bool             // no progress output
	restartAt  []float64        // stop and restart the pipeline once this share of the records is committed
	extra      []traffic.Record // produced before the generated traffic
	brokerCfg  kafka.Config     // extra settings of the embedded broker (TLS, SASL)

	// results
	broker      *kafka.Broker
	expect      *expectation
	want        *expected.Result
	stats       pipeline.Stats
	produced    traffic.Stats
	produceTime time.Duration
	consumeTime time.Duration // until every record was read and its rows written
	drainTime   time.Duration // until drained, including the idle advance
	database    string
}

// run does it all; the broker is left running for inspection until
// r.broker.Close.
func (r *e2eRun) run(ctx context.Context) error { return r.runWith(ctx, nil) }

// runWith is run with keep seeing every generated record.
func (r *e2eRun) runWith(ctx context.Context, keep func(*traffic.Record)) error {
	cfg := &r.pf.cfg
	endpoint, err := r.pf.endpoint()
	if err != nil {
		return err
	}
	if err := resetDatabase(ctx, endpoint); err != nil {
		return err
	}
	bc := r.brokerCfg
	bc.Listen, bc.Partitions = "127.0.0.1:0", r.partitions
	bc.Topics = []string{cfg.ClickstreamTopic, cfg.TransactionsTopic, cfg.DLQTopic}
	b, err := kafka.Start(ctx, bc)
	if err != nil {
		return err
	}
	r.broker = b
	cfg.Brokers = b.Addrs()
	r.traffic.ClickstreamTopic, r.traffic.TransactionsTopic = cfg.ClickstreamTopic, cfg.TransactionsTopic

	r.expect = newExpectation(cfg.ClickstreamTopic, cfg.TransactionsTopic, time.Now)
	if err := produceRecords(ctx, cfg.Brokers, r.extra, bc.ClientOpts...); err != nil {
		return err
	}
	for _, rec := range r.extra {
		r.expect.add(rec.Topic, rec.Key, rec.Value)
	}
	start := time.Now()
	r.produced, err = produceTraffic(ctx, cfg.Brokers, r.traffic, func(rec *traffic.Record) {
		r.expect.add(rec.Topic, rec.Key, rec.Value)
		if keep != nil {
			keep(rec)
		}
	}, bc.ClientOpts...)
	if err != nil {
		return err
	}
	r.produceTime = time.Since(start)
	if err := r.runPipeline(ctx); err != nil {
		return err
	}
	r.want = expected.Compute(r.expect.events, expected.Config{SessionGap: cfg.Rules.SessionGap, ChurnAfter: cfg.Rules.ChurnAfter, HorizonMs: time.Now().Add(-cfg.Rules.Lateness).UnixMilli()})
	conn, db, err := chsink.Connect(ctx, endpoint)
	if err != nil {
		return err
	}
	defer conn.Close()
	r.database = db
	if err := verifyViews(ctx, conn, db, r.want, len(r.expect.events)); err != nil {
		return err
	}
	return checkAccounting(ctx, conn, db, cfg.Group, r.expect)
}

// runPipeline runs the pipeline until it has drained the produced records,
// then shuts it down gracefully. For each value in r.restartAt it stops the
// pipeline gracefully once that share of the records is committed and starts a
// new one, which resumes from the checkpoint.
func (r *e2eRun) runPipeline(ctx context.Context) error {
	total := r.expect.records
	committed, err := newCommitWatcher(r.pf.cfg.Brokers, r.brokerCfg.ClientOpts, r.pf.cfg.Group, r.pf.cfg.ClickstreamTopic, r.pf.cfg.TransactionsTopic)
	if err != nil {
		return err
	}
	defer committed.close()
	prog := newProgress("pipeline", total)
	if r.quiet {
		prog.every = time.Hour
	}
	start := time.Now()
	restarts := r.restartAt
	for {
		stopAt := int64(-1) // -1: run until drained
		if len(restarts) > 0 {
			stopAt, restarts = int64(restarts[0]*float64(total)), restarts[1:]
		}
		// Counters are restored with the state, so the last run's are
		// cumulative over all of them.
		r.stats, err = r.runUntil(ctx, committed, prog, start, stopAt)
		if err != nil || stopAt < 0 {
			break
		}
	}
	if !r.quiet {
		prog.done(total)
	}
	return err
}

// runUntil runs one pipeline until stopAt records are committed, or until
// drained when stopAt < 0, and returns its stats.
func (r *e2eRun) runUntil(ctx context.Context, committed *commitWatcher, prog *progress, start time.Time, stopAt int64) (pipeline.Stats, error) {
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var pl *pipeline.Pipeline
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- runPipeline(runCtx, &r.pf, func(p *pipeline.Pipeline) { pl = p; close(ready) })
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
		n, err := committed.records(ctx)
		if err != nil {
			continue
		}
		prog.update(n)
		if stopAt >= 0 && n >= stopAt {
			break
		}
		if n >= r.expect.records && r.consumeTime == 0 {
			r.consumeTime = time.Since(start)
		}
		if stopAt < 0 && r.consumeTime > 0 && pl.Drained() {
			r.drainTime = time.Since(start)
			break
		}
	}
	cancel()
	err := <-done
	return pl.Totals(), err
}

// commitWatcher reads how many input records a group has committed.
type commitWatcher struct {
	cl     *kgo.Client
	adm    *kadm.Client
	group  string
	topics map[string]bool
}

func newCommitWatcher(brokers []string, opts []kgo.Opt, group string, topics ...string) (*commitWatcher, error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...)
	if err != nil {
		return nil, err
	}
	w := &commitWatcher{cl: cl, adm: kadm.NewClient(cl), group: group, topics: map[string]bool{}}
	for _, t := range topics {
		w.topics[t] = true
	}
	return w, nil
}

// records is the sum of the committed offsets of the input topics: the
// records read and written, as offsets start at 0.
func (w *commitWatcher) records(ctx context.Context) (int64, error) {
	offs, err := w.adm.FetchOffsets(ctx, w.group)
	if err != nil {
		return 0, err
	}
	var n int64
	offs.Each(func(o kadm.OffsetResponse) {
		if w.topics[o.Topic] && o.Err == nil && o.At > 0 {
			n += o.At
		}
	})
	return n, nil
}

func (w *commitWatcher) close() { w.cl.Close() }

// resetDatabase drops and re-creates the DSN's database: demo and bench
// start from nothing, as their broker does.
func resetDatabase(ctx context.Context, e chsink.Endpoint) error {
	conn, db, err := chsink.Connect(ctx, e)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+db); err != nil {
		return fmt.Errorf("cannot drop database %s: %w", db, err)
	}
	return migrate(ctx, e)
}

func demoCmd(ctx context.Context, args []string) error {
	fs := newFlagSet("demo", "The main job on the embedded default: an in-process Kafka-protocol broker, generated\ntraffic, the pipeline writing to the local ClickHouse until it has drained the traffic, a\ncheck of every view against the independent expected computation, then the funnel,\nbounce and churn tables. The DSN's database is dropped and re-created first.")
	var r e2eRun
	r.pf.register(fs, false)
	var tf trafficFlags
	tf.register(fs, 1_000_000)
	fs.IntVar(&r.partitions, "partitions", 4, "partitions of the embedded topics")
	fs.Lookup("clickhouse").DefValue = demoDSN
	_ = fs.Set("clickhouse", demoDSN)
	_ = fs.Set("idle-advance", "2s")
	fs.Lookup("idle-advance").DefValue = "2s"
	_ = fs.Set("metrics-addr", "")
	fs.Lookup("metrics-addr").DefValue = ""
	if err := parseWithEnv(fs, args); err != nil {
		return err
	}
	r.pf.cfg.Group = "funnelhouse-demo"
	r.pf.cfg.ClickstreamTopic, r.pf.cfg.TransactionsTopic, r.pf.cfg.DLQTopic = "clickstream", "transactions", "funnelhouse.dlq"
	var err error
	if r.traffic, err = tf.config("clickstream", "transactions"); err != nil {
		return err
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	err = r.run(ctx)
	if r.broker != nil {
		defer r.broker.Close()
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	if err != nil {
		return err
	}
	endpoint, err := r.pf.endpoint()
	if err != nil {
		return err
	}
	conn, db, err := chsink.Connect(ctx, endpoint)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := report.PrintSummary(ctx, os.Stdout, conn, db); err != nil {
		return err
	}
	valid := len(r.expect.events)
	fmt.Printf("\n%d records produced in %s: %d valid events, %d duplicates (dropped), %d malformed (dead-lettered)\n",
		r.expect.records, r.produceTime.Round(time.Millisecond), valid, r.expect.duplicates, r.expect.rejectedTotal())
	fmt.Printf("pipeline: read and wrote every record in %s: %.0f events/s (%.0f records/s); drained in %s (includes the %s idle advance)\n",
		r.consumeTime.Round(time.Millisecond), float64(valid)/r.consumeTime.Seconds(), float64(r.expect.records)/r.consumeTime.Seconds(),
		r.drainTime.Round(time.Millisecond), r.pf.cfg.Rules.IdleAdvance)
	fmt.Printf("check: every view (the four and the catalogue of SPEC §6.1), sessions, lifecycle_transitions and events equal the expected computation,\n       and every record is counted once: an event row, a dead letter or a duplicate (database %s)\n", db)
	return nil
}
