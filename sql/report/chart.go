package report

import (
	"math"
	"time"
)

// tick is an axis label at Pos; Sub is a second line (the year).
type tick struct {
	Pos        float64
	Label, Sub string
}

// axes is a chart's frame: the plot area (L, T)-(R, B) in a W x H view box.
type axes struct {
	W, H, L, T, R, B float64
	TickB            float64 // the bottom of the x tick marks
	XTicks, YTicks   []tick
	YTitle           string
}

// lineSeries is one line of a chart: its SVG path and a dot per point.
type lineSeries[D any] struct {
	Name, Class string
	Path        string
	Dots        []D
}

// The view box of every chart; the page scales it to the column's width.
const (
	chartW = 640.0
	chartH = 320.0
)

func newAxes(yTitle string) axes {
	return axes{W: chartW, H: chartH, L: 64, T: 14, R: chartW - 16, B: chartH - 44, TickB: chartH - 40, YTitle: yTitle}
}

// yScale fits [0, max] to nice ticks; it returns the top of the scale.
func (a *axes) yScale(max float64, label func(float64) string) float64 {
	top, step := niceScale(max, 5)
	for v := 0.0; v <= top+step/2; v += step {
		a.YTicks = append(a.YTicks, tick{Pos: a.y(v, top), Label: label(v)})
	}
	return top
}

func (a *axes) y(v, top float64) float64 {
	if top <= 0 {
		return a.B
	}
	return a.B - v/top*(a.B-a.T)
}

// niceScale returns a top >= max and a step dividing it into about n ticks
// of 1, 2, 2.5 or 5 times a power of ten.
func niceScale(max float64, n int) (top, step float64) {
	if !(max > 0) || math.IsInf(max, 0) {
		max = 1
	}
	rough := max / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(rough)))
	step = 10 * mag
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*mag >= rough*(1-1e-9) {
			step = m * mag
			break
		}
	}
	top = math.Ceil(max/step*(1-1e-12)) * step
	if top < max {
		top += step
	}
	return top, step
}

// dayScale maps dates to x.
type dayScale struct {
	t0   time.Time
	days float64
	l, r float64
}

func (s dayScale) x(t time.Time) float64 {
	if s.days <= 0 {
		return (s.l + s.r) / 2
	}
	return s.l + t.Sub(s.t0).Hours()/24/s.days*(s.r-s.l)
}

func newDayScale(a axes, t0, t1 time.Time) dayScale {
	return dayScale{t0: t0, days: t1.Sub(t0).Hours() / 24, l: a.L + 6, r: a.R - 6}
}

// dateTicks: months over long spans, days over short ones, at most about 8.
func dateTicks(s dayScale, t1 time.Time) []tick {
	var ts []tick
	if s.days >= 60 {
		m := time.Date(s.t0.Year(), s.t0.Month(), 1, 0, 0, 0, 0, time.UTC)
		if m.Before(s.t0) {
			m = m.AddDate(0, 1, 0)
		}
		var months []time.Time
		for ; !m.After(t1); m = m.AddDate(0, 1, 0) {
			months = append(months, m)
		}
		k := (len(months) + 7) / 8
		for i, m := range months {
			if i%k != 0 {
				continue
			}
			t := tick{Pos: s.x(m), Label: m.Format("Jan")}
			if i == 0 || m.Month() <= time.Month(k) {
				t.Sub = m.Format("2006")
			}
			ts = append(ts, t)
		}
		return ts
	}
	step := int(math.Ceil(s.days / 6))
	if step < 1 {
		step = 1
	}
	for t := s.t0; !t.After(t1); t = t.AddDate(0, 0, step) {
		ts = append(ts, tick{Pos: s.x(t), Label: t.Format("Jan 2")})
	}
	if len(ts) > 0 {
		ts[0].Sub = s.t0.Format("2006")
	}
	return ts
}

// dotRadius shrinks the dots as the points get denser.
func dotRadius(points int) float64 {
	switch {
	case points <= 40:
		return 3
	case points <= 150:
		return 2
	default:
		return 1.2
	}
}
