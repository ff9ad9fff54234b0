package pipeline

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/funnelhouse/funnelhouse/pipeline/rows"
	"github.com/funnelhouse/funnelhouse/schemas"
)

// A checkpoint is the partition's state after the records before its
// offsets: one 'checkpoint' row (watermark, and per input the offsets and
// the replay range, see replay.go) and one 'visitor' row per visitor
// changed since the previous checkpoint (lifecycle and open session). Both
// go to pipeline_state in the same insert as the checkpoint's last rows,
// so a restore never sees half of one, and the input offsets say exactly
// which records the state already reflects: replayed records are not
// applied twice. The held events and recent event ids are not in it: they
// are re-read from Kafka, so its size does not grow with rate × lateness.

// snapshotVersion is the layout written. Versions 1 and 2 held the events
// and ids themselves and are still read. Version 1 (before the catalogue
// of SPEC §6.1) has no ces, trial or plan in its held events, and no
// hadSession bit in its visitors, which a restore sets for every visitor
// (almost all started with a session; the error is one visitor's next
// session counted as returning instead of new, once, at the upgrade).
const snapshotVersion = 3

// visitorVersion is the layout of the 'visitor' rows written. Version 4
// added the day pairs (dayKeys) and the open session's first_of_day bit;
// versions 1 and 3 are still read. Their open session is taken as the
// first of its day for its source and medium, and their other sessions of
// that day are not known: after the upgrade, a visitor may count twice in
// one traffic_daily row of the upgrade's day.
const visitorVersion = 4

func knownVisitorVersion(v byte) bool { return v == 1 || v == 3 || v == visitorVersion }

// Offsets are the next offsets to read per input topic; -1 means none read.
type Offsets [2]int64

// Cut ends the current checkpoint interval. It appends the state rows to
// the buffered rows and returns them and the offsets they cover; the
// processor continues with an empty batch. The caller owns the returned
// batch.
func (p *Processor) Cut() (*rows.Batch, Offsets) {
	p.epoch++
	if p.watermark > dayMs { // no session starts before the watermark any more
		p.visitors.days.prune(dayOf(p.watermark - dayMs))
	}
	if p.forgetting() && p.Replaying() < 0 {
		p.forgetInactive()
	}
	// All visitors are encoded into one buffer, turned into one string
	// that the rows slice: one allocation per checkpoint, not per visitor.
	buf := p.encodeBuf[:0]
	ends := p.encodeEnds[:0]
	for _, vi := range p.dirty {
		v := p.visitors.slab.at(vi)
		v.set(dirty, false)
		buf = p.encodeVisitor(buf, vi, v)
		ends = append(ends, len(buf))
	}
	all, start := string(buf), 0
	for i, vi := range p.dirty {
		id := p.visitors.strs.get(p.visitors.slab.at(vi).id)
		p.out.State.Append(&rows.State{Group: p.group, Partition: p.partition, Kind: rows.StateVisitor, Key: id, Epoch: p.epoch, Data: all[start:ends[i]]})
		start = ends[i]
	}
	p.encodeBuf, p.encodeEnds = buf, ends
	p.claims.cut(func(key, data string) {
		p.out.State.Append(&rows.State{Group: p.group, Partition: p.partition, Kind: rows.StateVisitor, Key: key, Epoch: p.epoch, Data: data})
	})
	p.dirty = p.dirty[:0]
	if cap(p.dirty) > 1<<16 {
		p.dirty = nil // a burst's capacity is not worth keeping
	}
	data := p.replayCheckpoint // until the replay ends, the state is the restored one
	if data == nil {
		data = p.encodeCheckpoint(nil)
	}
	p.out.State.Append(&rows.State{Group: p.group, Partition: p.partition, Kind: rows.StateCheckpoint, Epoch: p.epoch, Data: string(data)})
	b := p.out
	p.out, p.outBytes = rows.GetBatchLike(b), 0
	return b, Offsets{p.inputs[0].next, p.inputs[1].next}
}

// Flush hands over the rows buffered so far, without the state: they may
// go out before the checkpoint that covers them, since a replay writes
// them again and every table replaces such a row. The caller owns the
// returned batch.
func (p *Processor) Flush() *rows.Batch {
	b := p.out
	p.out, p.outBytes = rows.GetBatchLike(b), 0
	return b
}

