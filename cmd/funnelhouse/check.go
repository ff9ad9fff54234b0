package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/funnelhouse/funnelhouse/pipeline"
	chsink "github.com/funnelhouse/funnelhouse/sinks/clickhouse"
	fhsql "github.com/funnelhouse/funnelhouse/sql"
)

// errCheckFailed is returned by run --check when a check failed; the
// checks have printed why.
var errCheckFailed = errors.New("configuration check failed")

// checkRun validates run's configuration and its connections without
// consuming anything, printing one line per check and a verdict.
func checkRun(ctx context.Context, w io.Writer, f *pipelineFlags) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	failed := 0
	report := func(name string, err error, ok string) bool {
		if err != nil {
			failed++
			fmt.Fprintf(w, "FAIL  %-11s %v\n", name, err)
			return false
		}
		fmt.Fprintf(w, "ok    %-11s %s\n", name, ok)
		return true
	}

	kafkaOpts, err := f.kafka.opts()
	if err == nil {
		err = f.cfg.ValidateNames()
	}
	if err == nil {
		cfg := f.cfg
		_, err = pipeline.New(cfg, nil)
	}
	endpoint, epErr := f.endpoint()
	report("config", errors.Join(flagErrors(err), epErr), "flags and environment are valid")

	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(f.cfg.Brokers...)}, kafkaOpts...)...)
	if err == nil {
		defer cl.Close()
		adm := kadm.NewClient(cl)
		var brokers kadm.BrokerDetails
		brokers, err = adm.ListBrokers(ctx)
		if report("kafka", wrapBrokers(f, err), fmt.Sprintf("reached %s (%d broker(s))", strings.Join(f.cfg.Brokers, ","), len(brokers))) {
			n, err := pipeline.CheckTopics(ctx, adm, f.cfg.ClickstreamTopic, f.cfg.TransactionsTopic, f.cfg.DLQTopic)
			report("topics", flagErrors(err), fmt.Sprintf("%s and %s have %d partitions each; %s exists", f.cfg.ClickstreamTopic, f.cfg.TransactionsTopic, n, f.cfg.DLQTopic))
		}
	} else {
		report("kafka", err, "")
	}

	if epErr == nil {
		conn, db, err := chsink.Connect(ctx, endpoint)
		if report("clickhouse", err, "reached "+endpoint.DSN[strings.LastIndex(endpoint.DSN, "@")+1:]) {
			defer conn.Close()
			report("migrations", fhsql.CheckMigrated(ctx, conn, db), "database "+db+" is up to date")
		}
	}
	if failed > 0 {
		fmt.Fprintf(w, "verdict: NOT READY, %d check(s) failed\n", failed)
		return errCheckFailed
	}
	fmt.Fprintln(w, "verdict: ready to run")
	return nil
}

func wrapBrokers(f *pipelineFlags, err error) error {
	if err == nil {
		return nil
	}
	return f.kafka.saslHint(fmt.Errorf("cannot reach --brokers %s: %w", strings.Join(f.cfg.Brokers, ","), err))
}
