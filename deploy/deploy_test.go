// Tests of the deployment files: the compose stack, the Kubernetes manifests,
// the Prometheus configuration and the Grafana dashboards. Nothing here
// needs Docker or a cluster: the files are parsed and cross-checked, the
// FUNNELHOUSE_* settings are checked against the flags of a freshly built
// funnelhouse binary (and its `run --check` configuration verdict), the
// dashboards' metric names against what the pipeline registers, and every
// ClickHouse panel query is run against a real ClickHouse
// (FUNNELHOUSE_TEST_CLICKHOUSE, as `make test` sets it; skipped without).
package deploy_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
	"gopkg.in/yaml.v3"

	"github.com/funnelhouse/funnelhouse/pipeline"
	chsink "github.com/funnelhouse/funnelhouse/sinks/clickhouse"
	fhsql "github.com/funnelhouse/funnelhouse/sql"
)

// exportedMetrics is THE list of the metrics `funnelhouse run` exports under
// the funnelhouse_ prefix (kind and variable labels): the pipeline dashboard
// may use these and, besides, only the Go and process collectors' metrics.
// TestExportedMetrics checks that this list is exactly what pipeline.New and
// the ClickHouse sink register; cmd/funnelhouse's end-to-end tests
// (TestKcatInterop, checkMetrics) scrape /metrics of a live `run`.
var exportedMetrics = map[string]metricInfo{
	"funnelhouse_pipeline_records_total":                     {"counter", []string{"topic"}},
	"funnelhouse_pipeline_events_total":                      {"counter", []string{"type"}},
	"funnelhouse_pipeline_dead_letters_total":                {"counter", []string{"reason"}},
	"funnelhouse_pipeline_duplicates_total":                  {"counter", nil},
	"funnelhouse_pipeline_late_events_total":                 {"counter", nil},
	"funnelhouse_pipeline_sessions_closed_total":             {"counter", nil},
	"funnelhouse_pipeline_stage_transitions_total":           {"counter", []string{"stage"}},
	"funnelhouse_pipeline_open_sessions":                     {"gauge", []string{"partition"}},
	"funnelhouse_pipeline_tracked_visitors":                  {"gauge", []string{"partition"}},
	"funnelhouse_pipeline_forgotten_filter_bytes":            {"gauge", []string{"partition"}},
	"funnelhouse_pipeline_visitors_forgotten_total":          {"counter", nil},
	"funnelhouse_pipeline_visitors_reloaded_total":           {"counter", nil},
	"funnelhouse_pipeline_visitor_lookups_total":             {"counter", nil},
	"funnelhouse_pipeline_held_events":                       {"gauge", []string{"partition"}},
	"funnelhouse_pipeline_held_spilled_bytes":                {"gauge", []string{"partition"}},
	"funnelhouse_pipeline_checkpoint_state_bytes":            {"gauge", []string{"partition"}},
	"funnelhouse_pipeline_watermark_delay_seconds":           {"gauge", []string{"partition"}},
	"funnelhouse_pipeline_consumer_lag_records":              {"gauge", []string{"topic", "partition"}},
	"funnelhouse_pipeline_buffered_rows":                     {"gauge", nil},
	"funnelhouse_pipeline_buffered_bytes":                    {"gauge", nil},
	"funnelhouse_pipeline_fetch_paused":                      {"gauge", nil},
	"funnelhouse_pipeline_memory_budget_bytes":               {"gauge", nil},
	"funnelhouse_pipeline_checkpoint_duration_seconds":       {"histogram", nil},
	"funnelhouse_pipeline_commit_duration_seconds":           {"histogram", nil},
	"funnelhouse_pipeline_flush_duration_seconds":            {"histogram", nil},
	"funnelhouse_pipeline_last_checkpoint_timestamp_seconds": {"gauge", nil},
	"funnelhouse_pipeline_partitions":                        {"gauge", nil},
	"funnelhouse_pipeline_assigned_partitions":               {"gauge", nil},
	"funnelhouse_pipeline_flush_interval_seconds":            {"gauge", nil},
	"funnelhouse_pipeline_checkpoint_interval_seconds":       {"gauge", nil},
	"funnelhouse_pipeline_lateness_seconds":                  {"gauge", nil},
	"funnelhouse_pipeline_idle_advance_seconds":              {"gauge", nil},
	"funnelhouse_ready":                                      {"gauge", nil},
	"funnelhouse_sink_insert_duration_seconds":               {"histogram", []string{"table"}},
	"funnelhouse_sink_batch_rows":                            {"histogram", []string{"table"}},
	"funnelhouse_sink_retries_total":                         {"counter", []string{"table"}},

	"funnelhouse_pipeline_checkpoint_state_written_bytes_total": {"counter", nil},

	// Registered by `funnelhouse run` itself, beside the Go collector
	// (followLiveHeap; cmd/funnelhouse's TestGCLimitFollowsLiveHeap and
	// checkMetrics check them).
	"funnelhouse_gc_limit_bytes":     {"gauge", nil},
	"funnelhouse_memory_over_budget": {"gauge", nil},
}

// registeredByRun are the exportedMetrics that neither pipeline.New nor
// the sink registers.
var registeredByRun = []string{"funnelhouse_gc_limit_bytes", "funnelhouse_memory_over_budget"}

type metricInfo struct {
	kind   string // counter, gauge, histogram ("" for the Go and process collectors)
	labels []string
}

// ---------------------------------------------------------------------------
// Shared helpers

var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "deploytest-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// funnelhouseBin builds cmd/funnelhouse once per test run.
func funnelhouseBin(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		goCmd, err := exec.LookPath("go")
		if err != nil {
			goCmd = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		binPath = filepath.Join(binDir, "funnelhouse")
		cmd := exec.Command(goCmd, "build", "-o", binPath, "./cmd/funnelhouse")
		cmd.Dir = ".."
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build ./cmd/funnelhouse: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

var (
	flagsMu    sync.Mutex
	flagsCache = map[string]map[string]bool{}
)

var helpFlag = regexp.MustCompile(`(?m)^\s+-([a-z0-9][a-z0-9-]*)`)

// commandFlags returns the flags of `funnelhouse <command>` from its --help.
func commandFlags(t *testing.T, command string) map[string]bool {
	t.Helper()
	flagsMu.Lock()
	defer flagsMu.Unlock()
	if f, ok := flagsCache[command]; ok {
		return f
	}
	out, err := exec.Command(funnelhouseBin(t), command, "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("funnelhouse %s --help: %v\n%s", command, err, out)
	}
	flags := map[string]bool{}
	for _, m := range helpFlag.FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	if len(flags) == 0 {
		t.Fatalf("funnelhouse %s --help lists no flags:\n%s", command, out)
	}
	flagsCache[command] = flags
	return flags
}

// checkEnvNames fails for every FUNNELHOUSE_* variable that is not a flag of
// the command: parseWithEnv silently ignores unknown variables, so a typo
// would otherwise go unnoticed.
func checkEnvNames(t *testing.T, where, command string, names []string) {
	t.Helper()
	flags := commandFlags(t, command)
	for _, name := range names {
		if !strings.HasPrefix(name, "FUNNELHOUSE_") {
			continue
		}
		flag := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(name, "FUNNELHOUSE_")), "_", "-")
		if !flags[flag] {
			t.Errorf("%s: %s is not a flag of `funnelhouse %s` (no --%s)", where, name, command, flag)
		}
	}
}

// runCheckConfig runs `funnelhouse run --check` with exactly env and returns
// its "config" verdict line (flags and environment valid, passwords
// readable), killing the process before it waits for brokers.
func runCheckConfig(t *testing.T, env map[string]string) string {
	t.Helper()
	bin := funnelhouseBin(t)
	if !commandFlags(t, "run")["check"] {
		t.Log("funnelhouse run has no --check: configuration values not checked")
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "run", "--check")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var seen []string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		seen = append(seen, line)
		if f := strings.Fields(line); len(f) >= 2 && f[1] == "config" {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return line
		}
	}
	err = cmd.Wait()
	t.Errorf("funnelhouse run --check (%v) printed no config line:\n%s%s", err, strings.Join(seen, "\n"), stderr.String())
	return ""
}

// yamlDocs decodes every document of a YAML file.
func yamlDocs(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	var docs []map[string]any
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if doc != nil {
			docs = append(docs, doc)
		}
	}
	return docs
}

