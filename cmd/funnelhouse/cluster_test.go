package main

// Tests of `run` on a ClickHouse cluster (issue 15): they need the
// cluster that `make test-cluster` starts with deploy/cluster.sh;
// FUNNELHOUSE_TEST_CLUSTER holds its DSNs, one per server, shard by shard,
// space separated. `make test` starts a small one (2 shards x 1 replica).

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	chsink "github.com/funnelhouse/funnelhouse/sinks/clickhouse"
	fhsql "github.com/funnelhouse/funnelhouse/sql"
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

// TestClusterExact: 300k events through `run` into a cluster, once with
// each --cluster-insert mode (direct: split by the sharding key into the
// shards' local tables; distributed: through the Distributed tables);
// every view read on the cluster equals the expected computation, every
// record is counted once, and every shard holds rows (of its own visitors
// only: a visitor's rows on one shard, where ClickHouse's own
// cityHash64(visitor_id) puts them).
func TestClusterExact(t *testing.T) {
	for _, mode := range chsink.ClusterInsertModes {
		t.Run(mode, func(t *testing.T) {
			dsns := clusterDSNs(t, "fh_clexact_"+mode)
			r := newRig(t, dsns[0], "clexact"+mode, 300_000, 4, "", testCluster)
			m := r.start(nil, "--cluster-insert", mode)
			r.waitAllCommitted(m, 3*time.Minute)
			r.waitDrained(3 * time.Minute)
			m.stop(t, 30*time.Second)
			r.verify()
			checkShards(t, dsns)
		})
	}
}

// eventsLocal is the replicated table under the Distributed events table
// (events_0006_local since migration 0006 rebuilt it).
func eventsLocal(t *testing.T) string {
	t.Helper()
	local, err := fhsql.LocalTable("events")
	if err != nil {
		t.Fatal(err)
	}
	return local
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
		q := fmt.Sprintf("SELECT count(), countIf(cityHash64(visitor_id) %% %d != %d) FROM %s.%s", shards, shard-1, db, eventsLocal(t))
		if err := conn.QueryRow(ctx, q).Scan(&rows, &elsewhere); err != nil {
			t.Fatal(err)
		}
		t.Logf("shard %d of %d (%s): %d events rows", shard, shards, dsn, rows)
		if rows == 0 || elsewhere > 0 {
			t.Errorf("shard %d holds %d events rows, %d of them of another shard's visitors; want some, and none", shard, rows, elsewhere)
		}
	}
}

// clusterDir is the test cluster's deploy/cluster.sh directory, or skips.
func clusterDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("FUNNELHOUSE_TEST_CLUSTER_DIR")
	if dir == "" {
		t.Skip("FUNNELHOUSE_TEST_CLUSTER_DIR is not set: run `make test-cluster` (or `make test`)")
	}
	return dir
}

// ownCluster starts a cluster of the test's own (ZooKeeper and shards x
// replicas servers, deploy/cluster.sh) for a test that hangs ZooKeeper or
// kills a server: the shared test cluster serves other packages' tests at
// the same time. It returns the servers' DSNs with db as their database,
// and the cluster's directory; the cluster is stopped at the end of the
// test. It skips unless the cluster tests were asked for.
func ownCluster(t *testing.T, db string, shards, replicas int) ([]string, string) {
	t.Helper()
	clusterDSNs(t, db) // skips unless FUNNELHOUSE_TEST_CLUSTER is set
	dir := t.TempDir()
	script := "../../deploy/cluster.sh"
	start := exec.Command("bash", script, "start", dir, "--shards", strconv.Itoa(shards), "--replicas", strconv.Itoa(replicas))
	var stderr bytes.Buffer
	start.Stderr = &stderr
	out, err := start.Output()
	t.Cleanup(func() {
		if out, err := exec.Command("bash", script, "stop", dir).CombinedOutput(); err != nil {
			t.Logf("stopping the test's cluster: %v\n%s", err, out)
		}
	})
	if err != nil {
		t.Fatalf("cluster.sh start: %v\n%s", err, stderr.String())
	}
	var dsns []string
	for _, dsn := range strings.Fields(string(out)) {
		dsns = append(dsns, fmt.Sprintf("%s%s_%d", dsn, db, os.Getpid()))
	}
	return dsns, dir
}

