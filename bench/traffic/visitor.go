package traffic

import (
	"math"

	"github.com/funnelhouse/funnelhouse/schemas"
)

// The visitor model. A visitor arrives with a persona that sets how many
// sessions they come back for and how likely they are to sign up and buy.
// Sessions are planned one at a time when the visitor's clock reaches them,
// so only visitors whose journey is under way hold memory.
//
// Shape of the traffic (default config, measured by the tests):
//   - ~40% of sessions bounce (a single page_view);
//   - within a session events are seconds to minutes apart, rarely more than
//     30 minutes (which splits the session), a few exactly at the 30-minute
//     boundary;
//   - sessions are hours to weeks apart;
//   - first touch by utm_source, by a referrer URL in many spellings, or
//     direct;
//   - a share signs up (customer_id on later events); a share orders, some as
//     guests before signing up; loyal visitors order again;
//   - referrals, reviews and surveys, some before the first order;
//   - refunds for a few orders, subscriptions started and some cancelled;
//   - free trials (subscription_started with "trial": true), some by
//     visitors who sign up without ordering, about 45% converted by a paid
//     subscription 14 days later, the others cancelled; plans on every
//     subscription event;
//   - surveys with NPS (skewed to promoters), CSAT and CES (skewed to low
//     effort), and post-purchase surveys answered 1-20 days after an order,
//     often in a later month than the order;
//   - product urls with query strings and fragments;
//   - some customers go dormant for more than 90 days and come back with an
//     order or a new subscription, a few exactly 90 days (+0 or +1 ms) after
//     their last activity; others just stop;
//   - boundary cases for the default 30-minute gap: in-session gaps of
//     exactly 30 min and 30 min + 1 ms, orders exactly at session end + gap
//     and 1 ms before, orders at the same ms as the checkout.

type persona uint8

const (
	casual persona = iota
	browser
	loyal
)

// personaTraits are per session probabilities.
type personaTraits struct {
	weight      int     // share of arrivals
	bounceFirst float64 // first session is a bounce
	bounceLater float64
	signup      float64 // a not yet signed-up visitor signs up in a session
	order       float64 // a session ends with an order
}

var personas = [...]personaTraits{
	casual:  {weight: 62, bounceFirst: 0.70, bounceLater: 0.60, signup: 0.03, order: 0.01},
	browser: {weight: 27, bounceFirst: 0.50, bounceLater: 0.45, signup: 0.15, order: 0.07},
	loyal:   {weight: 11, bounceFirst: 0.30, bounceLater: 0.33, signup: 0.35, order: 0.28},
}

var personaWeights = func() []int {
	w := make([]int, len(personas))
	for i, p := range personas {
		w[i] = p.weight
	}
	return w
}()

// countries with their currency and share of visitors.
var countries = [...]struct {
	code, currency string
	weight         int
}{
	{"US", "USD", 38}, {"CA", "USD", 5}, {"GB", "GBP", 17}, {"IE", "EUR", 2},
	{"DE", "EUR", 14}, {"FR", "EUR", 10}, {"ES", "EUR", 5}, {"NL", "EUR", 5}, {"IT", "EUR", 4},
}

var countryWeights = func() []int {
	w := make([]int, len(countries))
	for i, c := range countries {
		w[i] = c.weight
	}
	return w
}()

var devices = [...]string{"desktop", "mobile", "tablet"}
var deviceWeights = []int{45, 47, 8}

// noSession marks a visitor without further sessions.
const noSession = math.MaxInt64

// visitor is one visitor's state. The planned events in queue are sorted by
// ts; the visitor's next event is the earlier of queue[head] and the start of
// the next session.
type visitor struct {
	no       uint64 // arrival number: a unique tie-breaker
	key      int64  // heap key: ts of the next event
	id       string
	customer string // "" until the visitor signs up

	queue []pev
	head  int

	nextSession  int64
	lastPlanned  int64 // the largest ts planned so far
	sessionsLeft int
	sessionNo    int

	persona persona
	country uint8
	device  uint8

	orders          int
	subscribedUntil int64 // subscription active until (cancel ts, or forever); 0 when none
	dormancyDone    bool  // went (or decided not to go) dormant already
	returnWith      schemas.Type
}

