package expected

import (
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/funnelhouse/funnelhouse/schemas"
)

const (
	sec    = int64(1000)
	minute = 60 * sec
	hour   = 60 * minute
	day    = 24 * hour
)

// ms parses an RFC 3339 time into epoch milliseconds.
func ms(s string) int64 {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UnixMilli()
}

var t0 = ms("2025-03-10T10:00:00Z")

// ev builds an event; opts set optional fields.
func ev(typ schemas.Type, visitor, id string, ts int64, opts ...func(*schemas.Event)) schemas.Event {
	e := schemas.Event{EventID: id, Type: typ, TsMs: ts, VisitorID: visitor,
		Rating: schemas.Absent, NPS: schemas.Absent, CSAT: schemas.Absent, CES: schemas.Absent}
	for _, o := range opts {
		o(&e)
	}
	return e
}

func order(orderID string, amount schemas.Amount, currency string) func(*schemas.Event) {
	return func(e *schemas.Event) { e.OrderID, e.Amount, e.Currency = orderID, amount, currency }
}
func customer(c string) func(*schemas.Event) { return func(e *schemas.Event) { e.CustomerID = c } }
func withURL(u string) func(*schemas.Event)  { return func(e *schemas.Event) { e.URL = u } }
func referrer(r string) func(*schemas.Event) { return func(e *schemas.Event) { e.Referrer = r } }
func nps(n int8) func(*schemas.Event)        { return func(e *schemas.Event) { e.NPS = n } }
func rating(n int8) func(*schemas.Event)     { return func(e *schemas.Event) { e.Rating = n } }
func utm(source, medium, campaign string) func(*schemas.Event) {
	return func(e *schemas.Event) { e.UTMSource, e.UTMMedium, e.UTMCampaign = source, medium, campaign }
}

// stages lists a result's transitions as "stage@ts-offset/event_id" relative to base.
func stages(r *Result, visitor string, base int64) []string {
	var out []string
	for _, t := range r.Transitions {
		if t.VisitorID == visitor {
			out = append(out, fmt.Sprintf("%s@%s/%s", t.Stage, time.Duration(t.TsMs-base)*time.Millisecond, t.EventID))
		}
	}
	return out
}

func check[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got  %+v\n want %+v", what, got, want)
	}
}

func TestSessionGap(t *testing.T) {
	f := func(second int64, wantSessions int) {
		t.Helper()
		r := Compute([]schemas.Event{
			ev(schemas.PageView, "v", "a", t0),
			ev(schemas.Click, "v", "b", t0+second),
		}, DefaultConfig())
		check(t, fmt.Sprintf("sessions for a gap of %v", time.Duration(second)*time.Millisecond), len(r.Sessions), wantSessions)
	}
	f(30*minute, 1)
	f(30*minute+1, 2)
}

func TestSessionBridging(t *testing.T) {
	a := ev(schemas.PageView, "v", "A", t0, withURL("/a"), utm("google", "cpc", "spring"))
	b := ev(schemas.Click, "v", "B", t0+25*minute, withURL("/b"))
	c := ev(schemas.PageView, "v", "C", t0+50*minute, withURL("/c"))
	want := []SessionRow{{
		SessionID: SessionID("v", "A", t0), VisitorID: "v",
		StartMs: t0, EndMs: t0 + 50*minute, DurationS: 3000, Events: 3, PageViews: 2,
		EntryURL: "/a", ExitURL: "/c", Source: "google", Medium: "cpc", Campaign: "spring",
	}}
	for _, perm := range [][]schemas.Event{{a, b, c}, {a, c, b}, {c, a, b}, {c, b, a}, {b, c, a}} {
		r := Compute(perm, DefaultConfig())
		check(t, "sessions", r.Sessions, want)
		for _, id := range []string{"A", "B", "C"} {
			check(t, "session of "+id, outcome(r, "v", id).Session, want[0].SessionID)
		}
	}
}

