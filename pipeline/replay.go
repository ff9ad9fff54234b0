package pipeline

import "github.com/funnelhouse/funnelhouse/schemas"

// After a restore, each input re-reads the records from its checkpoint's
// replayFrom up to its next offset: the records whose ids are still live
// and whose events may still be held. The checkpoint stays small and of
// a size that does not grow with rate × lateness (the records are in
// Kafka already), at the price of re-reading them at a restore.
//
// A replayed record is not counted, not dead-lettered and not written
// again: it only rebuilds the dedup ids and, when the watermark has not
// passed it, the held event. Until both inputs have replayed, Advance
// does nothing and the owner feeds no new record, so that the state is
// whole before anything moves it.

// replaying reports whether input t is still re-reading its range.
func (in *input) replaying() bool { return in.replayUntil > 0 }

// Replaying returns an input still re-reading its range, or -1.
func (p *Processor) Replaying() int {
	for t := range p.inputs {
		if p.inputs[t].replaying() {
			return t
		}
	}
	return -1
}

// IsReplay reports whether the record at offset of input t is re-read
// state rather than a new record.
func (p *Processor) IsReplay(t schemas.Topic, offset int64) bool {
	return p.inputs[t].replaying() && offset < p.inputs[t].replayUntil
}

// ReplayGap returns, once, the first offset of input t's replay range and
// that of the first record read in it, when records at the start of the
// range were gone (deleted by retention): their held events are lost.
func (p *Processor) ReplayGap(t schemas.Topic) (from, first int64, ok bool) {
	in := &p.inputs[t]
	from, first, ok = in.replayFrom, in.replayFirst, in.replayFirst > in.replayFrom && in.replayFrom >= 0
	if ok {
		in.replayFrom = -1
	}
	return from, first, ok
}

// replay rebuilds the state of one re-read record.
func (p *Processor) replay(t schemas.Topic, key, value []byte, offset int64) {
	defer p.endReplayAt(t, offset)
	if p.skipReplayed(t, offset) {
		return
	}
	slot, h := p.pending.slot()
	h.topic, h.offset = t, offset
	if p.decoder.Decode(t, key, value, &h.ev) != nil || !p.seen.add(t, h.ev.VisitorID, h.ev.EventID, h.ev.TsMs, offset, p.watermark) || h.ev.TsMs < p.watermark {
		p.pending.release(slot) // dead-lettered, a duplicate, or processed
		return
	}
	p.hold(slot, h, key, value)
}

// skipReplayed reports whether offset is on the input's skip list, and
// carries it over to the next checkpoint's.
func (p *Processor) skipReplayed(t schemas.Topic, offset int64) bool {
	in := &p.inputs[t]
	for len(in.replaySkips) > 0 && in.replaySkips[0] < offset {
		in.replaySkips = in.replaySkips[1:]
	}
	if len(in.replaySkips) == 0 || in.replaySkips[0] != offset {
		return false
	}
	in.replaySkips = in.replaySkips[1:]
	p.seen.skips[t] = append(p.seen.skips[t], offset)
	return true
}

// EndReplay ends input t's replay: its next record is a new one.
func (p *Processor) EndReplay(t schemas.Topic) { p.endReplayAt(t, p.inputs[t].replayUntil) }

// endReplayAt ends input t's replay once offset is its last re-read one,
// or beyond it (the records up to it are gone: see docs/operations.md).
func (p *Processor) endReplayAt(t schemas.Topic, offset int64) {
	in := &p.inputs[t]
	if !in.replaying() {
		return
	}
	if in.replayFirst < 0 {
		in.replayFirst = offset
	}
	if offset+1 >= in.replayUntil {
		in.replayUntil, in.replaySkips = 0, nil
		if p.Replaying() < 0 {
			p.replayCheckpoint = nil
		}
	}
}
