package sql

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// TestEventsRebuiltWithRows applies 0006 (events rebuilt with on_time as
// its version, see the file) to a database whose events hold rows, as an
// upgrade does: the rows and the views stay as they were, the rebuilt
// table keeps an on-time row over a late copy, and the materialised views
// that read events fire on the rows written after it.
func TestEventsRebuiltWithRows(t *testing.T) {
	conn, db := upgradeDatabase(t)
	ctx := context.Background()
	migrateBefore(t, conn, db, 6)
	exec, query := dbStatements(t, conn, db)
	// 30 orders on time, in sessions.
	const orders = `INSERT INTO {db}.events (event_id, ts, ts_ms, type, visitor_id, session_id, stage, order_id, amount, currency, late, kafka_offset)
SELECT concat('o', toString(number)), toDateTime(1735689600 + number * 3600, 'UTC'), toUInt64(1735689600000 + number * 3600000),
       'order_completed', concat('v', toString(number % 4)), concat('s', toString(number)), 'conversion', concat('order', toString(number)),
       toDecimal64(number + 1, 4), 'USD', {late}, toInt64(number)
FROM system.numbers LIMIT {n}`
	exec(strings.NewReplacer("{late}", "0", "{n}", "30").Replace(orders))
	revenue := "SELECT toString(groupArray(tuple(day, orders, toString(revenue)))) FROM (SELECT * FROM {db}.revenue_daily ORDER BY day)"
	rows := "SELECT toString(tuple(count(), sum(late), countIf(session_id != ''))) FROM {db}.events FINAL"
	wantRevenue, wantRows := query(revenue), query(rows)
	if wantRows != "(30,0,30)" {
		t.Fatalf("before the upgrade: %s", wantRows)
	}

	applied, err := Migrate(ctx, conn, db)
	if err != nil || len(applied) == 0 || applied[0] != 6 {
		t.Fatalf("the upgrade applied %v, %v; want 6 and the later ones", applied, err)
	}
	if got := query("SELECT engine_full FROM system.tables WHERE database = '{db}' AND name = 'events'"); !strings.HasPrefix(got, "ReplacingMergeTree(on_time)") {
		t.Errorf("events after the upgrade: %s", got)
	}
	if got := query("SELECT toString(groupArray(name)) FROM system.tables WHERE database = '{db}' AND name LIKE 'events_%'"); got != "[]" {
		t.Errorf("tables left behind: %s", got)
	}
	if got, got2 := query(rows), query(revenue); got != wantRows || got2 != wantRevenue {
		t.Errorf("after the upgrade: events %s, revenue_daily %s; want %s, %s", got, got2, wantRows, wantRevenue)
	}
	// Late copies of ten of them: the originals stay, nothing is counted twice.
	exec(strings.NewReplacer("{late}", "1", "{n}", "10", "concat('s', toString(number))", "''").Replace(orders))
	if got, got2 := query(rows), query(revenue); got != wantRows || got2 != wantRevenue {
		t.Errorf("after late copies: events %s, revenue_daily %s; want %s, %s", got, got2, wantRows, wantRevenue)
	}
	// A new order reaches revenue_daily: the views fire on the new table.
	exec(strings.NewReplacer("{late}", "0", "{n}", "31").Replace(orders))
	if got := query(rows); got != "(31,0,31)" {
		t.Errorf("after a new order: events %s, want (31,0,31)", got)
	}
	if got := query("SELECT toString(sum(orders)) FROM {db}.revenue_daily"); got != "31" {
		t.Errorf("revenue_daily counts %s orders after a new one, want 31", got)
	}
}

