package status

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/funnelhouse/funnelhouse/pipeline"
	"github.com/funnelhouse/funnelhouse/pipeline/rows"
)

// Checkpoint is what a partition's stored state holds, and whether a
// member can restore it.
type Checkpoint struct {
	Partition  int32
	Epoch      uint64 // 0 when there is no checkpoint row
	WrittenAt  time.Time
	Visitors   int
	StateBytes int
	Offsets    pipeline.Offsets // where a restore starts reading (its replay range)
	Stats      pipeline.Stats   // the counters up to the checkpoint
	RestoreErr error            // why a member cannot restore it; nil when it can
}

// ReadCheckpoint reads a partition's newest state rows, as a member would
// restore them, and restores them into a throwaway processor.
func ReadCheckpoint(ctx context.Context, conn driver.Conn, db, group string, partition int32) (*Checkpoint, error) {
	q, err := conn.Query(ctx, "SELECT toInt8(kind), key, epoch, data, written_at FROM "+db+
		".pipeline_state FINAL WHERE consumer_group = ? AND kafka_partition = ?", group, partition)
	if err != nil {
		return nil, fmt.Errorf("cannot read the state of partition %d: %w", partition, err)
	}
	defer q.Close()
	c := &Checkpoint{Partition: partition}
	var state []rows.State
	for q.Next() {
		var r rows.State
		var kind int8
		var written time.Time
		if err := q.Scan(&kind, &r.Key, &r.Epoch, &r.Data, &written); err != nil {
			return nil, err
		}
		r.Kind = rows.StateKind(kind)
		c.StateBytes += len(r.Data)
		if r.Kind == rows.StateCheckpoint {
			c.Epoch, c.WrittenAt = r.Epoch, written
			c.Stats, c.RestoreErr = pipeline.CheckpointStats([]byte(r.Data))
		} else {
			c.Visitors++
		}
		state = append(state, r)
	}
	if err := q.Err(); err != nil {
		return nil, err
	}
	if c.RestoreErr == nil {
		p := pipeline.NewProcessor(group, partition, [2]string{"", ""}, pipeline.DefaultRules(), time.Now)
		c.Offsets, c.RestoreErr = p.Restore(state)
	}
	return c, nil
}

// WriteText describes the checkpoint for an operator.
func (c *Checkpoint) WriteText(w io.Writer) {
	if c.Epoch == 0 && c.Visitors == 0 {
		fmt.Fprintf(w, "partition %d: no stored state (a member starts it from the earliest records)\n", c.Partition)
		return
	}
	fmt.Fprintf(w, "partition %d: checkpoint epoch %d, written %s; %d visitor rows; %d bytes of state\n",
		c.Partition, c.Epoch, c.WrittenAt.UTC().Format(time.RFC3339), c.Visitors, c.StateBytes)
	if c.RestoreErr != nil {
		fmt.Fprintf(w, "restore: FAILS: %v\n", c.RestoreErr)
		return
	}
	fmt.Fprintf(w, "restore: ok; reads again from offsets %d (clickstream) and %d (transactions), rebuilding held events and recent ids; %d records, %d held events so far\n",
		c.Offsets[0], c.Offsets[1], c.Stats.Records[0]+c.Stats.Records[1], c.Stats.Held)
}

// DiscardCheckpoint deletes every state row of a partition and waits for
// the deletion (an ALTER … DELETE mutation) to finish. The group's members
// must be stopped: a running owner writes the state again.
func DiscardCheckpoint(ctx context.Context, conn driver.Conn, db, group string, partition int32) error {
	if err := conn.Exec(ctx, "ALTER TABLE "+db+".pipeline_state DELETE WHERE consumer_group = ? AND kafka_partition = ?", group, partition); err != nil {
		return fmt.Errorf("cannot delete the state of partition %d: %w", partition, err)
	}
	for {
		var pending uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM system.mutations WHERE database = ? AND table = 'pipeline_state' AND is_done = 0", db).Scan(&pending); err != nil {
			return err
		}
		if pending == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the deletion of partition %d's state has not finished: %w", partition, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
