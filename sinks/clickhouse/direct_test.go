package clickhouse

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/funnelhouse/funnelhouse/pipeline/rows"
	"github.com/funnelhouse/funnelhouse/schemas"
	fhsql "github.com/funnelhouse/funnelhouse/sql"
)

// anyServerDSN is a server of the test ClickHouse or of the test cluster,
// or skips.
func anyServerDSN(t *testing.T) string {
	t.Helper()
	if dsn := os.Getenv("FUNNELHOUSE_TEST_CLICKHOUSE"); dsn != "" {
		return dsn
	}
	if dsns := strings.Fields(os.Getenv("FUNNELHOUSE_TEST_CLUSTER")); len(dsns) > 0 {
		return dsns[0]
	}
	t.Skip("neither FUNNELHOUSE_TEST_CLICKHOUSE nor FUNNELHOUSE_TEST_CLUSTER is set: run `make test`")
	return ""
}

// hashIDs are ids whose hash the direct inserts must compute exactly as
// ClickHouse's cityHash64 does: empty, visitor-like, UTF-8 of 2 to 4 bytes
// a character, invalid UTF-8 and raw bytes, and every length from 0 to 300
// (CityHash64 takes a different path for 0-16, 17-32, 33-64 and longer).
func hashIDs() []string {
	rng := rand.New(rand.NewPCG(15, 2))
	ids := []string{"", " ", "a", "v105fiknev1bx3", "é", "ünïcödé-visitor", "訪問者-42", "🙂🙃", "\x00", "\xff\xfe", "a\x00b", strings.Repeat("é", 40), strings.Repeat("訪", 100)}
	alphabet := []rune("abcdefghijklmnopqrstuvwxyz0123456789éßüø訪問者🙂")
	for n := 0; n <= 300; n++ {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		ids = append(ids, string(b))
		r := make([]rune, n)
		for i := range r {
			r[i] = alphabet[rng.IntN(len(alphabet))]
		}
		ids = append(ids, string(r))
	}
	for i := 0; i < 5000; i++ {
		ids = append(ids, fmt.Sprintf("v%013x", rng.Uint64()>>12))
	}
	return ids
}

