// Package naive is peer (b) of the funnelhouse benchmark: a deliberately
// straightforward Go implementation of the same sessionisation and lifecycle
// attribution, written the way a careful but ordinary engineer would write it
// in an afternoon: one franz-go group consumer, encoding/json into a struct,
// a map of visitor state per partition, events handled in arrival order, and
// rows appended to clickhouse-go batches one at a time.
//
// It is the baseline the real pipeline's throughput is compared against, so
// it is honest (no sabotage, no artificial slowness) and does the same kind
// of work, but it is not exact: it has no watermark, no reordering by event
// time, no duplicate detection, no dead-letter topic, no deterministic
// session ids and no state that survives a restart. Its rows go to three
// tables of its own database (naive_events, naive_sessions,
// naive_transitions).
package naive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/segmentio/ksuid"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Config configures Run. Zero fields take the defaults noted.
type Config struct {
	Brokers []string
	// Group is the consumer group (default "funnelhouse-naive").
	Group string
	// ClickstreamTopic and TransactionsTopic name the inputs (defaults
	// "clickstream" and "transactions").
	ClickstreamTopic, TransactionsTopic string
	// DSN is clickhouse://user@host:port/database; the database (default
	// "funnelhouse_naive") is created if missing.
	DSN string
	// SessionGap (default 30m) and ChurnAfter (default 90 days).
	SessionGap, ChurnAfter time.Duration
	// BatchRows is the number of rows per insert (default 100_000).
	BatchRows int
	// Records makes Run return once this many input records have been
	// consumed and their rows inserted; <= 0 runs until ctx ends.
	Records int64
}

// Result counts what Run did.
type Result struct {
	// Records is the number of input records consumed, Events the rows
	// written to naive_events (records that decoded), Sessions and
	// Transitions the rows written to the other two tables.
	Records, Events, Sessions, Transitions int64
	// Elapsed runs from the first poll to the last commit (connecting and
	// creating the tables are not included).
	Elapsed time.Duration
}

// DefaultDatabase is used when the DSN names no database.
const DefaultDatabase = "funnelhouse_naive"

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (c Config) withDefaults() Config {
	if c.Group == "" {
		c.Group = "funnelhouse-naive"
	}
	if c.ClickstreamTopic == "" {
		c.ClickstreamTopic = "clickstream"
	}
	if c.TransactionsTopic == "" {
		c.TransactionsTopic = "transactions"
	}
	if c.SessionGap <= 0 {
		c.SessionGap = 30 * time.Minute
	}
	if c.ChurnAfter <= 0 {
		c.ChurnAfter = 90 * 24 * time.Hour
	}
	if c.BatchRows <= 0 {
		c.BatchRows = 100_000
	}
	return c
}

// event is one decoded record value. Fields the naive implementation does
// not use are not decoded.
type event struct {
	EventID    string          `json:"event_id"`
	Type       string          `json:"type"`
	TS         json.RawMessage `json:"ts"`
	VisitorID  string          `json:"visitor_id"`
	CustomerID string          `json:"customer_id"`
	URL        string          `json:"url"`
	OrderID    string          `json:"order_id"`
	Amount     float64         `json:"amount"`
	Rating     int             `json:"rating"`
	NPS        *int            `json:"nps"`
}

// Lifecycle stages, in order.
const (
	stageNone = iota
	stageAwareness
	stageAcquisition
	stageConversion
	stageRetention
	stageAdvocacy
)

var stageNames = [...]string{"", "awareness", "acquisition", "conversion", "retention", "advocacy"}

type session struct {
	id         string
	start, end time.Time
	events     uint32
	pageViews  uint32
	orders     uint32
}

type visitor struct {
	sess         *session // open session, nil if none
	stage        int
	firstOrderID string
	lastActivity time.Time
	churned      bool
}

type eventRow struct {
	eventID, typ, visitorID, sessionID, stage, url string
	ts                                             time.Time
	amount                                         float64
	partition                                      int32
	offset                                         int64
}

type sessionRow struct {
	sessionID, visitorID string
	start, end           time.Time
	events, pageViews    uint32
	isBounce             uint8
}

type transitionRow struct {
	visitorID, stage string
	ts               time.Time
}

type runner struct {
	cfg  Config
	conn driver.Conn
	db   string
	cl   *kgo.Client

	// state: partition -> visitor_id -> visitor
	state map[int32]map[string]*visitor
	maxTS time.Time

	events      []eventRow
	sessions    []sessionRow
	transitions []transitionRow

	res Result
}

