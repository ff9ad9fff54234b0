// Package expected computes, in one plain batch pass, the rows funnelhouse must
// produce for a set of valid, de-duplicated events: sessions, lifecycle
// transitions, the four views (funnel_daily, bounce_daily, churn_monthly,
// revenue_daily) and the catalogue of SPEC §6.1 (catalogue.go).
//
// It is the independent reference for tests and `funnelhouse bench`. It is
// written straight from docs/semantics.md and SPEC.md §4–6 and shares no code
// with pipeline/: where the pipeline is incremental and watermark-driven, this
// package sorts each visitor's events and walks them once. Readability comes
// before speed; every step names the rule it implements.
package expected

import (
	"cmp"
	"encoding/binary"
	"math"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/segmentio/ksuid"

	"github.com/funnelhouse/funnelhouse/schemas"
)

// Config holds the knobs of the computation.
type Config struct {
	// SessionGap splits sessions: a gap of exactly SessionGap stays in the
	// session (default 30 min).
	SessionGap time.Duration
	// ChurnAfter is the inactivity after which a customer churns (default
	// 90 days).
	ChurnAfter time.Duration
	// HorizonMs is the final watermark: churn deadlines < HorizonMs that are
	// still pending after the last event fire. math.MaxInt64 means "the end of
	// the input fires everything".
	HorizonMs int64
}

// DefaultConfig returns the defaults of SPEC.md: 30 min gap, 90 days churn,
// every deadline fires at the end.
func DefaultConfig() Config {
	return Config{SessionGap: 30 * time.Minute, ChurnAfter: 2160 * time.Hour, HorizonMs: math.MaxInt64}
}

// Result holds every expected row. Views are sorted by their key.
type Result struct {
	Funnel  []FunnelRow  // sorted by (CohortDay, Source)
	Bounce  []BounceRow  // sorted by (Day, Source)
	Churn   []ChurnRow   // sorted by Month
	Revenue []RevenueRow // sorted by (Day, Currency)

	// The catalogue (SPEC §6.1), each sorted by its key.
	Traffic           []TrafficRow
	VisitorConversion []VisitorConversionRow
	Pages             []PageRow
	Satisfaction      []SatisfactionRow
	Trials            []TrialRow
	AvgOrderValue     []AvgOrderValueRow // revenue_daily's new column, in Revenue's order
	Retention         []RetentionRow
	CLV               []CLVRow

	// Sessions are sorted by SessionID.
	Sessions []SessionRow
	// Transitions are sorted by VisitorID, then in the order they happen
	// (ts, then processing order within the same ts).
	Transitions []TransitionRow

	// Outcomes are what the events table holds beside each event.
	Outcomes Outcomes

	// Rejected are the orders that would take the revenue of their session
	// past schemas.MaxAmount: the pipeline dead-letters them
	// (revenue_overflow), and they count nowhere above. By visitor, then
	// in processing order.
	Rejected []schemas.Event
}

// EventOutcome is an event's session and stage (events.session_id and
// events.stage).
type EventOutcome struct {
	// Session is the event's session_id, "" when none.
	Session string
	// Stage is the visitor's stage after the event: one of awareness,
	// acquisition, conversion, retention, advocacy. Churned/reactivated are
	// a status beside the stage (SPEC §5) and never appear here.
	Stage string
}

// Outcomes holds the EventOutcome of every event, found by EventHash: a
// slice sorted by hash, 40 B an event, so that a 20M-event bench fits in
// memory (maps of the ids took 310 B). A hash collision, about 1 in 10^5
// at 20M events, hides one of two events and fails the check; it cannot
// pass a wrong row.
type Outcomes struct {
	sorted []hashedOutcome
}

type hashedOutcome struct {
	hash uint64
	EventOutcome
}

func (o *Outcomes) add(visitorID, eventID string, out EventOutcome) {
	o.sorted = append(o.sorted, hashedOutcome{EventHash(visitorID, eventID), out})
}

func (o *Outcomes) sort() {
	slices.SortFunc(o.sorted, func(a, b hashedOutcome) int { return cmp.Compare(a.hash, b.hash) })
}

// Len is the number of events.
func (o *Outcomes) Len() int { return len(o.sorted) }

// Index returns the index (0 to Len()-1) of an event, or -1 when it is
// not one of the expected events.
func (o *Outcomes) Index(visitorID, eventID string) int {
	h := EventHash(visitorID, eventID)
	i, found := slices.BinarySearchFunc(o.sorted, h, func(e hashedOutcome, h uint64) int { return cmp.Compare(e.hash, h) })
	if !found {
		return -1
	}
	return i
}

