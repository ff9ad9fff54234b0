package clickhouse

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/shopspring/decimal"

	"github.com/funnelhouse/funnelhouse/pipeline/rows"
	"github.com/funnelhouse/funnelhouse/schemas"
	fhsql "github.com/funnelhouse/funnelhouse/sql"
)

// DefaultDatabase is used when the DSN names none.
const DefaultDatabase = "funnelhouse"

// Endpoint says how to reach ClickHouse.
type Endpoint struct {
	// DSN is clickhouse://user:password@host:port/database (native protocol).
	DSN string
	// Password, when set, overrides the DSN's password, so that it need not
	// appear on a command line.
	Password string
	// TLS, when set, encrypts the connection (the server's secure native
	// port).
	TLS *tls.Config
}

// WithAddr returns e with the DSN's host:port replaced by addr (another
// server of the same cluster, same user, password and database).
func (e Endpoint) WithAddr(addr string) (Endpoint, error) {
	u, err := url.Parse(e.DSN)
	if err != nil {
		return e, fmt.Errorf("invalid --clickhouse DSN: %w", err)
	}
	u.Host = addr
	e.DSN = u.String()
	return e, nil
}

// Dialer returns a function that connects to another server of e's cluster
// (host and native port as system.clusters lists them) with e's user,
// password and TLS, for fhsql.Cluster.Dial; the caller closes each
// connection.
func (e Endpoint) Dialer() func(ctx context.Context, host string, port uint16) (driver.Conn, error) {
	return func(ctx context.Context, host string, port uint16) (driver.Conn, error) {
		he, err := e.WithAddr(net.JoinHostPort(host, strconv.Itoa(int(port))))
		if err != nil {
			return nil, err
		}
		c, _, err := Connect(ctx, he)
		return c, err
	}
}

// Config configures a Sink.
type Config struct {
	Endpoint
	// BackoffMin and BackoffMax bound the wait between retries of a failed
	// insert (defaults 100ms and 5s); the wait doubles each attempt.
	BackoffMin, BackoffMax time.Duration
	// Registerer receives the sink's metrics; nil means none.
	Registerer prometheus.Registerer
	// Logger, nil means slog.Default().
	Logger *slog.Logger
	// Hook, when set, is called at "during-insert:<table>" (the INSERT is
	// sent and its rows appended, not yet committed) and at
	// "after-insert:<table>" (acknowledged). Fault tests kill the process
	// there. Direct cluster inserts also call "after-insert-shard:<table>"
	// as each shard acknowledges its part.
	Hook func(point string)
	// ClusterInsert says how rows reach a cluster's shards when the
	// database was migrated with `migrate --cluster`: InsertDirect or
	// InsertDistributed; "" means DefaultClusterInsert. Ignored on a
	// single server.
	ClusterInsert string
	// Dial, when set, replaces Endpoint.Dialer for the direct inserts'
	// connections to the shards' replicas (tests route them through a
	// proxy).
	Dial func(ctx context.Context, host string, port uint16) (driver.Conn, error)
}

// Sink inserts Batches into one ClickHouse database. Write may be called
// from one goroutine at a time.
type Sink struct {
	conn    driver.Conn
	db      string
	cfg     Config
	log     *slog.Logger
	healthy atomic.Bool
	// distributed: the tables are Distributed (a cluster). An insert into
	// one returns, by default, once the rows are queued on the server it
	// reached, before they are on their shards: a checkpoint would then
	// commit offsets past rows a crash loses. Inserts wait for the shards.
	distributed bool
	// router, on a cluster: where each row's shard and local table are
	// (only pipeline_state's unless the inserts are direct).
	router *router
	// stateHashes caches each partition's state sharding key value.
	stateHashes map[statePartition]uint64
	stateMu     sync.Mutex

	insertSeconds *prometheus.HistogramVec
	batchRows     *prometheus.HistogramVec
	retries       *prometheus.CounterVec

	bufs  map[string]*rows.Buffers // each part's (Write is not concurrent, its parts are)
	spare spareColumns             // the driver's column buffers of the last insert of each part
}

