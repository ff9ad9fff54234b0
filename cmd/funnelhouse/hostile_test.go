package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/funnelhouse/funnelhouse/bench/e2e"
	"github.com/funnelhouse/funnelhouse/bench/expected"
	"github.com/funnelhouse/funnelhouse/bench/feed"
	"github.com/funnelhouse/funnelhouse/bench/perf"
	"github.com/funnelhouse/funnelhouse/bench/traffic"
	"github.com/funnelhouse/funnelhouse/bench/verify"
	"github.com/funnelhouse/funnelhouse/pipeline"
	"github.com/funnelhouse/funnelhouse/schemas"
	chsink "github.com/funnelhouse/funnelhouse/sinks/clickhouse"
)

// TestPoisonRecord puts a 3 MB record, which the broker accepted
// compressed, among generated traffic: its dead letter must be cut to fit
// the producer's limit (it used to fail every checkpoint, and the member
// exited, restarted and failed again on the same record), and the rest of
// the traffic must be exact.
func TestPoisonRecord(t *testing.T) {
	if testing.Short() {
		t.Skip("200k events")
	}
	r := newFaultRig(t, "poison", 200_000, 2)
	key := []byte("vpoison")
	value := []byte(`{"event_id":"p1","type":"page_view","ts":"2025-01-01T00:00:00Z","visitor_id":"vpoison","url":"/` + strings.Repeat("a", 3<<20) + `"}`)
	cl, err := kgo.NewClient(kgo.SeedBrokers(r.brokerAddr), kgo.ProducerBatchMaxBytes(16<<20), kgo.ProducerBatchCompression(kgo.Lz4Compression()))
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: r.cs, Key: key, Value: value}).FirstErr(); err != nil {
		t.Fatalf("the broker refused the compressed 3 MB record: %v", err)
	}
	cl.Close()
	r.expect.Add(r.cs, key, value)
	r.malformed = append(r.malformed, traffic.Record{Key: key, Value: value[:pipeline.MaxDeadLetterBytes-len(key)], Reason: schemas.ReasonTooLarge})

	m := r.start(nil)
	r.waitAllCommitted(m, 3*time.Minute)
	r.waitDrained(3 * time.Minute)
	m.stop(t, 30*time.Second)
	r.verify()
}

// TestIdleAdvanceAfterMarkersAndRetention: an input counts as idle once it
// has no unread records. A transaction's commit marker takes an offset that
// carries no record, and a partition whose records retention deleted before
// they were read has none left: neither may hold the watermark back for
// ever (it did: 0 rows after 20 s). 100 page views within 5 minutes of
// event time are all held for the watermark until both inputs are idle.
func TestIdleAdvanceAfterMarkersAndRetention(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		transactional, purged bool
	}{
		{"clickstream produced in a transaction", true, false},
		{"transactions emptied by retention", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := "idle" + map[bool]string{true: "tx", false: "del"}[tc.transactional]
			dsn := testDSN(t, "fh_"+name)
			if err := e2e.ResetDatabase(context.Background(), chsink.Endpoint{DSN: dsn}, io.Discard); err != nil {
				t.Fatal(err)
			}
			bin, brokers := buildBinary(t), freeAddr(t)
			cs, tx, dlq := name+".clickstream", name+".transactions", name+".dlq"
			startProcess(t, bin, "broker", "--listen", brokers, "--partitions", "1", "--topics", cs+","+tx+","+dlq)
			waitListening(t, brokers)
			if tc.purged {
				purge(t, brokers, tx)
			}
			produceViews(t, brokers, cs, 100, tc.transactional)
			startProcess(t, bin, "run", "--brokers", brokers, "--clickhouse", dsn, "--group", name, "--clickstream-topic", cs,
				"--transactions-topic", tx, "--dlq-topic", dlq, "--idle-advance", "2s", "--flush-interval", "300ms", "--metrics-addr", "")
			conn, db, err := chsink.Connect(context.Background(), chsink.Endpoint{DSN: dsn})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			var rows uint64
			took := waitFor(t, "all 100 events written", 20*time.Second, func() bool {
				_ = conn.QueryRow(context.Background(), "SELECT count() FROM "+db+".events WHERE late = 0").Scan(&rows)
				return rows == 100
			})
			t.Logf("100 events written %s after start", took.Round(100*time.Millisecond))
		})
	}
}

