// Package reporttest checks a rendered report page against the numbers of
// the views, for the report's own tests and the command's end-to-end test
// (which renders the page in headless Chromium too). The expected numbers
// come from SQL written here, not from the report's queries, so that a
// mistake in those shows.
package reporttest

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/shopspring/decimal"
)

// Stages are the funnel's stages in order.
var Stages = [5]string{"awareness", "acquisition", "conversion", "retention", "advocacy"}

// Truth is what the views say.
type Truth struct {
	Funnel            [5]uint64
	Churn             []Churn
	Revenue           map[string]decimal.Decimal // currency → sum(revenue)
	RevenueRows       int
	RevenueDays       map[string]bool
	Sessions, Bounces uint64
	BounceDays        map[string]bool
	Catalogue         Catalogue
}

// Churn is a row of churn_monthly.
type Churn struct {
	Month                        string
	Active, Churned, Reactivated uint64
	Rate                         float64
}

// Query reads the Truth of database db, the day-level views limited to their
// last days days when days > 0, as the report's --days does.
func Query(t testing.TB, ctx context.Context, conn driver.Conn, db string, days int) Truth {
	t.Helper()
	w := Truth{Revenue: map[string]decimal.Decimal{}, RevenueDays: map[string]bool{}, BounceDays: map[string]bool{}}
	if err := conn.QueryRow(ctx, lastDays(`SELECT toUInt64(sum(awareness)), toUInt64(sum(acquisition)), toUInt64(sum(conversion)), toUInt64(sum(retention)), toUInt64(sum(advocacy))
FROM {db}.funnel_daily`, "cohort_day", db, days)).Scan(&w.Funnel[0], &w.Funnel[1], &w.Funnel[2], &w.Funnel[3], &w.Funnel[4]); err != nil {
		t.Fatal(err)
	}
	scanAll(t, ctx, conn, "SELECT toString(month), toUInt64(active_at_start), toUInt64(churned), toUInt64(reactivated), churn_rate FROM "+db+".churn_monthly ORDER BY month",
		func(scan func(...any) error) error {
			var r Churn
			err := scan(&r.Month, &r.Active, &r.Churned, &r.Reactivated, &r.Rate)
			w.Churn = append(w.Churn, r)
			return err
		})
	scanAll(t, ctx, conn, lastDays("SELECT toString(day), currency, toString(revenue) FROM {db}.revenue_daily", "day", db, days),
		func(scan func(...any) error) error {
			var day, cur, rev string
			if err := scan(&day, &cur, &rev); err != nil {
				return err
			}
			d, err := decimal.NewFromString(rev)
			w.Revenue[cur] = w.Revenue[cur].Add(d)
			w.RevenueRows++
			w.RevenueDays[day] = true
			return err
		})
	scanAll(t, ctx, conn, lastDays("SELECT toString(day), toUInt64(sum(sessions)), toUInt64(sum(bounces)) FROM {db}.bounce_daily", "day", db, days)+" GROUP BY day",
		func(scan func(...any) error) error {
			var day string
			var s, b uint64
			err := scan(&day, &s, &b)
			w.Sessions += s
			w.Bounces += b
			w.BounceDays[day] = true
			return err
		})
	w.Catalogue = queryCatalogue(t, ctx, conn, db, days)
	return w
}

// lastDays names the database in query and, when days > 0, keeps the rows
// whose col is within days days of the view's latest.
func lastDays(query, col, db string, days int) string {
	if days > 0 {
		view := query[strings.LastIndex(query, "{db}.")+len("{db}."):]
		query += fmt.Sprintf(" WHERE %s > (SELECT max(%s) FROM {db}.%s) - %d", col, col, view, days)
	}
	return strings.ReplaceAll(query, "{db}", db)
}

func scanAll(t testing.TB, ctx context.Context, conn driver.Conn, query string, row func(scan func(...any) error) error) {
	t.Helper()
	rows, err := conn.Query(ctx, query)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := row(rows.Scan); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}