// Connect opens a native connection to the DSN's server without selecting
// the database (it may not exist yet) and returns it with the database name.
func Connect(ctx context.Context, e Endpoint) (driver.Conn, string, error) {
	opts, err := ch.ParseDSN(e.DSN)
	if err != nil {
		return nil, "", fmt.Errorf("invalid --clickhouse DSN: %w", err)
	}
	db := opts.Auth.Database
	if db == "" {
		db = DefaultDatabase
	}
	if err := fhsql.ValidateIdentifier("database", db); err != nil {
		return nil, "", fmt.Errorf("invalid --clickhouse DSN: %w", err)
	}
	opts.Auth.Database = ""
	if e.Password != "" {
		opts.Auth.Password = e.Password
	}
	if e.TLS != nil {
		opts.TLS = e.TLS
	}
	if opts.DialTimeout == 0 || opts.DialTimeout > 5*time.Second {
		opts.DialTimeout = 5 * time.Second
	}
	keepBuffersSmall(opts)
	conn, err := ch.Open(opts)
	if err != nil {
		return nil, "", fmt.Errorf("cannot open ClickHouse connection to %s: %w", strings.Join(opts.Addr, ","), err)
	}
	if err := conn.Ping(ctx); err != nil {
		conn.Close()
		return nil, "", fmt.Errorf("cannot reach ClickHouse at %s: %w", strings.Join(opts.Addr, ","), err)
	}
	return conn, db, nil
}

// keepBuffersSmall bounds what the driver keeps between INSERTs, unless
// the DSN says otherwise (max_idle_conns, max_compression_buffer). Each
// connection keeps the largest buffer it has encoded a block into, and
// idle connections are reused in turn, so with the driver's defaults
// (blocks compressed in 10 MiB pieces) each came to hold about 12 MiB: 62
// MB of a member's 342 MB heap at 5M events with 5 idle. A write runs
// insertsAtOnce INSERTs at once, so as many idle connections serve them,
// and 1 MiB pieces are what ClickHouse compresses its own blocks in
// (max_compress_block_size).
func keepBuffersSmall(opts *ch.Options) {
	if opts.MaxIdleConns == 0 {
		opts.MaxIdleConns = insertsAtOnce
	}
	if opts.MaxCompressionBuffer == 0 {
		opts.MaxCompressionBuffer = 1 << 20
	}
}

// Open connects to ClickHouse and checks that the migrations are applied.
func Open(ctx context.Context, cfg Config) (*Sink, error) {
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = 100 * time.Millisecond
	}
	if cfg.BackoffMax < cfg.BackoffMin {
		cfg.BackoffMax = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	conn, db, err := Connect(ctx, cfg.Endpoint)
	if err != nil {
		return nil, err
	}
	if err := fhsql.CheckMigrated(ctx, conn, db); err != nil {
		conn.Close()
		return nil, err
	}
	s := &Sink{conn: conn, db: db, cfg: cfg, log: cfg.Logger}
	if s.distributed, err = fhsql.Distributed(ctx, conn, db); err != nil {
		conn.Close()
		return nil, err
	}
	mode := cfg.ClusterInsert
	if mode == "" {
		mode = DefaultClusterInsert
	}
	if mode != InsertDirect && mode != InsertDistributed {
		conn.Close()
		return nil, fmt.Errorf("invalid cluster insert mode %q: want %s or %s", mode, InsertDirect, InsertDistributed)
	}
	if s.distributed {
		dial := cfg.Dial
		if dial == nil {
			dial = cfg.Endpoint.Dialer()
		}
		if s.router, err = newRouter(ctx, conn, db, rows.Tables, mode == InsertDirect, dial); err != nil {
			conn.Close()
			if mode == InsertDirect {
				err = fmt.Errorf("direct cluster inserts: %w (--cluster-insert distributed inserts through the Distributed tables)", err)
			}
			return nil, err
		}
		var direct, through []string
		for _, t := range rows.Tables {
			if local, ok := s.router.local[t.TableName()]; ok {
				direct = append(direct, t.TableName()+"->"+local)
			} else if t.TableName() != rows.StateTable.Name {
				through = append(through, t.TableName())
			}
		}
		s.log.Info("database migrated for a cluster: "+mode+" inserts; pipeline_state is written and read on one replica per shard",
			"database", db, "cluster", s.router.cluster, "shards", len(s.router.shards), "direct", strings.Join(direct, ","), "distributed", strings.Join(through, ","),
			"state", rows.StateTable.Name+"->"+s.router.stateLocal)
	}
	s.healthy.Store(true)
	s.insertSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "funnelhouse_sink_insert_duration_seconds", Help: "Time to insert one batch into a table, retries included.",
		Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
	}, []string{"table"})
	s.batchRows = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "funnelhouse_sink_batch_rows", Help: "Rows per inserted batch.",
		Buckets: prometheus.ExponentialBuckets(10, 4, 9),
	}, []string{"table"})
	s.retries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "funnelhouse_sink_retries_total", Help: "Failed insert attempts that were retried.",
	}, []string{"table"})
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{s.insertSeconds, s.batchRows, s.retries} {
			if err := cfg.Registerer.Register(c); err != nil {
				conn.Close()
				return nil, err
			}
		}
	}
	return s, nil
}

