package reporttest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/shopspring/decimal"
)

// Catalogue is what the catalogue views say, for the report's sections per
// lifecycle stage. The zero value is a database without catalogue rows.
type Catalogue struct {
	Traffic      map[string]Traffic // the 8 sources with the most sessions
	EntryPages   []PageTop          // top 10 by entries
	ExitPages    []PageTop          // top 10 by exits
	Satisfaction []Satisfaction
	Trials       []Trial
	Retention    []Retention
	CLVCurrency  string // the currency with the most rows
	CLV          []CLV  // its rows, by cohort and offset
}

// Traffic is a source's sums over the days shown.
type Traffic struct{ Sessions, New, Returning uint64 }

// PageTop is a page's entries and bounces, or exits and page views.
type PageTop struct {
	Page        string
	Count, Part uint64
}

// Satisfaction is a row of satisfaction_monthly.
type Satisfaction struct {
	Month             string
	NPS, CSAT, CES    float64
	NPSN, CSATN, CESN uint64
}

// Trial is a row of trial_conversion_monthly.
type Trial struct {
	Month             string
	Trials, Converted uint64
	Rate              float64
}

// Retention is a row of retention_monthly.
type Retention struct {
	Month             string
	Start, Customers  uint64
	Retention, Repeat float64
}

// CLV is a row of clv_cohort_monthly.
type CLV struct {
	Cohort            string
	Offset, Customers uint64
	CLV               decimal.Decimal
}

// queryCatalogue reads the catalogue views with SQL of its own; days > 0
// limits traffic_daily and pages_daily as the report's --days does.
func queryCatalogue(t testing.TB, ctx context.Context, conn driver.Conn, db string, days int) Catalogue {
	t.Helper()
	c := Catalogue{Traffic: map[string]Traffic{}}
	within := func(view string) string {
		if days <= 0 {
			return ""
		}
		return fmt.Sprintf(" WHERE day > (SELECT max(day) FROM %s.%s) - %d", db, view, days)
	}
	scanAll(t, ctx, conn, "SELECT source, sum(sessions) AS s, sum(new_visitors), sum(returning_visitors) FROM "+db+".traffic_daily"+within("traffic_daily")+
		" GROUP BY source ORDER BY s DESC, source LIMIT 8", func(scan func(...any) error) error {
		var src string
		var r Traffic
		err := scan(&src, &r.Sessions, &r.New, &r.Returning)
		c.Traffic[src] = r
		return err
	})
	for _, p := range []struct {
		rows        *[]PageTop
		count, part string
	}{{&c.EntryPages, "entries", "bounces"}, {&c.ExitPages, "exits", "page_views"}} {
		scanRows(t, ctx, conn, fmt.Sprintf("SELECT page, sum(%s) AS n, sum(%s) FROM %s.pages_daily%s GROUP BY page HAVING n > 0 ORDER BY n DESC, page LIMIT 10",
			p.count, p.part, db, within("pages_daily")), p.rows, func(r *PageTop) []any { return []any{&r.Page, &r.Count, &r.Part} })
	}
	scanRows(t, ctx, conn, "SELECT toString(month), nps, nps_responses, csat, csat_responses, ces_avg, ces_responses FROM "+db+".satisfaction_monthly ORDER BY month",
		&c.Satisfaction, func(r *Satisfaction) []any {
			return []any{&r.Month, &r.NPS, &r.NPSN, &r.CSAT, &r.CSATN, &r.CES, &r.CESN}
		})
	scanRows(t, ctx, conn, "SELECT toString(month), trials, converted, trial_conversion_rate FROM "+db+".trial_conversion_monthly ORDER BY month",
		&c.Trials, func(r *Trial) []any { return []any{&r.Month, &r.Trials, &r.Converted, &r.Rate} })
	scanRows(t, ctx, conn, "SELECT toString(month), customers_at_start, customers, retention_rate, repeat_purchase_rate FROM "+db+".retention_monthly ORDER BY month",
		&c.Retention, func(r *Retention) []any { return []any{&r.Month, &r.Start, &r.Customers, &r.Retention, &r.Repeat} })
	scanAll(t, ctx, conn, "SELECT currency, count() AS n FROM "+db+".clv_cohort_monthly GROUP BY currency ORDER BY n DESC, currency LIMIT 1",
		func(scan func(...any) error) error {
			var n uint64
			return scan(&c.CLVCurrency, &n)
		})
	scanAll(t, ctx, conn, "SELECT toString(cohort_month), month_offset, cohort_customers, toString(clv) FROM "+db+".clv_cohort_monthly WHERE currency = '"+c.CLVCurrency+"' ORDER BY cohort_month, month_offset",
		func(scan func(...any) error) error {
			var r CLV
			var clv string
			if err := scan(&r.Cohort, &r.Offset, &r.Customers, &clv); err != nil {
				return err
			}
			var err error
			r.CLV, err = decimal.NewFromString(clv)
			c.CLV = append(c.CLV, r)
			return err
		})
	return c
}

