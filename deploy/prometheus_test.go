package deploy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestPrometheusEndToEnd runs the whole stack as processes: `funnelhouse
// broker`, `generate`, `migrate` and `run` against a ClickHouse of the
// test's own, scraped every second by Debian's Prometheus with
// deploy/prometheus/rules.yml (its `for:` durations and rate windows cut to
// seconds, so that the test takes one minute and not ten). Through
// Prometheus' HTTP API: the records counted and the lag match what was
// produced; every PromQL expression of the Grafana dashboards evaluates; and
// stopping ClickHouse fires FunnelhouseCheckpointStalled and
// FunnelhouseClickHouseInsertRetries, which end once it is back.
func TestPrometheusEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("a minute of processes")
	}
	if os.Getenv("FUNNELHOUSE_TEST_CLICKHOUSE") == "" {
		t.Skip("FUNNELHOUSE_TEST_CLICKHOUSE is not set: run `make test`")
	}
	prom, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatal("prometheus is not installed: this test scrapes funnelhouse with it; install it with `apt-get install prometheus` (make test does, through deploy/prereqs.sh)")
	}
	bin := funnelhouseBin(t)
	chDSN, stopCH, startCH := ownServer(t)
	dsn := chDSN + "fh_prom"
	brokers := freeLoopback(t)
	const events, partitions = 500_000, 4
	topics := []string{"--clickstream-topic", "p.clickstream", "--transactions-topic", "p.transactions"}
	background(t, bin, "broker", "--listen", brokers, "--partitions", strconv.Itoa(partitions),
		"--topics", "p.clickstream,p.transactions,p.dlq", "--min-session-timeout", "500ms")
	waitFor(t, "the broker listens", 30*time.Second, func() bool { return dial(brokers) })
	mustRun(t, bin, "migrate", "--clickhouse", dsn)
	mustRun(t, bin, append([]string{"generate", "--brokers", brokers, "--events", strconv.Itoa(events), "--seed", "3"}, topics...)...)
	// Prometheus first, so that it scrapes the run from its start.
	metrics := freeLoopback(t)
	api := startPrometheus(t, prom, metrics)
	// Prometheus hands new targets to its scrapers every 5 s: wait for the
	// first scrape (of a target still down) so that it sees the run's start.
	waitFor(t, "Prometheus scrapes the target", time.Minute, func() bool {
		_, ok := scalar(t, api, `up{job="funnelhouse"}`)
		return ok
	})
	background(t, bin, append([]string{"run", "--brokers", brokers, "--clickhouse", dsn, "--group", "prom", "--dlq-topic", "p.dlq",
		"--metrics-addr", metrics, "--flush-interval", "300ms", "--idle-advance", "2s", "--session-timeout", "1s"}, topics...)...)

	produced := endOffsets(t, brokers, "p.clickstream", "p.transactions")
	waitFor(t, "Prometheus sees every produced record read", 2*time.Minute, func() bool {
		v, ok := scalar(t, api, "sum(funnelhouse_pipeline_records_total)")
		return ok && v == produced
	})
	waitFor(t, "Prometheus sees no lag", time.Minute, func() bool {
		v, ok := scalar(t, api, "sum(funnelhouse:consumer_lag_records:sum)")
		return ok && v == 0
	})
	if v, ok := scalar(t, api, "sum(max_over_time(funnelhouse:records:rate1m[5m]))"); !ok || v <= 0 {
		t.Errorf("the recorded records rate was never above 0 (%v, %v)", v, ok)
	}
	time.Sleep(5 * time.Second) // a few scrapes after the end, for the rate windows
	checkDashboardQueries(t, api)

	for _, a := range []string{"FunnelhouseCheckpointStalled", "FunnelhouseClickHouseInsertRetries"} {
		if state := alertState(t, api, a); state != "" {
			t.Errorf("%s is %s before ClickHouse is stopped", a, state)
		}
	}
	stopCH()
	for _, a := range []string{"FunnelhouseCheckpointStalled", "FunnelhouseClickHouseInsertRetries"} {
		took := waitFor(t, a+" fires", 90*time.Second, func() bool { return alertState(t, api, a) == "firing" })
		t.Logf("ClickHouse down: %s firing after %s", a, took.Round(time.Second))
	}
	startCH()
	for _, a := range []string{"FunnelhouseCheckpointStalled", "FunnelhouseClickHouseInsertRetries"} {
		took := waitFor(t, a+" ends", 2*time.Minute, func() bool { return alertState(t, api, a) == "" })
		t.Logf("ClickHouse back: %s inactive after %s", a, took.Round(time.Second))
	}
}

