// Package pipeline turns decoded events into funnelhouse's rows: it consumes
// the co-partitioned input topics, keeps one owner goroutine per partition
// number with that partition's state (watermark, pending events, open
// sessions, visitor lifecycle, recent event ids), and hands the rows
// (package rows) to a Sink, ClickHouse in production. Offsets are
// committed, and state checkpointed, only after the Sink acknowledged the
// rows derived before them (SPEC §7).
//
// The files follow the data: processor.go (one partition's event-time
// Processor) with session.go, lifecycle.go, visitors.go, queue.go and
// snapshot.go; pipeline.go (the Pipeline and its poll loop), owner.go (the
// goroutine per partition), checkpoint.go (cut, write, commit),
// rebalance.go (assign, restore, revoke), topics.go, membership.go,
// config.go and metrics.go.
package pipeline

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/funnelhouse/funnelhouse/pipeline/rows"
	"github.com/funnelhouse/funnelhouse/schemas"
)

// Sink is where rows and state go: ClickHouse in production
// (sinks/clickhouse.Sink). The Pipeline calls Write from one goroutine at
// a time (checkpoints are serialised), LoadState from the group's
// assignment callback, and Healthy from any goroutine.
type Sink interface {
	// Write blocks until every row of the batches is acknowledged (retrying
	// as needed) or ctx ends; an error means some rows may not be stored.
	// It only reads the batches, and does not keep them: the caller gives
	// them back to rows.PutBatch afterwards.
	Write(ctx context.Context, batches []*rows.Batch) error
	// LoadState returns the newest state rows (pipeline_state) of a
	// group's partition: for each kind and key, the row of the highest
	// epoch. It sees every Write that returned before it.
	LoadState(ctx context.Context, group string, partition int32) ([]rows.State, error)
	// LoadVisitors returns the newest 'visitor' rows of the given keys of
	// a group's partition, as LoadState would (forgotten visitors coming
	// back, see Rules.ForgetAfter).
	LoadVisitors(ctx context.Context, group string, partition int32, keys []string) ([]rows.State, error)
	// Healthy reports whether the last write succeeded.
	Healthy() bool
}

// Pipeline consumes the input topics as one member of a consumer group and
// writes rows to a Sink.
type Pipeline struct {
	cfg    Config
	sink   Sink
	log    *slog.Logger
	topics [2]string

	cl *kgo.Client

	mu       sync.Mutex // guards owners
	owners   map[int32]*owner
	cpMu     sync.Mutex // one checkpoint at a time
	buffered atomic.Int64
	// bufferedBytes estimates the memory of the buffered rows.
	bufferedBytes atomic.Int64
	budget        budget
	fetchPaused   atomic.Bool // poll waits for buffered rows to drain
	flushNow      chan struct{}
	// checkpointNow asks checkpointLoop for a checkpoint before its time.
	checkpointNow chan struct{}
	assigned      atomic.Bool
	dlqErr        atomic.Pointer[error]
	totals        Stats // of stopped owners, guarded by mu
	writeCtx      context.Context
	failed        error                                   // the first failed checkpoint, guarded by cpMu
	inflight      atomic.Pointer[context.CancelCauseFunc] // cancels the checkpoint being written
	stopPoll      context.CancelFunc                      // ends Run's poll (set before it starts)
	fatal         atomic.Pointer[error]                   // a group error no retry can mend
	metrics       *metrics
}

