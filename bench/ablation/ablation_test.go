package ablation

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/funnelhouse/funnelhouse/bench/perf"
	"github.com/funnelhouse/funnelhouse/pipeline/rows"
	chsink "github.com/funnelhouse/funnelhouse/sinks/clickhouse"
)

// TestLadder runs the whole ablation on 20k events against the test
// server: every step must insert rows and cost the server some CPU.
func TestLadder(t *testing.T) {
	base, dir := os.Getenv("FUNNELHOUSE_TEST_CLICKHOUSE"), os.Getenv("FUNNELHOUSE_TEST_CLICKHOUSE_DIR")
	if base == "" || dir == "" {
		t.Skip("FUNNELHOUSE_TEST_CLICKHOUSE(_DIR) is not set: run `make test`")
	}
	pid := perf.ReadPID(filepath.Join(dir, "pid"))
	if pid == 0 {
		t.Fatalf("no pid in %s/pid", dir)
	}
	port, _ := os.ReadFile(filepath.Join(dir, "http.port"))
	w, err := NewWorkload(WorkloadConfig{Events: 20_000, Seed: 1, Partitions: 4, BatchRows: 10_000, CheckpointRecords: 10_000})
	if err != nil {
		t.Fatal(err)
	}
	for _, table := range rows.Tables {
		if w.Rows[table.TableName()] == 0 {
			t.Fatalf("no %s rows in the workload: %v", table.TableName(), w.Rows)
		}
	}
	dsn := strings.TrimSuffix(base, "/") + fmt.Sprintf("/fh_ablation_%d", os.Getpid())
	cfg := Config{Endpoint: chsink.Endpoint{DSN: dsn}, CHPID: pid, HTTPURL: "http://127.0.0.1:" + strings.TrimSpace(string(port)),
		Repeats: 1, Settle: 300 * time.Millisecond, Idle: 500 * time.Millisecond}
	rep, err := Run(context.Background(), cfg, w)
	if err != nil {
		t.Fatal(err)
	}
	steps, _ := Ladder()
	if len(rep.Steps) != len(steps) || rep.Ref == nil {
		t.Fatalf("%d steps and reference %v, want %d steps and the reference", len(rep.Steps), rep.Ref != nil, len(steps))
	}
	// At 20k records the server's idle CPU, which is subtracted, is of the
	// size of a step's: a step's figure may come out negative here. The
	// inserts as a whole must have cost something, and every figure must
	// be a number.
	inserts := 0.0
	for _, r := range append(rep.Steps, rep.Ref) {
		if r.Rows <= 0 || math.IsNaN(r.CPUPerM) || math.IsInf(r.CPUPerM, 0) {
			t.Errorf("%s: %.2f CPU-s/M, %d rows; want rows and a number", r.Step, r.CPUPerM, r.Rows)
		}
		inserts += r.InsertPerM
	}
	if inserts <= 0 {
		t.Errorf("the inserts of all steps cost %.2f CPU-s/M, want > 0", inserts)
	}
	var out strings.Builder
	Print(&out, rep)
	t.Log("\n" + out.String())
}

// TestMaterializedViews: the ladder has every view the migrations leave,
// and none they drop.
func TestMaterializedViews(t *testing.T) {
	views, err := MaterializedViews()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(views, ",")
	for _, v := range []string{"funnel_transitions_mv", "revenue_items_keyed_mv", "pages_daily_arrays_events_mv"} {
		if !strings.Contains(got, v) {
			t.Errorf("views %s lack %s", got, v)
		}
	}
	for _, v := range []string{"pages_daily_sessions_mv", "funnel_daily_mv", "pages_daily_keyed_events_mv", "revenue_items_mv", "churn_monthly_mv"} {
		if strings.Contains(got, v) {
			t.Errorf("views %s include %s, which a migration drops", got, v)
		}
	}
}
