package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/funnelhouse/funnelhouse/pipeline/status"
)

// errStuck makes `status` exit non-zero; the report says which partitions.
var errStuck = errors.New("stuck partitions")

func statusCmd(ctx context.Context, args []string) error {
	fs := newFlagSet("status", "Report a consumer group of `funnelhouse run`, from the broker and ClickHouse: per partition its\nowner, committed and end offsets, lag, last checkpoint (epoch, age), state bytes and held events;\nthen per view its rows and newest day. Exits 1 when a partition is stuck: it has unread records and\nno owner, or no checkpoint for --stuck-after. Takes run's flags (and FUNNELHOUSE_* variables).")
	var f pipelineFlags
	f.register(fs, true)
	asJSON := fs.Bool("json", false, "print JSON instead of tables")
	stuckAfter := fs.Duration("stuck-after", time.Minute, "a lagging partition whose newest checkpoint is older than this is stuck")
	if err := parseWithEnv(fs, args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	adm, closeAdm, err := f.admin()
	if err != nil {
		return err
	}
	defer closeAdm()
	conn, db, err := f.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	rep, err := status.Gather(ctx, status.Config{Admin: adm, Conn: conn, Database: db, Group: f.cfg.Group,
		Topics: [2]string{f.cfg.ClickstreamTopic, f.cfg.TransactionsTopic}, StuckAfter: *stuckAfter})
	if err != nil {
		return wrapBrokers(&f, err)
	}
	if *asJSON {
		err = rep.WriteJSON(os.Stdout)
	} else {
		err = rep.WriteText(os.Stdout)
	}
	if err != nil {
		return err
	}
	if stuck := rep.Stuck(); len(stuck) > 0 {
		return fmt.Errorf("%w: %v (unread records and no owner, or no checkpoint for %s)", errStuck, stuck, *stuckAfter)
	}
	return nil
}

// admin is a Kafka admin client for the flags' brokers and security.
func (f *pipelineFlags) admin() (*kadm.Client, func(), error) {
	kafkaOpts, err := f.kafka.opts()
	if err != nil {
		return nil, nil, err
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(f.cfg.Brokers...)}, kafkaOpts...)...)
	if err != nil {
		return nil, nil, wrapBrokers(f, err)
	}
	return kadm.NewClient(cl), cl.Close, nil
}
