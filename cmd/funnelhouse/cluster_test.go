package main

// Tests of `run` on a ClickHouse cluster (issue 15): they need the
// cluster that `make test-cluster` starts with deploy/cluster.sh;
// FUNNELHOUSE_TEST_CLUSTER holds its DSNs, one per server, shard by shard,
// space separated. `make test` starts a small one (2 shards x 1 replica).

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	chsink "github.com/funnelhouse/funnelhouse/sinks/clickhouse"
)

// testCluster is the cluster's name in deploy/cluster.sh.
const testCluster = "funnelhouse"

// clusterDSNs returns the test cluster's server DSNs with db as their
// database, or skips.
func clusterDSNs(t *testing.T, db string) []string {
	t.Helper()
	env := strings.Fields(os.Getenv("FUNNELHOUSE_TEST_CLUSTER"))
	if len(env) == 0 {
		t.Skip("FUNNELHOUSE_TEST_CLUSTER is not set: run `make test-cluster` (or `make test`), which start a ClickHouse cluster")
	}
	var dsns []string
	for _, dsn := range env {
		dsn = strings.TrimRight(dsn, "/")
		if i := strings.LastIndex(dsn, "/"); i > len("clickhouse://") {
			dsn = dsn[:i]
		}
		dsns = append(dsns, fmt.Sprintf("%s/%s_%d", dsn, db, os.Getpid()))
	}
	return dsns
}

// resetClusterDatabase drops the DSN's database on every server and
// migrates it again with `migrate --cluster`.
func resetClusterDatabase(t *testing.T, bin, dsn, cluster string) {
	t.Helper()
	conn, db, err := chsink.Connect(context.Background(), chsink.Endpoint{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db+" ON CLUSTER "+cluster); err != nil {
		t.Fatalf("drop database %s on cluster %s: %v", db, cluster, err)
	}
	if out, err := exec.Command(bin, "migrate", "--clickhouse", dsn, "--cluster", cluster).CombinedOutput(); err != nil {
		t.Fatalf("migrate --cluster: %v\n%s", err, out)
	}
}

// TestClusterExact: 300k events through `run` into a cluster's
// Distributed tables; every view read on the cluster equals the expected
// computation, every record is counted once, and every shard holds rows
// (of its own visitors only: a visitor's rows on one shard).
func TestClusterExact(t *testing.T) {
	dsns := clusterDSNs(t, "fh_clexact")
	r := newRig(t, dsns[0], "clexact", 300_000, 4, "", testCluster)
	m := r.start(nil)
	waitFor(t, "every record committed", 3*time.Minute, func() bool {
		select {
		case err := <-m.exited:
			t.Fatalf("the member exited: %v", err)
		default:
		}
		return r.committed() >= r.expect.Records
	})
	r.waitDrained(3 * time.Minute)
	m.stop(t, 30*time.Second)
	r.verify()
	checkShards(t, dsns)
}

// checkShards checks that every server holds events, only of the visitors
// of its shard: cityHash64(visitor_id) modulo the shards (all of weight
// 1) is the shard's index, as the pipeline's Distributed inserts place them.
func checkShards(t *testing.T, dsns []string) {
	t.Helper()
	ctx := context.Background()
	for _, dsn := range dsns {
		conn, db, err := chsink.Connect(ctx, chsink.Endpoint{DSN: dsn})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		var shard, shards uint32
		if err := conn.QueryRow(ctx, "SELECT anyIf(shard_num, is_local = 1), max(shard_num) FROM system.clusters WHERE cluster = ?", testCluster).Scan(&shard, &shards); err != nil {
			t.Fatal(err)
		}
		var rows, elsewhere uint64
		q := fmt.Sprintf("SELECT count(), countIf(cityHash64(visitor_id) %% %d != %d) FROM %s.events_local", shards, shard-1, db)
		if err := conn.QueryRow(ctx, q).Scan(&rows, &elsewhere); err != nil {
			t.Fatal(err)
		}
		t.Logf("shard %d of %d (%s): %d events rows", shard, shards, dsn, rows)
		if rows == 0 || elsewhere > 0 {
			t.Errorf("shard %d holds %d events rows, %d of them of another shard's visitors; want some, and none", shard, rows, elsewhere)
		}
	}
}
