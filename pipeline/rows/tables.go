package rows

import (
	"strings"
	"time"
	"unsafe"

	"github.com/funnelhouse/funnelhouse/schemas"
)

// Tables are the tables in insert order. pipeline_state must stay last: a
// checkpoint is stored only after the rows derived before it.
var Tables = []AnyTable{&EventsTable, &SessionsTable, &TransitionsTable, &StateTable}

// Event is a row of the events table: one valid, non-duplicate event with
// its session and stage. Batch.Events keeps it as an eventRow.
type Event struct {
	EventID                  string
	TsMs                     int64
	Type                     schemas.Type
	VisitorID, CustomerID    string
	SessionID                string // "" for a transaction outside a session and a late event
	Stage                    Stage  // the visitor's stage after the event
	URL, Referrer            string
	Source, Medium, Campaign string // the session's attribution
	Device, Country          string
	OrderID                  string
	Amount                   schemas.Amount
	Currency                 string
	Rating, NPS, CSAT, CES   int8 // schemas.Absent: none
	Trial                    bool
	Plan                     string
	// SessionStartMs is the start of the event's session, 0 without one:
	// pages_daily counts page views on their session's day.
	SessionStartMs int64
	Props          string
	Late           bool
	KafkaTopic     string
	KafkaPartition int32
	KafkaOffset    int64
}

// eventRow is an Event as a batch keeps it: its strings are Texts in the
// rows' text, so that the row holds no pointer. A flush buffers hundreds of
// thousands of event rows; with sixteen strings each, the garbage collector
// would scan them all at every cycle, and every append would pass through
// its write barrier.
type eventRow struct {
	EventID, VisitorID, CustomerID, SessionID, URL, Referrer Text
	Source, Medium, Campaign, Device, Country, OrderID       Text
	Currency, Plan, Props, KafkaTopic                        Text
	TsMs, SessionStartMs, KafkaOffset                        int64
	Amount                                                   schemas.Amount
	KafkaPartition                                           int32
	Type                                                     schemas.Type
	Stage                                                    Stage
	Rating, NPS, CSAT, CES                                   int8
	Trial, Late                                              bool
}

// EventRows are the event rows of a batch.
type EventRows struct{ Rows[eventRow] }

// Append adds a copy of e, its strings copied into the rows' text, and
// returns the bytes it took.
func (r *EventRows) Append(e *Event) int64 {
	text := r.text.bytes
	r.rows = append(r.rows, eventRow{
		EventID: r.put(e.EventID), VisitorID: r.put(e.VisitorID), CustomerID: r.put(e.CustomerID),
		SessionID: r.put(e.SessionID), URL: r.put(e.URL), Referrer: r.put(e.Referrer),
		Source: r.put(e.Source), Medium: r.put(e.Medium), Campaign: r.put(e.Campaign),
		Device: r.put(e.Device), Country: r.put(e.Country), OrderID: r.put(e.OrderID),
		Currency: r.put(e.Currency), Plan: r.put(e.Plan), Props: r.put(e.Props), KafkaTopic: r.put(e.KafkaTopic),
		TsMs: e.TsMs, SessionStartMs: e.SessionStartMs, KafkaOffset: e.KafkaOffset, Amount: e.Amount,
		KafkaPartition: e.KafkaPartition, Type: e.Type, Stage: e.Stage,
		Rating: e.Rating, NPS: e.NPS, CSAT: e.CSAT, CES: e.CES, Trial: e.Trial, Late: e.Late,
	})
	return int64(unsafe.Sizeof(eventRow{})) + int64(r.text.bytes-text)
}

