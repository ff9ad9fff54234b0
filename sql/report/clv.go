package report

import (
	"context"
	"fmt"
	"math"
	"strconv"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/shopspring/decimal"
)

// Loyalty: customer lifetime value curves, one line per cohort month,
// month_offset on the x axis, from clv_cohort_monthly in one currency (the
// one with the most rows: amounts in different currencies are never
// mixed).

type clvRow struct {
	cohort    string
	offset    uint64
	customers uint64
	clv, cum  decimal.Decimal
}

type clvView struct {
	Currency string
	Empty    bool
	Axes     axes
	Series   []lineSeries[clvDot]
	Table    htmlTable
}

type clvDot struct {
	X, Y, R          float64
	Cohort, Currency string
	Offset           uint64
	Customers        uint64
	CLV              string
	Title            string
}

func (d *Data) loadCLV(ctx context.Context, conn driver.Conn) error {
	var currencies []string
	err := loadRows(ctx, conn, expandDB(`SELECT currency FROM {db}.clv_cohort_monthly GROUP BY currency ORDER BY count() DESC, currency LIMIT 1`, d.db),
		"clv_cohort_monthly currencies", &currencies, func(c *string, scan func(...any) error) error { return scan(c) })
	if err != nil || len(currencies) == 0 {
		return err // no rows: no currency, no curves
	}
	d.clvCurrency = currencies[0]
	q := `SELECT toString(cohort_month), toUInt64(month_offset), toUInt64(cohort_customers), toString(clv), toString(cumulative_net_revenue)
FROM {db}.clv_cohort_monthly WHERE currency = ? ORDER BY cohort_month, month_offset`
	res, err := conn.Query(ctx, expandDB(q, d.db), d.clvCurrency)
	if err != nil {
		return fmt.Errorf("cannot query clv_cohort_monthly: %w", err)
	}
	defer res.Close()
	for res.Next() {
		var r clvRow
		var clv, cum string
		if err := res.Scan(&r.cohort, &r.offset, &r.customers, &clv, &cum); err != nil {
			return fmt.Errorf("cannot query clv_cohort_monthly: %w", err)
		}
		if r.clv, err = decimal.NewFromString(clv); err != nil {
			return fmt.Errorf("cannot query clv_cohort_monthly: %w", err)
		}
		if r.cum, err = decimal.NewFromString(cum); err != nil {
			return fmt.Errorf("cannot query clv_cohort_monthly: %w", err)
		}
		d.clv = append(d.clv, r)
	}
	return res.Err()
}

func buildCLV(d *Data) clvView {
	v := clvView{Axes: newAxes("CLV (" + d.clvCurrency + ")"), Currency: d.clvCurrency, Empty: len(d.clv) == 0}
	v.Table.Head = []string{"cohort", "customers", "months", "CLV at the last month", "cumulative net revenue"}
	if v.Empty {
		v.Axes.yScale(0, fmtCompact)
		return v
	}
	var maxOffset uint64
	lo, hi := 0.0, 0.0
	var cohorts []string
	byCohort := map[string][]clvRow{}
	for _, r := range d.clv {
		if _, ok := byCohort[r.cohort]; !ok {
			cohorts = append(cohorts, r.cohort)
		}
		byCohort[r.cohort] = append(byCohort[r.cohort], r)
		maxOffset = max(maxOffset, r.offset)
		f := r.clv.InexactFloat64()
		lo, hi = math.Min(lo, f), math.Max(hi, f)
	}
	y := v.Axes.rangeScale(lo, hi, fmtCompact)
	labels := make([]string, maxOffset+1)
	for i := range labels {
		labels[i] = strconv.Itoa(i)
	}
	sc := newOrdinalScale(v.Axes, len(labels))
	v.Axes.XTicks = ordinalTicks(sc, labels, func(i, _ int) string {
		if i == 0 {
			return "month offset"
		}
		return ""
	})
	r := dotRadius(len(labels))
	for i, c := range cohorts {
		s := lineSeries[clvDot]{Name: c[:7], Class: seriesClasses[i%MaxSources]}
		var xs, ys []float64
		for _, row := range byCohort[c] {
			x, yy := sc.x(int(row.offset)), y(row.clv.InexactFloat64())
			xs, ys = append(xs, x), append(ys, yy)
			s.Dots = append(s.Dots, clvDot{X: x, Y: yy, R: r, Cohort: c, Currency: d.clvCurrency, Offset: row.offset, Customers: row.customers, CLV: row.clv.String(),
				Title: fmt.Sprintf("cohort %s, month %d: CLV %s %s (%s customers)", c[:7], row.offset, fmtMoney(row.clv), d.clvCurrency, fmtInt(row.customers))})
		}
		s.Path = polyline(xs, ys)
		v.Series = append(v.Series, s)
		last := byCohort[c][len(byCohort[c])-1]
		v.Table.Rows = append(v.Table.Rows, []string{c[:7], fmtInt(last.customers), fmtInt(last.offset + 1), fmtMoney(last.clv), fmtMoney(last.cum)})
	}
	return v
}