// At is the outcome of the event of index i.
func (o *Outcomes) At(i int) EventOutcome { return o.sorted[i].EventOutcome }

// Outcome returns the expected session and stage of an event, and whether
// it is one of the expected events.
func (r *Result) Outcome(visitorID, eventID string) (EventOutcome, bool) {
	i := r.Outcomes.Index(visitorID, eventID)
	if i < 0 {
		return EventOutcome{}, false
	}
	return r.Outcomes.At(i), true
}

// EventKey identifies an event by its visitor and event id.
func EventKey(visitorID, eventID string) string { return visitorID + "\x00" + eventID }

// EventHash is the 64-bit hash of EventKey, without building it.
func EventHash(visitorID, eventID string) uint64 {
	var d xxhash.Digest
	d.Reset()
	_, _ = d.WriteString(visitorID)
	_, _ = d.Write([]byte{0})
	_, _ = d.WriteString(eventID)
	return d.Sum64()
}

// FunnelRow is one row of funnel_daily.
type FunnelRow struct {
	CohortDay, Source                                            string
	Awareness, Acquisition, Conversion, Retention, Advocacy      uint64
	AcquisitionRate, ConversionRate, RetentionRate, AdvocacyRate float64
}

// BounceRow is one row of bounce_daily.
type BounceRow struct {
	Day, Source       string
	Sessions, Bounces uint64
	BounceRate        float64
}

// ChurnRow is one row of churn_monthly.
type ChurnRow struct {
	Month                               string // first day of the month, "2025-03-01"
	ActiveAtStart, Churned, Reactivated uint64
	ChurnRate                           float64
}

// RevenueRow is one row of revenue_daily.
type RevenueRow struct {
	Day, Currency                string
	Orders                       uint64
	Revenue, Refunds, NetRevenue schemas.Amount
	Customers                    uint64
}

// SessionRow is one row of the sessions table.
type SessionRow struct {
	SessionID, VisitorID, CustomerID string
	StartMs, EndMs                   int64
	DurationS                        float64
	Events, PageViews                uint32
	EntryURL, ExitURL                string
	Source, Medium, Campaign         string
	IsBounce                         bool
	Orders                           uint32
	Revenue                          schemas.Amount
}

// TransitionRow is one row of lifecycle_transitions.
type TransitionRow struct {
	VisitorID, CustomerID, Stage string
	TsMs                         int64
	CohortDay, Source, EventID   string
}

// Stage and status names, as written to the stage columns.
const (
	StageAwareness    = "awareness"
	StageAcquisition  = "acquisition"
	StageConversion   = "conversion"
	StageRetention    = "retention"
	StageAdvocacy     = "advocacy"
	StatusChurned     = "churned"
	StatusReactivated = "reactivated"
)

// Funnel stages in order; stage 0 is "not seen yet".
const (
	none = iota
	awareness
	acquisition
	conversion
	retention
	advocacy
)

var stageNames = [...]string{"", StageAwareness, StageAcquisition, StageConversion, StageRetention, StageAdvocacy}

// Compute returns the expected rows for events: valid, de-duplicated events
// (no two with the same visitor_id and event_id), in any order, none late.
// events is not modified.
func Compute(events []schemas.Event, cfg Config) *Result {
	return ComputeWithLate(events, nil, cfg)
}

