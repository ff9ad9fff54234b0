package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/funnelhouse/funnelhouse/pipeline/rows"
	"github.com/funnelhouse/funnelhouse/schemas"
)

// Store is where rows and state go: ClickHouse in production
// (sinks/clickhouse.Sink).
type Store interface {
	// Write blocks until every row of the batches is acknowledged (retrying
	// as needed) or ctx ends. It only reads the batches.
	Write(ctx context.Context, batches []*rows.Batch) error
	// LoadState returns the newest state rows of a group's partition.
	LoadState(ctx context.Context, group string, partition int32) ([]rows.State, error)
	// Healthy reports whether the last write succeeded.
	Healthy() bool
}

// Config configures a Pipeline. Zero values take the defaults noted.
type Config struct {
	Brokers []string
	Group   string // default "funnelhouse"
	// InstanceID makes this member static (KIP-345): restarted within the
	// session timeout, it takes its partitions back without a rebalance.
	// Empty keeps dynamic membership.
	InstanceID        string
	ClickstreamTopic  string // default "clickstream"
	TransactionsTopic string // default "transactions"
	DLQTopic          string // default "funnelhouse.dlq"
	Rules             Rules
	BatchRows         int           // flush when this many rows are buffered; default 100,000
	FlushInterval     time.Duration // flush at least this often; default 1s
	ShutdownTimeout   time.Duration // give up writing the last rows after this; default 60s
	Now               func() time.Time
	Logger            *slog.Logger
	// Registerer receives the pipeline's metrics; nil means none.
	Registerer prometheus.Registerer
	// KafkaOpts are extra franz-go options: TLS, SASL, timeouts.
	KafkaOpts []kgo.Opt
}

func (c *Config) setDefaults() {
	if c.Group == "" {
		c.Group = "funnelhouse"
	}
	if c.ClickstreamTopic == "" {
		c.ClickstreamTopic = "clickstream"
	}
	if c.TransactionsTopic == "" {
		c.TransactionsTopic = "transactions"
	}
	if c.DLQTopic == "" {
		c.DLQTopic = "funnelhouse.dlq"
	}
	if c.Rules == (Rules{}) {
		c.Rules = DefaultRules()
	}
	if c.BatchRows <= 0 {
		c.BatchRows = 100_000
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = time.Second
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 60 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate checks the configuration; errors name the flag.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("--brokers is empty: give at least one host:port"))
	}
	if c.ClickstreamTopic == c.TransactionsTopic {
		errs = append(errs, fmt.Errorf("--clickstream-topic and --transactions-topic are both %q: they must differ", c.ClickstreamTopic))
	}
	if c.DLQTopic == c.ClickstreamTopic || c.DLQTopic == c.TransactionsTopic {
		errs = append(errs, fmt.Errorf("--dlq-topic %q must differ from the input topics", c.DLQTopic))
	}
	errs = append(errs, c.Rules.Validate())
	return errors.Join(errs...)
}

// Pipeline consumes the input topics as one member of a consumer group and
// writes rows to a Store.
type Pipeline struct {
	cfg    Config
	store  Store
	log    *slog.Logger
	topics [2]string

	cl *kgo.Client

	mu       sync.Mutex // guards owners
	owners   map[int32]*owner
	cpMu     sync.Mutex // one checkpoint at a time
	buffered atomic.Int64
	flushNow chan struct{}
	assigned atomic.Bool
	dlqErr   atomic.Pointer[error]
	totals   Stats // of stopped owners, guarded by mu
	writeCtx context.Context
	failed   error                 // the first failed checkpoint, guarded by cpMu
	fatal    atomic.Pointer[error] // a group error no retry can mend
	metrics  *metrics
}

// New validates cfg and returns a pipeline; Run starts it.
func New(cfg Config, store Store) (*Pipeline, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	pl := &Pipeline{
		cfg:      cfg,
		store:    store,
		log:      cfg.Logger,
		topics:   [2]string{cfg.ClickstreamTopic, cfg.TransactionsTopic},
		owners:   map[int32]*owner{},
		flushNow: make(chan struct{}, 1),
	}
	var err error
	pl.metrics, err = newMetrics(cfg.Registerer, func() float64 { return float64(pl.buffered.Load()) })
	if err != nil {
		return nil, err
	}
	return pl, nil
}

