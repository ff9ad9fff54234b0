package pipeline

import (
	"bytes"
	"fmt"
	"math"
	"time"
	"unsafe"

	"github.com/cespare/xxhash/v2"

	"github.com/funnelhouse/funnelhouse/pipeline/rows"
	"github.com/funnelhouse/funnelhouse/schemas"
)

// Stats counts what a Processor did; the owner turns them into metrics.
// Each record read counts once: as an event, a dead letter or a duplicate.
type Stats struct {
	Partitions int       // processors summed into these stats
	Records    [2]uint64 // by input topic
	// Events counts the valid, non-duplicate events by type. An event that
	// its release rejects (revenue_overflow) moves from here to DeadLetters.
	Events         [schemas.NumTypes]uint64
	DeadLetters    map[schemas.Reason]uint64
	Duplicates     uint64
	Late           uint64
	SessionsClosed uint64
	Transitions    [rows.NumStages]uint64 // by rows.Stage
	Held           uint64                 // events held for the watermark (CheckpointStats only)
}

// input is one of the partition's two topic-partitions.
type input struct {
	name     string // topic name, for events.kafka_topic
	maxTs    int64  // max event ts seen; math.MinInt64 before any
	next     int64  // offset after the last record added; -1 before any
	end      int64  // last known end offset (high watermark); -1 unknown
	lastSeen time.Time

	// After a restore: records before replayUntil are re-read (0: not
	// replaying); replaySkips are the offsets among them to skip.
	replayUntil int64
	replaySkips []int64
	replayFrom  int64 // the range's first offset
	replayFirst int64 // the first offset read in it; -1 before
}

// Processor is the state of one partition number p: inputs clickstream[p]
// and transactions[p], the watermark, events held until the watermark
// passes them, visitors with their open sessions, and recent event ids. It
// is deterministic given its inputs and clock, and not safe for concurrent
// use: one owner goroutine drives it.
type Processor struct {
	group      string
	partition  int32
	gap        int64 // ms
	lateness   int64
	churnAfter int64
	// forgetAfter is Rules.ForgetAfter in ms; forgetting is on while it is
	// positive and load is set (see forget.go).
	forgetAfter int64
	load        VisitorLoader
	idle        time.Duration

	decoder   *schemas.Decoder
	inputs    [2]input
	watermark int64 // ms; math.MinInt64 until known

	pending          pendingQueue
	cold             coldHeld // held events beyond hotLimit
	hotLimit         int      // hotHeldLimit; tests vary it
	hotBytes         int64    // the bytes of records held decoded, at most
	maxRowBytes      int64    // release pauses once the rows buffered reach this
	paused           bool     // release paused before the watermark reached its target
	spilling         bool     // new held events go cold (see hold)
	visitors         visitorTable
	symbols          symbols
	urls             urlTable // of the open sessions
	sessions         slab[session]
	freeSessions     []uint32
	dirty            []uint32 // visitors changed since the last checkpoint
	sessionDeadlines deadlineQueue
	churns           deadlineQueue
	seen             dedup

	forgets      deadlineQueue
	forgetLater  []deadline // forgetInactive's scratch
	forgotten    forgottenSet
	wanted       map[string]struct{} // ids of held events' visitors to load back
	claims       claims              // settled visitor rows of the restore
	symbolsLive  int                 // symbols after the last compactSymbols
	forgetCounts ForgetCounts

	// The restored checkpoint, written again by a Cut during the replay
	// (the state is then only partly rebuilt).
	replayCheckpoint []byte

	// err stops the processor: a spilled run of held events could not be
	// read back, or the visitor strings filled their store (storeOK). Only
	// a restart (which replays the records from Kafka) recovers.
	err error

	rejected []Rejected // records rejected at their release, for TakeRejected

	epoch      uint64
	generation int32 // of the group assignment (SetGeneration)
	out        *rows.Batch
	outBytes   int64 // estimated bytes of the event rows in out
	encodeBuf  []byte
	encodeEnds []int
	stats      Stats
}

