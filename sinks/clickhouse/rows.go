// Package clickhouse writes funnelhouse's rows to ClickHouse as native
// columnar batches (clickhouse-go/v2): one INSERT per table per flush, retried
// with backoff until acknowledged.
package clickhouse

import (
	"github.com/funnelhouse/funnelhouse/schemas"
)

// Batch holds the rows of one flush as typed column slices, one struct per
// table. It is owned by one goroutine at a time: a partition owner appends
// to it, then hands it to Sink.Write, which only reads it.
type Batch struct {
	Events      EventRows
	Sessions    SessionRows
	Transitions TransitionRows
	State       StateRows

	// Text holds copies of strings whose source is reused before the
	// batch is written (a recycled session's id and URLs), for the life
	// of the batch.
	Text schemas.Arena
}

// freeBatches keeps batches for reuse. Not a sync.Pool: every garbage
// collection empties that, and at a million events per second that is
// several times per checkpoint, so each checkpoint would regrow its ~60
// columns from nothing (about 800 bytes allocated per event).
var freeBatches = make(chan *Batch, 8)

// GetBatch returns an empty batch, reusing the column slices of one given
// back with PutBatch.
func GetBatch() *Batch {
	select {
	case b := <-freeBatches:
		return b
	default:
		return new(Batch)
	}
}

// PutBatch gives a batch back once it is written; the caller must not use
// it afterwards.
func PutBatch(b *Batch) {
	b.Reset()
	select {
	case freeBatches <- b:
	default: // enough kept
	}
}

// Rows is the number of rows of every table.
func (b *Batch) Rows() int {
	return b.Events.Len() + b.Sessions.Len() + b.Transitions.Len() + b.State.Len()
}

// Reset empties the batch and keeps its capacity.
func (b *Batch) Reset() {
	b.Events = EventRows{}.reuse(&b.Events)
	b.Sessions = SessionRows{}.reuse(&b.Sessions)
	b.Transitions = TransitionRows{}.reuse(&b.Transitions)
	b.State = StateRows{}.reuse(&b.State)
	b.Text = schemas.Arena{} // its chunks go with the rows that used them
}

// Stage values of the events.stage and lifecycle_transitions.stage enums.
const (
	StageAwareness   int8 = 1
	StageAcquisition int8 = 2
	StageConversion  int8 = 3
	StageRetention   int8 = 4
	StageAdvocacy    int8 = 5
	StageChurned     int8 = 6
	StageReactivated int8 = 7
)

// StageNames maps stage enum values to their names in ClickHouse.
var StageNames = [...]string{"", "awareness", "acquisition", "conversion", "retention", "advocacy", "churned", "reactivated"}

// EventRows are rows of the events table.
type EventRows struct {
	EventID    []string
	Ts         []int64 // unix seconds
	TsMs       []uint64
	Type       []int8 // schemas.Type, the enum's values
	VisitorID  []string
	CustomerID []string
	SessionID  []string
	Stage      []int8
	URL        []string
	Referrer   []string
	Source     []string
	Medium     []string
	Campaign   []string
	Device     []string
	Country    []string
	OrderID    []string
	Amount     []schemas.Amount
	Currency   []string
	Rating     []int8 // schemas.Absent = NULL
	NPS        []int8
	CSAT       []int8
	CES        []int8
	Trial      []uint8
	Plan       []string
	// SessionStart is the start of the event's session in unix seconds, 0
	// without one: pages_daily counts page views on their session's day.
	SessionStart []int64
	Props        []string
	Late         []uint8
	KafkaTopic   []string
	KafkaPart    []int32
	KafkaOffset  []int64
}

// Len is the number of rows.
func (r *EventRows) Len() int { return len(r.EventID) }

