package verify

import (
	"context"
	"fmt"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/funnelhouse/funnelhouse/bench/expected"
	"github.com/funnelhouse/funnelhouse/schemas"
)

// The four core views (SPEC §6): their queries, in key order, and how a
// row is scanned into the expected computation's row type. Views and
// CoreViews share them.

func funnelQuery(db string) string {
	return "SELECT toString(cohort_day), source, awareness, acquisition, conversion, retention, advocacy, acquisition_rate, conversion_rate, retention_rate, advocacy_rate FROM " + db + ".funnel_daily ORDER BY cohort_day, source"
}

func funnelScan(r *expected.FunnelRow) []any {
	return []any{&r.CohortDay, &r.Source, &r.Awareness, &r.Acquisition, &r.Conversion, &r.Retention, &r.Advocacy, &r.AcquisitionRate, &r.ConversionRate, &r.RetentionRate, &r.AdvocacyRate}
}

func bounceQuery(db string) string {
	return "SELECT toString(day), source, sessions, bounces, bounce_rate FROM " + db + ".bounce_daily ORDER BY day, source"
}

func bounceScan(r *expected.BounceRow) []any {
	return []any{&r.Day, &r.Source, &r.Sessions, &r.Bounces, &r.BounceRate}
}

func churnQuery(db string) string {
	return "SELECT toString(month), active_at_start, churned, reactivated, churn_rate FROM " + db + ".churn_monthly ORDER BY month"
}

func churnScan(r *expected.ChurnRow) []any {
	return []any{&r.Month, &r.ActiveAtStart, &r.Churned, &r.Reactivated, &r.ChurnRate}
}

func revenueQuery(db string) string {
	return "SELECT toString(day), currency, orders, toString(revenue), toString(refunds), toString(net_revenue), customers FROM " + db + ".revenue_daily ORDER BY day, currency"
}

func revenueScan(r *expected.RevenueRow) []any {
	return []any{&r.Day, &r.Currency, &r.Orders, new(string), new(string), new(string), &r.Customers}
}

// revenueFix moves the Decimal columns, scanned as text, into the row.
func revenueFix(r *expected.RevenueRow, dest []any) error {
	for i, a := range []*schemas.Amount{&r.Revenue, &r.Refunds, &r.NetRevenue} {
		v, err := parseAmount(*dest[3+i].(*string))
		if err != nil {
			return err
		}
		*a = v
	}
	return nil
}

// ViewDiff is how the rows of one view compare with the expected
// computation.
type ViewDiff struct {
	View     string `json:"view"`
	Rows     int    `json:"rows"`
	WantRows int    `json:"want_rows"`
	// Differing counts the keys missing from the view, extra in it, or
	// whose numbers differ.
	Differing int    `json:"differing_rows"`
	First     string `json:"first_difference,omitempty"`
	Error     string `json:"error,omitempty"` // the view could not be read
}

// Equal reports whether the view was read and equals the expected rows.
func (d ViewDiff) Equal() bool { return d.Error == "" && d.Differing == 0 }

// CoreViews compares each of the four core views of db with want and
// counts the differing rows by key, for systems whose views are not
// expected to be exact everywhere (the query-time peer): unlike Views, it
// reports how far they are off rather than failing.
func CoreViews(ctx context.Context, conn driver.Conn, db string, want *expected.Result) []ViewDiff {
	return []ViewDiff{
		diffRows(ctx, conn, "funnel_daily", want.Funnel, funnelQuery(db), funnelScan, nil,
			func(r expected.FunnelRow) string { return r.CohortDay + " " + r.Source }),
		diffRows(ctx, conn, "bounce_daily", want.Bounce, bounceQuery(db), bounceScan, nil,
			func(r expected.BounceRow) string { return r.Day + " " + r.Source }),
		diffRows(ctx, conn, "churn_monthly", want.Churn, churnQuery(db), churnScan, nil,
			func(r expected.ChurnRow) string { return r.Month }),
		diffRows(ctx, conn, "revenue_daily", want.Revenue, revenueQuery(db), revenueScan, revenueFix,
			func(r expected.RevenueRow) string { return r.Day + " " + r.Currency }),
	}
}

// diffRows reads a view and matches its rows with want by key.
func diffRows[T comparable](ctx context.Context, conn driver.Conn, view string, want []T, query string, scan func(*T) []any, fix func(*T, []any) error, key func(T) string) ViewDiff {
	d := ViewDiff{View: view, WantRows: len(want)}
	got, err := fetchRows(ctx, conn, query, scan, fix)
	if err != nil {
		d.Error = err.Error()
		return d
	}
	d.Rows = len(got)
	wantByKey := make(map[string]T, len(want))
	for _, r := range want {
		wantByKey[key(r)] = r
	}
	note := func(format string, args ...any) {
		d.Differing++
		if d.First == "" {
			d.First = fmt.Sprintf(format, args...)
		}
	}
	for _, r := range got {
		w, ok := wantByKey[key(r)]
		delete(wantByKey, key(r))
		switch {
		case !ok:
			note("extra row %+v", r)
		case w != r:
			note("got %+v, want %+v", r, w)
		}
	}
	for _, r := range want {
		if _, missing := wantByKey[key(r)]; missing {
			note("missing row %+v", r)
		}
	}
	return d
}