// TestShardHashMatchesClickHouse: ShardHash (the direct inserts' sharding
// hash) equals ClickHouse's own cityHash64 for thousands of ids, and the
// shard it picks equals the Distributed engine's choice.
func TestShardHashMatchesClickHouse(t *testing.T) {
	ctx := context.Background()
	conn, _, err := Connect(ctx, Endpoint{DSN: anyServerDSN(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	table := fmt.Sprintf("default.fh_shard_hash_%d", os.Getpid())
	if err := conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+table+" (i UInt32, s String) ENGINE = Memory"); err != nil {
		t.Fatal(err)
	}
	defer conn.Exec(ctx, "DROP TABLE IF EXISTS "+table)
	ids := hashIDs()
	b, err := conn.PrepareBatch(ctx, "INSERT INTO "+table+" (i, s)")
	if err != nil {
		t.Fatal(err)
	}
	idx := make([]uint32, len(ids))
	for i := range idx {
		idx[i] = uint32(i)
	}
	if err := b.Column(0).Append(idx); err != nil {
		t.Fatal(err)
	}
	if err := b.Column(1).Append(ids); err != nil {
		t.Fatal(err)
	}
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
	res, err := conn.Query(ctx, "SELECT i, s, cityHash64(s), toUInt64(cityHash64(s) % 3) FROM "+table+" ORDER BY i")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	// Shards of weights 1, 1, 1 (slots 0, 1, 2), as ClickHouse's
	// Cluster::slot_to_shard builds them.
	r := &router{slots: []int{0, 1, 2}}
	n, bad := 0, 0
	for res.Next() {
		var i uint32
		var s string
		var h, mod uint64
		if err := res.Scan(&i, &s, &h, &mod); err != nil {
			t.Fatal(err)
		}
		if s != ids[i] {
			t.Fatalf("id %d came back as %q, want %q", i, s, ids[i])
		}
		if got := ShardHash(s); got != h {
			if bad++; bad < 10 {
				t.Errorf("ShardHash(%q) = %d, ClickHouse's cityHash64 = %d", s, got, h)
			}
		}
		if got := r.shardOf(ShardHash(s)); uint64(got) != mod {
			t.Errorf("shard of %q: %d, ClickHouse's cityHash64 %% 3 = %d", s, got, mod)
		}
		n++
	}
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	if n != len(ids) || bad > 0 {
		t.Fatalf("%d ids compared of %d, %d hashes differ", n, len(ids), bad)
	}
	t.Logf("%d ids: ShardHash equals ClickHouse's cityHash64", n)
}

// TestRouterSlots: weighted shards get hash % total weight slots in the
// cluster's order, as the Distributed engine places rows.
func TestRouterSlots(t *testing.T) {
	r := &router{}
	for i, w := range []int{1, 2, 0, 1} {
		r.shards = append(r.shards, &shard{num: uint32(i + 1)})
		for range w {
			r.slots = append(r.slots, i)
		}
	}
	for h, want := range []int{0, 1, 1, 3, 0, 1, 1, 3} {
		if got := r.shardOf(uint64(h)); got != want {
			t.Errorf("shardOf(%d) = %d, want %d", h, got, want)
		}
	}
}

// cutProxy forwards TCP connections to a server. Armed, it lets through
// the next insert's data, then swallows the server's answer and closes
// the connection: the server has written the rows, the client sees a
// dropped connection and sends them again.
type cutProxy struct {
	ln     net.Listener
	target string
	armed  *atomic.Bool // shared by the proxies of one test: one cut per arming
	cuts   *atomic.Int32
}

func startProxy(t *testing.T, target string, armed *atomic.Bool, cuts *atomic.Int32) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, armed: armed, cuts: cuts}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

// cutAfter is the bytes a client sends on an armed proxy's connection
// before its answers are swallowed: more than a query, less than the data
// of the test's inserts.
const cutAfter = 16 << 10

func (p *cutProxy) serve(client net.Conn) {
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		client.Close()
		return
	}
	var sent atomic.Int64
	var cut atomic.Bool
	closeBoth := sync.OnceFunc(func() { client.Close(); server.Close() })
	go func() { // client -> server
		buf := make([]byte, 32<<10)
		for {
			n, err := client.Read(buf)
			if n > 0 {
				if _, werr := server.Write(buf[:n]); werr != nil {
					closeBoth()
					return
				}
				if sent.Add(int64(n)) > cutAfter && !cut.Load() && p.armed.CompareAndSwap(true, false) {
					cut.Store(true)
					p.cuts.Add(1)
					// Long enough for the server to write the rows and
					// answer, into the void.
					time.AfterFunc(1500*time.Millisecond, closeBoth)
				}
			}
			if err != nil {
				closeBoth()
				return
			}
		}
	}()
	// server -> client; a new query's bytes start the count again once
	// the server answered.
	buf := make([]byte, 32<<10)
	for {
		n, err := server.Read(buf)
		if n > 0 && !cut.Load() {
			sent.Store(0)
			if _, werr := client.Write(buf[:n]); werr != nil {
				closeBoth()
				return
			}
		}
		if err != nil {
			closeBoth()
			_, _ = io.Copy(io.Discard, server)
			return
		}
	}
}

// testBatch is a checkpoint's rows: events, sessions and transitions of
// many visitors (so that every shard gets some), and a state row.
func testBatch(seq, n int) *rows.Batch {
	b := new(rows.Batch)
	base := int64(1738879575928) + int64(seq)*3_600_000
	for i := 0; i < n; i++ {
		v := fmt.Sprintf("v-%d-%d", seq, i%(n/4))
		b.Events.Append(&rows.Event{EventID: fmt.Sprintf("e-%d-%d", seq, i), Type: schemas.PageView, TsMs: base + int64(i),
			VisitorID: v, SessionID: "s-" + v, Stage: rows.StageAwareness, URL: "/p/" + fmt.Sprint(i%37),
			Rating: schemas.Absent, NPS: schemas.Absent, CSAT: schemas.Absent, CES: schemas.Absent,
			SessionStartMs: base, KafkaTopic: "clickstream", KafkaPartition: 0, KafkaOffset: int64(seq*n + i)})
		if i < n/4 {
			b.Sessions.Append(&rows.Session{SessionID: "s-" + v, VisitorID: v, StartMs: base, EndMs: base + int64(n), Events: 4, PageViews: 4,
				EntryURL: "/p/0", ExitURL: "/p/1", CohortDayMs: base, FirstSession: true})
			b.Transitions.Append(&rows.Transition{VisitorID: v, Stage: rows.StageAwareness, TsMs: base + int64(i), CohortDayMs: base, EventID: fmt.Sprintf("e-%d-%d", seq, i)})
		}
	}
	b.State.Append(&rows.State{Group: "g", Partition: 0, Kind: rows.StateCheckpoint, Key: "", Epoch: uint64(seq), Data: fmt.Sprintf("{\"seq\":%d}", seq)})
	return b
}

