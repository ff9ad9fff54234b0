package clickhouse

// Direct inserts into the shards' local tables (--cluster-insert direct).
//
// On a database migrated with `migrate --cluster`, the tables the pipeline
// writes are Distributed tables over Replicated* local tables, sharded by
// cityHash64(visitor_id) (sql/cluster.go). The sink can insert either
// through the Distributed tables with insert_distributed_sync=1 (the server
// it reaches splits each block by the sharding key and forwards each part
// to one replica of its shard, and answers once every part is written), or
// split each batch itself, exactly as the Distributed table would, and
// insert each part into its shard's local table on one replica of the
// shard (direct). Both write the same rows into the same blocks of the same
// shards.
//
// Retries: an insert whose answer was lost (connection dropped, server
// killed after it wrote) is sent again, with the same rows in the same
// order: each shard's part is the same block, so the Replicated engine's
// block deduplication (the block's hash is kept in ZooKeeper for the
// shard, whichever replica received it) drops the copy. In direct mode a
// failed part is retried on the shard's next replica, and only the parts
// that failed are sent again.
//
// pipeline_state, sharded by consumer group and partition, is written and
// read on one replica of its shard in both modes (clusterstate.go).

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/go-faster/city"

	"github.com/funnelhouse/funnelhouse/pipeline/rows"
	"github.com/funnelhouse/funnelhouse/schemas"
)

// Cluster insert modes (Config.ClusterInsert, --cluster-insert).
const (
	// InsertDirect splits each batch by the sharding key and inserts into
	// the shards' local tables, one replica per shard, failing over to the
	// shard's other replicas.
	InsertDirect = "direct"
	// InsertDistributed inserts through the Distributed tables with
	// insert_distributed_sync=1.
	InsertDistributed = "distributed"
	// DefaultClusterInsert is the mode used when none is given
	// (bench/RESULTS.md, "ClickHouse cluster: direct or distributed
	// inserts").
	DefaultClusterInsert = InsertDirect
)

// ClusterInsertModes are the valid values of Config.ClusterInsert.
var ClusterInsertModes = []string{InsertDirect, InsertDistributed}

// VisitorShardingKey is the sharding expression of the tables direct mode
// splits; the sink computes it as ShardHash.
const VisitorShardingKey = "cityHash64(visitor_id)"

// ShardHash is ClickHouse's cityHash64 of a String: CityHash64 v1.0.2 of its
// bytes (github.com/go-faster/city's CH64).
func ShardHash(s string) uint64 {
	return city.CH64([]byte(s))
}

// distributedEngineRe parses a Distributed table's engine_full.
var distributedEngineRe = regexp.MustCompile(`^Distributed\(\s*'?(\w+)'?\s*,\s*'?(\w+)'?\s*,\s*'?(\w+)'?\s*,\s*(.+)\)$`)

// replicaAddr is one replica of a shard, as system.clusters lists it.
type replicaAddr struct {
	host string
	port uint16
}

func (r replicaAddr) String() string { return fmt.Sprintf("%s:%d", r.host, r.port) }

// shard is one shard's replicas and the connection in use.
type shard struct {
	num      uint32
	replicas []replicaAddr
	cur      int // the replica inserts go to
	conns    []driver.Conn
	// stateSynced: the current replica has fetched every part of
	// pipeline_state that was logged before it became current.
	stateSynced bool
}

// router places rows on shards the way the Distributed tables do.
type router struct {
	cluster string
	shards  []*shard
	// slots maps hash % len(slots) to a shard index: each shard
	// repeated as many times as its weight, in the cluster's order
	// (ClickHouse's Cluster::slot_to_shard).
	slots []int
	// local holds, for each table inserted directly, its local table.
	local map[string]string
	// stateLocal is pipeline_state's local table, stateKey the
	// Distributed table's sharding expression over its columns.
	stateLocal, stateKey string
	dial                 func(ctx context.Context, host string, port uint16) (driver.Conn, error)
	mu                   sync.Mutex // guards the shards' cur and conns
}

// shardOf is the index of the shard of a row whose sharding key hashes to h.
func (r *router) shardOf(h uint64) int {
	return r.slots[h%uint64(len(r.slots))]
}

