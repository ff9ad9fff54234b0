package sql_test

import (
	"context"
	"regexp"
	"slices"
	"testing"

	fhsql "github.com/funnelhouse/funnelhouse/sql"
)

// TestViewsListed: Views names every plain view the migrations create,
// but churn_monthly_totals, which only the views read.
func TestViewsListed(t *testing.T) {
	migrations, err := fhsql.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	createView := regexp.MustCompile(`(?is)^CREATE\s+VIEW\s+IF\s+NOT\s+EXISTS\s+\{db\}\.(\w+)`)
	created := map[string]bool{}
	for _, m := range migrations {
		for _, stmt := range m.Statements {
			if v := createView.FindStringSubmatch(stmt); v != nil && v[1] != "churn_monthly_totals" {
				created[v[1]] = true
			}
		}
	}
	for v := range created {
		if !slices.Contains(fhsql.Views, v) {
			t.Errorf("the migrations create view %s, which sql.Views does not list", v)
		}
	}
	for _, v := range fhsql.Views {
		if !created[v] {
			t.Errorf("sql.Views lists %s, which no migration creates", v)
		}
	}
}

// TestViewsColumnByColumn reads each view's columns one at a time, and
// count() alone. ClickHouse 18.16 drops a column of a subquery that the
// query above uses only inside a lambda; a view written that way answers
// SELECT * and fails when a BI tool asks for fewer columns.
func TestViewsColumnByColumn(t *testing.T) {
	conn, db := testDatabase(t, "fh_view_columns")
	ctx := context.Background()
	if _, err := fhsql.Migrate(ctx, conn, db); err != nil {
		t.Fatal(err)
	}
	for _, view := range fhsql.Views {
		rows, err := conn.Query(ctx, "SELECT name FROM system.columns WHERE database = ? AND table = ?", db, view)
		if err != nil {
			t.Fatal(err)
		}
		var cols []string
		for rows.Next() {
			var c string
			if err := rows.Scan(&c); err != nil {
				t.Fatal(err)
			}
			cols = append(cols, c)
		}
		rows.Close()
		if len(cols) == 0 {
			t.Errorf("view %s has no columns", view)
		}
		for _, expr := range append(cols, "count()") {
			if err := conn.Exec(ctx, "SELECT "+expr+" FROM "+db+"."+view); err != nil {
				t.Errorf("SELECT %s FROM %s: %v", expr, view, err)
			}
		}
	}
}
