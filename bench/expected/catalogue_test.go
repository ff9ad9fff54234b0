package expected

import (
	"reflect"
	"slices"
	"testing"

	"github.com/funnelhouse/funnelhouse/schemas"
)

// Golden cases for the edges of the catalogue (SPEC §6.1).

func survey(n, csat, ces int8) func(*schemas.Event) {
	return func(e *schemas.Event) { e.NPS, e.CSAT, e.CES = n, csat, ces }
}
func trial(on bool) func(*schemas.Event) { return func(e *schemas.Event) { e.Trial = on } }

func TestTrialConvertsNextMonth(t *testing.T) {
	jan31, feb2 := ms("2025-01-31T23:00:00Z"), ms("2025-02-02T10:00:00Z")
	r := Compute([]schemas.Event{
		ev(schemas.PageView, "v", "p", jan31-minute),
		ev(schemas.SubscriptionStarted, "v", "t1", jan31, trial(true)),
		ev(schemas.SubscriptionStarted, "v", "t2", feb2-day, trial(true)), // a second trial: only the first counts
		ev(schemas.SubscriptionStarted, "v", "paid", feb2, trial(false)),
		ev(schemas.SubscriptionStarted, "w", "t3", feb2, trial(true)),     // no conversion after
		ev(schemas.OrderCompleted, "w", "o", feb2, order("o1", 1, "EUR")), // same ts: not after
	}, DefaultConfig())
	check(t, "trials", r.Trials, []TrialRow{
		{Month: "2025-01-01", Trials: 1, Converted: 1, TrialConversionRate: 1},
		{Month: "2025-02-01", Trials: 1, Converted: 0, TrialConversionRate: 0},
	})
}

func TestRefundLargerThanMonthsOrders(t *testing.T) {
	mar, apr := ms("2025-03-05T10:00:00Z"), ms("2025-04-05T10:00:00Z")
	r := Compute([]schemas.Event{
		ev(schemas.OrderCompleted, "c", "o1", mar, order("A", 100_0000, "EUR")),
		ev(schemas.OrderCompleted, "c", "o2", apr, order("B", 10_0000, "EUR")),
		ev(schemas.OrderRefunded, "c", "r1", apr+hour, order("A", 100_0000, "EUR")),
		ev(schemas.OrderCompleted, "d", "o3", mar, order("C", 5_0000, "USD")),
	}, DefaultConfig())
	check(t, "clv", r.CLV, []CLVRow{
		{CohortMonth: "2025-03-01", Currency: "EUR", MonthOffset: 0, CohortCustomers: 2, OrderingCustomers: 1, NetRevenue: 100_0000, CumulativeNetRevenue: 100_0000, CLV: 50_0000},
		{CohortMonth: "2025-03-01", Currency: "EUR", MonthOffset: 1, CohortCustomers: 2, OrderingCustomers: 1, NetRevenue: -90_0000, CumulativeNetRevenue: 10_0000, CLV: 5_0000},
		{CohortMonth: "2025-03-01", Currency: "USD", MonthOffset: 0, CohortCustomers: 2, OrderingCustomers: 1, NetRevenue: 5_0000, CumulativeNetRevenue: 5_0000, CLV: 2_5000},
		{CohortMonth: "2025-03-01", Currency: "USD", MonthOffset: 1, CohortCustomers: 2, CumulativeNetRevenue: 5_0000, CLV: 2_5000},
	})
	check(t, "avg order value", r.AvgOrderValue, []AvgOrderValueRow{
		{Day: "2025-03-05", Currency: "EUR", AvgOrderValue: 100_0000},
		{Day: "2025-03-05", Currency: "USD", AvgOrderValue: 5_0000},
		{Day: "2025-04-05", Currency: "EUR", AvgOrderValue: 10_0000}, // refunds not subtracted
	})
}

func TestSurveyAnsweredLate(t *testing.T) {
	onTime := []schemas.Event{ev(schemas.Survey, "v", "s1", ms("2025-03-31T23:50:00Z"), survey(10, 5, 7))}
	late := []schemas.Event{ev(schemas.Survey, "v", "s2", ms("2025-03-31T23:55:00Z"), survey(0, 1, 1))}
	r := ComputeWithLate(onTime, late, DefaultConfig())
	check(t, "satisfaction", r.Satisfaction, []SatisfactionRow{{
		Month: "2025-03-01", NPSResponses: 2, Promoters: 1, Detractors: 1, NPS: 0,
		CSATResponses: 2, CSAT: 50, CSATAvg: 3, CESResponses: 2, CESAvg: 4,
	}})
	check(t, "the late survey is in no session", len(r.Sessions), 1)
}

