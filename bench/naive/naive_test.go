package naive

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/funnelhouse/funnelhouse/bench/traffic"
)

const (
	testClickstream  = "clickstream"
	testTransactions = "transactions"
)

// genRecords returns the generator's records for seed 1 and n events, with
// counts by kind.
func genRecords(tb testing.TB, n int) (recs []*kgo.Record, valid, dups, bad int) {
	tb.Helper()
	gen, err := traffic.New(traffic.Config{Seed: 1, Events: n, ClickstreamTopic: testClickstream, TransactionsTopic: testTransactions}.WithDefaults())
	if err != nil {
		tb.Fatal(err)
	}
	var rec traffic.Record
	for gen.Next(&rec) {
		recs = append(recs, &kgo.Record{
			Topic: rec.Topic,
			Key:   append([]byte(nil), rec.Key...),
			Value: append([]byte(nil), rec.Value...),
		})
		switch rec.Kind {
		case traffic.Valid:
			valid++
		case traffic.Duplicate:
			dups++
		case traffic.Malformed:
			bad++
		}
	}
	return recs, valid, dups, bad
}

func TestParseTS(t *testing.T) {
	want := time.Date(2025, 1, 11, 6, 40, 37, 338_000_000, time.UTC)
	for _, in := range []string{`"2025-01-11T06:40:37.338Z"`, `"2025-01-11T07:40:37.338+01:00"`, `1736577637338`} {
		got, ok := parseTS(json.RawMessage(in))
		if !ok || !got.Equal(want) {
			t.Errorf("parseTS(%s) = %v, %v; want %v", in, got, ok, want)
		}
	}
	for _, in := range []string{``, `null`, `"yesterday"`, `1.7e12`, `true`} {
		if _, ok := parseTS(json.RawMessage(in)); ok {
			t.Errorf("parseTS(%s) accepted", in)
		}
	}
}

// TestProcess checks sessionisation and attribution on a hand-made visitor,
// without Kafka or ClickHouse.
func TestProcess(t *testing.T) {
	r := &runner{cfg: Config{}.withDefaults(), state: map[int32]map[string]*visitor{}}
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	add := func(topic, typ string, at time.Duration, extra string) {
		v := fmt.Sprintf(`{"event_id":"e%d","type":%q,"ts":%d,"visitor_id":"v1"%s}`, len(r.events), typ, t0.Add(at).UnixMilli(), extra)
		r.process(&kgo.Record{Topic: topic, Value: []byte(v)})
	}
	add(testClickstream, "page_view", 0, "")                                                          // awareness, session 1 (bounce)
	add(testClickstream, "page_view", time.Hour, "")                                                  // session 2
	add(testClickstream, "signup", time.Hour+time.Minute, "")                                         // acquisition
	add(testTransactions, "order_completed", time.Hour+2*time.Minute, `,"order_id":"o1","amount":10`) // conversion
	add(testClickstream, "review", time.Hour+3*time.Minute, `,"rating":5`)                            // retention + advocacy
	add(testTransactions, "subscription_cancelled", 2*time.Hour, "")                                  // churned
	add(testTransactions, "order_completed", 3*time.Hour, `,"order_id":"o2","amount":5`)              // reactivated
	r.process(&kgo.Record{Topic: testClickstream, Value: []byte(`{"type":"page_view"}`)})             // skipped
	r.closeAll()

	if len(r.events) != 7 {
		t.Fatalf("events = %d, want 7", len(r.events))
	}
	var stages []string
	for _, tr := range r.transitions {
		stages = append(stages, tr.stage)
	}
	if got, want := fmt.Sprint(stages), "[awareness acquisition conversion retention advocacy churned reactivated]"; got != want {
		t.Errorf("transitions = %s, want %s", got, want)
	}
	if len(r.sessions) != 2 || r.sessions[0].isBounce != 1 || r.sessions[1].events != 3 || r.sessions[1].isBounce != 0 {
		t.Errorf("sessions = %+v", r.sessions)
	}
	if r.events[3].sessionID != r.sessions[1].sessionID || r.events[3].stage != "conversion" {
		t.Errorf("order row = %+v", r.events[3])
	}
}

