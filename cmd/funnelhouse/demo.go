package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/funnelhouse/funnelhouse/bench/e2e"
	"github.com/funnelhouse/funnelhouse/bench/traffic"
	"github.com/funnelhouse/funnelhouse/pipeline"
	"github.com/funnelhouse/funnelhouse/sql/report"
)

const demoDSN = "clickhouse://default@127.0.0.1:9000/funnelhouse_demo"

// e2eRun is an end-to-end run (bench/e2e) of the pipeline as run's flags
// in pf configure it; demo and the tests use it.
type e2eRun struct {
	e2e.Run
	pf pipelineFlags
}

// run does it all; the broker is left running for inspection until
// r.Broker.Close.
func (r *e2eRun) run(ctx context.Context) error { return r.runWith(ctx, nil) }

// runWith is run with keep seeing every generated record.
func (r *e2eRun) runWith(ctx context.Context, keep func(*traffic.Record)) error {
	endpoint, err := r.pf.endpoint()
	if err != nil {
		return err
	}
	cfg := &r.pf.cfg
	r.Endpoint, r.Group, r.Rules = endpoint, cfg.Group, cfg.Rules
	r.ClickstreamTopic, r.TransactionsTopic, r.DLQTopic = cfg.ClickstreamTopic, cfg.TransactionsTopic, cfg.DLQTopic
	r.Start = func(ctx context.Context, brokers []string, ready func(*pipeline.Pipeline)) error {
		cfg.Brokers = brokers
		return runPipeline(ctx, &r.pf, ready)
	}
	return r.Do(ctx, keep)
}

func demoCmd(ctx context.Context, args []string) error {
	fs := newFlagSet("demo", "The main job on the embedded default: an in-process Kafka-protocol broker, generated\ntraffic, the pipeline writing to the local ClickHouse until it has drained the traffic, a\ncheck of every view against the independent expected computation, then the funnel,\nbounce and churn tables. The DSN's database is dropped and re-created first.")
	var r e2eRun
	r.pf.register(fs, false)
	var tf trafficFlags
	tf.register(fs, 1_000_000)
	fs.IntVar(&r.Partitions, "partitions", 4, "partitions of the embedded topics")
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
	if r.Traffic, err = tf.config("clickstream", "transactions"); err != nil {
		return err
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	err = r.run(ctx)
	if r.Broker != nil {
		defer r.Broker.Close()
	}
	if err != nil {
		return err
	}
	conn, db, err := r.pf.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := report.PrintSummary(ctx, os.Stdout, conn, db); err != nil {
		return err
	}
	valid := len(r.Expect.Events)
	fmt.Printf("\n%d records produced in %s: %d valid events, %d duplicates (dropped), %d malformed (dead-lettered)\n",
		r.Expect.Records, r.ProduceTime.Round(time.Millisecond), valid, r.Expect.Duplicates, r.Expect.RejectedTotal())
	fmt.Printf("pipeline: read and wrote every record in %s: %.0f events/s (%.0f records/s); drained in %s (includes the %s idle advance)\n",
		r.ConsumeTime.Round(time.Millisecond), float64(valid)/r.ConsumeTime.Seconds(), float64(r.Expect.Records)/r.ConsumeTime.Seconds(),
		r.DrainTime.Round(time.Millisecond), r.pf.cfg.Rules.IdleAdvance)
	fmt.Printf("check: every view (the four and the catalogue of SPEC §6.1), sessions, lifecycle_transitions and events equal the expected computation,\n       and every record is counted once: an event row, a dead letter or a duplicate (database %s)\n", db)
	return nil
}