// NewProcessor returns an empty processor for partition p. now is the
// processing clock (ts validation and idle advance).
func NewProcessor(group string, partition int32, topics [2]string, r Rules, now func() time.Time) *Processor {
	p := &Processor{
		group:       group,
		partition:   partition,
		gap:         r.SessionGap.Milliseconds(),
		lateness:    r.Lateness.Milliseconds(),
		churnAfter:  r.ChurnAfter.Milliseconds(),
		forgetAfter: r.ForgetAfter.Milliseconds(),
		wanted:      map[string]struct{}{},
		idle:        r.IdleAdvance,
		decoder:     schemas.NewDecoder(now),
		watermark:   math.MinInt64,
		symbols:     newSymbols(),
		urls:        newURLTable(),
		seen:        newDedup(r),
		out:         rows.GetBatch(),
		hotLimit:    hotHeldLimit,
	}
	p.limitMemory(newBudget(standaloneBudget))
	p.stats.DeadLetters = map[schemas.Reason]uint64{}
	p.stats.Partitions = 1
	start := now()
	for t := range p.inputs {
		p.inputs[t] = input{name: topics[t], maxTs: math.MinInt64, next: -1, end: -1, lastSeen: start, replayFrom: -1, replayFirst: -1}
	}
	return p
}

// Add takes one record of input topic t. A record that fails decoding is
// returned as an error for the dead-letter topic; everything else is
// counted as a duplicate, written as late, or held until the watermark
// passes it. Add does not advance the watermark: call Advance after a run
// of records.
func (p *Processor) Add(t schemas.Topic, key, value []byte, offset int64, now time.Time) *schemas.Error {
	in := &p.inputs[t]
	in.lastSeen = now
	if p.IsReplay(t, offset) {
		p.replay(t, key, value, offset)
		return nil
	}
	p.endReplayAt(t, offset) // the rest of the range is gone
	in.next = offset + 1
	p.stats.Records[t]++
	slot, h := p.pending.slot()
	h.topic, h.offset = t, offset
	if err := p.decoder.Decode(t, key, value, &h.ev); err != nil {
		p.pending.release(slot)
		p.stats.DeadLetters[err.Reason]++
		if err.Reason == schemas.ReasonBadTs {
			// Judged by the processing clock: a replay could accept it.
			p.seen.skips[t] = append(p.seen.skips[t], offset)
		}
		return err
	}
	if !p.seen.add(t, h.ev.VisitorID, h.ev.EventID, h.ev.TsMs, offset, p.watermark) {
		p.pending.release(slot)
		p.stats.Duplicates++
		return nil
	}
	p.stats.Events[h.ev.Type]++
	if h.ev.TsMs > in.maxTs {
		in.maxTs = h.ev.TsMs
	}
	if h.ev.TsMs < p.watermark {
		p.writeLate(h)
		p.pending.release(slot)
		return nil
	}
	p.hold(slot, h, key, value)
	return nil
}

// hold keeps the event of slot until the watermark passes it: decoded
// while few are held, else as its raw record (see coldheld.go).
//
// Once the decoded ones reach hotLimit, every new one goes cold until the
// decoded ones are all released: the decoder's arena chunks that decoded
// events pin are then those of one stretch of records, not of every
// stretch since (an arena chunk lives while any string of it does).
func (p *Processor) hold(slot uint32, h *held, key, value []byte) {
	h.size = int64(len(key) + len(value))
	p.want(h.ev.VisitorID)
	switch n := p.pending.len(); {
	case n == 0:
		p.spilling = false
	case n >= p.hotLimit || p.pending.bytes+h.size > p.hotBytes:
		p.spilling = true
	}
	if !p.spilling {
		if h.ev.Type == schemas.OrderCompleted {
			h.raw = bytes.Clone(value) // value is the caller's; an order is a few % of the events
			h.size += int64(len(h.raw))
		}
		p.pending.push(slot)
		return
	}
	p.cold.add(h.topic, h.offset, h.ev.TsMs, h.ev.EventID, key, value)
	p.pending.release(slot)
}

// caughtUp reports whether an input whose next offset to read is next has
// read every record before end, its partition's high watermark (-1: not
// known yet; 0: an empty partition).
func caughtUp(next, end int64) bool { return end == 0 || end > 0 && next >= end }

// SetEnd records input t's end offset (the partition's high watermark), so
// that Advance knows whether the input has unread records.
func (p *Processor) SetEnd(t schemas.Topic, end int64) {
	p.inputs[t].end = end
	if end == 0 && p.inputs[t].replaying() {
		p.endReplayAt(t, p.inputs[t].replayUntil) // emptied by retention: nothing to re-read
	}
}

