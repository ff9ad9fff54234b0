package pipeline

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/funnelhouse/funnelhouse/bench/traffic"
	"github.com/funnelhouse/funnelhouse/pipeline/rows"
)

// TestPipelineInterrupted runs the Kafka side on kfake against an
// in-memory Sink, once without interruption and once with a member that
// crashes between its rows and its state, then two members sharing the
// group, one of which leaves mid-run. The tables and the stored counters
// must be the same: what a partition's new owner restores and replays
// changes nothing.
func TestPipelineInterrupted(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the pipeline on an in-process broker")
	}
	const partitions = 4
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()
	tcfg := traffic.Config{Seed: 5, Events: 20_000}.WithDefaults()
	produced := produceTopics(t, brokers, partitions, tcfg)

	// Without interruption.
	ref := newMemSink()
	pl := startPipeline(t, brokers, "ref", ref)
	waitFor(t, "the reference run to drain", pl.Drained)
	refTotals := pl.stop(t)
	refStats := ref.storedStats(t, partitions)
	if got := refStats.Records[0] + refStats.Records[1]; got != produced {
		t.Fatalf("the reference run counted %d records, %d were produced", got, produced)
	}
	if !reflect.DeepEqual(refTotals, refStats) {
		t.Errorf("the reference run's Totals differ from its stored counters:\n%+v\n%+v", refTotals, refStats)
	}
	events := len(ref.events)
	t.Logf("reference: %d records, %d events, %d sessions, %d transitions", produced, events, len(ref.sessions), len(ref.transitions))

	// A member that crashes after storing its rows but not the state that
	// covers them, once it has stored a checkpoint and a third of the events
	// (rows go out between checkpoints too).
	sink := newMemSink()
	sink.delay = 5 * time.Millisecond // slow enough to see the members come and go
	sink.failWhen = func(s *memSink) bool { return len(s.state) > 0 && len(s.events) > events/3 }
	crashed := startPipeline(t, brokers, "g", sink)
	if err := crashed.wait(t); err == nil || !strings.Contains(err.Error(), errCrash.Error()) {
		t.Fatalf("the crashing member ended with %v, want %v", err, errCrash)
	}
	stored := len(sink.state)
	if n := len(sink.events); n <= events/3 || n >= events || stored == 0 {
		t.Fatalf("crashed with %d of %d events and %d state rows stored, want a run interrupted on the way", n, events, stored)
	}
	t.Logf("crashed with %d of %d events stored, %d state rows", len(sink.events), events, stored)
	sink.recover()

	// Its successor restores the last checkpoints; a second member joins,
	// takes half the partitions and leaves again.
	first := startPipeline(t, brokers, "g", sink)
	waitFor(t, "the successor to store a checkpoint", func() bool { return sink.checkpointCount() > 0 })
	second := startPipeline(t, brokers, "g", sink)
	waitFor(t, "the second member to own partitions", second.Ready)
	before := sink.writeCount()
	waitFor(t, "the second member to store a checkpoint", func() bool { return sink.writeCount() > before+2 })
	t.Logf("the second member stops after %d checkpoints in two", sink.writeCount()-before)
	second.stop(t)
	waitFor(t, "the first member to drain", first.Drained)
	first.stop(t)

	if got := sink.storedStats(t, partitions); !reflect.DeepEqual(got, refStats) {
		t.Errorf("stored counters:\n got %+v\nwant %+v", got, refStats)
	}
	for name, pair := range map[string][2]any{
		"events":      {sink.events, ref.events},
		"sessions":    {sink.sessions, ref.sessions},
		"transitions": {sink.transitions, ref.transitions},
	} {
		if !reflect.DeepEqual(pair[0], pair[1]) {
			t.Errorf("%s differ from the run without interruption", name)
		}
	}
}

// produceTopics creates the input topics and the dead-letter topic and
// produces the generated traffic; it returns the number of records.
func produceTopics(t *testing.T, brokers []string, partitions int32, cfg traffic.Config) uint64 {
	t.Helper()
	// Small batches, fetched a few at a time (see startPipeline), so that
	// the members see the records arrive over many checkpoints.
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerBatchMaxBytes(16<<10))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopics(ctx, partitions, 1, nil, cfg.ClickstreamTopic, cfg.TransactionsTopic); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "funnelhouse.dlq"); err != nil {
		t.Fatal(err)
	}
	gen, err := traffic.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	var r traffic.Record
	for gen.Next(&r) {
		recs = append(recs, &kgo.Record{Topic: r.Topic, Key: clone(r.Key), Value: clone(r.Value)})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	return uint64(len(recs))
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

type testPipeline struct {
	*Pipeline
	cancel context.CancelFunc
	done   chan error
}

func startPipeline(t *testing.T, brokers []string, group string, sink Sink) *testPipeline {
	t.Helper()
	rules := DefaultRules()
	rules.IdleAdvance = 300 * time.Millisecond
	pl, err := New(Config{
		Brokers: brokers, Group: group, Rules: rules, BatchRows: 500, FlushInterval: 50 * time.Millisecond, CheckpointInterval: 150 * time.Millisecond,
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		KafkaOpts: []kgo.Opt{kgo.HeartbeatInterval(100 * time.Millisecond), kgo.FetchMaxBytes(64 << 10), kgo.FetchMaxPartitionBytes(16 << 10)},
	}, sink)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tp := &testPipeline{Pipeline: pl, cancel: cancel, done: make(chan error, 1)}
	go func() { tp.done <- pl.Run(ctx) }()
	return tp
}

// wait returns what Run returned.
func (tp *testPipeline) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-tp.done:
		tp.cancel()
		return err
	case <-time.After(time.Minute):
		t.Fatal("Run did not return within a minute")
		return nil
	}
}