// Database is the database the sink writes to.
func (s *Sink) Database() string { return s.db }

// Conn is the underlying connection, for queries.
func (s *Sink) Conn() driver.Conn { return s.conn }

// Healthy reports whether the last insert or ping succeeded.
func (s *Sink) Healthy() bool { return s.healthy.Load() }

// Ping checks the server and updates Healthy.
func (s *Sink) Ping(ctx context.Context) error {
	err := s.conn.Ping(ctx)
	s.healthy.Store(err == nil)
	return err
}

// Close closes the connections.
func (s *Sink) Close() error {
	if s.router != nil {
		s.router.close()
	}
	return s.conn.Close()
}

// Write inserts every row of the batches: the rows of events, sessions
// and lifecycle_transitions in INSERTs that run two at a time, then
// pipeline_state, so that a checkpoint is stored only after the rows
// derived before it. It blocks until ClickHouse acknowledged each insert,
// retrying failed inserts with backoff until ctx ends. The tables are
// replay-safe, so a retried insert that had in fact succeeded changes no
// number. Write only reads the batches. It implements pipeline.Sink.
func (s *Sink) Write(ctx context.Context, batches []*rows.Batch) error {
	return s.WriteTables(ctx, batches, rows.Tables)
}

// WriteTables is Write for the given tables only. The ablation
// (bench/ablation) uses it to measure ClickHouse's cost table by table
// with the very inserts the pipeline sends.
func (s *Sink) WriteTables(ctx context.Context, batches []*rows.Batch, tables []rows.AnyTable) error {
	defer s.releaseBuffers()
	var parts []*part
	var state rows.AnyTable
	for _, t := range tables {
		if t.TableName() == rows.StateTable.Name {
			state = t
			continue
		}
		parts = append(parts, s.parts(t, batches)...)
	}
	if err := s.writeAtOnce(ctx, batches, parts); err != nil {
		return err
	}
	if state == nil {
		return nil
	}
	return s.writeAtOnce(ctx, batches, s.parts(state, batches))
}

// part is one INSERT of a write: rows from..to of t, filled through
// buffers of its own, so that the INSERTs of a write can run at once.
type part struct {
	t        rows.AnyTable
	from, to int
	// name is t's name, with "#2" for the second part of a split table:
	// the key of the part's buffers and spare columns.
	name string
	buf  *rows.Buffers
}

func (s *Sink) part(t rows.AnyTable, from, to int, name string) *part {
	if s.bufs == nil {
		s.bufs = map[string]*rows.Buffers{}
	}
	if s.bufs[name] == nil {
		s.bufs[name] = new(rows.Buffers)
	}
	return &part{t: t, from: from, to: to, name: name, buf: s.bufs[name]}
}

func (s *Sink) releaseBuffers() {
	for _, b := range s.bufs {
		b.Release()
	}
}

// parts are the INSERTs that carry t's rows. ClickHouse runs an INSERT,
// and the views it feeds, on one thread, so the events of a large flush
// (most of its rows, with four views behind them) go in eventsParts
// INSERTs that run at once: 14-19 % more records/s end to end on 2 cores
// (bench/RESULTS.md). Small flushes stay whole, to keep parts few; a
// direct cluster insert is split by shard already.
func (s *Sink) parts(t rows.AnyTable, batches []*rows.Batch) []*part {
	n := rowCount(t, batches)
	if n == 0 {
		return nil
	}
	name := t.TableName()
	_, direct := s.localTable(name)
	if name != rows.EventsTable.Name || n < eventsParts*insertBlockRows || direct {
		return []*part{s.part(t, 0, n, name)}
	}
	parts := make([]*part, eventsParts)
	for i := range parts {
		label := name
		if i > 0 {
			label += "#" + strconv.Itoa(i+1)
		}
		parts[i] = s.part(t, i*n/eventsParts, (i+1)*n/eventsParts, label)
	}
	return parts
}

