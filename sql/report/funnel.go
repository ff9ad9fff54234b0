package report

import "fmt"

type funnelView struct {
	Range  string
	Empty  bool
	W, H   float64
	LabelX float64
	BarX   float64
	Stages []funnelStage
	Table  htmlTable
	// BySource is the same funnel for the sources with the most visitors.
	BySource htmlTable
}

type funnelStage struct {
	Name, Class          string
	Value                uint64
	HasStep              bool
	StepRate, Share      float64
	Prev                 string
	Y, BarW, BarH, TextY float64
	TextX                float64
	ValueText, RateText  string
}

func buildFunnel(d *Data) funnelView {
	v := funnelView{W: chartW, LabelX: 104, BarX: 112, Empty: d.funnelRows == 0}
	v.Range = "no rows"
	if !v.Empty {
		v.Range = "cohort days " + d.funnelRange[0] + " .. " + d.funnelRange[1]
		if d.funnelRange[0] == d.funnelRange[1] {
			v.Range = "cohort day " + d.funnelRange[0]
		}
	}
	const rowH, barH, top = 56.0, 34.0, 12.0
	maxBar := chartW - v.BarX - 150
	v.H = top*2 + rowH*float64(len(funnelStages)) - (rowH - barH)
	v.Table.Head = []string{"stage", "visitors", "step rate", "of awareness"}
	aw := d.funnel[0]
	for i, name := range funnelStages {
		val := d.funnel[i]
		st := funnelStage{Name: name, Class: fmt.Sprintf("st%d", i), Value: val, Share: ratio(val, aw)}
		st.Y = top + rowH*float64(i)
		st.BarH = barH
		st.BarW = maxBar * st.Share
		if val > 0 && st.BarW < 1 {
			st.BarW = 1
		}
		st.TextX = v.BarX + st.BarW + 8
		st.TextY = st.Y + barH/2
		st.ValueText = fmtInt(val)
		step := "-"
		if i > 0 {
			st.HasStep = true
			st.Prev = funnelStages[i-1]
			st.StepRate = ratio(val, d.funnel[i-1])
			st.RateText = fmtPct(st.StepRate) + " of " + st.Prev
			step = fmtPct(st.StepRate)
		} else {
			st.RateText = "100%"
		}
		v.Stages = append(v.Stages, st)
		v.Table.Rows = append(v.Table.Rows, []string{name, fmtInt(val), step, fmtPct(st.Share)})
	}
	v.BySource.Head = []string{"source", "awareness", "acquisition", "conversion", "retention", "advocacy", "converted"}
	for _, r := range d.funnelSrc {
		row := []string{displaySource(r.source)}
		for _, n := range r.stages {
			row = append(row, fmtInt(n))
		}
		v.BySource.Rows = append(v.BySource.Rows, append(row, fmtPct(ratio(r.stages[2], r.stages[0]))))
	}
	return v
}
