package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/funnelhouse/funnelhouse/bench/e2e"
	"github.com/funnelhouse/funnelhouse/bench/expected"
	"github.com/funnelhouse/funnelhouse/bench/feed"
	"github.com/funnelhouse/funnelhouse/bench/traffic"
	"github.com/funnelhouse/funnelhouse/bench/verify"
	"github.com/funnelhouse/funnelhouse/deploy/kafka"
	"github.com/funnelhouse/funnelhouse/pipeline"
	chsink "github.com/funnelhouse/funnelhouse/sinks/clickhouse"
)

// testDSN returns a DSN for a database of the test's own on the ClickHouse
// that `make test` started (FUNNELHOUSE_TEST_CLICKHOUSE).
func testDSN(t *testing.T, name string) string {
	t.Helper()
	base := os.Getenv("FUNNELHOUSE_TEST_CLICKHOUSE")
	if base == "" {
		t.Skip("FUNNELHOUSE_TEST_CLICKHOUSE is not set: run `make test`, which starts a local ClickHouse")
	}
	base = strings.TrimRight(base, "/")
	if i := strings.LastIndex(base, "/"); i > len("clickhouse://") {
		base = base[:i]
	}
	return fmt.Sprintf("%s/%s_%d", base, name, os.Getpid())
}

