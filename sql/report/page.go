package report

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"sort"
	"time"

	"github.com/shopspring/decimal"
)

// The page: geometry computed here, markup in report.html.tmpl.

//go:embed report.html.tmpl
var templateText string

var pageTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"f":     fmtCoord,
	"exact": fmtExact,
	"args":  monthChartArgs,
}).Parse(templateText))

// monthChartArgs is what the "monthchart" template takes: the chart, its
// accessible label, whether its view has no rows, and the view's name.
func monthChartArgs(c monthChart, label string, empty bool, view string) map[string]any {
	return map[string]any{"C": c, "Label": label, "Empty": empty, "View": view}
}

// MaxSources is how many sources the bounce-rate chart can draw: one line
// colour each (report.html.tmpl) besides the "all sources" line.
const MaxSources = 8

// seriesClasses are the CSS classes of the line colours (report.html.tmpl);
// the last one is the dashed "all sources" line.
var seriesClasses = [MaxSources + 1]string{"c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "call"}

// Page is what report.html.tmpl shows: every number already formatted and
// every chart element already placed, so the template only lays them out.
type Page struct {
	Database  string
	Generated string
	Days      int
	KPIs      []reportKPI
	Funnel    funnelView
	Bounce    bounceView
	Churn     churnView
	Revenue   revenueView

	// The lifecycle catalogue, a section per stage.
	Traffic      trafficView
	Pages        pagesView
	Satisfaction satisfactionView
	Trials       trialsView
	Retention    retentionView
	CLV          clvView
}

type reportKPI struct {
	Label  string
	Values []string
	Note   string
}

type htmlTable struct {
	Head []string
	Rows [][]string
}

// BuildPage lays the views out: the bounce chart draws the topSources sources
// with the most sessions, bucketed by "day", "week" or "auto" (week over
// spans longer than 92 days); now is the page's time of generation.
func BuildPage(d *Data, topSources int, bucket string, now time.Time) *Page {
	p := &Page{Database: d.db, Generated: now.UTC().Format("2006-01-02 15:04:05 UTC"), Days: d.days}
	p.Funnel = buildFunnel(d)
	p.Bounce = buildBounce(d, topSources, bucket)
	p.Churn = buildChurn(d)
	p.Revenue = buildRevenue(d)
	p.Traffic = buildTraffic(d)
	p.Pages = buildPages(d)
	p.Satisfaction = buildSatisfaction(d)
	p.Trials = buildTrials(d)
	p.Retention = buildRetention(d)
	p.CLV = buildCLV(d)
	p.KPIs = buildKPIs(d)
	return p
}

// Render writes the page as one self-contained HTML document.
func (p *Page) Render(w io.Writer) error {
	if err := pageTemplate.Execute(w, p); err != nil {
		return fmt.Errorf("cannot render the HTML report: %w", err)
	}
	return nil
}

func buildKPIs(d *Data) []reportKPI {
	var k []reportKPI
	aw, conv := d.funnel[0], d.funnel[2]
	k = append(k, reportKPI{"Visitors (awareness)", []string{fmtInt(aw)}, "first touch in the cohorts shown"})
	k = append(k, reportKPI{"Converted", []string{fmtInt(conv)}, fmtPct(ratio(conv, aw)) + " of visitors"})
	var s, b uint64
	for _, r := range d.bounce {
		s, b = s+r.sessions, b+r.bounces
	}
	k = append(k, reportKPI{"Bounce rate", []string{fmtPct(ratio(b, s))}, fmtInt(s) + " sessions"})
	if len(d.churn) > 0 {
		var churned, reactivated uint64
		peak := d.churn[0]
		for _, r := range d.churn {
			churned, reactivated = churned+r.churned, reactivated+r.reactivated
			if r.rate > peak.rate {
				peak = r
			}
		}
		k = append(k, reportKPI{"Churned customers", []string{fmtInt(churned)},
			fmtInt(reactivated) + " reactivated; peak rate " + fmtPct(peak.rate) + " in " + peak.month[:7]})
	}
	net := map[string]decimal.Decimal{}
	var currencies []string
	for _, r := range d.revenue {
		if _, ok := net[r.currency]; !ok {
			currencies = append(currencies, r.currency)
		}
		net[r.currency] = net[r.currency].Add(r.netRev)
	}
	sort.Strings(currencies)
	if len(currencies) > 0 {
		kp := reportKPI{Label: "Net revenue", Note: "after refunds"}
		for _, c := range currencies {
			kp.Values = append(kp.Values, fmtMoney(net[c])+" "+c)
		}
		k = append(k, kp)
	}
	return k
}