// stop shuts the member down gracefully and returns its Totals.
func (tp *testPipeline) stop(t *testing.T) Stats {
	t.Helper()
	tp.cancel()
	if err := tp.wait(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	return tp.Totals()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var errCrash = errors.New("memSink: crashed between the rows and the state")

// memSink is a Sink in memory that keeps rows as ClickHouse's tables do
// (ReplacingMergeTree): a row replaces the row of the same sorting key,
// and pipeline_state keeps each key's row of the highest epoch.
type memSink struct {
	mu          sync.Mutex
	events      map[[2]string]rows.Event   // visitor_id, event_id
	sessions    map[[2]string]rows.Session // visitor_id, session_id
	transitions map[transitionKey]rows.Transition
	state       map[stateKey]rows.State
	writes      int
	checkpoints int // writes that carried state

	delay time.Duration // each Write takes this long
	// failWhen, when set, is asked after the rows of each Write are
	// stored: true fails it before its state, and every later Write, as a
	// process killed between the inserts would.
	failWhen func(*memSink) bool
	failed   bool
}

type transitionKey struct {
	visitorID string
	stage     rows.Stage
	tsMs      int64
}

type stateKey struct {
	group     string
	partition int32
	kind      rows.StateKind
	key       string
}

func newMemSink() *memSink {
	return &memSink{events: map[[2]string]rows.Event{}, sessions: map[[2]string]rows.Session{},
		transitions: map[transitionKey]rows.Transition{}, state: map[stateKey]rows.State{}}
}

func (s *memSink) Write(ctx context.Context, batches []*rows.Batch) error {
	time.Sleep(s.delay)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failed {
		return errCrash
	}
	// The strings of a batch are only valid until it is given back.
	for _, b := range batches {
		for _, r := range b.Events.All() {
			r = cloneStrings(r)
			s.events[[2]string{r.VisitorID, r.EventID}] = r
		}
		for _, r := range b.Sessions.All() {
			r = cloneStrings(r)
			s.sessions[[2]string{r.VisitorID, r.SessionID}] = r
		}
		for _, r := range b.Transitions.All() {
			r = cloneStrings(r)
			s.transitions[transitionKey{r.VisitorID, r.Stage, r.TsMs}] = r
		}
	}
	if s.failWhen != nil && s.failWhen(s) {
		s.failed = true
		return errCrash
	}
	for _, b := range batches {
		if b.State.Len() > 0 {
			s.checkpoints++
		}
		for _, r := range b.State.All() {
			r = cloneStrings(r)
			k := stateKey{r.Group, r.Partition, r.Kind, r.Key}
			if old, ok := s.state[k]; !ok || r.Epoch >= old.Epoch {
				s.state[k] = r
			}
		}
	}
	s.writes++
	return nil
}

func (s *memSink) LoadState(_ context.Context, group string, partition int32) ([]rows.State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []rows.State
	for k, r := range s.state {
		if k.group == group && k.partition == partition {
			out = append(out, r)
		}
	}
	return out, nil
}

func (s *memSink) LoadVisitors(_ context.Context, group string, partition int32, keys []string) ([]rows.State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []rows.State
	for _, k := range keys {
		if r, ok := s.state[stateKey{group, partition, rows.StateVisitor, k}]; ok {
			out = append(out, r)
		}
	}
	return out, nil
}

func (s *memSink) Healthy() bool { return true }

// recover lets Writes succeed again, as a restarted process would.
func (s *memSink) recover() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failed, s.failWhen, s.checkpoints = false, nil, 0
}

func (s *memSink) checkpointCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.checkpoints
}

func (s *memSink) writeCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes
}

func (s *memSink) stateRows() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.state)
}

// storedStats sums the counters of each partition's newest checkpoint.
func (s *memSink) storedStats(t *testing.T, partitions int) Stats {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var total Stats
	n := 0
	for k, r := range s.state {
		if k.kind != rows.StateCheckpoint {
			continue
		}
		st, err := CheckpointStats([]byte(r.Data))
		if err != nil {
			t.Fatal(err)
		}
		total.Add(&st)
		n++
	}
	if n != partitions {
		t.Fatalf("%d partitions have a checkpoint, want %d", n, partitions)
	}
	return total
}

// cloneStrings copies the string fields of a row.
func cloneStrings[R any](r R) R {
	v := reflect.ValueOf(&r).Elem()
	for i := range v.NumField() {
		if f := v.Field(i); f.Kind() == reflect.String {
			f.SetString(strings.Clone(f.String()))
		}
	}
	return r
}

// TestShutdownWithBrokerGone stops a member whose broker is gone: the
// final checkpoint's offset commit fails as a whole, with no response,
// and Run must return instead of panicking on it (chaos seed 415: a
// SIGTERM after a broker restart).
func TestShutdownWithBrokerGone(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the pipeline on an in-process broker")
	}
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	brokers := cluster.ListenAddrs()
	produceTopics(t, brokers, 2, traffic.Config{Seed: 6, Events: 2_000}.WithDefaults())
	sink := newMemSink()
	pl, err := New(Config{Brokers: brokers, Group: "gone", BatchRows: 500, FlushInterval: 50 * time.Millisecond, CheckpointInterval: 150 * time.Millisecond, ShutdownTimeout: time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, sink)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pl.Run(ctx) }()
	waitFor(t, "a checkpoint", func() bool { return sink.writeCount() >= 2 })
	cluster.Close()
	cancel()
	select {
	case err := <-done:
		t.Logf("Run returned %v", err)
	case <-time.After(time.Minute):
		t.Fatal("Run did not return within a minute of the shutdown")
	}
}