// produceViews produces n page views of 10 visitors, 3 s apart in event
// time, in one transaction or without.
func produceViews(t *testing.T, brokers, topic string, n int, transactional bool) {
	t.Helper()
	opts := []kgo.Opt{kgo.SeedBrokers(brokers), kgo.DefaultProduceTopic(topic)}
	if transactional {
		opts = append(opts, kgo.TransactionalID("fh-test-"+topic))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	if transactional {
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
	}
	base := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for i := range n {
		v := fmt.Sprintf("v%d", i%10)
		value := fmt.Sprintf(`{"event_id":"e%d","type":"page_view","ts":%q,"visitor_id":%q,"url":"/p"}`, i, base.Add(time.Duration(i)*3*time.Second).Format(time.RFC3339), v)
		if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte(v), Value: []byte(value)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if transactional {
		if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
			t.Fatal(err)
		}
	}
}

// purge produces 10 records to partition 0 of topic and deletes them, as
// retention would before anyone read them.
func purge(t *testing.T, brokers, topic string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	for i := range 10 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte("gone"), Value: fmt.Appendf(nil, "%d", i)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	offsets := kadm.Offsets{}
	offsets.Add(kadm.Offset{Topic: topic, Partition: 0, At: 10})
	resp, err := kadm.NewClient(cl).DeleteRecords(ctx, offsets)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatalf("delete records: %v", err)
	}
}

// TestCorruptCheckpoint stores a checkpoint that cannot be decoded: the
// member that is assigned its partition must exit non-zero naming the
// partition, the epoch and the operator's commands (it used to keep the
// partition assigned and unread); `checkpoint show` says why, `checkpoint
// discard` deletes the state, and the next member rebuilds the partition
// from the earliest records with an exact result.
func TestCorruptCheckpoint(t *testing.T) {
	if testing.Short() {
		t.Skip("300k events")
	}
	r := newFaultRig(t, "corrupt", 300_000, 2)
	m := r.start(nil)
	waitCommitted(t, r, r.expect.Records/3)
	m.stop(t, 30*time.Second)
	ctx := context.Background()
	var epoch uint64
	if err := r.conn.QueryRow(ctx, "SELECT max(epoch) FROM "+r.db+".pipeline_state WHERE consumer_group = ? AND kafka_partition = 0 AND kind = 'checkpoint'", r.group).Scan(&epoch); err != nil {
		t.Fatal(err)
	}
	if err := r.conn.Exec(ctx, "INSERT INTO "+r.db+".pipeline_state (consumer_group, kafka_partition, kind, key, epoch, data) SELECT ?, 0, 'checkpoint', '', ?, 'garbage'", r.group, epoch+1); err != nil {
		t.Fatal(err)
	}

	broken := r.start(nil)
	exitErr := broken.waitExit(t, "the member exits on the corrupt checkpoint", time.Minute, func() {})
	out, _ := os.ReadFile(broken.log)
	want := fmt.Sprintf("partition 0: cannot restore its checkpoint of epoch %d", epoch+1)
	if exitErr == nil || !bytes.Contains(out, []byte(want)) || !bytes.Contains(out, []byte("funnelhouse checkpoint discard --partition 0")) {
		t.Fatalf("member exit %v; want a non-zero exit saying %q and the commands:\n%s", exitErr, want, tail(out, 3000))
	}
	checkpointArgs := func(action string, extra ...string) []string {
		return append(append([]string{"checkpoint", action}, r.runArgs()[1:]...), append([]string{"--partition", "0"}, extra...)...)
	}
	show, err := exec.Command(r.bin, checkpointArgs("show")...).CombinedOutput()
	if err != nil || !bytes.Contains(show, []byte("restore: FAILS")) {
		t.Errorf("checkpoint show: %v\n%s", err, show)
	}
	if out, err := exec.Command(r.bin, checkpointArgs("discard", "--yes")...).CombinedOutput(); err != nil {
		t.Fatalf("checkpoint discard: %v\n%s", err, out)
	}
	if show, _ := exec.Command(r.bin, checkpointArgs("show")...).CombinedOutput(); !bytes.Contains(show, []byte("no stored state")) {
		t.Errorf("checkpoint show after discard:\n%s", show)
	}
	last := r.start(nil)
	r.waitDrained(3 * time.Minute)
	last.stop(t, 30*time.Second)
	r.verify()
}