// Run consumes both topics from the start with one group consumer,
// sessionises and attributes every decodable event in arrival order, and
// inserts the rows into naive_events, naive_sessions and naive_transitions,
// flushing every BatchRows rows and committing offsets after each flush. It
// returns when cfg.Records records have been consumed and all rows (open
// sessions closed) inserted, or when ctx ends.
func Run(ctx context.Context, cfg Config) (Result, error) {
	cfg = cfg.withDefaults()
	if len(cfg.Brokers) == 0 {
		return Result{}, errors.New("naive: no brokers")
	}
	r := &runner{cfg: cfg, state: map[int32]map[string]*visitor{}}

	opts, err := clickhouse.ParseDSN(cfg.DSN)
	if err != nil {
		return Result{}, fmt.Errorf("naive: bad DSN: %w", err)
	}
	r.db = opts.Auth.Database
	if r.db == "" {
		r.db = DefaultDatabase
	}
	if !identRE.MatchString(r.db) {
		return Result{}, fmt.Errorf("naive: bad database name %q: want letters, digits and underscores", r.db)
	}
	opts.Auth.Database = ""
	r.conn, err = clickhouse.Open(opts)
	if err != nil {
		return Result{}, fmt.Errorf("naive: connect: %w", err)
	}
	defer r.conn.Close()
	if err := r.createTables(ctx); err != nil {
		return Result{}, err
	}

	r.cl, err = kgo.NewClient(
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.ClickstreamTopic, cfg.TransactionsTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.Balancers(kgo.RangeBalancer()), // keeps partition p of both topics together
		kgo.DisableAutoCommit(),
	)
	if err != nil {
		return Result{}, fmt.Errorf("naive: kafka client: %w", err)
	}
	defer r.cl.Close()

	start := time.Now()
	err = r.loop(ctx)
	r.res.Elapsed = time.Since(start)
	return r.res, err
}

func (r *runner) createTables(ctx context.Context) error {
	stmts := []string{
		"CREATE DATABASE IF NOT EXISTS " + r.db,
		"CREATE TABLE IF NOT EXISTS " + r.db + ".naive_events (event_id String, ts DateTime, type String, visitor_id String, session_id String, stage String, url String, amount Float64, kafka_partition Int32, kafka_offset Int64) ENGINE = MergeTree ORDER BY (visitor_id, event_id)",
		"CREATE TABLE IF NOT EXISTS " + r.db + ".naive_sessions (session_id String, visitor_id String, start DateTime, end_ DateTime, events UInt32, page_views UInt32, is_bounce UInt8) ENGINE = MergeTree ORDER BY session_id",
		"CREATE TABLE IF NOT EXISTS " + r.db + ".naive_transitions (visitor_id String, stage String, ts DateTime) ENGINE = MergeTree ORDER BY visitor_id",
	}
	for _, s := range stmts {
		if err := r.conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("naive: %s: %w", s[:strings.Index(s, "(")+1], err)
		}
	}
	return nil
}

func (r *runner) loop(ctx context.Context) error {
	for r.cfg.Records <= 0 || r.res.Records < r.cfg.Records {
		// Never poll past Records, so that CommitUncommittedOffsets commits
		// exactly what was processed.
		limit := 10_000
		if r.cfg.Records > 0 {
			limit = int(min(int64(limit), r.cfg.Records-r.res.Records))
		}
		fetches := r.cl.PollRecords(ctx, limit)
		if ctx.Err() != nil {
			return r.shutdown(ctx)
		}
		if fetches.IsClientClosed() {
			return errors.New("naive: kafka client closed")
		}
		for _, fe := range fetches.Errors() {
			if errors.Is(fe.Err, context.Canceled) || errors.Is(fe.Err, context.DeadlineExceeded) {
				continue
			}
			return fmt.Errorf("naive: fetch %s[%d]: %w", fe.Topic, fe.Partition, fe.Err)
		}
		var err error
		fetches.EachRecord(func(rec *kgo.Record) {
			if err != nil {
				return
			}
			r.res.Records++
			r.process(rec)
			if len(r.events) >= r.cfg.BatchRows || len(r.sessions) >= r.cfg.BatchRows || len(r.transitions) >= r.cfg.BatchRows {
				err = r.flushAndCommit(ctx)
			}
		})
		if err != nil {
			return err
		}
	}
	r.closeAll()
	return r.flushAndCommit(ctx)
}