// All returns copies of the rows, for tests and inspection: their strings
// are copied out of the batch, so they outlive it.
func (r *EventRows) All() []Event {
	out := make([]Event, len(r.rows))
	for i := range r.rows {
		e := &r.rows[i]
		out[i] = Event{
			EventID: r.copy(e.EventID), VisitorID: r.copy(e.VisitorID), CustomerID: r.copy(e.CustomerID),
			SessionID: r.copy(e.SessionID), URL: r.copy(e.URL), Referrer: r.copy(e.Referrer),
			Source: r.copy(e.Source), Medium: r.copy(e.Medium), Campaign: r.copy(e.Campaign),
			Device: r.copy(e.Device), Country: r.copy(e.Country), OrderID: r.copy(e.OrderID),
			Currency: r.copy(e.Currency), Plan: r.copy(e.Plan), Props: r.copy(e.Props), KafkaTopic: r.copy(e.KafkaTopic),
			TsMs: e.TsMs, SessionStartMs: e.SessionStartMs, KafkaOffset: e.KafkaOffset, Amount: e.Amount,
			KafkaPartition: e.KafkaPartition, Type: e.Type, Stage: e.Stage,
			Rating: e.Rating, NPS: e.NPS, CSAT: e.CSAT, CES: e.CES, Trial: e.Trial, Late: e.Late,
		}
	}
	return out
}

func (r *EventRows) copy(t Text) string { return strings.Clone(r.str(t)) }

// EventsTable describes the events table.
var EventsTable = Table[eventRow]{Name: "events", rows: func(b *Batch) *Rows[eventRow] { return &b.Events.Rows }, Columns: []Column[eventRow]{
	TextCol("event_id", func(r *eventRow) Text { return r.EventID }),
	Col("ts", func(r *eventRow) int64 { return FloorDiv(r.TsMs, 1000) }),
	Col("ts_ms", func(r *eventRow) uint64 { return uint64(r.TsMs) }),
	Col("type", func(r *eventRow) int8 { return int8(r.Type) }),
	TextCol("visitor_id", func(r *eventRow) Text { return r.VisitorID }),
	TextCol("customer_id", func(r *eventRow) Text { return r.CustomerID }),
	TextCol("session_id", func(r *eventRow) Text { return r.SessionID }),
	Col("stage", func(r *eventRow) int8 { return int8(r.Stage) }),
	TextCol("url", func(r *eventRow) Text { return r.URL }),
	TextCol("referrer", func(r *eventRow) Text { return r.Referrer }),
	TextCol("source", func(r *eventRow) Text { return r.Source }),
	TextCol("medium", func(r *eventRow) Text { return r.Medium }),
	TextCol("campaign", func(r *eventRow) Text { return r.Campaign }),
	TextCol("device", func(r *eventRow) Text { return r.Device }),
	TextCol("country", func(r *eventRow) Text { return r.Country }),
	TextCol("order_id", func(r *eventRow) Text { return r.OrderID }),
	Col("amount", func(r *eventRow) schemas.Amount { return r.Amount }),
	TextCol("currency", func(r *eventRow) Text { return r.Currency }),
	Col("rating", func(r *eventRow) OptionalInt8 { return OptionalInt8(r.Rating) }),
	Col("nps", func(r *eventRow) OptionalInt8 { return OptionalInt8(r.NPS) }),
	Col("csat", func(r *eventRow) OptionalInt8 { return OptionalInt8(r.CSAT) }),
	Col("ces", func(r *eventRow) OptionalInt8 { return OptionalInt8(r.CES) }),
	Col("trial", func(r *eventRow) uint8 { return b2u(r.Trial) }),
	TextCol("plan", func(r *eventRow) Text { return r.Plan }),
	Col("session_start", func(r *eventRow) int64 { return FloorDiv(r.SessionStartMs, 1000) }),
	TextCol("props", func(r *eventRow) Text { return r.Props }),
	Col("late", func(r *eventRow) uint8 { return b2u(r.Late) }),
	TextCol("kafka_topic", func(r *eventRow) Text { return r.KafkaTopic }),
	Col("kafka_partition", func(r *eventRow) int32 { return r.KafkaPartition }),
	Col("kafka_offset", func(r *eventRow) int64 { return r.KafkaOffset }),
}}

