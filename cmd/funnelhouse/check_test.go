package main

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/funnelhouse/funnelhouse/deploy/kafka"
	chsink "github.com/funnelhouse/funnelhouse/sinks/clickhouse"
)

// TestRunCheck checks `run --check`: a ready setup passes; a missing
// migration, topics that are not co-partitioned and an unreachable broker
// each fail with a line that says what to fix.
func TestRunCheck(t *testing.T) {
	dsn := testDSN(t, "fh_check")
	ctx := context.Background()
	b := startBroker(t, 3, "ck.clickstream", "ck.transactions", "ck.dlq")
	if err := kafka.CreateTopics(ctx, b.Addrs(), 2, []string{"ck.transactions2"}); err != nil {
		t.Fatal(err)
	}
	check := func(extra ...string) (string, error) {
		fs := newFlagSet("run", "")
		var f pipelineFlags
		f.register(fs, true)
		args := append([]string{"--brokers", strings.Join(b.Addrs(), ","), "--clickhouse", dsn,
			"--clickstream-topic", "ck.clickstream", "--transactions-topic", "ck.transactions", "--dlq-topic", "ck.dlq"}, extra...)
		if err := parseWithEnv(fs, args); err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		err := checkRun(ctx, &out, &f)
		return out.String(), err
	}

	out, err := check()
	if !errors.Is(err, errCheckFailed) || !strings.Contains(out, "FAIL  migrations") || !strings.Contains(out, "run `funnelhouse migrate`") {
		t.Errorf("before migrate: got %v\n%s", err, out)
	}
	if err := migrate(ctx, chsink.Endpoint{DSN: dsn}); err != nil {
		t.Fatal(err)
	}
	if out, err = check(); err != nil || !strings.Contains(out, "verdict: ready to run") {
		t.Errorf("ready setup: got %v\n%s", err, out)
	}
	if out, err = check("--transactions-topic", "ck.transactions2"); err == nil || !strings.Contains(out, "not co-partitioned") {
		t.Errorf("3 vs 2 partitions: got %v\n%s", err, out)
	}
	if out, err = check("--brokers", freeAddr(t)); err == nil || !strings.Contains(out, "FAIL  kafka") || !strings.Contains(out, "cannot reach --brokers") {
		t.Errorf("no broker: got %v\n%s", err, out)
	}
	t.Logf("a failing check prints:\n%s", out)
}