// Skip moves input t past a record that carries no event: a transaction's
// commit or abort marker. Without it, the input would seem to have an
// unread record forever and never go idle.
func (p *Processor) Skip(t schemas.Topic, offset int64) {
	replayed := p.IsReplay(t, offset)
	p.endReplayAt(t, offset)
	if !replayed {
		p.inputs[t].next = offset + 1
	}
}

// Next is the offset of the next record to read from input t, or -1.
func (p *Processor) Next(t schemas.Topic) int64 { return p.inputs[t].next }

// Watermark is the partition's event-time watermark in epoch ms.
func (p *Processor) Watermark() int64 { return p.watermark }

// Stats returns the counters so far.
func (p *Processor) Stats() *Stats { return &p.stats }

// limitMemory applies a memory budget's shares for one partition.
func (p *Processor) limitMemory(b budget) {
	p.hotBytes, p.cold.runBytes, p.maxRowBytes = b.hotHeld, b.coldRun, b.partitionRows
}

// SpillTo keeps held events beyond the hot limit in files in dir (""
// is os.TempDir()). Call it before the first Add.
func (p *Processor) SpillTo(dir string) { p.cold.spill.dir = dir }

// ReleasePaused reports whether the last Advance stopped short of its
// watermark because the rows buffered reached their bound: Advance again
// once they are flushed.
func (p *Processor) ReleasePaused() bool { return p.paused }

// Err is why the processor stopped releasing events, or nil: a spilled
// run of held events could not be read back (restart to replay them), or
// the visitor strings filled their store.
func (p *Processor) Err() error { return p.err }

// SpillError is the first failure to spill held events to disk, or nil.
// Such events stay in memory: nothing is lost, but memory grows.
func (p *Processor) SpillError() error { return p.cold.spillErr }

// Close releases the files of held events; the processor is done.
func (p *Processor) Close() { p.cold.close() }

// Held is the number of events waiting for the watermark.
func (p *Processor) Held() int { return p.pending.len() + p.cold.len() }

// OpenSessions and Visitors size the state.
func (p *Processor) OpenSessions() int { return p.sessions.len() - len(p.freeSessions) }
func (p *Processor) Visitors() int     { return p.visitors.len() }

// aheadInput returns the input whose max event time is ahead of the
// other's while the other still has unread records, or -1.
func (p *Processor) aheadInput() int {
	if r := p.Replaying(); r >= 0 && !p.inputs[1-r].replaying() {
		return 1 - r // its new records wait for the other's replay
	}
	for t := range p.inputs {
		other := &p.inputs[1-t]
		if p.inputs[t].maxTs > other.maxTs && !caughtUp(other.next, other.end) {
			return t
		}
	}
	return -1
}

// behindInput is the input whose max event time is behind the other's
// (clickstream on a tie): the one the watermark waits for.
func (p *Processor) behindInput() int {
	if p.inputs[schemas.Transactions].maxTs < p.inputs[schemas.Clickstream].maxTs {
		return int(schemas.Transactions)
	}
	return int(schemas.Clickstream)
}

// Drained reports whether both inputs are read to their end and nothing is
// held: every event released and every session closed.
func (p *Processor) Drained() bool {
	for _, in := range p.inputs {
		if !caughtUp(in.next, in.end) {
			return false
		}
	}
	return p.Held() == 0 && p.OpenSessions() == 0 && p.Replaying() < 0
}

// Rows is the number of rows buffered for the next checkpoint.
func (p *Processor) Rows() int { return p.out.Rows() }

// Advance recomputes the watermark (SPEC §3) at processing time now and
// releases, in processing order, every held event and deadline it passed.
// An input's max event time counts at most up to now: one record from a
// producer whose clock runs ahead (SPEC accepts up to 1 h) would otherwise
// push the watermark ahead and make the real-time traffic after it late.
// Such a record is held until the clock passes it.
func (p *Processor) Advance(now time.Time) {
	if p.Replaying() >= 0 || p.err != nil {
		return // the state is not whole yet, or is broken
	}
	nowMs := now.UnixMilli()
	w, active := int64(math.MaxInt64), false
	for t := range p.inputs {
		in := &p.inputs[t]
		if caughtUp(in.next, in.end) && now.Sub(in.lastSeen) >= p.idle {
			continue // idle: left out of the min
		}
		active = true
		if in.maxTs == math.MinInt64 {
			w = math.MinInt64
		} else {
			w = min(w, min(in.maxTs, nowMs)-p.lateness)
		}
	}
	if !active {
		w = nowMs - p.lateness
	}
	p.release(max(w, p.watermark))
	p.seen.expire(p.watermark)
}

