package sql_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	fhsql "github.com/funnelhouse/funnelhouse/sql"
)

// replayBatch is a batch of 300 sessions over three days, sources, media
// and a few pages (with query strings and fragments), some bouncing, some
// of visitors seen before, and a page_view event per page view; and 60
// customers (conversions over three months, churns and reactivations
// after, other stages' transitions beside), with orders in two currencies (v5's order-5 completed again on
// another day, a few orders of visitors who never converted) and refunds.
// It is INSERT … SELECT (18.16 hangs on INSERT … VALUES from the driver).
var replayBatch = []string{
	`INSERT INTO {db}.sessions (session_id, visitor_id, customer_id, start, end, start_ms, end_ms, duration_s, events, page_views,
	entry_url, exit_url, source, medium, campaign, is_bounce, orders, revenue, cohort_day, first_session, first_of_day)
SELECT concat('s', toString(number)), concat('v', toString(number % 170)), '',
       toDateTime(start_ms / 1000, 'UTC'), toDateTime(end_ms / 1000, 'UTC'),
       toUInt64(1735689600000 + (number % 3) * 86400000 + number * 1000) AS start_ms,
       start_ms + (number % 7) * 61003 AS end_ms, (end_ms - start_ms) / 1000, 1 + number % 4, number % 4,
       concat('https://shop.example/p', toString(number % 5), if(number % 2 = 0, '?utm=x', '#top')),
       concat('https://shop.example/p', toString(number % 3)),
       ['google', '(direct)', 'newsletter'][number % 3 + 1], ['cpc', '', 'email'][number % 3 + 1], '',
       toUInt8(number % 4 = 0), toUInt32(number % 11 = 0), toDecimal64(0, 4),
       toDate(if(number < 170, start_ms, 1735689600000) / 1000), toUInt8(number < 170),
       1 -- a visitor's sessions n and n + 170 start on different days
FROM system.numbers LIMIT 300`,
	`INSERT INTO {db}.events (event_id, ts, ts_ms, type, visitor_id, session_id, url, session_start)
SELECT concat('e', toString(number)), toDateTime(ts_ms / 1000, 'UTC'),
       toUInt64(1735689600000 + (number % 3) * 86400000 + number * 1000) AS ts_ms, 'page_view',
       concat('v', toString(number % 170)), concat('s', toString(number % 300)),
       concat('https://shop.example/p', toString(number % 5), if(number % 2 = 0, '?q=1', '')),
       toDateTime(ts_ms / 1000, 'UTC')
FROM system.numbers LIMIT 450`,
	`INSERT INTO {db}.lifecycle_transitions (visitor_id, customer_id, stage, ts, ts_ms, cohort_day, source, event_id)
SELECT concat('v', toString(number)), '', ['awareness', 'acquisition', 'retention', 'advocacy'][number % 4 + 1], toDateTime(1735689600 + number, 'UTC'),
       toUInt64(1735689600000 + number * 1000), toDate('2025-01-01'), 'google', concat('e', toString(number))
FROM system.numbers LIMIT 80`,
	`INSERT INTO {db}.lifecycle_transitions (visitor_id, customer_id, stage, ts, ts_ms, cohort_day, source, event_id)
SELECT concat('v', toString(number)), '', 'conversion', toDateTime(ts_ms / 1000, 'UTC'),
       toUInt64(1735693200000 + number * 129600000) AS ts_ms, toDate('2025-01-01'), 'google', concat('o', toString(number))
FROM system.numbers LIMIT 60`,
	`INSERT INTO {db}.lifecycle_transitions (visitor_id, customer_id, stage, ts, ts_ms, cohort_day, source, event_id)
SELECT concat('v', toString(number)), '', 'churned', toDateTime(ts_ms / 1000, 'UTC'),
       toUInt64(1735693200000 + number * 129600000 + 100 * 86400000) AS ts_ms, toDate('2025-01-01'), 'google', ''
FROM system.numbers WHERE number % 2 = 0 LIMIT 30`,
	`INSERT INTO {db}.lifecycle_transitions (visitor_id, customer_id, stage, ts, ts_ms, cohort_day, source, event_id)
SELECT concat('v', toString(number)), '', 'reactivated', toDateTime(ts_ms / 1000, 'UTC'),
       toUInt64(1735693200000 + number * 129600000 + 130 * 86400000) AS ts_ms, toDate('2025-01-01'), 'google', concat('x', toString(number))
FROM system.numbers WHERE number % 4 = 0 LIMIT 15`,
	`INSERT INTO {db}.events (event_id, ts, ts_ms, type, visitor_id, order_id, amount, currency, late)
SELECT concat('o', toString(number)), toDateTime(ts_ms / 1000, 'UTC'),
       toUInt64(1735693200000 + (number % 70) * 129600000 + intDiv(number, 70) * 40 * 86400000) AS ts_ms, 'order_completed',
       concat('v', toString(number % 70)), concat('order-', toString(if(number = 145, 5, number))),
       toDecimal64(10 + number % 7, 4) + toDecimal64(0.2525, 4), ['EUR', 'USD'][number % 2 + 1], toUInt8(number % 13 = 0)
FROM system.numbers LIMIT 160`,
	`INSERT INTO {db}.events (event_id, ts, ts_ms, type, visitor_id, order_id, amount, currency)
SELECT concat('r', toString(number)), toDateTime(ts_ms / 1000, 'UTC'),
       toUInt64(1735693200000 + (number % 70) * 129600000 + 86400000) AS ts_ms, 'order_refunded',
       concat('v', toString(number % 70)), concat('order-', toString(number)), toDecimal64(2.5, 4), ['EUR', 'USD'][number % 2 + 1]
FROM system.numbers WHERE number % 9 = 0 LIMIT 8`,
}