// heldLimit is the number of held events, or of records queued for
// feeding, per partition above which fetching an input running ahead is
// paused.
func (pl *Pipeline) heldLimit() int { return max(pl.cfg.BatchRows/2, 10_000) }

// Drained reports whether this member has partitions, has read all of
// them to their end, holds no event or open session, and has written every
// row. New records make it false again.
func (pl *Pipeline) Drained() bool {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if len(pl.owners) == 0 || pl.buffered.Load() != 0 {
		return false
	}
	for _, o := range pl.owners {
		if !o.drained.Load() {
			return false
		}
	}
	return true
}

// Totals sums the stats of the partitions this member owned and gave up;
// after Run returns, of all of them.
func (pl *Pipeline) Totals() Stats {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	var s Stats
	s.Add(&pl.totals)
	return s
}

// Ready reports whether partitions are assigned, the store is healthy and
// no fatal group error has occurred.
func (pl *Pipeline) Ready() bool {
	return pl.assigned.Load() && pl.store.Healthy() && pl.fatal.Load() == nil
}

// CheckTopics verifies that the input topics exist with the same number of
// partitions (co-partitioning) and that the dead-letter topic exists. It
// returns the partition count.
func CheckTopics(ctx context.Context, adm *kadm.Client, clickstream, transactions, dlq string) (int, error) {
	md, err := adm.Metadata(ctx, clickstream, transactions, dlq)
	if err != nil {
		return 0, fmt.Errorf("cannot read topic metadata: %w", err)
	}
	count := func(flag, topic string) (int, error) {
		td, ok := md.Topics[topic]
		if !ok || td.Err != nil {
			reason := "does not exist"
			if ok && td.Err != nil {
				reason = td.Err.Error()
			}
			return 0, fmt.Errorf("%s topic %q: %s (create it, e.g. with `funnelhouse broker` or kafka-topics)", flag, topic, reason)
		}
		return len(td.Partitions), nil
	}
	nc, err := count("--clickstream-topic", clickstream)
	if err != nil {
		return 0, err
	}
	nt, err := count("--transactions-topic", transactions)
	if err != nil {
		return 0, err
	}
	if _, err := count("--dlq-topic", dlq); err != nil {
		return 0, err
	}
	if nc != nt {
		return 0, fmt.Errorf("topics are not co-partitioned: %q has %d partitions, %q has %d; both input topics need the same partition count", clickstream, nc, transactions, nt)
	}
	return nc, nil
}

// Run consumes until ctx ends, then shuts down gracefully: it stops
// fetching, writes and checkpoints what was processed, commits, and leaves
// the group. It returns an error if it could not start or could not store
// a checkpoint.
func (pl *Pipeline) Run(ctx context.Context) error {
	opts := []kgo.Opt{
		kgo.SeedBrokers(pl.cfg.Brokers...),
		kgo.ConsumerGroup(pl.cfg.Group),
		kgo.ConsumeTopics(pl.topics[0], pl.topics[1]),
		// Range keeps partition p of both topics on one member when the
		// counts are equal (checked above); cooperative-sticky does not.
		kgo.Balancers(restartStableRange{kgo.RangeBalancer()}),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.OnPartitionsAssigned(pl.onAssigned),
		kgo.AdjustFetchOffsetsFn(pl.adjustOffsets),
		kgo.OnPartitionsRevoked(pl.onRevoked),
		kgo.OnPartitionsLost(pl.onLost),
		kgo.ProducerLinger(5 * time.Millisecond),
		// Bound what is fetched ahead of processing (default 50 MiB), and
		// let a resumed partition be fetched soon (default wait 5s).
		kgo.FetchMaxBytes(16 << 20),
		kgo.FetchMaxWait(time.Second),
		kgo.WithHooks(groupErrorHook{pl}),
	}
	if pl.cfg.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(pl.cfg.InstanceID))
	}
	cl, err := kgo.NewClient(append(opts, pl.cfg.KafkaOpts...)...)
	if err != nil {
		return fmt.Errorf("cannot create Kafka client for --brokers %v: %w", pl.cfg.Brokers, err)
	}
	pl.cl = cl
	adm := kadm.NewClient(cl)
	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	_, err = CheckTopics(startCtx, adm, pl.topics[0], pl.topics[1], pl.cfg.DLQTopic)
	cancel()
	if err != nil {
		cl.Close()
		return fmt.Errorf("--brokers %s: %w", strings.Join(pl.cfg.Brokers, ","), err)
	}

	// Checkpoint writes are not cancelled with ctx: a cut batch that is not
	// written is lost, so shutdown waits for the write in flight, up to
	// ShutdownTimeout, and only then aborts it.
	var abortWrites context.CancelFunc
	pl.writeCtx, abortWrites = context.WithCancel(context.Background())
	defer abortWrites()
	loopCtx, stopLoops := context.WithCancel(context.Background())
	var loops sync.WaitGroup
	loops.Add(2)
	cpErr := make(chan error, 1)
	go func() { defer loops.Done(); cpErr <- pl.checkpointLoop(loopCtx) }()
	go func() { defer loops.Done(); pl.endOffsetsLoop(loopCtx, adm) }()

	runErr := pl.poll(ctx, cpErr)

	// Shutdown, in order: stop the periodic checkpoints, letting the one in
	// flight finish, so the final one is the last; checkpoint everything
	// processed (rows, DLQ, state, commit); then leave the group, which
	// revokes partitions that are by then empty.
	hardStop := time.AfterFunc(pl.cfg.ShutdownTimeout, abortWrites)
	defer hardStop.Stop()
	stopLoops()
	loops.Wait()
	select {
	case err := <-cpErr:
		if runErr == nil {
			runErr = err
		}
	default:
	}
	if runErr == nil {
		runErr = pl.checkpoint(nil)
	}
	pl.stopOwners(nil)
	cl.Close()
	return runErr
}