// RowBytes estimates the memory of the rows buffered for the next
// checkpoint: the event rows with their text, and the other rows (their
// strings are short, or shared with other rows).
func (p *Processor) RowBytes() int64 {
	return p.outBytes + otherRowBytes*int64(p.out.Sessions.Len()+p.out.Transitions.Len()+p.out.State.Len())
}

var otherRowBytes = int64(unsafe.Sizeof(rows.Session{})) + 128

// release moves the watermark to target, processing the held events and
// deadlines it passes in time order; a deadline fires after the events at
// its own ts. Once the rows buffered reach maxRowBytes it stops between
// two instants, with the watermark there (every event before it
// processed, none after), and Advance goes on after the rows are flushed:
// a watermark that jumps days at once (an input gone idle) would
// otherwise turn every held event into rows in one go. Meanwhile new
// events are judged late against the watermark reached.
func (p *Processor) release(target int64) {
	p.paused = false
	if !p.loadWanted() {
		return
	}
	last := int64(math.MinInt64) // the instant of the last event or deadline processed
	for {
		src, ts := p.nextHeld(target)
		sd, sok := p.sessionDeadlines.next()
		cd, cok := p.churns.next()
		d, dok := int64(math.MaxInt64), false
		if sok && sd < target {
			d, dok = sd, true
		}
		if cok && cd < target && cd < d {
			d, dok = cd, true
		}
		if src == noHeld && !dok {
			break
		}
		next := d
		if src != noHeld {
			next = min(next, ts)
		}
		if next > last {
			if p.RowBytes() >= p.maxRowBytes {
				p.watermark, p.paused = max(p.watermark, next), true
				return
			}
			last = next
		}
		switch {
		case src != noHeld && (!dok || ts <= d):
			if !p.releaseHeld(src) {
				return
			}
		case dok && sok && sd == d:
			p.fireSessionClose(p.sessionDeadlines.pop())
		case dok:
			p.fireChurn(p.churns.pop())
		}
	}
	p.watermark = target
}

// Where the next held event to release is.
const (
	noHeld = iota
	hotHeld
	coldHeldEvent
)

// nextHeld returns where the first held event in processing order is, and
// its ts, if the watermark has passed it.
func (p *Processor) nextHeld(target int64) (int, int64) {
	e := p.pending.peek()
	if e != nil && e.ev.TsMs >= target {
		e = nil
	}
	c := p.cold.peek(target)
	if c != nil && c.ts >= target {
		c = nil
	}
	switch {
	case e != nil && (c == nil || heldBefore(e, c)):
		return hotHeld, e.ev.TsMs
	case c != nil:
		return coldHeldEvent, c.ts
	}
	return noHeld, 0
}

// heldBefore reports whether e comes before c in processing order.
func heldBefore(e *held, c *coldKey) bool {
	if e.ev.TsMs != c.ts {
		return e.ev.TsMs < c.ts
	}
	if e.topic != c.topic {
		return e.topic < c.topic
	}
	return e.ev.EventID < string(c.id)
}

// releaseHeld processes the first held event, from where nextHeld said.
// It fails (setting p.err) if a spilled run cannot be read back, or if
// the event's strings do not fit the visitor string store.
func (p *Processor) releaseHeld(src int) bool {
	if src == hotHeld {
		slot := p.pending.pop()
		p.processEvent(&p.pending.slab[slot])
		p.pending.release(slot)
		return p.storeOK() && p.err == nil
	}
	r, err := p.cold.pop()
	if err != nil {
		p.err = fmt.Errorf("partition %d: %w", p.partition, err)
		return false
	}
	slot, h := p.pending.slot()
	h.topic, h.offset = r.key.topic, r.offset
	if err := p.decoder.Decode(r.key.topic, r.rkey, r.rval, &h.ev); err != nil {
		panic(fmt.Sprintf("BUG: held record %s[%d] at offset %d no longer decodes: %v", p.inputs[h.topic].name, p.partition, h.offset, err))
	}
	h.raw = r.rval // valid until the next pop: processEvent copies it if it must
	p.processEvent(h)
	p.pending.release(slot)
	return p.storeOK() && p.err == nil
}

