package expected

// The lifecycle metric catalogue (SPEC §6.1 and its "Readings"), computed
// from the sessions, transitions and events of Compute, with maps and
// loops: no code or SQL of the pipeline.

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/funnelhouse/funnelhouse/schemas"
)

// TrafficRow is one row of traffic_daily.
type TrafficRow struct {
	Day, Source, Medium                 string
	Sessions, Visitors, NewVisitors     uint64
	ReturningVisitors, PageViews        uint64
	PagesPerSession, AvgSessionDuration float64
	BounceRate                          float64
}

// VisitorConversionRow is one row of visitor_conversion_daily.
type VisitorConversionRow struct {
	Day, VisitorType            string // "new" or "returning"
	Sessions, ConvertedSessions uint64
	ConversionRate              float64
}

// PageRow is one row of pages_daily.
type PageRow struct {
	Day, Page                          string
	Entries, Exits, Bounces, PageViews uint64
	BounceRate, ExitRate               float64
}

// SatisfactionRow is one row of satisfaction_monthly.
type SatisfactionRow struct {
	Month                                         string
	NPSResponses, Promoters, Passives, Detractors uint64
	NPS                                           float64
	CSATResponses                                 uint64
	CSAT, CSATAvg                                 float64
	CESResponses                                  uint64
	CESAvg                                        float64
	Reviews                                       uint64
	AvgRating                                     float64
	Referrals                                     uint64
}

// TrialRow is one row of trial_conversion_monthly.
type TrialRow struct {
	Month               string
	Trials, Converted   uint64
	TrialConversionRate float64
}

// AvgOrderValueRow is revenue_daily's avg_order_value for one row.
type AvgOrderValueRow struct {
	Day, Currency string
	AvgOrderValue schemas.Amount
}

// RetentionRow is one row of retention_monthly.
type RetentionRow struct {
	Month                                          string
	CustomersAtStart, NewCustomers, CustomersAtEnd uint64
	RetentionRate                                  float64
	Customers, RepeatCustomers                     uint64
	RepeatPurchaseRate                             float64
}

// CLVRow is one row of clv_cohort_monthly.
type CLVRow struct {
	CohortMonth, Currency                 string
	MonthOffset                           uint64
	CohortCustomers, OrderingCustomers    uint64
	NetRevenue, CumulativeNetRevenue, CLV schemas.Amount
}

// Page is the page of a url: the url up to, not including, its first '?'
// or '#'.
func Page(url string) string {
	if i := strings.IndexAny(url, "?#"); i >= 0 {
		return url[:i]
	}
	return url
}

// Month returns the first day of the UTC month holding ms, "YYYY-MM-01".
func Month(ms int64) string { return monthStart(ms).Format(time.DateOnly) }

// catalogue fills the catalogue views of res. events are the on-time
// events (res was computed from them), late the late ones: these count in
// satisfaction, trials, revenue, retention's orders and CLV, never in
// sessions.
func catalogue(res *Result, events, late []schemas.Event) {
	all := make([]*schemas.Event, 0, len(events)+len(late))
	for i := range events {
		all = append(all, &events[i])
	}
	for i := range late {
		all = append(all, &late[i])
	}
	cohortDay := map[string]string{} // visitor → cohort day
	conversion := map[string]int64{} // customer → ts of the conversion
	for _, t := range res.Transitions {
		switch t.Stage {
		case StageAwareness:
			cohortDay[t.VisitorID] = t.CohortDay
		case StageConversion:
			conversion[t.VisitorID] = t.TsMs
		}
	}
	res.Traffic = trafficDaily(res.Sessions, cohortDay)
	res.VisitorConversion = visitorConversionDaily(res.Sessions)
	res.Pages = pagesDaily(res, events)
	res.Satisfaction = satisfactionMonthly(all)
	res.Trials = trialConversionMonthly(all)
	res.AvgOrderValue = avgOrderValue(res.Revenue)
	res.Retention = retentionMonthly(res, all, conversion)
	res.CLV = clvCohortMonthly(all, conversion)
}