// TestStateRebuiltWithRows applies 0011 (pipeline_state rebuilt in
// 256-row granules) to a database whose pipeline_state holds checkpoints
// and visitors of two epochs, as an upgrade does: the newest state of
// every key stays as it was, the table reads by key with the new
// granules, and nothing is left behind.
func TestStateRebuiltWithRows(t *testing.T) {
	conn, db := upgradeDatabase(t)
	migrateBefore(t, conn, db, 11)
	ctx := context.Background()
	exec, query := dbStatements(t, conn, db)
	// 3 partitions of 2,000 visitors and a checkpoint, at epochs 1 and 2
	// (the later one holding other data).
	for _, epoch := range []string{"1", "2"} {
		exec(`INSERT INTO {db}.pipeline_state (consumer_group, kafka_partition, kind, key, epoch, data)
SELECT 'g', toInt32(number % 3), if(number < 3, 'checkpoint', 'visitor'), if(number < 3, '', concat('v', toString(number))),
       ` + epoch + `, concat('state ', toString(number), ' of epoch ` + epoch + `')
FROM system.numbers LIMIT 6003`)
	}
	state := "SELECT toString(tuple(count(), uniqExact(kafka_partition, kind, key), min(epoch), cityHash64(groupArray(data)))) FROM (SELECT * FROM {db}.pipeline_state FINAL ORDER BY kafka_partition, kind, key)"
	want := query(state)
	if !strings.HasPrefix(want, "(6003,6003,2,") {
		t.Fatalf("before the upgrade: %s", want)
	}

	applied, err := Migrate(ctx, conn, db)
	if err != nil || len(applied) == 0 || applied[0] != 11 {
		t.Fatalf("the upgrade applied %v, %v; want 11 and the later ones", applied, err)
	}
	if got := query("SELECT engine_full FROM system.tables WHERE database = '{db}' AND name = 'pipeline_state'"); !strings.Contains(got, "index_granularity = 256") {
		t.Errorf("pipeline_state after the upgrade: %s", got)
	}
	if got := query("SELECT toString(groupArray(name)) FROM system.tables WHERE database = '{db}' AND name LIKE 'pipeline_state_%'"); got != "[]" {
		t.Errorf("tables left behind: %s", got)
	}
	if got := query(state); got != want {
		t.Errorf("state after the upgrade: %s, want %s", got, want)
	}
	// A lookup by key reads a granule per part, not the table.
	exec("OPTIMIZE TABLE {db}.pipeline_state FINAL")
	if got := query("SELECT data FROM {db}.pipeline_state FINAL WHERE consumer_group = 'g' AND kafka_partition = 1 AND kind = 'visitor' AND key IN ('v1000')"); got != "state 1000 of epoch 2" {
		t.Errorf("visitor v1000 after the upgrade: %q", got)
	}
	if got := loggedReadRows(t, exec, query, "%{db}.pipeline_state FINAL WHERE%key IN (''v1000'')%"); got != "256" {
		t.Errorf("a lookup of one key read %s rows, want 256 (one granule)", got)
	}
}

// loggedReadRows returns read_rows of the newest finished query like
// pattern in system.query_log. 18.16's SYSTEM FLUSH LOGS only asks the log
// thread to flush and does not wait for it, so the row is awaited.
func loggedReadRows(t *testing.T, exec func(string), query func(string) string, pattern string) string {
	t.Helper()
	q := "SELECT toString(groupArray(read_rows)) FROM (SELECT read_rows FROM system.query_log WHERE type = 2 AND query LIKE '" + pattern + "' AND query NOT LIKE '%query_log%' ORDER BY event_time DESC LIMIT 1)"
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		exec("SYSTEM FLUSH LOGS")
		got := query(q)
		if got != "[]" {
			return strings.Trim(got, "[]")
		}
		if time.Now().After(deadline) {
			t.Fatalf("no finished query like %s in system.query_log after 30 s", pattern)
		}
	}
}

// upgradeDatabase connects to the test server and names a database for an
// upgrade test, dropped at the end.
func upgradeDatabase(t *testing.T) (driver.Conn, string) {
	t.Helper()
	base := os.Getenv("FUNNELHOUSE_TEST_CLICKHOUSE")
	if base == "" {
		t.Skip("FUNNELHOUSE_TEST_CLICKHOUSE is not set: run `make test`")
	}
	// Not sinks/clickhouse.Connect: that package imports this one.
	opts, err := ch.ParseDSN(base)
	if err != nil {
		t.Fatal(err)
	}
	opts.Auth.Database = ""
	conn, err := ch.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	db := fmt.Sprintf("fh_upgrade_%d_%s", os.Getpid(), strings.ToLower(t.Name()))
	t.Cleanup(func() {
		_ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db)
		conn.Close()
	})
	return conn, db
}

// dbStatements returns exec, which runs a statement on db ({db} in it),
// and query, which returns the one value of a query on db; both fail t.
func dbStatements(t *testing.T, conn driver.Conn, db string) (exec func(string), query func(string) string) {
	ctx := context.Background()
	exec = func(q string) {
		t.Helper()
		if err := conn.Exec(ctx, strings.ReplaceAll(q, "{db}", db)); err != nil {
			t.Fatalf("%v\n%s", err, q)
		}
	}
	query = func(q string) string {
		t.Helper()
		var s string
		if err := conn.QueryRow(ctx, strings.ReplaceAll(q, "{db}", db)).Scan(&s); err != nil {
			t.Fatalf("%v\n%s", err, q)
		}
		return s
	}
	return exec, query
}

// migrateBefore applies the migrations before version to a new database db
// and records them, as a database migrated by an older funnelhouse.
func migrateBefore(t *testing.T, conn driver.Conn, db string, version int) {
	t.Helper()
	ctx := context.Background()
	migrations, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"CREATE DATABASE " + db,
		"CREATE TABLE " + db + ".schema_migrations (version UInt32, name String, applied_at DateTime('UTC')) ENGINE = MergeTree ORDER BY version",
	} {
		if err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range migrations {
		if m.Version >= version {
			break
		}
		for _, stmt := range m.Statements {
			if err := execStatement(ctx, conn, db, strings.ReplaceAll(stmt, "{db}", db)); err != nil {
				t.Fatalf("migration %d: %v", m.Version, err)
			}
		}
		if err := conn.Exec(ctx, fmt.Sprintf("INSERT INTO %s.schema_migrations SELECT %d, '%s', now()", db, m.Version, m.Name)); err != nil {
			t.Fatal(err)
		}
	}
}
