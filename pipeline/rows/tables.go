package rows

import (
	"math"
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

// eventRow is an Event as a batch keeps it: its strings lie one after the
// other in the rows' text, so that the row holds no pointer and no
// per-string reference. A flush buffers hundreds of thousands of event
// rows; with sixteen strings each, the garbage collector would scan them
// all at every cycle, and every append would pass through its write
// barrier. A reference (offset and length) per string took 128 of the
// row's 176 bytes; ends takes 30.
type eventRow struct {
	text                              uint32             // where the strings start in the rows' text (texts.alloc)
	ends                              [eventProps]uint16 // where each string but props ends, from text
	propsLen                          uint32             // props, the last, may be long
	TsMs, SessionStartMs, KafkaOffset int64
	Amount                            schemas.Amount
	KafkaPartition                    int32
	Type                              schemas.Type
	Stage                             Stage
	Rating, NPS, CSAT, CES            int8
	Trial, Late                       bool
}

// eventText numbers an event row's strings in the order the text keeps
// them.
type eventText uint8

const (
	eventID eventText = iota
	eventVisitorID
	eventCustomerID
	eventSessionID
	eventURL
	eventReferrer
	eventSource
	eventMedium
	eventCampaign
	eventDevice
	eventCountry
	eventOrderID
	eventCurrency
	eventPlan
	eventKafkaTopic
	eventProps // last: the only one whose length may pass 65,535
	numEventTexts
)

// texts are e's strings in eventText order.
func (e *Event) texts() [numEventTexts]string {
	return [numEventTexts]string{e.EventID, e.VisitorID, e.CustomerID, e.SessionID, e.URL, e.Referrer,
		e.Source, e.Medium, e.Campaign, e.Device, e.Country, e.OrderID, e.Currency, e.Plan, e.KafkaTopic, e.Props}
}

// EventRows are the event rows of a batch.
type EventRows struct{ Rows[eventRow] }

// Append adds a copy of e, its strings copied into the rows' text, and
// returns the bytes it took.
func (r *EventRows) Append(e *Event) int64 {
	strs := e.texts()
	n := 0
	for _, s := range strs {
		n += len(s)
	}
	if n-len(e.Props) > math.MaxUint16 {
		// The decoder bounds each of them to 2 KiB at most.
		panic("BUG: an event's strings besides props take more than 64 KiB")
	}
	row := eventRow{
		TsMs: e.TsMs, SessionStartMs: e.SessionStartMs, KafkaOffset: e.KafkaOffset, Amount: e.Amount,
		KafkaPartition: e.KafkaPartition, Type: e.Type, Stage: e.Stage,
		Rating: e.Rating, NPS: e.NPS, CSAT: e.CSAT, CES: e.CES, Trial: e.Trial, Late: e.Late,
		propsLen: uint32(len(e.Props)),
	}
	var dst []byte
	row.text, dst = r.text.alloc(n)
	end := 0
	for i, s := range strs[:eventProps] {
		end += copy(dst[end:], s)
		row.ends[i] = uint16(end)
	}
	copy(dst[end:], e.Props)
	r.rows = append(r.rows, row)
	return int64(unsafe.Sizeof(eventRow{})) + int64(n)
}

// eventStr is string i of row, aliasing the rows' text: valid until reset.
func eventStr(r *Rows[eventRow], row *eventRow, i eventText) string {
	start := 0
	if i > 0 {
		start = int(row.ends[i-1])
	}
	end := start + int(row.propsLen)
	if i < eventProps {
		end = int(row.ends[i])
	}
	return r.text.at(row.text, start, end)
}

// All returns copies of the rows, for tests and inspection: their strings
// are copied out of the batch, so they outlive it.
func (r *EventRows) All() []Event {
	out := make([]Event, len(r.rows))
	for i := range r.rows {
		e := &r.rows[i]
		var strs [numEventTexts]string
		for j := range strs {
			strs[j] = strings.Clone(eventStr(&r.Rows, e, eventText(j)))
		}
		out[i] = Event{
			EventID: strs[eventID], VisitorID: strs[eventVisitorID], CustomerID: strs[eventCustomerID],
			SessionID: strs[eventSessionID], URL: strs[eventURL], Referrer: strs[eventReferrer],
			Source: strs[eventSource], Medium: strs[eventMedium], Campaign: strs[eventCampaign],
			Device: strs[eventDevice], Country: strs[eventCountry], OrderID: strs[eventOrderID],
			Currency: strs[eventCurrency], Plan: strs[eventPlan], Props: strs[eventProps], KafkaTopic: strs[eventKafkaTopic],
			TsMs: e.TsMs, SessionStartMs: e.SessionStartMs, KafkaOffset: e.KafkaOffset, Amount: e.Amount,
			KafkaPartition: e.KafkaPartition, Type: e.Type, Stage: e.Stage,
			Rating: e.Rating, NPS: e.NPS, CSAT: e.CSAT, CES: e.CES, Trial: e.Trial, Late: e.Late,
		}
	}
	return out
}

// eventCol describes the string column of an event's string i.
func eventCol(name string, i eventText) Column[eventRow] {
	return textCol(name, func(rs *Rows[eventRow], r *eventRow) string { return eventStr(rs, r, i) })
}

// EventsTable describes the events table.
var EventsTable = Table[eventRow]{Name: "events", rows: func(b *Batch) *Rows[eventRow] { return &b.Events.Rows }, Columns: []Column[eventRow]{
	eventCol("event_id", eventID),
	Col("ts", func(r *eventRow) int64 { return FloorDiv(r.TsMs, 1000) }),
	Col("ts_ms", func(r *eventRow) uint64 { return uint64(r.TsMs) }),
	Col("type", func(r *eventRow) int8 { return int8(r.Type) }),
	eventCol("visitor_id", eventVisitorID),
	eventCol("customer_id", eventCustomerID),
	eventCol("session_id", eventSessionID),
	Col("stage", func(r *eventRow) int8 { return int8(r.Stage) }),
	eventCol("url", eventURL),
	eventCol("referrer", eventReferrer),
	eventCol("source", eventSource),
	eventCol("medium", eventMedium),
	eventCol("campaign", eventCampaign),
	eventCol("device", eventDevice),
	eventCol("country", eventCountry),
	eventCol("order_id", eventOrderID),
	Col("amount", func(r *eventRow) schemas.Amount { return r.Amount }),
	eventCol("currency", eventCurrency),
	Col("rating", func(r *eventRow) OptionalInt8 { return OptionalInt8(r.Rating) }),
	Col("nps", func(r *eventRow) OptionalInt8 { return OptionalInt8(r.NPS) }),
	Col("csat", func(r *eventRow) OptionalInt8 { return OptionalInt8(r.CSAT) }),
	Col("ces", func(r *eventRow) OptionalInt8 { return OptionalInt8(r.CES) }),
	Col("trial", func(r *eventRow) uint8 { return b2u(r.Trial) }),
	eventCol("plan", eventPlan),
	Col("session_start", func(r *eventRow) int64 { return FloorDiv(r.SessionStartMs, 1000) }),
	eventCol("props", eventProps),
	Col("late", func(r *eventRow) uint8 { return b2u(r.Late) }),
	eventCol("kafka_topic", eventKafkaTopic),
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
	FirstOfDay                       bool  // the visitor's first that UTC day with this source and medium (traffic_daily's visitors)
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
	Col("first_of_day", func(r *Session) uint8 { return b2u(r.FirstOfDay) }),
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
