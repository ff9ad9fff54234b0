package traffic_test

import (
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/funnelhouse/funnelhouse/bench/expected"
	"github.com/funnelhouse/funnelhouse/bench/traffic"
	"github.com/funnelhouse/funnelhouse/schemas"
)

// validEvents decodes the valid records of cfg (duplicates and malformed
// records left out).
func validEvents(t *testing.T, cfg traffic.Config) []schemas.Event {
	t.Helper()
	var evs []schemas.Event
	each(t, cfg, func(r *traffic.Record, ev *schemas.Event) {
		if r.Kind == traffic.Valid {
			evs = append(evs, *ev)
		}
	})
	return evs
}

// TestRealism runs ~100k generated events through the expected computation
// and checks that the traffic has the shape the brief asks for.
func TestRealism(t *testing.T) {
	evs := validEvents(t, traffic.Config{Seed: 21, Events: 100_000}.WithDefaults())
	res := expected.Compute(evs, expected.DefaultConfig())

	// The funnel is a chain, per row and in total.
	var total expected.FunnelRow
	for _, f := range res.Funnel {
		if !(f.Awareness >= f.Acquisition && f.Acquisition >= f.Conversion && f.Conversion >= f.Retention && f.Retention >= f.Advocacy) {
			t.Fatalf("funnel row widens: %+v", f)
		}
		total.Awareness += f.Awareness
		total.Acquisition += f.Acquisition
		total.Conversion += f.Conversion
		total.Retention += f.Retention
		total.Advocacy += f.Advocacy
	}
	t.Logf("funnel: %d visitors, %d acquired, %d converted, %d retained, %d advocates",
		total.Awareness, total.Acquisition, total.Conversion, total.Retention, total.Advocacy)
	if total.Advocacy == 0 || total.Conversion < total.Awareness/50 {
		t.Errorf("funnel too thin: %+v", total)
	}
	sources := map[string]bool{}
	for _, f := range res.Funnel {
		sources[f.Source] = true
	}
	for _, s := range []string{"(direct)", "google", "newsletter", "www.google.com", "www.example.com", "news.ycombinator.com"} {
		if !sources[s] {
			t.Errorf("no first-touch source %q", s)
		}
	}

	// Bounce rate.
	var sessions, bounces uint64
	for _, b := range res.Bounce {
		sessions += b.Sessions
		bounces += b.Bounces
	}
	rate := float64(bounces) / float64(sessions)
	t.Logf("sessions: %d, bounce rate %.3f", sessions, rate)
	if rate < 0.30 || rate > 0.50 {
		t.Errorf("bounce rate %.3f, want 0.30–0.50", rate)
	}

	// Churn and reactivation, both kinds of churn, guest checkouts.
	count := map[string]int{}
	var inactivity, cancellation, guest int
	convEvent := map[string]string{}
	for _, tr := range res.Transitions {
		count[tr.Stage]++
		switch {
		case tr.Stage == expected.StatusChurned && tr.EventID == "":
			inactivity++
		case tr.Stage == expected.StatusChurned:
			cancellation++
		case tr.Stage == expected.StageConversion:
			convEvent[tr.VisitorID] = tr.EventID
		}
	}
	for _, tr := range res.Transitions {
		if tr.Stage == expected.StageAcquisition && convEvent[tr.VisitorID] == tr.EventID {
			guest++
		}
	}
	t.Logf("transitions: %v; churn by inactivity %d, by cancellation %d; guest checkouts %d", count, inactivity, cancellation, guest)
	if count[expected.StatusReactivated] == 0 || inactivity == 0 || cancellation == 0 || guest == 0 {
		t.Errorf("missing lifecycle paths: %v, inactivity %d, cancellation %d, guest %d", count, inactivity, cancellation, guest)
	}
	if len(res.Churn) < 3 {
		t.Errorf("churn_monthly has %d rows", len(res.Churn))
	}

	// Revenue in three currencies, with refunds.
	currencies := map[string]uint64{}
	var refunds schemas.Amount
	for _, r := range res.Revenue {
		currencies[r.Currency] += r.Orders
		refunds += r.Refunds
	}
	for _, c := range []string{"USD", "EUR", "GBP"} {
		if currencies[c] == 0 {
			t.Errorf("no %s orders: %v", c, currencies)
		}
	}
	if refunds == 0 {
		t.Error("no refunds")
	}

	// Orders mostly inside sessions, a few just outside.
	inSession, outside := 0, 0
	for _, e := range evs {
		if e.Type != schemas.OrderCompleted {
			continue
		}
		if o, _ := res.Outcome(e.VisitorID, e.EventID); o.Session != "" {
			inSession++
		} else {
			outside++
		}
	}
	t.Logf("orders: %d in a session, %d outside", inSession, outside)
	if outside == 0 || inSession < 10*outside {
		t.Errorf("orders: %d in a session, %d outside", inSession, outside)
	}

	// The catalogue (SPEC §6.1): every view has rows with non-zero numbers.
	var sat expected.SatisfactionRow
	for _, m := range res.Satisfaction {
		sat.NPSResponses += m.NPSResponses
		sat.Promoters += m.Promoters
		sat.Detractors += m.Detractors
		sat.CSATResponses += m.CSATResponses
		sat.CESResponses += m.CESResponses
		sat.Reviews += m.Reviews
		sat.Referrals += m.Referrals
	}
	nps := 100 * (float64(sat.Promoters) - float64(sat.Detractors)) / float64(sat.NPSResponses)
	t.Logf("satisfaction: %d NPS answers (NPS %.0f), %d CSAT, %d CES, %d reviews, %d referrals",
		sat.NPSResponses, nps, sat.CSATResponses, sat.CESResponses, sat.Reviews, sat.Referrals)
	if sat.CESResponses == 0 || sat.CSATResponses == 0 || nps < 10 || nps > 60 {
		t.Errorf("satisfaction implausible: %+v, NPS %.1f", sat, nps)
	}
	var trials, converted uint64
	for _, m := range res.Trials {
		trials += m.Trials
		converted += m.Converted
	}
	t.Logf("trials: %d, converted %d", trials, converted)
	if trials < 20 || converted == 0 || converted >= trials {
		t.Errorf("trials: %d, converted %d", trials, converted)
	}
	var repeat, negativeCLVMonths int
	for _, r := range res.Retention {
		if r.RepeatCustomers > 0 {
			repeat++
		}
	}
	for _, c := range res.CLV {
		if c.NetRevenue < 0 {
			negativeCLVMonths++
		}
	}
	queryPages := 0
	for _, p := range res.Pages {
		if p.PageViews > 0 && p.Exits > 0 && strings.HasPrefix(p.Page, "https://shop.example.com/p/") {
			queryPages++
		}
	}
	t.Logf("retention months with repeat customers: %d; clv rows %d (%d with refunds over orders); traffic rows %d; pages rows %d",
		repeat, len(res.CLV), negativeCLVMonths, len(res.Traffic), len(res.Pages))
	if repeat == 0 || len(res.CLV) == 0 || len(res.Traffic) == 0 || len(res.VisitorConversion) == 0 || queryPages == 0 {
		t.Error("a catalogue view is empty")
	}
	// The expected computation does not depend on input order.
	shuffled := append([]schemas.Event(nil), evs...)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	if again := expected.Compute(shuffled, expected.DefaultConfig()); !reflect.DeepEqual(res, again) {
		t.Error("expected.Compute differs for a shuffled input")
	}
}
