package report

import (
	"context"
	"fmt"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Awareness: traffic_daily summed by source over the days shown, each
// source's visitors split into new and returning (visitor-days: a visitor
// counts once per day they came).

type trafficRow struct {
	source                  string
	sessions, newV, returnV uint64
	pageViews               uint64
}

type trafficView struct {
	Range  string
	Empty  bool
	W, H   float64
	LabelX float64
	Bars   []trafficBar
	Table  htmlTable
}

type trafficBar struct {
	Source, Name                 string
	Y, H, NewX, NewW, RetX, RetW float64
	TextX                        float64
	Sessions, New, Returning     uint64
	ValueText, Title             string
}

func (d *Data) loadTraffic(ctx context.Context, conn driver.Conn) error {
	var err error
	if d.trafficRange, err = d.loadDayRange(ctx, conn, "traffic_daily"); err != nil {
		return err
	}
	q := fmt.Sprintf(`SELECT source, toUInt64(sum(sessions)) AS s, toUInt64(sum(new_visitors)), toUInt64(sum(returning_visitors)), toUInt64(sum(page_views))
FROM {db}.traffic_daily%s GROUP BY source ORDER BY s DESC, source LIMIT %d`, dayWhere("traffic_daily", "day", d.days), MaxSources)
	return loadRows(ctx, conn, expandDB(q, d.db), "traffic_daily by source", &d.traffic, func(r *trafficRow, scan func(...any) error) error {
		return scan(&r.source, &r.sessions, &r.newV, &r.returnV, &r.pageViews)
	})
}

func buildTraffic(d *Data) trafficView {
	v := trafficView{W: chartW, LabelX: 150, Empty: len(d.traffic) == 0, Range: rangeText(d.trafficRange)}
	v.Table.Head = []string{"source", "sessions", "new visitors", "returning visitors", "page views", "pages per session"}
	rowH := 30.0
	v.H = 20 + rowH*float64(max(len(d.traffic), 1))
	var top uint64
	for _, r := range d.traffic {
		top = max(top, r.newV+r.returnV)
	}
	barL, barR := v.LabelX+10, v.W-130
	scale := func(n uint64) float64 {
		if top == 0 {
			return 0
		}
		return float64(n) / float64(top) * (barR - barL)
	}
	for i, r := range d.traffic {
		b := trafficBar{Source: r.source, Name: displaySource(r.source), Sessions: r.sessions, New: r.newV, Returning: r.returnV}
		b.Y, b.H = 10+rowH*float64(i), rowH*0.7
		b.NewX, b.NewW = barL, scale(r.newV)
		b.RetX, b.RetW = barL+b.NewW, scale(r.returnV)
		b.TextX = b.RetX + b.RetW + 6
		b.ValueText = fmtInt(r.sessions) + " sessions"
		b.Title = fmt.Sprintf("%s: %s sessions; %s new and %s returning visitors", b.Name, fmtInt(r.sessions), fmtInt(r.newV), fmtInt(r.returnV))
		v.Bars = append(v.Bars, b)
		v.Table.Rows = append(v.Table.Rows, []string{b.Name, fmtInt(r.sessions), fmtInt(r.newV), fmtInt(r.returnV), fmtInt(r.pageViews), fmtNum(ratio(r.pageViews, r.sessions))})
	}
	return v
}
