package main

import (
	"context"
	"fmt"
	"time"

	"github.com/funnelhouse/funnelhouse/bench/naive"
)

// naivePeerCmd runs bench/naive, the straightforward peer that bench
// measures, as a process of its own.
func naivePeerCmd(ctx context.Context, args []string) error {
	fs := newFlagSet("naive-peer", "The straightforward implementation funnelhouse bench compares against (bench/naive):\nencoding/json, a map per partition, row-by-row inserts. Consumes --records records, then exits.")
	var cfg naive.Config
	brokers := []string{"127.0.0.1:9092"}
	fs.Var(listFlag{&brokers}, "brokers", "Kafka bootstrap brokers, a comma-separated list of `host:port`")
	fs.StringVar(&cfg.DSN, "clickhouse", "clickhouse://default@127.0.0.1:9000/funnelhouse_naive", "ClickHouse `DSN`; the database is created")
	fs.StringVar(&cfg.Group, "group", "funnelhouse-naive", "consumer group")
	fs.StringVar(&cfg.ClickstreamTopic, "clickstream-topic", "clickstream", "clickstream topic")
	fs.StringVar(&cfg.TransactionsTopic, "transactions-topic", "transactions", "transactions topic")
	fs.Int64Var(&cfg.Records, "records", 0, "stop after this many records")
	if err := parseWithEnv(fs, args); err != nil {
		return err
	}
	cfg.Brokers = brokers
	cfg.SessionGap, cfg.ChurnAfter = 30*time.Minute, 90*24*time.Hour
	res, err := naive.Run(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Printf("naive: %d records, %d events, %d sessions, %d transitions in %s\n", res.Records, res.Events, res.Sessions, res.Transitions, res.Elapsed.Round(time.Millisecond))
	return nil
}
