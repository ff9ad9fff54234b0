package pipeline

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/funnelhouse/funnelhouse/pipeline/rows"
	"github.com/funnelhouse/funnelhouse/schemas"
)

// owner is the goroutine that owns one partition number's Processor.
type owner struct {
	pl           *Pipeline
	partition    int32
	proc         *Processor
	restored     Offsets
	in           chan ownerMsg
	quit         chan struct{} // closed to stop the owner (in is never closed)
	done         chan struct{}
	ends         [2]atomic.Int64
	rows         int   // rows buffered in proc, as counted in pl.buffered
	rowBytes     int64 // their bytes, as counted in pl.bufferedBytes
	drained      atomic.Bool
	published    Stats        // proc's stats as last added to the metrics
	forgetCounts ForgetCounts // and its ForgetCounts
	paused       int          // input whose fetching align paused, or -1
	spillWarned  bool

	// Records fetched but not yet fed to proc, per input: queue[t][head[t]:].
	queue       [2][]*kgo.Record
	head        [2]int
	queuedBytes [2]int64     // of the records in queue
	lastSeen    [2]time.Time // when input t last delivered records
}

type ownerMsg struct {
	topic     schemas.Topic
	records   []*kgo.Record
	cut       chan<- cutResult
	withState bool // cut a checkpoint, not only the rows
}

type cutResult struct {
	batch        *rows.Batch
	offsets      Offsets
	counted      int   // the batch's rows counted in pl.buffered
	countedBytes int64 // and their bytes in pl.bufferedBytes
	stateBytes   int
	err          error // the processor failed: write nothing of this cut
}

func newOwner(pl *Pipeline, p int32, proc *Processor, restored Offsets, quit chan struct{}) *owner {
	o := &owner{pl: pl, partition: p, proc: proc, restored: restored, in: make(chan ownerMsg, 4), quit: quit, done: make(chan struct{})}
	o.published = proc.Stats().clone() // restored counts were published by an earlier owner
	o.paused = -1
	o.lastSeen = [2]time.Time{pl.cfg.Now(), pl.cfg.Now()}
	o.ends[0].Store(-1)
	o.ends[1].Store(-1)
	return o
}

func (o *owner) run() {
	defer close(o.done)
	defer o.proc.Close()
	defer o.publish()
	defer o.resume()
	tick := time.NewTicker(min(o.pl.cfg.Rules.IdleAdvance/4, 250*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-o.quit:
			return
		case m := <-o.in:
			if m.cut != nil {
				// o.rows is current: account runs after every message.
				c := cutResult{counted: o.rows, countedBytes: o.rowBytes, err: o.proc.Err()}
				if m.withState {
					c.batch, c.offsets = o.proc.Cut()
					for _, st := range c.batch.State.All() {
						c.stateBytes += len(st.Data)
					}
				} else {
					c.batch = o.proc.Flush()
				}
				o.rows, o.rowBytes = 0, 0
				m.cut <- c
				if o.proc.ReleasePaused() {
					o.feed(o.pl.cfg.Now()) // the rows are out: release on
					o.account()
				}
				o.publish()
				continue
			}
			o.add(m)
		case <-tick.C:
			for t := range o.ends {
				o.proc.SetEnd(schemas.Topic(t), o.ends[t].Load())
			}
			o.feed(o.pl.cfg.Now()) // an input may have gone idle
			o.publish()
		}
		o.account()
		o.align()
		if drained := o.proc.Drained(); drained != o.drained.Load() {
			o.drained.Store(drained)
			if drained {
				o.pl.checkpointSoon() // so that the stored state says so
			}
		}
	}
}

