package main

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/shopspring/decimal"

	chsink "github.com/funnelhouse/funnelhouse/sinks/clickhouse"
)

// The report: the four BI views as terminal tables and, with --html, as
// one self-contained HTML page whose charts are inline SVG drawn here (no
// script, no network). Every chart element carries the numbers it shows in
// data-* attributes, so that a test (or a curious reader) can check them.

//go:embed report.html.tmpl
var reportTemplateText string

var reportTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"f":     fmtCoord,
	"exact": fmtExact,
}).Parse(reportTemplateText))

// The titles of the terminal tables (a test looks for them).
const (
	reportTitleFunnel  = "Lifecycle funnel"
	reportTitleBounce  = "Bounce rate by source"
	reportTitleChurn   = "Churn by month"
	reportTitleRevenue = "Revenue by currency"
)

type reportFlags struct {
	ch      clickhouseFlags
	html    string
	days    int
	sources int
	bucket  string
}

func reportCmd(ctx context.Context, args []string) error {
	return runReport(ctx, args, os.Stdout)
}

// runReport is reportCmd writing its terminal output to w.
func runReport(ctx context.Context, args []string, w io.Writer) error {
	fs := newFlagSet("report", "The metrics of the four BI views (funnel_daily, bounce_daily, churn_monthly, revenue_daily)\n"+
		"as terminal tables and, with --html, as one self-contained HTML page with charts (inline SVG:\n"+
		"no script, nothing fetched from the network). Reads only; the database must have been migrated.")
	var f reportFlags
	f.ch.register(fs)
	fs.StringVar(&f.html, "html", "", "also write the report as one self-contained HTML page to this `file`")
	fs.IntVar(&f.days, "days", 0, "limit the day-level views (funnel cohorts, bounce and revenue days) to the last `N` days up to the latest day present in each; 0: all (churn_monthly is always shown in full)")
	fs.IntVar(&f.sources, "sources", 5, "sources drawn in the bounce-rate chart: the `N` with the most sessions (1-8)")
	fs.StringVar(&f.bucket, "bucket", "auto", "time bucket of the bounce-rate chart: day, week, or auto (week when the days span more than 92 days)")
	if err := parseWithEnv(fs, args); err != nil {
		return err
	}
	switch {
	case f.days < 0:
		return fmt.Errorf("--days must be >= 0, got %d", f.days)
	case f.sources < 1 || f.sources > len(seriesClasses)-1:
		return fmt.Errorf("--sources must be in [1, %d], got %d", len(seriesClasses)-1, f.sources)
	case f.bucket != "auto" && f.bucket != "day" && f.bucket != "week":
		return fmt.Errorf("--bucket must be day, week or auto, got %q", f.bucket)
	}
	e, err := f.ch.endpoint()
	if err != nil {
		return err
	}
	conn, db, err := chsink.Connect(ctx, e)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := checkReportViews(ctx, conn, db); err != nil {
		return err
	}
	if err := printReportTables(ctx, w, conn, db, f.days); err != nil {
		return err
	}
	if f.html == "" {
		return nil
	}
	data, err := loadReport(ctx, conn, db, f.days)
	if err != nil {
		return err
	}
	page := buildReportPage(data, f.sources, f.bucket, time.Now())
	var buf bytes.Buffer
	if err := reportTemplate.Execute(&buf, page); err != nil {
		return fmt.Errorf("cannot render the HTML report: %w", err)
	}
	if err := writeFileAtomic(f.html, buf.Bytes()); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nwrote %s (%d KiB)\n", f.html, (buf.Len()+1023)/1024)
	return nil
}

// checkReportViews says plainly when the database was never migrated.
func checkReportViews(ctx context.Context, conn driver.Conn, db string) error {
	rows, err := conn.Query(ctx, "SELECT name FROM system.tables WHERE database = ? AND name IN ('funnel_daily', 'bounce_daily', 'churn_monthly', 'revenue_daily')", db)
	if err != nil {
		return err
	}
	defer rows.Close()
	have := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return err
		}
		have[n] = true
	}
	if err := rows.Err(); err != nil {
		return err
	}
	var missing []string
	for _, v := range []string{"funnel_daily", "bounce_daily", "churn_monthly", "revenue_daily"} {
		if !have[v] {
			missing = append(missing, v)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("database %s has no %s: run `funnelhouse migrate` (and `funnelhouse run`) against it first", db, strings.Join(missing, ", "))
	}
	return nil
}

func writeFileAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	return nil
}

// ---------------------------------------------------------------------------
// Terminal tables

// dayWhere limits a view to the last days days up to its latest day.
func dayWhere(view, col string, days int) string {
	if days <= 0 {
		return ""
	}
	return fmt.Sprintf(" WHERE %s > (SELECT max(%s) FROM {db}.%s) - %d", col, col, view, days)
}

// viewRange describes the days a (limited) view covers, for the titles.
func viewRange(ctx context.Context, conn driver.Conn, db, view, col string, days int, noun string) (string, error) {
	var from, to string
	var n uint64
	q := expandDB(fmt.Sprintf("SELECT toString(min(%s)), toString(max(%s)), count() FROM {db}.%s%s", col, col, view, dayWhere(view, col, days)), db)
	if err := conn.QueryRow(ctx, q).Scan(&from, &to, &n); err != nil {
		return "", fmt.Errorf("cannot query %s: %w", view, err)
	}
	if n == 0 {
		return "no rows", nil
	}
	if from == to {
		return fmt.Sprintf("%s %s", noun, from), nil
	}
	return fmt.Sprintf("%ss %s .. %s", noun, from, to), nil
}

func printReportTables(ctx context.Context, w io.Writer, conn driver.Conn, db string, days int) error {
	funnelRange, err := viewRange(ctx, conn, db, "funnel_daily", "cohort_day", days, "cohort day")
	if err != nil {
		return err
	}
	bounceRange, err := viewRange(ctx, conn, db, "bounce_daily", "day", days, "day")
	if err != nil {
		return err
	}
	revenueRange, err := viewRange(ctx, conn, db, "revenue_daily", "day", days, "day")
	if err != nil {
		return err
	}
	lastDays := 7
	if days > 0 && days < lastDays {
		lastDays = days
	}
	fw, bw, rw := dayWhere("funnel_daily", "cohort_day", days), dayWhere("bounce_daily", "day", days), dayWhere("revenue_daily", "day", days)
	tables := []struct{ title, sql string }{
		{reportTitleFunnel + ", all sources (funnel_daily; " + funnelRange + ")",
			`SELECT sum(awareness) AS awareness, sum(acquisition) AS acquisition, sum(conversion) AS conversion,
       sum(retention) AS retention, sum(advocacy) AS advocacy,
       round(if(awareness = 0, 0, acquisition / awareness), 3) AS acq_rate,
       round(if(acquisition = 0, 0, conversion / acquisition), 3) AS conv_rate,
       round(if(conversion = 0, 0, retention / conversion), 3) AS ret_rate,
       round(if(retention = 0, 0, advocacy / retention), 3) AS adv_rate
FROM {db}.funnel_daily` + fw},
		{reportTitle(reportTitleFunnel+" by first-touch source", "funnel_daily", funnelRange, "top 10 sources by awareness"),
			`SELECT source, sum(awareness) AS awareness, sum(acquisition) AS acquisition, sum(conversion) AS conversion,
       sum(retention) AS retention, sum(advocacy) AS advocacy,
       round(if(awareness = 0, 0, acquisition / awareness), 3) AS acq_rate,
       round(if(acquisition = 0, 0, conversion / acquisition), 3) AS conv_rate
FROM {db}.funnel_daily` + fw + ` GROUP BY source ORDER BY awareness DESC, source LIMIT 10`},
		{reportTitle(reportTitleBounce, "bounce_daily", bounceRange, "top 10 sources by sessions"),
			`SELECT source, sum(sessions) AS sessions, sum(bounces) AS bounces, round(if(sessions = 0, 0, bounces / sessions), 3) AS bounce_rate
FROM {db}.bounce_daily` + bw + ` GROUP BY source ORDER BY sessions DESC, source LIMIT 10`},
		{reportTitleChurn + " (churn_monthly; every month)",
			`SELECT toString(month) AS month, active_at_start, churned, reactivated, round(churn_rate, 3) AS churn_rate
FROM {db}.churn_monthly ORDER BY month`},
		{reportTitle(reportTitleRevenue, "revenue_daily", revenueRange, ""),
			`SELECT currency, count() AS days, sum(orders) AS orders, toString(sum(revenue)) AS revenue, toString(sum(refunds)) AS refunds,
       toString(sum(net_revenue)) AS net_revenue
FROM {db}.revenue_daily` + rw + ` GROUP BY currency ORDER BY currency`},
		{fmt.Sprintf("Revenue by day, last %d days (revenue_daily)", lastDays),
			`SELECT toString(day) AS date, currency, orders, toString(revenue) AS revenue, toString(refunds) AS refunds,
       toString(net_revenue) AS net_revenue, customers
FROM {db}.revenue_daily` + dayWhere("revenue_daily", "day", lastDays) + ` ORDER BY day, currency`},
	}
	fmt.Fprintf(w, "funnelhouse report: database %s\n", db)
	for _, t := range tables {
		fmt.Fprintf(w, "\n%s\n", t.title)
		if err := printQuery(ctx, w, conn, expandDB(t.sql, db)); err != nil {
			return fmt.Errorf("cannot query %q: %w", t.title, err)
		}
	}
	return nil
}

