package report

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/funnelhouse/funnelhouse/sql/report/reporttest"
)

// TestPage renders the page from made-up numbers, without ClickHouse:
// hostile names are escaped, empty views render, the numbers are in the
// markup.
func TestPage(t *testing.T) {
	evil := `<script>alert("x")</script>&'"`
	d := &Data{db: "fh_test", funnel: [5]uint64{1000, 400, 100, 50, 0}, funnelRows: 3, funnelRange: [2]string{"2025-01-01", "2025-01-03"},
		funnelSrc: []funnelSourceRow{{source: evil, stages: [5]uint64{600, 300, 80, 40, 0}}, {source: "", stages: [5]uint64{400, 100, 20, 10, 0}}}}
	for i, day := range []string{"2025-01-01", "2025-01-02", "2025-01-04"} {
		d.bounce = append(d.bounce, bounceRow{day: day, source: evil, sessions: uint64(10 + i), bounces: uint64(i)}, bounceRow{day: day, source: "", sessions: 5, bounces: 5})
		d.revenue = append(d.revenue, revenueRow{day: day, currency: "EUR", orders: 2, customers: 2, revenue: decimal.RequireFromString("12.5"), netRev: decimal.RequireFromString("12.5")},
			revenueRow{day: day, currency: evil, orders: 1, customers: 1, revenue: decimal.RequireFromString("1.25"), refunds: decimal.RequireFromString("0.25"), netRev: decimal.RequireFromString("1")})
	}
	d.churn = []churnRow{{month: "2025-01-01"}, {month: "2025-02-01", active: 3, churned: 1, rate: 1.0 / 3}}
	d.traffic = []trafficRow{{source: evil, sessions: 10, newV: 4, returnV: 3, pageViews: 20}, {source: "", sessions: 2, newV: 2}}
	d.trafficRange = [2]string{"2025-01-01", "2025-01-04"}
	d.entryPages = []pageRow{{page: "https://shop.example/" + evil, count: 7, part: 2}, {page: "http://shop.example/a", count: 3}}
	d.exitPages = []pageRow{{page: "shop.example/b", count: 5, part: 4}}
	d.satisfaction = []satisfactionRow{{month: "2025-01-01", npsN: 4, nps: -25, csatN: 2, csat: 50, cesN: 1, ces: 5.5}, {month: "2025-03-01", npsN: 1, nps: 100}}
	d.trials = []trialRow{{month: "2025-01-01", trials: 4, converted: 1, rate: 0.25}}
	d.retention = []retentionRow{{month: "2025-01-01", start: 0, customers: 2, repeatC: 1, repeat: 0.5}, {month: "2025-02-01", start: 2, retention: 1.5, customers: 3, repeatC: 1, repeat: 1.0 / 3}}
	d.clvCurrency = evil
	d.clv = []clvRow{{cohort: "2025-01-01", offset: 0, customers: 2, clv: decimal.RequireFromString("-1.5")}, {cohort: "2025-01-01", offset: 1, customers: 2, clv: decimal.RequireFromString("10.25")},
		{cohort: "2025-02-01", offset: 0, customers: 1, clv: decimal.RequireFromString("3")}}
	var buf bytes.Buffer
	if err := BuildPage(d, 5, "auto", time.Unix(0, 0)).Render(&buf); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	reporttest.CheckSelfContained(t, page)
	if strings.Contains(page, "<script>") || !strings.Contains(page, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&amp;&#39;&#34;") {
		t.Error("a source name is not escaped")
	}
	want := reporttest.Truth{Funnel: d.funnel, Churn: truthChurn(d.churn), Revenue: map[string]decimal.Decimal{"EUR": decimal.RequireFromString("37.5"), evil: decimal.RequireFromString("3.75")},
		RevenueRows: 6, RevenueDays: map[string]bool{"2025-01-01": true, "2025-01-02": true, "2025-01-04": true}, Sessions: 10 + 11 + 12 + 15, Bounces: 3 + 15,
		Catalogue: reporttest.Catalogue{
			Traffic:    map[string]reporttest.Traffic{evil: {Sessions: 10, New: 4, Returning: 3}, "": {Sessions: 2, New: 2}},
			EntryPages: []reporttest.PageTop{{Page: "https://shop.example/" + evil, Count: 7, Part: 2}, {Page: "http://shop.example/a", Count: 3}},
			ExitPages:  []reporttest.PageTop{{Page: "shop.example/b", Count: 5, Part: 4}},
			Satisfaction: []reporttest.Satisfaction{{Month: "2025-01-01", NPS: -25, NPSN: 4, CSAT: 50, CSATN: 2, CES: 5.5, CESN: 1},
				{Month: "2025-03-01", NPS: 100, NPSN: 1}},
			Trials: []reporttest.Trial{{Month: "2025-01-01", Trials: 4, Converted: 1, Rate: 0.25}},
			Retention: []reporttest.Retention{{Month: "2025-01-01", Customers: 2, Repeat: 0.5},
				{Month: "2025-02-01", Start: 2, Retention: 1.5, Customers: 3, Repeat: 1.0 / 3}},
			CLVCurrency: evil,
			CLV: []reporttest.CLV{{Cohort: "2025-01-01", Offset: 0, Customers: 2, CLV: decimal.RequireFromString("-1.5")},
				{Cohort: "2025-01-01", Offset: 1, Customers: 2, CLV: decimal.RequireFromString("10.25")},
				{Cohort: "2025-02-01", Offset: 0, Customers: 1, CLV: decimal.RequireFromString("3")}},
		}}
	reporttest.CheckDOM(t, "the made-up page", page, want)
	for _, el := range reporttest.Elements(page, "data-source") {
		if el[""] == "g" && el["data-source"] != evil && el["data-source"] != "" && el["data-source"] != "(all sources)" {
			t.Errorf("unexpected bounce series %q", el["data-source"])
		}
	}
	if t.Failed() {
		t.Logf("page:\n%s", page)
	}

	// No rows at all: the page still renders and says so.
	buf.Reset()
	if err := BuildPage(&Data{db: "fh_empty"}, 5, "auto", time.Unix(0, 0)).Render(&buf); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"no rows in bounce_daily", "no rows in churn_monthly", "no rows in revenue_daily", "no rows in traffic_daily", "no rows in pages_daily",
		"no rows in satisfaction_monthly", "no rows in trial_conversion_monthly", "no rows in retention_monthly", "no rows in clv_cohort_monthly"} {
		if !strings.Contains(buf.String(), s) {
			t.Errorf("the empty page does not say %q", s)
		}
	}
	reporttest.CheckSelfContained(t, buf.String())
}

func truthChurn(rows []churnRow) []reporttest.Churn {
	var out []reporttest.Churn
	for _, r := range rows {
		out = append(out, reporttest.Churn{Month: r.month, Active: r.active, Churned: r.churned, Reactivated: r.reactivated, Rate: r.rate})
	}
	return out
}