func TestOrderMembership(t *testing.T) {
	f := func(after int64, wantIn bool) {
		t.Helper()
		r := Compute([]schemas.Event{
			ev(schemas.PageView, "v", "a", t0),
			ev(schemas.CheckoutStarted, "v", "b", t0+5*minute),
			ev(schemas.OrderCompleted, "v", "o", t0+5*minute+after, order("o1", 12_3400, "EUR")),
		}, DefaultConfig())
		s := r.Sessions[0]
		wantOrders, wantRevenue, wantSession := uint32(0), schemas.Amount(0), ""
		if wantIn {
			wantOrders, wantRevenue, wantSession = 1, 12_3400, s.SessionID
		}
		check(t, "orders", s.Orders, wantOrders)
		check(t, "revenue", s.Revenue, wantRevenue)
		check(t, "order's session", outcome(r, "v", "o").Session, wantSession)
		check(t, "is_bounce", s.IsBounce, false)
	}
	f(30*minute-1, true) // end + gap - 1 ms
	f(30*minute, false)  // end + gap
	f(0, true)
}

// TestRevenueOverflow: an order that would take its session's revenue
// past schemas.MaxAmount is rejected, in processing order, and counts
// nowhere: not in the session, the lifecycle, the events or the views.
func TestRevenueOverflow(t *testing.T) {
	const big = schemas.MaxAmount / 10 * 6 // 60e12
	r := Compute([]schemas.Event{
		ev(schemas.PageView, "v", "a", t0),
		ev(schemas.OrderCompleted, "v", "o2", t0+2*minute, order("o2", big, "USD")),
		ev(schemas.OrderCompleted, "v", "o1", t0+minute, order("o1", big, "USD")), // first in processing order
		ev(schemas.OrderCompleted, "v", "o3", t0+3*minute, order("o3", schemas.MaxAmount-big, "USD")),
		ev(schemas.OrderCompleted, "w", "p1", t0, order("p1", schemas.MaxAmount, "USD")), // in no session
		ev(schemas.OrderCompleted, "w", "p2", t0+minute, order("p2", schemas.MaxAmount, "USD")),
	}, DefaultConfig())
	check(t, "rejected", len(r.Rejected), 1)
	check(t, "rejected order", r.Rejected[0].EventID, "o2")
	check(t, "session orders", r.Sessions[0].Orders, uint32(2))
	check(t, "session revenue", r.Sessions[0].Revenue, schemas.MaxAmount)
	_, in := r.Outcome("v", "o2")
	check(t, "rejected order in events", in, false)
	check(t, "v's stages", stages(r, "v", t0), []string{"awareness@0s/a", "acquisition@1m0s/o1", "conversion@1m0s/o1", "retention@3m0s/o3", "churned@2160h3m0s/"})
	check(t, "revenue_daily orders", r.Revenue[0].Orders, uint64(4))
	check(t, "revenue_daily revenue", r.Revenue[0].Revenue, 2*schemas.MaxAmount+schemas.MaxAmount)
}

func TestBounce(t *testing.T) {
	r := Compute([]schemas.Event{
		ev(schemas.PageView, "v", "a", t0),                                            // bounce
		ev(schemas.Click, "v", "b", t0+2*hour),                                        // one event but not a page_view
		ev(schemas.PageView, "v", "c", t0+4*hour),                                     // one page_view with an order
		ev(schemas.OrderCompleted, "v", "o", t0+4*hour+minute, order("o1", 1, "USD")), // .. which belongs to it
		ev(schemas.PageView, "w", "a", t0+hour, referrer("HTTPS://WWW.Example.com:8080/x")),
	}, DefaultConfig())
	slices.SortFunc(r.Sessions, func(a, b SessionRow) int { return int(a.StartMs - b.StartMs) })
	var got []bool
	for _, s := range r.Sessions {
		got = append(got, s.IsBounce)
	}
	check(t, "bounces in start order", got, []bool{true, true, false, false})
	check(t, "bounce_daily", r.Bounce, []BounceRow{
		{Day: "2025-03-10", Source: "(direct)", Sessions: 3, Bounces: 1, BounceRate: 1.0 / 3},
		{Day: "2025-03-10", Source: "www.example.com", Sessions: 1, Bounces: 1, BounceRate: 1},
	})
}