// checkCatalogue compares the catalogue sections' chart elements with the
// views.
func checkCatalogue(t testing.TB, what, dom string, want Catalogue) {
	t.Helper()
	bars := Elements(dom, "data-traffic-source")
	if len(bars) != len(want.Traffic) {
		t.Errorf("%s: %d traffic bars, want %d sources", what, len(bars), len(want.Traffic))
	}
	for _, el := range bars {
		w, ok := want.Traffic[el["data-traffic-source"]]
		got := Traffic{parseUint(t, el["data-sessions"]), parseUint(t, el["data-new-visitors"]), parseUint(t, el["data-returning-visitors"])}
		if !ok || got != w {
			t.Errorf("%s: traffic bar of %q is %+v, traffic_daily says %+v (a top source: %v)", what, el["data-traffic-source"], got, w, ok)
		}
	}
	for _, p := range []struct {
		attr, count, part, rate string
		want                    []PageTop
		exit                    bool
	}{{"data-entry-page", "data-entries", "data-bounces", "data-bounce-rate", want.EntryPages, false},
		{"data-exit-page", "data-exits", "data-page-views", "data-exit-rate", want.ExitPages, true}} {
		inOrder(t, what, dom, p.attr, p.attr+" bar", p.want, func(el map[string]string, w PageTop) bool {
			rate := ratio(w.Part, w.Count)
			if p.exit {
				rate = ratio(w.Count, w.Part)
			}
			return el[p.attr] == withoutScheme(w.Page) && parseUint(t, el[p.count]) == w.Count && parseUint(t, el[p.part]) == w.Part && parseFloat(t, el[p.rate]) == rate
		})
	}
	type dot struct {
		value float64
		n     uint64
	}
	metric := map[string]map[string]dot{} // view/metric -> month -> dot
	for _, el := range Elements(dom, "data-metric-month") {
		k := el["data-view"] + "/" + el["data-metric-name"]
		if metric[k] == nil {
			metric[k] = map[string]dot{}
		}
		metric[k][el["data-metric-month"]] = dot{parseFloat(t, el["data-value"]), parseUint(t, el["data-n"])}
	}
	checkMetric := func(k string, want map[string]dot) {
		got := metric[k]
		if len(got) != len(want) {
			t.Errorf("%s: %d %s points, want %d", what, len(got), k, len(want))
		}
		for m, w := range want {
			if g, ok := got[m]; !ok || g != w {
				t.Errorf("%s: %s in %s is %+v (present: %v), want %+v", what, k, m, g, ok, w)
			}
		}
	}
	nps, csat, ces := map[string]dot{}, map[string]dot{}, map[string]dot{}
	for _, r := range want.Satisfaction {
		if r.NPSN > 0 {
			nps[r.Month] = dot{r.NPS, r.NPSN}
		}
		if r.CSATN > 0 {
			csat[r.Month] = dot{r.CSAT, r.CSATN}
		}
		if r.CESN > 0 {
			ces[r.Month] = dot{r.CES, r.CESN}
		}
	}
	checkMetric("satisfaction_monthly/NPS", nps)
	checkMetric("satisfaction_monthly/CSAT", csat)
	checkMetric("satisfaction_monthly/CES", ces)
	ret, rep := map[string]dot{}, map[string]dot{}
	for _, r := range want.Retention {
		ret[r.Month] = dot{r.Retention, r.Start}
		rep[r.Month] = dot{r.Repeat, r.Customers}
	}
	checkMetric("retention_monthly/retention", ret)
	checkMetric("retention_monthly/repeat purchase", rep)

	inOrder(t, what, dom, "data-trial-month", "trial bar", want.Trials, func(el map[string]string, w Trial) bool {
		return el["data-trial-month"] == w.Month && parseUint(t, el["data-trials"]) == w.Trials && parseUint(t, el["data-converted"]) == w.Converted && parseFloat(t, el["data-rate"]) == w.Rate
	})

	inOrder(t, what, dom, "data-clv-cohort", "CLV point (in "+want.CLVCurrency+")", want.CLV, func(el map[string]string, w CLV) bool {
		got, err := decimal.NewFromString(el["data-clv"])
		return err == nil && el["data-clv-cohort"] == w.Cohort && el["data-currency"] == want.CLVCurrency && el["data-offset"] == strconv.FormatUint(w.Offset, 10) &&
			parseUint(t, el["data-cohort-customers"]) == w.Customers && got.Equal(w.CLV)
	})
}

// withoutScheme is the page as the report shows it: without http:// or
// https:// (the page is self-contained and names no address).
func withoutScheme(page string) string {
	lower := strings.ToLower(page)
	for _, scheme := range []string{"https://", "http://"} {
		if strings.HasPrefix(lower, scheme) && len(page) > len(scheme) {
			return page[len(scheme):]
		}
	}
	return page
}

// scanRows appends a row to *rows for every row of the query, scanned into
// the fields of the row.
func scanRows[R any](t testing.TB, ctx context.Context, conn driver.Conn, query string, rows *[]R, fields func(*R) []any) {
	t.Helper()
	scanAll(t, ctx, conn, query, func(scan func(...any) error) error {
		var r R
		err := scan(fields(&r)...)
		*rows = append(*rows, r)
		return err
	})
}

// inOrder: the elements with attr, in document order, are one per wanted
// row, each matching its row.
func inOrder[R any](t testing.TB, what, dom, attr, noun string, want []R, match func(el map[string]string, w R) bool) {
	t.Helper()
	els := Elements(dom, attr)
	if len(els) != len(want) {
		t.Errorf("%s: %d elements with %s (%s), want %d", what, len(els), attr, noun, len(want))
		return
	}
	for i, el := range els {
		if !match(el, want[i]) {
			t.Errorf("%s: %s %d is %v, want %+v", what, noun, i, el, want[i])
		}
	}
}