// TestLargePropsWithinMemoryLimit: 1,500 page views of 200 KiB each (300
// MB) within 2.5 minutes of event time, all held for the watermark until
// the input goes idle, then written. With --memory-limit 256MiB the member
// must stay under 256 MiB of RSS (before byte bounds, held events were
// kept decoded up to a count, and rows were bounded in rows: it grew past
// 300 MB) and lose nothing.
func TestLargePropsWithinMemoryLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("300 MB of records")
	}
	const n, limit = 1500, 256 << 20
	dsn := testDSN(t, "fh_bigprops")
	if err := e2e.ResetDatabase(context.Background(), chsink.Endpoint{DSN: dsn}, io.Discard); err != nil {
		t.Fatal(err)
	}
	bin, brokers := buildBinary(t), freeAddr(t)
	cs, tx, dlq := "bigprops.clickstream", "bigprops.transactions", "bigprops.dlq"
	startProcess(t, bin, "broker", "--listen", brokers, "--partitions", "4", "--topics", cs+","+tx+","+dlq)
	waitListening(t, brokers)
	produceLarge(t, brokers, cs, n, 200<<10)
	member := startProcess(t, bin, "run", "--brokers", brokers, "--clickhouse", dsn, "--group", "bigprops", "--clickstream-topic", cs,
		"--transactions-topic", tx, "--dlq-topic", dlq, "--idle-advance", "2s", "--metrics-addr", "", "--memory-limit", "256MiB", "--spill-dir", t.TempDir())
	conn, db, err := chsink.Connect(context.Background(), chsink.Endpoint{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var rows uint64
	peak := int64(0)
	took := waitFor(t, "every event written", 3*time.Minute, func() bool {
		peak = max(peak, perf.PeakRSS(member.Process.Pid))
		_ = conn.QueryRow(context.Background(), "SELECT count() FROM "+db+".events WHERE late = 0 AND length(props) > 200000").Scan(&rows)
		return rows == n
	})
	peak = max(peak, perf.PeakRSS(member.Process.Pid))
	t.Logf("%d events of 200 KiB written in %s; peak RSS %d MiB with --memory-limit 256MiB", n, took.Round(100*time.Millisecond), peak>>20)
	if peak > limit {
		t.Errorf("peak RSS %d MiB, over the 256 MiB limit", peak>>20)
	}
	stopProcess(t, member)
}

// produceLarge produces n page views of 20 visitors, 100 ms apart in event
// time, each with an unknown field of size bytes (kept in props).
func produceLarge(t *testing.T, brokers, topic string, n, size int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	blob := make([]byte, size)
	for i := range blob {
		blob[i] = 'a' + byte(i*7919%26)
	}
	base := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for i := range n {
		v := fmt.Sprintf("v%d", i%20)
		blob[0] = 'a' + byte(i%26) // no two alike
		value := fmt.Sprintf(`{"event_id":"e%d","type":"page_view","ts":%q,"visitor_id":%q,"url":"/p","blob":%q}`,
			i, base.Add(time.Duration(i)*100*time.Millisecond).Format(time.RFC3339Nano), v, blob)
		cl.Produce(context.Background(), &kgo.Record{Key: []byte(v), Value: []byte(value)}, func(_ *kgo.Record, err error) {
			if err != nil {
				t.Errorf("produce: %v", err)
			}
		})
	}
	if err := cl.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestRevenueOverflow: the orders of one session can sum past what
// sessions.revenue, a Decimal(18,4), holds (99999999999999.9999) although
// each amount fits. The order that would take it past goes to the
// dead-letter topic (revenue_overflow) when its event is released, and
// changes nothing else; the orders before and after it count. Every table,
// view and counter must agree with the expected computation, which applies
// the same rule.
func TestRevenueOverflow(t *testing.T) {
	r := newTestRun(t, "overflow", 2, traffic.Config{Seed: 11, Events: 20_000})
	at := r.Traffic.Start.Add(time.Hour)
	record := func(topic, typ, id string, min int, extra string) traffic.Record {
		value := fmt.Sprintf(`{"event_id":%q,"type":%q,"ts":%q,"visitor_id":"vrich"%s}`, id, typ, at.Add(time.Duration(min)*time.Minute).Format(time.RFC3339), extra)
		return traffic.Record{Topic: topic, Key: []byte("vrich"), Value: []byte(value)}
	}
	order := func(id string, min int, amount string) traffic.Record {
		return record(r.pf.cfg.TransactionsTopic, "order_completed", id, min, fmt.Sprintf(`,"order_id":"o-%s","amount":%s,"currency":"USD"`, id, amount))
	}
	overflow := order("r3", 2, "50000000000000")
	r.Extra = []traffic.Record{
		record(r.pf.cfg.ClickstreamTopic, "page_view", "r1", 0, `,"url":"/"`),
		order("r2", 1, "60000000000000"),
		overflow,                              // 60e12 + 50e12 > 99999999999999.9999
		order("r4", 3, "39999999999999.9999"), // exactly up to the bound
	}
	var malformed []traffic.Record
	err := r.runWith(context.Background(), func(rec *traffic.Record) {
		if rec.Kind == traffic.Malformed {
			malformed = append(malformed, traffic.Record{Topic: rec.Topic, Key: bytes.Clone(rec.Key), Value: bytes.Clone(rec.Value), Reason: rec.Reason})
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	reason := schemas.ReasonRevenueOverflow
	if got := r.Stats.DeadLetters[reason]; got != 1 {
		t.Errorf("%d dead letters %s counted, want 1", got, reason)
	}
	overflow.Reason = reason
	checkDeadLetters(t, r.Broker.Addrs(), r.pf.cfg.DLQTopic, append(malformed, overflow))
	conn, db, err := chsink.Connect(context.Background(), chsink.Endpoint{DSN: r.pf.dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var revenue string
	if err := conn.QueryRow(context.Background(), "SELECT toString(revenue) FROM "+db+".sessions FINAL WHERE visitor_id = 'vrich'").Scan(&revenue); err != nil || revenue != "99999999999999.9999" {
		t.Errorf("the session's revenue is %q (%v), want 99999999999999.9999", revenue, err)
	}
}

// TestDuplicateAfterTheHorizon: a copy of an order that comes back after
// the pipeline forgot its id (--lateness + --session-gap after its event
// time; here the idle advance moves the watermark far past it) is written
// as a late event under the same visitor and event id. The events table
// must keep the original row, with its session and stage, and every view
// must agree with the expected computation, which drops the copy as a
// duplicate (issue 13: the copy replaced the original).
func TestDuplicateAfterTheHorizon(t *testing.T) {
	const name = "horizon"
	dsn := testDSN(t, "fh_"+name)
	if err := e2e.ResetDatabase(context.Background(), chsink.Endpoint{DSN: dsn}, io.Discard); err != nil {
		t.Fatal(err)
	}
	bin, brokers, metricsAddr := buildBinary(t), freeAddr(t), freeAddr(t)
	cs, tx, dlq := name+".clickstream", name+".transactions", name+".dlq"
	startProcess(t, bin, "broker", "--listen", brokers, "--partitions", "1", "--topics", cs+","+tx+","+dlq)
	waitListening(t, brokers)
	startProcess(t, bin, "run", "--brokers", brokers, "--clickhouse", dsn, "--group", name, "--clickstream-topic", cs,
		"--transactions-topic", tx, "--dlq-topic", dlq, "--idle-advance", "2s", "--flush-interval", "300ms", "--checkpoint-interval", "1s",
		"--metrics-addr", metricsAddr)
	conn, db, err := chsink.Connect(context.Background(), chsink.Endpoint{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	view := traffic.Record{Topic: cs, Key: []byte("vlate"), Value: fmt.Appendf(nil,
		`{"event_id":"h1","type":"page_view","ts":%q,"visitor_id":"vlate","url":"/a"}`, at.Format(time.RFC3339))}
	order := traffic.Record{Topic: tx, Key: []byte("vlate"), Value: fmt.Appendf(nil,
		`{"event_id":"h2","type":"order_completed","ts":%q,"visitor_id":"vlate","order_id":"oh2","amount":10.5,"currency":"USD"}`, at.Add(time.Minute).Format(time.RFC3339))}
	expect := verify.NewExpectation(cs, tx, time.Now)
	produce := func(recs ...traffic.Record) {
		if err := feed.Records(context.Background(), []string{brokers}, recs); err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			expect.Add(r.Topic, r.Key, r.Value)
		}
	}
	orderRow := func() (session string, late uint8) {
		_ = conn.QueryRow(context.Background(), "SELECT session_id, late FROM "+db+".events FINAL WHERE event_id = 'h2'").Scan(&session, &late)
		return session, late
	}
	produce(view, order)
	waitFor(t, "the order written in its session", 30*time.Second, func() bool { s, _ := orderRow(); return s != "" })
	produce(order) // the same record again, long after the horizon
	waitFor(t, "the copy written", 30*time.Second, func() bool {
		return scrape(t, metricsAddr)["funnelhouse_pipeline_late_events_total"] == 1
	})
	want := expect.Compute(expected.Config{SessionGap: 30 * time.Minute, ChurnAfter: 90 * 24 * time.Hour, HorizonMs: time.Now().Add(-10 * time.Minute).UnixMilli()})
	waitFor(t, "the events, session and transitions written", 30*time.Second, func() bool {
		_, written := tablesWritten(conn, db, want, len(expect.Events))
		return written
	})
	if session, late := orderRow(); session == "" || late != 0 {
		t.Errorf("events keeps session %q, late %d for the order: the late copy replaced it", session, late)
	}
	if err := verify.Views(context.Background(), conn, db, want, len(expect.Events)); err != nil {
		t.Error(err)
	}
	if m := scrape(t, metricsAddr); m["funnelhouse_pipeline_duplicates_total"] != 0 || m["funnelhouse_pipeline_events_total"] != 3 {
		t.Errorf("duplicates_total %v, events_total %v: want 0 and 3 (the copy counts as a late event)",
			m["funnelhouse_pipeline_duplicates_total"], m["funnelhouse_pipeline_events_total"])
	}
}