// TestLateCopyOfOnTimeEvent: a copy of an on-time event that comes back
// after the pipeline forgot its id is written late under the same visitor
// and event id; events keeps the on-time row (migration 0006) and the
// views count each id once. The expected rows are those without the copy.
func TestLateCopyOfOnTimeEvent(t *testing.T) {
	onTime := []schemas.Event{
		ev(schemas.PageView, "v", "p", t0),
		ev(schemas.OrderCompleted, "v", "o", t0+minute, order("o1", 10_5000, "USD")),
		ev(schemas.OrderRefunded, "v", "r", t0+2*minute, order("o1", 2_0000, "USD")),
		ev(schemas.Survey, "v", "s", t0+3*minute, survey(10, 5, 7)),
		ev(schemas.SubscriptionStarted, "v", "t", t0+4*minute, trial(true)),
	}
	want := Compute(onTime, DefaultConfig())
	got := ComputeWithLate(onTime, slices.Clone(onTime), DefaultConfig())
	if !reflect.DeepEqual(got, want) {
		t.Errorf("late copies changed the result:\n got %+v\nwant %+v", got, want)
	}
}

func TestNPSOnlyPassives(t *testing.T) {
	r := Compute([]schemas.Event{
		ev(schemas.Survey, "a", "s1", t0, survey(7, schemas.Absent, schemas.Absent)),
		ev(schemas.Survey, "b", "s1", t0, survey(8, schemas.Absent, schemas.Absent)),              // same event id, other visitor
		ev(schemas.Survey, "c", "s3", t0, survey(schemas.Absent, schemas.Absent, schemas.Absent)), // no score: not counted
		ev(schemas.Review, "c", "r", t0, rating(4)),
		ev(schemas.Referral, "c", "f", t0),
	}, DefaultConfig())
	check(t, "satisfaction", r.Satisfaction, []SatisfactionRow{{
		Month: "2025-03-01", NPSResponses: 2, Passives: 2, NPS: 0, Reviews: 1, AvgRating: 4, Referrals: 1,
	}})
}

func TestEmptyMonthBetweenActiveOnes(t *testing.T) {
	jan, mar := ms("2025-01-10T10:00:00Z"), ms("2025-03-10T10:00:00Z")
	r := Compute([]schemas.Event{
		ev(schemas.OrderCompleted, "c", "o1", jan, order("A", 10_0000, "EUR")),
		ev(schemas.OrderCompleted, "c", "o2", mar, order("B", 20_0000, "EUR")),
	}, DefaultConfig())
	check(t, "clv", r.CLV, []CLVRow{
		{CohortMonth: "2025-01-01", Currency: "EUR", MonthOffset: 0, CohortCustomers: 1, OrderingCustomers: 1, NetRevenue: 10_0000, CumulativeNetRevenue: 10_0000, CLV: 10_0000},
		{CohortMonth: "2025-01-01", Currency: "EUR", MonthOffset: 1, CohortCustomers: 1, CumulativeNetRevenue: 10_0000, CLV: 10_0000},
		{CohortMonth: "2025-01-01", Currency: "EUR", MonthOffset: 2, CohortCustomers: 1, OrderingCustomers: 1, NetRevenue: 20_0000, CumulativeNetRevenue: 30_0000, CLV: 30_0000},
	})
	// Retention rows run as churn_monthly's: January to June (the churn
	// 90 days after March's order), February included.
	feb := r.Retention[1]
	check(t, "february", feb, RetentionRow{Month: "2025-02-01", CustomersAtStart: 1, CustomersAtEnd: 1, RetentionRate: 1, Customers: 1, RepeatPurchaseRate: 0})
	check(t, "march", r.Retention[2], RetentionRow{Month: "2025-03-01", CustomersAtStart: 1, CustomersAtEnd: 1, RetentionRate: 1, Customers: 1, RepeatCustomers: 1, RepeatPurchaseRate: 1})
}

func TestPageWithQueryAndFragment(t *testing.T) {
	r := Compute([]schemas.Event{
		ev(schemas.PageView, "v", "a", t0, withURL("https://shop.example/p/1?utm=x#reviews")),
		ev(schemas.PageView, "v", "b", t0+minute, withURL("https://shop.example/p/1#top?not=query")),
		ev(schemas.Click, "v", "c", t0+2*minute, withURL("https://shop.example/cart?step=2")),
		ev(schemas.PageView, "w", "d", t0, withURL("https://shop.example/p/1")), // a bounce
		ev(schemas.PageView, "x", "e", t0),                                      // no url: no page
	}, DefaultConfig())
	check(t, "pages", r.Pages, []PageRow{
		{Day: "2025-03-10", Page: "https://shop.example/cart", Exits: 1},
		{Day: "2025-03-10", Page: "https://shop.example/p/1", Entries: 2, Exits: 1, Bounces: 1, PageViews: 3, BounceRate: 0.5, ExitRate: 1.0 / 3}, // w's bounce exits there too
	})
}