// Append adds one event row.
func (r *EventRows) Append(e *schemas.Event, sessionID string, sessionStartMs int64, stage int8, source, medium, campaign string, late bool, topic string, partition int32, offset int64) {
	r.EventID = append(r.EventID, e.EventID)
	r.Ts = append(r.Ts, floorDiv(e.TsMs, 1000))
	r.TsMs = append(r.TsMs, uint64(e.TsMs))
	r.Type = append(r.Type, int8(e.Type))
	r.VisitorID = append(r.VisitorID, e.VisitorID)
	r.CustomerID = append(r.CustomerID, e.CustomerID)
	r.SessionID = append(r.SessionID, sessionID)
	r.Stage = append(r.Stage, stage)
	r.URL = append(r.URL, e.URL)
	r.Referrer = append(r.Referrer, e.Referrer)
	r.Source = append(r.Source, source)
	r.Medium = append(r.Medium, medium)
	r.Campaign = append(r.Campaign, campaign)
	r.Device = append(r.Device, e.Device)
	r.Country = append(r.Country, e.Country)
	r.OrderID = append(r.OrderID, e.OrderID)
	r.Amount = append(r.Amount, e.Amount)
	r.Currency = append(r.Currency, e.Currency)
	r.Rating = append(r.Rating, e.Rating)
	r.NPS = append(r.NPS, e.NPS)
	r.CSAT = append(r.CSAT, e.CSAT)
	r.CES = append(r.CES, e.CES)
	var trial uint8
	if e.Trial {
		trial = 1
	}
	r.Trial = append(r.Trial, trial)
	r.Plan = append(r.Plan, e.Plan)
	r.SessionStart = append(r.SessionStart, floorDiv(sessionStartMs, 1000))
	r.Props = append(r.Props, e.Props)
	var l uint8
	if late {
		l = 1
	}
	r.Late = append(r.Late, l)
	r.KafkaTopic = append(r.KafkaTopic, topic)
	r.KafkaPart = append(r.KafkaPart, partition)
	r.KafkaOffset = append(r.KafkaOffset, offset)
}

func (EventRows) reuse(r *EventRows) EventRows {
	return EventRows{
		zs(r.EventID), r.Ts[:0], r.TsMs[:0], r.Type[:0], zs(r.VisitorID), zs(r.CustomerID), zs(r.SessionID),
		r.Stage[:0], zs(r.URL), zs(r.Referrer), zs(r.Source), zs(r.Medium), zs(r.Campaign), zs(r.Device),
		zs(r.Country), zs(r.OrderID), r.Amount[:0], zs(r.Currency), r.Rating[:0], r.NPS[:0], r.CSAT[:0],
		r.CES[:0], r.Trial[:0], zs(r.Plan), r.SessionStart[:0], zs(r.Props), r.Late[:0], zs(r.KafkaTopic), r.KafkaPart[:0], r.KafkaOffset[:0],
	}
}

// SessionRow is one closed session.
type SessionRow struct {
	SessionID, VisitorID, CustomerID string
	StartMs, EndMs                   int64
	Events, PageViews                uint32
	EntryURL, ExitURL                string
	Source, Medium, Campaign         string
	IsBounce                         bool
	Orders                           uint32
	Revenue                          schemas.Amount
	CohortDayMs                      int64 // the visitor's cohort day (traffic_daily's new visitors)
	FirstSession                     bool  // the visitor's first session (visitor_conversion_daily)
}

// SessionRows are rows of the sessions table.
type SessionRows struct {
	SessionID, VisitorID, CustomerID []string
	Start, End                       []int64 // unix seconds
	StartMs, EndMs                   []uint64
	DurationS                        []float64
	Events, PageViews                []uint32
	EntryURL, ExitURL                []string
	Source, Medium, Campaign         []string
	IsBounce                         []uint8
	Orders                           []uint32
	Revenue                          []schemas.Amount
	CohortDay                        []int64 // unix seconds of the day's start
	FirstSession                     []uint8
}

// Len is the number of rows.
func (r *SessionRows) Len() int { return len(r.SessionID) }

