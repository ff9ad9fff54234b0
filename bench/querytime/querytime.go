// Package querytime is the same-job peer of the funnelhouse benchmark:
// what a data engineer builds instead of funnelhouse with ClickHouse alone.
// ClickHouse's Kafka table engine ingests both topics into one MergeTree
// table of raw events, duplicates included, with typed columns extracted
// from the JSON by materialised views (ingest.sql); funnel_daily,
// bounce_daily, churn_monthly and revenue_daily are plain views that
// compute everything when they are read (schema.sql): per-visitor arrays
// in processing order with the copies of an event dropped, sessions by gap
// (arrayDifference), the lifecycle stages, and the churn state machine as
// sorted triggers (arraySort, arrayCumSum). All SQL runs on ClickHouse
// 18.16.1: no window functions, no JSONExtract, and lambdas that read only
// their arguments. The views have funnelhouse's names and columns, so
// bench/verify compares them with the expected computation.
//
// Which views are exact: on the bench's traffic (valid records, copies
// identical and delivered within the lateness, so no late events) all four
// are meant to equal bench/expected, and TestQueryTimePeer (bench/perf)
// checks that they do. Where they would differ on other traffic, because a
// query sees neither arrival order nor a watermark (Limits says the same
// per view):
//
//   - Late events (SPEC §3): funnelhouse keeps them out of sessions and
//     stages; the views put them in by ts. funnel_daily, bounce_daily and
//     churn_monthly then differ; revenue_daily counts late events in both.
//   - Dedup window: the views drop a copy of (visitor_id, event_id)
//     whenever it came, funnelhouse only within the open state; copies
//     that are not identical keep the smallest (ts, topic, event_id), not
//     the first to arrive.
//   - Churn deadlines fire up to now − lateness at the time of the query,
//     not at the watermark.
//   - Input: no validation (a malformed record is a row too, or stops the
//     Kafka table's consumer if an expression fails on it), JSON escapes
//     in strings are unescaped as TSV (\" becomes "), and a field name
//     repeated in a nested object may be read instead of the field (see
//     ingest.sql).
package querytime

