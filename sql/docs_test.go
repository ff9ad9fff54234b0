package sql_test

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"

	fhsql "github.com/funnelhouse/funnelhouse/sql"
)

// TestDocsSQL runs every SQL block of docs/metrics.md and docs/operations.md
// (but the destructive ones) on a migrated database, so that the SQL the
// docs give BI users works on ClickHouse 18.16.
func TestDocsSQL(t *testing.T) {
	conn, db := testDatabase(t, "fh_docs")
	ctx := context.Background()
	if _, err := fhsql.Migrate(ctx, conn, db); err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile("(?s)```sql\n(.*?)```")
	ran := 0
	for _, doc := range []string{"../docs/metrics.md", "../docs/operations.md"} {
		text, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range block.FindAllStringSubmatch(string(text), -1) {
			sql := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(m[1]), ";"))
			if strings.Contains(sql, "DROP PARTITION") || strings.Contains(sql, "DELETE") {
				continue // destructive examples; their syntax is ClickHouse's own
			}
			sql = strings.ReplaceAll(sql, "funnelhouse.", db+".")
			if err := conn.Exec(ctx, sql); err != nil {
				t.Errorf("%s: %v\n%s", doc, err, sql)
			}
			ran++
		}
	}
	if ran < 6 {
		t.Errorf("only %d SQL blocks found in the docs", ran)
	}
}