// An epoch is a fork number (high 32 bits) and a sequence number. Each
// restore starts a fork: its first checkpoint writes every visitor, and a
// restore takes only the visitor rows of its checkpoint's fork. A member
// that lost its partitions but still writes (a zombie, e.g. stuck in a
// retry while ClickHouse was down) writes its older fork: its checkpoint
// loses to the new owner's (higher epochs), and its visitor rows, even of
// visitors the new owner has not written, are ignored by every later
// restore. Without it, a restore could mix the two owners' lineages and
// apply events twice.
//
// A fork number is the count of restores in its lineage (high 20 bits)
// and the consumer group generation of the assignment that restored it
// (low forkGenBits, modulo): a zombie may have restored the very
// checkpoint its successor restores (it lost the partition before its
// first checkpoint), and the later assignment's fork must still be the
// higher (TestTwoOwnersOfOneCheckpoint). The generation wraps after 4,096
// rebalances; only a zombie and its successor restoring one checkpoint
// across that wrap would be ordered wrongly.
const (
	forkShift   = 32
	forkGenBits = 12
)

// Epoch is the number of the last checkpoint cut or restored.
func (p *Processor) Epoch() uint64 { return p.epoch }

// SetGeneration gives the consumer group generation of the assignment
// that made this processor the partition's owner; call it before Restore.
// It orders the forks of two owners that restore the same checkpoint (see
// forkGenBits).
func (p *Processor) SetGeneration(gen int32) { p.generation = gen }

// Restore loads the newest checkpoint's rows into an empty processor and
// returns the offsets to resume reading from (-1: no checkpoint for that
// input): the start of each input's replay range.
func (p *Processor) Restore(state []rows.State) (Offsets, error) {
	off := Offsets{-1, -1}
	if p.visitors.len() > 0 || p.epoch > 0 {
		return off, errors.New("BUG: Restore into a used processor")
	}
	var cp *rows.State
	for i, r := range state {
		if r.Kind == rows.StateCheckpoint && (cp == nil || r.Epoch > cp.Epoch) {
			cp = &state[i]
		}
	}
	if cp == nil {
		return off, nil
	}
	from, err := p.decodeCheckpoint([]byte(cp.Data))
	if err != nil {
		return off, fmt.Errorf("cannot restore checkpoint of partition %d: %w", p.partition, err)
	}
	p.epoch, off, p.stats.Held = cp.Epoch, from, 0
	if p.Replaying() >= 0 {
		p.replayCheckpoint = []byte(cp.Data)
	}
	fork := cp.Epoch >> forkShift
	for _, r := range state {
		if r.Kind != rows.StateVisitor {
			continue
		}
		if r.Epoch>>forkShift != fork {
			continue // of another owner's lineage (see forkShift)
		}
		settled, err := p.settledRow([]byte(r.Data), p.watermark)
		switch {
		case err != nil:
			return off, fmt.Errorf("cannot restore visitor %q of partition %d: %w", r.Key, p.partition, err)
		case settled: // forgotten (see forget.go)
			p.forgotten.add(r.Key)
			p.claims.add(r.Key, r.Data)
			continue
		}
		if err := p.restoreVisitor(r.Key, []byte(r.Data)); err != nil {
			return off, fmt.Errorf("cannot restore visitor %q of partition %d: %w", r.Key, p.partition, err)
		}
		vi, v := p.visitors.find(r.Key)
		p.queueForget(vi, v)
	}
	if !p.storeOK() {
		return off, p.err
	}
	p.fork()
	return off, nil
}

// fork starts this owner's lineage: epochs above any of the restored
// fork's, and a first checkpoint that writes every visitor.
func (p *Processor) fork() {
	restores := p.epoch >> forkShift >> forkGenBits
	gen := uint64(p.generation) & (1<<forkGenBits - 1)
	p.epoch = ((restores+1)<<forkGenBits | gen) << forkShift
	p.dirty = p.dirty[:0]
	p.visitors.each(p.touch)
}