// pev is one planned event.
type pev struct {
	ts     int64
	amount int64  // order_* events, in schemas.Amount units
	order  uint64 // order_* events: the order number
	item   uint16 // product or category number in the url
	typ    schemas.Type
	page   page
	touch  uint8 // first event of a session: 1 + index into touches, 0 = none
	cust   bool  // carries customer_id
	rating int8
	nps    int8
	csat   int8
	ces    int8
	trial  uint8 // subscription_started: 0 no field, 1 "trial":true, 2 "trial":false
	plan   uint8 // subscription_*: 1 + index into plans, 0 = none
	extra  uint8 // unknown fields: 0 none, else a variant of extras
	noURL  bool
}

// page is the kind of page in a clickstream event's url.
type page uint8

const (
	pageNone page = iota
	pageHome
	pageProduct
	pageCategory
	pageSearch
	pageCart
	pageCheckout
	pageAccount
	pageSignup
	pageBlog
	pageRefer
	pageSurvey
)

func (v *visitor) done() bool { return v.head == len(v.queue) && v.nextSession == noSession }

// peek is the ts of the visitor's next event.
func (v *visitor) peek() int64 {
	k := v.nextSession
	if v.head < len(v.queue) && v.queue[v.head].ts < k {
		k = v.queue[v.head].ts
	}
	return k
}

// push inserts e into the visitor's queue in ts order (after equal ts).
func (g *Generator) push(v *visitor, e pev) {
	if v.queue == nil {
		if n := len(g.freeQs); n > 0 {
			v.queue = g.freeQs[n-1]
			g.freeQs = g.freeQs[:n-1]
		} else {
			v.queue = make([]pev, 0, 16)
		}
	}
	v.queue = append(v.queue, e)
	v.lastPlanned = max(v.lastPlanned, e.ts)
	for i := len(v.queue) - 1; i > v.head && v.queue[i-1].ts > v.queue[i].ts; i-- {
		v.queue[i-1], v.queue[i] = v.queue[i], v.queue[i-1]
	}
}

// take returns the visitor's next event, planning a session when it comes
// first.
func (g *Generator) take(v *visitor) pev {
	if v.head == len(v.queue) || v.nextSession <= v.queue[v.head].ts {
		g.planSession(v)
	}
	e := v.queue[v.head]
	v.head++
	if v.head == len(v.queue) {
		g.freeQs = append(g.freeQs, v.queue[:0])
		v.queue, v.head = nil, 0
	}
	return e
}

func (g *Generator) arrive(no uint64, ts int64) *visitor {
	r := g.rng
	v := &visitor{no: no, key: ts, nextSession: ts}
	v.id = string(appendBase36([]byte{'v'}, mix(no^g.idSalt)))
	v.persona = persona(r.pick(personaWeights))
	v.country = uint8(r.pick(countryWeights))
	v.device = uint8(r.pick(deviceWeights))
	switch v.persona {
	case casual:
		v.sessionsLeft = 1
		if r.chance(0.25) {
			v.sessionsLeft = 2
		}
	case browser:
		v.sessionsLeft = 2 + r.intn(4)
	case loyal:
		v.sessionsLeft = 3 + r.intn(10)
	}
	return v
}

const (
	second = int64(1000)
	minute = 60 * second
	hour   = 60 * minute
	day    = 24 * hour
	gap    = 30 * minute // the default session gap, to place boundary cases
)

// withinGap is the time between two events of a session.
func (g *Generator) withinGap() int64 {
	r := g.rng
	switch r.pick([]int{5500, 3000, 1200, 230, 15, 15, 40}) {
	case 0:
		return r.between(2*second, 30*second)
	case 1:
		return r.between(30*second, 3*minute)
	case 2:
		return r.between(3*minute, 15*minute)
	case 3:
		return r.between(15*minute, gap)
	case 4:
		return gap // exactly the gap: same session
	case 5:
		return gap + 1 // 1 ms more: a new session
	default:
		return r.between(gap+1, 3*hour) // the user wandered off: a new session
	}
}

