package reporttest

import (
	"html"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/shopspring/decimal"
)

// CheckSelfContained: nothing the page could fetch, nothing html/template
// had to reject.
func CheckSelfContained(t testing.TB, page string) {
	t.Helper()
	lower := strings.ToLower(page)
	for _, bad := range []string{"http://", "https://", "//cdn", "<script", "src=", "href=", "url(", "@import", "@font-face", "zgotmplz"} {
		if strings.Contains(lower, bad) {
			i := strings.Index(lower, bad)
			t.Errorf("the page contains %q (self-contained pages load nothing): ...%s...", bad, page[max(0, i-80):min(len(page), i+80)])
		}
	}
}

// CheckDOM compares the chart elements' data-* attributes in dom (the
// page's markup or chromium's serialised DOM) with the views.
func CheckDOM(t testing.TB, what, dom string, want Truth) {
	t.Helper()
	checkFunnel(t, what, dom, want)
	checkChurn(t, what, dom, want)
	checkRevenue(t, what, dom, want)
	checkBounce(t, what, dom, want)
	checkCatalogue(t, what, dom, want.Catalogue)
}

// checkFunnel: one bar per stage, in order, with the totals and the
// step rates.
func checkFunnel(t testing.TB, what, dom string, want Truth) {
	t.Helper()
	stages := Elements(dom, "data-stage")
	if len(stages) != len(Stages) {
		t.Errorf("%s: %d funnel bars, want %d", what, len(stages), len(Stages))
	} else {
		for i, el := range stages {
			if el["data-stage"] != Stages[i] || el["data-value"] != strconv.FormatUint(want.Funnel[i], 10) {
				t.Errorf("%s: funnel bar %d is %s=%s, want %s=%d", what, i, el["data-stage"], el["data-value"], Stages[i], want.Funnel[i])
			}
			if i == 0 {
				continue
			}
			wantRate := ratio(want.Funnel[i], want.Funnel[i-1])
			if got := parseFloat(t, el["data-step-rate"]); math.Abs(got-wantRate) > 1e-12 || el["data-previous"] != Stages[i-1] {
				t.Errorf("%s: funnel bar %s has step rate %v over %q, want %v over %q", what, el["data-stage"], got, el["data-previous"], wantRate, Stages[i-1])
			}
		}
	}
}

// checkChurn: one bar per churn_monthly row, the view's own rate.
func checkChurn(t testing.TB, what, dom string, want Truth) {
	t.Helper()
	bars := Elements(dom, "data-month")
	if len(bars) != len(want.Churn) {
		t.Errorf("%s: %d churn bars, churn_monthly has %d rows", what, len(bars), len(want.Churn))
	} else {
		for i, el := range bars {
			c := want.Churn[i]
			if el["data-month"] != c.Month || parseFloat(t, el["data-rate"]) != c.Rate ||
				el["data-churned"] != strconv.FormatUint(c.Churned, 10) || el["data-active"] != strconv.FormatUint(c.Active, 10) {
				t.Errorf("%s: churn bar %d is month %s rate %s (%s of %s), want %s rate %v (%d of %d)", what, i,
					el["data-month"], el["data-rate"], el["data-churned"], el["data-active"], c.Month, c.Rate, c.Churned, c.Active)
			}
		}
	}
	if rows := tableRows(dom, "churn"); rows != len(want.Churn) {
		t.Errorf("%s: the churn table has %d rows, want %d", what, rows, len(want.Churn))
	}
}

// checkRevenue: a point per revenue_daily row; the sums per currency.
func checkRevenue(t testing.TB, what, dom string, want Truth) {
	t.Helper()
	points := Elements(dom, "data-day")
	if len(points) != want.RevenueRows {
		t.Errorf("%s: %d revenue points, revenue_daily has %d rows", what, len(points), want.RevenueRows)
	}
	got := map[string]decimal.Decimal{}
	for _, el := range points {
		d, err := decimal.NewFromString(el["data-revenue"])
		if err != nil {
			t.Fatalf("%s: revenue point %v: %v", what, el, err)
		}
		got[el["data-currency"]] = got[el["data-currency"]].Add(d)
		if !want.RevenueDays[el["data-day"]] {
			t.Errorf("%s: a revenue point on %s, a day revenue_daily has no row for", what, el["data-day"])
		}
	}
	if len(got) != len(want.Revenue) {
		t.Errorf("%s: revenue points in %d currencies, want %d", what, len(got), len(want.Revenue))
	}
	for cur, w := range want.Revenue {
		if !got[cur].Equal(w) {
			t.Errorf("%s: revenue points of %s sum to %s, revenue_daily to %s", what, cur, got[cur], w)
		}
	}
}

// checkBounce: the "all sources" line covers every session; each point's
// rate is its bounces over its sessions.
func checkBounce(t testing.TB, what, dom string, want Truth) {
	t.Helper()
	var sessions, bounces uint64
	nAll := 0
	for _, el := range Elements(dom, "data-bucket") {
		s, b := parseUint(t, el["data-sessions"]), parseUint(t, el["data-bounces"])
		if r := parseFloat(t, el["data-rate"]); r != ratio(b, s) {
			t.Errorf("%s: bounce point %v: rate %v, want %d/%d", what, el, r, b, s)
		}
		if el["data-source"] == "(all sources)" {
			nAll++
			sessions += s
			bounces += b
		}
	}
	if nAll == 0 || sessions != want.Sessions || bounces != want.Bounces {
		t.Errorf("%s: the all-sources bounce line has %d points, %d sessions, %d bounces; bounce_daily has %d sessions, %d bounces", what, nAll, sessions, bounces, want.Sessions, want.Bounces)
	}
}

var (
	tagRe  = regexp.MustCompile(`<([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[^\s=>/"']+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s>"']+))?)*)\s*/?>`)
	attrRe = regexp.MustCompile(`([^\s=>/"']+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>"']+)))?`)
)

// Elements returns the attributes of every element of the markup that
// has attr, in document order (the element's name is under "").
func Elements(markup, attr string) []map[string]string {
	var out []map[string]string
	for _, m := range tagRe.FindAllStringSubmatch(markup, -1) {
		attrs := map[string]string{"": strings.ToLower(m[1])}
		for _, a := range attrRe.FindAllStringSubmatch(m[2], -1) {
			attrs[strings.ToLower(a[1])] = html.UnescapeString(a[2] + a[3] + a[4])
		}
		if _, ok := attrs[attr]; ok {
			out = append(out, attrs)
		}
	}
	return out
}

// tableRows counts the body rows of <table class="class">.
func tableRows(markup, class string) int {
	i := strings.Index(markup, `<table class="`+class+`">`)
	if i < 0 {
		return -1
	}
	table := markup[i:]
	table = table[:strings.Index(table, "</table>")]
	body := table[strings.Index(table, "<tbody>"):]
	return strings.Count(body, "<tr>")
}

func parseFloat(t testing.TB, s string) float64 {
	t.Helper()
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Errorf("not a number: %q", s)
		return math.NaN()
	}
	return f
}

func parseUint(t testing.TB, s string) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Errorf("not a count: %q", s)
	}
	return n
}

func ratio(a, b uint64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}