// TestRun runs the naive pipeline end to end: an in-process broker, the
// generator's records and the ClickHouse server named by
// FUNNELHOUSE_TEST_CLICKHOUSE. NAIVE_TEST_EVENTS overrides the number of
// generated events (default 20000).
func TestRun(t *testing.T) {
	base := os.Getenv("FUNNELHOUSE_TEST_CLICKHOUSE")
	if base == "" {
		t.Skip("FUNNELHOUSE_TEST_CLICKHOUSE not set (a DSN like clickhouse://default@127.0.0.1:9000/)")
	}
	events := 20_000
	if s := os.Getenv("NAIVE_TEST_EVENTS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			t.Fatalf("NAIVE_TEST_EVENTS=%q: want a positive integer", s)
		}
		events = n
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	db := fmt.Sprintf("naive_test_%d", os.Getpid())
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + db
	dsn := u.String()

	// Kafka: one in-process broker, two co-partitioned topics.
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()
	prod, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if _, err := kadm.NewClient(prod).CreateTopics(ctx, 2, 1, nil, testClickstream, testTransactions); err != nil {
		t.Fatal(err)
	}
	recs, valid, dups, bad := genRecords(t, events)
	for i := 0; i < len(recs); i += 5000 {
		if err := prod.ProduceSync(ctx, recs[i:min(i+5000, len(recs))]...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("produced %d records: %d valid, %d duplicates, %d malformed", len(recs), valid, dups, bad)

	// ClickHouse: drop the test database at the end.
	opts, err := clickhouse.ParseDSN(base)
	if err != nil {
		t.Fatal(err)
	}
	opts.Auth.Database = ""
	conn, err := clickhouse.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	defer func() {
		if err := conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db); err != nil {
			t.Errorf("drop %s: %v", db, err)
		}
	}()

	res, err := Run(ctx, Config{
		Brokers:           brokers,
		Group:             "naive-test",
		ClickstreamTopic:  testClickstream,
		TransactionsTopic: testTransactions,
		DSN:               dsn,
		BatchRows:         max(1000, events/4), // several flushes and commits
		Records:           int64(len(recs)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("result %+v: %.0f records/s", res, float64(res.Records)/res.Elapsed.Seconds())

	count := func(table string) int64 {
		var n uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM "+db+"."+table).Scan(&n); err != nil {
			t.Fatalf("count %s: %v", table, err)
		}
		return int64(n)
	}
	nEvents, nSessions, nTransitions := count("naive_events"), count("naive_sessions"), count("naive_transitions")
	if res.Records != int64(len(recs)) {
		t.Errorf("Records = %d, want %d", res.Records, len(recs))
	}
	if nEvents != res.Events || nSessions != res.Sessions || nTransitions != res.Transitions {
		t.Errorf("tables hold %d/%d/%d rows, Result says %d/%d/%d", nEvents, nSessions, nTransitions, res.Events, res.Sessions, res.Transitions)
	}
	// No dedup: every valid record and every duplicate is an event; some
	// malformed records decode with encoding/json too.
	if nEvents < int64(valid+dups) || nEvents > int64(valid+dups+bad) {
		t.Errorf("events = %d, want in [%d, %d]", nEvents, valid+dups, valid+dups+bad)
	}
	if nSessions == 0 || nSessions > nEvents {
		t.Errorf("sessions = %d, want in (0, %d]", nSessions, nEvents)
	}
	if nTransitions == 0 {
		t.Error("no transitions")
	}
	var visitors, aware uint64
	if err := conn.QueryRow(ctx, "SELECT uniqExact(visitor_id) FROM "+db+".naive_events").Scan(&visitors); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, "SELECT countIf(stage = 'awareness') FROM "+db+".naive_transitions").Scan(&aware); err != nil {
		t.Fatal(err)
	}
	// A record whose visitor_id differs from its key (a malformed record
	// the naive consumer does not reject) may sit on the other partition and
	// give its visitor a second state there.
	if aware < visitors || aware > visitors+uint64(bad) {
		t.Errorf("awareness transitions = %d, want one per visitor (%d), up to %d more", aware, visitors, bad)
	}
	rows, err := conn.Query(ctx, "SELECT stage, count() FROM "+db+".naive_transitions GROUP BY stage ORDER BY stage")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var stage string
		var n uint64
		if err := rows.Scan(&stage, &n); err != nil {
			t.Fatal(err)
		}
		t.Logf("transitions %-12s %d", stage, n)
	}
	rows.Close()
	t.Logf("events %d, sessions %d, transitions %d, visitors %d", nEvents, nSessions, nTransitions, visitors)

	// The group committed everything it consumed.
	adm := kadm.NewClient(prod)
	lags, err := adm.Lag(ctx, "naive-test")
	if err != nil {
		t.Fatal(err)
	}
	if lag := lags["naive-test"].Lag.Total(); lag != 0 {
		t.Errorf("group lag after Run = %d, want 0", lag)
	}
}

// BenchmarkDecodeNaive measures the per-record work of Run without Kafka or
// ClickHouse: encoding/json decoding, sessionisation and attribution, rows
// appended to the in-memory buffers (which are dropped every 100k rows).
func BenchmarkDecodeNaive(b *testing.B) {
	recs, _, _, _ := genRecords(b, 100_000)
	for i, rec := range recs {
		rec.Partition = int32(i % 2)
		rec.Offset = int64(i)
	}
	r := &runner{cfg: Config{}.withDefaults(), state: map[int32]map[string]*visitor{}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		j := i % len(recs)
		if j == 0 {
			r.state = map[int32]map[string]*visitor{} // a new pass over the same input
		}
		r.process(recs[j])
		if len(r.events) >= 100_000 {
			r.events, r.sessions, r.transitions = r.events[:0], r.sessions[:0], r.transitions[:0]
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
