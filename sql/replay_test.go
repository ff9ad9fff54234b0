package sql_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	fhsql "github.com/funnelhouse/funnelhouse/sql"
)

// replayBatch is a batch of 300 sessions over three days, sources, media
// and a few pages (with query strings and fragments), some bouncing, some
// of visitors seen before, and a page_view event per page view. It is
// INSERT … SELECT (18.16 hangs on INSERT … VALUES from the driver).
var replayBatch = []string{
	`INSERT INTO {db}.sessions (session_id, visitor_id, customer_id, start, end, start_ms, end_ms, duration_s, events, page_views,
	entry_url, exit_url, source, medium, campaign, is_bounce, orders, revenue, cohort_day, first_session)
SELECT concat('s', toString(number)), concat('v', toString(number % 170)), '',
       toDateTime(start_ms / 1000, 'UTC'), toDateTime(end_ms / 1000, 'UTC'),
       toUInt64(1735689600000 + (number % 3) * 86400000 + number * 1000) AS start_ms,
       start_ms + (number % 7) * 61003 AS end_ms, (end_ms - start_ms) / 1000, 1 + number % 4, number % 4,
       concat('https://shop.example/p', toString(number % 5), if(number % 2 = 0, '?utm=x', '#top')),
       concat('https://shop.example/p', toString(number % 3)),
       ['google', '(direct)', 'newsletter'][number % 3 + 1], ['cpc', '', 'email'][number % 3 + 1], '',
       toUInt8(number % 4 = 0), toUInt32(number % 11 = 0), toDecimal64(0, 4),
       toDate(if(number < 170, start_ms, 1735689600000) / 1000), toUInt8(number < 170)
FROM system.numbers LIMIT 300`,
	`INSERT INTO {db}.events (event_id, ts, ts_ms, type, visitor_id, session_id, url, session_start)
SELECT concat('e', toString(number)), toDateTime(ts_ms / 1000, 'UTC'),
       toUInt64(1735689600000 + (number % 3) * 86400000 + number * 1000) AS ts_ms, 'page_view',
       concat('v', toString(number % 170)), concat('s', toString(number % 300)),
       concat('https://shop.example/p', toString(number % 5), if(number % 2 = 0, '?q=1', '')),
       toDateTime(ts_ms / 1000, 'UTC')
FROM system.numbers LIMIT 450`,
}

// snapshotViews reads every row of the session-based catalogue views as
// text (ClickHouse's own rendering of the row as a tuple).
func snapshotViews(t *testing.T, ctx context.Context, conn driver.Conn, db string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for view, cols := range map[string]string{
		"traffic_daily":            "day, source, medium, sessions, visitors, new_visitors, returning_visitors, page_views, pages_per_session, avg_session_duration_s, bounce_rate",
		"pages_daily":              "day, page, entries, exits, bounces, page_views, bounce_rate, exit_rate",
		"visitor_conversion_daily": "day, visitor_type, sessions, converted_sessions, conversion_rate",
	} {
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

// TestCatalogueViewsReplaySafe inserts a batch of sessions and page views,
// then the same rows again (as a replay after a crash would): no number of
// traffic_daily, pages_daily or visitor_conversion_daily may change. One
// new session then must change them, so the check can fail.
func TestCatalogueViewsReplaySafe(t *testing.T) {
	conn, db := testDatabase(t, "fh_replay")
	ctx := context.Background()
	if _, err := fhsql.Migrate(ctx, conn, db); err != nil {
		t.Fatal(err)
	}
	for _, q := range replayBatch {
		if err := conn.Exec(ctx, strings.ReplaceAll(q, "{db}", db)); err != nil {
			t.Fatal(err)
		}
	}
	before := snapshotViews(t, ctx, conn, db)
	for view, rows := range before {
		if len(rows) < 3 {
			t.Fatalf("%s has %d rows: the batch proves nothing", view, len(rows))
		}
	}
	for _, table := range []string{"sessions", "events"} {
		if err := conn.Exec(ctx, "INSERT INTO "+db+"."+table+" SELECT * FROM "+db+"."+table); err != nil {
			t.Fatal(err)
		}
	}
	after := snapshotViews(t, ctx, conn, db)
	for view, rows := range before {
		if got := after[view]; strings.Join(got, "\n") != strings.Join(rows, "\n") {
			t.Errorf("%s changed when the batch was inserted again:\nbefore %q\nafter  %q", view, rows, got)
		}
	}

	if err := conn.Exec(ctx, "INSERT INTO "+db+".sessions SELECT * FROM "+db+".sessions WHERE session_id = 's1' LIMIT 1"); err != nil {
		t.Fatal(err)
	}
	if err := conn.Exec(ctx, "INSERT INTO "+db+".sessions (session_id, visitor_id, start, end, start_ms, end_ms, page_views, entry_url, exit_url, source, medium, is_bounce, cohort_day, first_session) SELECT 'new', 'v1', toDateTime(1735689600, 'UTC'), toDateTime(1735689601, 'UTC'), 1735689600000, 1735689601000, 1, 'https://shop.example/p0', 'https://shop.example/p0', 'google', 'cpc', 1, toDate('2024-12-01'), 0"); err != nil {
		t.Fatal(err)
	}
	changed := snapshotViews(t, ctx, conn, db)
	for view, rows := range before {
		if strings.Join(changed[view], "\n") == strings.Join(rows, "\n") {
			t.Errorf("%s did not change when a new session was inserted", view)
		}
	}
}
