package perf

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	chsink "github.com/funnelhouse/funnelhouse/sinks/clickhouse"
	fhsql "github.com/funnelhouse/funnelhouse/sql"
)

// TestViewTimesReport: the view query times are in results.json as
// view_query_ms (and view_rows) per view, beside the ratios, and in the
// printed report, one line per view in sql.Views order.
func TestViewTimesReport(t *testing.T) {
	r := &Result{System: "funnelhouse", ViewQueryMs: map[string]float64{}, ViewRows: map[string]uint64{}, ViewQueryLoad1: 1.5}
	for i, v := range fhsql.Views {
		r.ViewQueryMs[v], r.ViewRows[v] = float64(10+i), uint64(100*i)
	}
	rep := &Report{Results: []*Result{r}, Ratios: map[string]float64{"funnelhouse/naive": 1}}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Ratios  map[string]float64 `json:"ratios"`
		Results []struct {
			ViewQueryMs map[string]float64 `json:"view_query_ms"`
			ViewRows    map[string]uint64  `json:"view_rows"`
			Load1       float64            `json:"view_query_load_avg_1m"`
		} `json:"results"`
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Results) != 1 || len(back.Results[0].ViewQueryMs) != len(fhsql.Views) || back.Results[0].ViewQueryMs["pages_daily"] != r.ViewQueryMs["pages_daily"] ||
		back.Results[0].ViewRows["clv_cohort_monthly"] != r.ViewRows["clv_cohort_monthly"] || back.Results[0].Load1 != 1.5 || back.Ratios["funnelhouse/naive"] != 1 {
		t.Errorf("view times do not round-trip through the JSON: %s", b)
	}
	var out bytes.Buffer
	Print(&out, rep)
	last := -1
	for i, v := range fhsql.Views {
		line := regexp.MustCompile(fmt.Sprintf(`(?m)^  %s +%d +%d$`, v, 100*i, 10+i))
		at := line.FindStringIndex(out.String())
		if at == nil || at[0] < last {
			t.Errorf("the report lacks %q in sql.Views order:\n%s", line, out.String())
			continue
		}
		last = at[0]
	}
}

// TestTimeViews times every view of a migrated, empty database.
func TestTimeViews(t *testing.T) {
	base := os.Getenv("FUNNELHOUSE_TEST_CLICKHOUSE")
	if base == "" {
		t.Skip("FUNNELHOUSE_TEST_CLICKHOUSE is not set: run `make test`, which starts a local ClickHouse")
	}
	ctx := context.Background()
	dsn := fmt.Sprintf("%s/fh_view_times_%d", strings.TrimRight(base, "/"), os.Getpid())
	conn, db, err := chsink.Connect(ctx, chsink.Endpoint{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	defer conn.Exec(context.WithoutCancel(ctx), "DROP DATABASE IF EXISTS "+db)
	if _, err := fhsql.Migrate(ctx, conn, db); err != nil {
		t.Fatal(err)
	}
	vt, err := timeViews(ctx, conn, db, fhsql.Views)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range fhsql.Views {
		if ms, ok := vt.Ms[v]; !ok || ms <= 0 || vt.Rows[v] != 0 {
			t.Errorf("%s: %v ms (timed: %v), %d rows; want a time and no rows", v, ms, ok, vt.Rows[v])
		}
	}
	if vt.Load1 <= 0 {
		t.Errorf("load average %v, want > 0", vt.Load1)
	}
}
