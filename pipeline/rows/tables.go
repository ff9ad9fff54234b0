package rows

import (
	"time"

	"github.com/funnelhouse/funnelhouse/schemas"
)

// Tables are the tables in insert order. pipeline_state must stay last: a
// checkpoint is stored only after the rows derived before it.
var Tables = []AnyTable{&EventsTable, &SessionsTable, &TransitionsTable, &StateTable}

// Event is a row of the events table: one valid, non-duplicate event with
// its session and stage.
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

// EventsTable describes the events table.
var EventsTable = Table[Event]{Name: "events", rows: func(b *Batch) *Rows[Event] { return &b.Events }, Columns: []Column[Event]{
	Col("event_id", func(r *Event) string { return r.EventID }),
	Col("ts", func(r *Event) int64 { return FloorDiv(r.TsMs, 1000) }),
	Col("ts_ms", func(r *Event) uint64 { return uint64(r.TsMs) }),
	Col("type", func(r *Event) int8 { return int8(r.Type) }),
	Col("visitor_id", func(r *Event) string { return r.VisitorID }),
	Col("customer_id", func(r *Event) string { return r.CustomerID }),
	Col("session_id", func(r *Event) string { return r.SessionID }),
	Col("stage", func(r *Event) int8 { return int8(r.Stage) }),
	Col("url", func(r *Event) string { return r.URL }),
	Col("referrer", func(r *Event) string { return r.Referrer }),
	Col("source", func(r *Event) string { return r.Source }),
	Col("medium", func(r *Event) string { return r.Medium }),
	Col("campaign", func(r *Event) string { return r.Campaign }),
	Col("device", func(r *Event) string { return r.Device }),
	Col("country", func(r *Event) string { return r.Country }),
	Col("order_id", func(r *Event) string { return r.OrderID }),
	Col("amount", func(r *Event) schemas.Amount { return r.Amount }),
	Col("currency", func(r *Event) string { return r.Currency }),
	Col("rating", func(r *Event) OptionalInt8 { return OptionalInt8(r.Rating) }),
	Col("nps", func(r *Event) OptionalInt8 { return OptionalInt8(r.NPS) }),
	Col("csat", func(r *Event) OptionalInt8 { return OptionalInt8(r.CSAT) }),
	Col("ces", func(r *Event) OptionalInt8 { return OptionalInt8(r.CES) }),
	Col("trial", func(r *Event) uint8 { return b2u(r.Trial) }),
	Col("plan", func(r *Event) string { return r.Plan }),
	Col("session_start", func(r *Event) int64 { return FloorDiv(r.SessionStartMs, 1000) }),
	Col("props", func(r *Event) string { return r.Props }),
	Col("late", func(r *Event) uint8 { return b2u(r.Late) }),
	Col("kafka_topic", func(r *Event) string { return r.KafkaTopic }),
	Col("kafka_partition", func(r *Event) int32 { return r.KafkaPartition }),
	Col("kafka_offset", func(r *Event) int64 { return r.KafkaOffset }),
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
