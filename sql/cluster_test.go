package sql_test

// Tests of migrate --cluster. TestClusterForm needs no server; the others
// run against the cluster that `make test-cluster` starts with
// deploy/cluster.sh (2 shards x 2 replicas): FUNNELHOUSE_TEST_CLUSTER holds
// its DSNs, one per server, shard by shard, space separated.
//
// Covered here (issue 15, items 1 and 4): migrate --cluster applies and is
// idempotent; every table and view exists on every server and every view
// runs; a row inserted through a Distributed table is on every replica of
// its visitor's shard and on no other; a replayed identical block is
// deduplicated by the replicated engine; a statement that fails on some
// servers names them; a server added to the cluster gets every table and
// view from the next migrate --cluster.
//
// The pipeline on the cluster: cmd/funnelhouse/cluster_test.go. Not
// covered here: the faults (cmd/funnelhouse/cluster_test.go) and bench
// --cluster (cmd/funnelhouse/bench_test.go).

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	chsink "github.com/funnelhouse/funnelhouse/sinks/clickhouse"
	fhsql "github.com/funnelhouse/funnelhouse/sql"
)

func TestClusterForm(t *testing.T) {
	form, err := fhsql.ClusterStatements("fh", "c1")
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	for _, stmts := range form {
		all = append(all, stmts...)
	}
	text := strings.Join(all, "\n")
	for _, want := range []string{
		"CREATE TABLE IF NOT EXISTS fh.events_local ON CLUSTER c1 (",
		"ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fh/events_local', '{replica}')",
		"ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fh/pipeline_state_local', '{replica}', epoch)",
		"ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/fh/funnel_daily_state_local', '{replica}')",
		"CREATE TABLE IF NOT EXISTS fh.events ON CLUSTER c1 AS fh.events_local ENGINE = Distributed(c1, fh, events_local, cityHash64(visitor_id))",
		"ENGINE = Distributed(c1, fh, pipeline_state_local, cityHash64(consumer_group, kafka_partition))",
		"ENGINE = Distributed(c1, fh, funnel_daily_state_local, cityHash64(cohort_day, source))",
		"CREATE MATERIALIZED VIEW IF NOT EXISTS fh.funnel_daily_mv ON CLUSTER c1 TO fh.funnel_daily_state_local AS",
		"FROM fh.lifecycle_transitions_local",
		"CREATE VIEW IF NOT EXISTS fh.funnel_daily ON CLUSTER c1 AS",
		"visitor_id GLOBAL IN (SELECT visitor_id FROM fh.lifecycle_transitions WHERE",
		"ALTER TABLE fh.events_local ON CLUSTER c1 ADD COLUMN ces Nullable(UInt8)",
		"-- on each server: ALTER TABLE fh.events ADD COLUMN IF NOT EXISTS ces Nullable(UInt8)",
		"DROP TABLE IF EXISTS fh.revenue_daily ON CLUSTER c1",
		// 0006 rebuilds events and swaps it in: events' Distributed table is
		// created again over the new local table, which keeps its name and
		// ZooKeeper path; the old local table is dropped.
		"ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/fh/events_0006_local', '{replica}', on_time)",
		"DROP TABLE IF EXISTS fh.events ON CLUSTER c1 \nDROP TABLE IF EXISTS fh.events_0006 ON CLUSTER c1 \n" +
			"CREATE TABLE IF NOT EXISTS fh.events ON CLUSTER c1 AS fh.events_0006_local ENGINE = Distributed(c1, fh, events_0006_local, cityHash64(visitor_id))",
		"CREATE MATERIALIZED VIEW IF NOT EXISTS fh.revenue_items_mv ON CLUSTER c1 TO fh.revenue_items_local AS\nSELECT",
		"FROM fh.events_0006_local\nWHERE type IN ('order_completed', 'order_refunded')",
		"DROP TABLE IF EXISTS fh.events_local ON CLUSTER c1",
		// 0011 rebuilds pipeline_state with small granules: the copy goes
		// through a Distributed table sharded as pipeline_state is, so
		// each partition's state stays on the shard the sink reads.
		"ORDER BY (consumer_group, kafka_partition, kind, key)\nSETTINGS index_granularity = 256",
		"ENGINE = Distributed(c1, fh, pipeline_state_0011_local, cityHash64(consumer_group, kafka_partition))",
		"CREATE TABLE IF NOT EXISTS fh.pipeline_state ON CLUSTER c1 AS fh.pipeline_state_0011_local " +
			"ENGINE = Distributed(c1, fh, pipeline_state_0011_local, cityHash64(consumer_group, kafka_partition))",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the cluster form lacks %q", want)
		}
	}
	if strings.Contains(text, "fh.events_pre0006 ON CLUSTER c1 AS") || strings.Contains(text, "RENAME") {
		t.Error("the old events table got a Distributed table, or a table is renamed (18.16 leaves a Distributed table's directory behind)")
	}
	for _, stmt := range all {
		if !strings.Contains(stmt, " ON CLUSTER c1 ") && !strings.HasPrefix(stmt, "-- on each server: ") &&
			!(strings.HasPrefix(stmt, "-- once: INSERT INTO fh.") && !strings.Contains(stmt, "_local")) {
			t.Errorf("neither ON CLUSTER, nor run on each server, nor a back-fill into a Distributed table: %s", stmt)
		}
		if strings.HasPrefix(stmt, "CREATE MATERIALIZED VIEW") {
			for _, ref := range strings.Fields(stmt) {
				if strings.HasPrefix(ref, "fh.") && !strings.HasSuffix(strings.TrimRight(ref, ");,"), "_local") && !strings.HasSuffix(ref, "_mv") {
					t.Errorf("materialised view reads or writes %s, not a local table: %s", ref, stmt)
				}
			}
		}
		if strings.Contains(stmt, "MergeTree") && !strings.Contains(stmt, "ENGINE = Replicated") {
			t.Errorf("a table that is not replicated: %s", stmt)
		}
	}
}

