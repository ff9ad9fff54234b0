package verify

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/funnelhouse/funnelhouse/bench/expected"
	"github.com/funnelhouse/funnelhouse/schemas"
)

// Views compares every row of the four views, the sessions and
// transitions tables and each event's session and stage with the expected
// computation. It returns an error describing the first differences.
func Views(ctx context.Context, conn driver.Conn, db string, want *expected.Result, events int) error {
	var problems []string
	check := func(what string, err error) {
		if err != nil {
			problems = append(problems, what+": "+err.Error())
		}
	}
	check("funnel_daily", compareRows(ctx, conn, want.Funnel, funnelQuery(db), funnelScan, nil))
	check("bounce_daily", compareRows(ctx, conn, want.Bounce, bounceQuery(db), bounceScan, nil))
	check("churn_monthly", compareRows(ctx, conn, want.Churn, churnQuery(db), churnScan, nil))
	check("revenue_daily", compareRows(ctx, conn, want.Revenue, revenueQuery(db), revenueScan, revenueFix))
	check("sessions", compareRows(ctx, conn, want.Sessions,
		"SELECT session_id, visitor_id, customer_id, start_ms, end_ms, duration_s, events, page_views, entry_url, exit_url, source, medium, campaign, is_bounce, orders, toString(revenue) FROM "+db+".sessions FINAL ORDER BY session_id, visitor_id",
		func(r *expected.SessionRow) []any {
			return []any{&r.SessionID, &r.VisitorID, &r.CustomerID, new(uint64), new(uint64), &r.DurationS, &r.Events, &r.PageViews, &r.EntryURL, &r.ExitURL, &r.Source, &r.Medium, &r.Campaign, new(uint8), &r.Orders, new(string)}
		},
		func(r *expected.SessionRow, dest []any) error {
			r.StartMs, r.EndMs = int64(*dest[3].(*uint64)), int64(*dest[4].(*uint64))
			r.IsBounce = *dest[13].(*uint8) == 1
			v, err := parseAmount(*dest[15].(*string))
			r.Revenue = v
			return err
		}))
	transitions := slices.Clone(want.Transitions)
	slices.SortFunc(transitions, func(a, b expected.TransitionRow) int {
		return cmp.Or(strings.Compare(a.VisitorID, b.VisitorID), strings.Compare(a.Stage, b.Stage), cmp.Compare(a.TsMs, b.TsMs))
	})
	check("lifecycle_transitions", compareRows(ctx, conn, transitions,
		"SELECT visitor_id, customer_id, toString(stage) AS s, ts_ms, toString(cohort_day), source, event_id FROM "+db+".lifecycle_transitions FINAL ORDER BY visitor_id, s, ts_ms",
		func(r *expected.TransitionRow) []any {
			return []any{&r.VisitorID, &r.CustomerID, &r.Stage, new(uint64), &r.CohortDay, &r.Source, &r.EventID}
		},
		func(r *expected.TransitionRow, dest []any) error { r.TsMs = int64(*dest[3].(*uint64)); return nil }))
	check("events", Events(ctx, conn, db, want, events))
	check("catalogue", Catalogue(ctx, conn, db, want))
	if len(problems) > 0 {
		return fmt.Errorf("ClickHouse differs from the expected computation:\n  %s", strings.Join(problems, "\n  "))
	}
	return nil
}

// compareRows runs query and compares its rows, in order, with want.
// scan gives the scan destinations of a row (pointers into it or spare
// values that fix then moves in).
func compareRows[T comparable](ctx context.Context, conn driver.Conn, want []T, query string, scan func(*T) []any, fix func(*T, []any) error) error {
	got, err := fetchRows(ctx, conn, query, scan, fix)
	if err != nil {
		return err
	}
	var diffs []string
	for i := 0; i < max(len(got), len(want)) && len(diffs) < 5; i++ {
		switch {
		case i >= len(got):
			diffs = append(diffs, fmt.Sprintf("missing row %+v", want[i]))
		case i >= len(want):
			diffs = append(diffs, fmt.Sprintf("extra row %+v", got[i]))
		case got[i] != want[i]:
			diffs = append(diffs, fmt.Sprintf("row %d:\n      got  %+v\n      want %+v", i, got[i], want[i]))
		}
	}
	if len(diffs) > 0 {
		return fmt.Errorf("%d rows, want %d; first differences:\n    %s", len(got), len(want), strings.Join(diffs, "\n    "))
	}
	return nil
}