// TestClusterRetryNoDuplicates: inserts whose answer is lost after the
// server wrote them (the connection dropped by a proxy between the sink and
// the server, after the rows went through) are retried by the sink, and
// each table then holds every row exactly once, counted without FINAL on
// every shard with merges stopped: the Replicated engines drop the
// retried blocks. For both cluster insert modes; in direct mode the retry
// goes to the shard's other replica when it has one. The same run with
// insert_deduplicate=0 must show duplicates, proof that the cut inserts
// had been written.
func TestClusterRetryNoDuplicates(t *testing.T) {
	dsns := strings.Fields(os.Getenv("FUNNELHOUSE_TEST_CLUSTER"))
	if len(dsns) == 0 {
		t.Skip("FUNNELHOUSE_TEST_CLUSTER is not set: run `make test-cluster` (or `make test`)")
	}
	for _, mode := range ClusterInsertModes {
		for _, dedup := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/deduplicate=%v", mode, dedup), func(t *testing.T) {
				retryNoDuplicates(t, dsns, mode, dedup)
			})
		}
	}
}

func retryNoDuplicates(t *testing.T, dsns []string, mode string, dedup bool) {
	ctx := context.Background()
	const cluster = "funnelhouse"
	db := fmt.Sprintf("fh_sinkretry_%s_%v_%d", mode, dedup, os.Getpid())
	base := strings.TrimRight(dsns[0], "/")
	if i := strings.LastIndex(base, "/"); i > len("clickhouse://") {
		base = base[:i]
	}
	admin, _, err := Connect(ctx, Endpoint{DSN: base + "/" + db})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+db+" ON CLUSTER "+cluster); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db+" ON CLUSTER "+cluster) })
	dial := Endpoint{DSN: base + "/" + db}.Dialer()
	if _, err := fhsql.MigrateCluster(ctx, admin, db, fhsql.Cluster{Name: cluster, Dial: dial}); err != nil {
		t.Fatal(err)
	}
	servers := clusterServers(t, admin, cluster)
	// Merges stopped on every replicated table of every server: a merge of
	// a replacing table would hide a duplicate.
	for _, s := range servers {
		c, err := dial(ctx, s.host, s.port)
		if err != nil {
			t.Fatal(err)
		}
		for _, table := range replicatedTables(t, c, db) {
			if err := c.Exec(ctx, "SYSTEM STOP MERGES "+db+"."+table); err != nil {
				t.Fatal(err)
			}
		}
		c.Close()
	}

	// A proxy in front of every server; the sink reaches the cluster only
	// through them.
	var armed atomic.Bool
	var cuts atomic.Int32
	proxies := map[string]string{}
	for _, s := range servers {
		proxies[s.String()] = startProxy(t, s.String(), &armed, &cuts).ln.Addr().String()
	}
	query := ""
	if !dedup {
		query = "?insert_deduplicate=0"
	}
	proxied := func(addr string) string { return "clickhouse://default@" + proxies[addr] + "/" + db + query }
	sinkDial := func(ctx context.Context, host string, port uint16) (driver.Conn, error) {
		c, _, err := Connect(ctx, Endpoint{DSN: proxied(replicaAddr{host, port}.String())})
		return c, err
	}
	s, err := Open(ctx, Config{Endpoint: Endpoint{DSN: proxied(servers[0].String())}, ClusterInsert: mode, Dial: sinkDial,
		BackoffMin: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if (len(s.router.local) > 0) != (mode == InsertDirect) {
		t.Fatalf("mode %s: tables inserted directly: %v", mode, s.router.local)
	}

	const perBatch = 20_000
	want := map[string]int{}
	for seq := 1; seq <= 4; seq++ {
		b := testBatch(seq, perBatch)
		for _, tb := range rows.Tables {
			want[tb.TableName()] += tb.Len(b)
		}
		if seq >= 2 {
			armed.Store(true) // cut the next insert of this checkpoint
		}
		ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		err := s.Write(ctx, []*rows.Batch{b})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		armed.Store(false)
	}
	retried := 0.0
	for _, tb := range rows.Tables {
		retried += testutil.ToFloat64(s.retries.WithLabelValues(tb.TableName()))
	}
	t.Logf("%d inserts cut after their rows were sent; the sink retried %v times", cuts.Load(), retried)
	if cuts.Load() < 3 || retried < float64(cuts.Load()) {
		t.Fatalf("want 3 inserts cut and retried, got %d cut, %v retries", cuts.Load(), retried)
	}

	// Rows per table, without FINAL, summed over the shards once the
	// replicas of each shard agree.
	extra := 0
	for _, tb := range []string{"events", "sessions", "lifecycle_transitions", "pipeline_state"} {
		local, err := fhsql.LocalTable(tb)
		if err != nil {
			t.Fatal(err)
		}
		got := shardRows(t, servers, dial, db, local)
		if got != want[tb] {
			t.Logf("%s: %d rows, want %d", tb, got, want[tb])
		}
		extra += got - want[tb]
		if got < want[tb] {
			t.Errorf("%s: %d rows, want %d: rows lost", tb, got, want[tb])
		}
	}
	switch {
	case dedup && extra != 0:
		t.Errorf("%d duplicate rows after the retries", extra)
	case !dedup && extra == 0:
		t.Errorf("with insert_deduplicate=0, no duplicate after %d cut inserts: the cuts did not make a written insert be sent again, so the test proves nothing", cuts.Load())
	case !dedup:
		t.Logf("with insert_deduplicate=0: %d duplicate rows, as expected (the retried blocks had been written)", extra)
	default:
		t.Logf("every row once: %v", want)
	}
}

type server struct {
	shard uint32
	replicaAddr
}

func clusterServers(t *testing.T, conn driver.Conn, cluster string) []server {
	t.Helper()
	res, err := conn.Query(context.Background(), "SELECT shard_num, host_name, port FROM system.clusters WHERE cluster = ? ORDER BY shard_num, replica_num", cluster)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	var out []server
	for res.Next() {
		var s server
		if err := res.Scan(&s.shard, &s.host, &s.port); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

func replicatedTables(t *testing.T, conn driver.Conn, db string) []string {
	t.Helper()
	res, err := conn.Query(context.Background(), "SELECT name FROM system.tables WHERE database = ? AND engine LIKE 'Replicated%'", db)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	var out []string
	for res.Next() {
		var n string
		if err := res.Scan(&n); err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	return out
}

// shardRows counts table's rows (no FINAL) on each server, waits until
// the replicas of each shard hold the same count, and sums one per shard.
func shardRows(t *testing.T, servers []server, dial func(context.Context, string, uint16) (driver.Conn, error), db, table string) int {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(60 * time.Second)
	for {
		byShard := map[uint32][]uint64{}
		for _, s := range servers {
			c, err := dial(ctx, s.host, s.port)
			if err != nil {
				t.Fatal(err)
			}
			var n uint64
			if err := c.QueryRow(ctx, "SELECT count() FROM "+db+"."+table).Scan(&n); err != nil {
				t.Fatal(err)
			}
			c.Close()
			byShard[s.shard] = append(byShard[s.shard], n)
		}
		total, agree := 0, true
		for _, counts := range byShard {
			for _, n := range counts {
				agree = agree && n == counts[0]
			}
			total += int(counts[0])
		}
		if agree || time.Now().After(deadline) {
			if !agree {
				t.Errorf("%s: the replicas still differ after 60 s: %v", table, byShard)
			}
			return total
		}
		time.Sleep(200 * time.Millisecond)
	}
}