// New validates cfg and returns a pipeline; Run starts it.
func New(cfg Config, sink Sink) (*Pipeline, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	pl := &Pipeline{
		cfg:           cfg,
		sink:          sink,
		log:           cfg.Logger,
		topics:        [2]string{cfg.ClickstreamTopic, cfg.TransactionsTopic},
		owners:        map[int32]*owner{},
		flushNow:      make(chan struct{}, 1),
		checkpointNow: make(chan struct{}, 1),
		budget:        newBudget(cfg.MemoryLimit),
	}
	rows.LimitFreeBatches(pl.budget.rowBytes / 8) // about a flush's event rows: the pool passes them on, it need not hold more
	var err error
	pl.metrics, err = newMetrics(cfg.Registerer, pl)
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

// Ready reports whether partitions are assigned, the sink is healthy, no
// fatal group error has occurred and no dead letter failed.
func (pl *Pipeline) Ready() bool {
	return pl.assigned.Load() && pl.sink.Healthy() && pl.fatal.Load() == nil && pl.dlqErr.Load() == nil
}

// Run consumes until ctx ends, then shuts down gracefully: it stops
// fetching, writes and checkpoints what was processed, commits, and leaves
// the group. It returns an error if it could not start or could not store
// a checkpoint.
func (pl *Pipeline) Run(ctx context.Context) error {
	// A failed checkpoint or restore ends the poll at once: waiting for
	// the next records could take forever on a quiet topic. Set first: the
	// group's callbacks may run as soon as the client exists.
	pollCtx, stopPoll := context.WithCancel(ctx)
	defer stopPoll()
	pl.stopPoll = stopPoll
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
		// Transaction markers take offsets too; seen, they move the input
		// past them (Processor.Skip), so that it can be caught up.
		kgo.KeepControlRecords(),
		kgo.OnPartitionsAssigned(pl.onAssigned),
		kgo.AdjustFetchOffsetsFn(pl.adjustOffsets),
		kgo.OnPartitionsRevoked(pl.onRevoked),
		kgo.OnPartitionsLost(pl.onLost),
		kgo.ProducerLinger(5 * time.Millisecond),
		// A dead letter that cannot be written within this fails the
		// checkpoint (and the member) with the producer's error, instead of
		// retrying forever while /readyz says ready.
		kgo.RecordDeliveryTimeout(dlqDeliveryTimeout),
		// Bound what is fetched ahead of processing, and let a resumed
		// partition be fetched soon (default wait 5s).
		kgo.FetchMaxBytes(pl.budget.fetchMax),
		kgo.FetchMaxWait(time.Second),
		kgo.WithHooks(groupErrorHook{pl}),
	}
	if pl.cfg.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(pl.cfg.InstanceID))
	}
	cl, err := kgo.NewClient(append(opts, pl.cfg.KafkaOpts...)...)
	if err != nil {
		return fieldWrap(err, "cannot create Kafka client for Brokers %v", pl.cfg.Brokers)
	}
	pl.cl = cl
	adm := kadm.NewClient(cl)
	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	partitions, err := CheckTopics(startCtx, adm, pl.topics[0], pl.topics[1], pl.cfg.DLQTopic)
	cancel()
	pl.metrics.partitions.Set(float64(partitions))
	if err != nil {
		cl.Close()
		return fieldWrap(err, "Brokers %s", strings.Join(pl.cfg.Brokers, ","))
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
	go func() {
		defer loops.Done()
		if err := pl.checkpointLoop(loopCtx); err != nil {
			cpErr <- err
			stopPoll()
		}
	}()
	go func() { defer loops.Done(); pl.endOffsetsLoop(loopCtx, adm) }()

	runErr := pl.poll(pollCtx, cpErr)

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
	if errors.Is(runErr, errPartitionsLost) {
		// franz-go reports the loss before the group error that explains
		// it (FENCED_INSTANCE_ID): give the error hook a moment.
		for wait := time.Now().Add(2 * time.Second); pl.fatal.Load() == nil && time.Now().Before(wait); {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if err := pl.fatal.Load(); err != nil {
		runErr = *err // the cause; a write it cancelled fails with less to say
	}
	if runErr == nil {
		runErr = pl.write(nil, true)
	}
	pl.stopOwners(nil)
	pl.closeClient(cl)
	return runErr
}

// leaveTimeout bounds leaving the group at shutdown.
const leaveTimeout = 10 * time.Second

// closeClient leaves the group and closes the client, up to leaveTimeout.
// franz-go's Close waits for a JoinGroup in flight, which the broker
// holds until the rebalance completes or times out (a minute by
// default): a member stopped mid-join would outlive its supervisor's
// grace period. The final checkpoint, if the member stops cleanly, is
// written by then, so it goes without; the group drops it after its
// session timeout.
func (pl *Pipeline) closeClient(cl *kgo.Client) {
	closed := make(chan struct{})
	go func() { cl.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(leaveTimeout):
		pl.log.Warn("leaving the consumer group takes too long (a join in flight waits for the rebalance): stopping without it", "waited", leaveTimeout)
	}
}

// poll fetches records and hands them to partition owners.
func (pl *Pipeline) poll(ctx context.Context, cpErr <-chan error) error {
	limit := int64(2 * pl.cfg.BatchRows)
	for {
		// Backpressure: while ClickHouse is slow or down, rows pile up in
		// checkpoints that cannot be written; stop fetching until they drain.
		if err := pl.waitForBuffered(ctx, cpErr, limit); err != nil || ctx.Err() != nil {
			return err
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
		pl.deliver(fetches)
		pl.cl.AllowRebalance()
	}
}

// deliver hands each partition's fetched records to its owner. An owner
// may be slow to take them (a checkpoint or a visitor load waiting for
// ClickHouse): the sends happen without pl.mu, so that what reads the
// owners meanwhile (metrics, Drained) does not wait with them.
func (pl *Pipeline) deliver(fetches kgo.Fetches) {
	type delivery struct {
		o   *owner
		msg ownerMsg
	}
	var out []delivery
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
		out = append(out, delivery{o, ownerMsg{topic: pl.topicOf(ftp.Topic), records: ftp.Records}})
	})
	pl.mu.Unlock()
	for _, d := range out {
		select {
		case d.o.in <- d.msg:
		case <-d.o.quit: // revoked meanwhile: the next owner reads them again
		}
	}
}

// waitForBuffered pauses fetching while more rows than limit, or more
// bytes of rows than the memory budget allows, wait for ClickHouse.
func (pl *Pipeline) waitForBuffered(ctx context.Context, cpErr <-chan error, limit int64) error {
	defer pl.fetchPaused.Store(false)
	for (pl.buffered.Load() > limit || pl.bufferedBytes.Load() > pl.budget.rowBytes) && pl.fatal.Load() == nil {
		pl.fetchPaused.Store(true)
		select {
		case <-ctx.Done():
			return nil
		case err := <-cpErr:
			return err
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

func (pl *Pipeline) topicOf(name string) schemas.Topic {
	if name == pl.topics[schemas.Transactions] {
		return schemas.Transactions
	}
	return schemas.Clickstream
}