// eventsParts is how many INSERTs a large flush's events go in: one per
// core of the machine the project is measured on. Sessions and
// transitions as INSERTs of their own beside them gained nothing
// (RESULTS.md), so they follow the events' parts in the same lanes.
const eventsParts = 2

// localTable is the shard-local table that name's rows are inserted into
// directly, if any.
func (s *Sink) localTable(name string) (string, bool) {
	if s.router == nil {
		return "", false
	}
	local, ok := s.router.local[name]
	return local, ok
}

// writeAtOnce runs the parts' INSERTs insertsAtOnce at a time, each lane
// taking every insertsAtOnce-th part in turn (a large flush's events
// first, one part per lane), and waits for all of them.
func (s *Sink) writeAtOnce(ctx context.Context, batches []*rows.Batch, parts []*part) error {
	errs := make([]error, len(parts))
	var wg sync.WaitGroup
	for lane := range min(insertsAtOnce, len(parts)) {
		wg.Go(func() {
			for i := lane; i < len(parts); i += insertsAtOnce {
				if errs[i] = s.writePart(ctx, batches, parts[i]); errs[i] != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// insertsAtOnce is how many INSERTs of a write run at once: both of
// ClickHouse's threads busy on the machine the project is measured on,
// with the driver's buffers of two blocks in flight rather than four.
const insertsAtOnce = eventsParts

func (s *Sink) writePart(ctx context.Context, batches []*rows.Batch, p *part) error {
	if s.router != nil {
		if p.t.TableName() == rows.StateTable.Name {
			return s.insertState(ctx, p.t, batches, p.buf)
		}
		if local, ok := s.localTable(p.t.TableName()); ok {
			return s.insertDirect(ctx, p.t, s.split(p.t, batches, s.visitorShards(p.t, batches, p.buf), p.buf), local)
		}
	}
	return s.insertWithRetry(ctx, batches, p)
}

func (s *Sink) insertWithRetry(ctx context.Context, batches []*rows.Batch, p *part) error {
	n := p.to - p.from
	name := p.t.TableName()
	start := time.Now()
	wait := s.cfg.BackoffMin
	for attempt := 1; ; attempt++ {
		err := s.insert(ctx, batches, p)
		if err == nil {
			s.healthy.Store(true)
			s.insertSeconds.WithLabelValues(name).Observe(time.Since(start).Seconds())
			s.batchRows.WithLabelValues(name).Observe(float64(n))
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("cannot insert %d rows into %s: %w", n, name, errors.Join(ctx.Err(), err))
		}
		s.healthy.Store(false)
		s.retries.WithLabelValues(name).Inc()
		s.log.Warn("insert failed, retrying", "table", name, "part", p.name, "rows", n, "attempt", attempt, "retry_in", wait, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("cannot insert %d rows into %s: %w", n, name, errors.Join(ctx.Err(), err))
		case <-time.After(wait):
		}
		wait = min(2*wait, s.cfg.BackoffMax)
	}
}

func rowCount(t rows.AnyTable, batches []*rows.Batch) int {
	n := 0
	for _, b := range batches {
		n += t.Len(b)
	}
	return n
}

func (s *Sink) insert(ctx context.Context, batches []*rows.Batch, p *part) error {
	if s.distributed {
		ctx = ch.Context(ctx, ch.WithSettings(ch.Settings{"insert_distributed_sync": 1}))
	}
	t := p.t
	batch, err := s.conn.PrepareBatch(ctx, insertQuery(s.db, t.TableName(), t))
	if err != nil {
		return err
	}
	defer batch.Abort()
	cols := batch.Columns() // the same columns for every block: Flush resets them
	texts, fixed := textColumns(cols, t), fixedColumns(cols)
	block := insertBlockRows
	if t.TableName() == rows.StateTable.Name {
		block = p.to - p.from // all or nothing: see insertBlockRows
	} else {
		// Not the state's columns: its inserts are a few, in one block of
		// every row, whose buffers would be kept at their largest.
		defer s.spare.lend(p.name, cols)()
	}
	for from := p.from; from < p.to; from += block {
		if from > p.from {
			if err := batch.Flush(); err != nil {
				return err
			}
		}
		if err := fillBlock(cols, texts, fixed, t, batches, from, min(from+block, p.to), p.buf); err != nil {
			return err
		}
	}
	s.hook("during-insert:" + t.TableName())
	if err := batch.Send(); err != nil {
		return err
	}
	s.hook("after-insert:" + t.TableName())
	return nil
}

// fillBlock appends t's rows from..to of the batches to the driver's
// columns cols: text straight into their buffers (stringsOf, texts[i] for
// column i, nil for the others), numbers and enums too where fixed[i] is
// one (fixedOf), the other values as a slice of each column's type, which
// the driver copies, so that buf is free again for the next column.
func fillBlock(cols []column.Interface, texts []rows.StringColumn, fixed []*fixedColumn, t rows.AnyTable, batches []*rows.Batch, from, to int, buf *rows.Buffers) error {
	t.AppendTexts(batches, from, to, texts)
	for i, c := range cols {
		if texts[i] != nil {
			continue
		}
		if fixed[i] != nil {
			ok, err := fixed[i].append(t, i, batches, from, to)
			if err != nil {
				return err
			}
			if ok {
				continue
			}
		}
		if _, err := c.Append(driverValues(t.ValuesRange(i, batches, from, to, buf))); err != nil {
			return fmt.Errorf("column %s: %w", c.Name(), err)
		}
	}
	return nil
}

// fixedColumns are the ch-go columns of cols that AppendFixed can fill
// (fixedOf), nil for the others.
func fixedColumns(cols []column.Interface) []*fixedColumn {
	fixed := make([]*fixedColumn, len(cols))
	for i, c := range cols {
		if f, ok := fixedOf(c); ok {
			fixed[i] = &f
		}
	}
	return fixed
}

// textColumns are the ch-go buffers of cols that AppendTexts can fill: a
// text column of t whose driver column is a String (stringsOf).
func textColumns(cols []column.Interface, t rows.AnyTable) []rows.StringColumn {
	texts := make([]rows.StringColumn, len(cols))
	for i, c := range cols {
		if str, ok := stringsOf(c); ok && t.IsText(i) {
			texts[i] = str
		}
	}
	return texts
}

// insertBlockRows is the most rows the driver holds for one insert of
// events, sessions or transitions: a larger insert goes out as several
// blocks of one INSERT, which ClickHouse squashes back into parts of up to
// min_insert_block_size_rows (1,048,576), so the parts are as few as with
// one block. The driver's copy of a flush is then a block, not the whole
// flush, and its buffers are reused from block to block instead of grown.
// Those buffers are kept from one insert to the next (spareColumns): at
// 65,536 rows a block they held 39 MB of a member's live heap at 5M
// events, at 16,384 about a quarter, for the same CPU (bench/RESULTS.md).
//
// Not pipeline_state: blocks of an INSERT are not all or nothing. When the
// client goes away mid-INSERT, ClickHouse 18.16 writes the blocks it has
// (checked: a process that exited after sending the first of two blocks
// left its 50,000 rows), and TestCrashRecovery saw a killed member's new
// fork of visitor rows land without its checkpoint, hiding the visitors of
// the checkpoint the next restore took. The other tables replace a
// replayed row; the state insert stays one block, written whole or not at
// all.
const insertBlockRows = 16384

// insertQuery is the INSERT statement of t's columns into db.table (t's
// own table, or its local table on a shard).
func insertQuery(db, table string, t rows.AnyTable) string {
	columns := t.ColumnNames()
	for i, c := range columns {
		columns[i] = "`" + c + "`"
	}
	return "INSERT INTO " + db + "." + table + " (" + strings.Join(columns, ", ") + ")"
}

func (s *Sink) hook(point string) {
	if s.cfg.Hook != nil {
		s.cfg.Hook(point)
	}
}

// driverValues turns a column's values (rows.AnyTable.Values) into a slice
// the driver's column of the table's type accepts: amounts become
// Decimal(18, 4), optional small numbers Nullable(UInt8); the other types
// are taken as they are (enums as their Int8 values, DateTime as unix
// seconds, Date as time.Time).
func driverValues(v any) any {
	switch v := v.(type) {
	case []schemas.Amount:
		out := make([]decimal.Decimal, len(v))
		for i, a := range v {
			out[i] = decimal.New(int64(a), -4)
		}
		return out
	case []rows.OptionalInt8:
		out := make([]*uint8, len(v))
		vals := make([]uint8, len(v))
		for i, x := range v {
			if int8(x) != schemas.Absent {
				vals[i] = uint8(x)
				out[i] = &vals[i]
			}
		}
		return out
	}
	return v
}

// LoadState reads the newest state rows of one consumer group's partition,
// once the state inserts running at the call have ended.
func (s *Sink) LoadState(ctx context.Context, group string, partition int32) ([]rows.State, error) {
	conn, table, err := s.stateSource(ctx, group, partition, true)
	if err != nil {
		return nil, fmt.Errorf("cannot load state of partition %d: %w", partition, err)
	}
	res, err := conn.Query(ctx, "SELECT kind, key, epoch, data FROM "+s.db+"."+table+" FINAL WHERE consumer_group = ? AND kafka_partition = ?", group, partition)
	if err != nil {
		return nil, fmt.Errorf("cannot load state of partition %d: %w", partition, err)
	}
	defer res.Close()
	var out []rows.State
	for res.Next() {
		r := rows.State{Group: group, Partition: partition}
		var kind string
		if err := res.Scan(&kind, &r.Key, &r.Epoch, &r.Data); err != nil {
			return nil, fmt.Errorf("cannot load state of partition %d: %w", partition, err)
		}
		for _, k := range []rows.StateKind{rows.StateCheckpoint, rows.StateVisitor} {
			if kind == k.String() {
				r.Kind = k
			}
		}
		out = append(out, r)
	}
	return out, res.Err()
}

// LoadVisitors reads the newest 'visitor' rows of the given keys of one
// consumer group's partition: forgotten visitors coming back. The keys go
// in IN lists of at most loadVisitorsChunk, to stay well under the
// server's max_query_size (256 KiB by default).
func (s *Sink) LoadVisitors(ctx context.Context, group string, partition int32, keys []string) ([]rows.State, error) {
	conn, table, err := s.stateSource(ctx, group, partition, false)
	if err != nil {
		return nil, fmt.Errorf("cannot load visitors of partition %d: %w", partition, err)
	}
	var out []rows.State
	for chunk := range slices.Chunk(keys, loadVisitorsChunk) {
		set := ch.GroupSet{Value: make([]any, len(chunk))} // a tuple: a bound []string is an Array, which IN refuses on 18.16
		for i, k := range chunk {
			set.Value[i] = k
		}
		res, err := conn.Query(ctx, "SELECT key, epoch, data FROM "+s.db+"."+table+" FINAL WHERE consumer_group = ? AND kafka_partition = ? AND kind = 'visitor' AND key IN ?",
			group, partition, set)
		if err != nil {
			return nil, fmt.Errorf("cannot load visitors of partition %d: %w", partition, err)
		}
		for res.Next() {
			r := rows.State{Group: group, Partition: partition, Kind: rows.StateVisitor}
			if err := res.Scan(&r.Key, &r.Epoch, &r.Data); err != nil {
				res.Close()
				return nil, fmt.Errorf("cannot load visitors of partition %d: %w", partition, err)
			}
			out = append(out, r)
		}
		err = res.Err()
		res.Close()
		if err != nil {
			return nil, fmt.Errorf("cannot load visitors of partition %d: %w", partition, err)
		}
	}
	return out, nil
}

const loadVisitorsChunk = 2000

// drainStateInserts waits until the INSERTs into pipeline_state running now
// have ended. A member killed with a state insert in flight leaves it to
// the server, which commits it if every block arrived. Read before that
// commit, the state would be one checkpoint old, and the predecessor's
// checkpoint, landing later with the epoch the successor then uses too,
// would mix with the successor's rows of that epoch.
func (s *Sink) drainStateInserts(ctx context.Context, conn driver.Conn) error {
	running := func() (map[string]bool, error) {
		rows, err := conn.Query(ctx, "SELECT query_id FROM system.processes WHERE query LIKE ?", "INSERT INTO "+s.db+".pipeline_state%")
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		ids := map[string]bool{}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return nil, err
			}
			ids[id] = true
		}
		return ids, rows.Err()
	}
	waiting, err := running()
	start := time.Now()
	for err == nil && len(waiting) > 0 {
		if time.Since(start) > 30*time.Second {
			s.log.Warn("state inserts still running after 30s; restoring anyway", "inserts", len(waiting))
			return nil
		}
		time.Sleep(10 * time.Millisecond)
		var now map[string]bool
		if now, err = running(); err == nil {
			for id := range waiting {
				if !now[id] {
					delete(waiting, id)
				}
			}
		}
	}
	if d := time.Since(start); d > 10*time.Millisecond {
		s.log.Info("waited for state inserts in flight before restoring", "waited", d.Round(time.Millisecond))
	}
	return err
}