func trafficDaily(sessions []SessionRow, cohortDay map[string]string) []TrafficRow {
	type key struct{ day, source, medium string }
	type acc struct {
		row               TrafficRow
		visitors, newOnes map[string]bool
		durationMs        int64
		bounces           uint64
	}
	rows := map[key]*acc{}
	for _, s := range sessions {
		k := key{Day(s.StartMs), s.Source, s.Medium}
		a := rows[k]
		if a == nil {
			a = &acc{row: TrafficRow{Day: k.day, Source: k.source, Medium: k.medium}, visitors: map[string]bool{}, newOnes: map[string]bool{}}
			rows[k] = a
		}
		a.row.Sessions++
		a.visitors[s.VisitorID] = true
		if cohortDay[s.VisitorID] == k.day { // new: the visitor's cohort day is this day
			a.newOnes[s.VisitorID] = true
		}
		a.row.PageViews += uint64(s.PageViews)
		a.durationMs += s.EndMs - s.StartMs
		if s.IsBounce {
			a.bounces++
		}
	}
	var out []TrafficRow
	for _, a := range rows {
		r := a.row
		r.Visitors, r.NewVisitors = uint64(len(a.visitors)), uint64(len(a.newOnes))
		r.ReturningVisitors = r.Visitors - r.NewVisitors
		r.PagesPerSession = rate(r.PageViews, r.Sessions)
		// The mean of exact milliseconds, divided as the view does.
		r.AvgSessionDuration = float64(a.durationMs) / 1000 / float64(r.Sessions)
		r.BounceRate = rate(a.bounces, r.Sessions)
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b TrafficRow) int {
		return cmp.Or(strings.Compare(a.Day, b.Day), strings.Compare(a.Source, b.Source), strings.Compare(a.Medium, b.Medium))
	})
	return out
}

func visitorConversionDaily(sessions []SessionRow) []VisitorConversionRow {
	first := map[string]int64{} // visitor → start of their first session
	for _, s := range sessions {
		if f, ok := first[s.VisitorID]; !ok || s.StartMs < f {
			first[s.VisitorID] = s.StartMs
		}
	}
	type key struct{ day, typ string }
	rows := map[key]*VisitorConversionRow{}
	for _, s := range sessions {
		k := key{Day(s.StartMs), "returning"}
		if first[s.VisitorID] == s.StartMs {
			k.typ = "new"
		}
		r := rows[k]
		if r == nil {
			r = &VisitorConversionRow{Day: k.day, VisitorType: k.typ}
			rows[k] = r
		}
		r.Sessions++
		if s.Orders > 0 {
			r.ConvertedSessions++
		}
	}
	var out []VisitorConversionRow
	for _, r := range rows {
		r.ConversionRate = rate(r.ConvertedSessions, r.Sessions)
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b VisitorConversionRow) int {
		return cmp.Or(strings.Compare(a.Day, b.Day), strings.Compare(a.VisitorType, b.VisitorType))
	})
	return out
}

func pagesDaily(res *Result, events []schemas.Event) []PageRow {
	type key struct{ day, page string }
	rows := map[key]*PageRow{}
	row := func(k key) *PageRow {
		r := rows[k]
		if r == nil {
			r = &PageRow{Day: k.day, Page: k.page}
			rows[k] = r
		}
		return r
	}
	start := map[string]int64{} // session id → start
	for _, s := range res.Sessions {
		start[s.SessionID] = s.StartMs
		day := Day(s.StartMs)
		if s.EntryURL != "" { // an event without url has no page
			r := row(key{day, Page(s.EntryURL)})
			r.Entries++
			if s.IsBounce {
				r.Bounces++
			}
		}
		if s.ExitURL != "" {
			row(key{day, Page(s.ExitURL)}).Exits++
		}
	}
	for i := range events {
		e := &events[i]
		if e.Type != schemas.PageView || e.URL == "" {
			continue
		}
		o, _ := res.Outcome(e.VisitorID, e.EventID)
		sid := o.Session
		if sid == "" {
			continue
		}
		row(key{Day(start[sid]), Page(e.URL)}).PageViews++
	}
	var out []PageRow
	for _, r := range rows {
		r.BounceRate = rate(r.Bounces, r.Entries)
		r.ExitRate = rate(r.Exits, r.PageViews)
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b PageRow) int {
		return cmp.Or(strings.Compare(a.Day, b.Day), strings.Compare(a.Page, b.Page))
	})
	return out
}

