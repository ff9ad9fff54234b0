package report

import (
	"context"
	"fmt"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Decision: the top entry pages with their bounce rate and the top exit
// pages with their exit rate, from pages_daily summed over the days shown
// (rates are ratios of the sums).

// TopPages is how many entry (and exit) pages the report lists.
const TopPages = 10

type pageRow struct {
	page  string
	count uint64 // entries or exits
	part  uint64 // bounces (entry pages) or page views (exit pages)
}

type pagesView struct {
	Range        string
	Empty        bool
	W, H, LabelX float64
	Entries      []pageBar
	Exits        []pageBar
	ExitsTop     float64 // the y of the exit pages' heading
	Table        htmlTable
}

type pageBar struct {
	Page              string
	Y, H, X, W, TextX float64
	Count, Part       uint64
	Rate              float64
	ValueText, Title  string
}

func (d *Data) loadPages(ctx context.Context, conn driver.Conn) error {
	var err error
	if d.pagesRange, err = d.loadDayRange(ctx, conn, "pages_daily"); err != nil {
		return err
	}
	where := dayWhere("pages_daily", "day", d.days)
	scan := func(r *pageRow, scan func(...any) error) error { return scan(&r.page, &r.count, &r.part) }
	q := fmt.Sprintf(`SELECT page, toUInt64(sum(entries)) AS n, toUInt64(sum(bounces)) FROM {db}.pages_daily%s
GROUP BY page HAVING n > 0 ORDER BY n DESC, page LIMIT %d`, where, TopPages)
	if err := loadRows(ctx, conn, expandDB(q, d.db), "pages_daily entry pages", &d.entryPages, scan); err != nil {
		return err
	}
	q = fmt.Sprintf(`SELECT page, toUInt64(sum(exits)) AS n, toUInt64(sum(page_views)) FROM {db}.pages_daily%s
GROUP BY page HAVING n > 0 ORDER BY n DESC, page LIMIT %d`, where, TopPages)
	return loadRows(ctx, conn, expandDB(q, d.db), "pages_daily exit pages", &d.exitPages, scan)
}

func buildPages(d *Data) pagesView {
	v := pagesView{W: chartW, LabelX: 300, Range: rangeText(d.pagesRange), Empty: len(d.entryPages) == 0 && len(d.exitPages) == 0}
	v.Table.Head = []string{"page", "entries", "bounce rate", "exits", "exit rate"}
	rowH := 22.0
	var top uint64
	for _, r := range append(append([]pageRow(nil), d.entryPages...), d.exitPages...) {
		top = max(top, r.count)
	}
	barL, barR := v.LabelX+8, v.W-150
	bars := func(rows []pageRow, y0 float64, noun, rateNoun, partNoun string) []pageBar {
		var out []pageBar
		for i, r := range rows {
			b := pageBar{Page: displayPage(r.page), Count: r.count, Part: r.part, Rate: ratio(r.part, r.count)}
			if noun == "exits" {
				b.Rate = ratio(r.count, r.part) // exits / page views
			}
			b.Y, b.H, b.X = y0+rowH*float64(i), rowH*0.7, barL
			if top > 0 {
				b.W = float64(r.count) / float64(top) * (barR - barL)
			}
			b.TextX = b.X + b.W + 6
			b.ValueText = fmt.Sprintf("%s (%s %s)", fmtInt(r.count), fmtPct(b.Rate), rateNoun)
			b.Title = fmt.Sprintf("%s: %s %s, %s %s, %s %s", b.Page, fmtInt(r.count), noun, fmtInt(r.part), partNoun, rateNoun, fmtPct(b.Rate))
			out = append(out, b)
		}
		return out
	}
	v.Entries = bars(d.entryPages, 24, "entries", "bounce", "bounces")
	v.ExitsTop = 24 + rowH*float64(len(d.entryPages)) + 14
	v.Exits = bars(d.exitPages, v.ExitsTop+10, "exits", "exit rate", "page views")
	v.H = v.ExitsTop + 14 + rowH*float64(max(len(d.exitPages), 1))
	for _, b := range v.Entries {
		v.Table.Rows = append(v.Table.Rows, []string{b.Page, fmtInt(b.Count), fmtPct(b.Rate), "", ""})
	}
	for _, b := range v.Exits {
		v.Table.Rows = append(v.Table.Rows, []string{b.Page, "", "", fmtInt(b.Count), fmtPct(b.Rate)})
	}
	return v
}

// displayPage drops a page's scheme: the page shows "shop.example/cart",
// and holds no link-like text (it is self-contained; a test checks that
// it names no http:// or https:// address).
func displayPage(page string) string {
	for _, scheme := range []string{"https://", "http://"} {
		if len(page) > len(scheme) && strings.EqualFold(page[:len(scheme)], scheme) {
			return page[len(scheme):]
		}
	}
	return page
}