func TestSessionCustomerID(t *testing.T) {
	r := Compute([]schemas.Event{
		ev(schemas.PageView, "v", "a", t0),
		ev(schemas.Signup, "v", "b", t0+minute, customer("c1")),
		ev(schemas.PageView, "v", "c", t0+2*minute),                                             // no customer_id on the event: still c1
		ev(schemas.OrderCompleted, "v", "d", t0+2*minute, customer("c2"), order("o", 1, "USD")), // after the last clickstream event in processing order
	}, DefaultConfig())
	check(t, "session customer_id", r.Sessions[0].CustomerID, "c1")
	check(t, "transitions", stages(r, "v", t0), []string{
		"awareness@0s/a", "acquisition@1m0s/b", "conversion@2m0s/d", "churned@2160h2m0s/",
	})
	check(t, "conversion customer_id", r.Transitions[2].CustomerID, "c2")
	check(t, "awareness customer_id", r.Transitions[0].CustomerID, "")
}

func TestGuestCheckout(t *testing.T) {
	r := Compute([]schemas.Event{
		ev(schemas.PageView, "v", "a", t0),
		ev(schemas.OrderCompleted, "v", "o", t0+minute, order("o1", 5_0000, "USD")),
		ev(schemas.Signup, "v", "s", t0+2*minute, customer("c1")),
	}, DefaultConfig())
	check(t, "transitions", stages(r, "v", t0), []string{
		"awareness@0s/a", "acquisition@1m0s/o", "conversion@1m0s/o", "churned@2160h2m0s/",
	})
	check(t, "stage after signup", outcome(r, "v", "s").Stage, StageConversion)
	check(t, "stage after page_view", outcome(r, "v", "a").Stage, StageAwareness)
	check(t, "churn customer_id", r.Transitions[3].CustomerID, "c1")
}

func TestAdvocacy(t *testing.T) {
	conv := func(v string) []schemas.Event {
		return []schemas.Event{
			ev(schemas.PageView, v, "a", t0),
			ev(schemas.OrderCompleted, v, "o", t0+minute, order("o-"+v, 1, "USD")),
		}
	}
	f := func(signal schemas.Event, wantAdvocacy bool) {
		t.Helper()
		r := Compute(append(conv(signal.VisitorID), signal), DefaultConfig())
		want := []string{"awareness@0s/a", "acquisition@1m0s/o", "conversion@1m0s/o"}
		if wantAdvocacy {
			want = append(want, "retention@2m0s/x", "advocacy@2m0s/x")
		}
		got := stages(r, signal.VisitorID, t0)
		got = slices.DeleteFunc(got, func(s string) bool { return s[:7] == "churned" })
		check(t, signal.Type.String()+" transitions", got, want)
	}
	f(ev(schemas.Survey, "n8", "x", t0+2*minute, nps(8)), false)
	f(ev(schemas.Survey, "n9", "x", t0+2*minute, nps(9)), true)
	f(ev(schemas.Survey, "nA", "x", t0+2*minute), false) // csat only
	f(ev(schemas.Review, "r3", "x", t0+2*minute, rating(3)), false)
	f(ev(schemas.Review, "r4", "x", t0+2*minute, rating(4)), true)
	f(ev(schemas.Referral, "rf", "x", t0+2*minute), true)

	// Before conversion the signals are ignored, and do not count later.
	r := Compute([]schemas.Event{
		ev(schemas.Referral, "v", "a", t0),
		ev(schemas.Review, "v", "b", t0+minute, rating(5)),
		ev(schemas.Survey, "v", "c", t0+2*minute, nps(10)),
		ev(schemas.OrderCompleted, "v", "o", t0+3*minute, order("o1", 1, "USD")),
		ev(schemas.OrderCompleted, "v", "p", t0+4*minute, order("o1", 1, "USD")), // same order_id: no retention
		ev(schemas.OrderCompleted, "v", "q", t0+5*minute, order("o2", 1, "USD")),
	}, DefaultConfig())
	check(t, "signals before conversion", stages(r, "v", t0), []string{
		"awareness@0s/a", "acquisition@3m0s/o", "conversion@3m0s/o", "retention@5m0s/q", "churned@2160h5m0s/",
	})
}

