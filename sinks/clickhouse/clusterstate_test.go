package clickhouse

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/funnelhouse/funnelhouse/pipeline/rows"
	fhsql "github.com/funnelhouse/funnelhouse/sql"
)

// TestClusterStateReadsItsWrites: on 2 shards x 2 replicas (make
// test-cluster; skipped on make test's 2 x 1), with fetches
// of pipeline_state stopped on one replica of the shard that holds a
// partition's state, every checkpoint written is read back at once, by
// LoadState and by LoadVisitors, 20 times over. Through the Distributed
// table, reads went to either replica and missed rows about every other
// time. Then the sink's replica for that shard is failed over to the
// lagging one: the next read waits until it has fetched the rows (fetches
// resume 2 s later) and misses none.
func TestClusterStateReadsItsWrites(t *testing.T) {
	dsns := strings.Fields(os.Getenv("FUNNELHOUSE_TEST_CLUSTER"))
	if len(dsns) == 0 {
		t.Skip("FUNNELHOUSE_TEST_CLUSTER is not set: run `make test-cluster`")
	}
	for i, dsn := range dsns {
		dsn = strings.TrimRight(dsn, "/")
		if j := strings.LastIndex(dsn, "/"); j > len("clickhouse://") {
			dsn = dsn[:j]
		}
		dsns[i] = dsn + "/"
	}
	conn, _, err := Connect(context.Background(), Endpoint{DSN: dsns[0]})
	if err != nil {
		t.Fatal(err)
	}
	var shards, replicas uint64
	err = conn.QueryRow(context.Background(), "SELECT toUInt64(uniqExact(shard_num)), toUInt64(min(replica_num)) FROM (SELECT shard_num, max(replica_num) AS replica_num FROM system.clusters WHERE cluster = 'funnelhouse' GROUP BY shard_num)").Scan(&shards, &replicas)
	conn.Close()
	if err != nil {
		t.Fatal(err)
	}
	if shards < 2 || replicas < 2 {
		t.Skipf("needs 2 shards of 2 replicas, the test cluster has %d shards, one of them of %d replicas: run `make test-cluster`", shards, replicas)
	}
	for _, mode := range ClusterInsertModes {
		t.Run(mode, func(t *testing.T) { stateReadsItsWrites(t, dsns, mode) })
	}
}

func stateReadsItsWrites(t *testing.T, dsns []string, mode string) {
	ctx := context.Background()
	const cluster = "funnelhouse"
	db := fmt.Sprintf("fh_state_%s_%d", mode, os.Getpid())
	admin, _, err := Connect(ctx, Endpoint{DSN: dsns[0] + db})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db+" ON CLUSTER "+cluster)
		admin.Close()
	})
	dial := Endpoint{DSN: dsns[0] + db}.Dialer()
	migrated := time.Now()
	if _, err := fhsql.MigrateCluster(ctx, admin, db, fhsql.Cluster{Name: cluster, Dial: dial}); err != nil {
		t.Fatal(err)
	}
	t.Logf("migrated in %s", time.Since(migrated).Round(time.Millisecond))
	s, err := Open(ctx, Config{Endpoint: Endpoint{DSN: dsns[0] + db}, ClusterInsert: mode, BackoffMin: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	// A partition whose state is on shard 2: the sink's server (shard 1,
	// replica 1) holds none of it.
	const group = "g"
	var partition int32 = -1
	shard := 0
	for p := int32(0); partition < 0; p++ {
		sh, err := s.stateShard(ctx, group, p)
		if err != nil {
			t.Fatal(err)
		}
		if s.router.shards[sh].num == 2 {
			partition, shard = p, sh
		}
	}
	lagging := s.router.shards[shard].replicas[1]
	lag, err := dial(ctx, lagging.host, lagging.port)
	if err != nil {
		t.Fatal(err)
	}
	defer lag.Close()
	if err := lag.Exec(ctx, "SYSTEM STOP FETCHES "+db+"."+s.router.stateLocal); err != nil {
		t.Fatal(err)
	}

	var visitors []string
	check := func(seq int) {
		t.Helper()
		state, err := s.LoadState(ctx, group, partition)
		if err != nil {
			t.Fatal(err)
		}
		var epoch uint64
		n := 0
		for _, r := range state {
			if r.Kind == rows.StateCheckpoint {
				epoch = r.Epoch
			} else {
				n++
			}
		}
		loaded, err := s.LoadVisitors(ctx, group, partition, visitors)
		if err != nil {
			t.Fatal(err)
		}
		if epoch != uint64(seq) || n != seq || len(loaded) != seq {
			t.Fatalf("after checkpoint %d: LoadState read checkpoint %d and %d visitors, LoadVisitors %d of %d: a read missed rows written", seq, epoch, n, len(loaded), seq)
		}
	}
	write := func(seq int) {
		t.Helper()
		b := new(rows.Batch)
		v := fmt.Sprintf("v%d", seq)
		visitors = append(visitors, v)
		b.State.Append(&rows.State{Group: group, Partition: partition, Kind: rows.StateCheckpoint, Epoch: uint64(seq), Data: fmt.Sprint(seq)})
		b.State.Append(&rows.State{Group: group, Partition: partition, Kind: rows.StateVisitor, Key: v, Epoch: uint64(seq), Data: v})
		if err := s.WriteTables(ctx, []*rows.Batch{b}, []rows.AnyTable{&rows.StateTable}); err != nil {
			t.Fatal(err)
		}
	}
	loop := time.Now()
	for seq := 1; seq <= 20; seq++ {
		write(seq)
		check(seq)
	}
	t.Logf("20 checkpoints written and read in %s", time.Since(loop).Round(time.Millisecond))

	// The sink's replica fails over to the lagging one, whose fetches
	// resume 2 s later: the next read waits for them.
	cur := s.router.shards[shard].replicas[s.router.shards[shard].cur]
	if next := s.router.failover(shard, cur); next != lagging {
		t.Fatalf("failed over to %s, want %s", next, lagging)
	}
	go func() {
		time.Sleep(2 * time.Second)
		_ = lag.Exec(context.Background(), "SYSTEM START FETCHES "+db+"."+s.router.stateLocal)
	}()
	start := time.Now()
	loaded, err := s.LoadVisitors(ctx, group, partition, visitors)
	if err != nil {
		t.Fatal(err)
	}
	if len(loaded) != len(visitors) {
		t.Fatalf("after the failover, LoadVisitors read %d of %d visitors", len(loaded), len(visitors))
	}
	t.Logf("after the failover, the first read waited %s for the lagging replica", time.Since(start).Round(time.Millisecond))
	write(21)
	check(21)
}