func readJSON(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

// get walks nested maps and lists: get(v, "spec", "template", "spec").
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func str(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

func strList(v any) []string {
	var out []string
	for _, x := range list(v) {
		out = append(out, str(x))
	}
	return out
}

// envMap reads a compose environment in map or list form.
func envMap(v any) map[string]string {
	out := map[string]string{}
	switch e := v.(type) {
	case map[string]any:
		for k, x := range e {
			out[k] = str(x)
		}
	case []any:
		for _, x := range e {
			k, val, _ := strings.Cut(str(x), "=")
			out[k] = val
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// checkDSNHasNoPassword: passwords come from FUNNELHOUSE_CLICKHOUSE_PASSWORD(_FILE).
func checkDSNHasNoPassword(t *testing.T, where, dsn string) *url.URL {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme != "clickhouse" || u.Host == "" {
		t.Errorf("%s: FUNNELHOUSE_CLICKHOUSE %q is not a clickhouse://user@host:port/database DSN", where, dsn)
		return nil
	}
	if _, has := u.User.Password(); has {
		t.Errorf("%s: FUNNELHOUSE_CLICKHOUSE %q carries a password; use FUNNELHOUSE_CLICKHOUSE_PASSWORD(_FILE)", where, dsn)
	}
	if u.Query().Get("password") != "" {
		t.Errorf("%s: FUNNELHOUSE_CLICKHOUSE %q carries a password parameter", where, dsn)
	}
	return u
}

// ---------------------------------------------------------------------------
// (a) YAML files, compose, Prometheus, Grafana provisioning, Kubernetes

func TestYAMLFilesParse(t *testing.T) {
	n := 0
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !(strings.HasSuffix(path, ".yml") || strings.HasSuffix(path, ".yaml")) {
			return nil
		}
		n++
		if docs := yamlDocs(t, path); len(docs) == 0 {
			t.Errorf("%s: no YAML document", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 8 {
		t.Errorf("found only %d YAML files under deploy/", n)
	}
}

func loadCompose(t *testing.T) map[string]any {
	t.Helper()
	docs := yamlDocs(t, "compose/docker-compose.yml")
	if len(docs) != 1 {
		t.Fatalf("docker-compose.yml: %d documents, want 1", len(docs))
	}
	return docs[0]
}

func TestCompose(t *testing.T) {
	c := loadCompose(t)
	services, _ := c["services"].(map[string]any)
	for _, name := range []string{"redpanda", "topics", "clickhouse", "migrate", "generate", "prometheus", "grafana"} {
		if services[name] == nil {
			t.Errorf("docker-compose.yml: no service %q", name)
		}
	}
	svc := func(name string) map[string]any { m, _ := services[name].(map[string]any); return m }
	members := composeMembers(t, c)
	dependsOn := func(name, on, condition string) {
		if got := str(get(svc(name), "depends_on", on, "condition")); got != condition {
			t.Errorf("service %s: depends_on %s condition %q, want %q", name, on, got, condition)
		}
	}

	// Images: the funnelhouse services run the image built by deploy/Dockerfile.
	for _, name := range append([]string{"migrate", "generate"}, members...) {
		s := svc(name)
		if str(get(s, "build", "dockerfile")) != "deploy/Dockerfile" || str(get(s, "build", "context")) != "../.." {
			t.Errorf("service %s: build %v, want context ../.. and dockerfile deploy/Dockerfile", name, s["build"])
		}
	}
	if img := str(get(svc("clickhouse"), "image")); !strings.HasPrefix(img, "clickhouse/clickhouse-server:") {
		t.Errorf("service clickhouse: image %q, want clickhouse/clickhouse-server", img)
	}
	if img := str(get(svc("redpanda"), "image")); !strings.Contains(img, "redpanda") {
		t.Errorf("service redpanda: image %q", img)
	}

	// The topics job: both inputs and the dead-letter topic, one partition
	// count for both inputs.
	topics := svc("topics")
	script := strings.Join(strList(topics["command"]), "\n")
	for _, topic := range []string{"clickstream", "transactions", "funnelhouse.dlq"} {
		if !strings.Contains(script, topic) {
			t.Errorf("service topics does not create %s", topic)
		}
	}
	if p := envMap(topics["environment"])["PARTITIONS"]; p != "12" || !strings.Contains(script, `--partitions "$$PARTITIONS"`) {
		t.Errorf("service topics: PARTITIONS=%q, want 12 used for every topic", p)
	}
	dependsOn("topics", "redpanda", "service_healthy")
	if r := str(topics["restart"]); r != "no" {
		t.Errorf("service topics: restart %q, want \"no\" (one-shot)", r)
	}

	// ClickHouse: a user with a password from the compose secret.
	ch := svc("clickhouse")
	if u := envMap(ch["environment"])["CLICKHOUSE_USER"]; u == "" || u == "default" {
		t.Errorf("service clickhouse: CLICKHOUSE_USER %q, want a user of its own", u)
	}
	if !slices.Contains(strList(ch["secrets"]), "clickhouse_password") ||
		!strings.Contains(strings.Join(strList(ch["entrypoint"]), " "), "/run/secrets/clickhouse_password") {
		t.Error("service clickhouse: the password must come from the clickhouse_password secret")
	}

	// migrate, the run members, generate: configured only through
	// FUNNELHOUSE_* variables.
	commands := map[string]string{"migrate": "migrate", "generate": "generate", "migrate-cluster": "migrate", "funnelhouse-cluster": "run"}
	for _, name := range members {
		commands[name] = "run"
	}
	for name, want := range commands {
		s := svc(name)
		if cmd := strList(s["command"]); len(cmd) != 1 || cmd[0] != want {
			t.Errorf("service %s: command %v, want [%s]", name, cmd, want)
		}
		env := envMap(s["environment"])
		for k := range env {
			if !strings.HasPrefix(k, "FUNNELHOUSE_") {
				t.Errorf("service %s: variable %s: configure funnelhouse only through FUNNELHOUSE_*", name, k)
			}
		}
		checkEnvNames(t, "service "+name, want, sortedKeys(env))
		if dsn, ok := env["FUNNELHOUSE_CLICKHOUSE"]; ok {
			checkDSNHasNoPassword(t, "service "+name, dsn)
			if env["FUNNELHOUSE_CLICKHOUSE_PASSWORD_FILE"] != "/run/secrets/clickhouse_password" || !slices.Contains(strList(s["secrets"]), "clickhouse_password") {
				t.Errorf("service %s: FUNNELHOUSE_CLICKHOUSE_PASSWORD_FILE must be the mounted secret /run/secrets/clickhouse_password", name)
			}
		}
		if env["FUNNELHOUSE_CLICKHOUSE_PASSWORD"] != "" {
			t.Errorf("service %s: a password in the compose file; use the secret", name)
		}
	}
	dependsOn("migrate", "clickhouse", "service_healthy")
	dependsOn("generate", "topics", "service_completed_successfully")
	if p := strList(svc("generate")["profiles"]); !slices.Equal(p, []string{"demo"}) {
		t.Errorf("service generate: profiles %v, want [demo]", p)
	}

	// The pipeline members: one service each, because each has its own
	// static instance id (replicas of one service share their environment),
	// and otherwise the same service (one YAML anchor).
	ids := map[string]string{} // FUNNELHOUSE_INSTANCE_ID -> service
	var first map[string]any
	for _, name := range members {
		checkComposeMember(t, name, svc(name), "migrate", envMap(svc("migrate")["environment"])["FUNNELHOUSE_CLICKHOUSE"])
		env := envMap(svc(name)["environment"])
		id := env["FUNNELHOUSE_INSTANCE_ID"]
		switch {
		case id == "":
			t.Errorf("service %s: no FUNNELHOUSE_INSTANCE_ID (static group membership)", name)
		case ids[id] != "":
			t.Errorf("services %s and %s share FUNNELHOUSE_INSTANCE_ID %q: two processes with one id fence each other", ids[id], name, id)
		default:
			ids[id] = name
		}
		// Everything but the instance id is shared.
		rest := maps.Clone(svc(name))
		restEnv := maps.Clone(env)
		delete(restEnv, "FUNNELHOUSE_INSTANCE_ID")
		rest["environment"] = restEnv
		if first == nil {
			first = rest
		} else if !reflect.DeepEqual(rest, first) {
			t.Errorf("service %s differs from %s in more than FUNNELHOUSE_INSTANCE_ID: share one anchor", name, members[0])
		}
	}

	// Grafana: the ClickHouse plugin, the provisioning and dashboards mounted.	// Grafana: the ClickHouse plugin, the provisioning and dashboards mounted.
	gf := svc("grafana")
	if p := envMap(gf["environment"])["GF_INSTALL_PLUGINS"]; !strings.Contains(p, "grafana-clickhouse-datasource") {
		t.Errorf("service grafana: GF_INSTALL_PLUGINS %q lacks grafana-clickhouse-datasource", p)
	}
	mounts := map[string]string{} // container path -> host path
	for _, name := range []string{"prometheus", "grafana"} {
		for _, v := range strList(svc(name)["volumes"]) {
			parts := strings.Split(v, ":")
			if len(parts) < 2 || !strings.HasPrefix(parts[0], ".") {
				continue // a named volume
			}
			mounts[parts[1]] = parts[0]
			if _, err := os.Stat(filepath.Join("compose", parts[0])); err != nil {
				t.Errorf("service %s mounts %s, which does not exist: %v", name, parts[0], err)
			}
		}
	}
	for target, host := range map[string]string{
		"/etc/prometheus/prometheus.yml": "../prometheus/prometheus.yml",
		"/etc/grafana/provisioning":      "../grafana/provisioning",
	} {
		if mounts[target] != host {
			t.Errorf("%s is mounted from %q, want %q", target, mounts[target], host)
		}
	}
	if !slices.Contains(strList(gf["secrets"]), "clickhouse_password") {
		t.Error("service grafana: needs the clickhouse_password secret for its ClickHouse data source")
	}

	// The secret file stays out of git.
	secretFile := str(get(c, "secrets", "clickhouse_password", "file"))
	if !strings.HasPrefix(secretFile, "./secrets/") {
		t.Errorf("secret clickhouse_password: file %q, want under ./secrets/", secretFile)
	}
	if b, err := os.ReadFile("compose/secrets/.gitignore"); err != nil || !strings.Contains(string(b), "*") {
		t.Errorf("compose/secrets/.gitignore must ignore the secret files: %v", err)
	}

	checkPrometheusConfig(t, members)
	checkGrafanaProvisioning(t, c, members[0], mounts)
	checkComposeCluster(t, c, members)
}

// composeMembers returns the names of the compose services that run the
// pipeline (command [run]) on the single server, in no profile: at least
// two.
func composeMembers(t *testing.T, c map[string]any) []string {
	t.Helper()
	services, _ := c["services"].(map[string]any)
	var members []string
	for _, name := range sortedKeys(services) {
		if cmd := strList(get(services[name], "command")); slices.Equal(cmd, []string{"run"}) && get(services[name], "profiles") == nil {
			members = append(members, name)
		}
	}
	if len(members) < 2 {
		t.Fatalf("docker-compose.yml: run services %v, want at least two members", members)
	}
	return members
}

// checkComposeMember checks one pipeline member of the compose stack: its
// settings, health check, shutdown, dependencies, and the configuration as
// `run --check` judges it.
func checkComposeMember(t *testing.T, name string, run map[string]any, migrate, migrateDSN string) {
	t.Helper()
	runEnv := envMap(run["environment"])
	for k, want := range map[string]string{"FUNNELHOUSE_BROKERS": "redpanda:9092", "FUNNELHOUSE_METRICS_ADDR": "0.0.0.0:9464"} {
		if runEnv[k] != want {
			t.Errorf("service %s: %s=%q, want %q", name, k, runEnv[k], want)
		}
	}
	if runEnv["FUNNELHOUSE_CLICKHOUSE"] == "" || runEnv["FUNNELHOUSE_CLICKHOUSE"] != migrateDSN {
		t.Errorf("services %s and %s must use the same FUNNELHOUSE_CLICKHOUSE", name, migrate)
	}
	if p := runEnv["FUNNELHOUSE_PPROF"]; p != "" && p != "false" {
		t.Errorf("service %s: FUNNELHOUSE_PPROF=%q: keep /debug/pprof off by default", name, p)
	}
	if r := get(run, "deploy", "replicas"); r != nil && str(r) != "1" {
		t.Errorf("service %s: deploy.replicas %v: replicas share FUNNELHOUSE_INSTANCE_ID and fence each other; add a service per member", name, r)
	}
	if hc := strings.Join(strList(get(run, "healthcheck", "test")), " "); !strings.Contains(hc, "http://127.0.0.1:9464/healthz") {
		t.Errorf("service %s: healthcheck %q does not GET /healthz on the metrics port", name, hc)
	}
	if g, _ := time.ParseDuration(str(run["stop_grace_period"])); g <= 60*time.Second {
		t.Errorf("service %s: stop_grace_period %v, want above the 60 s shutdown timeout", name, run["stop_grace_period"])
	}
	dependsOn := func(on, condition string) {
		if got := str(get(run, "depends_on", on, "condition")); got != condition {
			t.Errorf("service %s: depends_on %s condition %q, want %q", name, on, got, condition)
		}
	}
	dependsOn(migrate, "service_completed_successfully")
	dependsOn("topics", "service_completed_successfully")
	// Generated events are historical: with the demo profile the members
	// start after them (optional dependency), or idle members would have
	// moved the watermark past them.
	dependsOn("generate", "service_completed_successfully")
	if r := str(get(run, "depends_on", "generate", "required")); r != "false" {
		t.Errorf("service %s: depends_on generate must be required: false (generate is in the demo profile), got %q", name, r)
	}

	// The configuration values themselves, as `run --check` judges them
	// (the secret file replaced by a temporary one).
	pw := filepath.Join(t.TempDir(), "clickhouse_password")
	if err := os.WriteFile(pw, []byte("example-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	checkEnv := map[string]string{}
	for k, v := range runEnv {
		checkEnv[k] = strings.ReplaceAll(v, "/run/secrets/clickhouse_password", pw)
	}
	switch line := runCheckConfig(t, checkEnv); {
	case line == "":
	case strings.HasPrefix(line, "ok"):
		t.Logf("service %s: funnelhouse run --check with its environment: %s", name, line)
	default:
		t.Errorf("service %s: funnelhouse run --check with its environment: %s", name, line)
	}
}

// checkPrometheusConfig: job funnelhouse scrapes every member on :9464.
func checkPrometheusConfig(t *testing.T, members []string) {
	docs := yamlDocs(t, "prometheus/prometheus.yml")
	var job map[string]any
	for _, j := range list(get(docs[0], "scrape_configs")) {
		if str(get(j, "job_name")) == "funnelhouse" {
			job, _ = j.(map[string]any)
		}
	}
	if job == nil {
		t.Fatal("prometheus.yml: no scrape job funnelhouse")
	}
	if p := str(job["metrics_path"]); p != "" && p != "/metrics" {
		t.Errorf("prometheus.yml: metrics_path %q, want /metrics", p)
	}
	// member:9464 for every member, as a static target or a DNS name.
	for _, m := range members {
		found := false
		for _, sc := range list(job["static_configs"]) {
			found = found || slices.Contains(strList(get(sc, "targets")), m+":9464")
		}
		for _, sd := range list(job["dns_sd_configs"]) {
			found = found || (slices.Contains(strList(get(sd, "names")), m) && str(get(sd, "port")) == "9464")
		}
		if !found {
			t.Errorf("prometheus.yml: job funnelhouse does not scrape %s:9464", m)
		}
	}
	if out, err := exec.Command(promtool(t), "check", "config", "prometheus/prometheus.yml").CombinedOutput(); err != nil {
		t.Errorf("promtool check config prometheus/prometheus.yml: %v\n%s", err, out)
	}
}

func checkGrafanaProvisioning(t *testing.T, compose map[string]any, member string, mounts map[string]string) {
	docs := yamlDocs(t, "grafana/provisioning/datasources/datasources.yml")
	byType := map[string]map[string]any{}
	for _, ds := range list(get(docs[0], "datasources")) {
		m, _ := ds.(map[string]any)
		byType[str(m["type"])] = m
	}
	prom, chds := byType["prometheus"], byType["grafana-clickhouse-datasource"]
	if prom == nil || chds == nil {
		t.Fatalf("datasources.yml: want a prometheus and a grafana-clickhouse-datasource data source, have %v", sortedKeys(byType))
	}
	if u := str(prom["url"]); u != "http://prometheus:9090" {
		t.Errorf("datasources.yml: Prometheus url %q, want http://prometheus:9090", u)
	}
	services, _ := compose["services"].(map[string]any)
	runEnv := envMap(get(services, member, "environment"))
	dsn, _ := url.Parse(runEnv["FUNNELHOUSE_CLICKHOUSE"])
	if dsn != nil {
		jd := get(chds, "jsonData")
		if h := str(get(jd, "host")); services[h] == nil || h+":"+str(get(jd, "port")) != dsn.Host {
			t.Errorf("datasources.yml: ClickHouse %s:%v, want the pipeline's %s", h, get(jd, "port"), dsn.Host)
		}
		if db := str(get(jd, "defaultDatabase")); "/"+db != dsn.Path {
			t.Errorf("datasources.yml: defaultDatabase %q, want the pipeline's %q", db, strings.TrimPrefix(dsn.Path, "/"))
		}
		if u := str(get(jd, "username")); u != dsn.User.Username() {
			t.Errorf("datasources.yml: username %q, want %q", u, dsn.User.Username())
		}
	}
	if p := str(get(chds, "secureJsonData", "password")); p != "$__file{/run/secrets/clickhouse_password}" {
		t.Errorf("datasources.yml: ClickHouse password %q, want it read from the compose secret", p)
	}
	docs = yamlDocs(t, "grafana/provisioning/dashboards/dashboards.yml")
	path := str(get(docs[0], "providers", 0, "options", "path"))
	if mounts[path] != "../grafana/dashboards" {
		t.Errorf("dashboards.yml loads %q, but deploy/grafana/dashboards is mounted at another path (%v)", path, mounts)
	}
}

func TestKubernetes(t *testing.T) {
	kust := yamlDocs(t, "k8s/kustomization.yaml")[0]
	resources := strList(kust["resources"])
	files, _ := filepath.Glob("k8s/*.yaml")
	// Every manifest but the examples: the Secret, whose CHANGE-ME
	// placeholders would overwrite a real Secret of the same name, and the
	// ClickHouseInstallation, whose kind exists only where the Altinity
	// operator's CRDs are installed.
	const exampleSecret, exampleCHI = "secret.example.yaml", "clickhouse-installation.example.yaml"
	var manifests, want []string
	for _, f := range files {
		if b := filepath.Base(f); b != "kustomization.yaml" {
			manifests = append(manifests, b)
			if !strings.HasSuffix(b, ".example.yaml") {
				want = append(want, b)
			}
		}
	}
	for file, what := range map[string]string{exampleSecret: "the example of the Secret's keys", exampleCHI: "the example ClickHouse cluster"} {
		if !slices.Contains(manifests, file) {
			t.Errorf("k8s/%s is gone: keep it as %s", file, what)
		}
	}
	if slices.Contains(resources, exampleSecret) {
		t.Errorf("kustomization.yaml applies %s: its placeholders would overwrite the real Secret; create the Secret out of band", exampleSecret)
	}
	if slices.Contains(resources, exampleCHI) {
		t.Errorf("kustomization.yaml applies %s: kubectl apply -k would fail wherever the operator's CRDs are missing", exampleCHI)
	}
	sorted := slices.Clone(resources)
	sort.Strings(sorted)
	if !slices.Equal(sorted, want) {
		t.Errorf("kustomization.yaml resources %v, want every manifest but the *.example.yaml ones: %v", resources, want)
	}
	for _, r := range resources {
		if !slices.Contains(manifests, r) {
			t.Errorf("kustomization.yaml lists %s, which does not exist", r)
		}
	}

	objects := map[string]map[string]any{} // Kind/name, the example Secret included
	for _, f := range manifests {
		for _, doc := range yamlDocs(t, filepath.Join("k8s", f)) {
			if ns := get(doc, "metadata", "namespace"); ns != nil {
				t.Errorf("%s: metadata.namespace %v: keep the manifests namespace-less", f, ns)
			}
			objects[str(doc["kind"])+"/"+str(get(doc, "metadata", "name"))] = doc
		}
	}
	sts, job, cm, sec := objects["StatefulSet/funnelhouse"], objects["Job/funnelhouse-migrate"], objects["ConfigMap/funnelhouse"], objects["Secret/funnelhouse"]
	if sts == nil || job == nil || cm == nil || sec == nil {
		t.Fatalf("want StatefulSet/funnelhouse, Job/funnelhouse-migrate, ConfigMap/funnelhouse, Secret/funnelhouse; have %v", sortedKeys(objects))
	}
	// A Deployment's pod names change on every rollout: each new pod would
	// join as a new static member while the old id stays reserved.
	for k := range objects {
		if strings.HasPrefix(k, "Deployment/") {
			t.Errorf("%s: run the members as a StatefulSet (stable pod names as instance ids), not a Deployment", k)
		}
	}
	config := map[string]string{}
	for k, v := range get(cm, "data").(map[string]any) {
		config[k] = str(v)
	}
	secrets := map[string]string{}
	for _, field := range []string{"stringData", "data"} {
		if m, ok := get(sec, field).(map[string]any); ok {
			for k, v := range m {
				secrets[k] = str(v)
			}
		}
	}

	// The ConfigMap: the settings, no secrets.
	for _, k := range []string{"FUNNELHOUSE_BROKERS", "FUNNELHOUSE_CLICKHOUSE", "FUNNELHOUSE_GROUP", "FUNNELHOUSE_METRICS_ADDR"} {
		if config[k] == "" {
			t.Errorf("ConfigMap: no %s", k)
		}
	}
	if config["FUNNELHOUSE_METRICS_ADDR"] != "0.0.0.0:9464" {
		t.Errorf("ConfigMap: FUNNELHOUSE_METRICS_ADDR %q, want 0.0.0.0:9464", config["FUNNELHOUSE_METRICS_ADDR"])
	}
	checkDSNHasNoPassword(t, "ConfigMap", config["FUNNELHOUSE_CLICKHOUSE"])
	secretish := regexp.MustCompile(`(?i)PASSWORD|SECRET|TOKEN|_KEY$`)
	for k, v := range config {
		if secretish.MatchString(k) {
			t.Errorf("ConfigMap: %s looks like a secret; put it in the Secret", k)
		}
		for sk, sv := range secrets {
			if sk == k {
				t.Errorf("ConfigMap and Secret both set %s", k)
			}
			if sv != "" && strings.Contains(v, sv) {
				t.Errorf("ConfigMap: %s contains the value of Secret key %s", k, sk)
			}
		}
	}
	for _, k := range []string{"FUNNELHOUSE_CLICKHOUSE_PASSWORD", "FUNNELHOUSE_KAFKA_SASL_PASSWORD"} {
		if secrets[k] == "" {
			t.Errorf("Secret: no %s", k)
		}
	}
	checkEnvNames(t, "ConfigMap", "run", sortedKeys(config))
	checkEnvNames(t, "Secret", "run", sortedKeys(secrets))

	// The StatefulSet: everything the pods need, and static membership.
	if r := str(get(sts, "spec", "replicas")); r != "3" {
		t.Errorf("StatefulSet: replicas %s, want 3", r)
	}
	pod := get(sts, "spec", "template", "spec")
	container := get(pod, "containers", 0)
	if args := strList(get(container, "args")); !slices.Equal(args, []string{"run"}) {
		t.Errorf("StatefulSet: args %v, want [run]", args)
	}
	ports := map[string]string{}
	for _, p := range list(get(container, "ports")) {
		ports[str(get(p, "name"))] = str(get(p, "containerPort"))
	}
	probe := func(kind, path string) {
		h := get(container, kind, "httpGet")
		port := str(get(h, "port"))
		if named, ok := ports[port]; ok {
			port = named
		}
		if str(get(h, "path")) != path || port != "9464" {
			t.Errorf("StatefulSet: %s is GET %v on port %v, want %s on 9464", kind, get(h, "path"), get(h, "port"), path)
		}
	}
	probe("livenessProbe", "/healthz")
	probe("readinessProbe", "/readyz")
	ann := get(sts, "spec", "template", "metadata", "annotations")
	for k, v := range map[string]string{"prometheus.io/scrape": "true", "prometheus.io/port": "9464", "prometheus.io/path": "/metrics"} {
		if got := str(get(ann, k)); got != v {
			t.Errorf("StatefulSet: pod annotation %s=%q, want %q", k, got, v)
		}
	}
	if g, _ := strconv.Atoi(str(get(pod, "terminationGracePeriodSeconds"))); g < 90 {
		t.Errorf("StatefulSet: terminationGracePeriodSeconds %d, want >= 90 (above the 60 s shutdown timeout)", g)
	}
	if str(get(pod, "securityContext", "runAsNonRoot")) != "true" || str(get(container, "securityContext", "readOnlyRootFilesystem")) != "true" ||
		str(get(container, "securityContext", "allowPrivilegeEscalation")) != "false" {
		t.Error("StatefulSet: want runAsNonRoot, readOnlyRootFilesystem and no privilege escalation")
	}
	if get(container, "resources", "requests") == nil || get(container, "resources", "limits", "memory") == nil {
		t.Error("StatefulSet: want resource requests and a memory limit")
	}
	checkPodEnv := func(what, command string, c any, wantSecrets []string) map[string]string {
		env := map[string]string{}
		allSecrets := false
		for _, ef := range list(get(c, "envFrom")) {
			if name := str(get(ef, "configMapRef", "name")); name != "" {
				if name != "funnelhouse" {
					t.Errorf("%s: envFrom ConfigMap %q, want funnelhouse", what, name)
				}
				for k, v := range config {
					env[k] = v
				}
			}
			if get(ef, "secretRef") != nil {
				allSecrets = true
				for k, v := range secrets {
					env[k] = v
				}
			}
		}
		var names, fromSecret []string
		for _, e := range list(get(c, "env")) {
			name := str(get(e, "name"))
			names = append(names, name)
			if ref := get(e, "valueFrom", "fieldRef"); ref != nil {
				// The downward API; run --check gets what a first pod gets.
				if p := str(get(ref, "fieldPath")); p == "metadata.name" {
					env[name] = "funnelhouse-0"
				} else {
					t.Errorf("%s: %s from fieldRef %s, which the test does not know", what, name, p)
				}
			} else if ref := get(e, "valueFrom", "secretKeyRef"); ref != nil {
				fromSecret = append(fromSecret, name)
				if str(get(ref, "name")) != "funnelhouse" || secrets[str(get(ref, "key"))] == "" {
					t.Errorf("%s: %s refers to Secret %v key %v, which the example Secret lacks", what, name, get(ref, "name"), get(ref, "key"))
				}
				env[name] = secrets[str(get(ref, "key"))]
			} else if v := get(e, "value"); v != nil {
				env[name] = str(v)
			}
		}
		for _, s := range wantSecrets {
			if !slices.Contains(fromSecret, s) && !allSecrets {
				t.Errorf("%s: %s does not come from the Secret", what, s)
			}
		}
		checkEnvNames(t, what, command, names)
		return env
	}
	runEnv := checkPodEnv("StatefulSet", "run", container, []string{"FUNNELHOUSE_CLICKHOUSE_PASSWORD", "FUNNELHOUSE_KAFKA_SASL_PASSWORD"})
	checkStaticMembership(t, objects, sts, container)
	checkEnv := map[string]string{}
	mounts := map[string]bool{}
	for _, m := range list(get(container, "volumeMounts")) {
		mounts[str(get(m, "mountPath"))] = true
	}
	for k, v := range runEnv {
		if strings.HasPrefix(k, "FUNNELHOUSE_") {
			checkEnv[k] = v
		}
		if mounts[v] {
			checkEnv[k] = t.TempDir() // a volume of the pod: a directory here
		}
	}
	if !mounts[runEnv["FUNNELHOUSE_SPILL_DIR"]] {
		t.Errorf("StatefulSet: FUNNELHOUSE_SPILL_DIR %q is not a mounted volume (held events would fill the read-only root or /tmp's 64Mi)", runEnv["FUNNELHOUSE_SPILL_DIR"])
	}
	switch line := runCheckConfig(t, checkEnv); {
	case line == "":
	case strings.HasPrefix(line, "ok"):
		t.Logf("StatefulSet: funnelhouse run --check with the ConfigMap and Secret: %s", line)
	default:
		t.Errorf("StatefulSet: funnelhouse run --check with the ConfigMap and Secret: %s", line)
	}

	// The migrate Job.
	jc := get(job, "spec", "template", "spec", "containers", 0)
	if args := strList(get(jc, "args")); !slices.Equal(args, []string{"migrate"}) {
		t.Errorf("Job: args %v, want [migrate]", args)
	}
	if str(get(job, "spec", "template", "spec", "securityContext", "runAsNonRoot")) != "true" {
		t.Error("Job: want runAsNonRoot")
	}
	jobEnv := checkPodEnv("Job", "migrate", jc, []string{"FUNNELHOUSE_CLICKHOUSE_PASSWORD"})
	if jobEnv["FUNNELHOUSE_CLICKHOUSE"] != config["FUNNELHOUSE_CLICKHOUSE"] {
		t.Error("Job: does not get FUNNELHOUSE_CLICKHOUSE from the ConfigMap")
	}
	if get(jc, "image") != get(container, "image") {
		t.Errorf("Job image %v differs from the StatefulSet's %v", get(jc, "image"), get(container, "image"))
	}
	// The Job's pods must not look like the pipeline's to its selector.
	podLabels := get(sts, "spec", "template", "metadata", "labels")
	if selects(get(sts, "spec", "selector", "matchLabels"), get(job, "spec", "template", "metadata", "labels")) {
		t.Error("Job: its pod labels match the StatefulSet's selector")
	}
	if pdb := objects["PodDisruptionBudget/funnelhouse"]; pdb == nil || !selects(get(pdb, "spec", "selector", "matchLabels"), podLabels) {
		t.Error("PodDisruptionBudget/funnelhouse: missing, or its selector does not select the StatefulSet's pods")
	}
	checkNetworkPolicy(t, objects, podLabels, ports)
	if config["FUNNELHOUSE_PPROF"] != "" && config["FUNNELHOUSE_PPROF"] != "false" {
		t.Errorf("ConfigMap: FUNNELHOUSE_PPROF=%q: keep /debug/pprof off by default", config["FUNNELHOUSE_PPROF"])
	}

	// The image: the name the pods use, pinned to a version by kustomize.
	var pinned bool
	for _, img := range list(kust["images"]) {
		if str(get(img, "name")) != str(get(container, "image")) {
			continue
		}
		tag := str(get(img, "newTag"))
		pinned = releaseTag.MatchString(tag)
		if !pinned {
			t.Errorf("kustomization.yaml: image %s newTag %q, want a pinned version such as 0.1.0 (bumped at each release)", get(img, "name"), tag)
		}
	}
	if !pinned && !t.Failed() {
		t.Errorf("kustomization.yaml: no images: entry pins the pods' image %v to a version", get(container, "image"))
	}
}

// releaseTag is a pinned release version: 0.1.0, v1.2.3, 1.2.3-rc.1.
var releaseTag = regexp.MustCompile(`^v?\d+\.\d+\.\d+(-[0-9A-Za-z.]+)?$`)

// checkNetworkPolicy: a NetworkPolicy selects the pipeline's pods and
// admits ingress only from selected peers (Prometheus), only to the metrics
// port.
func checkNetworkPolicy(t *testing.T, objects map[string]map[string]any, podLabels any, ports map[string]string) {
	t.Helper()
	var np map[string]any
	for k, o := range objects {
		if strings.HasPrefix(k, "NetworkPolicy/") && selects(get(o, "spec", "podSelector", "matchLabels"), podLabels) {
			np = o
		}
	}
	if np == nil {
		t.Error("no NetworkPolicy selects the StatefulSet's pods: the metrics port would be open to every pod in the cluster")
		return
	}
	if !slices.Contains(strList(get(np, "spec", "policyTypes")), "Ingress") {
		t.Errorf("NetworkPolicy/%s: policyTypes %v lacks Ingress", get(np, "metadata", "name"), get(np, "spec", "policyTypes"))
	}
	rules := list(get(np, "spec", "ingress"))
	if len(rules) == 0 {
		t.Errorf("NetworkPolicy/%s: no ingress rule: Prometheus could not scrape", get(np, "metadata", "name"))
	}
	for i, r := range rules {
		from := list(get(r, "from"))
		if len(from) == 0 {
			t.Errorf("NetworkPolicy ingress[%d]: no from: open to every peer", i)
		}
		for _, peer := range from {
			ns, pod := get(peer, "namespaceSelector", "matchLabels"), get(peer, "podSelector", "matchLabels")
			if get(peer, "ipBlock") != nil || (len(mapOf(ns)) == 0 && len(mapOf(pod)) == 0) {
				t.Errorf("NetworkPolicy ingress[%d]: peer %v, want Prometheus by namespace and/or pod labels", i, peer)
			}
		}
		rulePorts := list(get(r, "ports"))
		if len(rulePorts) == 0 {
			t.Errorf("NetworkPolicy ingress[%d]: no ports: every port admitted", i)
		}
		for _, p := range rulePorts {
			port := str(get(p, "port"))
			if named, ok := ports[port]; ok {
				port = named
			}
			if port != "9464" {
				t.Errorf("NetworkPolicy ingress[%d]: port %v, want only the metrics port 9464", i, get(p, "port"))
			}
		}
	}
}

func mapOf(v any) map[string]any { m, _ := v.(map[string]any); return m }

// TestNoLatestImages: every image is pinned. Third-party images carry a
// version tag; the funnelhouse image is the local build funnelhouse:dev in
// compose (built there, never pulled) and a release version in Kubernetes
// (TestKubernetes); the word latest appears in no deploy file.
func TestNoLatestImages(t *testing.T) {
	services, _ := loadCompose(t)["services"].(map[string]any)
	for _, name := range sortedKeys(services) {
		img := str(get(services[name], "image"))
		if img == "" {
			t.Errorf("service %s: no image", name)
			continue
		}
		repo, tag := img, ""
		if i := strings.LastIndex(img, ":"); i > strings.LastIndex(img, "/") {
			repo, tag = img[:i], img[i+1:]
		}
		switch {
		case repo == "funnelhouse":
			if tag != "dev" || get(services[name], "build") == nil {
				t.Errorf("service %s: image %q, want funnelhouse:dev built by the stack", name, img)
			}
		case tag == "" || tag == "latest" || !regexp.MustCompile(`\d`).MatchString(tag):
			t.Errorf("service %s: image %q is not pinned to a version", name, img)
		}
	}
	for _, m := range regexp.MustCompile(`(?m)^FROM\s+(\S+)`).FindAllStringSubmatch(readFile(t, "Dockerfile"), -1) {
		if i := strings.LastIndex(m[1], ":"); i < 0 || m[1][i+1:] == "latest" {
			t.Errorf("Dockerfile: FROM %s is not pinned", m[1])
		}
	}
	latest := regexp.MustCompile(`(?i)\blatest\b`)
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if !(strings.HasSuffix(path, ".yml") || strings.HasSuffix(path, ".yaml") || strings.HasPrefix(filepath.Base(path), "Dockerfile")) {
			return nil
		}
		for i, line := range strings.Split(readFile(t, path), "\n") {
			if code, _, _ := strings.Cut(line, "#"); latest.MatchString(code) {
				t.Errorf("%s:%d: %q: pin a version instead of latest", path, i+1, strings.TrimSpace(line))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestTestHooksNotInDefaultBuild: the self-kill hook of the crash tests
// (FUNNELHOUSE_TEST_KILL, cmd/funnelhouse/faults.go) is compiled only with
// -tags testhooks: the binary a default `go build` makes (as the Dockerfile
// and make build do) does not even contain the variable's name, while the
// tagged build does (which shows that the check can see it).
func TestTestHooksNotInDefaultBuild(t *testing.T) {
	const hook = "FUNNELHOUSE_TEST_KILL"
	b, err := os.ReadFile(funnelhouseBin(t))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte(hook)) {
		t.Errorf("the default build contains %s: the test hook ships in production builds", hook)
	}
	if df := readFile(t, "Dockerfile"); strings.Contains(df, "testhooks") {
		t.Error("Dockerfile: the image must be built without -tags testhooks")
	}
	if testing.Short() {
		return
	}
	tagged := filepath.Join(t.TempDir(), "funnelhouse-testhooks")
	cmd := exec.Command("go", "build", "-tags", "testhooks", "-o", tagged, "./cmd/funnelhouse")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build -tags testhooks: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(tagged); err != nil || !bytes.Contains(b, []byte(hook)) {
		t.Errorf("the testhooks build does not contain %s (%v): this test no longer sees the hook", hook, err)
	}
}

// selects reports whether a non-empty matchLabels selector selects a pod
// with these labels.
func selects(selector, labels any) bool {
	sel, _ := selector.(map[string]any)
	l, _ := labels.(map[string]any)
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if x, ok := l[k]; !ok || str(x) != str(v) {
			return false
		}
	}
	return true
}

// checkStaticMembership: each member's instance id is its pod name, stable
// across restarts and rollouts because the pods are a StatefulSet's, which
// needs a headless Service that selects them.
func checkStaticMembership(t *testing.T, objects map[string]map[string]any, sts map[string]any, container any) {
	t.Helper()
	podLabels := get(sts, "spec", "template", "metadata", "labels")
	if !selects(get(sts, "spec", "selector", "matchLabels"), podLabels) {
		t.Errorf("StatefulSet: selector %v does not select its pod template's labels %v", get(sts, "spec", "selector", "matchLabels"), podLabels)
	}
	name := str(get(sts, "spec", "serviceName"))
	svc := objects["Service/"+name]
	switch {
	case name == "":
		t.Error("StatefulSet: no serviceName (a headless Service for the pods' stable identity)")
	case svc == nil:
		t.Errorf("StatefulSet: serviceName %q, but there is no Service/%s", name, name)
	default:
		if c := str(get(svc, "spec", "clusterIP")); c != "None" {
			t.Errorf("Service/%s: clusterIP %q, want None (headless, as a StatefulSet's serviceName)", name, c)
		}
		if !selects(get(svc, "spec", "selector"), podLabels) {
			t.Errorf("Service/%s: selector %v does not select the StatefulSet's pods %v", name, get(svc, "spec", "selector"), podLabels)
		}
	}
	if p := str(get(sts, "spec", "podManagementPolicy")); p != "" && p != "Parallel" && p != "OrderedReady" {
		t.Errorf("StatefulSet: podManagementPolicy %q", p)
	}
	if u := str(get(sts, "spec", "updateStrategy", "type")); u != "" && u != "RollingUpdate" {
		t.Errorf("StatefulSet: updateStrategy %q, want RollingUpdate (a new image rolls out by itself)", u)
	}
	found := false
	for _, e := range list(get(container, "env")) {
		if str(get(e, "name")) != "FUNNELHOUSE_INSTANCE_ID" {
			continue
		}
		found = true
		if p := str(get(e, "valueFrom", "fieldRef", "fieldPath")); p != "metadata.name" || get(e, "value") != nil {
			t.Errorf("StatefulSet: FUNNELHOUSE_INSTANCE_ID must be the pod's name (valueFrom.fieldRef.fieldPath metadata.name), got %v", e)
		}
	}
	if !found {
		t.Error("StatefulSet: no FUNNELHOUSE_INSTANCE_ID (static group membership from the pod name)")
	}
}

func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	mod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(string(mod))
	if m == nil {
		t.Fatal("go.mod: no go directive")
	}
	if !strings.Contains(df, "ARG GO_VERSION="+m[1]+"\n") || !strings.Contains(df, "FROM golang:${GO_VERSION} AS build") {
		t.Errorf("Dockerfile: want the builder golang:%s (go.mod's go %s)", m[1], m[1])
	}
	for _, want := range []string{"./cmd/funnelhouse", `ENTRYPOINT ["funnelhouse"]`, "CGO_ENABLED=0"} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile: no %s", want)
		}
	}
	users := regexp.MustCompile(`(?m)^USER\s+(\S+)`).FindAllStringSubmatch(df, -1)
	if len(users) == 0 {
		t.Fatal("Dockerfile: no USER")
	}
	uid, _, _ := strings.Cut(users[len(users)-1][1], ":")
	if n, err := strconv.Atoi(uid); err != nil || n == 0 {
		t.Errorf("Dockerfile: final USER %s, want a numeric non-root uid (runAsNonRoot checks it)", users[len(users)-1][1])
	} else if k8s := yamlDocs(t, "k8s/statefulset.yaml")[0]; str(get(k8s, "spec", "template", "spec", "securityContext", "runAsUser")) != uid {
		t.Errorf("Dockerfile USER %s differs from the StatefulSet's runAsUser", uid)
	}
	ignore, err := os.ReadFile("Dockerfile.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{".local", "deploy/compose", ".git"} {
		if !slices.Contains(strings.Fields(string(ignore)), want) {
			t.Errorf("Dockerfile.dockerignore: %s is not left out of the build context", want)
		}
	}
}

// ---------------------------------------------------------------------------
// (b) dashboards

func dashboards(t *testing.T) map[string]map[string]any {
	t.Helper()
	files, err := filepath.Glob("grafana/dashboards/*.json")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]any{}
	for _, f := range files {
		out[filepath.Base(f)] = readJSON(t, f)
	}
	for _, want := range []string{"pipeline.json", "business.json"} {
		if out[want] == nil {
			t.Fatalf("no grafana/dashboards/%s", want)
		}
	}
	return out
}

// panels returns the panels with queries (rows are containers).
func panels(d map[string]any) []map[string]any {
	var out []map[string]any
	var walk func(l []any)
	walk = func(l []any) {
		for _, p := range l {
			m, _ := p.(map[string]any)
			if str(m["type"]) == "row" {
				walk(list(m["panels"]))
				continue
			}
			out = append(out, m)
		}
	}
	walk(list(d["panels"]))
	return out
}

func TestDashboardsParse(t *testing.T) {
	uids := map[string]bool{}
	for name, d := range dashboards(t) {
		if str(d["title"]) == "" || str(d["uid"]) == "" || uids[str(d["uid"])] {
			t.Errorf("%s: want a title and a unique uid", name)
		}
		uids[str(d["uid"])] = true
		ids := map[string]bool{}
		var all []any
		for _, p := range list(d["panels"]) {
			all = append(all, p)
			all = append(all, list(get(p, "panels"))...)
		}
		for _, p := range all {
			id := str(get(p, "id"))
			if id == "" || ids[id] {
				t.Errorf("%s: panel %q: missing or repeated id %s", name, get(p, "title"), id)
			}
			ids[id] = true
			if get(p, "gridPos", "w") == nil {
				t.Errorf("%s: panel %q has no gridPos", name, get(p, "title"))
			}
		}
		// The data source is picked through the variable of its type, so
		// that the dashboard also works when imported elsewhere.
		var dsType string
		for _, v := range list(get(d, "templating", "list")) {
			if str(get(v, "type")) == "datasource" && str(get(v, "name")) == "datasource" {
				dsType = str(get(v, "query"))
			}
		}
		if dsType == "" {
			t.Errorf("%s: no data source variable", name)
		}
		for _, p := range panels(d) {
			targets := list(p["targets"])
			if len(targets) == 0 {
				t.Errorf("%s: panel %q has no query", name, p["title"])
			}
			sources := []any{p["datasource"]}
			for _, tg := range targets {
				sources = append(sources, get(tg, "datasource"))
			}
			for _, ds := range sources {
				if str(get(ds, "type")) != dsType || str(get(ds, "uid")) != "${datasource}" {
					t.Errorf("%s: panel %q: data source %v, want type %s uid ${datasource}", name, p["title"], ds, dsType)
				}
			}
		}
	}
}

// ---------------------------------------------------------------------------
// (c) metric names of the pipeline dashboard

var (
	fhMetricName = regexp.MustCompile(`funnelhouse_[a-z_]+`)
	goMetricName = regexp.MustCompile(`\b(?:go|process)_[a-z0-9_]+`)
)

// promExprs returns the PromQL of the pipeline dashboard: panel queries and
// variable queries.
func promExprs(t *testing.T) map[string]string {
	d := dashboards(t)["pipeline.json"]
	out := map[string]string{}
	for _, p := range panels(d) {
		for _, tg := range list(p["targets"]) {
			e := str(get(tg, "expr"))
			if e == "" {
				t.Errorf("pipeline.json: panel %q: a query without expr", p["title"])
			}
			out[fmt.Sprintf("panel %q %s", p["title"], get(tg, "refId"))] = e
		}
	}
	for _, v := range list(get(d, "templating", "list")) {
		if q := str(get(v, "definition")); q != "" {
			out[fmt.Sprintf("variable %s", get(v, "name"))] = q
		}
	}
	return out
}

// recorder is a prometheus.Registerer that notes what is registered.
type recorder struct{ got map[string]metricInfo }

var descFields = regexp.MustCompile(`fqName: "([^"]+)".*variableLabels: \{([^}]*)\}`)

func (r *recorder) Register(c prometheus.Collector) error {
	kinds := map[string]string{} // desc -> kind, for collectors that are not vectors
	switch c.(type) {
	case *prometheus.CounterVec, *prometheus.GaugeVec, *prometheus.HistogramVec, *prometheus.SummaryVec:
	default:
		ch := make(chan prometheus.Metric, 16)
		go func() { c.Collect(ch); close(ch) }()
		for m := range ch {
			var pb dto.Metric
			if m.Write(&pb) != nil {
				continue
			}
			kind := "untyped"
			switch {
			case pb.Counter != nil:
				kind = "counter"
			case pb.Gauge != nil:
				kind = "gauge"
			case pb.Histogram != nil:
				kind = "histogram"
			case pb.Summary != nil:
				kind = "summary"
			}
			kinds[m.Desc().String()] = kind
		}
	}
	ch := make(chan *prometheus.Desc, 16)
	go func() { c.Describe(ch); close(ch) }()
	for d := range ch {
		m := descFields.FindStringSubmatch(d.String())
		if m == nil {
			return fmt.Errorf("cannot read %s", d)
		}
		kind := kinds[d.String()]
		switch c.(type) {
		case *prometheus.CounterVec:
			kind = "counter"
		case *prometheus.GaugeVec:
			kind = "gauge"
		case *prometheus.HistogramVec:
			kind = "histogram"
		case *prometheus.SummaryVec:
			kind = "summary"
		}
		var labels []string
		if m[2] != "" {
			labels = strings.Split(m[2], ",")
		}
		r.got[m[1]] = metricInfo{kind, labels}
	}
	return nil
}

func (r *recorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

func (r *recorder) Unregister(prometheus.Collector) bool { return false }

// runtimeMetrics are the names of the collectors `funnelhouse run` registers
// beside its own (cmd/funnelhouse/run.go: the Go and process collectors).
func runtimeMetrics(t *testing.T) map[string]bool {
	rec := &recorder{got: map[string]metricInfo{}}
	rec.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	out := map[string]bool{}
	for name := range rec.got {
		out[name] = true
	}
	for _, want := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if !out[want] {
			t.Fatalf("the Go and process collectors do not describe %s", want)
		}
	}
	return out
}

func TestPipelineDashboardMetrics(t *testing.T) {
	runtimeNames := runtimeMetrics(t)
	used := map[string]bool{}
	exprs := promExprs(t)
	byClause := regexp.MustCompile(`\bby\s*\(([^)]*)\)`)
	for where, e := range exprs {
		// Grouping labels must exist on the metrics of the expression.
		labels := map[string]bool{"instance": true, "job": true, "le": true}
		for _, name := range fhMetricName.FindAllString(e, -1) {
			base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
			for _, n := range []string{name, base} {
				for _, l := range exportedMetrics[n].labels {
					labels[l] = true
				}
			}
		}
		for _, m := range byClause.FindAllStringSubmatch(e, -1) {
			for _, l := range strings.Split(m[1], ",") {
				if l = strings.TrimSpace(l); !labels[l] {
					t.Errorf("pipeline.json %s: groups by %q, a label its metrics do not have", where, l)
				}
			}
		}
		for _, name := range fhMetricName.FindAllString(e, -1) {
			if info, ok := exportedMetrics[name]; ok {
				if info.kind == "histogram" {
					t.Errorf("pipeline.json %s: %s is a histogram; use %s_bucket, _sum or _count", where, name, name)
				}
				used[name] = true
				continue
			}
			base := name
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				base = strings.TrimSuffix(base, suffix)
			}
			if info, ok := exportedMetrics[base]; ok && base != name && info.kind == "histogram" {
				used[base] = true
				continue
			}
			t.Errorf("pipeline.json %s: %s is not a metric funnelhouse exports", where, name)
		}
		for _, name := range goMetricName.FindAllString(e, -1) {
			if !runtimeNames[name] {
				t.Errorf("pipeline.json %s: %s is not a metric of the Go or process collector", where, name)
			}
			used[name] = true
		}
	}
	for name := range exportedMetrics {
		if !used[name] {
			t.Errorf("pipeline.json shows nothing of %s", name)
		}
	}
	for _, name := range []string{"process_resident_memory_bytes", "go_goroutines"} {
		if !used[name] {
			t.Errorf("pipeline.json shows nothing of %s", name)
		}
	}

	// The PromQL syntax, where Prometheus' promtool is installed (Debian
	// package prometheus): each expression as a recording rule, with
	// Grafana's variables replaced.
	promtool := promtool(t)
	vars := strings.NewReplacer("$__rate_interval", "1m", "$__range", "1h", "$__interval", "1m", `"$job"`, `"funnelhouse"`, `"$instance"`, `".+"`)
	var rules []map[string]string
	keys := sortedKeys(exprs)
	for i, k := range keys {
		e := exprs[k]
		if strings.HasPrefix(e, "label_values(") {
			continue
		}
		rules = append(rules, map[string]string{"record": fmt.Sprintf("dashboard:query_%d", i), "expr": vars.Replace(e)})
	}
	b, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "pipeline_dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "rules.yml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", path).CombinedOutput(); err != nil {
		t.Errorf("promtool check rules (the dashboard's PromQL): %v\n%s\n%s", err, out, b)
	}
}

// TestExportedMetrics checks exportedMetrics against what the pipeline and
// the sink register (the sink's part needs a ClickHouse).
func TestExportedMetrics(t *testing.T) {
	rec := &recorder{got: map[string]metricInfo{}}
	if _, err := pipeline.New(pipeline.Config{Brokers: []string{"127.0.0.1:9"}, Registerer: rec}, nil); err != nil {
		t.Fatal(err)
	}
	checked := "pipeline"
	if dsn := os.Getenv("FUNNELHOUSE_TEST_CLICKHOUSE"); dsn != "" {
		_, db := freshDatabase(t, dsn)
		sink, err := chsink.Open(context.Background(), chsink.Config{Endpoint: chsink.Endpoint{DSN: withDatabase(t, dsn, db)}, Registerer: rec})
		if err != nil {
			t.Fatal(err)
		}
		sink.Close()
		checked = "pipeline and sink"
	}
	for name, info := range rec.got {
		want, ok := exportedMetrics[name]
		if !ok {
			t.Errorf("%s is registered but not in exportedMetrics (and so not allowed in the dashboard)", name)
			continue
		}
		if want.kind != info.kind || !slices.Equal(want.labels, info.labels) {
			t.Errorf("%s: registered as %s %v, exportedMetrics says %s %v", name, info.kind, info.labels, want.kind, want.labels)
		}
	}
	for name := range exportedMetrics {
		if _, ok := rec.got[name]; !ok && !slices.Contains(registeredByRun, name) && (strings.HasPrefix(name, "funnelhouse_pipeline_") || checked != "pipeline") {
			t.Errorf("%s is in exportedMetrics but not registered", name)
		}
	}
	if checked == "pipeline" {
		t.Log("FUNNELHOUSE_TEST_CLICKHOUSE is unset: the sink's metrics (funnelhouse_sink_*) were not checked")
	}
}

// ---------------------------------------------------------------------------
// (d) the business dashboard's SQL on a real ClickHouse

// Grafana macros of the ClickHouse data source plugin (grafana/clickhouse-
// datasource v4, pkg/macros/macros.go), expanded exactly as the plugin
// expands them for a dashboard time range of 2025-01-01T00:00:00Z to
// 2025-12-31T23:59:59Z:
//
//	$__dateFilter(c)        c >= toDate('2025-01-01') AND c <= toDate('2025-12-31')
//	$__timeFilter(c)        c >= toDateTime(1735689600) AND c <= toDateTime(1767225599)
//	$__dateTimeFilter(d, t) (both of the above, for a date and a time column); alias $__dt
//	$__fromTime             toDateTime(1735689600)
//	$__toTime               toDateTime(1767225599)
//	$__interval_s           86400
//
// Any other $ (the _ms macros and $__timeInterval produce DateTime64 and
// toStartOfInterval, which ClickHouse 18.16 lacks; dashboard variables) is an
// error. Note that on 18.16 a Date compared with a DateTime compares raw
// numbers, so $__timeFilter on a Date column selects nothing there: use
// $__dateFilter for Date columns (the sample data below makes every panel
// return rows, which catches it).
const (
	rangeFromDate = "toDate('2025-01-01')"
	rangeToDate   = "toDate('2025-12-31')"
	rangeFromTime = "toDateTime(1735689600)"
	rangeToTime   = "toDateTime(1767225599)"
)

var (
	macroWithArgs = regexp.MustCompile(`\$__(dateFilter|timeFilter|dateTimeFilter|dt)\(\s*([^)]*?)\s*\)`)
	leftoverMacro = regexp.MustCompile(`\$\{?[A-Za-z_]+`)
	forbiddenSQL  = map[string]*regexp.Regexp{
		"window functions (OVER)":          regexp.MustCompile(`(?i)\bOVER\s*\(`),
		"WITH (CTEs and WITH expressions)": regexp.MustCompile(`(?i)\bWITH\b`),
		"DateTime64":                       regexp.MustCompile(`(?i)DateTime64|fromUnixTimestamp64`),
		"toStartOfInterval":                regexp.MustCompile(`(?i)toStartOfInterval`),
		"macros that expand to DateTime64": regexp.MustCompile(`\$__(timeFilter_ms|fromTime_ms|toTime_ms|timeInterval)`),
		"a database-qualified object":      regexp.MustCompile(`\b[a-z_]+\.(` + strings.Join(businessViews, "|") + `)\b`),
		"more than one statement":          regexp.MustCompile(`;\s*\S`),
		"a table rather than a view":       regexp.MustCompile(`(?i)\b(FROM|JOIN)\s+(events|sessions|lifecycle_transitions|pipeline_state|schema_migrations|\w+_state|\w+_items|\w+_totals|traffic_daily_sessions)\b`),
	}
)

// businessViews are the views the business dashboard must read, each from
// at least one panel: the four of SPEC §6 and the catalogue of §6.1.
var businessViews = []string{"funnel_daily", "bounce_daily", "churn_monthly", "revenue_daily",
	"traffic_daily", "visitor_conversion_daily", "pages_daily", "satisfaction_monthly", "trial_conversion_monthly", "retention_monthly", "clv_cohort_monthly"}

func expandMacros(sql string) (string, error) {
	var err error
	out := macroWithArgs.ReplaceAllStringFunc(sql, func(m string) string {
		sub := macroWithArgs.FindStringSubmatch(m)
		args := strings.Split(sub[2], ",")
		for i := range args {
			args[i] = strings.TrimSpace(args[i])
		}
		switch sub[1] {
		case "dateFilter":
			return fmt.Sprintf("%s >= %s AND %s <= %s", args[0], rangeFromDate, args[0], rangeToDate)
		case "timeFilter":
			return fmt.Sprintf("%s >= %s AND %s <= %s", args[0], rangeFromTime, args[0], rangeToTime)
		default: // dateTimeFilter, dt
			if len(args) != 2 {
				err = fmt.Errorf("%s needs two arguments", m)
				return m
			}
			return fmt.Sprintf("(%s >= %s AND %s <= %s) AND (%s >= %s AND %s <= %s)",
				args[0], rangeFromDate, args[0], rangeToDate, args[1], rangeFromTime, args[1], rangeToTime)
		}
	})
	out = strings.NewReplacer("$__fromTime", rangeFromTime, "$__toTime", rangeToTime, "$__interval_s", "86400").Replace(out)
	if err == nil {
		if m := leftoverMacro.FindString(out); m != "" {
			err = fmt.Errorf("unknown macro or variable %s (the test knows $__dateFilter, $__timeFilter, $__dateTimeFilter, $__fromTime, $__toTime, $__interval_s)", m)
		}
	}
	return out, err
}

// sampleData gives the four views rows inside the test's time range
// (March to September 2025). INSERT … SELECT: 18.16 hangs on INSERT … VALUES
// sent by the driver. The funnel: 200 visitors, 100 acquired, 50 converted,
// 25 retained, 13 advocates.
const sampleData = `
INSERT INTO {db}.lifecycle_transitions (visitor_id, customer_id, stage, ts, ts_ms, cohort_day, source, event_id)
SELECT concat('v', toString(number)), '', 'awareness', toDateTime(1740996000 + number * 21600), (1740996000 + number * 21600) * 1000,
       toDate(toDateTime(1740996000 + number * 21600)), ['google', 'direct', 'newsletter'][number % 3 + 1], concat('e', toString(number), '-1')
FROM system.numbers LIMIT 200;
INSERT INTO {db}.lifecycle_transitions (visitor_id, customer_id, stage, ts, ts_ms, cohort_day, source, event_id)
SELECT concat('v', toString(number)), '', 'acquisition', toDateTime(1740996000 + number * 21600 + 3600), (1740996000 + number * 21600 + 3600) * 1000,
       toDate(toDateTime(1740996000 + number * 21600)), ['google', 'direct', 'newsletter'][number % 3 + 1], concat('e', toString(number), '-2')
FROM system.numbers WHERE number < 200 AND number % 2 = 0 LIMIT 100;
INSERT INTO {db}.lifecycle_transitions (visitor_id, customer_id, stage, ts, ts_ms, cohort_day, source, event_id)
SELECT concat('v', toString(number)), concat('c', toString(number)), 'conversion', toDateTime(1740996000 + number * 21600 + 7200), (1740996000 + number * 21600 + 7200) * 1000,
       toDate(toDateTime(1740996000 + number * 21600)), ['google', 'direct', 'newsletter'][number % 3 + 1], concat('e', toString(number), '-3')
FROM system.numbers WHERE number < 200 AND number % 4 = 0 LIMIT 50;
INSERT INTO {db}.lifecycle_transitions (visitor_id, customer_id, stage, ts, ts_ms, cohort_day, source, event_id)
SELECT concat('v', toString(number)), concat('c', toString(number)), 'retention', toDateTime(1740996000 + number * 21600 + 30 * 86400), (1740996000 + number * 21600 + 30 * 86400) * 1000,
       toDate(toDateTime(1740996000 + number * 21600)), ['google', 'direct', 'newsletter'][number % 3 + 1], concat('e', toString(number), '-4')
FROM system.numbers WHERE number < 200 AND number % 8 = 0 LIMIT 25;
INSERT INTO {db}.lifecycle_transitions (visitor_id, customer_id, stage, ts, ts_ms, cohort_day, source, event_id)
SELECT concat('v', toString(number)), concat('c', toString(number)), 'advocacy', toDateTime(1740996000 + number * 21600 + 40 * 86400), (1740996000 + number * 21600 + 40 * 86400) * 1000,
       toDate(toDateTime(1740996000 + number * 21600)), ['google', 'direct', 'newsletter'][number % 3 + 1], concat('e', toString(number), '-5')
FROM system.numbers WHERE number < 200 AND number % 16 = 0 LIMIT 13;
INSERT INTO {db}.lifecycle_transitions (visitor_id, customer_id, stage, ts, ts_ms, cohort_day, source, event_id)
SELECT concat('v', toString(number)), concat('c', toString(number)), 'churned', toDateTime(1740996000 + number * 21600 + 100 * 86400), (1740996000 + number * 21600 + 100 * 86400) * 1000,
       toDate(toDateTime(1740996000 + number * 21600)), ['google', 'direct', 'newsletter'][number % 3 + 1], concat('e', toString(number), '-6')
FROM system.numbers WHERE number < 200 AND number % 8 = 4 LIMIT 25;
INSERT INTO {db}.lifecycle_transitions (visitor_id, customer_id, stage, ts, ts_ms, cohort_day, source, event_id)
SELECT concat('v', toString(number)), concat('c', toString(number)), 'reactivated', toDateTime(1740996000 + number * 21600 + 130 * 86400), (1740996000 + number * 21600 + 130 * 86400) * 1000,
       toDate(toDateTime(1740996000 + number * 21600)), ['google', 'direct', 'newsletter'][number % 3 + 1], concat('e', toString(number), '-7')
FROM system.numbers WHERE number < 200 AND number % 16 = 4 LIMIT 13;
INSERT INTO {db}.sessions (session_id, visitor_id, start, "end", start_ms, end_ms, events, page_views, source, is_bounce,
       medium, entry_url, exit_url, orders, cohort_day, first_session, first_of_day)
SELECT concat('s', toString(number)), concat('v', toString(number % 200)), toDateTime(1740996000 + number * 14400), toDateTime(1740996000 + number * 14400 + 600),
       (1740996000 + number * 14400) * 1000, (1740996000 + number * 14400 + 600) * 1000, if(number % 5 = 0, 1, 4), if(number % 5 = 0, 1, 3),
       ['google', 'direct', 'newsletter'][number % 3 + 1], if(number % 5 = 0, 1, 0),
       ['cpc', '', 'email'][number % 3 + 1], concat('https://shop.example/p', toString(number % 4), '?utm_source=x'), concat('https://shop.example/p', toString(number % 3)),
       toUInt32(number % 7 = 0), toDate(toDateTime(1740996000 + (number % 200) * 14400)), toUInt8(number < 200),
       1 -- a visitor's two sessions are 800 hours apart: each is its first that day
FROM system.numbers LIMIT 300;
INSERT INTO {db}.events (event_id, ts, ts_ms, type, visitor_id, session_id, url, session_start)
SELECT concat('pv', toString(number)), toDateTime(1740996000 + (number % 300) * 14400), (1740996000 + (number % 300) * 14400) * 1000, 'page_view',
       concat('v', toString(number % 200)), concat('s', toString(number % 300)), concat('https://shop.example/p', toString(number % 4)), toDateTime(1740996000 + (number % 300) * 14400)
FROM system.numbers LIMIT 600;
INSERT INTO {db}.events (event_id, ts, ts_ms, type, visitor_id, nps, csat, ces)
SELECT concat('sv', toString(number)), toDateTime(1740996000 + number * 86400), (1740996000 + number * 86400) * 1000, 'survey',
       concat('v', toString(number % 50)), toUInt8(number % 11), toUInt8(1 + number % 5), toUInt8(1 + number % 7)
FROM system.numbers LIMIT 120;
INSERT INTO {db}.events (event_id, ts, ts_ms, type, visitor_id, trial, plan)
SELECT concat('tr', toString(number)), toDateTime(1740900000 + number * 86400), (1740900000 + number * 86400) * 1000, 'subscription_started',
       concat('v', toString(number)), 1, 'pro'
FROM system.numbers LIMIT 40;
INSERT INTO {db}.events (event_id, ts, ts_ms, type, visitor_id, customer_id, order_id, amount, currency)
SELECT concat('o', toString(number)), toDateTime(1740996000 + number * 43200), (1740996000 + number * 43200) * 1000, 'order_completed',
       concat('v', toString(number % 50)), concat('c', toString(number % 50)), concat('order-', toString(number)), toDecimal64(10 + number % 7, 4), ['EUR', 'USD'][number % 2 + 1]
FROM system.numbers LIMIT 100;
INSERT INTO {db}.events (event_id, ts, ts_ms, type, visitor_id, customer_id, order_id, amount, currency)
SELECT concat('r', toString(number)), toDateTime(1740996000 + number * 43200 + 86400), (1740996000 + number * 43200 + 86400) * 1000, 'order_refunded',
       concat('v', toString(number % 50)), concat('c', toString(number % 50)), concat('order-', toString(number)), toDecimal64(10 + number % 7, 4), ['EUR', 'USD'][number % 2 + 1]
FROM system.numbers WHERE number % 10 = 0 LIMIT 10;
`

// openConn opens a native connection to the DSN's server, on database db
// ("" for none).
func openConn(t *testing.T, dsn, db string) driver.Conn {
	t.Helper()
	opts, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		t.Fatalf("FUNNELHOUSE_TEST_CLICKHOUSE: %v", err)
	}
	opts.Auth.Database = db
	conn, err := clickhouse.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// freshDatabase creates a database of its own with the project's
// migrations (what `funnelhouse migrate` applies), dropped at the end.
func freshDatabase(t *testing.T, dsn string) (driver.Conn, string) {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	db := "deploytest_" + hex.EncodeToString(b)
	conn := openConn(t, dsn, "")
	ctx := context.Background()
	if _, err := fhsql.Migrate(ctx, conn, db); err != nil {
		t.Fatalf("migrations: %v", err)
	}
	t.Cleanup(func() {
		if err := conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db); err != nil {
			t.Logf("drop database %s: %v", db, err)
		}
	})
	return conn, db
}

func withDatabase(t *testing.T, dsn, db string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + db
	return u.String()
}

type panelQuery struct {
	title string
	sql   string
}

func businessQueries(t *testing.T) []panelQuery {
	d := dashboards(t)["business.json"]
	var out []panelQuery
	for _, p := range panels(d) {
		for _, tg := range list(p["targets"]) {
			sql := str(get(tg, "rawSql"))
			if sql == "" || str(get(tg, "editorType")) != "sql" {
				t.Errorf("business.json: panel %q: want a SQL query (editorType sql, rawSql)", p["title"])
				continue
			}
			timeseries := str(get(tg, "queryType")) == "timeseries"
			if f := str(get(tg, "format")); (timeseries && f != "0") || (!timeseries && f != "1") {
				t.Errorf("business.json: panel %q: queryType %v with format %s (0 = time series, 1 = table)", p["title"], get(tg, "queryType"), f)
			}
			out = append(out, panelQuery{str(p["title"]), sql})
		}
	}
	return out
}

func TestBusinessQueriesStatic(t *testing.T) {
	views := map[string]bool{}
	for _, q := range businessQueries(t) {
		for what, re := range forbiddenSQL {
			if re.MatchString(q.sql) {
				t.Errorf("business.json: panel %q uses %s (it must run on ClickHouse 18.16.1 and current releases, on the database the data source selects):\n%s", q.title, what, q.sql)
			}
		}
		if _, err := expandMacros(q.sql); err != nil {
			t.Errorf("business.json: panel %q: %v", q.title, err)
		}
		read := 0
		for _, v := range businessViews {
			if regexp.MustCompile(`(?i)\bFROM\s+` + v + `\b`).MatchString(q.sql) {
				views[v] = true
				read++
			}
		}
		if read == 0 {
			t.Errorf("business.json: panel %q reads none of the views %v:\n%s", q.title, businessViews, q.sql)
		}
	}
	if len(views) != len(businessViews) {
		t.Errorf("business.json reads the views %v, want all of %v", sortedKeys(views), businessViews)
	}
}

func TestBusinessQueriesOnClickHouse(t *testing.T) {
	dsn := os.Getenv("FUNNELHOUSE_TEST_CLICKHOUSE")
	if dsn == "" {
		t.Skip("FUNNELHOUSE_TEST_CLICKHOUSE is unset (make test sets it): the business dashboard's SQL was not run")
	}
	ctx := context.Background()
	admin, db := freshDatabase(t, dsn)
	var version string
	if err := admin.QueryRow(ctx, "SELECT version()").Scan(&version); err != nil {
		t.Fatal(err)
	}
	t.Logf("ClickHouse %s, database %s", version, db)
	for i, stmt := range strings.Split(strings.TrimSpace(sampleData), ";\n") {
		if stmt = strings.TrimSuffix(strings.TrimSpace(stmt), ";"); stmt == "" {
			continue
		}
		if err := admin.Exec(ctx, strings.ReplaceAll(stmt, "{db}", db)); err != nil {
			t.Fatalf("sample data, statement %d: %v", i+1, err)
		}
	}
	// As in Grafana, the views are named without a database: the connection
	// selects it (the data source's default database).
	conn := openConn(t, dsn, db)
	for _, q := range businessQueries(t) {
		sql, err := expandMacros(q.sql)
		if err != nil {
			t.Errorf("panel %q: %v", q.title, err)
			continue
		}
		rows, err := conn.Query(ctx, sql)
		if err != nil {
			t.Errorf("panel %q on ClickHouse %s: %v\n%s", q.title, version, err, sql)
			continue
		}
		n := 0
		var first []any
		for rows.Next() {
			dest := make([]any, len(rows.ColumnTypes()))
			for i, ct := range rows.ColumnTypes() {
				dest[i] = reflect.New(ct.ScanType()).Interface()
			}
			if err := rows.Scan(dest...); err != nil {
				t.Errorf("panel %q: scan: %v", q.title, err)
				break
			}
			if n == 0 {
				first = dest
			}
			n++
		}
		if err := rows.Err(); err != nil {
			t.Errorf("panel %q: %v", q.title, err)
		}
		rows.Close()
		if n == 0 {
			t.Errorf("panel %q returned no row for the sample data (a Date compared with a DateTime on 18.16?):\n%s", q.title, sql)
			continue
		}
		if q.title == "Lifecycle funnel" {
			var got []string
			for _, v := range first {
				got = append(got, fmt.Sprint(reflect.ValueOf(v).Elem().Interface()))
			}
			if want := []string{"200", "100", "50", "25", "13"}; !slices.Equal(got, want) {
				t.Errorf("panel %q: %v, want %v (awareness .. advocacy of the sample data)", q.title, got, want)
			}
		}
		t.Logf("panel %q: %d rows", q.title, n)
	}
}

// TestPrometheusRules checks the alert rules with Prometheus' own tools:
// promtool check rules, and promtool test rules on rules_test.yml, where
// every alert must have a case that fires it; every alert needs a severity,
// a summary and a runbook, and the metrics the rules read must be exported.
func TestPrometheusRules(t *testing.T) {
	if out, err := exec.Command(promtool(t), "check", "rules", "prometheus/rules.yml").CombinedOutput(); err != nil {
		t.Errorf("promtool check rules: %v\n%s", err, out)
	}
	cmd := exec.Command(promtool(t), "test", "rules", "rules_test.yml")
	cmd.Dir = "prometheus"
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool test rules: %v\n%s", err, out)
	}
	fired := map[string]bool{}
	for _, tc := range list(get(yamlDocs(t, "prometheus/rules_test.yml")[0], "tests")) {
		for _, at := range list(get(tc, "alert_rule_test")) {
			if len(list(get(at, "exp_alerts"))) > 0 {
				fired[str(get(at, "alertname"))] = true
			}
		}
	}
	known := map[string]bool{}
	for name := range exportedMetrics {
		known[name] = true
	}
	metricName := regexp.MustCompile(`\bfunnelhouse_[a-z_]+`)
	for _, g := range list(get(yamlDocs(t, "prometheus/rules.yml")[0], "groups")) {
		for _, r := range list(get(g, "rules")) {
			for _, m := range metricName.FindAllString(str(get(r, "expr")), -1) {
				m = strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_count"), "_sum"), "_bucket")
				if !known[m] {
					t.Errorf("rules.yml: %s reads %s, which funnelhouse does not export", str(get(r, "alert"))+str(get(r, "record")), m)
				}
			}
			name := str(get(r, "alert"))
			if name == "" {
				continue
			}
			if !fired[name] {
				t.Errorf("rules_test.yml: no case fires %s", name)
			}
			for _, k := range []string{"summary", "runbook"} {
				if str(get(r, "annotations", k)) == "" {
					t.Errorf("rules.yml: %s has no %s annotation", name, k)
				}
			}
			if sev := str(get(r, "labels", "severity")); sev != "warning" && sev != "critical" {
				t.Errorf("rules.yml: %s has severity %q, want warning or critical", name, sev)
			}
		}
	}
}

// promtool is Prometheus' rule and config checker; make test installs it.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is not installed: it checks the PromQL of the deploy files; install it with `apt-get install prometheus` (make test does, through deploy/prereqs.sh)")
	}
	return p
}

