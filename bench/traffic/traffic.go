// Package traffic generates synthetic, realistic and deterministic input for
// funnelhouse: visitors arriving over days, each on a journey of sessions on
// the clickstream topic and orders, refunds and subscriptions on the
// transactions topic, delivered slightly out of order, with a share of
// duplicate copies and of malformed records that the decoder must reject
// with a known reason.
//
// It is used by `funnelhouse generate`, the demo, tests and benchmarks.
//
// The generator streams: visitors are created lazily in arrival order and
// plan one session at a time, and records wait in a heap ordered by delivery
// time only for as long as a later event could still be delivered before
// them. Memory is bounded by the number of visitors whose journey is under
// way, not by the number of events.
package traffic

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"time"

	"github.com/funnelhouse/funnelhouse/schemas"
)

// Config configures a Generator. The zero value is not usable: start from
// Config{...}.WithDefaults(), then override fields (for example MaxDelay = 0
// for in-order delivery, DupRate = 0 for no duplicates).
type Config struct {
	// Seed makes the output deterministic: the same Config gives
	// byte-identical records in the same order.
	Seed int64
	// Events is the approximate number of valid events to generate, before
	// duplicates and malformed extras (default 1_000_000).
	Events int
	// Start is the first visitor arrival (default 2025-01-01T00:00:00Z).
	Start time.Time
	// Days spreads the arrivals over this many days (default 120). Journeys
	// continue after the last arrival: see Generator.Horizon.
	Days int
	// MaxDelay makes delivery out of order: each record is delivered at
	// ts + uniform[0, MaxDelay) (default 5m); 0 delivers in ts order.
	MaxDelay time.Duration
	// DupRate is the share of valid events re-sent as an identical copy
	// (same topic, key and value), delivered after the original within
	// MaxDelay, or within a minute of event time when MaxDelay is 0
	// (default 0.01).
	DupRate float64
	// BadRate is the share, relative to the valid events, of extra malformed
	// records (default 0.001).
	BadRate float64
	// ClickstreamTopic and TransactionsTopic name the two input topics
	// (defaults "clickstream" and "transactions").
	ClickstreamTopic, TransactionsTopic string
}

// Defaults applied by WithDefaults.
const (
	DefaultEvents            = 1_000_000
	DefaultDays              = 120
	DefaultMaxDelay          = 5 * time.Minute
	DefaultDupRate           = 0.01
	DefaultBadRate           = 0.001
	DefaultClickstreamTopic  = "clickstream"
	DefaultTransactionsTopic = "transactions"
)

// DefaultStart is the default first arrival, 2025-01-01T00:00:00Z.
var DefaultStart = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// WithDefaults returns c with every zero field set to its default. Fields
// whose zero is meaningful (MaxDelay, DupRate, BadRate) are defaulted too;
// set them to 0 after calling WithDefaults to turn the feature off.
func (c Config) WithDefaults() Config {
	if c.Events == 0 {
		c.Events = DefaultEvents
	}
	if c.Start.IsZero() {
		c.Start = DefaultStart
	}
	if c.Days == 0 {
		c.Days = DefaultDays
	}
	if c.MaxDelay == 0 {
		c.MaxDelay = DefaultMaxDelay
	}
	if c.DupRate == 0 {
		c.DupRate = DefaultDupRate
	}
	if c.BadRate == 0 {
		c.BadRate = DefaultBadRate
	}
	if c.ClickstreamTopic == "" {
		c.ClickstreamTopic = DefaultClickstreamTopic
	}
	if c.TransactionsTopic == "" {
		c.TransactionsTopic = DefaultTransactionsTopic
	}
	return c
}

// earliestStart keeps every event id a valid KSUID (whose clock starts
// 2014-05-13T16:53:20Z) and every ts after the decoder's 2000-01-01 limit.
var earliestStart = time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC)

// latestStart keeps the KSUID 32-bit seconds from overflowing (2150) with
// room for the journeys.
var latestStart = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)

