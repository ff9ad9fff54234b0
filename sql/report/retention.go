package report

import (
	"context"
	"fmt"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Retention: the customer retention rate ((E - N) / S) and the repeat
// purchase rate by month, from retention_monthly.

type retentionRow struct {
	month                                string
	start, newC, end, customers, repeatC uint64
	retention, repeat                    float64
}

type retentionView struct {
	Empty bool
	Chart monthChart
	Table htmlTable
}

func (d *Data) loadRetention(ctx context.Context, conn driver.Conn) error {
	q := `SELECT toString(month), toUInt64(customers_at_start), toUInt64(new_customers), toUInt64(customers_at_end), toFloat64(retention_rate),
       toUInt64(customers), toUInt64(repeat_customers), toFloat64(repeat_purchase_rate)
FROM {db}.retention_monthly ORDER BY month`
	return loadRows(ctx, conn, expandDB(q, d.db), "retention_monthly", &d.retention, func(r *retentionRow, scan func(...any) error) error {
		return scan(&r.month, &r.start, &r.newC, &r.end, &r.retention, &r.customers, &r.repeatC, &r.repeat)
	})
}

func buildRetention(d *Data) retentionView {
	v := retentionView{Empty: len(d.retention) == 0}
	v.Table.Head = []string{"month", "customers at start", "new", "at end", "retention rate", "customers", "repeat customers", "repeat purchase rate"}
	months := make([]string, len(d.retention))
	lo, hi := 0.0, 1.0
	for i, r := range d.retention {
		months[i] = r.month
		lo, hi = min(lo, r.retention, r.repeat), max(hi, r.retention, r.repeat)
		v.Table.Rows = append(v.Table.Rows, []string{r.month[:7], fmtInt(r.start), fmtInt(r.newC), fmtInt(r.end), fmtPct(r.retention),
			fmtInt(r.customers), fmtInt(r.repeatC), fmtPct(r.repeat)})
	}
	row := func(i int) retentionRow { return d.retention[i] }
	v.Chart = buildMonthChart("rate", months, lo, hi, fmtPctShort, []metricLine{
		{"retention", "c0", func(i int) (float64, uint64, bool) { return row(i).retention, row(i).start, true }},
		{"repeat purchase", "c1", func(i int) (float64, uint64, bool) { return row(i).repeat, row(i).customers, true }},
	}, func(month, metric string, v float64, n uint64) string {
		return fmt.Sprintf("%s: %s rate %s (of %s customers)", month[:7], metric, fmtPct(v), fmtInt(n))
	})
	return v
}
