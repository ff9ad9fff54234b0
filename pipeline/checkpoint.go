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

// checkpointLoop checkpoints every FlushInterval or when enough rows are
// buffered.
func (pl *Pipeline) checkpointLoop(ctx context.Context) error {
	t := time.NewTicker(pl.cfg.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-pl.flushNow:
		}
		if err := pl.checkpoint(nil); err != nil {
			return err
		}
	}
}

// checkpoint cuts the given partitions (all when nil), writes their rows
// and state, and commits their offsets. Nothing is committed before
// the Sink acknowledged the rows and the state that cover it. A failed
// checkpoint loses the cut rows from memory, so it fails every later
// checkpoint too: the member must stop and be restarted from the last
// stored checkpoint.
func (pl *Pipeline) checkpoint(partitions []int32) error {
	pl.cpMu.Lock()
	defer pl.cpMu.Unlock()
	return pl.checkpointLocked(partitions)
}

// checkpointLocked is checkpoint with cpMu held. Owners are stopped only
// with cpMu held too, so the owners it cuts stay alive meanwhile.
func (pl *Pipeline) checkpointLocked(partitions []int32) (err error) {
	if pl.failed != nil {
		return pl.failed
	}
	ctx, cancel := context.WithCancelCause(pl.writeCtx)
	defer func() {
		if cause := context.Cause(ctx); err != nil && cause != nil && cause != context.Canceled {
			err = fmt.Errorf("%v: %w", cause, err)
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
	cuts := make([]cutResult, len(owners))
	for i, o := range owners {
		reply := make(chan cutResult, 1)
		o.in <- ownerMsg{cut: reply}
		cuts[i] = <-reply
	}
	batches := make([]*rows.Batch, len(cuts))
	counted := 0
	for i, c := range cuts {
		batches[i] = c.batch
		counted += c.counted
	}
	defer pl.buffered.Add(-int64(counted))
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
	pl.metrics.checkpointSec.Observe(time.Since(start).Seconds())
	pl.metrics.lastCheckpoint.SetToCurrentTime()
	for i, o := range owners {
		n := 0
		for _, st := range batches[i].State.All() {
			n += len(st.Data)
		}
		pl.metrics.stateBytes.WithLabelValues(strconv.Itoa(int(o.partition))).Set(float64(n))
		pl.metrics.stateWritten.Add(float64(n))
		rows.PutBatch(batches[i])
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