// ComputeWithLate is Compute with late events besides (SPEC §3: stored
// with late = 1, in no session, changing no stage): they count only in the
// views that include late events (revenue and the catalogue's event-based
// views). A late event with the visitor and event id of an on-time one (a
// copy that came back after the pipeline forgot the id) counts nowhere:
// events keeps the on-time row (migration 0006) and the views count ids.
func ComputeWithLate(events, late []schemas.Event, cfg Config) *Result {
	late = withoutIDs(late, events)
	res := &Result{Outcomes: Outcomes{sorted: make([]hashedOutcome, 0, len(events))}}

	// Group by visitor, then walk each visitor on their own (SPEC: all state
	// is per visitor).
	byVisitor := make(map[string][]*schemas.Event)
	for i := range events {
		e := &events[i]
		byVisitor[e.VisitorID] = append(byVisitor[e.VisitorID], e)
	}
	visitors := make([]string, 0, len(byVisitor))
	for v := range byVisitor {
		visitors = append(visitors, v)
	}
	slices.Sort(visitors)

	for _, v := range visitors {
		evs := byVisitor[v]
		// semantics "Order of processing" 3: (ts, topic, event_id).
		slices.SortFunc(evs, processingOrder)
		walkVisitor(res, evs, cfg)
	}
	res.Outcomes.sort()
	if len(res.Rejected) > 0 {
		events = withoutIDs(events, res.Rejected)
	}

	slices.SortFunc(res.Sessions, func(a, b SessionRow) int {
		return cmp.Or(strings.Compare(a.SessionID, b.SessionID), strings.Compare(a.VisitorID, b.VisitorID))
	})
	// Transitions are already grouped by sorted visitor and in order within
	// each visitor.

	res.Funnel = funnelDaily(res.Transitions)
	res.Bounce = bounceDaily(res.Sessions)
	res.Churn = churnMonthly(res.Transitions)
	res.Revenue = revenueDaily(append(slices.Clip(events), late...))
	catalogue(res, events, late)
	return res
}

// withoutIDs returns a copy of events without those that have the visitor
// and event id of one of drop.
func withoutIDs(events, drop []schemas.Event) []schemas.Event {
	ids := make(map[string]bool, len(drop))
	for i := range drop {
		ids[EventKey(drop[i].VisitorID, drop[i].EventID)] = true
	}
	return slices.DeleteFunc(slices.Clone(events), func(e schemas.Event) bool { return ids[EventKey(e.VisitorID, e.EventID)] })
}

// processingOrder orders one visitor's events by ts, then clickstream before
// transactions, then event_id as bytes.
func processingOrder(a, b *schemas.Event) int {
	return cmp.Or(
		cmp.Compare(a.TsMs, b.TsMs),
		cmp.Compare(a.Type.Topic(), b.Type.Topic()),
		strings.Compare(a.EventID, b.EventID),
	)
}

// session is a session under construction.
type session struct {
	row   SessionRow
	first *schemas.Event
}

