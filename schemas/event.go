// Package schemas defines funnelhouse's input events (SPEC §2) and the one
// decoder that turns a Kafka record into a valid Event or a stable reason
// code for the dead-letter topic.
package schemas

import (
	"slices"
	"strconv"
	"time"
)

// Topic is one of the two co-partitioned input topics.
type Topic uint8

const (
	Clickstream Topic = iota
	Transactions
)

func (t Topic) String() string {
	if t == Transactions {
		return "transactions"
	}
	return "clickstream"
}

// Type is an event type. Clickstream types come first, then transactions.
type Type uint8

const (
	PageView Type = iota + 1
	Click
	Search
	Signup
	Login
	AddToCart
	CheckoutStarted
	Review
	Referral
	Survey
	OrderCompleted
	OrderRefunded
	SubscriptionStarted
	SubscriptionCancelled
)

// NumTypes bounds arrays indexed by Type.
const NumTypes = int(SubscriptionCancelled) + 1

var typeNames = [NumTypes]string{
	"", "page_view", "click", "search", "signup", "login", "add_to_cart",
	"checkout_started", "review", "referral", "survey",
	"order_completed", "order_refunded", "subscription_started", "subscription_cancelled",
}

func (t Type) String() string {
	if int(t) < NumTypes {
		return typeNames[t]
	}
	return "type(" + strconv.Itoa(int(t)) + ")"
}

// Topic is the topic an event of this type must arrive on.
func (t Type) Topic() Topic {
	if t >= OrderCompleted {
		return Transactions
	}
	return Clickstream
}

// ParseType returns the Type named s, or 0 when s names none.
func ParseType(s string) Type {
	for i := 1; i < NumTypes; i++ {
		if typeNames[i] == s {
			return Type(i)
		}
	}
	return 0
}

// Amount is an exact decimal amount in ten-thousandths (Decimal(18,4)).
type Amount int64

// AmountScale is the number of Amount units in 1.
const AmountScale = 10000

// MaxAmount is 99999999999999.9999, the largest value of a Decimal(18,4):
// the bound of an amount and of a sum of amounts kept in such a column
// (sessions.revenue, see ReasonRevenueOverflow).
const MaxAmount Amount = maxAmountUnits

// String renders the amount with four decimals, e.g. "12.5000".
func (a Amount) String() string {
	neg := a < 0
	if neg {
		a = -a
	}
	frac := strconv.FormatInt(int64(a%AmountScale)+AmountScale, 10)[1:]
	s := strconv.FormatInt(int64(a/AmountScale), 10) + "." + frac
	if neg {
		s = "-" + s
	}
	return s
}

// Absent marks an optional small integer (NPS) that the event did not carry.
const Absent int8 = -1

// Event is one valid input event. Optional strings are "" when absent.
type Event struct {
	EventID     string
	Type        Type
	TsMs        int64 // epoch milliseconds, UTC
	VisitorID   string
	CustomerID  string
	URL         string
	Referrer    string
	UTMSource   string
	UTMMedium   string
	UTMCampaign string
	Device      string
	Country     string
	OrderID     string // order_* events
	Amount      Amount // order_* events
	Currency    string // order_* events
	Rating      int8   // review: 1–5; Absent otherwise
	NPS         int8   // survey: 0–10 or Absent
	CSAT        int8   // survey: 1–5 or Absent
	CES         int8   // survey: 1–7 or Absent (Customer Effort Score, 7 = least effort)
	Trial       bool   // subscription_started: a free trial; false on every other type
	Plan        string // subscription_* (kept on any type), "" when absent
	Props       string // unknown fields as one JSON object, "" when none
}

// Time returns the event time.
func (e *Event) Time() time.Time { return time.UnixMilli(e.TsMs).UTC() }

// Reason is a stable dead-letter reason code (header funnelhouse.reason).
type Reason string

const (
	ReasonBadJSON      Reason = "bad_json"      // not a UTF-8 JSON object
	ReasonMissingKey   Reason = "missing_key"   // record key absent or empty
	ReasonMissingField Reason = "missing_field" // a required field absent or null
	ReasonUnknownType  Reason = "unknown_type"  // type names no event type
	ReasonWrongTopic   Reason = "wrong_topic"   // type belongs on the other topic
	ReasonBadTs        Reason = "bad_ts"        // ts unparsable or out of range
	ReasonBadValue     Reason = "bad_value"     // a field of the wrong JSON type or out of range
	ReasonKeyMismatch  Reason = "key_mismatch"  // record key differs from visitor_id
	ReasonTooLarge     Reason = "too_large"     // the record or a field exceeds its size limit

	// ReasonRevenueOverflow is not a rule of one record, so Decode never
	// returns it: the pipeline rejects an order_completed when its event is
	// released, if its amount would take the revenue of the session it
	// belongs to past MaxAmount (docs/semantics.md, "Sessions").
	ReasonRevenueOverflow Reason = "revenue_overflow"
)

// DecodeReasons lists the reason codes that Decoder.Decode returns.
var DecodeReasons = []Reason{
	ReasonBadJSON, ReasonMissingKey, ReasonMissingField, ReasonUnknownType,
	ReasonWrongTopic, ReasonBadTs, ReasonBadValue, ReasonKeyMismatch, ReasonTooLarge,
}

// Reasons lists every reason code, for metrics, checkpoints and docs: the
// decoder's, then the pipeline's. Checkpoints store a counter per reason
// in this order, so a new reason goes at the end.
var Reasons = append(slices.Clip(DecodeReasons), ReasonRevenueOverflow)

// Error says why a record was rejected.
type Error struct {
	Reason Reason
	Detail string // one sentence naming the field, e.g. "field amount: must be >= 0"
}

func (e *Error) Error() string { return string(e.Reason) + ": " + e.Detail }
