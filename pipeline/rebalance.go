package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/funnelhouse/funnelhouse/pipeline/rows"
)

// partitionsOf returns the partition numbers of an assignment, once each.
func partitionsOf(assigned map[string][]int32) []int32 {
	seen := map[int32]bool{}
	var out []int32
	for _, ps := range assigned {
		for _, p := range ps {
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// onAssigned restores each newly assigned partition from its checkpoint
// and starts its owner.
func (pl *Pipeline) onAssigned(ctx context.Context, cl *kgo.Client, assigned map[string][]int32) {
	for _, p := range partitionsOf(assigned) {
		pl.mu.Lock()
		exists := pl.owners[p] != nil
		pl.mu.Unlock()
		if exists {
			continue
		}
		start := time.Now()
		proc := NewProcessor(pl.cfg.Group, p, pl.topics, pl.cfg.Rules, pl.cfg.Now)
		_, generation := cl.GroupMetadata()
		proc.SetGeneration(generation)
		proc.SpillTo(pl.cfg.SpillDir)
		proc.limitMemory(pl.budget)
		quit := make(chan struct{})
		proc.ForgetTo(pl.visitorLoader(p, quit))
		rows, err := pl.sink.LoadState(ctx, pl.cfg.Group, p)
		for err != nil && ctx.Err() == nil {
			pl.log.Warn("cannot load partition state, retrying", "partition", p, "err", err)
			time.Sleep(time.Second)
			rows, err = pl.sink.LoadState(ctx, pl.cfg.Group, p)
		}
		if err != nil {
			return
		}
		off, err := proc.Restore(rows)
		if err != nil {
			// A corrupt checkpoint must not be silently replaced by an
			// empty state, nor leave the partition assigned and unread:
			// the member stops and says how to look at it.
			pl.failRestore(p, rows, err)
			return
		}
		// Logged before the owner runs: from then on proc is its alone.
		// The offsets say which records the restore re-reads (see replay.go).
		pl.log.Info("partition assigned", "partition", p, "visitors", proc.Visitors(), "visitors_forgotten", proc.ForgottenIDs(), "epoch", proc.Epoch(),
			"read_from", off, "next", Offsets{proc.Next(0), proc.Next(1)}, "watermark", proc.Watermark(), "restore", time.Since(start).Round(time.Millisecond))
		o := newOwner(pl, p, proc, off, quit)
		pl.mu.Lock()
		pl.owners[p] = o
		pl.mu.Unlock()
		go o.run()
	}
	pl.assigned.Store(true)
}

// adjustOffsets starts each input where its checkpoint ends, whatever the
// group's committed offsets say: the checkpoint is written before the
// commit, so it is never behind. Without a checkpoint, from the start.
func (pl *Pipeline) adjustOffsets(_ context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	for topic, ps := range offsets {
		t := pl.topicOf(topic)
		for p := range ps {
			next := int64(-1)
			if o := pl.owners[p]; o != nil {
				next = o.restored[t]
			}
			if next >= 0 {
				ps[p] = kgo.NewOffset().At(next).WithEpoch(-1)
			} else {
				ps[p] = kgo.NewOffset().AtStart()
			}
		}
	}
	return offsets, nil
}

// onRevoked checkpoints the revoked partitions, then stops their owners.
func (pl *Pipeline) onRevoked(ctx context.Context, _ *kgo.Client, revoked map[string][]int32) {
	ps := partitionsOf(revoked)
	// A revoke that outlasts the rebalance gets this member dropped from
	// the group and its partitions handed over: its checkpoint, landing
	// later, would mix with the new owner's. Give up on it before that.
	giveUp := time.AfterFunc(revokeTimeout, func() { pl.cancelWrite(errRevokeTimeout) })
	defer giveUp.Stop()
	pl.cpMu.Lock()
	defer pl.cpMu.Unlock()
	if err := pl.checkpointLocked(ps); err != nil {
		pl.log.Error("cannot checkpoint revoked partitions; the next owner replays them", "partitions", ps, "err", err)
	}
	pl.stopOwnersLocked(ps)
}

// onLost drops owners without a checkpoint: another member may own the
// partitions already, and it resumes from the last checkpoint. A
// checkpoint being written (retrying while ClickHouse is down) is
// cancelled: landing after the new owner restored, its state would mix
// with the new owner's. The member then fails and restarts from the last
// stored checkpoint.
func (pl *Pipeline) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	pl.cancelWrite(errPartitionsLost)
	pl.stopOwners(partitionsOf(lost))
}

var (
	errPartitionsLost = errors.New("partitions lost to another member while their checkpoint was being written")
	// errPartitionMoved: ClickHouse holds state of a later owner of a
	// partition this member still processes, before the group has told it
	// of the move. Like a lost checkpoint, the member stops and restarts.
	errPartitionMoved = errors.New("the partition has moved to another member")
	errRevokeTimeout  = fmt.Errorf("the checkpoint of revoked partitions took longer than %s, near the rebalance timeout", revokeTimeout)
)

// revokeTimeout bounds the checkpoint of revoked partitions, below
// franz-go's default rebalance timeout (60 s).
const revokeTimeout = 40 * time.Second

// cancelWrite cancels the checkpoint being written, if any.
func (pl *Pipeline) cancelWrite(cause error) {
	if c := pl.inflight.Load(); c != nil {
		(*c)(cause)
	}
}

func (pl *Pipeline) stopOwners(partitions []int32) {
	pl.cpMu.Lock()
	defer pl.cpMu.Unlock()
	pl.stopOwnersLocked(partitions)
}

// stopOwnersLocked stops owners with cpMu held: no checkpoint is then
// cutting them.
func (pl *Pipeline) stopOwnersLocked(partitions []int32) {
	for _, o := range pl.ownersOf(partitions) {
		pl.mu.Lock()
		delete(pl.owners, o.partition)
		pl.mu.Unlock()
		close(o.quit)
		<-o.done
		pl.buffered.Add(-int64(o.rows))
		pl.bufferedBytes.Add(-o.rowBytes)
		pl.mu.Lock()
		pl.totals.Add(o.proc.Stats())
		pl.mu.Unlock()
		pl.metrics.forget(o.partition, pl.topics)
		c := o.proc.ForgetCounts()
		pl.log.Info("partition released", "partition", o.partition, "visitors", o.proc.Visitors(),
			"epoch", o.proc.Epoch(), "next", Offsets{o.proc.Next(0), o.proc.Next(1)}, "visitors_forgotten", c.Forgotten, "visitors_reloaded", c.Reloaded, "visitor_lookups", c.Lookups)
	}
	pl.mu.Lock()
	if len(pl.owners) == 0 {
		pl.assigned.Store(false)
	}
	pl.mu.Unlock()
}

// failRestore ends the member on a checkpoint it cannot restore, naming the
// partition, the epoch and the operator's commands.
func (pl *Pipeline) failRestore(p int32, state []rows.State, err error) {
	var epoch uint64
	for _, r := range state {
		if r.Kind == rows.StateCheckpoint {
			epoch = r.Epoch
		}
	}
	err = fmt.Errorf("partition %d: cannot restore its checkpoint of epoch %d: %w; inspect it with `funnelhouse checkpoint show --partition %d`, "+
		"or discard the partition's state with `funnelhouse checkpoint discard --partition %d` (it is then rebuilt from the earliest records the topics hold)", p, epoch, err, p, p)
	pl.fail(err)
}

// fail stops the member on an error no retry mends; Run returns it.
func (pl *Pipeline) fail(err error) {
	if pl.fatal.CompareAndSwap(nil, &err) {
		pl.log.Error("stopping", "err", err)
		pl.stopPoll()
	}
}

// visitorLoader loads forgotten visitors of partition p back, retrying
// while ClickHouse fails (the partition waits meanwhile, as a checkpoint
// would) until the member stops or the partition's owner is stopped
// (quit closed).
func (pl *Pipeline) visitorLoader(p int32, quit <-chan struct{}) VisitorLoader {
	return func(ids []string) ([]rows.State, error) {
		ctx, cancel := context.WithCancel(pl.writeCtx)
		defer cancel()
		go func() {
			select {
			case <-quit:
				cancel()
			case <-ctx.Done():
			}
		}()
		for {
			state, err := pl.sink.LoadVisitors(ctx, pl.cfg.Group, p, ids)
			if err == nil || ctx.Err() != nil {
				return state, err
			}
			pl.log.Warn("cannot load forgotten visitors back, retrying", "partition", p, "visitors", len(ids), "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}
