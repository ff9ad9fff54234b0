package verify

import (
	"context"
	"fmt"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/funnelhouse/funnelhouse/bench/expected"
	"github.com/funnelhouse/funnelhouse/schemas"
)

// Catalogue compares every row of the catalogue views (SPEC §6.1)
// and revenue_daily's avg_order_value with the expected computation, in
// the style of Views, which calls it.
func Catalogue(ctx context.Context, conn driver.Conn, db string, want *expected.Result) error {
	var problems []string
	check := func(what string, err error) {
		if err != nil {
			problems = append(problems, what+": "+err.Error())
		}
	}
	// amounts moves the Decimal columns, scanned as text at dest[from:],
	// into the row's Amounts.
	amounts := func(dest []any, from int, into ...*schemas.Amount) error {
		for i, a := range into {
			v, err := parseAmount(*dest[from+i].(*string))
			if err != nil {
				return err
			}
			*a = v
		}
		return nil
	}
	check("traffic_daily", compareRows(ctx, conn, want.Traffic,
		"SELECT toString(day), source, medium, sessions, visitors, new_visitors, returning_visitors, page_views, pages_per_session, avg_session_duration_s, bounce_rate FROM "+db+".traffic_daily ORDER BY day, source, medium",
		func(r *expected.TrafficRow) []any {
			return []any{&r.Day, &r.Source, &r.Medium, &r.Sessions, &r.Visitors, &r.NewVisitors, &r.ReturningVisitors, &r.PageViews, &r.PagesPerSession, &r.AvgSessionDuration, &r.BounceRate}
		}, nil))
	check("visitor_conversion_daily", compareRows(ctx, conn, want.VisitorConversion,
		"SELECT toString(day), visitor_type, sessions, converted_sessions, conversion_rate FROM "+db+".visitor_conversion_daily ORDER BY day, visitor_type",
		func(r *expected.VisitorConversionRow) []any {
			return []any{&r.Day, &r.VisitorType, &r.Sessions, &r.ConvertedSessions, &r.ConversionRate}
		}, nil))
	check("pages_daily", compareRows(ctx, conn, want.Pages,
		"SELECT toString(day), page, entries, exits, bounces, page_views, bounce_rate, exit_rate FROM "+db+".pages_daily ORDER BY day, page",
		func(r *expected.PageRow) []any {
			return []any{&r.Day, &r.Page, &r.Entries, &r.Exits, &r.Bounces, &r.PageViews, &r.BounceRate, &r.ExitRate}
		}, nil))
	check("satisfaction_monthly", compareRows(ctx, conn, want.Satisfaction,
		"SELECT toString(month), nps_responses, promoters, passives, detractors, nps, csat_responses, csat, csat_avg, ces_responses, ces_avg, reviews, avg_rating, referrals FROM "+db+".satisfaction_monthly ORDER BY month",
		func(r *expected.SatisfactionRow) []any {
			return []any{&r.Month, &r.NPSResponses, &r.Promoters, &r.Passives, &r.Detractors, &r.NPS, &r.CSATResponses, &r.CSAT, &r.CSATAvg, &r.CESResponses, &r.CESAvg, &r.Reviews, &r.AvgRating, &r.Referrals}
		}, nil))
	check("trial_conversion_monthly", compareRows(ctx, conn, want.Trials,
		"SELECT toString(month), trials, converted, trial_conversion_rate FROM "+db+".trial_conversion_monthly ORDER BY month",
		func(r *expected.TrialRow) []any {
			return []any{&r.Month, &r.Trials, &r.Converted, &r.TrialConversionRate}
		}, nil))
	check("revenue_daily.avg_order_value", compareRows(ctx, conn, want.AvgOrderValue,
		"SELECT toString(day), currency, toString(avg_order_value) FROM "+db+".revenue_daily ORDER BY day, currency",
		func(r *expected.AvgOrderValueRow) []any { return []any{&r.Day, &r.Currency, new(string)} },
		func(r *expected.AvgOrderValueRow, dest []any) error { return amounts(dest, 2, &r.AvgOrderValue) }))
	check("retention_monthly", compareRows(ctx, conn, want.Retention,
		"SELECT toString(month), customers_at_start, new_customers, customers_at_end, retention_rate, customers, repeat_customers, repeat_purchase_rate FROM "+db+".retention_monthly ORDER BY month",
		func(r *expected.RetentionRow) []any {
			return []any{&r.Month, &r.CustomersAtStart, &r.NewCustomers, &r.CustomersAtEnd, &r.RetentionRate, &r.Customers, &r.RepeatCustomers, &r.RepeatPurchaseRate}
		}, nil))
	check("clv_cohort_monthly", compareRows(ctx, conn, want.CLV,
		"SELECT toString(cohort_month), currency, month_offset, cohort_customers, ordering_customers, toString(net_revenue), toString(cumulative_net_revenue), toString(clv) FROM "+db+".clv_cohort_monthly ORDER BY cohort_month, currency, month_offset",
		func(r *expected.CLVRow) []any {
			return []any{&r.CohortMonth, &r.Currency, &r.MonthOffset, &r.CohortCustomers, &r.OrderingCustomers, new(string), new(string), new(string)}
		},
		func(r *expected.CLVRow, dest []any) error {
			return amounts(dest, 5, &r.NetRevenue, &r.CumulativeNetRevenue, &r.CLV)
		}))
	if len(problems) > 0 {
		return fmt.Errorf("%s", strings.Join(problems, "\n  "))
	}
	return nil
}
