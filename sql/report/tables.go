package report

import (
	"context"
	"fmt"
	"io"
	"reflect"
	"text/tabwriter"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// The titles of the terminal tables (a test looks for them).
const (
	TitleFunnel  = "Lifecycle funnel"
	TitleBounce  = "Bounce rate by source"
	TitleChurn   = "Churn by month"
	TitleRevenue = "Revenue by currency"

	TitleTraffic      = "Traffic by source"
	TitleEntryPages   = "Top entry pages"
	TitleExitPages    = "Top exit pages"
	TitleSatisfaction = "NPS, CSAT and CES by month"
	TitleTrials       = "Free trial conversion by month"
	TitleRetention    = "Retention and repeat purchase by month"
	TitleCLV          = "Customer lifetime value by cohort"
)

// viewRange describes the days a (limited) view covers, for the titles.
func viewRange(ctx context.Context, conn driver.Conn, db, view, col string, days int, noun string) (string, error) {
	var from, to string
	var n uint64
	q := expandDB(fmt.Sprintf("SELECT toString(min(%s)), toString(max(%s)), count() FROM {db}.%s%s", col, col, view, dayWhere(view, col, days)), db)
	if err := conn.QueryRow(ctx, q).Scan(&from, &to, &n); err != nil {
		return "", fmt.Errorf("cannot query %s: %w", view, err)
	}
	if n == 0 {
		return "no rows", nil
	}
	if from == to {
		return fmt.Sprintf("%s %s", noun, from), nil
	}
	return fmt.Sprintf("%ss %s .. %s", noun, from, to), nil
}

// PrintTables prints the views as terminal tables, each titled with the
// view and the days it covers; days limits the day-level views as in Load.
func PrintTables(ctx context.Context, w io.Writer, conn driver.Conn, db string, days int) error {
	ranges := map[string]string{}
	for _, v := range []struct{ view, col, noun string }{
		{"funnel_daily", "cohort_day", "cohort day"}, {"bounce_daily", "day", "day"}, {"revenue_daily", "day", "day"},
		{"traffic_daily", "day", "day"}, {"pages_daily", "day", "day"},
	} {
		r, err := viewRange(ctx, conn, db, v.view, v.col, days, v.noun)
		if err != nil {
			return err
		}
		ranges[v.view] = r
	}
	funnelRange, bounceRange, revenueRange := ranges["funnel_daily"], ranges["bounce_daily"], ranges["revenue_daily"]
	trafficRange, pagesRange := ranges["traffic_daily"], ranges["pages_daily"]
	lastDays := 7
	if days > 0 && days < lastDays {
		lastDays = days
	}
	fw, bw, rw := dayWhere("funnel_daily", "cohort_day", days), dayWhere("bounce_daily", "day", days), dayWhere("revenue_daily", "day", days)
	tables := []struct{ title, sql string }{
		{TitleFunnel + ", all sources (funnel_daily; " + funnelRange + ")",
			`SELECT sum(awareness) AS awareness, sum(acquisition) AS acquisition, sum(conversion) AS conversion,
       sum(retention) AS retention, sum(advocacy) AS advocacy,
       round(if(awareness = 0, 0, acquisition / awareness), 3) AS acq_rate,
       round(if(acquisition = 0, 0, conversion / acquisition), 3) AS conv_rate,
       round(if(conversion = 0, 0, retention / conversion), 3) AS ret_rate,
       round(if(retention = 0, 0, advocacy / retention), 3) AS adv_rate
FROM {db}.funnel_daily` + fw},
		{reportTitle(TitleFunnel+" by first-touch source", "funnel_daily", funnelRange, "top 10 sources by awareness"),
			`SELECT source, sum(awareness) AS awareness, sum(acquisition) AS acquisition, sum(conversion) AS conversion,
       sum(retention) AS retention, sum(advocacy) AS advocacy,
       round(if(awareness = 0, 0, acquisition / awareness), 3) AS acq_rate,
       round(if(acquisition = 0, 0, conversion / acquisition), 3) AS conv_rate
FROM {db}.funnel_daily` + fw + ` GROUP BY source ORDER BY awareness DESC, source LIMIT 10`},
		{reportTitle(TitleBounce, "bounce_daily", bounceRange, "top 10 sources by sessions"),
			`SELECT source, sum(sessions) AS sessions, sum(bounces) AS bounces, round(if(sessions = 0, 0, bounces / sessions), 3) AS bounce_rate
FROM {db}.bounce_daily` + bw + ` GROUP BY source ORDER BY sessions DESC, source LIMIT 10`},
		{TitleChurn + " (churn_monthly; every month)",
			`SELECT toString(month) AS month, active_at_start, churned, reactivated, round(churn_rate, 3) AS churn_rate
FROM {db}.churn_monthly ORDER BY month`},
		{reportTitle(TitleRevenue, "revenue_daily", revenueRange, ""),
			`SELECT currency, count() AS days, sum(orders) AS orders, toString(sum(revenue)) AS revenue, toString(sum(refunds)) AS refunds,
       toString(sum(net_revenue)) AS net_revenue
FROM {db}.revenue_daily` + rw + ` GROUP BY currency ORDER BY currency`},
		{fmt.Sprintf("Revenue by day, last %d days (revenue_daily)", lastDays),
			`SELECT toString(day) AS date, currency, orders, toString(revenue) AS revenue, toString(refunds) AS refunds,
       toString(net_revenue) AS net_revenue, customers
FROM {db}.revenue_daily` + dayWhere("revenue_daily", "day", lastDays) + ` ORDER BY day, currency`},
	}
	tw, pw := dayWhere("traffic_daily", "day", days), dayWhere("pages_daily", "day", days)
	tables = append(tables, []struct{ title, sql string }{
		{reportTitle(TitleTraffic, "traffic_daily", trafficRange, "new and returning visitors per day"),
			`SELECT source, sum(sessions) AS sessions, sum(new_visitors) AS new_visitors, sum(returning_visitors) AS returning_visitors,
       sum(page_views) AS page_views, round(if(sessions = 0, 0, page_views / sessions), 2) AS pages_per_session
FROM {db}.traffic_daily` + tw + ` GROUP BY source ORDER BY sessions DESC, source LIMIT 10`},
		{reportTitle(TitleEntryPages, "pages_daily", pagesRange, "top 10 by entries"),
			`SELECT page, sum(entries) AS entries, sum(bounces) AS bounces, round(if(entries = 0, 0, bounces / entries), 3) AS bounce_rate
FROM {db}.pages_daily` + pw + ` GROUP BY page HAVING entries > 0 ORDER BY entries DESC, page LIMIT 10`},
		{reportTitle(TitleExitPages, "pages_daily", pagesRange, "top 10 by exits"),
			`SELECT page, sum(exits) AS exits, sum(page_views) AS page_views, round(if(page_views = 0, 0, exits / page_views), 3) AS exit_rate
FROM {db}.pages_daily` + pw + ` GROUP BY page HAVING exits > 0 ORDER BY exits DESC, page LIMIT 10`},
		{TitleSatisfaction + " (satisfaction_monthly; every month)",
			`SELECT toString(month) AS month, nps_responses, round(nps, 1) AS nps, csat_responses, round(csat, 1) AS csat,
       ces_responses, round(ces_avg, 2) AS ces, reviews, round(avg_rating, 2) AS avg_rating, referrals
FROM {db}.satisfaction_monthly ORDER BY month`},
		{TitleTrials + " (trial_conversion_monthly; every month)",
			`SELECT toString(month) AS month, trials, converted, round(trial_conversion_rate, 3) AS rate
FROM {db}.trial_conversion_monthly ORDER BY month`},
		{TitleRetention + " (retention_monthly; every month)",
			`SELECT toString(month) AS month, customers_at_start, new_customers, customers_at_end, round(retention_rate, 3) AS retention_rate,
       customers, repeat_customers, round(repeat_purchase_rate, 3) AS repeat_purchase_rate
FROM {db}.retention_monthly ORDER BY month`},
		{TitleCLV + " (clv_cohort_monthly; each cohort's latest month)",
			`SELECT toString(cohort_month) AS cohort, currency, any(cohort_customers) AS customers, max(month_offset) AS last_offset,
       toString(argMax(clv, month_offset)) AS clv, toString(argMax(cumulative_net_revenue, month_offset)) AS cumulative_net_revenue
FROM {db}.clv_cohort_monthly GROUP BY cohort_month, currency ORDER BY cohort_month, currency`},
	}...)
	fmt.Fprintf(w, "funnelhouse report: database %s\n", db)
	for _, t := range tables {
		fmt.Fprintf(w, "\n%s\n", t.title)
		if err := printQuery(ctx, w, conn, expandDB(t.sql, db)); err != nil {
			return fmt.Errorf("cannot query %q: %w", t.title, err)
		}
	}
	return nil
}

func reportTitle(title, view, rng, extra string) string {
	s := title + " (" + view + "; " + rng
	if extra != "" && rng != "no rows" {
		s += "; " + extra
	}
	return s + ")"
}

// summaryQueries are what the demo prints: each view rolled up so that it
// fits a terminal. The SQL is shown with each table, so a reader can run it.
var summaryQueries = []struct{ title, sql string }{
	{"Lifecycle funnel by first-touch source (funnel_daily, all cohorts)", `SELECT source, sum(awareness) AS awareness, sum(acquisition) AS acquisition, sum(conversion) AS conversion,
       sum(retention) AS retention, sum(advocacy) AS advocacy,
       round(if(awareness = 0, 0, acquisition / awareness), 3) AS acq_rate,
       round(if(acquisition = 0, 0, conversion / acquisition), 3) AS conv_rate
FROM {db}.funnel_daily GROUP BY source ORDER BY awareness DESC LIMIT 10`},
	{"Bounce rate by source (bounce_daily, all days)", `SELECT source, sum(sessions) AS sessions, sum(bounces) AS bounces, round(bounces / sessions, 3) AS bounce_rate
FROM {db}.bounce_daily GROUP BY source ORDER BY sessions DESC LIMIT 10`},
	{"Churn by month (churn_monthly)", `SELECT toString(month) AS month, active_at_start, churned, reactivated, round(churn_rate, 3) AS churn_rate
FROM {db}.churn_monthly ORDER BY month`},
	{"Revenue by currency (revenue_daily, all days)", `SELECT currency, sum(orders) AS orders, toString(sum(revenue)) AS revenue, toString(sum(refunds)) AS refunds,
       toString(sum(net_revenue)) AS net_revenue
FROM {db}.revenue_daily GROUP BY currency ORDER BY currency`},
}

// PrintSummary prints the tables the demo shows: each view rolled up.
func PrintSummary(ctx context.Context, w io.Writer, conn driver.Conn, db string) error {
	for _, q := range summaryQueries {
		fmt.Fprintf(w, "\n%s\n", q.title)
		if err := printQuery(ctx, w, conn, expandDB(q.sql, db)); err != nil {
			return fmt.Errorf("cannot query %q: %w", q.title, err)
		}
	}
	return nil
}

// printQuery prints a query's result as an aligned table.
func printQuery(ctx context.Context, w io.Writer, conn driver.Conn, sql string) error {
	rows, err := conn.Query(ctx, sql)
	if err != nil {
		return err
	}
	defer rows.Close()
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	cols := rows.Columns()
	for _, c := range cols {
		fmt.Fprintf(tw, "%s\t", c)
	}
	fmt.Fprintln(tw)
	types := rows.ColumnTypes()
	for rows.Next() {
		dest := make([]any, len(cols))
		for i, t := range types {
			dest[i] = newScanValue(t.ScanType())
		}
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		for _, d := range dest {
			fmt.Fprintf(tw, "%v\t", deref(d))
		}
		fmt.Fprintln(tw)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return tw.Flush()
}

// newScanValue and deref let printQuery scan columns of any type.
func newScanValue(t reflect.Type) any { return reflect.New(t).Interface() }

func deref(p any) any { return reflect.ValueOf(p).Elem().Interface() }