// fetchRows runs query and scans its rows (see compareRows).
func fetchRows[T any](ctx context.Context, conn driver.Conn, query string, scan func(*T) []any, fix func(*T, []any) error) ([]T, error) {
	rows, err := conn.Query(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var got []T
	for rows.Next() {
		var r T
		dest := scan(&r)
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		if fix != nil {
			if err := fix(&r, dest); err != nil {
				return nil, err
			}
		}
		got = append(got, r)
	}
	return got, rows.Err()
}

// Events checks that events holds exactly the valid, deduplicated
// events, each with the expected session and stage.
func Events(ctx context.Context, conn driver.Conn, db string, want *expected.Result, events int) error {
	rows, err := conn.Query(ctx, "SELECT visitor_id, event_id, session_id, toString(stage), late FROM "+db+".events FINAL")
	if err != nil {
		return err
	}
	defer rows.Close()
	n := 0
	var diffs []string
	seen := make([]bool, want.Outcomes.Len())
	for rows.Next() {
		var visitor, id, session, stage string
		var late uint8
		if err := rows.Scan(&visitor, &id, &session, &stage, &late); err != nil {
			return err
		}
		n++
		i := want.Outcomes.Index(visitor, id)
		if i < 0 {
			diffs = append(diffs, fmt.Sprintf("unexpected event %s/%s", visitor, id))
			continue
		}
		seen[i] = true
		if w := want.Outcomes.At(i); stage != w.Stage || session != w.Session || late != 0 {
			diffs = append(diffs, fmt.Sprintf("event %s/%s: session %q stage %s late %d, want session %q stage %s", visitor, id, session, stage, late, w.Session, w.Stage))
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if n != events {
		diffs = append(diffs, fmt.Sprintf("%d events, want %d", n, events))
	}
	diffs = append(diffs, missingEvents(want, seen)...)
	if len(diffs) > 0 {
		return fmt.Errorf("%d problems, first: %s", len(diffs), strings.Join(diffs[:min(5, len(diffs))], "; "))
	}
	return nil
}

// missingEvents names the expected events not seen (up to 5, sorted by
// session and stage, so that a failure says which session to look for in
// the logs; only the hashes of the ids are kept).
func missingEvents(want *expected.Result, seen []bool) []string {
	var missing []expected.EventOutcome
	for i, ok := range seen {
		if !ok {
			missing = append(missing, want.Outcomes.At(i))
		}
	}
	slices.SortFunc(missing, func(a, b expected.EventOutcome) int {
		return cmp.Or(strings.Compare(a.Session, b.Session), strings.Compare(a.Stage, b.Stage))
	})
	var out []string
	for _, o := range missing[:min(5, len(missing))] {
		out = append(out, fmt.Sprintf("missing an event (of %d missing): session %q stage %s", len(missing), o.Session, o.Stage))
	}
	return out
}

// parseAmount reads ClickHouse's text of a Decimal(…, 4), e.g. "12.5000".
func parseAmount(s string) (schemas.Amount, error) {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	whole, frac, _ := strings.Cut(s, ".")
	if len(frac) > 4 {
		return 0, fmt.Errorf("amount %q has more than 4 decimals", s)
	}
	frac += strings.Repeat("0", 4-len(frac))
	var v int64
	for _, c := range whole + frac {
		if c < '0' || c > '9' || v > math.MaxInt64/10 {
			return 0, fmt.Errorf("bad amount %q", s)
		}
		v = v*10 + int64(c-'0')
	}
	if neg {
		v = -v
	}
	return schemas.Amount(v), nil
}