// betweenSessions is the time from the end of a session to the next.
func (g *Generator) betweenSessions() int64 {
	r := g.rng
	switch r.pick([]int{25, 40, 35}) {
	case 0:
		return r.between(hour, 12*hour)
	case 1:
		return r.between(12*hour, 7*day)
	default:
		return r.between(7*day, 30*day)
	}
}

// planSession plans the visitor's next session, starting at v.nextSession,
// with its transactions and the events it schedules later (refunds,
// cancellations), and decides when the following session starts.
func (g *Generator) planSession(v *visitor) {
	r := g.rng
	t := v.nextSession
	first := v.sessionNo == 0
	v.sessionNo++
	v.sessionsLeft--
	traits := &personas[v.persona]

	wantOrder := r.chance(traits.order)
	wantSubscription := false
	switch v.returnWith {
	case schemas.OrderCompleted:
		wantOrder = true
	case schemas.SubscriptionStarted:
		wantSubscription = true
	}
	v.returnWith = 0
	wantSignup := v.customer == "" && r.chance(traits.signup)
	bounceP := traits.bounceLater
	if first {
		bounceP = traits.bounceFirst
	}
	bounce := !wantOrder && !wantSignup && !wantSubscription && r.chance(bounceP)

	landing := pev{ts: t, typ: schemas.PageView, page: g.landingPage(), touch: g.pickTouch(first)}
	landing.item = uint16(r.intn(5000))
	if !bounce && r.chance(0.04) {
		landing.typ = schemas.Click // e.g. a tracked e-mail link
	}
	g.decorate(v, &landing)
	g.push(v, landing)
	last := t

	if !bounce {
		n := g.sessionLength()
		signupAt := -1
		if wantSignup {
			signupAt = 1 + r.intn(n)
		}
		loginAt := -1
		if v.customer != "" && r.chance(0.4) {
			loginAt = 1
		}
		for i := 1; i <= n; i++ {
			t += g.withinGap()
			e := pev{ts: t}
			switch i {
			case signupAt:
				e.typ, e.page = schemas.Signup, pageSignup
				if v.customer == "" {
					v.customer = string(appendBase36([]byte("cus_"), mix(v.no^g.custSalt)))
				}
			case loginAt:
				e.typ, e.page = schemas.Login, pageAccount
			default:
				g.browseEvent(v, &e)
			}
			g.decorate(v, &e)
			g.push(v, e)
			last = t
		}
		if wantOrder {
			// A guest order unless the visitor signs up first.
			if v.customer == "" && r.chance(0.5) {
				t += g.withinGap()
				e := pev{ts: t, typ: schemas.Signup, page: pageSignup}
				v.customer = string(appendBase36([]byte("cus_"), mix(v.no^g.custSalt)))
				g.decorate(v, &e)
				g.push(v, e)
			}
			for _, typ := range []schemas.Type{schemas.AddToCart, schemas.CheckoutStarted} {
				t += r.between(5*second, 90*second)
				e := pev{ts: t, typ: typ, page: pageProduct, item: uint16(r.intn(5000))}
				if typ == schemas.CheckoutStarted {
					e.page = pageCheckout
				}
				g.decorate(v, &e)
				g.push(v, e)
			}
			last = t
			g.planOrder(v, t)
		}
		if wantSubscription {
			g.planSubscription(v, t+r.between(10*second, 120*second), false)
		}
		if wantSignup && !wantOrder && !wantSubscription && r.chance(0.15) {
			g.planSubscription(v, last+r.between(10*second, 120*second), true) // a free trial after signing up
		}
	}

	// The next session.
	if v.sessionsLeft <= 0 && v.orders > 0 && !v.dormancyDone && r.chance(0.3) {
		v.sessionsLeft = 1 // a last-chance return, below
	}
	if v.sessionsLeft <= 0 {
		v.nextSession = noSession
		return
	}
	next := last + g.betweenSessions()
	if v.orders > 0 && !v.dormancyDone {
		if r.chance(0.18) {
			// Dormant for well over 90 days (refunds come at most 20 days
			// after an order), then back with an order or a subscription.
			next = last + r.between(112*day, 170*day)
			if r.chance(0.1) {
				// Exactly at the churn boundary of the default 90 days
				// after the last activity: 0 ms keeps the customer active,
				// 1 ms more comes after the churn.
				next = v.lastPlanned + 90*day + int64(r.intn(2))
			}
			v.returnWith = schemas.OrderCompleted
			if r.chance(0.2) {
				v.returnWith = schemas.SubscriptionStarted
			}
			v.dormancyDone = true
		} else if r.chance(0.5) {
			v.dormancyDone = true // decided: this customer does not go dormant
		}
	}
	if next >= g.sessionEnd {
		next = noSession
	}
	v.nextSession = next
}