// poll fetches records and hands them to partition owners.
func (pl *Pipeline) poll(ctx context.Context, cpErr <-chan error) error {
	limit := int64(2 * pl.cfg.BatchRows)
	for {
		// Backpressure: while ClickHouse is slow or down, rows pile up in
		// checkpoints that cannot be written; stop fetching until they drain.
		for pl.buffered.Load() > limit && pl.fatal.Load() == nil {
			select {
			case <-ctx.Done():
				return nil
			case err := <-cpErr:
				return err
			case <-time.After(10 * time.Millisecond):
			}
		}
		fetches := pl.cl.PollRecords(ctx, 10_000)
		if fetches.IsClientClosed() || ctx.Err() != nil {
			pl.cl.AllowRebalance()
			return nil
		}
		select {
		case err := <-cpErr:
			pl.cl.AllowRebalance()
			return err
		default:
		}
		if err := pl.fatal.Load(); err != nil {
			pl.cl.AllowRebalance()
			return *err
		}
		fetches.EachError(func(topic string, p int32, err error) {
			pl.log.Warn("fetch error", "topic", topic, "partition", p, "err", err)
		})
		pl.mu.Lock()
		fetches.EachPartition(func(ftp kgo.FetchTopicPartition) {
			if len(ftp.Records) == 0 {
				return
			}
			o := pl.owners[ftp.Partition]
			if o == nil {
				pl.log.Error("BUG: records for a partition without owner", "topic", ftp.Topic, "partition", ftp.Partition)
				return
			}
			o.in <- ownerMsg{topic: pl.topicOf(ftp.Topic), records: ftp.Records}
		})
		pl.mu.Unlock()
		pl.cl.AllowRebalance()
	}
}