// newRouter reads the Distributed tables of db and the cluster they use,
// and returns a router for pipeline_state and, when direct, for the tables
// of tables that are sharded by VisitorShardingKey and have a visitor_id
// column. Direct, it fails when no such table exists.
func newRouter(ctx context.Context, conn driver.Conn, db string, tables []rows.AnyTable, direct bool, dial func(ctx context.Context, host string, port uint16) (driver.Conn, error)) (*router, error) {
	r := &router{local: map[string]string{}, dial: dial}
	for _, t := range tables {
		var engine string
		if err := conn.QueryRow(ctx, "SELECT engine_full FROM system.tables WHERE database = ? AND name = ?", db, t.TableName()).Scan(&engine); err != nil {
			return nil, fmt.Errorf("cannot read the engine of %s.%s: %w", db, t.TableName(), err)
		}
		g := distributedEngineRe.FindStringSubmatch(strings.TrimSpace(engine))
		if g == nil {
			return nil, fmt.Errorf("%s.%s is not a Distributed table (%s)", db, t.TableName(), engine)
		}
		if r.cluster != "" && g[1] != r.cluster {
			return nil, fmt.Errorf("%s.%s is on cluster %s, others on %s", db, t.TableName(), g[1], r.cluster)
		}
		r.cluster = g[1]
		if t.TableName() == rows.StateTable.Name && g[2] == db {
			r.stateLocal, r.stateKey = g[3], g[4]
			continue
		}
		if !direct || g[2] != db || strings.ReplaceAll(g[4], " ", "") != VisitorShardingKey || !hasColumn(t, "visitor_id") {
			continue // through the Distributed table
		}
		r.local[t.TableName()] = g[3]
	}
	if direct && len(r.local) == 0 {
		return nil, fmt.Errorf("no table of %s is sharded by %s", db, VisitorShardingKey)
	}
	if r.stateLocal == "" {
		return nil, fmt.Errorf("%s.%s is not a Distributed table over a table of %s", db, rows.StateTable.Name, db)
	}
	res, err := conn.Query(ctx, "SELECT shard_num, shard_weight, host_name, port FROM system.clusters WHERE cluster = ? ORDER BY shard_num, replica_num", r.cluster)
	if err != nil {
		return nil, fmt.Errorf("cannot read cluster %s from system.clusters: %w", r.cluster, err)
	}
	defer res.Close()
	for res.Next() {
		var num, weight uint32
		var a replicaAddr
		if err := res.Scan(&num, &weight, &a.host, &a.port); err != nil {
			return nil, err
		}
		if n := len(r.shards); n == 0 || r.shards[n-1].num != num {
			r.shards = append(r.shards, &shard{num: num})
			for range weight {
				r.slots = append(r.slots, len(r.shards)-1)
			}
		}
		sh := r.shards[len(r.shards)-1]
		sh.replicas = append(sh.replicas, a)
		sh.conns = append(sh.conns, nil)
	}
	if err := res.Err(); err != nil {
		return nil, err
	}
	if len(r.slots) == 0 {
		return nil, fmt.Errorf("cluster %s has no shard of weight > 0 in system.clusters", r.cluster)
	}
	return r, nil
}

func hasColumn(t rows.AnyTable, name string) bool {
	for _, c := range t.ColumnNames() {
		if c == name {
			return true
		}
	}
	return false
}

// conn returns the connection to shard i's current replica, dialing it
// when needed.
func (r *router) conn(ctx context.Context, i int) (driver.Conn, replicaAddr, error) {
	r.mu.Lock()
	sh := r.shards[i]
	cur := sh.cur
	c, a := sh.conns[cur], sh.replicas[cur]
	r.mu.Unlock()
	if c != nil {
		return c, a, nil
	}
	c, err := r.dial(ctx, a.host, a.port)
	if err != nil {
		return nil, a, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if sh.conns[cur] != nil { // dialed meanwhile
		c.Close()
		return sh.conns[cur], a, nil
	}
	sh.conns[cur] = c
	return c, a, nil
}

// failover moves shard i's inserts to its next replica after a failure on
// replica addr (unless another goroutine moved them already), and drops
// the failed replica's connection.
func (r *router) failover(i int, failed replicaAddr) (next replicaAddr) {
	r.mu.Lock()
	defer r.mu.Unlock()
	sh := r.shards[i]
	if sh.replicas[sh.cur] == failed {
		if c := sh.conns[sh.cur]; c != nil {
			c.Close()
			sh.conns[sh.cur] = nil
		}
		sh.cur = (sh.cur + 1) % len(sh.replicas)
		sh.stateSynced = false
	}
	return sh.replicas[sh.cur]
}

func (r *router) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, sh := range r.shards {
		for i, c := range sh.conns {
			if c != nil {
				c.Close()
				sh.conns[i] = nil
			}
		}
	}
}

// shardPart is the rows of one table for one shard: the columns in insert
// order, as the driver takes them.
type shardPart struct {
	shard   int
	rows    int
	columns []any
}

// visitorShards is the shard index of each of t's rows in the batches, by
// the visitor_id column.
func (s *Sink) visitorShards(t rows.AnyTable, batches []*rows.Batch, buf *rows.Buffers) []int {
	col := slices.Index(t.ColumnNames(), "visitor_id")
	visitors := t.Values(col, batches, buf).([]string)
	shards := make([]int, len(visitors))
	for j, v := range visitors {
		shards[j] = s.router.shardOf(ShardHash(v))
	}
	return shards
}