func TestChurnBoundary(t *testing.T) {
	const churnAfter = 90 * day
	base := func(v string) []schemas.Event {
		return []schemas.Event{ev(schemas.OrderCompleted, v, "o", t0, order("o-"+v, 1, "USD"))}
	}
	// An event exactly at last + 90d keeps the customer active.
	r := Compute(append(base("v"), ev(schemas.PageView, "v", "x", t0+churnAfter)), DefaultConfig())
	check(t, "event at last+90d", stages(r, "v", t0), []string{
		"awareness@0s/o", "acquisition@0s/o", "conversion@0s/o", "churned@4320h0m0s/",
	})
	// An event at last + 90d + 1 ms comes after the churn at last + 90d.
	r = Compute(append(base("v"), ev(schemas.PageView, "v", "x", t0+churnAfter+1)), DefaultConfig())
	check(t, "event at last+90d+1ms", stages(r, "v", t0), []string{
		"awareness@0s/o", "acquisition@0s/o", "conversion@0s/o", "churned@2160h0m0s/",
	})
	check(t, "stage after a churn", outcome(r, "v", "x").Stage, StageConversion)

	// The horizon: deadlines < HorizonMs fire.
	cfg := DefaultConfig()
	cfg.HorizonMs = t0 + churnAfter
	r = Compute(base("v"), cfg)
	check(t, "deadline at the horizon", len(r.Transitions), 3)
	cfg.HorizonMs++
	r = Compute(base("v"), cfg)
	check(t, "deadline before the horizon", stages(r, "v", t0)[3:], []string{"churned@2160h0m0s/"})
}

func TestCancellationAndReactivation(t *testing.T) {
	r := Compute([]schemas.Event{
		ev(schemas.OrderCompleted, "v", "o", t0, order("o1", 1, "USD")),
		ev(schemas.SubscriptionCancelled, "v", "c", t0+day),
		ev(schemas.SubscriptionCancelled, "v", "c2", t0+2*day),                  // already churned: nothing
		ev(schemas.SubscriptionStarted, "v", "s", t0+3*day),                     // reactivated
		ev(schemas.SubscriptionCancelled, "v", "c3", t0+4*day),                  // churned again
		ev(schemas.PageView, "v", "p", t0+200*day),                              // activity does not reactivate
		ev(schemas.OrderCompleted, "v", "q", t0+201*day, order("o2", 1, "USD")), // retention and reactivated
	}, DefaultConfig())
	check(t, "transitions", stages(r, "v", t0), []string{
		"awareness@0s/o", "acquisition@0s/o", "conversion@0s/o",
		"churned@24h0m0s/c", "reactivated@72h0m0s/s", "churned@96h0m0s/c3",
		"retention@4824h0m0s/q", "reactivated@4824h0m0s/q",
		"churned@6984h0m0s/", // 201d + 90d
	})
}

func TestReactivationByOrderAfterInactivity(t *testing.T) {
	r := Compute([]schemas.Event{
		ev(schemas.OrderCompleted, "v", "o", t0, order("o1", 1, "USD")),
		ev(schemas.OrderCompleted, "v", "p", t0+day, order("o2", 1, "USD")),
		ev(schemas.OrderCompleted, "v", "q", t0+100*day, order("o3", 1, "USD")),
	}, Config{SessionGap: 30 * time.Minute, ChurnAfter: 90 * 24 * time.Hour, HorizonMs: t0 + 150*day})
	check(t, "transitions", stages(r, "v", t0), []string{
		"awareness@0s/o", "acquisition@0s/o", "conversion@0s/o", "retention@24h0m0s/p",
		"churned@2184h0m0s/", "reactivated@2400h0m0s/q",
	})
}