// ---------------------------------------------------------------------------
// ClickHouse clusters: the compose profile and the Kubernetes example

// clusterMacros are the macros the migrations' cluster form uses in its
// ZooKeeper paths and replica names (sql/cluster.go), {db} already filled.
func clusterMacros(t *testing.T, cluster string) []string {
	t.Helper()
	stmts, err := fhsql.ClusterStatements("funnelhouse", cluster)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, list := range stmts {
		for _, stmt := range list {
			for _, m := range regexp.MustCompile(`\{(\w+)\}`).FindAllStringSubmatch(stmt, -1) {
				seen[m[1]] = true
			}
		}
	}
	if len(seen) == 0 {
		t.Fatal("the cluster form uses no macro: the test cannot tell which ones the servers need")
	}
	return sortedKeys(seen)
}

// chConfig is what the tests read of a ClickHouse (or Keeper) config file.
type chConfig struct {
	RemoteServers struct {
		Clusters []struct {
			XMLName xml.Name
			Secret  *struct {
				FromEnv string `xml:"from_env,attr"`
				Value   string `xml:",chardata"`
			} `xml:"secret"`
			Shards []struct {
				InternalReplication string `xml:"internal_replication"`
				Replicas            []struct {
					Host string `xml:"host"`
					Port string `xml:"port"`
				} `xml:"replica"`
			} `xml:"shard"`
		} `xml:",any"`
	} `xml:"remote_servers"`
	ZooKeeper []struct {
		Host string `xml:"host"`
		Port string `xml:"port"`
	} `xml:"zookeeper>node"`
	Macros struct {
		Items []struct {
			XMLName xml.Name
			Value   string `xml:",chardata"`
		} `xml:",any"`
	} `xml:"macros"`
	InterserverHTTPHost string `xml:"interserver_http_host"`
	Keeper              struct {
		TCPPort  string `xml:"tcp_port"`
		ServerID string `xml:"server_id"`
		Servers  []struct {
			ID       string `xml:"id"`
			Hostname string `xml:"hostname"`
		} `xml:"raft_configuration>server"`
	} `xml:"keeper_server"`
}

