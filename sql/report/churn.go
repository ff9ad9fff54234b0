package report

import (
	"fmt"
	"math"
	"time"
)

type churnView struct {
	Empty bool
	Axes  axes
	Bars  []churnBar
	Table htmlTable
}

type churnBar struct {
	X, Y, W, H, LabelX, LabelY   float64
	ShowLabel                    bool
	Month                        string
	Rate                         float64
	Active, Churned, Reactivated uint64
	RateText, Title              string
}

func buildChurn(d *Data) churnView {
	v := churnView{Axes: newAxes("churn rate"), Empty: len(d.churn) == 0}
	v.Table.Head = []string{"month", "active at start", "churned", "reactivated", "churn rate"}
	if v.Empty {
		return v
	}
	maxRate := 0.0
	for _, r := range d.churn {
		maxRate = math.Max(maxRate, r.rate)
	}
	top := v.Axes.yScale(maxRate, fmtPctShort)
	n := float64(len(d.churn))
	band := (v.Axes.R - v.Axes.L) / n
	every := int(math.Ceil(34 / band)) // x labels at least 34 units apart
	for i, r := range d.churn {
		x := v.Axes.L + band*float64(i)
		bar := churnBar{Month: r.month, Rate: r.rate, Active: r.active, Churned: r.churned, Reactivated: r.reactivated}
		bar.W = band * 0.72
		bar.X = x + (band-bar.W)/2
		bar.Y = v.Axes.y(r.rate, top)
		bar.H = v.Axes.B - bar.Y
		bar.LabelX = x + band/2
		bar.LabelY = bar.Y - 4
		bar.ShowLabel = band >= 30
		bar.RateText = fmtPctShort(r.rate)
		if r.rate > 0 && r.rate < 0.1 {
			bar.RateText = fmtPct(r.rate)
		}
		bar.Title = fmt.Sprintf("%s: churn rate %s (%s churned of %s active at the start; %s reactivated)", r.month[:7], fmtPct(r.rate), fmtInt(r.churned), fmtInt(r.active), fmtInt(r.reactivated))
		v.Bars = append(v.Bars, bar)
		if i%every == 0 {
			m := parseDay(r.month)
			t := tick{Pos: bar.LabelX, Label: m.Format("Jan")}
			if i == 0 || m.Month() <= time.Month(every) {
				t.Sub = m.Format("2006")
			}
			v.Axes.XTicks = append(v.Axes.XTicks, t)
		}
		v.Table.Rows = append(v.Table.Rows, []string{r.month[:7], fmtInt(r.active), fmtInt(r.churned), fmtInt(r.reactivated), fmtPct(r.rate)})
	}
	return v
}