func (p *Processor) encodeCheckpoint(b []byte) []byte {
	b = append(b, snapshotVersion)
	b = binary.AppendVarint(b, p.watermark)
	for t, in := range p.inputs {
		from := p.seen.replayFrom(t, in.next)
		b = binary.AppendVarint(b, in.maxTs)
		b = binary.AppendVarint(b, in.next)
		b = binary.AppendVarint(b, from)
		skips := p.seen.skipsFrom(t, from)
		b = binary.AppendUvarint(b, uint64(len(skips)))
		last := from
		for _, o := range skips {
			b = binary.AppendUvarint(b, uint64(o-last))
			last = o
		}
	}
	b = binary.AppendUvarint(b, uint64(p.Held()))
	return encodeStats(b, &p.stats)
}

// The counters travel with the state, so that they count every record
// exactly once across restarts, like the rows do.
func encodeStats(b []byte, s *Stats) []byte {
	var counts []uint64
	counts = append(counts, s.Records[:]...)
	counts = append(counts, s.Events[:]...)
	counts = append(counts, s.Transitions[:]...)
	counts = append(counts, s.Duplicates, s.Late, s.SessionsClosed)
	for _, r := range schemas.Reasons {
		counts = append(counts, s.DeadLetters[r])
	}
	b = binary.AppendUvarint(b, uint64(len(counts)))
	for _, c := range counts {
		b = binary.AppendUvarint(b, c)
	}
	return b
}

func decodeStats(r *reader, s *Stats) {
	n := r.count()
	counts := make([]uint64, n)
	for i := range counts {
		counts[i] = r.uvarint()
	}
	// Checkpoints written before revenue_overflow existed lack its counter,
	// the last one: it is 0.
	want := len(s.Records) + len(s.Events) + len(s.Transitions) + 3 + len(schemas.Reasons)
	if r.err != nil || n != want && n != want-1 {
		if r.err == nil {
			r.err = fmt.Errorf("checkpoint has %d counters, want %d", n, want)
		}
		return
	}
	counts = append(counts, make([]uint64, want-n)...)
	i := copy(s.Records[:], counts)
	i += copy(s.Events[:], counts[i:])
	i += copy(s.Transitions[:], counts[i:])
	s.Duplicates, s.Late, s.SessionsClosed = counts[i], counts[i+1], counts[i+2]
	i += 3
	for _, reason := range schemas.Reasons {
		if counts[i] > 0 {
			s.DeadLetters[reason] = counts[i]
		}
		i++
	}
}

// CheckpointStats decodes the counters of a 'checkpoint' row of
// pipeline_state: what the partition processed up to that checkpoint.
func CheckpointStats(data []byte) (Stats, error) {
	p := &Processor{seen: newDedup(DefaultRules())}
	p.stats.DeadLetters = map[schemas.Reason]uint64{}
	_, err := p.decodeCheckpoint(data)
	p.stats.Partitions = 1
	return p.stats, err
}

// decodeCheckpoint restores a 'checkpoint' row and returns the offsets to
// read from.
func (p *Processor) decodeCheckpoint(data []byte) (Offsets, error) {
	r := reader{b: data}
	ver := r.byte()
	if ver < 1 || ver > snapshotVersion {
		return Offsets{}, fmt.Errorf("unknown checkpoint version %d", ver)
	}
	if ver < 3 {
		return p.decodeHeldCheckpoint(&r, ver)
	}
	p.watermark = r.varint()
	var from Offsets
	for t := range p.inputs {
		in := &p.inputs[t]
		in.maxTs, in.next, from[t] = r.varint(), r.varint(), r.varint()
		n := r.count()
		last := from[t]
		for i := 0; i < n && r.err == nil; i++ {
			last += int64(r.uvarint())
			in.replaySkips = append(in.replaySkips, last)
		}
		if from[t] > in.next || from[t] < 0 && in.next >= 0 {
			return from, fmt.Errorf("replay range [%d, %d) of input %d is not a range", from[t], in.next, t)
		}
		if from[t] < in.next {
			in.replayUntil, in.replayFrom = in.next, from[t]
		} else {
			in.replaySkips = nil
		}
	}
	p.stats.Held = r.uvarint()
	decodeStats(&r, &p.stats)
	return from, r.done()
}