// Validate reports the first invalid field of c, naming it.
func (c Config) Validate() error {
	switch {
	case c.Events <= 0:
		return fmt.Errorf("traffic: Config.Events must be > 0, got %d (Config.WithDefaults sets %d)", c.Events, DefaultEvents)
	case c.Start.Before(earliestStart) || !c.Start.Before(latestStart):
		return fmt.Errorf("traffic: Config.Start must be in [%s, %s), got %s",
			earliestStart.Format(time.RFC3339), latestStart.Format(time.RFC3339), c.Start.Format(time.RFC3339))
	case c.Days <= 0 || c.Days > 3660:
		return fmt.Errorf("traffic: Config.Days must be in [1, 3660], got %d", c.Days)
	case c.MaxDelay < 0:
		return fmt.Errorf("traffic: Config.MaxDelay must be >= 0, got %s", c.MaxDelay)
	case !(c.DupRate >= 0 && c.DupRate < 1):
		return fmt.Errorf("traffic: Config.DupRate must be in [0, 1), got %v", c.DupRate)
	case !(c.BadRate >= 0 && c.BadRate < 1):
		return fmt.Errorf("traffic: Config.BadRate must be in [0, 1), got %v", c.BadRate)
	case c.ClickstreamTopic == "":
		return errors.New("traffic: Config.ClickstreamTopic must not be empty")
	case c.TransactionsTopic == "":
		return errors.New("traffic: Config.TransactionsTopic must not be empty")
	case c.ClickstreamTopic == c.TransactionsTopic:
		return fmt.Errorf("traffic: Config.ClickstreamTopic and Config.TransactionsTopic must differ, both are %q", c.ClickstreamTopic)
	}
	return nil
}

// Kind says what a record is.
type Kind uint8

const (
	// Valid is a valid event, delivered once (unless a Duplicate follows).
	Valid Kind = iota
	// Duplicate is an identical copy (topic, key, value) of an earlier Valid
	// record; the pipeline must drop it.
	Duplicate
	// Malformed is a record the decoder must reject with Record.Reason.
	Malformed
)