func reportTitle(title, view, rng, extra string) string {
	s := title + " (" + view + "; " + rng
	if extra != "" && rng != "no rows" {
		s += "; " + extra
	}
	return s + ")"
}

// ---------------------------------------------------------------------------
// Data for the page

type reportData struct {
	db          string
	days        int
	funnel      [5]uint64 // awareness .. advocacy
	funnelRows  uint64
	funnelRange [2]string
	funnelSrc   []funnelSourceRow // the sources with the most awareness
	bounce      []bounceRow       // daily, ordered by day, source
	churn       []churnRow
	revenue     []revenueRow // ordered by day, currency
}

type funnelSourceRow struct {
	source string
	stages [5]uint64
}

// funnelSources is how many sources the funnel's by-source table shows.
const funnelSources = 8

type bounceRow struct {
	day               string
	source            string
	sessions, bounces uint64
}

type churnRow struct {
	month                        string
	active, churned, reactivated uint64
	rate                         float64
}

type revenueRow struct {
	day, currency            string
	orders, customers        uint64
	revenue, refunds, netRev decimal.Decimal
}

var funnelStages = [5]string{"awareness", "acquisition", "conversion", "retention", "advocacy"}

func loadReport(ctx context.Context, conn driver.Conn, db string, days int) (*reportData, error) {
	d := &reportData{db: db, days: days}
	q := func(sql string) string { return expandDB(sql, db) }
	fw := dayWhere("funnel_daily", "cohort_day", days)
	var from, to string
	err := conn.QueryRow(ctx, q(`SELECT toUInt64(sum(awareness)), toUInt64(sum(acquisition)), toUInt64(sum(conversion)),
       toUInt64(sum(retention)), toUInt64(sum(advocacy)), count(), toString(min(cohort_day)), toString(max(cohort_day))
FROM {db}.funnel_daily`+fw)).Scan(&d.funnel[0], &d.funnel[1], &d.funnel[2], &d.funnel[3], &d.funnel[4], &d.funnelRows, &from, &to)
	if err != nil {
		return nil, fmt.Errorf("cannot query funnel_daily: %w", err)
	}
	if d.funnelRows > 0 {
		d.funnelRange = [2]string{from, to}
	}
	err = queryEach(ctx, conn, q(fmt.Sprintf(`SELECT source, toUInt64(sum(awareness)) AS aw, toUInt64(sum(acquisition)), toUInt64(sum(conversion)),
       toUInt64(sum(retention)), toUInt64(sum(advocacy))
FROM {db}.funnel_daily%s GROUP BY source ORDER BY aw DESC, source LIMIT %d`, fw, funnelSources)), func(scan func(...any) error) error {
		var r funnelSourceRow
		if err := scan(&r.source, &r.stages[0], &r.stages[1], &r.stages[2], &r.stages[3], &r.stages[4]); err != nil {
			return err
		}
		d.funnelSrc = append(d.funnelSrc, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cannot query funnel_daily by source: %w", err)
	}

	err = queryEach(ctx, conn, q(`SELECT toString(day), source, toUInt64(sessions), toUInt64(bounces) FROM {db}.bounce_daily`+
		dayWhere("bounce_daily", "day", days)+` ORDER BY day, source`), func(scan func(...any) error) error {
		var r bounceRow
		if err := scan(&r.day, &r.source, &r.sessions, &r.bounces); err != nil {
			return err
		}
		d.bounce = append(d.bounce, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cannot query bounce_daily: %w", err)
	}

	err = queryEach(ctx, conn, q(`SELECT toString(month), toUInt64(active_at_start), toUInt64(churned), toUInt64(reactivated), toFloat64(churn_rate)
FROM {db}.churn_monthly ORDER BY month`), func(scan func(...any) error) error {
		var r churnRow
		if err := scan(&r.month, &r.active, &r.churned, &r.reactivated, &r.rate); err != nil {
			return err
		}
		d.churn = append(d.churn, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cannot query churn_monthly: %w", err)
	}

	err = queryEach(ctx, conn, q(`SELECT toString(day), currency, toUInt64(orders), toString(revenue), toString(refunds), toString(net_revenue), toUInt64(customers)
FROM {db}.revenue_daily`+dayWhere("revenue_daily", "day", days)+` ORDER BY day, currency`), func(scan func(...any) error) error {
		var r revenueRow
		var rev, ref, net string
		if err := scan(&r.day, &r.currency, &r.orders, &rev, &ref, &net, &r.customers); err != nil {
			return err
		}
		var err error
		if r.revenue, err = decimal.NewFromString(rev); err != nil {
			return err
		}
		if r.refunds, err = decimal.NewFromString(ref); err != nil {
			return err
		}
		if r.netRev, err = decimal.NewFromString(net); err != nil {
			return err
		}
		d.revenue = append(d.revenue, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cannot query revenue_daily: %w", err)
	}
	return d, nil
}

func queryEach(ctx context.Context, conn driver.Conn, sql string, each func(scan func(...any) error) error) error {
	rows, err := conn.Query(ctx, sql)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := each(rows.Scan); err != nil {
			return err
		}
	}
	return rows.Err()
}

// ---------------------------------------------------------------------------
// The page: geometry computed here, markup in report.html.tmpl

// seriesClasses are the CSS classes of the line colours (report.html.tmpl);
// the last one is the dashed "all sources" line.
var seriesClasses = []string{"c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "call"}

type reportPage struct {
	Database  string
	Generated string
	Days      int
	KPIs      []reportKPI
	Funnel    funnelView
	Bounce    bounceView
	Churn     churnView
	Revenue   revenueView
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

type lineSeries[D any] struct {
	Name, Class string
	Path        string
	Dots        []D
}

type bounceView struct {
	Range, Bucket string
	Empty         bool
	Axes          axes
	Series        []lineSeries[bounceDot]
	Table         htmlTable
}

type bounceDot struct {
	X, Y, R           float64
	Source, Bucket    string
	Rate              float64
	Sessions, Bounces uint64
	Title             string
}

type churnView struct {
	Empty bool
	Axes  axes
	Bars  []churnBar
	Table htmlTable
}

type churnBar struct {
	X, Y, W, H, LabelX, LabelY   float64
	ShowLabel                    bool
	Month                        string
	Rate                         float64
	Active, Churned, Reactivated uint64
	RateText, Title              string
}

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

const (
	chartW = 640.0
	chartH = 320.0
)

func buildReportPage(d *reportData, topSources int, bucket string, now time.Time) *reportPage {
	p := &reportPage{Database: d.db, Generated: now.UTC().Format("2006-01-02 15:04:05 UTC"), Days: d.days}
	p.Funnel = buildFunnel(d)
	p.Bounce = buildBounce(d, topSources, bucket)
	p.Churn = buildChurn(d)
	p.Revenue = buildRevenue(d)
	p.KPIs = buildKPIs(d)
	return p
}

func buildKPIs(d *reportData) []reportKPI {
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

func buildFunnel(d *reportData) funnelView {
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

func buildBounce(d *reportData, topSources int, bucket string) bounceView {
	v := bounceView{Axes: newAxes("bounce rate"), Empty: len(d.bounce) == 0, Range: "no rows"}
	if v.Empty {
		v.Bucket = "day"
		return v
	}
	first, last := d.bounce[0].day, d.bounce[len(d.bounce)-1].day
	v.Range = "days " + first + " .. " + last
	t0, t1 := parseDay(first), parseDay(last)
	if bucket == "auto" {
		bucket = "day"
		if t1.Sub(t0) > 92*24*time.Hour {
			bucket = "week"
		}
	}
	v.Bucket = bucket
	bucketOf := func(day string) string {
		if bucket == "week" {
			t := parseDay(day)
			return t.AddDate(0, 0, -((int(t.Weekday()) + 6) % 7)).Format("2006-01-02") // Monday
		}
		return day
	}
	type agg = bounceAgg
	bySource := map[string]map[string]*agg{}
	all := map[string]*agg{}
	total := map[string]uint64{}
	var buckets []string
	for _, r := range d.bounce {
		b := bucketOf(r.day)
		if all[b] == nil {
			all[b] = &agg{}
			buckets = append(buckets, b)
		}
		all[b].sessions += r.sessions
		all[b].bounces += r.bounces
		if bySource[r.source] == nil {
			bySource[r.source] = map[string]*agg{}
		}
		a := bySource[r.source][b]
		if a == nil {
			a = &agg{}
			bySource[r.source][b] = a
		}
		a.sessions += r.sessions
		a.bounces += r.bounces
		total[r.source] += r.sessions
	}
	sort.Strings(buckets)
	sources := make([]string, 0, len(total))
	for s := range total {
		sources = append(sources, s)
	}
	sort.Slice(sources, func(i, j int) bool {
		if total[sources[i]] != total[sources[j]] {
			return total[sources[i]] > total[sources[j]]
		}
		return sources[i] < sources[j]
	})
	if len(sources) > topSources {
		sources = sources[:topSources]
	}
	maxRate := 0.0
	for _, b := range buckets {
		maxRate = math.Max(maxRate, ratio(all[b].bounces, all[b].sessions))
		for _, s := range sources {
			if a := bySource[s][b]; a != nil {
				maxRate = math.Max(maxRate, ratio(a.bounces, a.sessions))
			}
		}
	}
	top := v.Axes.yScale(math.Min(maxRate, 1), fmtPctShort)
	bt0, bt1 := parseDay(buckets[0]), parseDay(buckets[len(buckets)-1])
	sc := newDayScale(v.Axes, bt0, bt1)
	v.Axes.XTicks = dateTicks(sc, bt1)
	r := dotRadius(len(buckets))
	mk := func(name, class string, get func(b string) *agg) lineSeries[bounceDot] {
		ls := lineSeries[bounceDot]{Name: name, Class: class}
		var path strings.Builder
		prevIdx := -2
		for i, b := range buckets {
			a := get(b)
			if a == nil || a.sessions == 0 {
				continue
			}
			rate := ratio(a.bounces, a.sessions)
			dot := bounceDot{X: sc.x(parseDay(b)), Y: v.Axes.y(rate, top), R: r, Source: name, Bucket: b, Rate: rate, Sessions: a.sessions, Bounces: a.bounces}
			dot.Title = fmt.Sprintf("%s, %s %s: %s bounce rate (%s of %s sessions)", displaySource(name), bucketNoun(bucket), b, fmtPct(rate), fmtInt(a.bounces), fmtInt(a.sessions))
			// A bucket without sessions breaks the line; with weekly
			// buckets a missing week is a gap too.
			cmd := "L"
			if prevIdx != i-1 {
				cmd = "M"
			}
			fmt.Fprintf(&path, "%s%s %s ", cmd, fmtCoord(dot.X), fmtCoord(dot.Y))
			prevIdx = i
			ls.Dots = append(ls.Dots, dot)
		}
		ls.Path = strings.TrimSpace(path.String())
		return ls
	}
	for i, s := range sources {
		src := s
		v.Series = append(v.Series, mk(s, seriesClasses[i], func(b string) *agg { return bySource[src][b] }))
	}
	v.Series = append(v.Series, mk("(all sources)", "call", func(b string) *agg { return all[b] }))

	v.Table.Head = []string{bucketNoun(bucket)}
	for _, s := range v.Series {
		v.Table.Head = append(v.Table.Head, displaySource(s.Name))
	}
	for _, b := range buckets {
		row := []string{b}
		for _, s := range sources {
			row = append(row, rateCell(bySource[s][b]))
		}
		row = append(row, rateCell(all[b]))
		v.Table.Rows = append(v.Table.Rows, row)
	}
	return v
}

// bounceAgg is the sessions and bounces of a source (or all) in a bucket.
type bounceAgg struct{ sessions, bounces uint64 }

func rateCell(a *bounceAgg) string {
	if a == nil || a.sessions == 0 {
		return "-"
	}
	return fmtPct(ratio(a.bounces, a.sessions))
}

func bucketNoun(bucket string) string {
	if bucket == "week" {
		return "week of"
	}
	return "day"
}

func displaySource(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

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

func buildChurn(d *reportData) churnView {
	v := churnView{Axes: newAxes("churn rate"), Empty: len(d.churn) == 0}
	v.Table.Head = []string{"month", "active at start", "churned", "reactivated", "churn rate"}
	if v.Empty {
		return v
	}
	maxRate := 0.0
	for _, r := range d.churn {
		maxRate = math.Max(maxRate, r.rate)
	}
	top := v.Axes.yScale(maxRate, fmtPctShort)
	n := float64(len(d.churn))
	band := (v.Axes.R - v.Axes.L) / n
	every := int(math.Ceil(34 / band)) // x labels at least 34 units apart
	for i, r := range d.churn {
		x := v.Axes.L + band*float64(i)
		bar := churnBar{Month: r.month, Rate: r.rate, Active: r.active, Churned: r.churned, Reactivated: r.reactivated}
		bar.W = band * 0.72
		bar.X = x + (band-bar.W)/2
		bar.Y = v.Axes.y(r.rate, top)
		bar.H = v.Axes.B - bar.Y
		bar.LabelX = x + band/2
		bar.LabelY = bar.Y - 4
		bar.ShowLabel = band >= 30
		bar.RateText = fmtPctShort(r.rate)
		if r.rate > 0 && r.rate < 0.1 {
			bar.RateText = fmtPct(r.rate)
		}
		bar.Title = fmt.Sprintf("%s: churn rate %s (%s churned of %s active at the start; %s reactivated)", r.month[:7], fmtPct(r.rate), fmtInt(r.churned), fmtInt(r.active), fmtInt(r.reactivated))
		v.Bars = append(v.Bars, bar)
		if i%every == 0 {
			m := parseDay(r.month)
			t := tick{Pos: bar.LabelX, Label: m.Format("Jan")}
			if i == 0 || m.Month() <= time.Month(every) {
				t.Sub = m.Format("2006")
			}
			v.Axes.XTicks = append(v.Axes.XTicks, t)
		}
		v.Table.Rows = append(v.Table.Rows, []string{r.month[:7], fmtInt(r.active), fmtInt(r.churned), fmtInt(r.reactivated), fmtPct(r.rate)})
	}
	return v
}

func buildRevenue(d *reportData) revenueView {
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

// ---------------------------------------------------------------------------
// Formatting

func parseDay(s string) time.Time {
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		return time.Time{}
	}
	return t
}

func ratio(a, b uint64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// fmtCoord is an SVG coordinate: at most two decimals.
func fmtCoord(v float64) string {
	s := strconv.FormatFloat(v, 'f', 2, 64)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	if s == "-0" || s == "" {
		return "0"
	}
	return s
}

// fmtExact is a float in data attributes: the shortest text that reads back
// as the same float64.
func fmtExact(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

func fmtInt(v uint64) string { return groupThousands(strconv.FormatUint(v, 10)) }

func groupThousands(digits string) string {
	neg := strings.HasPrefix(digits, "-")
	digits = strings.TrimPrefix(digits, "-")
	var b strings.Builder
	for i, c := range digits {
		if i > 0 && (len(digits)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func fmtPct(r float64) string { return strconv.FormatFloat(r*100, 'f', 1, 64) + "%" }

func fmtPctShort(r float64) string {
	s := strconv.FormatFloat(r*100, 'f', 1, 64)
	return strings.TrimSuffix(s, ".0") + "%"
}

func fmtMoney(d decimal.Decimal) string {
	s := d.StringFixed(2)
	intPart, frac, _ := strings.Cut(s, ".")
	return groupThousands(intPart) + "." + frac
}

func fmtCompact(v float64) string {
	a := math.Abs(v)
	trim := func(x float64, suffix string) string {
		return strings.TrimSuffix(strconv.FormatFloat(x, 'f', 1, 64), ".0") + suffix
	}
	switch {
	case a >= 1e9:
		return trim(v/1e9, "G")
	case a >= 1e6:
		return trim(v/1e6, "M")
	case a >= 1e3:
		return trim(v/1e3, "k")
	default:
		return trim(v, "")
	}
}
