package report

import (
	"fmt"
	"math"
	"strings"
)

// ordinalScale maps the i-th of n categories (months, month offsets) to x,
// each in the middle of its band.
type ordinalScale struct {
	l, band float64
}

func newOrdinalScale(a axes, n int) ordinalScale {
	if n < 1 {
		n = 1
	}
	return ordinalScale{l: a.L, band: (a.R - a.L) / float64(n)}
}

func (s ordinalScale) x(i int) float64 { return s.l + s.band*(float64(i)+0.5) }

// ordinalTicks labels every category while they are at least 34 units
// apart, else every k-th; sub gives a second line (the year) or "".
func ordinalTicks(s ordinalScale, labels []string, sub func(i, every int) string) []tick {
	every := int(math.Ceil(34 / s.band))
	if every < 1 {
		every = 1
	}
	var ts []tick
	for i, l := range labels {
		if i%every == 0 {
			ts = append(ts, tick{Pos: s.x(i), Label: l, Sub: sub(i, every)})
		}
	}
	return ts
}

// monthLabels are the ticks of a month axis: "Jan", with the year under
// the first and under each January shown.
func monthTicks(s ordinalScale, months []string) []tick {
	labels := make([]string, len(months))
	for i, m := range months {
		labels[i] = parseDay(m).Format("Jan")
	}
	return ordinalTicks(s, labels, func(i, every int) string {
		if m := parseDay(months[i]); i == 0 || int(m.Month()) <= every {
			return m.Format("2006")
		}
		return ""
	})
}

// rangeScale fits [lo, hi] (lo <= 0 <= hi) to nice ticks labelled by label
// and returns y for a value; it replaces a.YTicks.
func (a *axes) rangeScale(lo, hi float64, label func(float64) string) func(float64) float64 {
	lo, hi = math.Min(lo, 0), math.Max(hi, 0)
	span := hi - lo
	_, step := niceScale(span, 5)
	bottom := math.Floor(lo/step) * step
	top := math.Ceil(hi/step) * step
	if top <= bottom {
		top = bottom + step
	}
	y := func(v float64) float64 { return a.B - (v-bottom)/(top-bottom)*(a.B-a.T) }
	a.YTicks = nil
	for v := bottom; v <= top+step/2; v += step {
		a.YTicks = append(a.YTicks, tick{Pos: y(v), Label: label(v)})
	}
	return y
}

// polyline is the SVG path through the points, in order; a NaN y breaks it.
func polyline(xs, ys []float64) string {
	var b strings.Builder
	move := true
	for i := range xs {
		if math.IsNaN(ys[i]) {
			move = true
			continue
		}
		cmd := "L"
		if move {
			cmd, move = "M", false
		}
		fmt.Fprintf(&b, "%s%s %s ", cmd, fmtCoord(xs[i]), fmtCoord(ys[i]))
	}
	return strings.TrimSpace(b.String())
}

// fmtNum is a score with at most two decimals.
func fmtNum(v float64) string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.2f", v), "0"), ".")
}
