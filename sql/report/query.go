package report

import (
	"context"
	"fmt"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/shopspring/decimal"
)

// views are the views the report reads, defined by the sql migrations.
var views = []string{"funnel_daily", "bounce_daily", "churn_monthly", "revenue_daily",
	"traffic_daily", "pages_daily", "satisfaction_monthly", "trial_conversion_monthly", "retention_monthly", "clv_cohort_monthly"}

// CheckViews says plainly when the database was never migrated.
func CheckViews(ctx context.Context, conn driver.Conn, db string) error {
	rows, err := conn.Query(ctx, "SELECT name FROM system.tables WHERE database = ? AND name IN ('"+strings.Join(views, "', '")+"')", db)
	if err != nil {
		return err
	}
	defer rows.Close()
	have := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return err
		}
		have[n] = true
	}
	if err := rows.Err(); err != nil {
		return err
	}
	var missing []string
	for _, v := range views {
		if !have[v] {
			missing = append(missing, v)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("database %s has no %s: run `funnelhouse migrate` (and `funnelhouse run`) against it first", db, strings.Join(missing, ", "))
	}
	return nil
}

// dayWhere limits a view to the last days days up to its latest day.
func dayWhere(view, col string, days int) string {
	if days <= 0 {
		return ""
	}
	return fmt.Sprintf(" WHERE %s > (SELECT max(%s) FROM {db}.%s) - %d", col, col, view, days)
}

// Data is what the page shows, as queried from the views.
type Data struct {
	db          string
	days        int
	funnel      [5]uint64 // awareness .. advocacy
	funnelRows  uint64
	funnelRange [2]string
	funnelSrc   []funnelSourceRow // the sources with the most awareness
	bounce      []bounceRow       // daily, ordered by day, source
	churn       []churnRow
	revenue     []revenueRow // ordered by day, currency

	// The lifecycle catalogue (SPEC §6.1), one section per stage.
	traffic      []trafficRow // by source, most sessions first
	trafficRange [2]string
	entryPages   []pageRow // top entry pages
	exitPages    []pageRow // top exit pages
	pagesRange   [2]string
	satisfaction []satisfactionRow // by month
	trials       []trialRow        // by month
	retention    []retentionRow    // by month
	clv          []clvRow          // one currency's rows, by cohort and offset
	clvCurrency  string
}

type funnelSourceRow struct {
	source string
	stages [5]uint64
}

// funnelSources is how many sources the funnel's by-source table shows.
const funnelSources = 8

type bounceRow struct {
	day               string
	source            string
	sessions, bounces uint64
}

type churnRow struct {
	month                        string
	active, churned, reactivated uint64
	rate                         float64
}

type revenueRow struct {
	day, currency            string
	orders, customers        uint64
	revenue, refunds, netRev decimal.Decimal
}

var funnelStages = [5]string{"awareness", "acquisition", "conversion", "retention", "advocacy"}

// Load queries the views; days > 0 limits the day-level views to their last
// days days (churn_monthly is always whole).
func Load(ctx context.Context, conn driver.Conn, db string, days int) (*Data, error) {
	d := &Data{db: db, days: days}
	for _, load := range []func(context.Context, driver.Conn) error{d.loadFunnel, d.loadBounce, d.loadChurn, d.loadRevenue,
		d.loadTraffic, d.loadPages, d.loadSatisfaction, d.loadTrials, d.loadRetention, d.loadCLV} {
		if err := load(ctx, conn); err != nil {
			return nil, err
		}
	}
	return d, nil
}

func (d *Data) loadFunnel(ctx context.Context, conn driver.Conn) error {
	fw := dayWhere("funnel_daily", "cohort_day", d.days)
	var from, to string
	err := conn.QueryRow(ctx, expandDB(`SELECT toUInt64(sum(awareness)), toUInt64(sum(acquisition)), toUInt64(sum(conversion)),
       toUInt64(sum(retention)), toUInt64(sum(advocacy)), count(), toString(min(cohort_day)), toString(max(cohort_day))
FROM {db}.funnel_daily`+fw, d.db)).Scan(&d.funnel[0], &d.funnel[1], &d.funnel[2], &d.funnel[3], &d.funnel[4], &d.funnelRows, &from, &to)
	if err != nil {
		return fmt.Errorf("cannot query funnel_daily: %w", err)
	}
	if d.funnelRows > 0 {
		d.funnelRange = [2]string{from, to}
	}
	q := fmt.Sprintf(`SELECT source, toUInt64(sum(awareness)) AS aw, toUInt64(sum(acquisition)), toUInt64(sum(conversion)),
       toUInt64(sum(retention)), toUInt64(sum(advocacy))
FROM {db}.funnel_daily%s GROUP BY source ORDER BY aw DESC, source LIMIT %d`, fw, funnelSources)
	return loadRows(ctx, conn, expandDB(q, d.db), "funnel_daily by source", &d.funnelSrc, func(r *funnelSourceRow, scan func(...any) error) error {
		return scan(&r.source, &r.stages[0], &r.stages[1], &r.stages[2], &r.stages[3], &r.stages[4])
	})
}