// TestClusterZooKeeperOutage: ZooKeeper hangs (SIGSTOP) for 30 s while
// `run` writes 500k events to the cluster, and the member is killed with
// SIGKILL in the middle of it, its inserts failing; a new member takes
// over. Inserts into replicated tables fail or wait while ZooKeeper is
// away; no offset may be committed past rows not written (ClickHouse's own
// Kafka engine loses messages here: ClickHouse#9378). Once ZooKeeper is
// back, every view equals the expected computation and every record is
// counted once.
func TestClusterZooKeeperOutage(t *testing.T) {
	dsns, dir := ownCluster(t, "fh_clzk", 2, 1)
	r := newRig(t, dsns[0], "clzk", 500_000, 4, "", testCluster)
	pidText, err := os.ReadFile(filepath.Join(dir, "zk", "pid"))
	if err != nil {
		t.Fatal(err)
	}
	zk, err := strconv.Atoi(strings.TrimSpace(string(pidText)))
	if err != nil {
		t.Fatalf("ZooKeeper pid: %v", err)
	}
	m := r.start(nil)
	waitCommitted(t, r, r.expect.Records/10)
	if err := syscall.Kill(zk, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			_ = syscall.Kill(zk, syscall.SIGCONT)
		}
	}
	t.Cleanup(resume)
	stopped, before := time.Now(), r.committed()
	time.Sleep(12 * time.Second)
	m.kill()
	during := r.committed()
	m2 := r.start(nil)
	time.Sleep(time.Until(stopped.Add(30 * time.Second)))
	resume()
	t.Logf("ZooKeeper hung for %s: %d records committed before, %d when the member was killed 12 s in, of %d",
		time.Since(stopped).Round(time.Second), before, during, r.expect.Records)
	r.waitAllCommitted(m2, 4*time.Minute)
	r.waitDrained(3 * time.Minute)
	m2.stop(t, 30*time.Second)
	r.verify()
	checkShards(t, dsns)
	if log, err := os.ReadFile(m2.log); err == nil {
		t.Logf("the new member retried %d inserts", strings.Count(string(log), "insert failed, retrying"))
	}
}

// hasReplicas reports whether the shared test cluster in dir has 2
// replicas per shard: `make test-cluster`, which has the time for this
// test's own 2 x 2 cluster.
func hasReplicas(dir string) bool {
	shape, err := os.ReadFile(filepath.Join(dir, "shape"))
	var shards, replicas int
	_, scanErr := fmt.Sscan(string(shape), &shards, &replicas)
	return err == nil && scanErr == nil && replicas >= 2
}

// TestClusterReplicaKilled: the first replica of shard 1 is killed with
// SIGKILL while `run` writes 500k events, and restarted 15 s later; once
// per --cluster-insert mode. The member's DSN is shard 1's second replica.
// Direct inserts, which go to each shard's first replica, fail over to the
// second; Distributed inserts from the second replica write shard 1
// locally. The restarted replica catches up. Every view equals the
// expected computation, every record is counted once, and both replicas
// of shard 1 end with the same rows. It needs 2 replicas (make
// test-cluster).
func TestClusterReplicaKilled(t *testing.T) {
	if shape := os.Getenv("FUNNELHOUSE_TEST_CLUSTER_DIR"); shape == "" || !hasReplicas(shape) {
		t.Skip("a test of the 2 x 2 cluster run: make test-cluster")
	}
	for _, mode := range chsink.ClusterInsertModes {
		t.Run(mode, func(t *testing.T) { replicaKilled(t, mode) })
	}
}

func replicaKilled(t *testing.T, mode string) {
	dsns, dir := ownCluster(t, "fh_clreplica_"+mode, 2, 2)
	victim := filepath.Join(dir, "s1r1")
	r := newRig(t, dsns[1], "clreplica"+mode, 500_000, 4, "", testCluster)
	m := r.start(nil, "--cluster-insert", mode)
	waitCommitted(t, r, r.expect.Records/10)
	clickhouse := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("bash", append([]string{"../../deploy/clickhouse.sh"}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("clickhouse.sh %v: %v\n%s", args, err, out)
		}
	}
	pidText, err := os.ReadFile(filepath.Join(victim, "pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(pidText)))
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := r.committed()
	time.Sleep(15 * time.Second)
	// As an operator restarts a replica killed mid-insert: 18.16 refuses
	// to attach a replicated table whose local parts differ too much from
	// ZooKeeper's list unless told to restore it from its peers.
	if err := os.MkdirAll(filepath.Join(victim, "data", "flags"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(victim, "data", "flags", "force_restore_data"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	clickhouse("start", victim)
	t.Logf("replica s1r1 killed at %d records committed, restarted 15 s later at %d, of %d", killed, r.committed(), r.expect.Records)
	r.waitAllCommitted(m, 4*time.Minute)
	r.waitDrained(3 * time.Minute)
	m.stop(t, 30*time.Second)
	r.verify()
	checkShards(t, dsns)
	if log, err := os.ReadFile(m.log); err == nil {
		t.Logf("the member retried %d inserts", strings.Count(string(log), "insert failed, retrying"))
	}
	// The restarted replica catches up with its peer.
	count := func(dsn string) uint64 {
		conn, db, err := chsink.Connect(context.Background(), chsink.Endpoint{DSN: dsn})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		var n uint64
		if err := conn.QueryRow(context.Background(), "SELECT count() FROM "+db+"."+eventsLocal(t)).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	want := count(dsns[1])
	took := waitFor(t, "the restarted replica caught up", 2*time.Minute, func() bool { return count(dsns[0]) == want })
	t.Logf("the restarted replica holds shard 1's %d events rows, %s after the run", want, took.Round(time.Second))
}