// testCluster connects to every server of the test cluster and names a
// database of the test's own, dropped ON CLUSTER at the end.
func testCluster(t *testing.T, name string) (conns []driver.Conn, dsns []string, cluster, db string) {
	t.Helper()
	dsns = strings.Fields(os.Getenv("FUNNELHOUSE_TEST_CLUSTER"))
	if len(dsns) == 0 {
		t.Skip("FUNNELHOUSE_TEST_CLUSTER is not set: run `make test-cluster`")
	}
	cluster = os.Getenv("FUNNELHOUSE_TEST_CLUSTER_NAME")
	if cluster == "" {
		cluster = "funnelhouse"
	}
	ctx := context.Background()
	for _, dsn := range dsns {
		conn, _, err := chsink.Connect(ctx, chsink.Endpoint{DSN: dsn})
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, conn)
	}
	db = fmt.Sprintf("%s_%d", name, os.Getpid())
	t.Cleanup(func() {
		if err := fhsql.ExecOnCluster(ctx, conns[0], "DROP DATABASE IF EXISTS "+db+" ON CLUSTER "+cluster); err != nil {
			t.Logf("cannot drop %s: %v", db, err)
		}
		for _, c := range conns {
			c.Close()
		}
	})
	return conns, dsns, cluster, db
}

// migrateCluster runs what `funnelhouse migrate --cluster` runs.
func migrateCluster(t *testing.T, conn driver.Conn, dsn, cluster, db string) ([]int, error) {
	t.Helper()
	dial := func(ctx context.Context, host string, port uint16) (driver.Conn, error) {
		e, err := chsink.Endpoint{DSN: dsn}.WithAddr(fmt.Sprintf("%s:%d", host, port))
		if err != nil {
			return nil, err
		}
		c, _, err := chsink.Connect(ctx, e)
		return c, err
	}
	return fhsql.MigrateCluster(context.Background(), conn, db, fhsql.Cluster{Name: cluster, Dial: dial})
}

// eventsLocal is the replicated table under the Distributed events table.
func eventsLocal(t *testing.T) string {
	t.Helper()
	return localTable(t, "events")
}

// localTable is the replicated table under the Distributed table name
// (pipeline_state_0011_local since 0011).
func localTable(t *testing.T, name string) string {
	t.Helper()
	local, err := fhsql.LocalTable(name)
	if err != nil {
		t.Fatal(err)
	}
	return local
}