func (d *Data) loadBounce(ctx context.Context, conn driver.Conn) error {
	q := `SELECT toString(day), source, toUInt64(sessions), toUInt64(bounces) FROM {db}.bounce_daily` +
		dayWhere("bounce_daily", "day", d.days) + ` ORDER BY day, source`
	return loadRows(ctx, conn, expandDB(q, d.db), "bounce_daily", &d.bounce, func(r *bounceRow, scan func(...any) error) error {
		return scan(&r.day, &r.source, &r.sessions, &r.bounces)
	})
}

func (d *Data) loadChurn(ctx context.Context, conn driver.Conn) error {
	q := `SELECT toString(month), toUInt64(active_at_start), toUInt64(churned), toUInt64(reactivated), toFloat64(churn_rate)
FROM {db}.churn_monthly ORDER BY month`
	return loadRows(ctx, conn, expandDB(q, d.db), "churn_monthly", &d.churn, func(r *churnRow, scan func(...any) error) error {
		return scan(&r.month, &r.active, &r.churned, &r.reactivated, &r.rate)
	})
}

// loadRevenue reads the money as text: decimal keeps every cent that a
// float64 could round away.
func (d *Data) loadRevenue(ctx context.Context, conn driver.Conn) error {
	q := `SELECT toString(day), currency, toUInt64(orders), toString(revenue), toString(refunds), toString(net_revenue), toUInt64(customers)
FROM {db}.revenue_daily` + dayWhere("revenue_daily", "day", d.days) + ` ORDER BY day, currency`
	return loadRows(ctx, conn, expandDB(q, d.db), "revenue_daily", &d.revenue, func(r *revenueRow, scan func(...any) error) error {
		var rev, ref, net string
		if err := scan(&r.day, &r.currency, &r.orders, &rev, &ref, &net, &r.customers); err != nil {
			return err
		}
		var err error
		if r.revenue, err = decimal.NewFromString(rev); err != nil {
			return err
		}
		if r.refunds, err = decimal.NewFromString(ref); err != nil {
			return err
		}
		r.netRev, err = decimal.NewFromString(net)
		return err
	})
}

// loadRows appends a row to *rows for every row of the query's result, read
// by scan; what names the query in the error.
func loadRows[R any](ctx context.Context, conn driver.Conn, query, what string, rows *[]R, scan func(r *R, scan func(...any) error) error) error {
	res, err := conn.Query(ctx, query)
	if err != nil {
		return fmt.Errorf("cannot query %s: %w", what, err)
	}
	defer res.Close()
	for res.Next() {
		var r R
		if err := scan(&r, res.Scan); err != nil {
			return fmt.Errorf("cannot query %s: %w", what, err)
		}
		*rows = append(*rows, r)
	}
	if err := res.Err(); err != nil {
		return fmt.Errorf("cannot query %s: %w", what, err)
	}
	return nil
}

// expandDB names the database in a query written with {db}.
func expandDB(sql, db string) string { return strings.ReplaceAll(sql, "{db}", db) }

// loadDayRange reads the first and last day of a day-level view as limited
// by --days ({"", ""} when it has no rows).
func (d *Data) loadDayRange(ctx context.Context, conn driver.Conn, view string) ([2]string, error) {
	var from, to string
	var n uint64
	q := expandDB("SELECT toString(min(day)), toString(max(day)), count() FROM {db}."+view+dayWhere(view, "day", d.days), d.db)
	if err := conn.QueryRow(ctx, q).Scan(&from, &to, &n); err != nil {
		return [2]string{}, fmt.Errorf("cannot query %s: %w", view, err)
	}
	if n == 0 {
		return [2]string{}, nil
	}
	return [2]string{from, to}, nil
}

// rangeText describes a loaded day range for a section's subtitle.
func rangeText(r [2]string) string {
	if r[0] == "" {
		return "no rows"
	}
	if r[0] == r[1] {
		return "day " + r[0]
	}
	return "days " + r[0] + " .. " + r[1]
}