// shutdown flushes what is buffered (best effort, open sessions stay open:
// their records are replayed next time) and returns the context's error.
func (r *runner) shutdown(ctx context.Context) error {
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	return errors.Join(ctx.Err(), r.flushAndCommit(fctx))
}

// parseTS reads an RFC 3339 string or an integer of epoch milliseconds.
func parseTS(raw json.RawMessage) (time.Time, bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return time.Time{}, false
	}
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return time.Time{}, false
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return time.Time{}, false
		}
		return t.UTC(), true
	}
	ms, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.UnixMilli(ms).UTC(), true
}

// process decodes one record and applies it to its partition's state.
func (r *runner) process(rec *kgo.Record) {
	var ev event
	if err := json.Unmarshal(rec.Value, &ev); err != nil {
		return
	}
	if ev.VisitorID == "" || ev.Type == "" {
		return
	}
	ts, ok := parseTS(ev.TS)
	if !ok {
		return
	}
	if ts.After(r.maxTS) {
		r.maxTS = ts
	}

	visitors := r.state[rec.Partition]
	if visitors == nil {
		visitors = map[string]*visitor{}
		r.state[rec.Partition] = visitors
	}
	v := visitors[ev.VisitorID]
	if v == nil {
		v = &visitor{}
		visitors[ev.VisitorID] = v
	}

	// Churn by inactivity, noticed when the customer comes back.
	if v.stage >= stageConversion && !v.churned && ts.Sub(v.lastActivity) > r.cfg.ChurnAfter {
		r.transition(ev.VisitorID, "churned", v.lastActivity.Add(r.cfg.ChurnAfter))
		v.churned = true
	}

	// Sessions: clickstream only.
	sessionID := ""
	if rec.Topic == r.cfg.ClickstreamTopic {
		s := v.sess
		if s != nil && (ts.Sub(s.end) > r.cfg.SessionGap || s.start.Sub(ts) > r.cfg.SessionGap) {
			r.closeSession(ev.VisitorID, s)
			s = nil
		}
		if s == nil {
			s = &session{id: ksuid.New().String(), start: ts, end: ts}
			v.sess = s
		}
		if ts.Before(s.start) {
			s.start = ts
		}
		if ts.After(s.end) {
			s.end = ts
		}
		s.events++
		if ev.Type == "page_view" {
			s.pageViews++
		}
		sessionID = s.id
	} else if s := v.sess; s != nil && !ts.Before(s.start) && ts.Before(s.end.Add(r.cfg.SessionGap)) {
		sessionID = s.id
		if ev.Type == "order_completed" {
			s.orders++
		}
	}

	// Lifecycle.
	if v.stage == stageNone {
		r.enter(ev.VisitorID, v, stageAwareness, ts)
	}
	switch ev.Type {
	case "signup":
		r.enter(ev.VisitorID, v, stageAcquisition, ts)
	case "order_completed":
		switch {
		case v.stage < stageConversion:
			r.enter(ev.VisitorID, v, stageConversion, ts)
			v.firstOrderID = ev.OrderID
		case v.stage == stageConversion && ev.OrderID != v.firstOrderID:
			r.enter(ev.VisitorID, v, stageRetention, ts)
		}
		if v.churned {
			r.transition(ev.VisitorID, "reactivated", ts)
			v.churned = false
		}
	case "subscription_started":
		if v.churned {
			r.transition(ev.VisitorID, "reactivated", ts)
			v.churned = false
		}
	case "subscription_cancelled":
		if v.stage >= stageConversion && !v.churned {
			r.transition(ev.VisitorID, "churned", ts)
			v.churned = true
		}
	case "referral", "review", "survey":
		advocate := ev.Type == "referral" ||
			(ev.Type == "review" && ev.Rating >= 4) ||
			(ev.Type == "survey" && ev.NPS != nil && *ev.NPS >= 9)
		if advocate && v.stage >= stageConversion {
			r.enter(ev.VisitorID, v, stageAdvocacy, ts)
		}
	}
	if ts.After(v.lastActivity) {
		v.lastActivity = ts
	}

	r.events = append(r.events, eventRow{
		eventID: ev.EventID, typ: ev.Type, visitorID: ev.VisitorID, sessionID: sessionID,
		stage: stageNames[v.stage], url: ev.URL, ts: ts, amount: ev.Amount,
		partition: rec.Partition, offset: rec.Offset,
	})
}