func (pl *Pipeline) topicOf(name string) schemas.Topic {
	if name == pl.topics[schemas.Transactions] {
		return schemas.Transactions
	}
	return schemas.Clickstream
}

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
// ClickHouse acknowledged the rows and the state that cover it. A failed
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
	defer func() {
		if err != nil {
			pl.failed = err
		}
	}()
	ctx := pl.writeCtx
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
		return fmt.Errorf("cannot write to --dlq-topic %q: %w", pl.cfg.DLQTopic, *err)
	}
	start := time.Now()
	if err := pl.store.Write(ctx, batches); err != nil {
		return err
	}
	pl.metrics.checkpointSec.Observe(time.Since(start).Seconds())
	for i, o := range owners {
		n := 0
		for _, st := range batches[i].State.All() {
			n += len(st.Data)
		}
		pl.metrics.stateBytes.WithLabelValues(strconv.Itoa(int(o.partition))).Set(float64(n))
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
		// Not fatal: the state in ClickHouse holds the offsets, and a
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

// endOffsetsLoop tells owners where their inputs end, so that an input with
// no unread records can be recognised as idle (SPEC §3).
func (pl *Pipeline) endOffsetsLoop(ctx context.Context, adm *kadm.Client) {
	every := min(pl.cfg.Rules.IdleAdvance/4, time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ends, err := adm.ListEndOffsets(ctx, pl.topics[0], pl.topics[1])
		if err != nil {
			continue
		}
		pl.mu.Lock()
		for _, o := range pl.owners {
			for t, topic := range pl.topics {
				if e, ok := ends.Lookup(topic, o.partition); ok && e.Err == nil {
					o.ends[t].Store(e.Offset)
				}
			}
		}
		pl.mu.Unlock()
	}
}

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
func (pl *Pipeline) onAssigned(ctx context.Context, _ *kgo.Client, assigned map[string][]int32) {
	for _, p := range partitionsOf(assigned) {
		pl.mu.Lock()
		exists := pl.owners[p] != nil
		pl.mu.Unlock()
		if exists {
			continue
		}
		start := time.Now()
		proc := NewProcessor(pl.cfg.Group, p, pl.topics, pl.cfg.Rules, pl.cfg.Now)
		rows, err := pl.store.LoadState(ctx, pl.cfg.Group, p)
		for err != nil && ctx.Err() == nil {
			pl.log.Warn("cannot load partition state, retrying", "partition", p, "err", err)
			time.Sleep(time.Second)
			rows, err = pl.store.LoadState(ctx, pl.cfg.Group, p)
		}
		if err != nil {
			return
		}
		off, err := proc.Restore(rows)
		if err != nil {
			// A corrupt checkpoint must not be silently replaced by an
			// empty state: stop consuming this partition.
			pl.log.Error("cannot restore partition; not consuming it", "partition", p, "err", err)
			continue
		}
		o := newOwner(pl, p, proc, off)
		pl.mu.Lock()
		pl.owners[p] = o
		pl.mu.Unlock()
		go o.run()
		pl.log.Info("partition assigned", "partition", p, "visitors", proc.Visitors(), "epoch", proc.Epoch(), "restore", time.Since(start).Round(time.Millisecond))
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
	pl.cpMu.Lock()
	defer pl.cpMu.Unlock()
	if err := pl.checkpointLocked(ps); err != nil {
		pl.log.Error("cannot checkpoint revoked partitions; the next owner replays them", "partitions", ps, "err", err)
	}
	pl.stopOwnersLocked(ps)
}

// onLost drops owners without a checkpoint: another member may own the
// partitions already, and it resumes from the last checkpoint.
func (pl *Pipeline) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	pl.stopOwners(partitionsOf(lost))
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
		close(o.in)
		<-o.done
		pl.buffered.Add(-int64(o.rows))
		pl.mu.Lock()
		pl.totals.Add(o.proc.Stats())
		pl.mu.Unlock()
		pl.metrics.forget(o.partition, pl.topics)
	}
	pl.mu.Lock()
	if len(pl.owners) == 0 {
		pl.assigned.Store(false)
	}
	pl.mu.Unlock()
}

// owner is the goroutine that owns one partition number's Processor.
type owner struct {
	pl        *Pipeline
	partition int32
	proc      *Processor
	restored  Offsets
	in        chan ownerMsg
	done      chan struct{}
	ends      [2]atomic.Int64
	rows      int // rows buffered in proc, as counted in pl.buffered
	drained   atomic.Bool
	published Stats // proc's stats as last added to the metrics
	paused    int   // input whose fetching align paused, or -1

	// Records fetched but not yet fed to proc, per input: queue[t][head[t]:].
	queue    [2][]*kgo.Record
	head     [2]int
	lastSeen [2]time.Time // when input t last delivered records
}

type ownerMsg struct {
	topic   schemas.Topic
	records []*kgo.Record
	cut     chan<- cutResult
}

type cutResult struct {
	batch   *rows.Batch
	offsets Offsets
	counted int // the batch's rows counted in pl.buffered
}