// walkVisitor computes the sessions, transitions and per-event columns of one
// visitor whose events are in processing order.
func walkVisitor(res *Result, evs []*schemas.Event, cfg Config) {
	gap := cfg.SessionGap.Milliseconds()
	churnAfter := cfg.ChurnAfter.Milliseconds()
	visitorID := evs[0].VisitorID

	// --- Sessions (semantics "Sessions") ---
	// A clickstream event continues the current session when
	// ts - session.end <= gap; otherwise a new session starts. Events are
	// sorted by ts, so this gives the maximal runs, bridging included.
	var sessions []*session
	sessionOfEvent := make(map[*schemas.Event]*session)
	for _, e := range evs {
		if e.Type.Topic() != schemas.Clickstream {
			continue
		}
		var cur *session
		if n := len(sessions); n > 0 && e.TsMs-sessions[n-1].row.EndMs <= gap {
			cur = sessions[n-1]
		} else {
			cur = &session{first: e}
			cur.row.VisitorID = visitorID
			cur.row.StartMs = e.TsMs
			cur.row.EntryURL = e.URL
			cur.row.Source = sourceOf(e)
			cur.row.Medium = e.UTMMedium
			cur.row.Campaign = e.UTMCampaign
			cur.row.SessionID = SessionID(visitorID, e.EventID, e.TsMs)
			sessions = append(sessions, cur)
		}
		cur.row.EndMs = e.TsMs
		cur.row.ExitURL = e.URL
		cur.row.Events++
		if e.Type == schemas.PageView {
			cur.row.PageViews++
		}
		sessionOfEvent[e] = cur
	}
	// sessionAt returns the session with start <= ts < end + gap (end being
	// the final end), or nil. Sessions are disjoint and sorted by start.
	sessionAt := func(ts int64) *session {
		for _, s := range sessions {
			if s.row.StartMs <= ts && ts < s.row.EndMs+gap {
				return s
			}
		}
		return nil
	}
	// Transactions: events.session_id and the orders of a session. An
	// order whose amount would take its session's revenue past what
	// sessions.revenue holds (Decimal(18,4)) is rejected, in processing
	// order: it is in no row and changes no state.
	rejected := make(map[*schemas.Event]bool)
	for _, e := range evs {
		if e.Type.Topic() != schemas.Transactions {
			continue
		}
		s := sessionAt(e.TsMs)
		if s == nil {
			continue
		}
		if e.Type == schemas.OrderCompleted && e.Amount > schemas.MaxAmount-s.row.Revenue {
			rejected[e] = true
			res.Rejected = append(res.Rejected, *e)
			continue
		}
		sessionOfEvent[e] = s
		if e.Type == schemas.OrderCompleted {
			s.row.Orders++
			s.row.Revenue += e.Amount
		}
	}

	// --- Lifecycle (semantics "Lifecycle") ---
	var (
		stage        = none
		customerID   string
		cohortDay    string
		source       string
		firstOrder   string
		churned      bool
		lastActivity int64
	)
	emit := func(name string, ts int64, eventID string) {
		res.Transitions = append(res.Transitions, TransitionRow{
			VisitorID: visitorID, CustomerID: customerID, Stage: name, TsMs: ts,
			CohortDay: cohortDay, Source: source, EventID: eventID,
		})
	}
	// enter enters stage s and every earlier stage not yet entered, at the
	// same ts and with the same event_id.
	enter := func(s int, ts int64, eventID string) {
		for stage < s {
			stage++
			emit(stageNames[stage], ts, eventID)
		}
	}
	// churnPending: a converted, not churned customer has a churn deadline
	// at lastActivity + churnAfter.
	churnPending := func() bool { return stage >= conversion && !churned }

	for _, e := range evs {
		if rejected[e] {
			continue
		}
		// 1. Deadlines fire before any event with ts > deadline; an event at
		// exactly the deadline keeps the customer active.
		if churnPending() && lastActivity+churnAfter < e.TsMs {
			churned = true
			emit(StatusChurned, lastActivity+churnAfter, "")
		}
		// 3. customer_id. Applied before step 2 because a transition row
		// carries the customer_id after the event; steps 2 and 3 touch
		// different state, so their order changes nothing else.
		if e.CustomerID != "" {
			customerID = e.CustomerID
		}
		// 2. The first event: awareness, cohort_day and first-touch source.
		if stage == none {
			cohortDay = Day(e.TsMs)
			source = sourceOf(e)
			enter(awareness, e.TsMs, e.EventID)
		}
		// 4. By type.
		switch e.Type {
		case schemas.Signup:
			enter(acquisition, e.TsMs, e.EventID)
		case schemas.OrderCompleted:
			if stage < conversion {
				enter(conversion, e.TsMs, e.EventID) // guest checkout also enters acquisition
				firstOrder = e.OrderID
			} else if stage == conversion && e.OrderID != firstOrder {
				enter(retention, e.TsMs, e.EventID)
			}
			if churned {
				churned = false
				emit(StatusReactivated, e.TsMs, e.EventID)
			}
		case schemas.SubscriptionStarted:
			if churned {
				churned = false
				emit(StatusReactivated, e.TsMs, e.EventID)
			}
		case schemas.SubscriptionCancelled:
			if churnPending() {
				churned = true
				emit(StatusChurned, e.TsMs, e.EventID)
			}
		case schemas.Referral, schemas.Review, schemas.Survey:
			signal := e.Type == schemas.Referral ||
				(e.Type == schemas.Review && e.Rating >= 4) ||
				(e.Type == schemas.Survey && e.NPS >= 9)
			if signal && stage >= conversion && stage < advocacy {
				enter(advocacy, e.TsMs, e.EventID) // and retention if missing
			}
		}
		// 5. Every event is activity.
		lastActivity = e.TsMs
		// 6. events.stage; a clickstream event also sets its session's
		// customer_id (the latest as of the session's last clickstream event).
		out := EventOutcome{Stage: stageNames[stage]}
		if s := sessionOfEvent[e]; s != nil {
			out.Session = s.row.SessionID
			if e.Type.Topic() == schemas.Clickstream {
				s.row.CustomerID = customerID
			}
		}
		res.Outcomes.add(visitorID, e.EventID, out)
	}
	// End of input: the remaining deadline fires when it is before the horizon.
	if churnPending() && lastActivity+churnAfter < cfg.HorizonMs {
		emit(StatusChurned, lastActivity+churnAfter, "")
	}

	for _, s := range sessions {
		s.row.DurationS = float64(s.row.EndMs-s.row.StartMs) / 1000
		s.row.IsBounce = s.row.Events == 1 && s.first.Type == schemas.PageView && s.row.Orders == 0
		res.Sessions = append(res.Sessions, s.row)
	}
}

