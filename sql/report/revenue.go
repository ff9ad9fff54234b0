package report

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/shopspring/decimal"
)

type revenueView struct {
	Range  string
	Empty  bool
	Axes   axes
	Series []lineSeries[revenueDot]
	Totals htmlTable
	Table  htmlTable
}

type revenueDot struct {
	X, Y, R               float64
	Day, Currency         string
	Orders, Customers     uint64
	Revenue, Refunds, Net string
	Title                 string
}

func buildRevenue(d *Data) revenueView {
	v := revenueView{Axes: newAxes("revenue per day"), Empty: len(d.revenue) == 0, Range: "no rows"}
	v.Totals.Head = []string{"currency", "days", "orders", "revenue", "refunds", "net revenue"}
	if v.Empty {
		return v
	}
	first, last := d.revenue[0].day, d.revenue[len(d.revenue)-1].day
	v.Range = "days " + first + " .. " + last
	t0, t1 := parseDay(first), parseDay(last)
	byCur := map[string]map[string]revenueRow{}
	var currencies []string
	maxRev := 0.0
	type tot struct {
		days, orders  uint64
		rev, ref, net decimal.Decimal
	}
	totals := map[string]*tot{}
	var days []string
	seenDay := map[string]bool{}
	for _, r := range d.revenue {
		if byCur[r.currency] == nil {
			byCur[r.currency] = map[string]revenueRow{}
			currencies = append(currencies, r.currency)
			totals[r.currency] = &tot{}
		}
		byCur[r.currency][r.day] = r
		maxRev = math.Max(maxRev, r.revenue.InexactFloat64())
		t := totals[r.currency]
		t.days++
		t.orders += r.orders
		t.rev, t.ref, t.net = t.rev.Add(r.revenue), t.ref.Add(r.refunds), t.net.Add(r.netRev)
		if !seenDay[r.day] {
			seenDay[r.day] = true
			days = append(days, r.day)
		}
	}
	sort.Strings(currencies)
	sort.Strings(days)
	top := v.Axes.yScale(maxRev, fmtCompact)
	sc := newDayScale(v.Axes, t0, t1)
	v.Axes.XTicks = dateTicks(sc, t1)
	span := int(math.Round(t1.Sub(t0).Hours()/24)) + 1
	r := dotRadius(span)
	for i, c := range currencies {
		class := seriesClasses[i%(len(seriesClasses)-1)]
		ls := lineSeries[revenueDot]{Name: c, Class: class}
		var path strings.Builder
		// A day without a row has no order: the line goes to 0 there,
		// but only the view's rows get a dot.
		for day := t0; !day.After(t1); day = day.AddDate(0, 0, 1) {
			ds := day.Format("2006-01-02")
			row, ok := byCur[c][ds]
			val := 0.0
			if ok {
				val = row.revenue.InexactFloat64()
			}
			x, y := sc.x(day), v.Axes.y(val, top)
			cmd := "L"
			if path.Len() == 0 {
				cmd = "M"
			}
			fmt.Fprintf(&path, "%s%s %s ", cmd, fmtCoord(x), fmtCoord(y))
			if ok {
				ls.Dots = append(ls.Dots, revenueDot{X: x, Y: y, R: r, Day: ds, Currency: c, Orders: row.orders, Customers: row.customers,
					Revenue: row.revenue.String(), Refunds: row.refunds.String(), Net: row.netRev.String(),
					Title: fmt.Sprintf("%s %s: revenue %s %s from %s orders; refunds %s; net %s", ds, c, c, fmtMoney(row.revenue), fmtInt(row.orders), fmtMoney(row.refunds), fmtMoney(row.netRev))})
			}
		}
		ls.Path = strings.TrimSpace(path.String())
		v.Series = append(v.Series, ls)
		t := totals[c]
		v.Totals.Rows = append(v.Totals.Rows, []string{c, fmtInt(t.days), fmtInt(t.orders), fmtMoney(t.rev), fmtMoney(t.ref), fmtMoney(t.net)})
	}
	v.Table.Head = []string{"day"}
	for _, c := range currencies {
		v.Table.Head = append(v.Table.Head, c+" orders", c+" revenue", c+" net")
	}
	for _, day := range days {
		row := []string{day}
		for _, c := range currencies {
			if rr, ok := byCur[c][day]; ok {
				row = append(row, fmtInt(rr.orders), fmtMoney(rr.revenue), fmtMoney(rr.netRev))
			} else {
				row = append(row, "-", "-", "-")
			}
		}
		v.Table.Rows = append(v.Table.Rows, row)
	}
	return v
}