func TestChurnMonthly(t *testing.T) {
	events := []schemas.Event{
		// A: converts Jan 15, churns Apr 15 (inactivity), reactivated Jun 10, churns Sep 8.
		ev(schemas.PageView, "A", "a1", ms("2025-01-15T10:00:00Z")),
		ev(schemas.OrderCompleted, "A", "a2", ms("2025-01-15T10:05:00Z"), order("oa1", 10_0000, "USD")),
		ev(schemas.OrderCompleted, "A", "a3", ms("2025-06-10T12:00:00Z"), order("oa2", 10_0000, "USD")),
		// B: converts Feb 20, cancels Mar 5, restarts Mar 20, churns Jun 18.
		ev(schemas.OrderCompleted, "B", "b1", ms("2025-02-20T08:00:00Z"), order("ob1", 10_0000, "USD")),
		ev(schemas.SubscriptionCancelled, "B", "b2", ms("2025-03-05T08:00:00Z")),
		ev(schemas.SubscriptionStarted, "B", "b3", ms("2025-03-20T08:00:00Z")),
		// C: never converts.
		ev(schemas.PageView, "C", "c1", ms("2024-12-01T08:00:00Z")),
	}
	r := Compute(events, DefaultConfig())
	row := func(month string, active, churned, react uint64) ChurnRow {
		return ChurnRow{Month: month, ActiveAtStart: active, Churned: churned, Reactivated: react, ChurnRate: rate(churned, active)}
	}
	check(t, "churn_monthly", r.Churn, []ChurnRow{
		row("2025-01-01", 0, 0, 0),
		row("2025-02-01", 1, 0, 0),
		row("2025-03-01", 2, 1, 1),
		row("2025-04-01", 2, 1, 0),
		row("2025-05-01", 1, 0, 0),
		row("2025-06-01", 1, 1, 1),
		row("2025-07-01", 1, 0, 0),
		row("2025-08-01", 1, 0, 0),
		row("2025-09-01", 1, 1, 0),
	})
	var churns []string
	for _, tr := range r.Transitions {
		if tr.Stage == StatusChurned {
			churns = append(churns, tr.VisitorID+" "+time.UnixMilli(tr.TsMs).UTC().Format(time.RFC3339))
		}
	}
	check(t, "churn times", churns, []string{
		"A 2025-04-15T10:05:00Z", "A 2025-09-08T12:00:00Z", "B 2025-03-05T08:00:00Z", "B 2025-06-18T08:00:00Z",
	})

	// No conversion, no rows.
	check(t, "no conversion", Compute(events[6:], DefaultConfig()).Churn, []ChurnRow(nil))
}

func TestRevenueDaily(t *testing.T) {
	d1, d2 := ms("2025-05-01T09:00:00Z"), ms("2025-05-02T23:59:59.999Z")
	r := Compute([]schemas.Event{
		ev(schemas.OrderCompleted, "v", "1", d1, order("o1", 10_5000, "USD")),
		ev(schemas.OrderCompleted, "v", "2", d1+hour, order("o2", 2_0001, "USD")),
		ev(schemas.OrderCompleted, "w", "3", d1+2*hour, order("o3", 7_0000, "USD")),
		ev(schemas.OrderCompleted, "w", "4", d1+3*hour, order("o4", 99_9900, "EUR")),
		ev(schemas.OrderRefunded, "v", "5", d1+4*hour, order("o1", 10_5000, "USD")),
		ev(schemas.OrderRefunded, "w", "6", d2, order("o4", 50_0000, "EUR")),
		ev(schemas.OrderRefunded, "w", "7", d2, order("o4", 9_9900, "EUR")), // second partial refund of the same order
		ev(schemas.OrderCompleted, "x", "8", d2, order("o5", 1_2345, "GBP")),
	}, DefaultConfig())
	check(t, "revenue_daily", r.Revenue, []RevenueRow{
		{Day: "2025-05-01", Currency: "EUR", Orders: 1, Revenue: 99_9900, Refunds: 0, NetRevenue: 99_9900, Customers: 1},
		{Day: "2025-05-01", Currency: "USD", Orders: 3, Revenue: 19_5001, Refunds: 10_5000, NetRevenue: 9_0001, Customers: 2},
		{Day: "2025-05-02", Currency: "EUR", Orders: 0, Revenue: 0, Refunds: 59_9900, NetRevenue: -59_9900, Customers: 0},
		{Day: "2025-05-02", Currency: "GBP", Orders: 1, Revenue: 1_2345, Refunds: 0, NetRevenue: 1_2345, Customers: 1},
	})
}