import (
	"context"
	_ "embed"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The settings the views implement: the defaults of SPEC §3–5, which the
// bench's expected computation uses.
const (
	SessionGap = 30 * time.Minute
	ChurnAfter = 90 * 24 * time.Hour
	Lateness   = 10 * time.Minute
)

// Views are the four views the peer computes at query time, by name.
var Views = []string{"funnel_daily", "bounce_daily", "churn_monthly", "revenue_daily"}

// Limits says, per view, which rules of funnelhouse the SQL does not
// follow: the likely reasons when a view differs from the expected
// computation.
var Limits = map[string]string{
	"funnel_daily":  "stages from every event by ts: late events and copies outside funnelhouse's dedup window count, non-identical copies keep the smallest ts",
	"bounce_daily":  "sessions from every clickstream event by ts: late events join or split sessions, copies outside the dedup window count",
	"churn_monthly": "churn deadlines fire up to now - lateness at query time, not at the watermark; late events count as activity",
	"revenue_daily": "input as read by the SQL: a JSON escape in currency or order_id is TSV-unescaped, a nested field of the same name may be read instead",
}

var (
	//go:embed schema.sql
	schemaSQL string
	//go:embed ingest.sql
	ingestSQL string
)

// Peer is the peer's database on one ClickHouse. Not goroutine-safe.
type Peer struct {
	conn    driver.Conn
	db      string
	r       *strings.Replacer
	brokers []string
	topics  [2]string // clickstream, transactions (events_raw.topic 0 and 1)
	group   string
}

// Create (re-)creates database db with the raw table, the Kafka tables
// reading the two topics from brokers as consumer groups group-clickstream
// and group-transactions, and the views. Nothing is consumed until Start.
func Create(ctx context.Context, conn driver.Conn, db string, brokers []string, clickstream, transactions, group string) (*Peer, error) {
	p := &Peer{conn: conn, db: db, brokers: brokers, topics: [2]string{clickstream, transactions}, group: group, r: strings.NewReplacer(
		"{db}", db,
		"{brokers}", strings.Join(brokers, ","),
		"{clickstream_topic}", clickstream,
		"{transactions_topic}", transactions,
		"{group}", group,
		"{session_gap_ms}", strconv.FormatInt(SessionGap.Milliseconds(), 10),
		"{churn_after_ms}", strconv.FormatInt(ChurnAfter.Milliseconds(), 10),
		"{lateness_ms}", strconv.FormatInt(Lateness.Milliseconds(), 10),
	)}
	for _, stmt := range []string{"DROP DATABASE IF EXISTS " + db, "CREATE DATABASE " + db} {
		if err := conn.Exec(ctx, stmt); err != nil {
			return nil, fmt.Errorf("query-time peer: %s: %w", stmt, err)
		}
	}
	if err := p.exec(ctx, schemaSQL); err != nil {
		_ = p.Drop(ctx)
		return nil, err
	}
	return p, nil
}

// Start creates the ingesting materialised views: ClickHouse starts
// consuming.
func (p *Peer) Start(ctx context.Context) error { return p.exec(ctx, ingestSQL) }

// Database is the peer's database, which holds the views.
func (p *Peer) Database() string { return p.db }

// Rows is the number of raw rows ingested so far (0 when ClickHouse cannot
// say).
func (p *Peer) Rows(ctx context.Context) uint64 {
	var n uint64
	_ = p.conn.QueryRow(ctx, "SELECT count() FROM "+p.db+".events_raw").Scan(&n)
	return n
}

// Progress says, per topic, how far the Kafka tables' consumers got: the
// topic's records (the sum of its partitions' end offsets), the offsets
// committed by the Kafka table's consumer group, and the rows in
// events_raw. When a run stalls short of its records, it tells records
// never consumed (committed < records) from records consumed and not
// written (rows < committed).
func (p *Peer) Progress(ctx context.Context) (string, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.brokers...))
	if err != nil {
		return "", err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, p.topics[:]...)
	if err != nil {
		return "", fmt.Errorf("end offsets: %w", err)
	}
	var out []string
	for i, topic := range p.topics {
		group := p.group + "-" + [2]string{"clickstream", "transactions"}[i]
		committed, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			return "", fmt.Errorf("offsets of group %s: %w", group, err)
		}
		var records, done int64
		var behind []string
		ends.Each(func(o kadm.ListedOffset) {
			if o.Topic != topic {
				return
			}
			records += o.Offset
			c, _ := committed.Lookup(topic, o.Partition)
			done += max(c.At, 0)
			if c.At < o.Offset {
				behind = append(behind, fmt.Sprintf("partition %d at %d of %d", o.Partition, max(c.At, 0), o.Offset))
			}
		})
		var rows uint64
		if err := p.conn.QueryRow(ctx, "SELECT count() FROM "+p.db+".events_raw WHERE topic = ?", uint8(i)).Scan(&rows); err != nil {
			return "", err
		}
		line := fmt.Sprintf("%s: %d records, %d committed by %s, %d rows", topic, records, done, group, rows)
		if len(behind) > 0 {
			line += " (" + strings.Join(behind, ", ") + ")"
		}
		out = append(out, line)
	}
	return strings.Join(out, "; "), nil
}

// Drop drops the peer's database: its Kafka tables' consumers would
// otherwise keep polling, costing ClickHouse CPU in later measurements.
// StopConsuming drops the Kafka tables and their materialised views and
// keeps the rows: a run that stalled short is kept for inspection.
func (p *Peer) StopConsuming(ctx context.Context) error {
	for _, t := range []string{"clickstream_mv", "transactions_mv", "clickstream_queue", "transactions_queue"} {
		if err := p.conn.Exec(ctx, "DROP TABLE IF EXISTS "+p.db+"."+t); err != nil {
			return fmt.Errorf("cannot stop the query-time peer's consumers: %w", err)
		}
	}
	return nil
}

func (p *Peer) Drop(ctx context.Context) error {
	if err := p.conn.Exec(ctx, "DROP DATABASE IF EXISTS "+p.db); err != nil {
		return fmt.Errorf("cannot drop the query-time peer's database: %w", err)
	}
	return nil
}

// exec runs the statements of an SQL file with the placeholders filled.
func (p *Peer) exec(ctx context.Context, file string) error {
	for _, stmt := range statements(p.r.Replace(file)) {
		if err := p.conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("query-time peer: %s: %w", firstLine(stmt), err)
		}
	}
	return nil
}

// statements splits SQL text on ";" at the end of a line, dropping
// comment lines (ClickHouse 18.16 takes one statement per query).
func statements(text string) []string {
	var out []string
	for _, chunk := range strings.Split(text, ";\n") {
		var lines []string
		for _, line := range strings.Split(chunk, "\n") {
			if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "--") {
				lines = append(lines, line)
			}
		}
		if len(lines) > 0 {
			out = append(out, strings.TrimSuffix(strings.Join(lines, "\n"), ";"))
		}
	}
	return out
}

// firstLine names a statement in an error.
func firstLine(stmt string) string {
	line, _, _ := strings.Cut(stmt, "\n")
	return strings.TrimSpace(line)
}