func (k Kind) String() string {
	switch k {
	case Valid:
		return "valid"
	case Duplicate:
		return "duplicate"
	case Malformed:
		return "malformed"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Record is one Kafka record to produce.
type Record struct {
	Topic string
	// Key is the record key (the visitor_id); nil or empty only for
	// Malformed records with Reason missing_key.
	Key []byte
	// Value is the JSON value.
	Value []byte
	Kind  Kind
	// Reason is the reason the decoder must give for a Malformed record, ""
	// otherwise.
	Reason schemas.Reason
}

// Stats counts the records delivered so far.
type Stats struct {
	Records, Valid, Duplicates, Malformed uint64
	// Visitors is the number of visitors that have arrived.
	Visitors uint64
}

// Generator produces the records of one Config in delivery order. It is not
// safe for concurrent use.
type Generator struct {
	cfg Config
	rng *rng

	startMs    int64 // first arrival
	sessionEnd int64 // no session starts at or after this
	horizonMs  int64 // no event has ts at or after this
	maxDelayMs int64

	// Arrivals: visitor i arrives at the quantile (i+u)/visitors of the
	// hourly arrival weights.
	visitors    uint64
	arrived     uint64
	nextArrival int64
	cumWeight   []int64 // cumWeight[h] = sum of the weights of hours < h
	hourPtr     int

	active minHeap[*visitor]   // visitors with planned or future events, by next event ts
	out    minHeap[*outRecord] // records waiting for their delivery time

	seq       uint64 // tie-breaker: insertion order
	orderNo   uint64
	idSalt    uint64
	custSalt  uint64
	orderSalt uint64

	// Recycling. The record returned by Next keeps last (and its value
	// buffer) until the following call.
	last     *outRecord
	freeRecs []*outRecord
	freeQs   [][]pev
	keyBuf   []byte

	stats Stats
}

// outRecord is a rendered record waiting in the delivery heap.
type outRecord struct {
	deliver int64
	seq     uint64
	topic   schemas.Topic
	kind    Kind
	keyMode keyMode
	key     string
	reason  schemas.Reason
	value   []byte // owned by the record
}

type keyMode uint8

const (
	keyNormal keyMode = iota
	keyNil
	keyEmpty
)

// meanEventsPerVisitor converts Config.Events into a number of visitors. It
// is measured from the model below (TestEventCount keeps it honest).
const meanEventsPerVisitor = 10.3

// journeyTail is how long after the last arrival sessions may still start.
const journeyTail = 200 * 24 * time.Hour

// scheduleTail bounds how far after its session a scheduled event (refund,
// cancellation) may lie.
const scheduleTail = 160 * 24 * time.Hour

// New returns a Generator for cfg, which must be valid (see Validate; use
// cfg.WithDefaults() for the defaults).
func New(cfg Config) (*Generator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	g := &Generator{
		cfg:        cfg,
		rng:        newRNG(cfg.Seed),
		startMs:    cfg.Start.UnixMilli(),
		maxDelayMs: cfg.MaxDelay.Milliseconds(),
		idSalt:     mix(uint64(cfg.Seed) ^ 0x7669736974),
		custSalt:   mix(uint64(cfg.Seed) ^ 0x63757374),
		orderSalt:  mix(uint64(cfg.Seed) ^ 0x6f72646572),
	}
	g.sessionEnd = g.startMs + int64(cfg.Days)*86_400_000 + journeyTail.Milliseconds()
	g.horizonMs = g.sessionEnd + scheduleTail.Milliseconds()
	g.visitors = uint64(math.Ceil(float64(cfg.Events) / meanEventsPerVisitor))
	g.buildArrivalWeights()
	g.nextArrival = g.arrivalTime(0)
	return g, nil
}

// Horizon is a bound on event time: every event, valid or not, has
// ts < Horizon (malformed ts values aside). Decode with a clock at or after
// it so that no valid event is "more than 1 h in the future".
func (g *Generator) Horizon() time.Time { return time.UnixMilli(g.horizonMs).UTC() }

// Stats returns the counts so far.
func (g *Generator) Stats() Stats { return g.stats }

// Next fills r with the next record in delivery order and returns true, or
// returns false at the end. r.Key and r.Value point into buffers that the
// generator reuses at the next call: copy them to keep them longer.
func (g *Generator) Next(r *Record) bool {
	if g.last != nil {
		g.freeRecs = append(g.freeRecs, g.last)
		g.last = nil
	}
	for {
		if len(g.out) > 0 && g.out[0].deliver <= g.frontier() {
			o := g.out.pop()
			g.last = o
			g.fill(r, o)
			return true
		}
		if !g.step() && len(g.out) == 0 {
			return false
		}
	}
}

// frontier is the smallest ts any event not yet rendered can have: a record
// whose delivery time is at most this can go, as every later event is
// delivered at ts + delay >= frontier.
func (g *Generator) frontier() int64 {
	f := int64(math.MaxInt64)
	if g.arrived < g.visitors {
		f = g.nextArrival
	}
	if len(g.active) > 0 && g.active[0].key < f {
		f = g.active[0].key
	}
	return f
}

// step advances the earliest source: a visitor arrives, or the visitor with
// the earliest next event emits it. It returns false when nothing is left.
func (g *Generator) step() bool {
	if g.arrived < g.visitors && (len(g.active) == 0 || g.nextArrival <= g.active[0].key) {
		v := g.arrive(g.arrived, g.nextArrival)
		g.arrived++
		g.stats.Visitors++
		if g.arrived < g.visitors {
			g.nextArrival = g.arrivalTime(g.arrived)
		}
		g.active.push(v)
		return true
	}
	if len(g.active) == 0 {
		return false
	}
	v := g.active[0]
	e := g.take(v)
	g.emit(v, &e)
	if v.done() {
		g.active.pop()
	} else {
		v.key = v.peek()
		g.active.fix0()
	}
	return true
}

func (g *Generator) fill(r *Record, o *outRecord) {
	if o.topic == schemas.Transactions {
		r.Topic = g.cfg.TransactionsTopic
	} else {
		r.Topic = g.cfg.ClickstreamTopic
	}
	switch o.keyMode {
	case keyNil:
		r.Key = nil
	case keyEmpty:
		r.Key = []byte{} // not nil: a present but empty key
	default:
		g.keyBuf = append(g.keyBuf[:0], o.key...)
		r.Key = g.keyBuf
	}
	r.Value = o.value
	r.Kind = o.kind
	r.Reason = o.reason
	g.stats.Records++
	switch o.kind {
	case Valid:
		g.stats.Valid++
	case Duplicate:
		g.stats.Duplicates++
	case Malformed:
		g.stats.Malformed++
	}
}

func (g *Generator) newRecord(deliver int64) *outRecord {
	var o *outRecord
	if n := len(g.freeRecs); n > 0 {
		o = g.freeRecs[n-1]
		g.freeRecs = g.freeRecs[:n-1]
		*o = outRecord{value: o.value[:0]}
	} else {
		o = &outRecord{value: make([]byte, 0, 512)}
	}
	o.deliver = deliver
	o.seq = g.seq
	g.seq++
	return o
}

// delay is a delivery delay in [0, MaxDelay).
func (g *Generator) delay() int64 {
	if g.maxDelayMs <= 0 {
		return 0
	}
	return g.rng.between(0, g.maxDelayMs)
}

// emit renders a valid event, and maybe its duplicate and a malformed extra,
// into the delivery heap.
func (g *Generator) emit(v *visitor, e *pev) {
	o := g.newRecord(e.ts + g.delay())
	o.topic = e.typ.Topic()
	o.kind = Valid
	o.key = v.id
	o.value = g.appendEvent(o.value, v, e, nil)
	g.out.push(o)

	if g.rng.chance(g.cfg.DupRate) {
		window := g.maxDelayMs
		if window <= 0 {
			window = 60_000 // a few records later
		}
		d := g.newRecord(o.deliver + g.rng.between(0, window))
		d.topic, d.kind, d.key = o.topic, Duplicate, o.key
		d.value = append(d.value, o.value...)
		g.out.push(d)
	}
	if g.rng.chance(g.cfg.BadRate) {
		g.malformed(v, e.ts)
	}
}

// Arrival process: the weight of each hour follows a daily rhythm (quiet
// nights, evening peak), a weekly one (quieter weekends) and a slow growth
// trend; visitors arrive at evenly spaced quantiles of the cumulative
// weight, jittered within their slot. All integer arithmetic.

var hourWeight = [24]int64{30, 20, 15, 12, 12, 15, 25, 40, 55, 65, 70, 72, 75, 75, 72, 70, 72, 78, 85, 95, 100, 90, 70, 45}

// dayWeight is indexed by days since 1970-01-01 mod 7 (0 = Thursday).
var dayWeight = [7]int64{97, 92, 80, 85, 100, 100, 98}

func (g *Generator) buildArrivalWeights() {
	hours := g.cfg.Days * 24
	g.cumWeight = make([]int64, hours+1)
	for h := range hours {
		g.cumWeight[h+1] = g.cumWeight[h] + g.hourWeightAt(h)
	}
}

func (g *Generator) hourWeightAt(h int) int64 {
	ms := g.startMs + int64(h)*3_600_000
	hourOfDay := (ms / 3_600_000) % 24
	day := ms / 86_400_000
	trend := 1000 + 300*int64(h)/int64(len(g.cumWeight))
	return hourWeight[hourOfDay] * dayWeight[day%7] * trend
}

// arrivalTime is the arrival of visitor i, non-decreasing in i.
func (g *Generator) arrivalTime(i uint64) int64 {
	total := uint64(g.cumWeight[len(g.cumWeight)-1])
	hi, lo := bits.Mul64(i, total)
	lo, carry := bits.Add64(lo, g.rng.u64()%total, 0)
	hi += carry
	x, _ := bits.Div64(hi, lo, g.visitors) // < total since i < visitors
	for g.cumWeight[g.hourPtr+1] <= int64(x) {
		g.hourPtr++
	}
	h := g.hourPtr
	w := g.cumWeight[h+1] - g.cumWeight[h]
	return g.startMs + int64(h)*3_600_000 + (int64(x)-g.cumWeight[h])*3_600_000/w
}

// before orders visitors by (key, no): the next event's ts, then arrival.
func (a *visitor) before(b *visitor) bool {
	if a.key != b.key {
		return a.key < b.key
	}
	return a.no < b.no
}

// before orders records by (deliver, seq).
func (a *outRecord) before(b *outRecord) bool {
	if a.deliver != b.deliver {
		return a.deliver < b.deliver
	}
	return a.seq < b.seq
}

// minHeap is a binary min-heap of elements that order themselves
// (container/heap's algorithm, typed: its interface boxed every element).
type minHeap[T interface{ before(T) bool }] []T

func (h *minHeap[T]) push(v T) {
	*h = append(*h, v)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if !s[i].before(s[p]) {
			return
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *minHeap[T]) pop() T {
	s := *h
	v := s[0]
	n := len(s) - 1
	s[0] = s[n]
	var zero T
	s[n] = zero
	*h = s[:n]
	h.fix0()
	return v
}

// fix0 restores the heap after the key of element 0 grew.
func (h minHeap[T]) fix0() {
	for i := 0; ; {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && h[r].before(h[l]) {
			m = r
		}
		if !h[m].before(h[i]) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}
