package main

import (
	"context"
	"fmt"
	"time"

	"github.com/funnelhouse/funnelhouse/deploy/kafka"
)

func brokerCmd(ctx context.Context, args []string) error {
	fs := newFlagSet("broker", "Run the embedded Kafka-protocol broker (franz-go's kfake) on a loopback port, with the\ntwo input topics and the dead-letter topic created, until interrupted. Any Kafka\nclient (kcat, funnelhouse run) can produce to and consume from it.")
	listen := fs.String("listen", "127.0.0.1:9092", "loopback host:port to listen on (port 0 picks a free one)")
	partitions := fs.Int("partitions", 12, "partitions of each created topic")
	dataDir := fs.String("data-dir", "", "keep records and offsets in this directory across restarts (default: memory only)")
	var minSession time.Duration
	durationVar(fs, &minSession, "min-session-timeout", 6*time.Second, "smallest consumer group session timeout the broker accepts (Kafka's default 6s; lower it for fast failover tests)")
	var topics []string
	topics = []string{"clickstream", "transactions", "funnelhouse.dlq"}
	fs.Var(listFlag{&topics}, "topics", "topics to create, comma-separated")
	if err := parseWithEnv(fs, args); err != nil {
		return err
	}
	b, err := kafka.Start(ctx, kafka.Config{Listen: *listen, DataDir: *dataDir, Topics: topics, Partitions: *partitions, MinSessionTimeout: minSession})
	if err != nil {
		return err
	}
	defer b.Close()
	// The address line is the contract for scripts that start the broker.
	fmt.Printf("broker listening on %s (topics %v, %d partitions)\n", b.Addrs()[0], topics, *partitions)
	<-ctx.Done()
	return nil
}