// Append adds one session row.
func (r *SessionRows) Append(s *SessionRow) {
	r.SessionID = append(r.SessionID, s.SessionID)
	r.VisitorID = append(r.VisitorID, s.VisitorID)
	r.CustomerID = append(r.CustomerID, s.CustomerID)
	r.Start = append(r.Start, floorDiv(s.StartMs, 1000))
	r.End = append(r.End, floorDiv(s.EndMs, 1000))
	r.StartMs = append(r.StartMs, uint64(s.StartMs))
	r.EndMs = append(r.EndMs, uint64(s.EndMs))
	r.DurationS = append(r.DurationS, float64(s.EndMs-s.StartMs)/1000)
	r.Events = append(r.Events, s.Events)
	r.PageViews = append(r.PageViews, s.PageViews)
	r.EntryURL = append(r.EntryURL, s.EntryURL)
	r.ExitURL = append(r.ExitURL, s.ExitURL)
	r.Source = append(r.Source, s.Source)
	r.Medium = append(r.Medium, s.Medium)
	r.Campaign = append(r.Campaign, s.Campaign)
	var b uint8
	if s.IsBounce {
		b = 1
	}
	r.IsBounce = append(r.IsBounce, b)
	r.Orders = append(r.Orders, s.Orders)
	r.Revenue = append(r.Revenue, s.Revenue)
	r.CohortDay = append(r.CohortDay, floorDiv(s.CohortDayMs, 1000))
	var first uint8
	if s.FirstSession {
		first = 1
	}
	r.FirstSession = append(r.FirstSession, first)
}

func (SessionRows) reuse(r *SessionRows) SessionRows {
	return SessionRows{
		zs(r.SessionID), zs(r.VisitorID), zs(r.CustomerID), r.Start[:0], r.End[:0], r.StartMs[:0], r.EndMs[:0],
		r.DurationS[:0], r.Events[:0], r.PageViews[:0], zs(r.EntryURL), zs(r.ExitURL), zs(r.Source),
		zs(r.Medium), zs(r.Campaign), r.IsBounce[:0], r.Orders[:0], r.Revenue[:0],
		r.CohortDay[:0], r.FirstSession[:0],
	}
}

// TransitionRows are rows of the lifecycle_transitions table.
type TransitionRows struct {
	VisitorID, CustomerID []string
	Stage                 []int8
	Ts                    []int64 // unix seconds
	TsMs                  []uint64
	CohortDay             []int64 // unix seconds of the day's start
	Source, EventID       []string
}

// Len is the number of rows.
func (r *TransitionRows) Len() int { return len(r.VisitorID) }

// Append adds one transition row.
func (r *TransitionRows) Append(visitorID, customerID string, stage int8, tsMs, cohortDayMs int64, source, eventID string) {
	r.VisitorID = append(r.VisitorID, visitorID)
	r.CustomerID = append(r.CustomerID, customerID)
	r.Stage = append(r.Stage, stage)
	r.Ts = append(r.Ts, floorDiv(tsMs, 1000))
	r.TsMs = append(r.TsMs, uint64(tsMs))
	r.CohortDay = append(r.CohortDay, floorDiv(cohortDayMs, 1000))
	r.Source = append(r.Source, source)
	r.EventID = append(r.EventID, eventID)
}

func (TransitionRows) reuse(r *TransitionRows) TransitionRows {
	return TransitionRows{zs(r.VisitorID), zs(r.CustomerID), r.Stage[:0], r.Ts[:0], r.TsMs[:0], r.CohortDay[:0], zs(r.Source), zs(r.EventID)}
}

// State kinds of the pipeline_state table.
const (
	StateCheckpoint int8 = 1
	StateVisitor    int8 = 2
)

// StateRows are rows of the pipeline_state table.
type StateRows struct {
	Group     []string
	Partition []int32
	Kind      []int8
	Key       []string
	Epoch     []uint64
	Data      []string
}

// Len is the number of rows.
func (r *StateRows) Len() int { return len(r.Group) }

// Append adds one state row.
func (r *StateRows) Append(group string, partition int32, kind int8, key string, epoch uint64, data string) {
	r.Group = append(r.Group, group)
	r.Partition = append(r.Partition, partition)
	r.Kind = append(r.Kind, kind)
	r.Key = append(r.Key, key)
	r.Epoch = append(r.Epoch, epoch)
	r.Data = append(r.Data, data)
}

func (StateRows) reuse(r *StateRows) StateRows {
	return StateRows{zs(r.Group), r.Partition[:0], r.Kind[:0], zs(r.Key), r.Epoch[:0], zs(r.Data)}
}

// zs empties a string column, dropping its references so that a pooled
// batch keeps no event buffer alive.
func zs(s []string) []string {
	clear(s)
	return s[:0]
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}