// decodeHeldCheckpoint restores a checkpoint of version 1 or 2, which holds
// the held events and live ids themselves. Their ids get the offset of
// the input's oldest held event (they had none), so that the next
// checkpoint re-reads the held events; ids older than that are forgotten
// at the restore after next: a duplicate of one of them arriving later
// would be taken for a first copy, once, after an upgrade.
func (p *Processor) decodeHeldCheckpoint(r *reader, ver byte) (Offsets, error) {
	p.watermark = r.varint()
	for t := range p.inputs {
		p.inputs[t].maxTs = r.varint()
		p.inputs[t].next = r.varint()
	}
	oldest := Offsets{p.inputs[0].next, p.inputs[1].next}
	n := r.count()
	for i := 0; i < n && r.err == nil; i++ {
		slot, h := p.pending.slot()
		h.topic, h.offset = schemas.Topic(r.byte()), r.varint()
		decodeEvent(r, &h.ev, ver)
		if h.topic > schemas.Transactions {
			return oldest, fmt.Errorf("held event of unknown topic %d", h.topic)
		}
		oldest[h.topic] = min(oldest[h.topic], h.offset)
		p.pending.push(slot)
	}
	for t := range p.inputs {
		n = r.count()
		for i := 0; i < n && r.err == nil; i++ {
			k, ts := r.uint64()&^1, r.varint()
			if k == 0 {
				k = 2 // as idKey
			}
			first := p.seen.firstLive(p.watermark)
			if span := p.seen.spanOf(ts); span >= first {
				if i, free := p.seen.lookup(k, first); i < 0 {
					p.seen.insert(free, k, schemas.Topic(t), span, oldest[t], first)
				}
			}
		}
	}
	p.stats.Held = uint64(p.pending.len())
	decodeStats(r, &p.stats)
	return Offsets{p.inputs[0].next, p.inputs[1].next}, r.done()
}

// encodeVisitor writes v's lifecycle, open session and day pairs. (The
// layout is that of the first version, when visitors held Go strings,
// with the day pairs of version 4 at the end.)
func (p *Processor) encodeVisitor(b []byte, vi uint32, v *visitor) []byte {
	strs := &p.visitors.strs
	b = append(b, visitorVersion)
	b = appendString(b, strs.get(v.customerID))
	b = append(b, byte(v.stage), boolByte(v.is(churned))|boolByte(v.is(hadSession))<<1)
	b = binary.AppendVarint(b, v.cohortDayMs())
	b = appendString(b, p.symbols.name(v.source))
	b = appendString(b, strs.get(v.firstOrder))
	b = binary.AppendVarint(b, v.lastMs)
	if v.session == 0 {
		b = append(b, 0)
	} else {
		b = p.appendOpenSession(append(b, 1), p.sessions.at(v.session-1))
	}
	return p.visitors.days.appendTo(b, vi)
}

// appendOpenSession writes the open session of a visitor row.
func (p *Processor) appendOpenSession(b []byte, s *session) []byte {
	strs := &p.visitors.strs
	b = append(b, boolByte(s.firstIsPageView)|boolByte(s.first)<<1|boolByte(s.firstOfDay)<<2)
	b = appendString(b, s.id[:])
	b = appendString(b, p.urls.name(s.entry))
	b = appendString(b, p.urls.name(s.exit))
	for _, sym := range []symbol{s.source, s.medium, s.campaign} {
		b = appendString(b, p.symbols.name(sym))
	}
	b = appendString(b, strs.get(s.customerID))
	b = binary.AppendVarint(b, s.startMs)
	b = binary.AppendVarint(b, s.endMs)
	b = binary.AppendUvarint(b, uint64(s.events))
	b = binary.AppendUvarint(b, uint64(s.pageViews))
	b = binary.AppendUvarint(b, uint64(s.orders))
	return binary.AppendVarint(b, int64(s.revenue))
}

