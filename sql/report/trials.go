package report

import (
	"context"
	"fmt"
	"math"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Conversion: the free-trial-to-paid rate by month of the first trial,
// from trial_conversion_monthly.

type trialRow struct {
	month             string
	trials, converted uint64
	rate              float64
}

type trialsView struct {
	Empty bool
	Axes  axes
	Bars  []trialBar
	Table htmlTable
}

type trialBar struct {
	X, Y, W, H, LabelX, LabelY float64
	ShowLabel                  bool
	Month                      string
	Trials, Converted          uint64
	Rate                       float64
	RateText, Title            string
}

func (d *Data) loadTrials(ctx context.Context, conn driver.Conn) error {
	q := `SELECT toString(month), toUInt64(trials), toUInt64(converted), toFloat64(trial_conversion_rate)
FROM {db}.trial_conversion_monthly ORDER BY month`
	return loadRows(ctx, conn, expandDB(q, d.db), "trial_conversion_monthly", &d.trials, func(r *trialRow, scan func(...any) error) error {
		return scan(&r.month, &r.trials, &r.converted, &r.rate)
	})
}

func buildTrials(d *Data) trialsView {
	v := trialsView{Axes: newAxes("trial conversion rate"), Empty: len(d.trials) == 0}
	v.Table.Head = []string{"month", "trials", "converted", "conversion rate"}
	if v.Empty {
		return v
	}
	maxRate := 0.0
	months := make([]string, len(d.trials))
	for i, r := range d.trials {
		maxRate = math.Max(maxRate, r.rate)
		months[i] = r.month
	}
	top := v.Axes.yScale(maxRate, fmtPctShort)
	sc := newOrdinalScale(v.Axes, len(d.trials))
	v.Axes.XTicks = monthTicks(sc, months)
	for i, r := range d.trials {
		b := trialBar{Month: r.month, Trials: r.trials, Converted: r.converted, Rate: r.rate}
		b.W = sc.band * 0.72
		b.X = sc.x(i) - b.W/2
		b.Y = v.Axes.y(r.rate, top)
		b.H = v.Axes.B - b.Y
		b.LabelX, b.LabelY = sc.x(i), b.Y-4
		b.ShowLabel = sc.band >= 30
		b.RateText = fmtPctShort(r.rate)
		b.Title = fmt.Sprintf("%s: %s of %s trials converted (%s)", r.month[:7], fmtInt(r.converted), fmtInt(r.trials), fmtPct(r.rate))
		v.Bars = append(v.Bars, b)
		v.Table.Rows = append(v.Table.Rows, []string{r.month[:7], fmtInt(r.trials), fmtInt(r.converted), fmtPct(r.rate)})
	}
	return v
}