// objects lists db's tables, views and engines, by name, in one string.
func objects(t *testing.T, conn driver.Conn, db string) string {
	t.Helper()
	var out string
	if err := conn.QueryRow(context.Background(), "SELECT arrayStringConcat(arraySort(groupArray(concat(name, ':', engine))), ' ') "+
		"FROM (SELECT name, engine FROM system.tables WHERE database = ? ORDER BY name)", db).Scan(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

// eventually retries f for up to 20 s (replication is asynchronous).
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if err = f(); err == nil {
			return
		}
	}
	t.Errorf("%s: %v", what, err)
}

func count(conn driver.Conn, q string, args ...any) (uint64, error) {
	var n uint64
	err := conn.QueryRow(context.Background(), q, args...).Scan(&n)
	return n, err
}

func TestClusterMigrate(t *testing.T) {
	conns, dsns, cluster, db := testCluster(t, "fh_cmigrate")
	ctx := context.Background()
	all, err := fhsql.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	applied, err := migrateCluster(t, conns[0], dsns[0], cluster, db)
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != len(all) {
		t.Fatalf("first run applied %v, want all %d", applied, len(all))
	}

	// The single-server objects, each on every server: tables as Distributed
	// over a Replicated* <name>_local, views and materialised views as they are.
	want := objects(t, conns[0], db)
	for _, name := range []string{"events:Distributed", eventsLocal(t) + ":ReplicatedReplacingMergeTree",
		"pipeline_state:Distributed", localTable(t, "pipeline_state") + ":ReplicatedReplacingMergeTree",
		"funnel_transitions_local:ReplicatedReplacingMergeTree", "funnel_transitions_mv:MaterializedView",
		"pages_daily_arrays_local:ReplicatedAggregatingMergeTree",
		"funnel_daily:View", "revenue_daily:View", "clv_cohort_monthly:View", "schema_migrations:ReplicatedMergeTree"} {
		if !strings.Contains(" "+want+" ", " "+name+" ") {
			t.Errorf("after migrate --cluster, %s is missing from: %s", name, want)
		}
	}
	if strings.Contains(want, ":ReplacingMergeTree") || strings.Contains(want, ":AggregatingMergeTree") {
		t.Errorf("tables that are not replicated: %s", want)
	}
	for i, c := range conns {
		if got := objects(t, c, db); got != want {
			t.Errorf("server %s has\n%s\nwant (as the first)\n%s", dsns[i], got, want)
		}
		// Every version is recorded on every server (one replica each).
		eventually(t, "schema_migrations on "+dsns[i], func() error {
			n, err := count(c, "SELECT uniqExact(version) FROM "+db+".schema_migrations")
			if err == nil && n != uint64(len(all)) {
				err = fmt.Errorf("%d versions, want %d", n, len(all))
			}
			return err
		})
	}
	// Every view runs on the cluster (distributed subqueries included).
	rows, err := conns[0].Query(ctx, "SELECT name FROM system.tables WHERE database = ? AND engine = 'View'", db)
	if err != nil {
		t.Fatal(err)
	}
	var views []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		views = append(views, v)
	}
	rows.Close()
	for _, v := range views {
		if _, err := count(conns[len(conns)-1], "SELECT count() FROM "+db+"."+v); err != nil {
			t.Errorf("view %s on %s: %v", v, dsns[len(dsns)-1], err)
		}
	}

	// Idempotent, from any server.
	applied, err = migrateCluster(t, conns[len(conns)-1], dsns[len(dsns)-1], cluster, db)
	if err != nil || len(applied) != 0 {
		t.Fatalf("second run applied %v, %v; want nothing", applied, err)
	}
	for i, c := range conns {
		if got := objects(t, c, db); got != want {
			t.Errorf("second run changed server %s:\n%s\nwas\n%s", dsns[i], got, want)
		}
	}

	// The two forms are not mixed: a database migrated for one server is
	// refused by --cluster.
	single1 := db + "_single"
	if _, err := fhsql.Migrate(ctx, conns[0], single1); err != nil {
		t.Fatal(err)
	}
	defer conns[0].Exec(ctx, "DROP DATABASE IF EXISTS "+single1)
	if _, err := migrateCluster(t, conns[0], dsns[0], cluster, single1); err == nil || !strings.Contains(err.Error(), "migrated for a single server") {
		t.Errorf("migrate --cluster on a single-server database: %v", err)
	}
	_ = fhsql.ExecOnCluster(ctx, conns[0], "DROP DATABASE IF EXISTS "+single1+" ON CLUSTER "+cluster)
}

