// Package verify checks what a run of the pipeline wrote to ClickHouse
// against an independent computation: an Expectation built from the records
// given to the pipeline (schemas' decoder plus bench/expected, no pipeline
// code), compared row by row with the four views, the sessions and
// transitions tables and every event, and the stored counters checked to
// count each record exactly once. demo, bench and the tests share it.
package verify

import (
	"slices"
	"time"

	"github.com/funnelhouse/funnelhouse/bench/expected"
	"github.com/funnelhouse/funnelhouse/schemas"
)

// Expectation collects what the pipeline must produce from the records
// given to it: the valid events, first copy wins, and the rejected records.
// It is the independent side of the check: schemas' decoder plus
// bench/expected, no pipeline code. Not goroutine-safe.
type Expectation struct {
	topics     map[string]schemas.Topic
	dec        *schemas.Decoder
	seen       map[uint64]struct{}      // expected.EventHash of each valid event
	Events     []schemas.Event          // the valid events, first copy of each, in the order given (less those Compute rejects)
	Records    int64                    // records given to Add
	Duplicates int64                    // valid events seen before
	Rejected   map[schemas.Reason]int64 // by reason; revenue_overflow once Compute ran
}

// NewExpectation returns an empty Expectation for the records of these two
// input topics; now is the decoder's clock.
func NewExpectation(clickstream, transactions string, now func() time.Time) *Expectation {
	return &Expectation{
		topics:   map[string]schemas.Topic{clickstream: schemas.Clickstream, transactions: schemas.Transactions},
		dec:      schemas.NewDecoder(now),
		seen:     map[uint64]struct{}{},
		Rejected: map[schemas.Reason]int64{},
	}
}

// Add counts one record given to the pipeline; it does not keep key or
// value.
func (x *Expectation) Add(topic string, key, value []byte) {
	x.Records++
	var e schemas.Event
	if err := x.dec.Decode(x.topics[topic], key, value, &e); err != nil {
		x.Rejected[err.Reason]++
		return
	}
	k := expected.EventHash(e.VisitorID, e.EventID)
	if _, dup := x.seen[k]; dup {
		x.Duplicates++
		return
	}
	x.seen[k] = struct{}{}
	x.Events = append(x.Events, e)
}

// Compute returns the expected rows of the valid events
// (expected.Compute) and moves the orders that the computation rejects
// from Events to Rejected (revenue_overflow: their session's revenue
// would pass what a Decimal(18,4) holds). Only the whole computation can
// tell them, as only the pipeline's release of them does. Computing again
// gives the same result.
func (x *Expectation) Compute(cfg expected.Config) *expected.Result {
	res := expected.Compute(x.Events, cfg)
	if len(res.Rejected) == 0 {
		return res
	}
	drop := make(map[string]bool, len(res.Rejected))
	for _, e := range res.Rejected {
		drop[expected.EventKey(e.VisitorID, e.EventID)] = true
	}
	x.Events = slices.DeleteFunc(x.Events, func(e schemas.Event) bool { return drop[expected.EventKey(e.VisitorID, e.EventID)] })
	x.Rejected[schemas.ReasonRevenueOverflow] += int64(len(res.Rejected))
	return res
}

// RejectedTotal is the number of records that fail validation, or whose
// order is rejected at its release: the dead letters the pipeline must
// write.
func (x *Expectation) RejectedTotal() int64 {
	var n int64
	for _, c := range x.Rejected {
		n += c
	}
	return n
}