// planOrder plans an order_completed a little after checkout_started at t,
// and maybe its refund and a subscription.
func (g *Generator) planOrder(v *visitor, t int64) {
	r := g.rng
	var after int64
	switch r.pick([]int{992, 3, 3, 2}) {
	case 0:
		after = r.between(3*second, 2*minute)
	case 1:
		after = gap - 1 // the last instant inside the session
	case 2:
		after = gap // just outside: belongs to no session
	default:
		after = 0 // the same ms as checkout_started: clickstream goes first
	}
	o := pev{ts: t + after, typ: schemas.OrderCompleted, amount: g.amount(), order: g.orderNo}
	g.orderNo++
	g.decorate(v, &o)
	g.push(v, o)
	v.orders++

	if r.chance(0.04) {
		refund := o
		refund.typ = schemas.OrderRefunded
		refund.ts = o.ts + r.between(day, 20*day)
		if r.chance(0.3) {
			refund.amount = o.amount / 2 // a partial refund
		}
		g.decorate(v, &refund)
		g.push(v, refund)
	}
	if v.subscribedUntil < o.ts && r.chance(0.08) {
		g.planSubscription(v, o.ts+r.between(10*second, 60*second), r.chance(0.3))
	}
	if r.chance(0.12) {
		// A post-purchase survey, answered from an e-mail days later.
		s := pev{ts: o.ts + r.between(day, 20*day), typ: schemas.Survey, page: pageSurvey}
		g.scores(&s)
		g.decorate(v, &s)
		g.push(v, s)
	}
}

// plans are the subscription plans.
var plans = []string{"basic", "plus", "pro", "team"}

// scores sets a survey's NPS (85%), CSAT and CES, each from a plausible
// distribution.
func (g *Generator) scores(e *pev) {
	r := g.rng
	e.nps, e.csat, e.ces = schemas.Absent, schemas.Absent, schemas.Absent
	if r.chance(0.85) {
		e.nps = int8(r.pick([]int{2, 1, 2, 2, 3, 5, 7, 12, 18, 22, 26}))
	}
	if e.nps == schemas.Absent || r.chance(0.5) {
		e.csat = int8(1 + r.pick([]int{5, 8, 17, 35, 35}))
	}
	if r.chance(0.55) {
		e.ces = int8(1 + r.pick([]int{3, 4, 7, 11, 19, 28, 28}))
	}
}

// planSubscription plans a subscription_started at t and maybe its
// cancellation weeks later. A free trial converts to a paid subscription
// at its end (14 days) or is cancelled then.
func (g *Generator) planSubscription(v *visitor, t int64, trial bool) {
	r := g.rng
	s := pev{ts: t, typ: schemas.SubscriptionStarted, plan: uint8(1 + r.pick([]int{40, 30, 20, 10}))}
	switch {
	case trial:
		s.trial = 1
	case r.chance(0.2):
		s.trial = 2 // "trial": false, written out
	}
	g.decorate(v, &s)
	g.push(v, s)
	v.subscribedUntil = math.MaxInt64
	if trial {
		end := t + 14*day + r.between(0, 6*hour)
		if r.chance(0.45) {
			paid := pev{ts: end, typ: schemas.SubscriptionStarted, plan: s.plan}
			g.decorate(v, &paid)
			g.push(v, paid)
			return
		}
		c := pev{ts: end, typ: schemas.SubscriptionCancelled, plan: s.plan}
		g.decorate(v, &c)
		g.push(v, c)
		v.subscribedUntil = c.ts
		return
	}
	if r.chance(0.35) {
		c := pev{ts: t + r.between(20*day, 150*day), typ: schemas.SubscriptionCancelled, plan: s.plan}
		g.decorate(v, &c)
		g.push(v, c)
		v.subscribedUntil = c.ts
	}
}

