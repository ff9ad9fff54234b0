package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/funnelhouse/funnelhouse/bench/expected"
	"github.com/funnelhouse/funnelhouse/bench/traffic"
	chsink "github.com/funnelhouse/funnelhouse/sinks/clickhouse"
)

// faultRig is one fault scenario's world: `funnelhouse broker` as a
// process with generated traffic already produced, a database of its own
// on the test ClickHouse, and the expected results. `funnelhouse run`
// processes are started and killed against it.
type faultRig struct {
	t          *testing.T
	bin        string
	brokerAddr string
	dsn        string
	group      string
	cs, tx     string
	dlq        string
	expect     *expectation
	malformed  []traffic.Record
	want       *expected.Result
	conn       driver.Conn
	db         string
}

func newFaultRig(t *testing.T, name string, events, partitions int) *faultRig {
	t.Helper()
	return newFaultRigOn(t, testDSN(t, "fh_"+name), name, events, partitions)
}

// newFaultRigOn is newFaultRig on the ClickHouse of the DSN given.
func newFaultRigOn(t *testing.T, dsn, name string, events, partitions int) *faultRig {
	t.Helper()
	r := &faultRig{t: t, dsn: dsn, group: name, cs: name + ".clickstream", tx: name + ".transactions", dlq: name + ".dlq"}
	r.bin = buildBinary(t)
	r.brokerAddr = freeAddr(t)
	startProcess(t, r.bin, "broker", "--listen", r.brokerAddr, "--partitions", fmt.Sprint(partitions),
		"--topics", r.cs+","+r.tx+","+r.dlq, "--min-session-timeout", "500ms")
	waitListening(t, r.brokerAddr)
	if err := resetDatabase(context.Background(), r.dsn, ""); err != nil {
		t.Fatal(err)
	}
	cfg := traffic.Config{Seed: int64(len(name)), Events: events, ClickstreamTopic: r.cs, TransactionsTopic: r.tx}.WithDefaults()
	cfg.BadRate = 0.002
	r.expect = newExpectation(r.cs, r.tx, time.Now)
	if _, err := produceTraffic(context.Background(), []string{r.brokerAddr}, cfg, func(rec *traffic.Record) {
		r.expect.add(rec.Topic, rec.Key, rec.Value)
		if rec.Kind == traffic.Malformed {
			r.malformed = append(r.malformed, traffic.Record{Key: bytes.Clone(rec.Key), Value: bytes.Clone(rec.Value), Reason: rec.Reason})
		}
	}); err != nil {
		t.Fatal(err)
	}
	r.want = expected.Compute(r.expect.events, expected.Config{SessionGap: 30 * time.Minute, ChurnAfter: 90 * 24 * time.Hour, HorizonMs: time.Now().Add(-10 * time.Minute).UnixMilli()})
	var err error
	r.conn, r.db, err = chsink.Connect(context.Background(), r.dsn, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.conn.Close() })
	return r
}

// runArgs are the flags of a `run` member of the rig's group.
func (r *faultRig) runArgs(extra ...string) []string {
	return append([]string{"run", "--brokers", r.brokerAddr, "--clickhouse", r.dsn, "--group", r.group,
		"--clickstream-topic", r.cs, "--transactions-topic", r.tx, "--dlq-topic", r.dlq,
		"--idle-advance", "2s", "--flush-interval", "300ms", "--batch-rows", "50000",
		"--session-timeout", "1s", "--metrics-addr", ""}, extra...)
}

// start starts a `run` member with extra environment variables.
func (r *faultRig) start(env []string, extra ...string) *member {
	cmd := startProcessEnv(r.t, env, r.bin, r.runArgs(extra...)...)
	m := &member{cmd: cmd, exited: make(chan error, 1)}
	go func() { m.exited <- cmd.Wait() }()
	return m
}

type member struct {
	cmd    *exec.Cmd
	exited chan error
}

// stop sends SIGTERM and expects a clean exit within the timeout.
func (m *member) stop(t *testing.T, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-m.exited:
		if err != nil {
			t.Errorf("member exited with %v after SIGTERM", err)
		}
	case <-time.After(timeout):
		t.Errorf("member did not exit within %s of SIGTERM", timeout)
		m.kill()
	}
	return time.Since(start)
}

// kill SIGKILLs the member and waits for it.
func (m *member) kill() {
	_ = m.cmd.Process.Signal(syscall.SIGKILL)
	<-m.exited
}

