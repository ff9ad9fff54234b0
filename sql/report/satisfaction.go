package report

import (
	"context"
	"fmt"
	"math"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Engagement and loyalty: NPS and CSAT (both on a -100..100 score axis)
// and CES (1..7) by month, from satisfaction_monthly.

type satisfactionRow struct {
	month                      string
	npsN, csatN, cesN, reviews uint64
	referrals                  uint64
	nps, csat, ces, rating     float64
}

type satisfactionView struct {
	Empty  bool
	Scores monthChart // NPS and CSAT
	Effort monthChart // CES
	Table  htmlTable
}

// monthChart is a line chart over months (or month offsets) whose dots
// carry one metric each.
type monthChart struct {
	Axes   axes
	Series []lineSeries[metricDot]
}

type metricDot struct {
	X, Y, R       float64
	Month, Metric string
	Value         float64
	Responses     uint64
	Title         string
}

func (d *Data) loadSatisfaction(ctx context.Context, conn driver.Conn) error {
	q := `SELECT toString(month), toUInt64(nps_responses), toFloat64(nps), toUInt64(csat_responses), toFloat64(csat),
       toUInt64(ces_responses), toFloat64(ces_avg), toUInt64(reviews), toFloat64(avg_rating), toUInt64(referrals)
FROM {db}.satisfaction_monthly ORDER BY month`
	return loadRows(ctx, conn, expandDB(q, d.db), "satisfaction_monthly", &d.satisfaction, func(r *satisfactionRow, scan func(...any) error) error {
		return scan(&r.month, &r.npsN, &r.nps, &r.csatN, &r.csat, &r.cesN, &r.ces, &r.reviews, &r.rating, &r.referrals)
	})
}

// metricLine is one metric of monthly rows: its value and count per month
// (ok false: no point that month).
type metricLine struct {
	name, class string
	at          func(i int) (v float64, n uint64, ok bool)
}

// buildMonthChart draws lines over the labelled months, y fitted to
// [lo, hi] with label.
func buildMonthChart(yTitle string, months []string, lo, hi float64, label func(float64) string, lines []metricLine, title func(month, metric string, v float64, n uint64) string) monthChart {
	c := monthChart{Axes: newAxes(yTitle)}
	if len(months) == 0 {
		c.Axes.yScale(0, label)
		return c
	}
	y := c.Axes.rangeScale(lo, hi, label)
	sc := newOrdinalScale(c.Axes, len(months))
	c.Axes.XTicks = monthTicks(sc, months)
	r := dotRadius(len(months))
	for _, l := range lines {
		s := lineSeries[metricDot]{Name: l.name, Class: l.class}
		xs, ys := make([]float64, len(months)), make([]float64, len(months))
		for i, m := range months {
			xs[i], ys[i] = sc.x(i), math.NaN()
			v, n, ok := l.at(i)
			if !ok {
				continue
			}
			ys[i] = y(v)
			s.Dots = append(s.Dots, metricDot{X: xs[i], Y: ys[i], R: r, Month: m, Metric: l.name, Value: v, Responses: n, Title: title(m, l.name, v, n)})
		}
		s.Path = polyline(xs, ys)
		c.Series = append(c.Series, s)
	}
	return c
}

func buildSatisfaction(d *Data) satisfactionView {
	v := satisfactionView{Empty: len(d.satisfaction) == 0}
	v.Table.Head = []string{"month", "NPS", "responses", "CSAT", "responses", "CES", "responses", "reviews", "avg rating", "referrals"}
	months := make([]string, len(d.satisfaction))
	lo, hi := 0.0, 100.0
	for i, r := range d.satisfaction {
		months[i] = r.month
		if r.npsN > 0 {
			lo = math.Min(lo, r.nps)
		}
		v.Table.Rows = append(v.Table.Rows, []string{r.month[:7], fmtNum(r.nps), fmtInt(r.npsN), fmtNum(r.csat), fmtInt(r.csatN),
			fmtNum(r.ces), fmtInt(r.cesN), fmtInt(r.reviews), fmtNum(r.rating), fmtInt(r.referrals)})
	}
	row := func(i int) satisfactionRow { return d.satisfaction[i] }
	title := func(month, metric string, v float64, n uint64) string {
		return fmt.Sprintf("%s: %s %s from %s responses", month[:7], metric, fmtNum(v), fmtInt(n))
	}
	v.Scores = buildMonthChart("score", months, lo, hi, fmtNum, []metricLine{
		{"NPS", "c0", func(i int) (float64, uint64, bool) { return row(i).nps, row(i).npsN, row(i).npsN > 0 }},
		{"CSAT", "c1", func(i int) (float64, uint64, bool) { return row(i).csat, row(i).csatN, row(i).csatN > 0 }},
	}, title)
	v.Effort = buildMonthChart("CES (1-7)", months, 0, 7, fmtNum, []metricLine{
		{"CES", "c2", func(i int) (float64, uint64, bool) { return row(i).ces, row(i).cesN, row(i).cesN > 0 }},
	}, title)
	return v
}