// sourceOf applies the source rule (SPEC §4) to the first event of a session
// or of a visitor: utm_source, else the referrer's host, else "(direct)".
func sourceOf(e *schemas.Event) string {
	if e.UTMSource != "" {
		return e.UTMSource
	}
	if h := ReferrerHost(e.Referrer); h != "" {
		return h
	}
	return "(direct)"
}

// ReferrerHost returns the lower-cased host of a referrer without its port,
// "www." kept; "" when it has none. A referrer without "://" is read as
// "//" + referrer.
func ReferrerHost(referrer string) string {
	if referrer == "" {
		return ""
	}
	raw := referrer
	if !strings.Contains(referrer, "://") {
		raw = "//" + referrer
	}
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return strings.ToLower(u.Hostname())
}

// ksuidEpochSec is the KSUID epoch, 2014-05-13T16:53:20Z.
const ksuidEpochSec = 1400000000

// SessionID is the deterministic session id: a KSUID whose time is the
// session start in seconds (clamped up to the KSUID epoch) and whose payload
// is big-endian xxhash64(visitor_id+"\x00"+first_event_id) followed by
// big-endian xxhash64(first_event_id+"\x00"+visitor_id).
func SessionID(visitorID, firstEventID string, startMs int64) string {
	sec := startMs / 1000
	if startMs < 0 && startMs%1000 != 0 {
		sec-- // floor
	}
	sec = max(sec, ksuidEpochSec)
	var payload [16]byte
	binary.BigEndian.PutUint64(payload[:8], xxhash.Sum64String(visitorID+"\x00"+firstEventID))
	binary.BigEndian.PutUint64(payload[8:], xxhash.Sum64String(firstEventID+"\x00"+visitorID))
	id, err := ksuid.FromParts(time.Unix(sec, 0), payload[:])
	if err != nil {
		panic("BUG: ksuid.FromParts with a 16-byte payload: " + err.Error())
	}
	return id.String()
}

// Day returns the UTC day of ms as "YYYY-MM-DD".
func Day(ms int64) string { return time.UnixMilli(ms).UTC().Format(time.DateOnly) }

// rate is a / b, 0 when b is 0.
func rate(a, b uint64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// funnelDaily counts, per (cohort_day, first-touch source), the distinct
// visitors with a transition to each stage.
func funnelDaily(transitions []TransitionRow) []FunnelRow {
	type key struct{ day, source string }
	type visitorStage struct{ visitor, stage string }
	rows := make(map[key]*FunnelRow)
	seen := make(map[visitorStage]bool)
	for _, t := range transitions {
		if seen[visitorStage{t.VisitorID, t.Stage}] {
			continue
		}
		seen[visitorStage{t.VisitorID, t.Stage}] = true
		k := key{t.CohortDay, t.Source}
		r := rows[k]
		if r == nil {
			r = &FunnelRow{CohortDay: t.CohortDay, Source: t.Source}
			rows[k] = r
		}
		switch t.Stage {
		case StageAwareness:
			r.Awareness++
		case StageAcquisition:
			r.Acquisition++
		case StageConversion:
			r.Conversion++
		case StageRetention:
			r.Retention++
		case StageAdvocacy:
			r.Advocacy++
		}
	}
	var out []FunnelRow
	for _, r := range rows {
		if r.Awareness == 0 {
			continue // cannot happen: awareness comes with every visitor
		}
		r.AcquisitionRate = rate(r.Acquisition, r.Awareness)
		r.ConversionRate = rate(r.Conversion, r.Acquisition)
		r.RetentionRate = rate(r.Retention, r.Conversion)
		r.AdvocacyRate = rate(r.Advocacy, r.Retention)
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b FunnelRow) int {
		return cmp.Or(strings.Compare(a.CohortDay, b.CohortDay), strings.Compare(a.Source, b.Source))
	})
	return out
}

// bounceDaily counts sessions and bounces per (UTC day of session start,
// session source).
func bounceDaily(sessions []SessionRow) []BounceRow {
	type key struct{ day, source string }
	rows := make(map[key]*BounceRow)
	for _, s := range sessions {
		k := key{Day(s.StartMs), s.Source}
		r := rows[k]
		if r == nil {
			r = &BounceRow{Day: k.day, Source: k.source}
			rows[k] = r
		}
		r.Sessions++
		if s.IsBounce {
			r.Bounces++
		}
	}
	var out []BounceRow
	for _, r := range rows {
		r.BounceRate = rate(r.Bounces, r.Sessions)
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b BounceRow) int {
		return cmp.Or(strings.Compare(a.Day, b.Day), strings.Compare(a.Source, b.Source))
	})
	return out
}