// killedBySignal reports whether the member's exit was SIGKILL.
func killedBySignal(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// committed is the number of input records the group has committed.
func (r *faultRig) committed() int64 {
	w, err := newCommitWatcher([]string{r.brokerAddr}, r.group, r.cs, r.tx)
	if err != nil {
		r.t.Fatal(err)
	}
	defer w.close()
	n, _ := w.records(context.Background())
	return n
}

// waitDrained waits until every record is committed and the tables hold
// the expected numbers of sessions and transitions (the last to arrive).
func (r *faultRig) waitDrained(timeout time.Duration) {
	r.t.Helper()
	w, err := newCommitWatcher([]string{r.brokerAddr}, r.group, r.cs, r.tx)
	if err != nil {
		r.t.Fatal(err)
	}
	defer w.close()
	ctx := context.Background()
	deadline := time.Now().Add(timeout)
	for {
		n, _ := w.records(ctx)
		var sessions, transitions uint64
		_ = r.conn.QueryRow(ctx, "SELECT count() FROM "+r.db+".sessions FINAL").Scan(&sessions)
		_ = r.conn.QueryRow(ctx, "SELECT count() FROM "+r.db+".lifecycle_transitions FINAL").Scan(&transitions)
		if n >= r.expect.records && sessions == uint64(len(r.want.Sessions)) && transitions == uint64(len(r.want.Transitions)) {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("not drained after %s: %d/%d records committed, %d/%d sessions, %d/%d transitions",
				timeout, n, r.expect.records, sessions, len(r.want.Sessions), transitions, len(r.want.Transitions))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// verify checks the views and tables against the expected computation,
// the stored counters against the records, and the dead-letter topic
// against the malformed records (at-least-once: repeats of the same source
// offset count once).
func (r *faultRig) verify() {
	r.t.Helper()
	ctx := context.Background()
	if err := verifyViews(ctx, r.conn, r.db, r.want, len(r.expect.events)); err != nil {
		r.t.Error(err)
	}
	if err := checkAccounting(ctx, r.conn, r.db, r.group, r.expect); err != nil {
		r.t.Error(err)
	}
	checkDeadLetters(r.t, []string{r.brokerAddr}, r.dlq, r.malformed)
}

// TestCrashRecovery kills `funnelhouse run` with SIGKILL at six points of a
// run over 1M events: between an acknowledged checkpoint insert and its
// offset commit, while an insert is in flight, between two inserts of one
// checkpoint, and at three random moments; each time a new member takes
// over. The result must be exact and every record counted once.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("1M events")
	}
	r := newFaultRig(t, "crash", 1_000_000, 4)
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	t.Logf("%d records produced; random kill times from seed %d", r.expect.records, seed)
	faults := []struct {
		name string
		env  string
	}{
		{"between an acknowledged checkpoint and its offset commit", "FUNNELHOUSE_TEST_KILL=after-insert:pipeline_state:3"},
		{"while the events insert is in flight", "FUNNELHOUSE_TEST_KILL=during-insert:events:2"},
		{"between the events and sessions inserts of a checkpoint", "FUNNELHOUSE_TEST_KILL=after-insert:events:2"},
		{"at a random moment", ""},
		{"at a random moment", ""},
		{"while the state insert is in flight", "FUNNELHOUSE_TEST_KILL=during-insert:pipeline_state:2"},
		{"at a random moment", ""},
	}
	for i, f := range faults {
		before := r.committed()
		m := r.start([]string{f.env})
		if f.env == "" {
			wait := time.Duration(2000+rng.IntN(2500)) * time.Millisecond
			select {
			case err := <-m.exited:
				t.Fatalf("kill %d: member exited on its own: %v", i+1, err)
			case <-time.After(wait):
			}
			m.kill()
			t.Logf("kill %d (%s, after %s): committed %d → %d records", i+1, f.name, wait, before, r.committed())
			continue
		}
		select {
		case err := <-m.exited:
			if !killedBySignal(err) {
				t.Fatalf("kill %d (%s): member exited with %v, want SIGKILL", i+1, f.name, err)
			}
		case <-time.After(2 * time.Minute):
			m.kill()
			t.Fatalf("kill %d (%s): the fault point was not reached", i+1, f.name)
		}
		t.Logf("kill %d (%s): committed %d → %d records", i+1, f.name, before, r.committed())
	}
	last := r.start(nil)
	r.waitDrained(3 * time.Minute)
	last.stop(t, 30*time.Second)
	r.verify()
}

// startProcessEnv is startProcess with extra environment variables.
func startProcessEnv(t *testing.T, env []string, bin string, args ...string) *exec.Cmd {
	t.Helper()
	logFile, err := os.CreateTemp(t.TempDir(), args[0]+"-*.log")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = os.Environ()
	for _, e := range env {
		if e != "" {
			cmd.Env = append(cmd.Env, e)
		}
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
		if t.Failed() {
			out, _ := os.ReadFile(logFile.Name())
			t.Logf("%s output:\n%s", args[0], tail(out, 3000))
		}
	})
	return cmd
}

// ownClickHouse starts a ClickHouse server of the test's own (the outage
// test stops it, which must not disturb the other tests), returning its
// base DSN and a function that stops or starts it on the same ports.
func ownClickHouse(t *testing.T) (dsn string, stop, start func()) {
	t.Helper()
	if os.Getenv("FUNNELHOUSE_TEST_CLICKHOUSE") == "" {
		t.Skip("FUNNELHOUSE_TEST_CLICKHOUSE is not set: run `make test`")
	}
	dir := t.TempDir()
	script := "../../deploy/clickhouse.sh"
	run := func(env []string, args ...string) string {
		cmd := exec.Command("bash", append([]string{script}, args...)...)
		cmd.Env = append(os.Environ(), env...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("clickhouse.sh %v: %v\n%s", args, err, stderr.String())
		}
		return string(bytes.TrimSpace(out))
	}
	dsn = run(nil, "start", dir)
	t.Cleanup(func() { run(nil, "stop", dir) })
	native, _ := os.ReadFile(dir + "/native.port")
	httpPort, _ := os.ReadFile(dir + "/http.port")
	ports := []string{"CH_NATIVE_PORT=" + string(bytes.TrimSpace(native)), "CH_HTTP_PORT=" + string(bytes.TrimSpace(httpPort))}
	return dsn, func() { run(nil, "stop", dir) }, func() { run(ports, "start", dir) }
}

// scrape returns the sum of each metric's samples at a /metrics address.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	sums := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		name, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if i := strings.IndexByte(name, '{'); i >= 0 {
			name = name[:i]
		}
		if v, err := strconv.ParseFloat(value, 64); err == nil {
			sums[name] += v
		}
	}
	return sums
}

