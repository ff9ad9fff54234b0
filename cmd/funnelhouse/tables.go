package main

import (
	"context"
	"fmt"
	"io"
	"reflect"
	"strings"
	"text/tabwriter"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

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

func printSummaryTables(ctx context.Context, w io.Writer, conn driver.Conn, db string) error {
	for _, q := range summaryQueries {
		fmt.Fprintf(w, "\n%s\n", q.title)
		if err := printQuery(ctx, w, conn, expandDB(q.sql, db)); err != nil {
			return fmt.Errorf("cannot query %q: %w", q.title, err)
		}
	}
	return nil
}

func expandDB(sql, db string) string { return strings.ReplaceAll(sql, "{db}", db) }

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
