package clickhouse

// pipeline_state on a cluster: one replica per shard, written and read.
//
// Replication is asynchronous: a row inserted on one replica reaches the
// shard's other replicas a little later (seconds, when the servers are
// busy). A read through the Distributed table goes to any replica of each
// shard, so a checkpoint or a forgotten visitor read back there may be one
// that was overwritten: make test-cluster saw a returning visitor loaded
// from a lagging replica taken for a new one (6 transitions too many).
// So the sink writes and reads pipeline_state on the shard's current
// replica only (the one direct inserts use, which changes only when it
// fails), and makes a replica fetch every part logged for the shard
// (SYSTEM SYNC REPLICA) before it reads from it when it became current
// after the last reads, and before every restore, since the partition's
// previous owner, another process, may have written on another replica.
// A replica that died holding parts not yet fetched makes the reads wait
// until it is back: the alternative is reading stale state.

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/funnelhouse/funnelhouse/pipeline/rows"
)

// statePartition names one consumer group's partition.
type statePartition struct {
	group     string
	partition int32
}

// stateShard is the index of the shard that holds the state of a group's
// partition: the Distributed table's sharding expression, computed by
// ClickHouse once per partition.
func (s *Sink) stateShard(ctx context.Context, group string, partition int32) (int, error) {
	k := statePartition{group, partition}
	s.stateMu.Lock()
	h, ok := s.stateHashes[k]
	s.stateMu.Unlock()
	if !ok {
		q := "SELECT toUInt64(" + s.router.stateKey + ") FROM (SELECT ? AS consumer_group, toInt32(?) AS kafka_partition)"
		if err := s.conn.QueryRow(ctx, q, group, partition).Scan(&h); err != nil {
			return 0, fmt.Errorf("cannot compute the shard of partition %d's state (%s): %w", partition, s.router.stateKey, err)
		}
		s.stateMu.Lock()
		if s.stateHashes == nil {
			s.stateHashes = map[statePartition]uint64{}
		}
		s.stateHashes[k] = h
		s.stateMu.Unlock()
	}
	return s.router.shardOf(h), nil
}

// insertState inserts t's (pipeline_state's) rows of the batches into
// their shards' current replicas.
func (s *Sink) insertState(ctx context.Context, t rows.AnyTable, batches []*rows.Batch, buf *rows.Buffers) error {
	names := t.ColumnNames()
	groups := t.Values(slices.Index(names, "consumer_group"), batches, buf).([]string)
	partitions := t.Values(slices.Index(names, "kafka_partition"), batches, buf).([]int32)
	shards := make([]int, len(groups))
	wait := s.cfg.BackoffMin
	for j := range groups {
		sh, err := s.stateShard(ctx, groups[j], partitions[j])
		for err != nil { // ClickHouse is away: as a failed insert
			s.log.Warn("insert failed, retrying", "table", t.TableName(), "retry_in", wait, "err", err)
			select {
			case <-ctx.Done():
				return fmt.Errorf("cannot insert into %s: %w", t.TableName(), ctx.Err())
			case <-time.After(wait):
			}
			wait = min(2*wait, s.cfg.BackoffMax)
			sh, err = s.stateShard(ctx, groups[j], partitions[j])
		}
		shards[j] = sh
	}
	return s.insertDirect(ctx, t, s.split(t, batches, shards, buf), s.router.stateLocal)
}

// stateSource is where a group's partition's state is read: the server and
// table. On a cluster, that is the shard's current replica, synced when
// restoring (every time) or when it was not synced since it became current.
// When restoring, the state inserts in flight on that server end first.
func (s *Sink) stateSource(ctx context.Context, group string, partition int32, restoring bool) (driver.Conn, string, error) {
	if s.router == nil {
		if restoring {
			if err := s.drainStateInserts(ctx, s.conn); err != nil {
				return nil, "", err
			}
		}
		return s.conn, rows.StateTable.Name, nil
	}
	i, err := s.stateShard(ctx, group, partition)
	if err != nil {
		return nil, "", err
	}
	c, addr, err := s.router.conn(ctx, i)
	if err == nil && restoring {
		err = s.drainStateInserts(ctx, c)
	}
	if err == nil && (restoring || !s.router.synced(i, addr)) {
		start := time.Now()
		if err = c.Exec(ctx, "SYSTEM SYNC REPLICA "+s.db+"."+s.router.stateLocal); err == nil {
			s.router.markSynced(i, addr)
			if d := time.Since(start); d > time.Second {
				s.log.Info("waited for a replica to fetch the state written on the others", "replica", addr, "partition", partition, "waited", d.Round(time.Millisecond))
			}
		}
	}
	if err != nil && ctx.Err() == nil {
		next := s.router.failover(i, addr)
		return nil, "", fmt.Errorf("replica %s of shard %d (next try on %s): %w", addr, s.router.shards[i].num, next, err)
	}
	if err != nil {
		return nil, "", err
	}
	return c, s.router.stateLocal, nil
}

// synced reports whether shard i's current replica is a and was synced
// since it became current.
func (r *router) synced(i int, a replicaAddr) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	sh := r.shards[i]
	return sh.replicas[sh.cur] == a && sh.stateSynced
}

// markSynced records that replica a of shard i was synced, if it is still
// the current one.
func (r *router) markSynced(i int, a replicaAddr) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if sh := r.shards[i]; sh.replicas[sh.cur] == a {
		sh.stateSynced = true
	}
}