// restoreVisitor adds the visitor of one 'visitor' row, with its deadlines.
func (p *Processor) restoreVisitor(id string, data []byte) error {
	if _, v := p.visitors.find(id); v != nil {
		return errors.New("the checkpoint holds it twice")
	}
	r := reader{b: data}
	ver := r.byte()
	if !knownVisitorVersion(ver) {
		return fmt.Errorf("unknown visitor state version %d", ver)
	}
	vi, v := p.visitors.add(id)
	strs := &p.visitors.strs
	v.customerID = strs.put(r.string())
	v.stage = rows.Stage(r.byte())
	flags := r.byte()
	v.set(churned, flags&1 != 0)
	v.set(hadSession, flags&2 != 0 || ver == 1)
	v.cohortDay = dayOf(r.varint())
	v.source = p.symbols.intern(r.string())
	v.firstOrder = strs.put(r.string())
	v.lastMs = r.varint()
	if r.byte() == 1 {
		i, s := p.sessions.add()
		sflags := r.byte()
		s.firstIsPageView = sflags&1 != 0
		s.first = sflags&2 != 0
		s.firstOfDay = sflags&4 != 0 || ver < 4
		if copy(s.id[:], r.string()) != ksuidLen && r.err == nil {
			return errors.New("session id is not a KSUID")
		}
		s.entry = p.urls.ref(r.string())
		s.exit = p.urls.ref(r.string())
		s.source = p.symbols.intern(r.string())
		s.medium = p.symbols.intern(r.string())
		s.campaign = p.symbols.intern(r.string())
		s.customerID = strs.put(r.string())
		s.startMs = r.varint()
		s.endMs = r.varint()
		s.events = uint32(r.uvarint())
		s.pageViews = uint32(r.uvarint())
		s.orders = uint32(r.uvarint())
		s.revenue = schemas.Amount(r.varint())
		v.session = i + 1
	}
	switch {
	case ver >= 4:
		p.visitors.days.read(&r, vi)
	case v.session != 0: // the open session's pair, at least
		s := p.sessions.at(v.session - 1)
		p.visitors.days.mark(vi, dayPair(dayOf(s.startMs), p.symbols.name(s.source), p.symbols.name(s.medium)))
	}
	p.queueSessionClose(vi, v)
	p.queueChurn(vi, v)
	return r.done()
}

func encodeEvent(b []byte, e *schemas.Event) []byte {
	b = append(b, byte(e.Type), byte(e.Rating), byte(e.NPS), byte(e.CSAT))
	b = binary.AppendVarint(b, e.TsMs)
	b = binary.AppendVarint(b, int64(e.Amount))
	for _, s := range eventStrings(e) {
		b = appendString(b, *s)
	}
	b = append(b, byte(e.CES), boolByte(e.Trial))
	return appendString(b, e.Plan)
}

func decodeEvent(r *reader, e *schemas.Event, ver byte) {
	e.Type = schemas.Type(r.byte())
	e.Rating, e.NPS, e.CSAT = int8(r.byte()), int8(r.byte()), int8(r.byte())
	e.TsMs = r.varint()
	e.Amount = schemas.Amount(r.varint())
	for _, s := range eventStrings(e) {
		*s = r.string()
	}
	e.CES, e.Trial, e.Plan = schemas.Absent, false, ""
	if ver >= 2 {
		e.CES, e.Trial = int8(r.byte()), r.byte() == 1
		e.Plan = r.string()
	}
}

func eventStrings(e *schemas.Event) []*string {
	return []*string{&e.EventID, &e.VisitorID, &e.CustomerID, &e.URL, &e.Referrer, &e.UTMSource,
		&e.UTMMedium, &e.UTMCampaign, &e.Device, &e.Country, &e.OrderID, &e.Currency, &e.Props}
}

func appendString[S string | []byte](b []byte, s S) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// reader decodes what the append functions above wrote; the first error
// sticks and later reads return zero values.
type reader struct {
	b   []byte
	err error
}

var errShort = errors.New("state truncated")

func (r *reader) byte() byte {
	if r.err != nil || len(r.b) == 0 {
		r.err = errShort
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if r.err != nil || n <= 0 {
		r.err = errShort
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if r.err != nil || n <= 0 {
		r.err = errShort
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) count() int {
	n := r.uvarint()
	if n > uint64(len(r.b)) { // every element takes at least a byte
		r.err = errShort
		return 0
	}
	return int(n)
}

func (r *reader) uint64() uint64 {
	if r.err != nil || len(r.b) < 8 {
		r.err = errShort
		return 0
	}
	v := binary.LittleEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *reader) string() string {
	n := r.count()
	if r.err != nil {
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// bytes is string without a copy: the result aliases the input.
func (r *reader) bytes() []byte {
	n := r.count()
	if r.err != nil {
		return nil
	}
	b := r.b[:n:n]
	r.b = r.b[n:]
	return b
}

func (r *reader) done() error {
	if r.err == nil && len(r.b) > 0 {
		r.err = fmt.Errorf("%d bytes of state left over", len(r.b))
	}
	return r.err
}
