package pipeline

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/funnelhouse/funnelhouse/pipeline/rows"
)

// checkpointLoop flushes rows every FlushInterval or when enough rows are
// buffered, and checkpoints every CheckpointInterval.
func (pl *Pipeline) checkpointLoop(ctx context.Context) error {
	flush := time.NewTicker(pl.cfg.FlushInterval)
	defer flush.Stop()
	state := time.NewTicker(pl.cfg.CheckpointInterval)
	defer state.Stop()
	for {
		withState := false
		select {
		case <-ctx.Done():
			return nil
		case <-flush.C:
		case <-pl.flushNow:
		case <-state.C:
			withState = true
		case <-pl.checkpointNow:
			withState = true
		}
		if err := pl.write(nil, withState); err != nil {
			return err
		}
	}
}

// checkpointSoon asks for a checkpoint without waiting for the interval.
func (pl *Pipeline) checkpointSoon() {
	select {
	case pl.checkpointNow <- struct{}{}:
	default:
	}
}

// write cuts the given partitions (all when nil) and writes their rows,
// and with withState their state, committing their offsets after it.
// Nothing is committed before the Sink acknowledged the rows and the state
// that cover it. A failed write loses the cut rows from memory, so it
// fails every later one too: the member must stop and be restarted from
// the last stored checkpoint.
func (pl *Pipeline) write(partitions []int32, withState bool) error {
	pl.cpMu.Lock()
	defer pl.cpMu.Unlock()
	return pl.writeLocked(partitions, withState)
}

// checkpointLocked writes the rows and state of the given partitions and
// commits their offsets, with cpMu held.
func (pl *Pipeline) checkpointLocked(partitions []int32) error {
	return pl.writeLocked(partitions, true)
}

// writeLocked is write with cpMu held. Owners are stopped only with cpMu
// held too, so the owners it cuts stay alive meanwhile.
func (pl *Pipeline) writeLocked(partitions []int32, withState bool) (err error) {
	if pl.failed != nil {
		return pl.failed
	}
	ctx, cancel := context.WithCancelCause(pl.writeCtx)
	defer func() {
		if cause := context.Cause(ctx); err != nil && cause != nil && cause != context.Canceled {
			err = fmt.Errorf("%w: %w", cause, err)
		}
		if err != nil {
			pl.failed = err
		}
	}()
	defer cancel(nil)
	pl.inflight.Store(&cancel)
	defer pl.inflight.Store(nil)
	owners := pl.ownersOf(partitions)
	if len(owners) == 0 {
		return nil
	}
	cuts := make([]cutResult, 0, len(owners))
	defer func() {
		for _, c := range cuts {
			pl.buffered.Add(-int64(c.counted))
			pl.bufferedBytes.Add(-c.countedBytes)
		}
	}()
	for _, o := range owners {
		// An owner waiting for ClickHouse (a visitor load) answers late;
		// a cancelled write (revoke timeout, lost partitions) stops waiting.
		reply := make(chan cutResult, 1)
		select {
		case o.in <- ownerMsg{cut: reply, withState: withState}:
		case <-ctx.Done():
			return fmt.Errorf("partition %d did not take the cut", o.partition) // the deferred wrap adds why
		}
		select {
		case c := <-reply:
			cuts = append(cuts, c)
		case <-ctx.Done():
			return fmt.Errorf("partition %d did not answer the cut", o.partition)
		}
	}
	batches := make([]*rows.Batch, len(cuts))
	for i, c := range cuts {
		batches[i] = c.batch
	}
	for _, c := range cuts {
		if c.err != nil {
			return c.err // its rows and state may be wrong: write none of this cut
		}
	}
	// Dead letters are written before the state that says they were handled.
	if err := pl.cl.Flush(ctx); err != nil {
		return fmt.Errorf("cannot flush dead-letter records: %w", err)
	}
	if err := pl.dlqErr.Load(); err != nil {
		return fieldWrap(*err, "cannot write to DLQTopic %q", pl.cfg.DLQTopic)
	}
	start := time.Now()
	if err := pl.sink.Write(ctx, batches); err != nil {
		return err
	}
	for _, b := range batches {
		rows.PutBatch(b)
	}
	if !withState {
		pl.metrics.flushSec.Observe(time.Since(start).Seconds())
		return nil
	}
	pl.metrics.checkpointSec.Observe(time.Since(start).Seconds())
	pl.metrics.lastCheckpoint.SetToCurrentTime()
	for i, o := range owners {
		pl.metrics.stateBytes.WithLabelValues(strconv.Itoa(int(o.partition))).Set(float64(cuts[i].stateBytes))
		pl.metrics.stateWritten.Add(float64(cuts[i].stateBytes))
	}
	start = time.Now()
	commit := map[string]map[int32]kgo.EpochOffset{}
	for i, o := range owners {
		for t, next := range cuts[i].offsets {
			if next < 0 {
				continue
			}
			topic := pl.topics[t]
			if commit[topic] == nil {
				commit[topic] = map[int32]kgo.EpochOffset{}
			}
			commit[topic][o.partition] = kgo.EpochOffset{Epoch: -1, Offset: next}
		}
	}
	var commitErr error
	pl.cl.CommitOffsetsSync(ctx, commit, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		commitErr = err
		if resp == nil { // the request failed as a whole (err says why)
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil && commitErr == nil {
					commitErr = fmt.Errorf("%s[%d]: %w", t.Topic, p.Partition, err)
				}
			}
		}
	})
	pl.metrics.commitSec.Observe(time.Since(start).Seconds())
	if isFatalGroupError(commitErr) {
		// Another member owns the partitions now; it restored from a
		// checkpoint and must not be overwritten by this one's next.
		pl.failGroup(commitErr)
		return *pl.fatal.Load()
	}
	if commitErr != nil {
		// Not fatal: the stored state holds the offsets, and a
		// restarted member resumes from there (see adjustOffsets).
		pl.log.Warn("offset commit failed", "err", commitErr)
	}
	return nil
}

func (pl *Pipeline) ownersOf(partitions []int32) []*owner {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	var out []*owner
	if partitions == nil {
		for _, o := range pl.owners {
			out = append(out, o)
		}
	} else {
		for _, p := range partitions {
			if o := pl.owners[p]; o != nil {
				out = append(out, o)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].partition < out[j].partition })
	return out
}