func satisfactionMonthly(all []*schemas.Event) []SatisfactionRow {
	type acc struct {
		row                        SatisfactionRow
		satisfied                  uint64
		csatSum, cesSum, ratingSum uint64
	}
	rows := map[string]*acc{}
	seen := map[string]bool{} // counted once per (visitor_id, event_id)
	for _, e := range all {
		if e.Type != schemas.Survey && e.Type != schemas.Review && e.Type != schemas.Referral {
			continue
		}
		if k := EventKey(e.VisitorID, e.EventID); seen[k] {
			continue
		} else {
			seen[k] = true
		}
		m := Month(e.TsMs)
		a := rows[m]
		if a == nil {
			a = &acc{row: SatisfactionRow{Month: m}}
			rows[m] = a
		}
		r := &a.row
		switch e.Type {
		case schemas.Survey:
			if e.NPS != schemas.Absent {
				r.NPSResponses++
				switch {
				case e.NPS >= 9:
					r.Promoters++
				case e.NPS >= 7:
					r.Passives++
				default:
					r.Detractors++
				}
			}
			if e.CSAT != schemas.Absent {
				r.CSATResponses++
				a.csatSum += uint64(e.CSAT)
				if e.CSAT >= 4 {
					a.satisfied++
				}
			}
			if e.CES != schemas.Absent {
				r.CESResponses++
				a.cesSum += uint64(e.CES)
			}
		case schemas.Review:
			r.Reviews++
			a.ratingSum += uint64(e.Rating)
		case schemas.Referral:
			r.Referrals++
		}
	}
	var out []SatisfactionRow
	for _, a := range rows {
		r := a.row
		if r.NPSResponses+r.CSATResponses+r.CESResponses+r.Reviews+r.Referrals == 0 {
			continue // a survey without any score counts nowhere
		}
		if r.NPSResponses > 0 {
			r.NPS = float64(100*(int64(r.Promoters)-int64(r.Detractors))) / float64(r.NPSResponses)
		}
		r.CSAT = rate(100*a.satisfied, r.CSATResponses)
		r.CSATAvg = rate(a.csatSum, r.CSATResponses)
		r.CESAvg = rate(a.cesSum, r.CESResponses)
		r.AvgRating = rate(a.ratingSum, r.Reviews)
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b SatisfactionRow) int { return strings.Compare(a.Month, b.Month) })
	return out
}

func trialConversionMonthly(all []*schemas.Event) []TrialRow {
	firstTrial := map[string]int64{}
	var visitors []string
	for _, e := range all {
		if e.Type == schemas.SubscriptionStarted && e.Trial {
			if t, ok := firstTrial[e.VisitorID]; !ok || e.TsMs < t {
				if !ok {
					visitors = append(visitors, e.VisitorID)
				}
				firstTrial[e.VisitorID] = e.TsMs
			}
		}
	}
	converted := map[string]bool{}
	for _, e := range all {
		t, ok := firstTrial[e.VisitorID]
		isConversion := e.Type == schemas.OrderCompleted || e.Type == schemas.SubscriptionStarted && !e.Trial
		if ok && isConversion && e.TsMs > t { // strictly later, any time later
			converted[e.VisitorID] = true
		}
	}
	rows := map[string]*TrialRow{}
	for _, v := range visitors {
		m := Month(firstTrial[v])
		r := rows[m]
		if r == nil {
			r = &TrialRow{Month: m}
			rows[m] = r
		}
		r.Trials++
		if converted[v] {
			r.Converted++
		}
	}
	var out []TrialRow
	for _, r := range rows {
		r.TrialConversionRate = rate(r.Converted, r.Trials)
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b TrialRow) int { return strings.Compare(a.Month, b.Month) })
	return out
}

func avgOrderValue(revenue []RevenueRow) []AvgOrderValueRow {
	out := make([]AvgOrderValueRow, 0, len(revenue))
	for _, r := range revenue {
		a := AvgOrderValueRow{Day: r.Day, Currency: r.Currency}
		if r.Orders > 0 {
			a.AvgOrderValue = r.Revenue / schemas.Amount(r.Orders) // truncated to 4 places
		}
		out = append(out, a)
	}
	return out
}

// firstOrders returns, per customer, the ts of each distinct order_id (its
// earliest copy), sorted.
func firstOrders(all []*schemas.Event, conversion map[string]int64) map[string][]int64 {
	type vo struct{ visitor, order string }
	ts := map[vo]int64{}
	for _, e := range all {
		if e.Type != schemas.OrderCompleted {
			continue
		}
		if _, customer := conversion[e.VisitorID]; !customer {
			continue
		}
		k := vo{e.VisitorID, e.OrderID}
		if t, ok := ts[k]; !ok || e.TsMs < t {
			ts[k] = e.TsMs
		}
	}
	out := map[string][]int64{}
	for k, t := range ts {
		out[k.visitor] = append(out[k.visitor], t)
	}
	for _, v := range out {
		slices.Sort(v)
	}
	return out
}