// align pauses fetching of an input that runs ahead in event time while the
// other input still has unread records (a fetch may return one topic long
// before the other): feed holds the faster one's records back, so they
// would pile up in its queue (or, fed after --idle-advance, as held
// events). Resumed once both halve or the other input has caught up. This
// keeps memory bounded without changing any result.
func (o *owner) align() {
	held, limit := o.proc.Held(), o.pl.heldLimit()
	ahead := o.proc.aheadInput()
	switch {
	case o.paused < 0 && ahead >= 0 && (held > limit || o.queued(ahead) > limit || o.queuedBytes[ahead] > o.pl.budget.queued):
		o.paused = ahead
		o.pl.cl.PauseFetchPartitions(map[string][]int32{o.pl.topics[ahead]: {o.partition}})
	case o.paused >= 0 && (held < limit/2 && o.queued(o.paused) < limit/2 && o.queuedBytes[o.paused] < o.pl.budget.queued/2 || ahead != o.paused):
		o.resume()
	}
}

func (o *owner) resume() {
	if o.paused >= 0 {
		o.pl.cl.ResumeFetchPartitions(map[string][]int32{o.pl.topics[o.paused]: {o.partition}})
		o.paused = -1
	}
}

func (o *owner) publish() {
	o.pl.metrics.publish(o.partition, o.pl.topics, o.proc, &o.published, &o.forgetCounts, o.pl.cfg.Now())
}

// stopping reports whether the owner is being stopped (its partition
// revoked or lost, or the member shutting down): a visitor load cut short
// by it is no failure of the partition, whose state goes anyway.
func (o *owner) stopping() bool {
	select {
	case <-o.quit:
		return true
	default:
		return o.pl.writeCtx.Err() != nil
	}
}

func (o *owner) add(m ownerMsg) {
	now := o.pl.cfg.Now()
	o.queue[m.topic] = append(o.queue[m.topic], m.records...)
	for _, r := range m.records {
		detach(r)
		o.queuedBytes[m.topic] += recordBytes(r)
	}
	o.lastSeen[m.topic] = now
	o.feed(now)
}

// feed gives queued records to the processor in event-time order across
// the two inputs: from the input that is behind, and from the other only
// while the one behind has nothing left to read or has delivered nothing
// for --idle-advance. The watermark follows the slower input, so records
// of the faster one fed early would only wait as held events, and be
// copied into every checkpoint meanwhile. This is watermark alignment at
// the source; the order changes no result, only memory and work.
func (o *owner) feed(now time.Time) {
	for {
		t := o.nextInput(now)
		if t < 0 {
			break
		}
		r := o.queue[t][o.head[t]]
		o.queue[t][o.head[t]] = nil
		o.queuedBytes[t] -= recordBytes(r)
		if o.head[t]++; o.head[t] == len(o.queue[t]) {
			o.queue[t], o.head[t] = o.queue[t][:0], 0
		}
		if r.Attrs.IsControl() {
			o.proc.Skip(schemas.Topic(t), r.Offset)
			continue
		}
		if err := o.proc.Add(schemas.Topic(t), r.Key, r.Value, r.Offset, now); err != nil {
			o.deadLetter(r, err)
		}
	}
	for t := range o.queue {
		if from, first, ok := o.proc.ReplayGap(schemas.Topic(t)); ok {
			o.pl.log.Warn("records of the replay range are gone (the topic's retention is shorter than --lateness + --session-gap?): events held in them are lost",
				"topic", o.pl.topics[t], "partition", o.partition, "from", from, "first_read", first)
		}
	}
	o.proc.Advance(now)
	if err := o.proc.Err(); err != nil && !o.stopping() {
		o.pl.fail(err)
	}
	if err := o.proc.SpillError(); err != nil && !o.spillWarned {
		o.spillWarned = true
		o.pl.log.Warn("cannot spill held events to disk (see --spill-dir): they stay in memory", "partition", o.partition, "err", err)
	}
	for _, r := range o.proc.TakeRejected() {
		o.deadLetter(&kgo.Record{Topic: o.pl.topics[r.Topic], Partition: o.partition, Offset: r.Offset, Key: r.Key, Value: r.Value}, r.Err)
	}
}