// replayViews are the views TestCatalogueViewsReplaySafe watches: those
// replayBatch gives rows.
var replayViews = []string{"traffic_daily", "pages_daily", "visitor_conversion_daily", "revenue_daily", "churn_monthly",
	"retention_monthly", "clv_cohort_monthly"}

// snapshotViews reads every row of each view as text (ClickHouse's own
// rendering of the row as a tuple), in the order of all its columns.
func snapshotViews(t *testing.T, ctx context.Context, conn driver.Conn, db string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, view := range replayViews {
		var cols string
		if err := conn.QueryRow(ctx, "SELECT arrayStringConcat(groupArray(name), ', ') FROM system.columns WHERE database = ? AND table = ?",
			db, view).Scan(&cols); err != nil || cols == "" {
			t.Fatalf("%s: no columns (%v)", view, err)
		}
		rows, err := conn.Query(ctx, fmt.Sprintf("SELECT toString(tuple(%s)) FROM %s.%s ORDER BY %s", cols, db, view, cols))
		if err != nil {
			t.Fatalf("%s: %v", view, err)
		}
		for rows.Next() {
			var row string
			if err := rows.Scan(&row); err != nil {
				t.Fatalf("%s: %v", view, err)
			}
			out[view] = append(out[view], row)
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("%s: %v", view, err)
		}
		rows.Close()
	}
	return out
}

// TestCatalogueViewsReplaySafe inserts a batch of sessions, page views,
// transitions, orders and refunds, then the same rows again (as a replay
// after a crash would): no number of the watched views may change. A new
// session, customer and order then must change every one of them, so the
// check can fail.
func TestCatalogueViewsReplaySafe(t *testing.T) {
	conn, db := testDatabase(t, "fh_replay")
	ctx := context.Background()
	if _, err := fhsql.Migrate(ctx, conn, db); err != nil {
		t.Fatal(err)
	}
	exec := func(q string) {
		t.Helper()
		if err := conn.Exec(ctx, strings.ReplaceAll(q, "{db}", db)); err != nil {
			t.Fatalf("%v\n%s", err, q)
		}
	}
	for _, q := range replayBatch {
		exec(q)
	}
	before := snapshotViews(t, ctx, conn, db)
	for _, view := range replayViews {
		if rows := before[view]; len(rows) < 3 {
			t.Fatalf("%s has %d rows: the batch proves nothing", view, len(rows))
		}
	}
	for _, table := range []string{"sessions", "events", "lifecycle_transitions"} {
		exec("INSERT INTO {db}." + table + " SELECT * FROM {db}." + table)
	}
	after := snapshotViews(t, ctx, conn, db)
	for view, rows := range before {
		if got := after[view]; strings.Join(got, "\n") != strings.Join(rows, "\n") {
			t.Errorf("%s changed when the batch was inserted again:\nbefore %q\nafter  %q", view, rows, got)
		}
	}

	exec("INSERT INTO {db}.sessions SELECT * FROM {db}.sessions WHERE session_id = 's1' LIMIT 1")
	exec("INSERT INTO {db}.sessions (session_id, visitor_id, start, end, start_ms, end_ms, page_views, entry_url, exit_url, source, medium, is_bounce, cohort_day, first_session, first_of_day) SELECT 'new', 'v1', toDateTime(1735689600, 'UTC'), toDateTime(1735689601, 'UTC'), 1735689600000, 1735689601000, 1, 'https://shop.example/p0', 'https://shop.example/p0', 'google', 'cpc', 1, toDate('2024-12-01'), 0, 0") // v1's session 171 is on that day, from google by cpc
	// A new customer converting in March with a first order, and a new
	// order of v2 (who has one so far, in January).
	exec("INSERT INTO {db}.lifecycle_transitions (visitor_id, stage, ts, ts_ms, cohort_day, source, event_id) SELECT 'v300', 'conversion', toDateTime(1741000000, 'UTC'), 1741000000000, toDate('2025-03-03'), 'google', 'new-o'")
	exec("INSERT INTO {db}.events (event_id, ts, ts_ms, type, visitor_id, order_id, amount, currency) SELECT 'new-o', toDateTime(1741000000, 'UTC'), 1741000000000, 'order_completed', 'v300', 'order-new', toDecimal64(3, 4), 'EUR'")
	exec("INSERT INTO {db}.events (event_id, ts, ts_ms, type, visitor_id, order_id, amount, currency) SELECT 'new-o2', toDateTime(1741000000, 'UTC'), 1741000000000, 'order_completed', 'v2', 'order-new2', toDecimal64(4, 4), 'EUR'")
	changed := snapshotViews(t, ctx, conn, db)
	for view, rows := range before {
		if strings.Join(changed[view], "\n") == strings.Join(rows, "\n") {
			t.Errorf("%s did not change when a new session, customer and orders were inserted", view)
		}
	}
}