func readCHConfig(t *testing.T, path string) chConfig {
	t.Helper()
	var c chConfig
	if err := xml.Unmarshal([]byte(readFile(t, path)), &c); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return c
}

// composeMounts maps a compose service's bind mounts: container path ->
// host path (relative to compose/).
func composeMounts(s any) map[string]string {
	m := map[string]string{}
	for _, v := range strList(get(s, "volumes")) {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && strings.HasPrefix(parts[0], ".") {
			m[parts[1]] = parts[0]
		}
	}
	return m
}

// checkComposeCluster checks the compose profile "cluster": ClickHouse
// Keeper, the nodes of cluster funnelhouse with their config files, the
// cluster form of the migrations, and a pipeline member writing to it.
func checkComposeCluster(t *testing.T, c map[string]any, members []string) {
	services, _ := c["services"].(map[string]any)
	svc := func(name string) map[string]any { m, _ := services[name].(map[string]any); return m }
	var profiled []string
	for _, name := range sortedKeys(services) {
		p := strList(get(services[name], "profiles"))
		if slices.Contains(p, "cluster") {
			if len(p) != 1 {
				t.Errorf("service %s: profiles %v, want [cluster]", name, p)
			}
			profiled = append(profiled, name)
		}
	}
	for _, name := range []string{"keeper", "migrate-cluster", "funnelhouse-cluster"} {
		if !slices.Contains(profiled, name) {
			t.Errorf("docker-compose.yml: no service %s in profile cluster (have %v)", name, profiled)
		}
	}
	// Without the profile nothing changes: no other service needs these.
	for _, name := range sortedKeys(services) {
		if slices.Contains(profiled, name) {
			continue
		}
		for dep := range mapOf(get(services[name], "depends_on")) {
			if slices.Contains(profiled, dep) {
				t.Errorf("service %s (no profile) depends on %s of profile cluster: a plain `docker compose up` would start it", name, dep)
			}
		}
	}
	// The same ClickHouse image as the single server: Keeper is in it.
	chImage := str(get(svc("clickhouse"), "image"))
	if img := str(get(svc("keeper"), "image")); img != chImage {
		t.Errorf("service keeper: image %q, want the stack's %q (clickhouse keeper is in its binary)", img, chImage)
	}
	if ep := strings.Join(strList(get(svc("keeper"), "entrypoint")), " "); !strings.HasPrefix(ep, "clickhouse keeper --config-file=") {
		t.Errorf("service keeper: entrypoint %q, want clickhouse keeper --config-file=...", ep)
	}
	if hc := strings.Join(strList(get(svc("keeper"), "healthcheck", "test")), " "); !strings.Contains(hc, "ruok") {
		t.Errorf("service keeper: healthcheck %q does not ask ruok", hc)
	}
	keeperMounts := composeMounts(svc("keeper"))
	keeperFile := ""
	for target, host := range keeperMounts {
		if strings.HasSuffix(target, ".xml") {
			keeperFile = host
		}
	}
	if keeperFile == "" || !strings.Contains(strings.Join(strList(get(svc("keeper"), "entrypoint")), " "), "--config-file=") {
		t.Fatalf("service keeper mounts no config file: %v", keeperMounts)
	}
	keeper := readCHConfig(t, filepath.Join("compose", keeperFile))
	if keeper.Keeper.TCPPort == "" || len(keeper.Keeper.Servers) == 0 || keeper.Keeper.Servers[0].ID != keeper.Keeper.ServerID ||
		keeper.Keeper.Servers[0].Hostname != str(get(svc("keeper"), "hostname")) {
		t.Errorf("%s: tcp_port %q, server_id %q, raft servers %+v; want a port and this node (hostname %q) in raft_configuration",
			keeperFile, keeper.Keeper.TCPPort, keeper.Keeper.ServerID, keeper.Keeper.Servers, get(svc("keeper"), "hostname"))
	}

	// migrate --cluster: the cluster name and the nodes it connects to.
	mig := svc("migrate-cluster")
	migEnv := envMap(mig["environment"])
	cluster := migEnv["FUNNELHOUSE_CLUSTER"]
	if cluster != "funnelhouse" {
		t.Errorf("service migrate-cluster: FUNNELHOUSE_CLUSTER %q, want funnelhouse (the cluster of deploy/cluster.sh and the docs)", cluster)
	}
	if cmd := strList(mig["command"]); !slices.Equal(cmd, []string{"migrate"}) {
		t.Errorf("service migrate-cluster: command %v, want [migrate]", cmd)
	}
	dsn, err := url.Parse(migEnv["FUNNELHOUSE_CLICKHOUSE"])
	if err != nil {
		t.Fatalf("service migrate-cluster: %v", err)
	}

	// The nodes: every service that mounts the cluster's config.
	var nodes []string
	configs := map[string]chConfig{} // node -> its macros file
	var clusterXML chConfig
	clusterFile := ""
	for _, name := range profiled {
		mounts := composeMounts(svc(name))
		cf := mounts["/etc/clickhouse-server/config.d/cluster.xml"]
		if cf == "" {
			continue
		}
		nodes = append(nodes, name)
		if clusterFile == "" {
			clusterFile, clusterXML = cf, readCHConfig(t, filepath.Join("compose", cf))
		} else if cf != clusterFile {
			t.Errorf("service %s mounts %s as cluster.xml, %s another: one cluster, one file", name, cf, nodes[0])
		}
		if img := str(get(svc(name), "image")); img != chImage {
			t.Errorf("service %s: image %q, want the single server's %q", name, img, chImage)
		}
		if h := str(get(svc(name), "hostname")); h != name {
			t.Errorf("service %s: hostname %q, want its name (the other servers and interserver fetches use it)", name, h)
		}
		if got := str(get(svc(name), "depends_on", "keeper", "condition")); got != "service_healthy" {
			t.Errorf("service %s: depends_on keeper %q, want service_healthy (a server started without it cannot load its replicated tables)", name, got)
		}
		if got := str(get(mig, "depends_on", name, "condition")); got != "service_healthy" {
			t.Errorf("service migrate-cluster: depends_on %s %q, want service_healthy (migrate --cluster reaches every server)", name, got)
		}
		mf := mounts["/etc/clickhouse-server/config.d/macros.xml"]
		if mf == "" {
			t.Errorf("service %s mounts no macros.xml", name)
			continue
		}
		configs[name] = readCHConfig(t, filepath.Join("compose", mf))
	}
	if len(nodes) < 2 {
		t.Fatalf("profile cluster: %d ClickHouse nodes (services mounting config.d/cluster.xml), want at least 2", len(nodes))
	}
	var def []string
	for _, cl := range clusterXML.RemoteServers.Clusters {
		def = append(def, cl.XMLName.Local)
	}
	if len(def) != 1 || def[0] != cluster {
		t.Fatalf("%s: remote_servers defines %v, want exactly the cluster %q of migrate-cluster", clusterFile, def, cluster)
	}
	cl := clusterXML.RemoteServers.Clusters[0]
	if cl.Secret == nil || (cl.Secret.FromEnv == "" && strings.TrimSpace(cl.Secret.Value) == "") {
		t.Errorf("%s: cluster %s has no <secret>: the servers would reach each other as the default user, which the image removes", clusterFile, cluster)
	}
	shardOf := map[string]int{} // node -> its shard's place (1-based)
	for i, sh := range cl.Shards {
		if sh.InternalReplication != "true" {
			t.Errorf("%s: shard %d without internal_replication (the Replicated* engines copy the rows; Distributed must write one replica)", clusterFile, i+1)
		}
		for _, r := range sh.Replicas {
			if !slices.Contains(nodes, r.Host) || r.Port != "9000" {
				t.Errorf("%s: shard %d replica %s:%s, want a node of the profile (%v) on its native port 9000", clusterFile, i+1, r.Host, r.Port, nodes)
			}
			if _, dup := shardOf[r.Host]; dup {
				t.Errorf("%s: %s is listed twice", clusterFile, r.Host)
			}
			shardOf[r.Host] = i + 1
		}
	}
	if dsn != nil && shardOf[dsn.Hostname()] == 0 {
		t.Errorf("service migrate-cluster: FUNNELHOUSE_CLICKHOUSE names %s, not a node of cluster %s", dsn.Host, cluster)
	}
	if len(clusterXML.ZooKeeper) != 1 || clusterXML.ZooKeeper[0].Host != "keeper" || clusterXML.ZooKeeper[0].Port != keeper.Keeper.TCPPort {
		t.Errorf("%s: zookeeper %+v, want the keeper service on its tcp_port %s", clusterFile, clusterXML.ZooKeeper, keeper.Keeper.TCPPort)
	}
	// Each node's macros: its shard, a replica name unique in the
	// cluster, and every macro the cluster form uses.
	wantMacros := clusterMacros(t, cluster)
	replicas := map[string]string{}
	for _, name := range nodes {
		if shardOf[name] == 0 {
			t.Errorf("service %s is not in %s's remote_servers", name, clusterFile)
		}
		macros := map[string]string{}
		for _, m := range configs[name].Macros.Items {
			macros[m.XMLName.Local] = strings.TrimSpace(m.Value)
		}
		for _, m := range wantMacros {
			if macros[m] == "" {
				t.Errorf("service %s: no macro %s, which the migrations' cluster form uses (macros %v)", name, m, macros)
			}
		}
		if macros["shard"] != strconv.Itoa(shardOf[name]) {
			t.Errorf("service %s: macro shard %q, want %d (its shard in %s)", name, macros["shard"], shardOf[name], clusterFile)
		}
		if other, dup := replicas[macros["replica"]]; dup {
			t.Errorf("services %s and %s share the macro replica %q: it must be unique in the cluster", other, name, macros["replica"])
		}
		replicas[macros["replica"]] = name
		if h := configs[name].InterserverHTTPHost; h != name {
			t.Errorf("service %s: interserver_http_host %q, want %s", name, h, name)
		}
	}

	// The cluster's member: the member checks against migrate-cluster, and
	// a group and instance id of its own.
	member := svc("funnelhouse-cluster")
	env := envMap(member["environment"])
	checkComposeMember(t, "funnelhouse-cluster", member, "migrate-cluster", migEnv["FUNNELHOUSE_CLICKHOUSE"])
	for _, m := range members {
		mEnv := envMap(get(services[m], "environment"))
		if env["FUNNELHOUSE_GROUP"] == mEnv["FUNNELHOUSE_GROUP"] {
			t.Errorf("services funnelhouse-cluster and %s share the consumer group %q: they would split the partitions between two databases", m, env["FUNNELHOUSE_GROUP"])
		}
		if env["FUNNELHOUSE_INSTANCE_ID"] == "" || env["FUNNELHOUSE_INSTANCE_ID"] == mEnv["FUNNELHOUSE_INSTANCE_ID"] {
			t.Errorf("service funnelhouse-cluster: FUNNELHOUSE_INSTANCE_ID %q, want one of its own", env["FUNNELHOUSE_INSTANCE_ID"])
		}
	}
	for _, node := range nodes {
		if got := str(get(member, "depends_on", node, "condition")); got != "service_healthy" {
			t.Errorf("service funnelhouse-cluster: depends_on %s %q, want service_healthy", node, got)
		}
	}
	for _, v := range []string{"keeper-data"} {
		if _, ok := mapOf(c["volumes"])[v]; !ok {
			t.Errorf("docker-compose.yml: no volume %s", v)
		}
	}
}