// startPrometheus runs Prometheus on a free port with a scrape interval of
// one second and the project's rules, cut to seconds; it returns the API's
// base URL.
func startPrometheus(t *testing.T, prom, target string) string {
	dir := t.TempDir()
	rules, err := os.ReadFile("prometheus/rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	fast := regexp.MustCompile(`for: \d+m`).ReplaceAll(rules, []byte("for: 3s"))
	fast = regexp.MustCompile(`\[(1|5|10)m\]`).ReplaceAll(fast, []byte("[15s]"))
	if err := os.WriteFile(filepath.Join(dir, "rules.yml"), fast, 0o644); err != nil {
		t.Fatal(err)
	}
	config := fmt.Sprintf("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [rules.yml]\n"+
		"scrape_configs:\n  - job_name: funnelhouse\n    static_configs:\n      - targets: [%q]\n", target)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	listen := freeLoopback(t)
	background(t, prom, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+listen, "--log.level=warn")
	base := "http://" + listen
	waitFor(t, "Prometheus is ready", time.Minute, func() bool {
		resp, err := http.Get(base + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return base
}

// checkDashboardQueries evaluates every PromQL expression of the Grafana
// dashboards: each must evaluate, and those over funnelhouse's metrics
// must return data (the run feeds them all, but for the metrics only a
// fault moves).
func checkDashboardQueries(t *testing.T, api string) {
	noDataYet := regexp.MustCompile(`funnelhouse_sink_retries_total|dead_letters|late_events`)
	exprs := promExprs(t)
	for _, k := range sortedKeys(exprs) {
		q := grafanaVars.Replace(exprs[k])
		if strings.HasPrefix(q, "label_values(") {
			continue
		}
		res, err := query(api, q)
		if err != nil {
			t.Errorf("dashboard %s: %s: %v", k, q, err)
			continue
		}
		if len(res) == 0 && strings.Contains(q, "funnelhouse_") && !noDataYet.MatchString(q) {
			t.Errorf("dashboard %s: %s returns no data after a run", k, q)
		}
	}
	t.Logf("%d dashboard expressions evaluated on Prometheus", len(exprs))
}

// grafanaVars stands in for Grafana's variables.
var grafanaVars = strings.NewReplacer("$__rate_interval", "1m", "$__range", "1h", "$__interval", "1m", `"$job"`, `"funnelhouse"`, `"$instance"`, `".+"`)

type promResult []struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func query(api, q string) (promResult, error) {
	resp, err := http.Get(api + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("%s", body.Error)
	}
	var res promResult
	if len(body.Data.Result) > 0 && body.Data.Result[0] == '[' {
		if err := json.Unmarshal(body.Data.Result, &res); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// scalar returns the value of a query that yields one series.
func scalar(t *testing.T, api, q string) (float64, bool) {
	res, err := query(api, q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	if len(res) != 1 {
		return 0, false
	}
	v, err := strconv.ParseFloat(fmt.Sprint(res[0].Value[1]), 64)
	return v, err == nil
}

// alertState is "firing", "pending" or "" for the named alert.
func alertState(t *testing.T, api, name string) string {
	resp, err := http.Get(api + "/api/v1/alerts")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Data struct {
			Alerts []struct {
				Labels map[string]string `json:"labels"`
				State  string            `json:"state"`
			} `json:"alerts"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	state := ""
	for _, a := range body.Data.Alerts {
		if a.Labels["alertname"] == name && (state == "" || a.State == "firing") {
			state = a.State
		}
	}
	return state
}

// endOffsets is the number of records in the input topics, from the broker.
func endOffsets(t *testing.T, brokers string, topics ...string) float64 {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(context.Background(), topics...)
	if err != nil {
		t.Fatal(err)
	}
	n := int64(0)
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return float64(n)
}

func ownServer(t *testing.T) (dsn string, stop, start func()) {
	dir := t.TempDir()
	run := func(env []string, args ...string) string {
		cmd := exec.Command("bash", append([]string{"clickhouse.sh"}, args...)...)
		cmd.Env = append(os.Environ(), env...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("clickhouse.sh %v: %v\n%s", args, err, stderr.String())
		}
		return strings.TrimSpace(string(out))
	}
	dsn = run(nil, "start", dir)
	t.Cleanup(func() { run(nil, "stop", dir) })
	native, _ := os.ReadFile(filepath.Join(dir, "native.port"))
	httpPort, _ := os.ReadFile(filepath.Join(dir, "http.port"))
	ports := []string{"CH_NATIVE_PORT=" + strings.TrimSpace(string(native)), "CH_HTTP_PORT=" + strings.TrimSpace(string(httpPort))}
	return dsn, func() { run(nil, "stop", dir) }, func() { run(ports, "start", dir) }
}

func freeLoopback(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func dial(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
	}
	return err == nil
}

// background starts a process for the rest of the test, its output shown
// when the test fails.
func background(t *testing.T, bin string, args ...string) {
	var out bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("%s %s output:\n%s", filepath.Base(bin), args[0], lastBytes(out.Bytes(), 3000))
		}
	})
}

func mustRun(t *testing.T, bin string, args ...string) string {
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", filepath.Base(bin), args, err, out)
	}
	return string(out)
}

func lastBytes(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return time.Since(start)
}