func TestFunnelDaily(t *testing.T) {
	day1 := ms("2025-04-01T23:00:00Z")
	r := Compute([]schemas.Event{
		ev(schemas.PageView, "a", "1", day1, utm("newsletter", "email", "april")),
		ev(schemas.Signup, "a", "2", day1+minute),
		ev(schemas.PageView, "b", "1", day1+30*minute, utm("newsletter", "", "")),
		ev(schemas.PageView, "b", "2", day1+2*day, utm("google", "", "")), // later source: first touch counts
		ev(schemas.OrderCompleted, "b", "3", day1+2*day, order("ob", 1, "USD")),
		ev(schemas.PageView, "c", "1", day1+90*minute, referrer("example.org/path")), // next UTC day
		ev(schemas.OrderCompleted, "d", "1", day1+90*minute, order("od", 1, "USD")),  // a transaction first: (direct)
		ev(schemas.Referral, "d", "2", day1+91*minute),
	}, DefaultConfig())
	check(t, "funnel_daily", r.Funnel, []FunnelRow{
		{CohortDay: "2025-04-01", Source: "newsletter", Awareness: 2, Acquisition: 2, Conversion: 1,
			AcquisitionRate: 1, ConversionRate: 0.5},
		{CohortDay: "2025-04-02", Source: "(direct)", Awareness: 1, Acquisition: 1, Conversion: 1, Retention: 1, Advocacy: 1,
			AcquisitionRate: 1, ConversionRate: 1, RetentionRate: 1, AdvocacyRate: 1},
		{CohortDay: "2025-04-02", Source: "example.org", Awareness: 1},
	})
}

func TestReferrerHost(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"HTTPS://WWW.Example.com:8080/x", "www.example.com"},
		{"example.org/path", "example.org"},
		{"", ""},
		{"https://news.ycombinator.com/item?id=1", "news.ycombinator.com"},
		{"www.reddit.com:443", "www.reddit.com"},
		{"android-app://com.google.android.gm/", "com.google.android.gm"},
		{"/just/a/path", ""},
		{"http://%zz", ""}, // parse error
	} {
		check(t, fmt.Sprintf("ReferrerHost(%q)", c.in), ReferrerHost(c.in), c.want)
		e := ev(schemas.PageView, "v", "a", t0, referrer(c.in))
		want := c.want
		if want == "" {
			want = "(direct)"
		}
		check(t, fmt.Sprintf("source of %q", c.in), sourceOf(&e), want)
	}
}

func TestSessionID(t *testing.T) {
	// Deterministic, and clamped to the KSUID epoch.
	check(t, "same input", SessionID("v", "e", t0), SessionID("v", "e", t0))
	if SessionID("v", "e", t0) == SessionID("w", "e", t0) {
		t.Error("session ids of two visitors are equal")
	}
	check(t, "before the KSUID epoch", SessionID("v", "e", ms("2001-01-01T00:00:00Z")), SessionID("v", "e", ms("2014-05-13T16:53:20Z")))
}

// outcome is r's expected session and stage of an event, zero when none.
func outcome(r *Result, visitorID, eventID string) EventOutcome {
	o, _ := r.Outcome(visitorID, eventID)
	return o
}