// lateCopies are events (an order, a refund, a survey, a trial start and
// page views in sessions) written on time, then the same events again as
// the pipeline writes a duplicate that arrives after the dedup horizon
// (--lateness + --session-gap): late = 1, no session, the visitor's stage
// then, another offset. {late}, {session}, {stage} and {offset} are
// filled in per copy.
const lateCopies = `INSERT INTO {db}.events (event_id, ts, ts_ms, type, visitor_id, session_id, stage, url, order_id, amount, currency,
	nps, csat, trial, session_start, late, kafka_topic, kafka_partition, kafka_offset)
SELECT concat('e', toString(number)), toDateTime(ts_ms / 1000, 'UTC'), toUInt64(1735689600000 + number * 60000) AS ts_ms,
       ['page_view', 'order_completed', 'order_refunded', 'survey', 'subscription_started'][number % 5 + 1] AS t,
       concat('v', toString(number % 7)), {session}, {stage}, concat('https://shop.example/p', toString(number % 3)),
       if(t IN ('order_completed', 'order_refunded'), concat('o', toString(number)), ''),
       toDecimal64(if(t IN ('order_completed', 'order_refunded'), 10 + number, 0), 4), if(t IN ('order_completed', 'order_refunded'), 'USD', ''),
       if(t = 'survey', toNullable(toUInt8(number % 11)), NULL), if(t = 'survey', toNullable(toUInt8(1 + number % 5)), NULL),
       toUInt8(t = 'subscription_started'), {session_start}, {late}, 'transactions', 0, {offset}
FROM system.numbers LIMIT 40`

// TestLateDuplicateKeepsOriginal: a duplicate that arrives after the dedup
// horizon is written as a late event with the same visitor and event id.
// The events table must keep the original (its session and stage), and no
// view may count the copy (issue 13: the later insert won).
func TestLateDuplicateKeepsOriginal(t *testing.T) {
	conn, db := testDatabase(t, "fh_latedup")
	ctx := context.Background()
	if _, err := fhsql.Migrate(ctx, conn, db); err != nil {
		t.Fatal(err)
	}
	insert := func(late bool) {
		r := strings.NewReplacer("{session}", "concat('s', toString(number % 7))", "{stage}", "'conversion'",
			"{session_start}", "toDateTime(1735689600, 'UTC')", "{late}", "0", "{offset}", "toInt64(number)")
		if late {
			r = strings.NewReplacer("{session}", "''", "{stage}", "'advocacy'",
				"{session_start}", "toDateTime(0, 'UTC')", "{late}", "1", "{offset}", "toInt64(1000 + number)")
		}
		if err := conn.Exec(ctx, strings.ReplaceAll(r.Replace(lateCopies), "{db}", db)); err != nil {
			t.Fatal(err)
		}
	}
	// Each row as ClickHouse renders it (groupArray of a tuple with a
	// Decimal128 crashes 18.16, so rows are joined here).
	rowsOf := func(q string) string {
		rows, err := conn.Query(ctx, strings.ReplaceAll(q, "{db}", db))
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return strings.Join(out, "\n")
	}
	events := func() string {
		return rowsOf("SELECT toString(tuple(event_id, session_id, toString(stage), late)) FROM {db}.events FINAL ORDER BY event_id")
	}
	views := func() string {
		var out []string
		for view, order := range map[string]string{"revenue_daily": "day, currency", "satisfaction_monthly": "month", "pages_daily": "day, page",
			"trial_conversion_monthly": "month", "clv_cohort_monthly": "cohort_month, currency, month_offset"} {
			out = append(out, view+":\n"+rowsOf("SELECT toString(tuple(*)) FROM {db}."+view+" ORDER BY "+order))
		}
		slices.Sort(out)
		return strings.Join(out, "\n")
	}
	insert(false)
	wantEvents, wantViews := events(), views()
	if !strings.Contains(wantViews, "USD") || !strings.Contains(wantViews, "/p1") {
		t.Fatalf("the views hold nothing to compare:\n%s", wantViews)
	}
	insert(true)
	if got := events(); got != wantEvents {
		t.Errorf("events FINAL after the late copies:\n got %s\nwant %s", got, wantEvents)
	}
	if got := views(); got != wantViews {
		t.Errorf("views after the late copies:\n got %s\nwant %s", got, wantViews)
	}
	// Merged, as FINAL merges it.
	if err := conn.Exec(ctx, "OPTIMIZE TABLE "+db+".events FINAL"); err != nil {
		t.Fatal(err)
	}
	if got := events(); got != wantEvents {
		t.Errorf("events after OPTIMIZE … FINAL:\n got %s\nwant %s", got, wantEvents)
	}
}