// TestEndToEnd runs the whole pipeline in-process on the embedded broker
// and the real ClickHouse over generated traffic with out-of-order
// delivery, duplicates and malformed records, and checks every view, the
// sessions, transitions and events tables against the independent expected
// computation, and the dead-letter topic against the malformed records.
func TestEndToEnd(t *testing.T) {
	r := newTestRun(t, "e2e", 4, traffic.Config{Seed: 7, Events: 200_000})
	r.pf.cfg.FlushInterval = 500 * time.Millisecond
	r.pf.cfg.BatchRows = 50_000
	r.Traffic.BadRate = 0.002
	var malformed []traffic.Record
	ctx := context.Background()
	err := r.runWith(ctx, func(rec *traffic.Record) {
		if rec.Kind == traffic.Malformed {
			malformed = append(malformed, traffic.Record{Topic: rec.Topic, Key: bytes.Clone(rec.Key), Value: bytes.Clone(rec.Value), Reason: rec.Reason})
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Expect.Events) < 190_000 || r.Expect.Duplicates == 0 || len(malformed) < 100 {
		t.Fatalf("traffic too small to prove anything: %d events, %d duplicates, %d malformed", len(r.Expect.Events), r.Expect.Duplicates, len(malformed))
	}
	t.Logf("%d records: %d events, %d duplicates, %d malformed; consumed in %s, drained in %s",
		r.Expect.Records, len(r.Expect.Events), r.Expect.Duplicates, len(malformed), r.ConsumeTime, r.DrainTime)

	// Every record is accounted for exactly once.
	st := r.Stats
	var dead uint64
	for _, n := range st.DeadLetters {
		dead += n
	}
	if got := st.Records[0] + st.Records[1]; got != uint64(r.Expect.Records) {
		t.Errorf("pipeline read %d records, %d were produced", got, r.Expect.Records)
	}
	if st.Duplicates != uint64(r.Expect.Duplicates) || dead != uint64(len(malformed)) || st.Late != 0 {
		t.Errorf("pipeline counted %d duplicates, %d dead letters, %d late; want %d, %d, 0", st.Duplicates, dead, st.Late, r.Expect.Duplicates, len(malformed))
	}

	checkDeadLetters(t, r.Broker.Addrs(), r.pf.cfg.DLQTopic, malformed)

	conn, db, err := chsink.Connect(ctx, chsink.Endpoint{DSN: r.pf.dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	if err := verify.Accounting(ctx, conn, db, r.pf.cfg.Group, r.Expect); err != nil {
		t.Error(err)
	}

	// Replay-safe: inserting every row of the pipeline's tables a second
	// time (as a replay after a crash would) changes no number.
	for _, table := range []string{"events", "sessions", "lifecycle_transitions"} {
		if err := conn.Exec(ctx, "INSERT INTO "+db+"."+table+" SELECT * FROM "+db+"."+table); err != nil {
			t.Fatal(err)
		}
	}
	if err := verify.Views(ctx, conn, db, r.Want, len(r.Expect.Events)); err != nil {
		t.Fatalf("after inserting every row twice: %v", err)
	}

	// The check must be able to fail: one extra transition breaks it.
	if err := conn.Exec(ctx, "INSERT INTO "+db+".lifecycle_transitions SELECT visitor_id, customer_id, 'advocacy', ts, ts_ms, cohort_day, source, event_id FROM "+db+".lifecycle_transitions WHERE stage = 'awareness' LIMIT 1"); err != nil {
		t.Fatal(err)
	}
	if err := verify.Views(ctx, conn, db, r.Want, len(r.Expect.Events)); err == nil {
		t.Error("verifyViews passed after a bogus transition was inserted")
	}
}

// TestRestartResumes stops the pipeline gracefully twice mid-run and starts
// it again: the new member restores each partition's checkpoint, re-reads no
// record, and the result is exact.
func TestRestartResumes(t *testing.T) {
	r := newTestRun(t, "restart", 3, traffic.Config{Seed: 3, Events: 100_000})
	r.pf.cfg.FlushInterval = 200 * time.Millisecond
	r.pf.cfg.BatchRows = 5_000
	r.RestartAt = []float64{0.3, 0.6}
	err := r.run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Stats.Records[0] + r.Stats.Records[1]; got != uint64(r.Expect.Records) {
		t.Errorf("the pipeline read %d records over three runs, %d were produced: a restart re-read or skipped some", got, r.Expect.Records)
	}
	conn, db, err := chsink.Connect(context.Background(), chsink.Endpoint{DSN: r.pf.dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := verify.Accounting(context.Background(), conn, db, r.pf.cfg.Group, r.Expect); err != nil {
		t.Error(err)
	}
}

// newTestRun is an e2eRun of the test's own: its database, consumer group
// and topics named after it, SPEC's rules with a 2 s idle advance, no
// progress output; its broker is closed when the test ends.
func newTestRun(t *testing.T, name string, partitions int, tc traffic.Config) *e2eRun {
	t.Helper()
	r := &e2eRun{Run: e2e.Run{Partitions: partitions, Quiet: true, Traffic: tc.WithDefaults()}}
	r.pf.dsn = testDSN(t, "fh_"+name)
	r.pf.cfg.Rules = pipeline.DefaultRules()
	r.pf.cfg.Rules.IdleAdvance = 2 * time.Second
	r.pf.cfg.Group = name
	r.pf.cfg.ClickstreamTopic, r.pf.cfg.TransactionsTopic, r.pf.cfg.DLQTopic = name+".clickstream", name+".transactions", name+".dlq"
	t.Cleanup(func() {
		if r.Broker != nil {
			r.Broker.Close()
		}
	})
	return r
}

// checkDeadLetters reads the dead-letter topic and compares it with the
// malformed records: same keys and values, each with its reason header.
// Dead letters are written at least once: a repeat after a crash carries
// the same source topic, partition and offset headers and counts once.
// tablesWritten reports whether events, sessions and lifecycle_transitions
// hold as many rows as the expected computation, and says what they hold.
// Events count too: an event that adds to no session and changes no stage
// (a refund outside every session) may still wait for the watermark once
// every session and transition is written, and a member stopped then keeps
// it held in its checkpoint, counted and without a row (docs/operations.md,
// "a test stopped its members too early").
func tablesWritten(conn driver.Conn, db string, want *expected.Result, events int) (string, bool) {
	ctx := context.Background()
	var n [3]uint64
	for i, table := range []string{"events", "sessions", "lifecycle_transitions"} {
		_ = conn.QueryRow(ctx, "SELECT count() FROM "+db+"."+table+" FINAL").Scan(&n[i])
	}
	return fmt.Sprintf("%d/%d events, %d/%d sessions, %d/%d transitions", n[0], events, n[1], len(want.Sessions), n[2], len(want.Transitions)),
		n == [3]uint64{uint64(events), uint64(len(want.Sessions)), uint64(len(want.Transitions))}
}

func checkDeadLetters(t *testing.T, brokers []string, topic string, want []traffic.Record) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	key := func(k, v []byte, reason string) string { return fmt.Sprintf("%q %q %s", k, v, reason) }
	var wantKeys, gotKeys []string
	for _, r := range want {
		wantKeys = append(wantKeys, key(r.Key, r.Value, string(r.Reason)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sources := map[string]bool{}
	end := endOffset(t, cl, topic)
	read := int64(0)
	for read < end && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			read++
			h := map[string]string{}
			for _, x := range r.Headers {
				h[x.Key] = string(x.Value)
			}
			if h["funnelhouse.detail"] == "" || h["funnelhouse.topic"] == "" || h["funnelhouse.offset"] == "" || h["funnelhouse.partition"] == "" {
				t.Errorf("dead letter without source headers: %v", h)
			}
			src := h["funnelhouse.topic"] + "/" + h["funnelhouse.partition"] + "/" + h["funnelhouse.offset"]
			if sources[src] {
				return // a repeat after a crash
			}
			sources[src] = true
			gotKeys = append(gotKeys, key(r.Key, r.Value, h["funnelhouse.reason"]))
		})
	}
	slices.Sort(wantKeys)
	slices.Sort(gotKeys)
	if !slices.Equal(gotKeys, wantKeys) {
		t.Errorf("dead-letter topic holds %d records, want the %d malformed ones", len(gotKeys), len(wantKeys))
	}
}

// TestKcatInterop produces the same kind of traffic with kcat (librdkafka)
// to `funnelhouse broker` running as its own process, runs `funnelhouse
// migrate` and `funnelhouse run` as processes, and checks the exact result.
func TestKcatInterop(t *testing.T) {
	dsn := testDSN(t, "fh_kcat")
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatal("kcat is not installed: it proves interop with librdkafka; install it with `apt-get install kcat` (make test does, through deploy/prereqs.sh)")
	}
	bin := buildBinary(t)
	addr := freeAddr(t)
	startProcess(t, bin, "broker", "--listen", addr, "--partitions", "3", "--topics", "kc.clickstream,kc.transactions,kc.dlq")
	waitListening(t, addr)

	// The same traffic as TestEndToEnd, written as kcat input: key, \x1f,
	// value, \x1e; a record without a key has no \x1f.
	cfg := traffic.Config{Seed: 7, Events: 200_000, ClickstreamTopic: "kc.clickstream", TransactionsTopic: "kc.transactions"}.WithDefaults()
	cfg.BadRate = 0.002
	gen, err := traffic.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := map[string]*bytes.Buffer{"kc.clickstream": {}, "kc.transactions": {}}
	expect := verify.NewExpectation("kc.clickstream", "kc.transactions", time.Now)
	var rec traffic.Record
	var malformed []traffic.Record
	skipped := 0
	for gen.Next(&rec) {
		if bytes.ContainsAny(rec.Value, "\x1e\x1f") || bytes.ContainsAny(rec.Key, "\x1e\x1f") {
			skipped++ // kcat's delimiters cannot frame these
			continue
		}
		expect.Add(rec.Topic, rec.Key, rec.Value)
		if rec.Kind == traffic.Malformed {
			malformed = append(malformed, traffic.Record{Topic: rec.Topic, Key: bytes.Clone(rec.Key), Value: bytes.Clone(rec.Value), Reason: rec.Reason})
		}
		b := files[rec.Topic]
		if rec.Key != nil {
			b.Write(rec.Key)
			b.WriteByte(0x1f)
		}
		b.Write(rec.Value)
		b.WriteByte(0x1e)
	}
	for topic, b := range files {
		path := filepath.Join(dir, topic)
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(kcat, "-P", "-b", addr, "-t", topic, "-K", `\x1f`, "-D", `\x1e`, "-z", "lz4", "-l", path).CombinedOutput()
		if err != nil {
			t.Fatalf("kcat -P %s: %v\n%s", topic, err, out)
		}
	}
	t.Logf("kcat produced %d records (%d skipped that its delimiters cannot frame)", expect.Records, skipped)
	if skipped > 10 {
		t.Fatalf("%d records could not be framed for kcat", skipped)
	}

	if out, err := exec.Command(bin, "migrate", "--clickhouse", dsn).CombinedOutput(); err != nil {
		t.Fatalf("funnelhouse migrate: %v\n%s", err, out)
	}
	metricsAddr := freeAddr(t)
	run := startProcess(t, bin, "run", "--brokers", addr, "--clickhouse", dsn, "--group", "kc",
		"--clickstream-topic", "kc.clickstream", "--transactions-topic", "kc.transactions", "--dlq-topic", "kc.dlq",
		"--idle-advance", "2s", "--flush-interval", "500ms", "--checkpoint-interval", "1s", "--metrics-addr", metricsAddr)

	want := expect.Compute(expected.Config{SessionGap: 30 * time.Minute, ChurnAfter: 90 * 24 * time.Hour, HorizonMs: time.Now().Add(-10 * time.Minute).UnixMilli()})
	conn, db, err := chsink.Connect(context.Background(), chsink.Endpoint{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Drained when every record is committed and the tables hold what the
	// expected computation says (sessions and churns come last).
	w, err := feed.NewCommitWatcher([]string{addr}, nil, "kc", "kc.clickstream", "kc.transactions")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		n, _ := w.Records(context.Background())
		rows, written := tablesWritten(conn, db, want, len(expect.Events))
		if n >= expect.Records && written {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not drained after 3 min: %d/%d records committed, %s", n, expect.Records, rows)
		}
		time.Sleep(200 * time.Millisecond)
	}
	checkMetrics(t, metricsAddr, expect, uint64(len(want.Sessions)))
	stopProcess(t, run)
	if err := verify.Views(context.Background(), conn, db, want, len(expect.Events)); err != nil {
		t.Fatal(err)
	}
	if err := verify.Accounting(context.Background(), conn, db, "kc", expect); err != nil {
		t.Error(err)
	}
	if len(malformed) == 0 {
		t.Fatal("no malformed records went through kcat")
	}
	checkDeadLetters(t, []string{addr}, "kc.dlq", malformed)
}

// checkMetrics scrapes /metrics and /readyz of a drained `run` and checks
// that the counters match what was processed.
func checkMetrics(t *testing.T, addr string, x *verify.Expectation, sessions uint64) {
	t.Helper()
	if code := readyz(addr); code != http.StatusOK {
		t.Errorf("/readyz answered %d while the pipeline runs", code)
	}
	sums := scrape(t, addr)
	for name, want := range map[string]float64{
		"funnelhouse_pipeline_records_total":         float64(x.Records),
		"funnelhouse_pipeline_events_total":          float64(len(x.Events)),
		"funnelhouse_pipeline_duplicates_total":      float64(x.Duplicates),
		"funnelhouse_pipeline_dead_letters_total":    float64(x.RejectedTotal()),
		"funnelhouse_pipeline_sessions_closed_total": float64(sessions),
		"funnelhouse_pipeline_open_sessions":         0,
		"funnelhouse_pipeline_consumer_lag_records":  0,
	} {
		if got, ok := sums[name]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", name, got, ok, want)
		}
	}
	for _, name := range []string{"funnelhouse_sink_insert_duration_seconds_count", "funnelhouse_pipeline_checkpoint_duration_seconds_count", "funnelhouse_pipeline_stage_transitions_total", "funnelhouse_gc_limit_bytes"} {
		if sums[name] == 0 {
			t.Errorf("%s is missing or zero", name)
		}
	}
}

// endOffset sums the end offsets of a topic's partitions.
func endOffset(t *testing.T, cl *kgo.Client, topic string) int64 {
	t.Helper()
	ends, err := kadm.NewClient(cl).ListEndOffsets(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

var builtBinary string

// buildBinary builds funnelhouse once per test run, with the test hooks
// (-tags testhooks: FUNNELHOUSE_TEST_KILL, which the crash tests use).
func buildBinary(t *testing.T) string {
	t.Helper()
	if builtBinary != "" {
		return builtBinary
	}
	dir, err := os.MkdirTemp("", "funnelhouse-bin")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "funnelhouse")
	if out, err := exec.Command("go", "build", "-tags", "testhooks", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	builtBinary = bin
	return bin
}

// startBroker starts the embedded broker on a loopback port with these
// topics, closed at the end of the test.
func startBroker(t *testing.T, partitions int, topics ...string) *kafka.Broker {
	t.Helper()
	b, err := kafka.Start(context.Background(), kafka.Config{Listen: "127.0.0.1:0", Partitions: partitions, Topics: topics})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// freeAddr returns a loopback address with a port that was free a moment
// ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitListening(t *testing.T, addr string) {
	t.Helper()
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("nothing listens on %s", addr)
}

// startProcess runs the binary in the background, logging its output to a
// file that is shown if the test fails, and kills it at the end.
func startProcess(t *testing.T, bin string, args ...string) *exec.Cmd {
	t.Helper()
	cmd, _ := startProcessEnv(t, nil, bin, args...)
	return cmd
}

// stopProcess sends SIGTERM and waits for a clean exit.
func stopProcess(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	_ = cmd.Process.Signal(os.Interrupt)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("%s exited with %v after SIGINT", cmd.Args[1], err)
		}
	case <-time.After(60 * time.Second):
		t.Errorf("%s did not exit within 60s of SIGINT", cmd.Args[1])
		_ = cmd.Process.Kill()
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