// monthStart returns the first instant of the UTC month holding ms.
func monthStart(ms int64) time.Time {
	t := time.UnixMilli(ms).UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// churnMonthly builds churn_monthly from the conversion, churned and
// reactivated transitions.
func churnMonthly(transitions []TransitionRow) []ChurnRow {
	// Each customer's conversion/churned/reactivated transitions, in order.
	type status struct {
		ts    int64
		stage string
	}
	history := make(map[string][]status)
	var customers []string
	var first, last int64 = math.MaxInt64, math.MinInt64
	haveConversion := false
	for _, t := range transitions {
		if t.Stage != StageConversion && t.Stage != StatusChurned && t.Stage != StatusReactivated {
			continue
		}
		if t.Stage == StageConversion {
			haveConversion = true
			first = min(first, t.TsMs)
		}
		last = max(last, t.TsMs)
		if _, ok := history[t.VisitorID]; !ok {
			customers = append(customers, t.VisitorID)
		}
		history[t.VisitorID] = append(history[t.VisitorID], status{t.TsMs, t.Stage})
	}
	if !haveConversion {
		return nil
	}

	var out []ChurnRow
	for m := monthStart(first); !m.After(monthStart(last)); m = m.AddDate(0, 1, 0) {
		startMs := m.UnixMilli()
		endMs := m.AddDate(0, 1, 0).UnixMilli()
		row := ChurnRow{Month: m.Format(time.DateOnly)}
		for _, c := range customers {
			// active_at_start: the latest of the customer's transitions
			// before the month start is not churned.
			latest := ""
			for _, s := range history[c] {
				if s.ts < startMs {
					latest = s.stage
				}
				if startMs <= s.ts && s.ts < endMs {
					switch s.stage {
					case StatusChurned:
						row.Churned++
					case StatusReactivated:
						row.Reactivated++
					}
				}
			}
			if latest != "" && latest != StatusChurned {
				row.ActiveAtStart++
			}
		}
		row.ChurnRate = rate(row.Churned, row.ActiveAtStart)
		out = append(out, row)
	}
	return out
}

// revenueDaily builds revenue_daily from the order events.
func revenueDaily(events []schemas.Event) []RevenueRow {
	// Deterministic order, so "one amount per order_id" takes the first.
	var orders []*schemas.Event
	for i := range events {
		if t := events[i].Type; t == schemas.OrderCompleted || t == schemas.OrderRefunded {
			orders = append(orders, &events[i])
		}
	}
	slices.SortFunc(orders, func(a, b *schemas.Event) int {
		return cmp.Or(cmp.Compare(a.TsMs, b.TsMs), strings.Compare(a.VisitorID, b.VisitorID), strings.Compare(a.EventID, b.EventID))
	})

	type key struct{ day, currency string }
	type acc struct {
		row       RevenueRow
		orderIDs  map[string]bool
		refundIDs map[string]bool
		visitors  map[string]bool
	}
	rows := make(map[key]*acc)
	for _, e := range orders {
		k := key{Day(e.TsMs), e.Currency}
		a := rows[k]
		if a == nil {
			a = &acc{
				row:      RevenueRow{Day: k.day, Currency: k.currency},
				orderIDs: map[string]bool{}, refundIDs: map[string]bool{}, visitors: map[string]bool{},
			}
			rows[k] = a
		}
		switch e.Type {
		case schemas.OrderCompleted:
			if !a.orderIDs[e.OrderID] {
				a.orderIDs[e.OrderID] = true
				a.row.Orders++
				a.row.Revenue += e.Amount
			}
			a.visitors[e.VisitorID] = true
		case schemas.OrderRefunded:
			if !a.refundIDs[e.EventID] {
				a.refundIDs[e.EventID] = true
				a.row.Refunds += e.Amount
			}
		}
	}
	var out []RevenueRow
	for _, a := range rows {
		a.row.NetRevenue = a.row.Revenue - a.row.Refunds
		a.row.Customers = uint64(len(a.visitors))
		out = append(out, a.row)
	}
	slices.SortFunc(out, func(a, b RevenueRow) int {
		return cmp.Or(strings.Compare(a.Day, b.Day), strings.Compare(a.Currency, b.Currency))
	})
	return out
}
