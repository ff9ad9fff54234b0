package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/funnelhouse/funnelhouse/bench/perf"
	fhsql "github.com/funnelhouse/funnelhouse/sql"
)

// TestBenchShort runs `funnelhouse bench` small, with every peer, so that
// the command keeps working: every funnelhouse run is verified exact, the
// latency phase sees its probes, the peers ingest every record, and the
// dashboard is timed on funnelhouse and the query-time peer.
func TestBenchShort(t *testing.T) {
	dsn := testDSN(t, "fh_bench")
	bin := buildBinary(t)
	out := filepath.Join(t.TempDir(), "bench.json")
	cmd := exec.Command(bin, "bench", "--clickhouse", dsn, "--events", "30000", "--runs", "1", "--partitions", "2",
		"--latency-seconds", "2", "--latency-rate", "5000", "--json", out)
	output, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, tail(output, 4000))
	}
	var rep perf.Report
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	systems := map[string]*perf.Result{}
	for _, r := range rep.Results {
		systems[r.System] = r
	}
	for _, name := range []string{"funnelhouse", "kafka-engine", "naive", "query-time"} {
		if r := systems[name]; r == nil || r.RecordsPerSec <= 0 {
			t.Errorf("no result for %s: %+v", name, r)
		}
	}
	for _, name := range []string{"funnelhouse", "query-time"} {
		if r := systems[name]; r != nil && (r.Dashboard == nil || r.Dashboard.Ms <= 0) {
			t.Errorf("no dashboard time for %s: %+v", name, r.Dashboard)
		}
	}
	// Every view BI tools read is timed on funnelhouse's database, in the
	// JSON and in the printed table.
	if r := systems["funnelhouse"]; r != nil {
		for _, v := range fhsql.Views {
			if ms, ok := r.ViewQueryMs[v]; !ok || ms <= 0 || r.ViewRows[v] == 0 {
				t.Errorf("funnelhouse view %s: %v ms (timed: %v), %d rows; want a time and rows", v, ms, ok, r.ViewRows[v])
			}
		}
	}
	if !strings.Contains(string(b), `"view_query_ms"`) || !strings.Contains(string(output), "views of the last funnelhouse run") {
		t.Errorf("no view query times in the JSON or the table:\n%s", tail(output, 3000))
	}
	if r := systems["query-time"]; r != nil && len(r.ViewChecks) != 4 {
		t.Errorf("query-time: %d view checks, want 4: %+v", len(r.ViewChecks), r.ViewChecks)
	}
	// funnelhouse/ each peer, and the dashboard time query-time/funnelhouse
	if !rep.Verified || rep.LatencyN == 0 || rep.LatencyP99 <= 0 || len(rep.Ratios) != 4 {
		t.Errorf("report incomplete: verified %v, %d latency probes (p99 %v ms), ratios %v", rep.Verified, rep.LatencyN, rep.LatencyP99, rep.Ratios)
	}
	if !strings.Contains(string(output), "ratio funnelhouse/naive") {
		t.Errorf("no ratio in the table:\n%s", output)
	}
	t.Logf("%s", tail(output, 1500))
}

// TestBenchLive runs `funnelhouse bench --live` small: real-time traffic
// must be held for the lateness (held events), checkpoints must write
// state, and the samples and the latency must be there.
func TestBenchLive(t *testing.T) {
	dsn := testDSN(t, "fh_bench_live")
	bin := buildBinary(t)
	out := filepath.Join(t.TempDir(), "live.json")
	cmd := exec.Command(bin, "bench", "--live", "--clickhouse", dsn, "--live-duration", "20s", "--live-rate", "2000",
		"--partitions", "2", "--lateness", "5s", "--json", out)
	output, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bench --live: %v\n%s", err, tail(output, 4000))
	}
	var rep perf.LiveReport
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 1 {
		t.Fatalf("%d results, want 1:\n%s", len(rep.Results), tail(output, 4000))
	}
	r := rep.Results[0]
	// 2,000 events/s held for 5 s: about 10,000 held at any time.
	if r.StateBytes <= 0 || r.StateBytesPerS <= 0 || r.HeldAtEnd < 2000 || len(r.Samples) < 2 || r.Records < 30_000 {
		t.Errorf("live result incomplete: %d state bytes (%.0f/s), %d held at end, %d samples, %d records",
			r.StateBytes, r.StateBytesPerS, r.HeldAtEnd, len(r.Samples), r.Records)
	}
	if r.LatencyN == 0 || r.LatencyP50S < 5 {
		t.Errorf("latency: %d probes, p50 %.1f s; want probes, each held for the 5 s lateness (%s)", r.LatencyN, r.LatencyP50S, r.LatencyNote)
	}
	t.Logf("%s", tail(output, 1500))
}