// nextInput returns the input to feed a record from, or -1 to wait for
// more. After a restore, the re-read records of both inputs go first: a
// new record must not meet a half-rebuilt state (its duplicate check, or
// the held events it is released with).
func (o *owner) nextInput(now time.Time) int {
	if o.proc.Replaying() >= 0 {
		for t := range o.queue {
			if !o.proc.inputs[t].replaying() || o.queued(t) == 0 {
				continue
			}
			if o.proc.IsReplay(schemas.Topic(t), o.queue[t][o.head[t]].Offset) {
				return t
			}
			o.proc.EndReplay(schemas.Topic(t)) // the range is read (or gone)
		}
		if o.proc.Replaying() >= 0 {
			return -1
		}
	}
	t := o.proc.behindInput()
	if o.queued(t) == 0 {
		if o.waitFor(t, now) {
			return -1
		}
		t = 1 - t
	}
	if o.queued(t) == 0 {
		return -1
	}
	return t
}

func (o *owner) queued(t int) int { return len(o.queue[t]) - o.head[t] }

// detach copies the key and value of a record of an uncompressed batch out
// of the fetch response they point into, so that a queued record does not
// keep the whole response alive (up to the budget's fetchMax): a record of
// a compressed batch points into that batch's decompressed copy instead.
// A producer sends a batch uncompressed when compressing does not shrink
// it, e.g. a batch of one small record: at the largest live heap of a 5M
// bench, 87 MB were fetch responses pinned by a few such records of the
// input held back in its queue (bench/RESULTS.md, "what the live heap
// holds at its largest").
func detach(r *kgo.Record) {
	if r.Attrs.CompressionType() != 0 || len(r.Key)+len(r.Value) == 0 {
		return
	}
	b := make([]byte, len(r.Key)+len(r.Value))
	n := copy(b, r.Key)
	copy(b[n:], r.Value)
	if r.Key != nil { // a null key stays null, for the dead-letter copy
		r.Key = b[:n:n]
	}
	if r.Value != nil {
		r.Value = b[n:]
	}
}

// recordBytes is what a fetched record pins until it is fed.
func recordBytes(r *kgo.Record) int64 { return int64(len(r.Key) + len(r.Value)) }

// waitFor reports whether feeding must wait for more records of input t,
// the input behind in event time: as long as it has unread records, since
// the watermark waits for them anyway (Advance), and the other input's
// records wait better in their queue, where align bounds them, than fed
// and held (decoded, or spilled and decoded again). Only while its end is
// not known yet does it wait no longer than --idle-advance.
//
// Giving up after --idle-advance even with records unread fed the whole
// transactions topic days ahead of the clickstream whenever a fetch of
// the clickstream lagged (the bench runs with 200 ms), and holding them
// cost a quarter of the process's CPU at 5M events (bench/RESULTS.md).
func (o *owner) waitFor(t int, now time.Time) bool {
	end := o.ends[t].Load()
	if end < 0 {
		return now.Sub(o.lastSeen[t]) < o.pl.cfg.Rules.IdleAdvance
	}
	return !caughtUp(o.proc.Next(schemas.Topic(t)), end)
}

// account publishes the change in buffered rows and asks for an early
// checkpoint when a batch is full.
func (o *owner) account() {
	n, bytes := o.proc.Rows(), o.proc.RowBytes()
	if n == o.rows && bytes == o.rowBytes {
		return
	}
	rows := o.pl.buffered.Add(int64(n - o.rows))
	all := o.pl.bufferedBytes.Add(bytes - o.rowBytes)
	o.rows, o.rowBytes = n, bytes
	if rows >= int64(o.pl.cfg.BatchRows) || all >= o.pl.budget.rowBytes/2 || o.proc.ReleasePaused() {
		select {
		case o.pl.flushNow <- struct{}{}:
		default:
		}
	}
}

// deadLetter produces the record to the dead-letter topic with headers
// saying why and where it came from (cut to fit; see deadLetter).
func (o *owner) deadLetter(r *kgo.Record, err *schemas.Error) {
	o.pl.cl.Produce(context.Background(), deadLetter(o.pl.cfg.DLQTopic, r, err), func(_ *kgo.Record, err error) {
		if err != nil {
			o.pl.dlqErr.CompareAndSwap(nil, &err)
		}
	})
}