// sessionLength is the number of events after the landing of a session
// that does not bounce.
func (g *Generator) sessionLength() int {
	r := g.rng
	switch r.pick([]int{55, 35, 10}) {
	case 0:
		return 1 + r.intn(3)
	case 1:
		return 3 + r.intn(6)
	default:
		return 8 + r.intn(13)
	}
}

// browseEvent picks an ordinary in-session event.
func (g *Generator) browseEvent(v *visitor, e *pev) {
	r := g.rng
	weights := browseWeights
	if v.orders > 0 {
		weights = browseWeightsCustomer
	}
	e.item = uint16(r.intn(5000))
	switch r.pick(weights) {
	case 0:
		e.typ, e.page = schemas.PageView, []page{pageProduct, pageProduct, pageCategory, pageHome, pageBlog, pageCart}[r.intn(6)]
	case 1:
		e.typ, e.page = schemas.Click, []page{pageProduct, pageCategory}[r.intn(2)]
	case 2:
		e.typ, e.page = schemas.Search, pageSearch
		e.item = uint16(r.intn(len(searchQueries)))
	case 3:
		e.typ, e.page = schemas.AddToCart, pageProduct
	case 4:
		e.typ, e.page = schemas.CheckoutStarted, pageCheckout // abandoned
	case 5:
		e.typ, e.page = schemas.Referral, pageRefer
	case 6:
		e.typ, e.page = schemas.Review, pageProduct
		e.rating = int8(1 + r.pick([]int{8, 7, 15, 30, 40}))
	case 7:
		e.typ, e.page = schemas.Survey, pageSurvey
		g.scores(e)
	}
}

// Weights of browseEvent's cases: page_view, click, search, add_to_cart,
// checkout_started, referral, review, survey.
var (
	browseWeights         = []int{560, 220, 100, 70, 20, 6, 12, 12}
	browseWeightsCustomer = []int{520, 200, 90, 70, 20, 25, 45, 30}
)

// decorate sets what every event of the visitor carries: customer_id and
// occasional unknown fields.
func (g *Generator) decorate(v *visitor, e *pev) {
	r := g.rng
	if e.typ.Topic() == schemas.Transactions || e.typ == schemas.Signup {
		e.cust = v.customer != ""
	} else {
		e.cust = v.customer != "" && r.chance(0.85) // sometimes logged out
		e.noURL = r.chance(0.01)
	}
	if e.typ != schemas.Review {
		e.rating = schemas.Absent
	}
	if e.typ != schemas.Survey {
		e.nps, e.csat, e.ces = schemas.Absent, schemas.Absent, schemas.Absent
	}
	if r.chance(0.03) {
		e.extra = uint8(1 + r.intn(len(extras)))
	}
}

func (g *Generator) landingPage() page {
	return []page{pageHome, pageHome, pageProduct, pageProduct, pageCategory, pageBlog}[g.rng.intn(6)]
}

// amount is an order amount in Amount units: mostly whole cents, some with
// three or four decimals (converted prices).
func (g *Generator) amount() int64 {
	r := g.rng
	var cents int64
	switch r.pick([]int{50, 35, 15}) {
	case 0:
		cents = r.between(500, 6000)
	case 1:
		cents = r.between(6000, 20000)
	default:
		cents = r.between(20000, 120000)
	}
	switch r.pick([]int{70, 15, 15}) {
	case 0:
		return (cents/100*100 + 99) * 100 // x.99
	case 1:
		return cents * 100
	default:
		return cents*100 + r.between(0, 100) // up to four decimals
	}
}
