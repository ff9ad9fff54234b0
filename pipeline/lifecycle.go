package pipeline

import (
	"strings"

	"github.com/funnelhouse/funnelhouse/schemas"
	chsink "github.com/funnelhouse/funnelhouse/sinks/clickhouse"
)

// visitor is one visitor's lifecycle state (SPEC §5) and open session.
type visitor struct {
	id           string
	customerID   string
	stage        int8 // chsink.Stage*, 0 before awareness
	cohortDayMs  int64
	source       string // first-touch source
	firstOrderID string
	lastMs       int64 // last activity
	churned      bool
	session      *session

	// Bookkeeping, not state: whether the visitor has an entry in the
	// session and churn deadline queues, and whether it changed since the
	// last checkpoint.
	sessionQueued, churnQueued, dirty bool
}

func (v *visitor) customer() bool { return v.stage >= chsink.StageConversion }

// apply runs the lifecycle rules for one released event and returns
// nothing; transitions go to p.out.
func (p *Processor) applyLifecycle(v *visitor, e *schemas.Event) {
	switch e.Type {
	case schemas.Signup:
		p.enter(v, chsink.StageAcquisition, e.TsMs, e.EventID)
	case schemas.OrderCompleted:
		switch {
		case !v.customer():
			p.enter(v, chsink.StageConversion, e.TsMs, e.EventID)
			v.firstOrderID = strings.Clone(e.OrderID)
		case v.stage == chsink.StageConversion && e.OrderID != v.firstOrderID:
			p.enter(v, chsink.StageRetention, e.TsMs, e.EventID)
		}
		p.reactivate(v, e)
	case schemas.SubscriptionStarted:
		p.reactivate(v, e)
	case schemas.SubscriptionCancelled:
		if v.customer() && !v.churned {
			p.churn(v, e.TsMs, e.EventID)
		}
	case schemas.Referral:
		p.advocate(v, e)
	case schemas.Review:
		if e.Rating >= 4 {
			p.advocate(v, e)
		}
	case schemas.Survey:
		if e.NPS >= 9 {
			p.advocate(v, e)
		}
	}
	v.lastMs = e.TsMs
	if v.customer() && !v.churned && !v.churnQueued {
		v.churnQueued = true
		p.churns.push(v.lastMs+p.churnAfter, v)
	}
}

// enter moves v forward to stage, entering every stage it skipped at the
// same ts (the funnel never widens).
func (p *Processor) enter(v *visitor, stage int8, tsMs int64, eventID string) {
	for s := v.stage + 1; s <= stage; s++ {
		p.transition(v, s, tsMs, eventID)
	}
	if stage > v.stage {
		v.stage = stage
	}
}

func (p *Processor) advocate(v *visitor, e *schemas.Event) {
	if v.customer() {
		p.enter(v, chsink.StageAdvocacy, e.TsMs, e.EventID)
	}
}

func (p *Processor) reactivate(v *visitor, e *schemas.Event) {
	if v.churned {
		v.churned = false
		p.transition(v, chsink.StageReactivated, e.TsMs, e.EventID)
	}
}

func (p *Processor) churn(v *visitor, tsMs int64, eventID string) {
	v.churned = true
	p.transition(v, chsink.StageChurned, tsMs, eventID)
}

func (p *Processor) transition(v *visitor, stage int8, tsMs int64, eventID string) {
	p.touch(v)
	p.out.Transitions.Append(v.id, v.customerID, stage, tsMs, v.cohortDayMs, v.source, eventID)
	p.stats.Transitions[stage]++
}

// fireChurn handles a popped churn deadline.
func (p *Processor) fireChurn(d deadline) {
	v := d.v
	v.churnQueued = false
	if !v.customer() || v.churned {
		return
	}
	if due := v.lastMs + p.churnAfter; due > d.at {
		v.churnQueued = true
		p.churns.push(due, v)
		return
	}
	p.churn(v, d.at, "")
}

// fireSessionClose handles a popped session deadline.
func (p *Processor) fireSessionClose(d deadline) {
	v := d.v
	v.sessionQueued = false
	s := v.session
	if s == nil {
		return
	}
	if due := s.endMs + p.gap; due > d.at {
		v.sessionQueued = true
		p.sessions.push(due, v)
		return
	}
	p.closeSession(v)
}

func (p *Processor) closeSession(v *visitor) {
	s := v.session
	v.session = nil
	p.touch(v)
	p.out.Sessions.Append(&chsink.SessionRow{
		SessionID: s.id, VisitorID: v.id, CustomerID: s.customerID,
		StartMs: s.startMs, EndMs: s.endMs, Events: s.events, PageViews: s.pageViews,
		EntryURL: s.entryURL, ExitURL: sameOrClone(s.exitURL, s.entryURL), Source: s.source, Medium: s.medium, Campaign: s.campaign,
		IsBounce: s.isBounce(), Orders: s.orders, Revenue: s.revenue,
	})
	p.stats.SessionsClosed++
	*s = session{}
	p.freeSessions = append(p.freeSessions, s)
}

// sameOrClone returns like when s equals it, else a copy of s.
func sameOrClone(s, like string) string {
	if s == like {
		return like
	}
	return strings.Clone(s)
}