// storeOK reports whether the visitor strings still fit their store. Once
// they do not (see stringStore), the state is wrong: p.err stops the
// processor, and nothing cut from it may be written (the owner's cut
// carries the error).
func (p *Processor) storeOK() bool {
	if err := p.visitors.strs.err; err != nil {
		p.err = fmt.Errorf("partition %d: cannot keep its state: %w", p.partition, err)
		return false
	}
	return true
}

// touch marks visitor vi as changed since the last checkpoint.
func (p *Processor) touch(vi uint32, v *visitor) {
	if !v.is(dirty) {
		v.set(dirty, true)
		p.dirty = append(p.dirty, vi)
	}
}

const dayMs = 24 * 3600 * 1000

// dayOf is the UTC day of ms, in days since 1970-01-01 (ts are validated
// to 2000 and later, so it fits).
func dayOf(ms int64) uint16 { return uint16(rows.FloorDiv(ms, dayMs)) }

// processEvent applies one released event: session, lifecycle, event row.
func (p *Processor) processEvent(h *held) {
	if p.overflows(h) {
		return
	}
	e := &h.ev
	vi, v, ok := p.findOrLoad(e.VisitorID)
	if !ok {
		return
	}
	isNew := v == nil
	if isNew {
		vi, v = p.visitors.add(e.VisitorID)
		v.source = p.symbols.intern(Source(e))
		v.cohortDay = dayOf(e.TsMs)
	}
	p.touch(vi, v)
	if e.CustomerID != "" && e.CustomerID != p.visitors.strs.get(v.customerID) {
		v.customerID = p.visitors.strs.put(e.CustomerID)
	}
	if isNew {
		p.enter(v, rows.StageAwareness, e.TsMs, e.EventID)
	}
	s := p.sessionOf(vi, v, h)
	p.applyLifecycle(vi, v, e)
	if s == nil {
		p.appendEvent(h, "", 0, v.stage, Source(e), e.UTMMedium, e.UTMCampaign, false)
		return
	}
	// The id's bytes are borrowed, not copied into the batch's arena: the
	// event row copies them into its text at once.
	p.appendEvent(h, unsafe.String(&s.id[0], len(s.id)), s.startMs, v.stage, p.symbols.name(s.source), p.symbols.name(s.medium), p.symbols.name(s.campaign), false)
}

// overflows rejects an order whose amount would take the revenue of its
// session past schemas.MaxAmount, the most that sessions.revenue (a
// Decimal(18,4)) holds, and reports whether it did. It runs before the
// event changes anything: the order is in no row and no state, as if it
// had failed decoding, and goes to the dead-letter topic
// (ReasonRevenueOverflow). Events are released in processing order, so
// which order is rejected does not depend on their arrival order.
func (p *Processor) overflows(h *held) bool {
	e := &h.ev
	if e.Type != schemas.OrderCompleted {
		return false
	}
	_, v := p.visitors.find(e.VisitorID)
	if v == nil || v.session == 0 {
		return false
	}
	s := p.sessions.at(v.session - 1)
	if !s.covers(e.TsMs, p.gap) || e.Amount <= schemas.MaxAmount-s.revenue {
		return false
	}
	p.reject(h, &schemas.Error{Reason: schemas.ReasonRevenueOverflow, Detail: fmt.Sprintf(
		"field amount: %s would take the revenue of session %s from %s past %s", e.Amount, s.id[:], s.revenue, schemas.MaxAmount)})
	return true
}

// Rejected is a record that the release of its event rejected, for the
// dead-letter topic. Its slices are its own.
type Rejected struct {
	Topic      schemas.Topic
	Offset     int64
	Key, Value []byte
	Err        *schemas.Error
}

// reject moves a released event from the events counted to the dead
// letters and keeps its record for TakeRejected.
func (p *Processor) reject(h *held, err *schemas.Error) {
	if h.raw == nil {
		panic(fmt.Sprintf("BUG: %s event %q released without its record", h.ev.Type, h.ev.EventID))
	}
	p.stats.Events[h.ev.Type]--
	p.stats.DeadLetters[err.Reason]++
	p.rejected = append(p.rejected, Rejected{Topic: h.topic, Offset: h.offset, Key: []byte(h.ev.VisitorID), Value: bytes.Clone(h.raw), Err: err})
}

