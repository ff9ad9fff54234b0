package pipeline

import (
	"github.com/funnelhouse/funnelhouse/pipeline/rows"
	"github.com/funnelhouse/funnelhouse/schemas"
)

// applyLifecycle runs the lifecycle rules for one released event of
// visitor vi; transitions go to p.out.
func (p *Processor) applyLifecycle(vi uint32, v *visitor, e *schemas.Event) {
	switch e.Type {
	case schemas.Signup:
		p.enter(v, rows.StageAcquisition, e.TsMs, e.EventID)
	case schemas.OrderCompleted:
		switch {
		case !v.customer():
			p.enter(v, rows.StageConversion, e.TsMs, e.EventID)
			v.firstOrder = p.visitors.strs.put(e.OrderID)
		case v.stage == rows.StageConversion && e.OrderID != p.visitors.strs.get(v.firstOrder):
			p.enter(v, rows.StageRetention, e.TsMs, e.EventID)
		}
		p.reactivate(v, e)
	case schemas.SubscriptionStarted:
		p.reactivate(v, e)
	case schemas.SubscriptionCancelled:
		if v.customer() && !v.is(churned) {
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
	p.queueChurn(vi, v)
	p.queueForget(vi, v)
}

// enter moves v forward to stage, entering every stage it skipped at the
// same ts (the funnel never widens).
func (p *Processor) enter(v *visitor, stage rows.Stage, tsMs int64, eventID string) {
	for s := v.stage + 1; s <= stage; s++ {
		p.transition(v, s, tsMs, eventID)
	}
	if stage > v.stage {
		v.stage = stage
	}
}

func (p *Processor) advocate(v *visitor, e *schemas.Event) {
	if v.customer() {
		p.enter(v, rows.StageAdvocacy, e.TsMs, e.EventID)
	}
}

func (p *Processor) reactivate(v *visitor, e *schemas.Event) {
	if v.is(churned) {
		v.set(churned, false)
		p.transition(v, rows.StageReactivated, e.TsMs, e.EventID)
	}
}

func (p *Processor) churn(v *visitor, tsMs int64, eventID string) {
	v.set(churned, true)
	p.transition(v, rows.StageChurned, tsMs, eventID)
}

// transition writes a lifecycle_transitions row; the caller touched v.
func (p *Processor) transition(v *visitor, stage rows.Stage, tsMs int64, eventID string) {
	strs := &p.visitors.strs
	p.out.Transitions.Append(&rows.Transition{VisitorID: strs.get(v.id), CustomerID: strs.get(v.customerID), Stage: stage, TsMs: tsMs,
		CohortDayMs: v.cohortDayMs(), Source: p.symbols.name(v.source), EventID: eventID})
	p.stats.Transitions[stage]++
}

// queueChurn gives a customer who has not churned an entry in the churn
// deadline queue, at last activity + churn-after, unless it has one.
func (p *Processor) queueChurn(vi uint32, v *visitor) {
	if v.customer() && !v.is(churned) && !v.is(churnQueued) {
		v.set(churnQueued, true)
		p.churns.push(v.lastMs+p.churnAfter, vi)
	}
}

// queueSessionClose gives v's open session an entry in the session
// deadline queue, at its end + gap, unless it has one.
func (p *Processor) queueSessionClose(vi uint32, v *visitor) {
	if v.session != 0 && !v.is(sessionQueued) {
		v.set(sessionQueued, true)
		p.sessionDeadlines.push(p.sessions.at(v.session-1).endMs+p.gap, vi)
	}
}

// fireChurn handles a popped churn deadline.
func (p *Processor) fireChurn(d deadline) {
	v := p.visitors.slab.at(d.v)
	v.set(churnQueued, false)
	if !v.customer() || v.is(churned) {
		return
	}
	if v.lastMs+p.churnAfter > d.at { // active since: not yet due
		p.queueChurn(d.v, v)
		return
	}
	p.touch(d.v, v)
	p.churn(v, d.at, "")
	p.queueForget(d.v, v)
}

// fireSessionClose handles a popped session deadline.
func (p *Processor) fireSessionClose(d deadline) {
	v := p.visitors.slab.at(d.v)
	v.set(sessionQueued, false)
	if v.session == 0 {
		return
	}
	if p.sessions.at(v.session-1).endMs+p.gap > d.at { // extended since: not yet due
		p.queueSessionClose(d.v, v)
		return
	}
	p.touch(d.v, v)
	p.closeSession(v)
	p.queueForget(d.v, v)
}

// closeSession writes v's open session as a sessions row; the caller
// touched v. The row's strings are copied into the batch: the session's
// slot is reused.
func (p *Processor) closeSession(v *visitor) {
	i := v.session - 1
	s := p.sessions.at(i)
	v.session = 0
	text := &p.out.Text
	// The URLs need no copy: the table's strings outlive their references.
	entry, exit := p.urls.name(s.entry), p.urls.name(s.exit)
	p.urls.unref(s.entry)
	p.urls.unref(s.exit)
	p.out.Sessions.Append(&rows.Session{
		SessionID: text.String(s.id[:]), VisitorID: p.visitors.strs.get(v.id), CustomerID: p.visitors.strs.get(s.customerID),
		StartMs: s.startMs, EndMs: s.endMs, Events: s.events, PageViews: s.pageViews,
		EntryURL: entry, ExitURL: exit,
		Source: p.symbols.name(s.source), Medium: p.symbols.name(s.medium), Campaign: p.symbols.name(s.campaign),
		IsBounce: s.isBounce(), Orders: s.orders, Revenue: s.revenue,
		CohortDayMs: v.cohortDayMs(), FirstSession: s.first, FirstOfDay: s.firstOfDay,
	})
	p.stats.SessionsClosed++
	p.freeSessions = append(p.freeSessions, i)
}