// Session is a row of the sessions table: one closed session.
type Session struct {
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

// SessionsTable describes the sessions table.
var SessionsTable = Table[Session]{Name: "sessions", rows: func(b *Batch) *Rows[Session] { return &b.Sessions }, Columns: []Column[Session]{
	Col("session_id", func(r *Session) string { return r.SessionID }),
	Col("visitor_id", func(r *Session) string { return r.VisitorID }),
	Col("customer_id", func(r *Session) string { return r.CustomerID }),
	Col("start", func(r *Session) int64 { return FloorDiv(r.StartMs, 1000) }),
	Col("end", func(r *Session) int64 { return FloorDiv(r.EndMs, 1000) }),
	Col("start_ms", func(r *Session) uint64 { return uint64(r.StartMs) }),
	Col("end_ms", func(r *Session) uint64 { return uint64(r.EndMs) }),
	Col("duration_s", (*Session).DurationS),
	Col("events", func(r *Session) uint32 { return r.Events }),
	Col("page_views", func(r *Session) uint32 { return r.PageViews }),
	Col("entry_url", func(r *Session) string { return r.EntryURL }),
	Col("exit_url", func(r *Session) string { return r.ExitURL }),
	Col("source", func(r *Session) string { return r.Source }),
	Col("medium", func(r *Session) string { return r.Medium }),
	Col("campaign", func(r *Session) string { return r.Campaign }),
	Col("is_bounce", func(r *Session) uint8 { return b2u(r.IsBounce) }),
	Col("orders", func(r *Session) uint32 { return r.Orders }),
	Col("revenue", func(r *Session) schemas.Amount { return r.Revenue }),
	Col("cohort_day", func(r *Session) time.Time { return time.Unix(FloorDiv(r.CohortDayMs, 1000), 0).UTC() }),
	Col("first_session", func(r *Session) uint8 { return b2u(r.FirstSession) }),
}}

// DurationS is the session's duration in seconds.
func (r *Session) DurationS() float64 { return float64(r.EndMs-r.StartMs) / 1000 }

// Transition is a row of the lifecycle_transitions table: a visitor
// entering a stage.
type Transition struct {
	VisitorID, CustomerID string
	Stage                 Stage
	TsMs                  int64
	CohortDayMs           int64 // the start of the day of the visitor's first event
	Source                string
	EventID               string // "" for a churn by inactivity
}

// TransitionsTable describes the lifecycle_transitions table.
var TransitionsTable = Table[Transition]{Name: "lifecycle_transitions", rows: func(b *Batch) *Rows[Transition] { return &b.Transitions }, Columns: []Column[Transition]{
	Col("visitor_id", func(r *Transition) string { return r.VisitorID }),
	Col("customer_id", func(r *Transition) string { return r.CustomerID }),
	Col("stage", func(r *Transition) int8 { return int8(r.Stage) }),
	Col("ts", func(r *Transition) int64 { return FloorDiv(r.TsMs, 1000) }),
	Col("ts_ms", func(r *Transition) uint64 { return uint64(r.TsMs) }),
	Col("cohort_day", (*Transition).CohortDay),
	Col("source", func(r *Transition) string { return r.Source }),
	Col("event_id", func(r *Transition) string { return r.EventID }),
}}

// CohortDay is the cohort's day as a UTC date.
func (r *Transition) CohortDay() time.Time {
	return time.Unix(FloorDiv(r.CohortDayMs, 1000), 0).UTC()
}

// State is a row of the pipeline_state table: a partition's checkpoint or
// one visitor's state, in the pipeline's own encoding (Data).
type State struct {
	Group     string
	Partition int32
	Kind      StateKind
	Key       string // the visitor id; "" for a checkpoint
	Epoch     uint64 // the checkpoint's number; the newest row of a key wins
	Data      string
}

// StateTable describes the pipeline_state table.
var StateTable = Table[State]{Name: "pipeline_state", rows: func(b *Batch) *Rows[State] { return &b.State }, Columns: []Column[State]{
	Col("consumer_group", func(r *State) string { return r.Group }),
	Col("kafka_partition", func(r *State) int32 { return r.Partition }),
	Col("kind", func(r *State) int8 { return int8(r.Kind) }),
	Col("key", func(r *State) string { return r.Key }),
	Col("epoch", func(r *State) uint64 { return r.Epoch }),
	Col("data", func(r *State) string { return r.Data }),
}}

func b2u(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}
