package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
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
	r := &faultRig{t: t, dsn: testDSN(t, "fh_"+name), group: name, cs: name + ".clickstream", tx: name + ".transactions", dlq: name + ".dlq"}
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