// split gathers t's columns from the batches and splits them by shard:
// shards[j] is the shard index of row j.
func (s *Sink) split(t rows.AnyTable, batches []*rows.Batch, shards []int, buf *rows.Buffers) []*shardPart {
	names := t.ColumnNames()
	n := len(s.router.shards)
	idx := make([][]int32, n)
	for j, sh := range shards {
		idx[sh] = append(idx[sh], int32(j))
	}
	parts := make([]*shardPart, 0, n)
	for sh, rowsOf := range idx {
		if len(rowsOf) > 0 {
			parts = append(parts, &shardPart{shard: sh, rows: len(rowsOf), columns: make([]any, 0, len(names))})
		}
	}
	for i := range names {
		v := t.Values(i, batches, buf)
		for _, p := range parts {
			p.columns = append(p.columns, driverValues(pick(v, idx[p.shard])))
		}
	}
	return parts
}

// pick returns the values of v (a column of rows.Value type) at the
// indexes, in a new slice.
func pick(v any, idx []int32) any {
	switch v := v.(type) {
	case []string:
		return pickOf(v, idx)
	case []int64:
		return pickOf(v, idx)
	case []uint64:
		return pickOf(v, idx)
	case []int8:
		return pickOf(v, idx)
	case []uint8:
		return pickOf(v, idx)
	case []int32:
		return pickOf(v, idx)
	case []uint32:
		return pickOf(v, idx)
	case []float64:
		return pickOf(v, idx)
	case []schemas.Amount:
		return pickOf(v, idx)
	case []rows.OptionalInt8:
		return pickOf(v, idx)
	case []time.Time:
		return pickOf(v, idx)
	}
	panic(fmt.Sprintf("BUG: column of type %T cannot be split by shard", v))
}

func pickOf[T any](v []T, idx []int32) []T {
	out := make([]T, len(idx))
	for k, j := range idx {
		out[k] = v[j]
	}
	return out
}

// insertDirect inserts the parts of t's rows into the shards' local
// tables, each shard's part on one of its replicas, the parts in parallel.
// A part that fails is sent again, identical, to the shard's next replica
// after a backoff, until ctx ends; parts already acknowledged are not.
func (s *Sink) insertDirect(ctx context.Context, t rows.AnyTable, parts []*shardPart, local string) error {
	name := t.TableName()
	n := 0
	for _, p := range parts {
		n += p.rows
	}
	query := insertQuery(s.db, local, t)
	columns := t.ColumnNames()
	start := time.Now()
	wait := s.cfg.BackoffMin
	for attempt := 1; ; attempt++ {
		type sent struct {
			part *shardPart
			addr replicaAddr
			err  error
		}
		results := make([]sent, len(parts))
		batches := make([]driver.Batch, len(parts))
		for k, p := range parts {
			results[k].part = p
			c, addr, err := s.router.conn(ctx, p.shard)
			results[k].addr = addr
			if err != nil {
				results[k].err = err
				continue
			}
			b, err := c.PrepareBatch(ctx, query)
			if err != nil {
				results[k].err = err
				continue
			}
			for i, col := range p.columns {
				if err := b.Column(i).Append(col); err != nil {
					results[k].err = fmt.Errorf("column %s: %w", columns[i], err)
					break
				}
			}
			if results[k].err != nil {
				_ = b.Abort()
				continue
			}
			batches[k] = b
		}
		s.hook("during-insert:" + name)
		var wg sync.WaitGroup
		for k := range parts {
			if batches[k] == nil {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[k].err = batches[k].Send()
				if results[k].err == nil {
					s.hook("after-insert-shard:" + name)
				}
			}()
		}
		wg.Wait()
		var failed []*shardPart
		var errs []error
		for _, r := range results {
			if r.err != nil {
				failed = append(failed, r.part)
				next := s.router.failover(r.part.shard, r.addr)
				errs = append(errs, fmt.Errorf("shard %d (%s, next try on %s): %w", s.router.shards[r.part.shard].num, r.addr, next, r.err))
			}
		}
		if len(failed) == 0 {
			s.hook("after-insert:" + name)
			s.healthy.Store(true)
			s.insertSeconds.WithLabelValues(name).Observe(time.Since(start).Seconds())
			s.batchRows.WithLabelValues(name).Observe(float64(n))
			return nil
		}
		parts = failed
		err := errors.Join(errs...)
		if ctx.Err() != nil {
			return fmt.Errorf("cannot insert %d rows into %s: %w", n, name, errors.Join(ctx.Err(), err))
		}
		s.healthy.Store(false)
		s.retries.WithLabelValues(name).Inc()
		s.log.Warn("insert failed, retrying", "table", name, "local_table", local, "rows", n, "failed_shards", len(failed), "attempt", attempt, "retry_in", wait, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("cannot insert %d rows into %s: %w", n, name, errors.Join(ctx.Err(), err))
		case <-time.After(wait):
		}
		wait = min(2*wait, s.cfg.BackoffMax)
	}
}
