package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/funnelhouse/funnelhouse/bench/perf"
	chsink "github.com/funnelhouse/funnelhouse/sinks/clickhouse"
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
	// The broker runs as a process of its own, so that its CPU is its own
	// and in the total, and the harness's is not.
	if r := systems["funnelhouse"]; r != nil {
		if want := r.CPUSecPerMEv + r.CHCPUSecPerMEv + r.BrokerCPUSecPerMEv; r.BrokerCPUSecPerMEv <= 0 || math.Abs(r.TotalCPUSecPerMEv-want) > 1e-9 {
			t.Errorf("funnelhouse: broker %v CPU-s/M, total %v; want a broker's CPU, and the total %v with it", r.BrokerCPUSecPerMEv, r.TotalCPUSecPerMEv, want)
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
// state, and the samples and the latency must be there. 30 s, not 20: the
// state rate is taken between the samples of 10 s and the end, and a
// window of one checkpoint interval (10 s) may hold no checkpoint (a CI
// run once measured 0 B/s so).
func TestBenchLive(t *testing.T) {
	dsn := testDSN(t, "fh_bench_live")
	bin := buildBinary(t)
	out := filepath.Join(t.TempDir(), "live.json")
	cmd := exec.Command(bin, "bench", "--live", "--clickhouse", dsn, "--live-duration", "30s", "--live-rate", "2000",
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
	if r.StateBytes <= 0 || r.StateBytesPerS <= 0 || r.HeldAtEnd < 2000 || len(r.Samples) < 2 || r.Records < 45_000 {
		t.Errorf("live result incomplete: %d state bytes (%.0f/s), %d held at end, %d samples, %d records",
			r.StateBytes, r.StateBytesPerS, r.HeldAtEnd, len(r.Samples), r.Records)
	}
	if r.LatencyN == 0 || r.LatencyP50S < 5 {
		t.Errorf("latency: %d probes, p50 %.1f s; want probes, each held for the 5 s lateness (%s)", r.LatencyN, r.LatencyP50S, r.LatencyNote)
	}
	t.Logf("%s", tail(output, 1500))
}

// TestBenchClusterFlags: the flags of `bench --cluster` are checked before
// anything is measured, each error naming the flag at fault.
func TestBenchClusterFlags(t *testing.T) {
	dir := t.TempDir()
	f := func(want string, args ...string) {
		t.Helper()
		err := benchCmd(context.Background(), append([]string{"--clickhouse", "clickhouse://default@127.0.0.1:1/fh_bench"}, args...))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("bench %v: error %v, want one containing %q", args, err, want)
		}
	}
	f("needs --cluster-clickhouse", "--cluster", "funnelhouse")
	f("need --cluster", "--cluster-clickhouse", "clickhouse://default@127.0.0.1:2/fh_bench")
	f("need --cluster", "--cluster-dir", dir)
	f("names no database", "--cluster", "funnelhouse", "--cluster-clickhouse", "clickhouse://default@127.0.0.1:2/")
	f("invalid --cluster", "--cluster", "fh-1; DROP", "--cluster-clickhouse", "clickhouse://default@127.0.0.1:2/fh_bench")
	f("invalid --cluster-dir", "--cluster", "funnelhouse", "--cluster-clickhouse", "clickhouse://default@127.0.0.1:2/fh_bench", "--cluster-dir", dir+"/none")
	f("not measured with --live", "--live", "--cluster", "funnelhouse")
}

// TestBenchCluster runs `bench --cluster` small on the test cluster
// (make test starts one; FUNNELHOUSE_TEST_CLUSTER_DIR for its pids): the
// single server and the cluster are both measured and verified exact, the
// cluster's CPU is the sum over its servers with ZooKeeper's apart, and
// every events row is on one shard or the other.
func TestBenchCluster(t *testing.T) {
	dsn := testDSN(t, "fh_bench_single")
	dir := clusterDir(t)
	cdsn := clusterDSNs(t, "fh_bench_cluster")[0]
	bin := buildBinary(t)
	out := filepath.Join(t.TempDir(), "bench.json")
	args := []string{"bench", "--clickhouse", dsn, "--events", "30000", "--runs", "1", "--partitions", "2", "--peers", "", "--latency-seconds", "0",
		"--cluster", testCluster, "--cluster-clickhouse", cdsn, "--cluster-dir", dir, "--json", out}
	if pid := os.Getenv("FUNNELHOUSE_TEST_CLICKHOUSE_DIR"); pid != "" {
		args = append(args, "--clickhouse-pid-file", filepath.Join(pid, "pid"))
	}
	output, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("bench --cluster: %v\n%s", err, tail(output, 4000))
	}
	var rep perf.Report
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 2 || rep.Results[0].System != "funnelhouse" || rep.Results[1].System != perf.ClusterSystem+"-"+chsink.DefaultClusterInsert || !rep.Verified {
		t.Fatalf("want verified results funnelhouse and %s, got %d (verified %v):\n%s", perf.ClusterSystem, len(rep.Results), rep.Verified, tail(output, 4000))
	}
	cl := rep.Results[1]
	var shards, replicas int
	shape, _ := os.ReadFile(filepath.Join(dir, "shape"))
	if _, err := fmt.Sscan(string(shape), &shards, &replicas); err != nil {
		t.Fatalf("%s/shape: %v", dir, err)
	}
	sum := 0.0
	for _, c := range cl.CHCPUByServer {
		sum += c
	}
	if cl.RecordsPerSec <= 0 || cl.CHCPUSecPerMEv <= 0 || cl.ZooKeeperCPUSecPerMEv <= 0 || len(cl.CHCPUByServer) != shards*replicas ||
		sum < cl.CHCPUSecPerMEv*0.99 || sum > cl.CHCPUSecPerMEv*1.01 || !strings.HasPrefix(cl.Cluster, testCluster+": ") {
		t.Errorf("cluster result incomplete: %.0f records/s, ClickHouse CPU %.2f s/M (servers %v, sum %.2f), ZooKeeper %.2f s/M, cluster %q",
			cl.RecordsPerSec, cl.CHCPUSecPerMEv, cl.CHCPUByServer, sum, cl.ZooKeeperCPUSecPerMEv, cl.Cluster)
	}
	var rows uint64
	for _, n := range cl.EventsByShard {
		if n == 0 {
			t.Errorf("a shard holds no events: %v", cl.EventsByShard)
		}
		rows += n
	}
	if len(cl.EventsByShard) != shards || rows != uint64(rep.Events) {
		t.Errorf("events rows by shard %v (sum %d), want %d shards summing to the %d events", cl.EventsByShard, rows, shards, rep.Events)
	}
	if rep.Ratios[cl.System+"/funnelhouse"] <= 0 || !strings.Contains(string(output), "ZooKeeper CPU s/M") {
		t.Errorf("no ratio or no ZooKeeper column:\n%s", tail(output, 3000))
	}
	t.Logf("%s", tail(output, 1500))
}
