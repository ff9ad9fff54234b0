package ablation

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/funnelhouse/funnelhouse/bench/kafkaengine"
	"github.com/funnelhouse/funnelhouse/bench/traffic"
)

// ReferenceStep names the reference measurement: the Kafka engine peer's
// raw tables fed the same records without Kafka.
const ReferenceStep = "reference: Kafka engine's raw tables, INSERT … FORMAT JSONEachRow"

// referenceBlock is the records per INSERT of the reference, the
// pipeline's --batch-rows.
const referenceBlock = 100_000

// rawInsert is one INSERT of the reference: a table and its JSON rows.
type rawInsert struct {
	table string
	body  []byte
}

// referenceInserts renders the workload's records as the Kafka engine
// receives them: each record's JSON value, one per line, in blocks per
// input table. Duplicates included: the peer stores them too.
func referenceInserts(w *Workload) ([]rawInsert, error) {
	gen, err := traffic.New(w.traffic)
	if err != nil {
		return nil, err
	}
	var out []rawInsert
	open := map[string]*rawInsert{}
	rowsIn := map[string]int{}
	var r traffic.Record
	for gen.Next(&r) {
		table := "clickstream_raw"
		if r.Topic == transactionsTopic {
			table = "transactions_raw"
		}
		ins := open[table]
		if ins == nil {
			ins = &rawInsert{table: table}
			open[table] = ins
		}
		ins.body = append(append(ins.body, r.Value...), '\n')
		if rowsIn[table]++; rowsIn[table] == referenceBlock {
			out = append(out, *ins)
			delete(open, table)
			rowsIn[table] = 0
		}
	}
	for _, table := range []string{"clickstream_raw", "transactions_raw"} {
		if ins := open[table]; ins != nil {
			out = append(out, *ins)
		}
	}
	return out, nil
}

// measureReference creates the peer's raw tables in a fresh database and
// sends the records over HTTP as JSONEachRow: ClickHouse parses the JSON,
// as the Kafka engine does, but nothing is consumed from Kafka.
func (s *server) measureReference(ctx context.Context, httpURL string, w *Workload) (Measure, error) {
	stmts := append([]string{"DROP DATABASE IF EXISTS " + s.db, "CREATE DATABASE " + s.db}, kafkaengine.RawTables(s.db)...)
	for _, stmt := range stmts {
		if err := s.conn.Exec(ctx, stmt); err != nil {
			return Measure{}, err
		}
	}
	inserts, err := referenceInserts(w)
	if err != nil {
		return Measure{}, err
	}
	user, password, err := s.credentials()
	if err != nil {
		return Measure{}, err
	}
	return s.run(ctx, func() error {
		for _, ins := range inserts {
			if err := postInsert(ctx, httpURL, user, password, "INSERT INTO "+s.db+"."+ins.table+" FORMAT JSONEachRow", ins.body); err != nil {
				return err
			}
		}
		return nil
	})
}

// credentials are the DSN's user and the endpoint's password.
func (s *server) credentials() (string, string, error) {
	u, err := url.Parse(s.endpoint.DSN)
	if err != nil {
		return "", "", err
	}
	user, password := "default", s.endpoint.Password
	if u.User != nil {
		user = u.User.Username()
		if p, ok := u.User.Password(); ok && password == "" {
			password = p
		}
	}
	return user, password, nil
}

// postInsert sends one INSERT with its data to ClickHouse's HTTP
// interface. Unknown fields are skipped, as the peer's server profile
// does.
func postInsert(ctx context.Context, base, user, password, query string, body []byte) error {
	q := url.Values{"query": {query}, "input_format_skip_unknown_fields": {"1"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/?"+q.Encode(), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("X-ClickHouse-User", user)
	if password != "" {
		req.Header.Set("X-ClickHouse-Key", password)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: HTTP %d: %s", query, resp.StatusCode, bytes.TrimSpace(msg))
	}
	return nil
}
