package main

import (
	"bytes"
	"context"
	"fmt"
	"html"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/shopspring/decimal"

	"github.com/funnelhouse/funnelhouse/bench/traffic"
	chsink "github.com/funnelhouse/funnelhouse/sinks/clickhouse"
)

// TestReport fills a database of its own with a small end-to-end run, runs
// `funnelhouse report --html`, checks the terminal tables, then opens the
// page in headless Chromium and compares what the rendered DOM holds (the
// data-* attributes of the chart elements) with the views queried directly.
func TestReport(t *testing.T) {
	r := newTestRun(t, "report", 2, traffic.Config{Seed: 11, Events: 20_000})
	r.pf.cfg.FlushInterval = 500 * time.Millisecond
	r.pf.cfg.BatchRows = 50_000
	ctx := context.Background()
	err := r.run(ctx)
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	htmlPath := filepath.Join(dir, "report.html")
	var out bytes.Buffer
	if err := runReport(ctx, []string{"--clickhouse", r.pf.dsn, "--html", htmlPath}, &out); err != nil {
		t.Fatalf("report: %v\n%s", err, out.String())
	}
	terminal := out.String()
	t.Logf("terminal output:\n%s", terminal)
	for _, title := range []string{reportTitleFunnel, reportTitleBounce, reportTitleChurn, reportTitleRevenue} {
		if !strings.Contains(terminal, "\n"+title) {
			t.Errorf("terminal output has no table titled %q", title)
		}
	}
	if !strings.Contains(terminal, "wrote "+htmlPath) {
		t.Errorf("terminal output does not say it wrote %s", htmlPath)
	}

	conn, db, err := chsink.Connect(ctx, chsink.Endpoint{DSN: r.pf.dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	want := queryReportTruth(t, ctx, conn, db, 0)
	if len(want.churn) < 3 || want.funnel[2] == 0 || len(want.revenue) == 0 || want.sessions == 0 {
		t.Fatalf("the run produced too little to check: %+v", want)
	}

	page, err := os.ReadFile(htmlPath)
	if err != nil {
		t.Fatal(err)
	}
	checkSelfContained(t, string(page))
	// The page as written holds the numbers too (html/template's markup).
	checkReportDOM(t, "the HTML file", string(page), want)

	artefacts := os.Getenv("FUNNELHOUSE_TEST_ARTIFACTS")
	if artefacts == "" {
		artefacts = t.TempDir()
	} else if err := os.MkdirAll(artefacts, 0o755); err != nil {
		t.Fatal(err)
	}

	t.Run("chromium", func(t *testing.T) {
		browser := findChromium()
		if browser == "" {
			t.Skip("chromium is not installed: the rendered page is not checked; install the Debian package `chromium` (add it to .ci/run's apt packages)")
		}
		dom := chromium(t, browser, "--dump-dom", "file://"+htmlPath)
		if !strings.Contains(dom, "<svg") || !strings.Contains(dom, "funnelhouse report") {
			t.Fatalf("chromium's DOM holds no chart:\n%.2000s", dom)
		}
		checkReportDOM(t, "the DOM rendered by chromium", dom, want)

		shot := filepath.Join(artefacts, "report.png")
		chromium(t, browser, "--screenshot="+shot, "--window-size=1280,2400", "--hide-scrollbars", "--force-device-scale-factor=1", "file://"+htmlPath)
		if err := os.WriteFile(filepath.Join(artefacts, "report.html"), page, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s (and the page: %s)", shot, filepath.Join(artefacts, "report.html"))
		f, err := os.Open(shot)
		if err != nil {
			t.Fatalf("chromium wrote no screenshot: %v", err)
		}
		defer f.Close()
		if st, err := f.Stat(); err != nil || st.Size() == 0 {
			t.Fatalf("empty screenshot %s", shot)
		}
		img, err := png.Decode(f)
		if err != nil {
			t.Fatalf("screenshot %s is not a PNG: %v", shot, err)
		}
		if b := img.Bounds(); b.Dx() != 1280 || b.Dy() != 2400 {
			t.Errorf("screenshot is %dx%d, want 1280x2400", b.Dx(), b.Dy())
		}
		// Not a blank page: the charts bring many colours.
		colours := map[uint32]bool{}
		b := img.Bounds()
		for y := b.Min.Y; y < b.Max.Y; y += 3 {
			for x := b.Min.X; x < b.Max.X; x += 3 {
				cr, cg, cb, _ := img.At(x, y).RGBA()
				colours[cr>>8<<16|cg>>8<<8|cb>>8] = true
			}
		}
		if len(colours) < 50 {
			t.Errorf("screenshot has only %d colours: is the page blank?", len(colours))
		}
	})

	t.Run("days", func(t *testing.T) {
		path := filepath.Join(dir, "report7.html")
		var out bytes.Buffer
		if err := runReport(ctx, []string{"--clickhouse", r.pf.dsn, "--html", path, "--days", "7", "--bucket", "day"}, &out); err != nil {
			t.Fatalf("report --days 7: %v\n%s", err, out.String())
		}
		page, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		want7 := queryReportTruth(t, ctx, conn, db, 7)
		checkReportDOM(t, "the HTML file of --days 7", string(page), want7)
	})
}

// reportTruth is what the views say, queried directly.
type reportTruth struct {
	funnel            [5]uint64
	churn             []churnRow
	revenue           map[string]decimal.Decimal // currency → sum(revenue)
	revenueRows       int
	revenueDays       map[string]bool
	sessions, bounces uint64
	bounceDays        map[string]bool
}

func queryReportTruth(t *testing.T, ctx context.Context, conn driver.Conn, db string, days int) reportTruth {
	t.Helper()
	w := reportTruth{revenue: map[string]decimal.Decimal{}, revenueDays: map[string]bool{}, bounceDays: map[string]bool{}}
	q := func(sql string) string { return expandDB(sql, db) }
	if err := conn.QueryRow(ctx, q(`SELECT toUInt64(sum(awareness)), toUInt64(sum(acquisition)), toUInt64(sum(conversion)), toUInt64(sum(retention)), toUInt64(sum(advocacy))
FROM {db}.funnel_daily`+dayWhere("funnel_daily", "cohort_day", days))).Scan(&w.funnel[0], &w.funnel[1], &w.funnel[2], &w.funnel[3], &w.funnel[4]); err != nil {
		t.Fatal(err)
	}
	err := queryEach(ctx, conn, q("SELECT toString(month), toUInt64(active_at_start), toUInt64(churned), toUInt64(reactivated), churn_rate FROM {db}.churn_monthly ORDER BY month"),
		func(scan func(...any) error) error {
			var r churnRow
			if err := scan(&r.month, &r.active, &r.churned, &r.reactivated, &r.rate); err != nil {
				return err
			}
			w.churn = append(w.churn, r)
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	err = queryEach(ctx, conn, q("SELECT toString(day), currency, toString(revenue) FROM {db}.revenue_daily"+dayWhere("revenue_daily", "day", days)),
		func(scan func(...any) error) error {
			var day, cur, rev string
			if err := scan(&day, &cur, &rev); err != nil {
				return err
			}
			d, err := decimal.NewFromString(rev)
			if err != nil {
				return err
			}
			w.revenue[cur] = w.revenue[cur].Add(d)
			w.revenueRows++
			w.revenueDays[day] = true
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	err = queryEach(ctx, conn, q("SELECT toString(day), toUInt64(sum(sessions)), toUInt64(sum(bounces)) FROM {db}.bounce_daily"+dayWhere("bounce_daily", "day", days)+" GROUP BY day"),
		func(scan func(...any) error) error {
			var day string
			var s, b uint64
			if err := scan(&day, &s, &b); err != nil {
				return err
			}
			w.sessions += s
			w.bounces += b
			w.bounceDays[day] = true
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// checkSelfContained: nothing the page could fetch, nothing html/template
// had to reject.
func checkSelfContained(t *testing.T, page string) {
	t.Helper()
	lower := strings.ToLower(page)
	for _, bad := range []string{"http://", "https://", "//cdn", "<script", "src=", "href=", "url(", "@import", "@font-face", "zgotmplz"} {
		if strings.Contains(lower, bad) {
			i := strings.Index(lower, bad)
			t.Errorf("the page contains %q (self-contained pages load nothing): ...%s...", bad, page[max(0, i-80):min(len(page), i+80)])
		}
	}
}

// checkReportDOM compares the chart elements' data-* attributes in dom (the
// page's markup or chromium's serialised DOM) with the views.
func checkReportDOM(t *testing.T, what, dom string, want reportTruth) {
	t.Helper()
	// (1) The funnel: one bar per stage, in order, with the totals and the
	// step rates.
	stages := domElements(dom, "data-stage")
	if len(stages) != len(funnelStages) {
		t.Errorf("%s: %d funnel bars, want %d", what, len(stages), len(funnelStages))
	} else {
		for i, el := range stages {
			if el["data-stage"] != funnelStages[i] || el["data-value"] != strconv.FormatUint(want.funnel[i], 10) {
				t.Errorf("%s: funnel bar %d is %s=%s, want %s=%d", what, i, el["data-stage"], el["data-value"], funnelStages[i], want.funnel[i])
			}
			if i == 0 {
				continue
			}
			wantRate := ratio(want.funnel[i], want.funnel[i-1])
			if got := parseFloat(t, el["data-step-rate"]); math.Abs(got-wantRate) > 1e-12 || el["data-previous"] != funnelStages[i-1] {
				t.Errorf("%s: funnel bar %s has step rate %v over %q, want %v over %q", what, el["data-stage"], got, el["data-previous"], wantRate, funnelStages[i-1])
			}
		}
	}

	// (3) Churn: one bar per churn_monthly row, the view's own rate.
	bars := domElements(dom, "data-month")
	if len(bars) != len(want.churn) {
		t.Errorf("%s: %d churn bars, churn_monthly has %d rows", what, len(bars), len(want.churn))
	} else {
		for i, el := range bars {
			c := want.churn[i]
			if el["data-month"] != c.month || parseFloat(t, el["data-rate"]) != c.rate ||
				el["data-churned"] != strconv.FormatUint(c.churned, 10) || el["data-active"] != strconv.FormatUint(c.active, 10) {
				t.Errorf("%s: churn bar %d is month %s rate %s (%s of %s), want %s rate %v (%d of %d)", what, i,
					el["data-month"], el["data-rate"], el["data-churned"], el["data-active"], c.month, c.rate, c.churned, c.active)
			}
		}
	}
	if rows := tableRows(dom, "churn"); rows != len(want.churn) {
		t.Errorf("%s: the churn table has %d rows, want %d", what, rows, len(want.churn))
	}

	// (4) Revenue: a point per revenue_daily row; the sums per currency.
	points := domElements(dom, "data-day")
	if len(points) != want.revenueRows {
		t.Errorf("%s: %d revenue points, revenue_daily has %d rows", what, len(points), want.revenueRows)
	}
	got := map[string]decimal.Decimal{}
	for _, el := range points {
		d, err := decimal.NewFromString(el["data-revenue"])
		if err != nil {
			t.Fatalf("%s: revenue point %v: %v", what, el, err)
		}
		got[el["data-currency"]] = got[el["data-currency"]].Add(d)
		if !want.revenueDays[el["data-day"]] {
			t.Errorf("%s: a revenue point on %s, a day revenue_daily has no row for", what, el["data-day"])
		}
	}
	if len(got) != len(want.revenue) {
		t.Errorf("%s: revenue points in %d currencies, want %d", what, len(got), len(want.revenue))
	}
	for cur, w := range want.revenue {
		if !got[cur].Equal(w) {
			t.Errorf("%s: revenue points of %s sum to %s, revenue_daily to %s", what, cur, got[cur], w)
		}
	}

	// (2) Bounce: the "all sources" line covers every session; each point's
	// rate is its bounces over its sessions.
	var sessions, bounces uint64
	nAll := 0
	for _, el := range domElements(dom, "data-bucket") {
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
	if nAll == 0 || sessions != want.sessions || bounces != want.bounces {
		t.Errorf("%s: the all-sources bounce line has %d points, %d sessions, %d bounces; bounce_daily has %d sessions, %d bounces", what, nAll, sessions, bounces, want.sessions, want.bounces)
	}
}

var (
	tagRe  = regexp.MustCompile(`<([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[^\s=>/"']+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s>"']+))?)*)\s*/?>`)
	attrRe = regexp.MustCompile(`([^\s=>/"']+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>"']+)))?`)
)

// domElements returns the attributes of every element of the markup that
// has attr, in document order (the element's name is under "").
func domElements(markup, attr string) []map[string]string {
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

func parseFloat(t *testing.T, s string) float64 {
	t.Helper()
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Errorf("not a number: %q", s)
		return math.NaN()
	}
	return f
}

func parseUint(t *testing.T, s string) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Errorf("not a count: %q", s)
	}
	return n
}

func findChromium() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// chromium runs the headless browser, isolated (its own profile, no
// background networking), and returns its standard output.
func chromium(t *testing.T, browser string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
		"--user-data-dir=" + t.TempDir()}
	cmd := exec.CommandContext(ctx, browser, append(base, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", browser, strings.Join(args, " "), err, lastBytes(stderr.String(), 3000))
	}
	return stdout.String()
}

func lastBytes(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// TestReportPage renders the page from made-up numbers, without ClickHouse:
// hostile names are escaped, empty views render, the numbers are in the
// markup.
func TestReportPage(t *testing.T) {
	evil := `<script>alert("x")</script>&'"`
	d := &reportData{db: "fh_test", funnel: [5]uint64{1000, 400, 100, 50, 0}, funnelRows: 3, funnelRange: [2]string{"2025-01-01", "2025-01-03"},
		funnelSrc: []funnelSourceRow{{source: evil, stages: [5]uint64{600, 300, 80, 40, 0}}, {source: "", stages: [5]uint64{400, 100, 20, 10, 0}}}}
	for i, day := range []string{"2025-01-01", "2025-01-02", "2025-01-04"} {
		d.bounce = append(d.bounce, bounceRow{day: day, source: evil, sessions: uint64(10 + i), bounces: uint64(i)}, bounceRow{day: day, source: "", sessions: 5, bounces: 5})
		d.revenue = append(d.revenue, revenueRow{day: day, currency: "EUR", orders: 2, customers: 2, revenue: decimal.RequireFromString("12.5"), netRev: decimal.RequireFromString("12.5")},
			revenueRow{day: day, currency: evil, orders: 1, customers: 1, revenue: decimal.RequireFromString("1.25"), refunds: decimal.RequireFromString("0.25"), netRev: decimal.RequireFromString("1")})
	}
	d.churn = []churnRow{{month: "2025-01-01"}, {month: "2025-02-01", active: 3, churned: 1, rate: 1.0 / 3}}
	var buf bytes.Buffer
	if err := reportTemplate.Execute(&buf, buildReportPage(d, 5, "auto", time.Unix(0, 0))); err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	checkSelfContained(t, page)
	if strings.Contains(page, "<script>") || !strings.Contains(page, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&amp;&#39;&#34;") {
		t.Error("a source name is not escaped")
	}
	want := reportTruth{funnel: d.funnel, churn: d.churn, revenue: map[string]decimal.Decimal{"EUR": decimal.RequireFromString("37.5"), evil: decimal.RequireFromString("3.75")},
		revenueRows: 6, revenueDays: map[string]bool{"2025-01-01": true, "2025-01-02": true, "2025-01-04": true}, sessions: 10 + 11 + 12 + 15, bounces: 3 + 15}
	checkReportDOM(t, "the made-up page", page, want)
	for _, el := range domElements(page, "data-source") {
		if el[""] == "g" && el["data-source"] != evil && el["data-source"] != "" && el["data-source"] != "(all sources)" {
			t.Errorf("unexpected bounce series %q", el["data-source"])
		}
	}
	if t.Failed() {
		t.Logf("page:\n%s", page)
	}

	// No rows at all: the page still renders and says so.
	buf.Reset()
	if err := reportTemplate.Execute(&buf, buildReportPage(&reportData{db: "fh_empty"}, 5, "auto", time.Unix(0, 0))); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"no rows in bounce_daily", "no rows in churn_monthly", "no rows in revenue_daily"} {
		if !strings.Contains(buf.String(), s) {
			t.Errorf("the empty page does not say %q", s)
		}
	}
	checkSelfContained(t, buf.String())
}

func TestReportFlags(t *testing.T) {
	for _, args := range [][]string{{"--days", "-1"}, {"--sources", "0"}, {"--sources", "9"}, {"--bucket", "month"}, {"extra"}} {
		err := runReport(context.Background(), append([]string{"--clickhouse", "clickhouse://default@127.0.0.1:1/x"}, args...), &bytes.Buffer{})
		if err == nil || strings.Contains(err.Error(), "cannot reach") {
			t.Errorf("report %v: %v, want a flag error", args, err)
		}
	}
}

func TestReportFormatting(t *testing.T) {
	for _, c := range []struct {
		max, top, step float64
	}{{0, 1, 0.2}, {0.47, 0.5, 0.1}, {1, 1, 0.2}, {23456, 25000, 5000}, {3, 3, 1}, {0.004, 0.004, 0.001}, {0.0041, 0.005, 0.001}} {
		top, step := niceScale(c.max, 5)
		if math.Abs(top-c.top) > 1e-9 || math.Abs(step-c.step) > 1e-9 {
			t.Errorf("niceScale(%v) = %v, %v; want %v, %v", c.max, top, step, c.top, c.step)
		}
	}
	for in, want := range map[string]string{"0": "0.00", "1234567.891": "1,234,567.89", "-1234.5": "-1,234.50", "999.999": "1,000.00"} {
		if got := fmtMoney(decimal.RequireFromString(in)); got != want {
			t.Errorf("fmtMoney(%s) = %s, want %s", in, got, want)
		}
	}
	if got := fmtInt(1234567); got != "1,234,567" {
		t.Errorf("fmtInt = %s", got)
	}
	if got := fmt.Sprint(fmtCompact(25000), " ", fmtCompact(1.5e6), " ", fmtCompact(12)); got != "25k 1.5M 12" {
		t.Errorf("fmtCompact = %s", got)
	}
}