// TakeRejected returns the records rejected since the last call, for the
// dead-letter topic (Add returns the others); the caller owns them. Call
// it after Advance, before the next Cut: a checkpoint must not say that a
// rejected record was handled before its dead letter is written.
func (p *Processor) TakeRejected() []Rejected {
	r := p.rejected
	p.rejected = nil
	return r
}

// appendEvent writes the events row of a held event.
func (p *Processor) appendEvent(h *held, sessionID string, sessionStartMs int64, stage rows.Stage, source, medium, campaign string, late bool) {
	e := &h.ev
	p.outBytes += p.out.Events.Append(&rows.Event{
		EventID: e.EventID, TsMs: e.TsMs, Type: e.Type, VisitorID: e.VisitorID, CustomerID: e.CustomerID,
		SessionID: sessionID, Stage: stage, URL: e.URL, Referrer: e.Referrer,
		Source: source, Medium: medium, Campaign: campaign, Device: e.Device, Country: e.Country,
		OrderID: e.OrderID, Amount: e.Amount, Currency: e.Currency, Rating: e.Rating, NPS: e.NPS, CSAT: e.CSAT,
		CES: e.CES, Trial: e.Trial, Plan: e.Plan, SessionStartMs: sessionStartMs, Props: e.Props, Late: late, KafkaTopic: p.inputs[h.topic].name, KafkaPartition: p.partition, KafkaOffset: h.offset,
	})
}

// sessionOf puts a clickstream event into the visitor's session (extending
// it or starting one) and finds the session a transaction belongs to.
func (p *Processor) sessionOf(vi uint32, v *visitor, h *held) *session {
	e := &h.ev
	var s *session
	if v.session != 0 {
		s = p.sessions.at(v.session - 1)
	}
	if h.topic == schemas.Transactions {
		if s == nil || !s.covers(e.TsMs, p.gap) {
			return nil
		}
		if e.Type == schemas.OrderCompleted {
			s.orders++
			s.revenue += e.Amount
		}
		return s
	}
	if s != nil && e.TsMs-s.endMs > p.gap {
		panic("BUG: session deadline did not fire before a later event")
	}
	if s != nil {
		p.extendSession(s, e, v.customerID)
		return s
	}
	s = p.startSession(vi, v, e)
	p.queueSessionClose(vi, v)
	return s
}

// writeLate stores a late event (SPEC §3): no session, no state change.
func (p *Processor) writeLate(h *held) {
	p.stats.Late++
	var stage rows.Stage
	if _, v := p.visitors.find(h.ev.VisitorID); v != nil {
		stage = v.stage
	}
	e := &h.ev
	p.appendEvent(h, "", 0, stage, Source(e), e.UTMMedium, e.UTMCampaign, true)
}

func (s *Stats) clone() Stats {
	c := *s
	c.DeadLetters = make(map[schemas.Reason]uint64, len(s.DeadLetters))
	for r, n := range s.DeadLetters {
		c.DeadLetters[r] = n
	}
	return c
}

// Add sums o into s.
func (s *Stats) Add(o *Stats) {
	s.Partitions += o.Partitions
	for i := range s.Records {
		s.Records[i] += o.Records[i]
	}
	for i := range s.Events {
		s.Events[i] += o.Events[i]
	}
	if s.DeadLetters == nil {
		s.DeadLetters = map[schemas.Reason]uint64{}
	}
	for r, n := range o.DeadLetters {
		s.DeadLetters[r] += n
	}
	s.Duplicates += o.Duplicates
	s.Late += o.Late
	s.Held += o.Held
	s.SessionsClosed += o.SessionsClosed
	for i := range s.Transitions {
		s.Transitions[i] += o.Transitions[i]
	}
}

// pairHash is xxhash64(a + "\x00" + b) without building the string.
func pairHash(a, b string) uint64 {
	var d xxhash.Digest
	d.Reset()
	d.WriteString(a)
	d.Write(zeroByte[:])
	d.WriteString(b)
	return d.Sum64()
}

var zeroByte [1]byte
