// Package kafkaengine is peer (a) of the funnelhouse benchmark: ClickHouse's
// own Kafka table engine with a materialised view doing raw ingest of both
// topics into MergeTree tables: no sessions, no stages. It only sets the
// peer up and takes it down; bench/perf times it.
package kafkaengine

import (
	"context"
	"fmt"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// columns are the raw tables' columns, by input. Optional fields are
// Nullable: producers may send null. Unknown fields are skipped
// (input_format_skip_unknown_fields in the server profile).
var columns = map[string]string{
	"clickstream":  "event_id String, type String, visitor_id String, customer_id Nullable(String), url Nullable(String), referrer Nullable(String), utm_source Nullable(String), utm_medium Nullable(String), utm_campaign Nullable(String), device Nullable(String), country Nullable(String)",
	"transactions": "event_id String, type String, visitor_id String, customer_id Nullable(String), order_id Nullable(String), amount Nullable(Float64), currency Nullable(String)",
}

// Peer is the peer's database on one ClickHouse: a Kafka table and a
// MergeTree table per input, and, once started, the views between them.
// Not goroutine-safe.
type Peer struct {
	conn driver.Conn
	db   string
}

// Create (re-)creates database db with the Kafka tables reading the two
// topics from brokers as consumer group group (one per table:
// group-clickstream, group-transactions) and the raw tables. Nothing is
// consumed until Start.
func Create(ctx context.Context, conn driver.Conn, db string, brokers []string, clickstream, transactions, group string) (*Peer, error) {
	topics := map[string]string{"clickstream": clickstream, "transactions": transactions}
	stmts := []string{"DROP DATABASE IF EXISTS " + db, "CREATE DATABASE " + db}
	stmts = append(stmts, RawTables(db)...)
	for name, cols := range columns {
		stmts = append(stmts,
			fmt.Sprintf("CREATE TABLE %s.%s_queue (%s) ENGINE = Kafka SETTINGS kafka_broker_list = '%s', kafka_topic_list = '%s', kafka_group_name = '%s', kafka_format = 'JSONEachRow', kafka_num_consumers = 1",
				db, name, cols, strings.Join(brokers, ","), topics[name], group+"-"+name))
	}
	for _, stmt := range stmts {
		if err := conn.Exec(ctx, stmt); err != nil {
			return nil, fmt.Errorf("%s: %w", stmt, err)
		}
	}
	return &Peer{conn: conn, db: db}, nil
}

// RawTables are the statements creating the raw tables in db, one per
// input (clickstream_raw, transactions_raw): the table shape the peer
// ingests into. The ablation (bench/ablation) inserts into the same shape
// without Kafka, as a reference.
func RawTables(db string) []string {
	var out []string
	for _, name := range []string{"clickstream", "transactions"} {
		out = append(out, fmt.Sprintf("CREATE TABLE %s.%s_raw (%s) ENGINE = MergeTree ORDER BY (visitor_id, event_id)", db, name, columns[name]))
	}
	return out
}

// Start creates the materialised views: ClickHouse starts consuming.
func (p *Peer) Start(ctx context.Context) error {
	for name := range columns {
		if err := p.conn.Exec(ctx, fmt.Sprintf("CREATE MATERIALIZED VIEW %s.%s_mv TO %s.%s_raw AS SELECT * FROM %s.%s_queue", p.db, name, p.db, name, p.db, name)); err != nil {
			return err
		}
	}
	return nil
}

// Rows is the number of rows ingested so far (0 when ClickHouse cannot
// say).
func (p *Peer) Rows(ctx context.Context) uint64 {
	var total uint64
	for name := range columns {
		var n uint64
		_ = p.conn.QueryRow(ctx, "SELECT count() FROM "+p.db+"."+name+"_raw").Scan(&n)
		total += n
	}
	return total
}

// Drop drops the peer's database. The Kafka tables' consumers would
// otherwise keep polling (a broker that is gone once the bench ends),
// costing ClickHouse CPU in every later measurement.
func (p *Peer) Drop(ctx context.Context) error {
	if err := p.conn.Exec(ctx, "DROP DATABASE IF EXISTS "+p.db); err != nil {
		return fmt.Errorf("cannot drop the kafka-engine peer's database: %w", err)
	}
	return nil
}