// TestClickHouseInstallation checks the example ClickHouse cluster for the
// Altinity operator (k8s/clickhouse-installation.example.yaml), and renders
// the overlay deploy/README.md gives for it with `kubectl kustomize` when
// kubectl is installed.
func TestClickHouseInstallation(t *testing.T) {
	docs := yamlDocs(t, "k8s/clickhouse-installation.example.yaml")
	if len(docs) != 1 {
		t.Fatalf("clickhouse-installation.example.yaml: %d documents, want 1", len(docs))
	}
	chi := docs[0]
	if str(chi["apiVersion"]) != "clickhouse.altinity.com/v1" || str(chi["kind"]) != "ClickHouseInstallation" {
		t.Errorf("apiVersion %v kind %v, want clickhouse.altinity.com/v1 ClickHouseInstallation", chi["apiVersion"], chi["kind"])
	}
	if ns := get(chi, "metadata", "namespace"); ns != nil {
		t.Errorf("metadata.namespace %v: keep it namespace-less like the other manifests", ns)
	}
	clusters := list(get(chi, "spec", "configuration", "clusters"))
	if len(clusters) != 1 || str(get(clusters[0], "name")) != "funnelhouse" {
		t.Fatalf("clusters %v, want one, named funnelhouse (the name migrate --cluster is given)", clusters)
	}
	cl := clusters[0]
	if s, r := str(get(cl, "layout", "shardsCount")), str(get(cl, "layout", "replicasCount")); s != "2" || r != "2" {
		t.Errorf("layout %s shards x %s replicas, want 2 x 2", s, r)
	}
	if a := strings.ToLower(str(get(cl, "secret", "auto"))); a != "true" {
		t.Errorf("cluster secret.auto %q, want \"true\": without an interserver secret the servers reach each other as default", a)
	}
	nodes := list(get(chi, "spec", "configuration", "zookeeper", "nodes"))
	if len(nodes) == 0 {
		t.Error("no spec.configuration.zookeeper.nodes: Replicated* tables and ON CLUSTER need ZooKeeper")
	}
	for _, n := range nodes {
		if str(get(n, "host")) == "" || str(get(n, "port")) == "" {
			t.Errorf("zookeeper node %v: want host and port", n)
		}
	}
	// The macros: the operator defines these on every server; the
	// migrations' cluster form must use no other.
	operatorMacros := []string{"installation", "cluster", "shard", "replica"}
	for _, m := range clusterMacros(t, "funnelhouse") {
		if !slices.Contains(operatorMacros, m) {
			t.Errorf("the cluster form uses macro {%s}, which the operator does not define (%v)", m, operatorMacros)
		}
	}
	// Pinned images, in every pod template.
	images := 0
	for _, pt := range list(get(chi, "spec", "templates", "podTemplates")) {
		for _, c := range list(get(pt, "spec", "containers")) {
			images++
			img := str(get(c, "image"))
			if i := strings.LastIndex(img, ":"); i < 0 || !regexp.MustCompile(`\d`).MatchString(img[i+1:]) {
				t.Errorf("pod template %v: image %q is not pinned to a version", get(pt, "name"), img)
			}
		}
	}
	if images == 0 {
		t.Error("no pod template with a container image: the operator's default image is not pinned here")
	}
	// The user: the password of the Secret and key the pods read.
	users := mapOf(get(chi, "spec", "configuration", "users"))
	ref := str(users["funnelhouse/k8s_secret_password"])
	if ref != "funnelhouse/FUNNELHOUSE_CLICKHOUSE_PASSWORD" {
		t.Errorf("users: funnelhouse/k8s_secret_password %q, want funnelhouse/FUNNELHOUSE_CLICKHOUSE_PASSWORD (the Secret the migrate Job and members read)", ref)
	}
	for k, v := range users {
		if strings.HasSuffix(k, "/password") || strings.HasSuffix(k, "/password_sha256_hex") {
			t.Errorf("users: %s=%v: a password in the manifest; use k8s_secret_password", k, v)
		}
	}
	// The operator copies the CHI's labels to its pods: the pipeline's
	// selectors must not pick them.
	chiLabels := get(chi, "metadata", "labels")
	for _, f := range []string{"statefulset.yaml", "pdb.yaml", "networkpolicy.yaml"} {
		for _, doc := range yamlDocs(t, filepath.Join("k8s", f)) {
			for _, sel := range []any{get(doc, "spec", "selector", "matchLabels"), get(doc, "spec", "podSelector", "matchLabels")} {
				if sel != nil && selects(sel, chiLabels) {
					t.Errorf("k8s/%s: its selector %v matches the ClickHouseInstallation's labels %v", f, sel, chiLabels)
				}
			}
		}
	}

	// The overlay of deploy/README.md, rendered.
	overlay := readmeOverlay(t)
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Log("kubectl is not installed: the README's overlay is not rendered")
		return
	}
	root := t.TempDir()
	base := filepath.Join(root, "funnelhouse", "deploy", "k8s")
	if err := os.MkdirAll(base, 0o755); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("k8s/*.yaml")
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(base, filepath.Base(f)), []byte(readFile(t, f)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(root, "overlay")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(overlay), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(kubectl, "kustomize", dir).Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("kubectl kustomize of the README's overlay: %v\n%s", err, stderr)
	}
	dec := yaml.NewDecoder(bytes.NewReader(out))
	var job, cm map[string]any
	for {
		var doc map[string]any
		if err := dec.Decode(&doc); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		switch str(doc["kind"]) + "/" + str(get(doc, "metadata", "name")) {
		case "Job/funnelhouse-migrate":
			job = doc
		case "ConfigMap/funnelhouse":
			cm = doc
		}
	}
	var names []string
	clusterEnv := ""
	for _, e := range list(get(job, "spec", "template", "spec", "containers", 0, "env")) {
		names = append(names, str(get(e, "name")))
		if str(get(e, "name")) == "FUNNELHOUSE_CLUSTER" {
			clusterEnv = str(get(e, "value"))
		}
	}
	if clusterEnv != "funnelhouse" {
		t.Errorf("the overlay's migrate Job: FUNNELHOUSE_CLUSTER %q, want funnelhouse (env %v)", clusterEnv, names)
	}
	checkEnvNames(t, "the overlay's migrate Job", "migrate", names)
	dsn := str(get(cm, "data", "FUNNELHOUSE_CLICKHOUSE"))
	if u := checkDSNHasNoPassword(t, "the overlay's ConfigMap", dsn); u != nil && u.Hostname() != "clickhouse-"+str(get(chi, "metadata", "name")) {
		t.Errorf("the overlay's ConfigMap: FUNNELHOUSE_CLICKHOUSE %q, want the operator's Service clickhouse-%v", dsn, get(chi, "metadata", "name"))
	}
}

// readmeOverlay is the first ```yaml block of deploy/README.md's section
// "A ClickHouse cluster (Altinity operator)".
func readmeOverlay(t *testing.T) string {
	t.Helper()
	text := readFile(t, "README.md")
	_, section, ok := strings.Cut(text, "### A ClickHouse cluster (Altinity operator)")
	if !ok {
		t.Fatal("README.md: no section \"A ClickHouse cluster (Altinity operator)\"")
	}
	_, block, ok := strings.Cut(section, "```yaml\n")
	if !ok {
		t.Fatal("README.md: the cluster section has no yaml block (the overlay)")
	}
	block, _, _ = strings.Cut(block, "```")
	// The block is indented under a list item.
	var lines []string
	indent := -1
	for _, line := range strings.Split(block, "\n") {
		if strings.TrimSpace(line) == "" {
			lines = append(lines, "")
			continue
		}
		if indent < 0 {
			indent = len(line) - len(strings.TrimLeft(line, " "))
		}
		lines = append(lines, strings.TrimPrefix(line, strings.Repeat(" ", indent)))
	}
	return strings.Join(lines, "\n")
}