func retentionMonthly(res *Result, all []*schemas.Event, conversion map[string]int64) []RetentionRow {
	// Each customer's conversion/churned/reactivated transitions in order.
	type status struct {
		ts    int64
		stage string
	}
	history := map[string][]status{}
	for _, t := range res.Transitions {
		if t.Stage == StageConversion || t.Stage == StatusChurned || t.Stage == StatusReactivated {
			history[t.VisitorID] = append(history[t.VisitorID], status{t.TsMs, t.Stage})
		}
	}
	// activeAt counts customers whose latest such transition before instant
	// ms is not churned.
	activeAt := func(ms int64) uint64 {
		var n uint64
		for _, h := range history {
			latest := ""
			for _, s := range h {
				if s.ts < ms {
					latest = s.stage
				}
			}
			if latest != "" && latest != StatusChurned {
				n++
			}
		}
		return n
	}
	orders := firstOrders(all, conversion)
	var out []RetentionRow
	for _, c := range res.Churn { // rows as churn_monthly
		m, _ := time.Parse(time.DateOnly, c.Month)
		startMs, endMs := m.UnixMilli(), m.AddDate(0, 1, 0).UnixMilli()
		r := RetentionRow{Month: c.Month, CustomersAtStart: activeAt(startMs), CustomersAtEnd: activeAt(endMs)}
		for _, ts := range conversion {
			if startMs <= ts && ts < endMs {
				r.NewCustomers++
			}
		}
		for _, ts := range orders {
			if ts[0] < endMs {
				r.Customers++
			}
			if len(ts) >= 2 && ts[1] < endMs {
				r.RepeatCustomers++
			}
		}
		if r.CustomersAtStart > 0 {
			r.RetentionRate = float64(int64(r.CustomersAtEnd)-int64(r.NewCustomers)) / float64(r.CustomersAtStart)
		}
		r.RepeatPurchaseRate = rate(r.RepeatCustomers, r.Customers)
		out = append(out, r)
	}
	return out
}

// monthsBetween is the number of months from month a to month b
// ("YYYY-MM-01").
func monthsBetween(a, b string) int {
	ta, _ := time.Parse(time.DateOnly, a)
	tb, _ := time.Parse(time.DateOnly, b)
	return (tb.Year()-ta.Year())*12 + int(tb.Month()) - int(ta.Month())
}

func clvCohortMonthly(all []*schemas.Event, conversion map[string]int64) []CLVRow {
	cohortOf := map[string]string{}
	cohortSize := map[string]uint64{}
	for v, ts := range conversion {
		cohortOf[v] = Month(ts)
		cohortSize[Month(ts)]++
	}
	type pair struct{ cohort, currency string }
	type cell struct {
		ordering map[string]bool
		net      schemas.Amount
	}
	pairs := map[pair]bool{}
	cells := map[pair]map[int]*cell{}
	lastMonth := ""
	seenOrder := map[string]bool{}  // an order_id counts once
	seenRefund := map[string]bool{} // a refund once per event
	// Deterministic: the first copy of an order is the earliest.
	sorted := slices.Clone(all)
	slices.SortFunc(sorted, func(a, b *schemas.Event) int {
		return cmp.Or(cmp.Compare(a.TsMs, b.TsMs), strings.Compare(a.VisitorID, b.VisitorID), strings.Compare(a.EventID, b.EventID))
	})
	for _, e := range sorted {
		if e.Type != schemas.OrderCompleted && e.Type != schemas.OrderRefunded {
			continue
		}
		if m := Month(e.TsMs); m > lastMonth { // any order or refund in the data
			lastMonth = m
		}
		cohort, customer := cohortOf[e.VisitorID]
		if !customer {
			continue
		}
		if e.Type == schemas.OrderCompleted {
			if seenOrder[e.OrderID] {
				continue
			}
			seenOrder[e.OrderID] = true
			pairs[pair{cohort, e.Currency}] = true
		} else {
			k := EventKey(e.VisitorID, e.EventID)
			if seenRefund[k] {
				continue
			}
			seenRefund[k] = true
		}
		offset := monthsBetween(cohort, Month(e.TsMs))
		if offset < 0 {
			continue // before the cohort month: not in any row
		}
		p := pair{cohort, e.Currency}
		if cells[p] == nil {
			cells[p] = map[int]*cell{}
		}
		c := cells[p][offset]
		if c == nil {
			c = &cell{ordering: map[string]bool{}}
			cells[p][offset] = c
		}
		if e.Type == schemas.OrderCompleted {
			c.ordering[e.VisitorID] = true
			c.net += e.Amount
		} else {
			c.net -= e.Amount
		}
	}
	var out []CLVRow
	for p := range pairs {
		var cum schemas.Amount
		n := cohortSize[p.cohort]
		for off := 0; off <= monthsBetween(p.cohort, lastMonth); off++ {
			r := CLVRow{CohortMonth: p.cohort, Currency: p.currency, MonthOffset: uint64(off), CohortCustomers: n}
			if c := cells[p][off]; c != nil {
				r.OrderingCustomers = uint64(len(c.ordering))
				r.NetRevenue = c.net
			}
			cum += r.NetRevenue
			r.CumulativeNetRevenue = cum
			r.CLV = cum / schemas.Amount(n) // truncated toward zero, 4 places
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b CLVRow) int {
		return cmp.Or(strings.Compare(a.CohortMonth, b.CohortMonth), strings.Compare(a.Currency, b.Currency), cmp.Compare(a.MonthOffset, b.MonthOffset))
	})
	return out
}