// shardOf returns the shard (1-based) of each server, from its macros.
func shardOf(t *testing.T, conns []driver.Conn) []string {
	t.Helper()
	out := make([]string, len(conns))
	for i, c := range conns {
		if err := c.QueryRow(context.Background(), "SELECT substitution FROM system.macros WHERE macro = 'shard'").Scan(&out[i]); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestClusterDistributedInsert(t *testing.T) {
	conns, dsns, cluster, db := testCluster(t, "fh_cinsert")
	if _, err := migrateCluster(t, conns[0], dsns[0], cluster, db); err != nil {
		t.Fatal(err)
	}
	shards := shardOf(t, conns)
	nshards := map[string]bool{}
	for _, s := range shards {
		nshards[s] = true
	}
	const visitors = 40
	ctx := clickhouse.Context(context.Background(), clickhouse.WithSettings(clickhouse.Settings{"insert_distributed_sync": 1}))
	if err := conns[0].Exec(ctx, "INSERT INTO "+db+".events (event_id, ts, ts_ms, type, visitor_id) "+
		"SELECT concat('e', toString(number)), toDateTime('2026-01-05 10:00:00', 'UTC'), 1767607200000, 'page_view', concat('v', toString(number)) "+
		fmt.Sprintf("FROM system.numbers LIMIT %d", visitors)); err != nil {
		t.Fatal(err)
	}
	// Rows per shard, as the sharding key places them (every shard has
	// weight 1, so the shard is cityHash64(visitor_id) % shards + 1).
	perShard := map[string]uint64{}
	for s := range nshards {
		n, err := count(conns[0], fmt.Sprintf("SELECT count() FROM (SELECT concat('v', toString(number)) AS visitor_id FROM system.numbers LIMIT %d) WHERE toString(cityHash64(visitor_id) %% %d + 1) = ?", visitors, len(nshards)), s)
		if err != nil {
			t.Fatal(err)
		}
		perShard[s] = n
	}
	for i, c := range conns {
		i, c := i, c
		eventually(t, "rows of shard "+shards[i]+" on "+dsns[i], func() error {
			local, err := count(c, "SELECT count() FROM "+db+"."+eventsLocal(t))
			if err != nil {
				return err
			}
			misplaced, err := count(c, fmt.Sprintf("SELECT count() FROM %s.%s WHERE toString(cityHash64(visitor_id) %% %d + 1) != ?", db, eventsLocal(t), len(nshards)), shards[i])
			if err != nil {
				return err
			}
			if local != perShard[shards[i]] || misplaced != 0 {
				return fmt.Errorf("%d rows (%d of another shard), want the %d of shard %s", local, misplaced, perShard[shards[i]], shards[i])
			}
			return nil
		})
	}
	// Once every replica has caught up (a Distributed read picks any
	// replica of each shard), every server reads every row through it.
	for i, c := range conns {
		if n, err := count(c, "SELECT count() FROM "+db+".events"); err != nil || n != visitors {
			t.Errorf("through the Distributed table on %s: %d rows (%v), want %d", dsns[i], n, err, visitors)
		}
	}
	if len(nshards) > 1 {
		for s, n := range perShard {
			if n == 0 {
				t.Errorf("shard %s got no visitor of %d", s, visitors)
			}
		}
	}
}

func TestClusterBlockDeduplication(t *testing.T) {
	conns, dsns, cluster, db := testCluster(t, "fh_cdedup")
	if _, err := migrateCluster(t, conns[0], dsns[0], cluster, db); err != nil {
		t.Fatal(err)
	}
	shards := shardOf(t, conns)
	ctx := context.Background()
	block := func(amount string) string {
		return "INSERT INTO " + db + "." + eventsLocal(t) + " (event_id, ts, ts_ms, type, visitor_id, order_id, amount, currency) " +
			"SELECT concat('o', toString(number)), toDateTime('2026-01-05 10:00:00', 'UTC'), 1767607200000, 'order_completed', " +
			"concat('v', toString(number)), concat('order', toString(number)), toDecimal64(" + amount + ", 4), 'EUR' FROM system.numbers LIMIT 10"
	}
	// The same block twice into one replica (a retried insert), and once
	// more into another replica of the same shard when there is one.
	if err := conns[0].Exec(ctx, block("12.5")); err != nil {
		t.Fatal(err)
	}
	if err := conns[0].Exec(ctx, block("12.5")); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(conns); i++ {
		if shards[i] == shards[0] {
			if err := conns[i].Exec(ctx, block("12.5")); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	for i, c := range conns {
		if shards[i] != shards[0] {
			continue
		}
		i, c := i, c
		eventually(t, "one copy on "+dsns[i], func() error {
			n, err := count(c, "SELECT count() FROM "+db+"."+eventsLocal(t))
			if err == nil && n != 10 {
				err = fmt.Errorf("%d rows, want 10 (one copy of the block)", n)
			}
			if err != nil {
				return err
			}
			// The materialised view's target is deduplicated with it.
			n, err = count(c, "SELECT count() FROM "+db+".revenue_items_keyed_local")
			if err == nil && n != 10 {
				err = fmt.Errorf("revenue_items_keyed_local: %d rows, want 10", n)
			}
			return err
		})
	}
	// A block with one value changed is another block: kept.
	if err := conns[0].Exec(ctx, block("12.6")); err != nil {
		t.Fatal(err)
	}
	if n, err := count(conns[0], "SELECT count() FROM "+db+"."+eventsLocal(t)); err != nil || n != 20 {
		t.Errorf("after a different block: %d rows (%v), want 20", n, err)
	}
}

func TestClusterPartialDDL(t *testing.T) {
	conns, dsns, cluster, db := testCluster(t, "fh_cpartial")
	if len(conns) < 2 {
		t.Skip("needs two servers")
	}
	ctx := context.Background()
	if err := fhsql.ExecOnCluster(ctx, conns[0], "CREATE DATABASE IF NOT EXISTS "+db+" ON CLUSTER "+cluster); err != nil {
		t.Fatal(err)
	}
	// The table exists on the last server only: there the ON CLUSTER
	// CREATE fails, everywhere else it succeeds.
	last := len(conns) - 1
	if err := conns[last].Exec(ctx, "CREATE TABLE "+db+".partial (x UInt8) ENGINE = Memory"); err != nil {
		t.Fatal(err)
	}
	err := fhsql.ExecOnCluster(ctx, conns[0], "CREATE TABLE "+db+".partial ON CLUSTER "+cluster+" (x UInt8) ENGINE = Memory")
	var ce *fhsql.ClusterError
	if !errors.As(err, &ce) {
		t.Fatalf("got %v, want a *ClusterError", err)
	}
	lastPort := dsns[last][strings.LastIndex(dsns[last], ":")+1 : len(dsns[last])-1]
	if len(ce.Failed) != 1 || !strings.Contains(ce.Failed[0], ":"+lastPort+" ") || !strings.Contains(ce.Failed[0], "already exists") {
		t.Errorf("failed servers %q, want the one on port %s with 'already exists'", ce.Failed, lastPort)
	}
	if len(ce.Done) != len(conns)-1 {
		t.Errorf("done on %q, want the %d other servers", ce.Done, len(conns)-1)
	}
	if msg := err.Error(); !strings.Contains(msg, "CREATE TABLE "+db+".partial ON CLUSTER") || !strings.Contains(msg, fmt.Sprintf("failed on 1 of %d server(s)", len(conns))) {
		t.Errorf("message does not name the statement and the count: %s", msg)
	}
	t.Logf("the error: %v", err)
}

// columns lists db's columns with their types, by table, in one string.
func columns(t *testing.T, conn driver.Conn, db string) string {
	t.Helper()
	var out string
	if err := conn.QueryRow(context.Background(), "SELECT arrayStringConcat(arraySort(groupArray(concat(table, '.', name, ':', type))), ' ') "+
		"FROM system.columns WHERE database = ?", db).Scan(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestClusterServerAdded: a server that joins the cluster after the
// database was migrated (a new shard, or a new replica of a shard) is
// given every table and view by the next migrate --cluster, with the
// current structure (the ALTERs of later migrations included). Simulated by
// dropping the database on the last server alone: with one replica per
// shard it is a new shard, with two a new replica, which must fetch its
// shard's rows.
func TestClusterServerAdded(t *testing.T) {
	conns, dsns, cluster, db := testCluster(t, "fh_cadded")
	ctx := context.Background()
	if len(conns) < 2 {
		t.Skip("needs a cluster of at least two servers")
	}
	if _, err := migrateCluster(t, conns[0], dsns[0], cluster, db); err != nil {
		t.Fatal(err)
	}
	// Rows of 200 visitors, through the Distributed table: every shard
	// gets some.
	sync := clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"insert_distributed_sync": 1}))
	if err := conns[0].Exec(sync, "INSERT INTO "+db+".events (event_id, visitor_id, ts) SELECT concat('e', toString(number)), concat('v', toString(number % 200)), now() FROM system.numbers LIMIT 1000"); err != nil {
		t.Fatal(err)
	}
	victim, last := conns[len(conns)-1], dsns[len(dsns)-1]
	var shard, replicas uint32
	if err := victim.QueryRow(ctx, "SELECT anyIf(shard_num, is_local = 1) FROM system.clusters WHERE cluster = ?", cluster).Scan(&shard); err != nil {
		t.Fatal(err)
	}
	if err := victim.QueryRow(ctx, "SELECT toUInt32(count()) FROM system.clusters WHERE cluster = ? AND shard_num = ?", cluster, shard).Scan(&replicas); err != nil {
		t.Fatal(err)
	}
	if err := victim.Exec(ctx, "DROP DATABASE "+db); err != nil {
		t.Fatal(err)
	}
	applied, err := migrateCluster(t, conns[0], dsns[0], cluster, db)
	if err != nil {
		t.Fatalf("migrate --cluster with %s new: %v", last, err)
	}
	if len(applied) != 0 {
		t.Errorf("applied %v again, want nothing: every version is recorded", applied)
	}
	if got, want := objects(t, victim, db), objects(t, conns[0], db); got != want {
		t.Errorf("the new server %s has\n%s\nwant (as the first)\n%s", last, got, want)
	}
	if got, want := columns(t, victim, db), columns(t, conns[0], db); got != want {
		t.Errorf("the new server %s has the columns\n%s\nwant (as the first)\n%s", last, got, want)
	}
	if replicas > 1 {
		// A new replica: it fetches its shard's rows from the other.
		local, err := fhsql.LocalTable("events")
		if err != nil {
			t.Fatal(err)
		}
		peer := conns[len(conns)-2]
		want, err := count(peer, "SELECT count() FROM "+db+"."+local)
		if err != nil || want == 0 {
			t.Fatalf("the other replica of shard %d holds %d events rows (%v)", shard, want, err)
		}
		eventually(t, "the new replica fetched its shard's rows", func() error {
			n, err := count(victim, "SELECT count() FROM "+db+"."+local)
			if err == nil && n != want {
				err = fmt.Errorf("%d events rows, want %d", n, want)
			}
			return err
		})
	}
	// It takes inserts, and a second run changes nothing.
	if err := victim.Exec(sync, "INSERT INTO "+db+".events (event_id, visitor_id, ts) SELECT concat('f', toString(number)), concat('w', toString(number)), now() FROM system.numbers LIMIT 100"); err != nil {
		t.Errorf("insert through the new server: %v", err)
	}
	if applied, err := migrateCluster(t, conns[0], dsns[0], cluster, db); err != nil || len(applied) != 0 {
		t.Errorf("migrate --cluster again: applied %v, %v; want nothing", applied, err)
	}
	t.Logf("server %s (shard %d of %d replica(s)) re-created: %d objects", last, shard, replicas, strings.Count(objects(t, victim, db), " ")+1)
}
