package sql_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	chsink "github.com/funnelhouse/funnelhouse/sinks/clickhouse"
	fhsql "github.com/funnelhouse/funnelhouse/sql"
)

// testDatabase connects to the ClickHouse that `make test` started and
// names a database of the test's own, dropped at the end.
func testDatabase(t *testing.T, name string) (driver.Conn, string) {
	t.Helper()
	base := os.Getenv("FUNNELHOUSE_TEST_CLICKHOUSE")
	if base == "" {
		t.Skip("FUNNELHOUSE_TEST_CLICKHOUSE is not set: run `make test`")
	}
	ctx := context.Background()
	conn, _, err := chsink.Connect(ctx, chsink.Endpoint{DSN: base})
	if err != nil {
		t.Fatal(err)
	}
	db := fmt.Sprintf("%s_%d", name, os.Getpid())
	t.Cleanup(func() {
		_ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+db)
		conn.Close()
	})
	return conn, db
}

func TestMigrateIsIdempotent(t *testing.T) {
	conn, db := testDatabase(t, "fh_migrate")
	ctx := context.Background()

	all, err := fhsql.Migrations()
	if err != nil || len(all) == 0 {
		t.Fatalf("migrations: %v, %d", err, len(all))
	}
	applied, err := fhsql.Migrate(ctx, conn, db)
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != len(all) {
		t.Fatalf("first run applied %v, want all %d", applied, len(all))
	}
	objects := func() string {
		var names []string
		rows, err := conn.Query(ctx, "SELECT name, engine FROM system.tables WHERE database = ? ORDER BY name", db)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var n, e string
			if err := rows.Scan(&n, &e); err != nil {
				t.Fatal(err)
			}
			names = append(names, n+":"+e)
		}
		return strings.Join(names, " ")
	}
	before := objects()
	for _, want := range []string{"events:ReplacingMergeTree", "sessions:ReplacingMergeTree", "lifecycle_transitions:ReplacingMergeTree",
		"funnel_daily:View", "bounce_daily:View", "churn_monthly:View", "revenue_daily:View", "funnel_transitions_mv:MaterializedView"} {
		if !strings.Contains(before, want) {
			t.Errorf("after migrate, %s is missing from: %s", want, before)
		}
	}
	applied, err = fhsql.Migrate(ctx, conn, db)
	if err != nil || len(applied) != 0 {
		t.Fatalf("second run applied %v, %v; want nothing", applied, err)
	}
	if after := objects(); after != before {
		t.Errorf("second run changed the objects:\n%s\nwas\n%s", after, before)
	}
	var recorded uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM "+db+".schema_migrations").Scan(&recorded); err != nil || recorded != uint64(len(all)) {
		t.Errorf("schema_migrations holds %d rows (%v), want %d", recorded, err, len(all))
	}
}

func TestValidateIdentifier(t *testing.T) {
	for _, name := range []string{"funnelhouse", "_x", "a1_b2"} {
		if err := fhsql.ValidateIdentifier("database", name); err != nil {
			t.Errorf("%q: %v", name, err)
		}
	}
	for _, name := range []string{"", "1db", "a-b", "a;DROP TABLE x", "a b", "a.b", strings.Repeat("x", 65)} {
		err := fhsql.ValidateIdentifier("database", name)
		if err == nil || !strings.Contains(err.Error(), "invalid database name") {
			t.Errorf("%q: got %v, want an invalid database name error", name, err)
		}
	}
}

// TestMigrationReappliedHalfWay applies every migration again, as after an
// interruption before they were recorded: their ADD COLUMN IF NOT EXISTS
// statements (run without IF NOT EXISTS on 18.16) must skip the columns
// that exist, and every other statement must be idempotent.
func TestMigrationReappliedHalfWay(t *testing.T) {
	conn, db := testDatabase(t, "fh_remigrate")
	ctx := context.Background()
	all, err := fhsql.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fhsql.Migrate(ctx, conn, db); err != nil {
		t.Fatal(err)
	}
	if err := conn.Exec(ctx, "TRUNCATE TABLE "+db+".schema_migrations"); err != nil {
		t.Fatal(err)
	}
	applied, err := fhsql.Migrate(ctx, conn, db)
	if err != nil || len(applied) != len(all) {
		t.Fatalf("second run applied %v, %v; want all %d again", applied, err, len(all))
	}
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM system.columns WHERE database = ? AND (table = 'events' AND name IN ('ces', 'trial', 'plan', 'session_start') OR table = 'pipeline_state' AND name = 'written_at')", db).Scan(&n); err != nil || n != 5 {
		t.Errorf("%d of the 5 added columns (%v)", n, err)
	}
}