func newOwner(pl *Pipeline, p int32, proc *Processor, restored Offsets) *owner {
	o := &owner{pl: pl, partition: p, proc: proc, restored: restored, in: make(chan ownerMsg, 4), done: make(chan struct{})}
	o.published = proc.Stats().clone() // restored counts were published by an earlier owner
	o.paused = -1
	o.lastSeen = [2]time.Time{pl.cfg.Now(), pl.cfg.Now()}
	o.ends[0].Store(-1)
	o.ends[1].Store(-1)
	return o
}

func (o *owner) run() {
	defer close(o.done)
	defer o.publish()
	defer o.resume()
	tick := time.NewTicker(min(o.pl.cfg.Rules.IdleAdvance/4, 250*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case m, ok := <-o.in:
			if !ok {
				return
			}
			if m.cut != nil {
				// o.rows is current: account runs after every message.
				counted := o.rows
				b, off := o.proc.Cut()
				o.rows = 0
				m.cut <- cutResult{b, off, counted}
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
		o.drained.Store(o.proc.Drained())
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
	case o.paused < 0 && ahead >= 0 && (held > limit || o.queued(ahead) > limit):
		o.paused = ahead
		o.pl.cl.PauseFetchPartitions(map[string][]int32{o.pl.topics[ahead]: {o.partition}})
	case o.paused >= 0 && (held < limit/2 && o.queued(o.paused) < limit/2 || ahead != o.paused):
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
	o.pl.metrics.publish(o.partition, o.pl.topics, o.proc, &o.published, o.pl.cfg.Now())
}

func (o *owner) add(m ownerMsg) {
	now := o.pl.cfg.Now()
	o.queue[m.topic] = append(o.queue[m.topic], m.records...)
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
		t := o.proc.behindInput()
		if o.queued(t) == 0 {
			if o.waitFor(t, now) {
				break
			}
			t = 1 - t
		}
		if o.queued(t) == 0 {
			break
		}
		r := o.queue[t][o.head[t]]
		o.queue[t][o.head[t]] = nil
		if o.head[t]++; o.head[t] == len(o.queue[t]) {
			o.queue[t], o.head[t] = o.queue[t][:0], 0
		}
		if err := o.proc.Add(schemas.Topic(t), r.Key, r.Value, r.Offset, now); err != nil {
			o.deadLetter(r, err)
		}
	}
	o.proc.Advance(now)
}

func (o *owner) queued(t int) int { return len(o.queue[t]) - o.head[t] }

// waitFor reports whether feeding must wait for more records of input t.
func (o *owner) waitFor(t int, now time.Time) bool {
	unread := !caughtUp(o.proc.Next(schemas.Topic(t)), o.ends[t].Load())
	return unread && now.Sub(o.lastSeen[t]) < o.pl.cfg.Rules.IdleAdvance
}

// account publishes the change in buffered rows and asks for an early
// checkpoint when a batch is full.
func (o *owner) account() {
	n := o.proc.Rows()
	if d := n - o.rows; d != 0 {
		o.rows = n
		if o.pl.buffered.Add(int64(d)) >= int64(o.pl.cfg.BatchRows) {
			select {
			case o.pl.flushNow <- struct{}{}:
			default:
			}
		}
	}
}

// deadLetter produces the record unchanged to the dead-letter topic with
// headers saying why and where it came from.
func (o *owner) deadLetter(r *kgo.Record, err *schemas.Error) {
	dl := &kgo.Record{
		Topic: o.pl.cfg.DLQTopic,
		Key:   r.Key,
		Value: r.Value,
		Headers: []kgo.RecordHeader{
			{Key: "funnelhouse.reason", Value: []byte(err.Reason)},
			{Key: "funnelhouse.detail", Value: []byte(err.Detail)},
			{Key: "funnelhouse.topic", Value: []byte(r.Topic)},
			{Key: "funnelhouse.partition", Value: strconv.AppendInt(nil, int64(r.Partition), 10)},
			{Key: "funnelhouse.offset", Value: strconv.AppendInt(nil, r.Offset, 10)},
		},
	}
	o.pl.cl.Produce(context.Background(), dl, func(_ *kgo.Record, err error) {
		if err != nil {
			o.pl.dlqErr.CompareAndSwap(nil, &err)
		}
	})
}