// enter moves v forward to stage, entering every stage in between at ts.
func (r *runner) enter(visitorID string, v *visitor, stage int, ts time.Time) {
	for v.stage < stage {
		v.stage++
		r.transition(visitorID, stageNames[v.stage], ts)
	}
}

func (r *runner) transition(visitorID, stage string, ts time.Time) {
	r.transitions = append(r.transitions, transitionRow{visitorID: visitorID, stage: stage, ts: ts})
}

func (r *runner) closeSession(visitorID string, s *session) {
	var bounce uint8
	if s.events == 1 && s.pageViews == 1 && s.orders == 0 {
		bounce = 1
	}
	r.sessions = append(r.sessions, sessionRow{
		sessionID: s.id, visitorID: visitorID, start: s.start, end: s.end,
		events: s.events, pageViews: s.pageViews, isBounce: bounce,
	})
}

// closeAll ends the input: every open session is closed, and customers
// inactive for ChurnAfter before the latest ts seen churn.
func (r *runner) closeAll() {
	for _, visitors := range r.state {
		for id, v := range visitors {
			if v.sess != nil {
				r.closeSession(id, v.sess)
				v.sess = nil
			}
			if v.stage >= stageConversion && !v.churned && r.maxTS.Sub(v.lastActivity) > r.cfg.ChurnAfter {
				r.transition(id, "churned", v.lastActivity.Add(r.cfg.ChurnAfter))
				v.churned = true
			}
		}
	}
}

// flushAndCommit inserts every buffered row, then commits the offsets of
// every record polled so far.
func (r *runner) flushAndCommit(ctx context.Context) error {
	if err := r.flushEvents(ctx); err != nil {
		return err
	}
	if err := r.flushSessions(ctx); err != nil {
		return err
	}
	if err := r.flushTransitions(ctx); err != nil {
		return err
	}
	if err := r.cl.CommitUncommittedOffsets(ctx); err != nil {
		return fmt.Errorf("naive: commit: %w", err)
	}
	return nil
}

func (r *runner) flushEvents(ctx context.Context) error {
	if len(r.events) == 0 {
		return nil
	}
	batch, err := r.conn.PrepareBatch(ctx, "INSERT INTO "+r.db+".naive_events (event_id, ts, type, visitor_id, session_id, stage, url, amount, kafka_partition, kafka_offset)")
	if err != nil {
		return fmt.Errorf("naive: insert naive_events: %w", err)
	}
	defer batch.Abort()
	for _, e := range r.events {
		if err := batch.Append(e.eventID, e.ts, e.typ, e.visitorID, e.sessionID, e.stage, e.url, e.amount, e.partition, e.offset); err != nil {
			return fmt.Errorf("naive: append naive_events: %w", err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("naive: insert naive_events: %w", err)
	}
	r.res.Events += int64(len(r.events))
	r.events = r.events[:0]
	return nil
}

func (r *runner) flushSessions(ctx context.Context) error {
	if len(r.sessions) == 0 {
		return nil
	}
	batch, err := r.conn.PrepareBatch(ctx, "INSERT INTO "+r.db+".naive_sessions (session_id, visitor_id, start, end_, events, page_views, is_bounce)")
	if err != nil {
		return fmt.Errorf("naive: insert naive_sessions: %w", err)
	}
	defer batch.Abort()
	for _, s := range r.sessions {
		if err := batch.Append(s.sessionID, s.visitorID, s.start, s.end, s.events, s.pageViews, s.isBounce); err != nil {
			return fmt.Errorf("naive: append naive_sessions: %w", err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("naive: insert naive_sessions: %w", err)
	}
	r.res.Sessions += int64(len(r.sessions))
	r.sessions = r.sessions[:0]
	return nil
}

func (r *runner) flushTransitions(ctx context.Context) error {
	if len(r.transitions) == 0 {
		return nil
	}
	batch, err := r.conn.PrepareBatch(ctx, "INSERT INTO "+r.db+".naive_transitions (visitor_id, stage, ts)")
	if err != nil {
		return fmt.Errorf("naive: insert naive_transitions: %w", err)
	}
	defer batch.Abort()
	for _, t := range r.transitions {
		if err := batch.Append(t.visitorID, t.stage, t.ts); err != nil {
			return fmt.Errorf("naive: append naive_transitions: %w", err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("naive: insert naive_transitions: %w", err)
	}
	r.res.Transitions += int64(len(r.transitions))
	r.transitions = r.transitions[:0]
	return nil
}