func readyz(addr string) int {
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// peakRSS is a process's peak resident set size in bytes (VmHWM).
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(rest), "%d kB", &kb)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}

// rssBound is the memory a `run` member may use in these tests (1M events,
// 4 partitions, --batch-rows 50000), whatever ClickHouse does: fetching
// pauses above 2 x --batch-rows buffered rows, plus up to 4 queued fetches
// per partition owner, so about 250k rows in memory at 2 KiB each with the
// driver's copy of a batch in flight and the GC's headroom (500 MiB), plus
// the lifecycle state of about 100k visitors, held events (bounded by
// watermark alignment) and 16 MiB of fetch buffers. Measured without an
// outage: about 580 MiB; reading all 1M records unchecked took 2.3 GiB.
const rssBound = 768 << 20

// TestClickHouseOutage stops ClickHouse for 35 s in the middle of a run:
// inserts retry with backoff, /readyz reports not ready, fetching pauses
// so the member's memory stays under rssBound, and after the restart the
// result is exact with nothing lost or doubled.
func TestClickHouseOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("1M events and a 35 s outage")
	}
	base, stopCH, startCH := ownClickHouse(t)
	r := newFaultRigOn(t, strings.TrimRight(base, "/")+"/fh_outage", "outage", 1_000_000, 4)
	metricsAddr := freeAddr(t)
	m := r.start(nil, "--metrics-addr", metricsAddr)
	for r.committed() < r.expect.records/5 {
		time.Sleep(50 * time.Millisecond)
	}
	stopCH()
	down := time.Now()
	notReady := false
	for time.Since(down) < 35*time.Second {
		if code := readyz(metricsAddr); code == http.StatusServiceUnavailable {
			notReady = true
		}
		select {
		case err := <-m.exited:
			t.Fatalf("member exited during the outage: %v", err)
		case <-time.After(500 * time.Millisecond):
		}
	}
	during := scrape(t, metricsAddr)
	t.Logf("after %s down: %v records read, %v insert retries, committed %d", time.Since(down).Round(time.Second),
		during["funnelhouse_pipeline_records_total"], during["funnelhouse_sink_retries_total"], r.committed())
	startCH()
	t.Logf("ClickHouse down for %s", time.Since(down).Round(time.Second))
	if !notReady {
		t.Error("/readyz never reported not ready while ClickHouse was down")
	}
	if during["funnelhouse_sink_retries_total"] < 3 {
		t.Errorf("only %v insert retries during the outage", during["funnelhouse_sink_retries_total"])
	}
	if read := during["funnelhouse_pipeline_records_total"]; read >= float64(r.expect.records) {
		t.Errorf("fetching did not pause: all %v records were read while ClickHouse was down", read)
	}
	r.waitDrained(3 * time.Minute)
	if code := readyz(metricsAddr); code != http.StatusOK {
		t.Errorf("/readyz answers %d after ClickHouse is back", code)
	}
	rss := peakRSS(t, m.cmd.Process.Pid)
	t.Logf("peak RSS of the member: %d MiB (bound %d MiB)", rss>>20, rssBound>>20)
	if rss > rssBound {
		t.Errorf("peak RSS %d MiB exceeds the bound of %d MiB", rss>>20, rssBound>>20)
	}
	m.stop(t, 30*time.Second)
	r.verify()
}
