package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	runtimepprof "runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/funnelhouse/funnelhouse/pipeline"
	"github.com/funnelhouse/funnelhouse/pipeline/status"
	chsink "github.com/funnelhouse/funnelhouse/sinks/clickhouse"
)

const defaultDSN = "clickhouse://default@127.0.0.1:9000/funnelhouse"

// clickhouseFlags say how to reach ClickHouse.
type clickhouseFlags struct {
	dsn          string
	password     string
	passwordFile string
	tls          tlsFlags
}

func (f *clickhouseFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.dsn, "clickhouse", defaultDSN, "ClickHouse `DSN` clickhouse://user@host:port/database (native protocol; the database is created by migrate)")
	fs.StringVar(&f.password, "clickhouse-password", "", "ClickHouse password, overriding the DSN's; prefer FUNNELHOUSE_CLICKHOUSE_PASSWORD or --clickhouse-password-file")
	fs.StringVar(&f.passwordFile, "clickhouse-password-file", "", "read the ClickHouse password from this `file` (e.g. a mounted Secret)")
	f.tls.register(fs, "clickhouse-", "ClickHouse")
}

func (f *clickhouseFlags) endpoint() (chsink.Endpoint, error) {
	password, err := secret("clickhouse-password", f.password, f.passwordFile)
	if err != nil {
		return chsink.Endpoint{}, err
	}
	tc, err := f.tls.config("clickhouse-")
	if err != nil {
		return chsink.Endpoint{}, err
	}
	return chsink.Endpoint{DSN: f.dsn, Password: password, TLS: tc}, nil
}

// pipelineFlags are the flags of `run`, shared with `demo`.
type pipelineFlags struct {
	cfg pipeline.Config
	clickhouseFlags
	kafka          kafkaSecurity
	metricsAddr    string
	pprof          bool
	memoryLimit    string
	sessionTimeout time.Duration
	clusterInsert  string
}

func (f *pipelineFlags) register(fs *flag.FlagSet, withKafka bool) {
	d := pipeline.DefaultConfig()
	r := d.Rules
	f.cfg.Rules = r
	if withKafka {
		f.cfg.Brokers = []string{"127.0.0.1:9092"}
		fs.Var(listFlag{&f.cfg.Brokers}, "brokers", "Kafka bootstrap brokers, a comma-separated list of `host:port`")
		fs.StringVar(&f.cfg.Group, "group", d.Group, "consumer group; all members share the partitions")
		fs.StringVar(&f.cfg.InstanceID, "instance-id", "", "static group membership (KIP-345): a member restarted within --session-timeout takes its partitions back at once, without a rebalance; give each member its own stable `id` (a StatefulSet pod name), never one shared by two processes; empty: dynamic membership")
		fs.StringVar(&f.cfg.ClickstreamTopic, "clickstream-topic", d.ClickstreamTopic, "input topic of clickstream events")
		fs.StringVar(&f.cfg.TransactionsTopic, "transactions-topic", d.TransactionsTopic, "input topic of transaction events, co-partitioned with the clickstream topic")
		fs.StringVar(&f.cfg.DLQTopic, "dlq-topic", d.DLQTopic, "dead-letter topic for records that fail validation")
		f.kafka.register(fs)
	}
	f.clickhouseFlags.register(fs)
	durationVar(fs, &f.cfg.Rules.SessionGap, "session-gap", r.SessionGap, "inactivity gap that ends a session (event time) (a `duration`: 30m, 2160h, 90d)")
	durationVar(fs, &f.cfg.Rules.Lateness, "lateness", r.Lateness, "allowed lateness: events older than max ts seen minus this are late (a `duration`: 30m, 2160h, 90d)")
	durationVar(fs, &f.cfg.Rules.ChurnAfter, "churn-after", r.ChurnAfter, "a customer inactive this long churns (a `duration`: 30m, 2160h, 90d)")
	durationVar(fs, &f.cfg.Rules.ForgetAfter, "forget-after", r.ForgetAfter, "a visitor inactive this long (event time) leaves memory at a checkpoint, and is loaded back from pipeline_state if it returns: the rows are the same, memory holds only recent visitors; 0 keeps every visitor (a `duration`: 30m, 2160h, 90d)")
	durationVar(fs, &f.cfg.Rules.IdleAdvance, "idle-advance", r.IdleAdvance, "an input idle this long (processing time) stops holding the watermark back (a `duration`: 30m, 2160h, 90d)")
	fs.IntVar(&f.cfg.BatchRows, "batch-rows", d.BatchRows, "flush to ClickHouse when this many rows are buffered")
	durationVar(fs, &f.cfg.FlushInterval, "flush-interval", d.FlushInterval, "flush rows to ClickHouse at least this often (a `duration`: 30m, 2160h, 90d)")
	durationVar(fs, &f.cfg.CheckpointInterval, "checkpoint-interval", d.CheckpointInterval, "write the state and commit offsets this often; after a crash the rows since are written again, replacing themselves (a `duration`: 30m, 2160h, 90d)")
	fs.StringVar(&f.cfg.SpillDir, "spill-dir", "", "`directory` for held events beyond a few thousand per partition (on real-time traffic, every event of the last --lateness), compressed until the watermark releases them; files are deleted as they are created, so a crash leaves none; use a disk, not a tmpfs; empty: $TMPDIR or /tmp")
	fs.StringVar(&f.metricsAddr, "metrics-addr", "127.0.0.1:9464", "listen address for /metrics, /healthz and /readyz (empty: off)")
	fs.StringVar(&f.memoryLimit, "memory-limit", "", "the process's memory budget (`bytes`: 1073741824, 1024MiB, 1GiB): rows waiting for ClickHouse are bounded to an eighth of it in bytes (fetching pauses above), decoded held events and fetched records to small shares, and the Go GC collects harder as the heap nears the budget less 10% (and at GOGC=50 unless GOGC is set); empty: GOMEMLIMIT if set, else the cgroup's memory limit, else 1GiB")
	fs.BoolVar(&f.pprof, "pprof", false, "also serve /debug/pprof/ on --metrics-addr, unauthenticated (profiles of CPU, memory, goroutines): only where nobody else can reach that address")
	durationVar(fs, &f.cfg.ShutdownTimeout, "shutdown-timeout", d.ShutdownTimeout, "on SIGTERM, give up writing the last rows after this (the successor replays them)")
	fs.StringVar(&f.clusterInsert, "cluster-insert", chsink.DefaultClusterInsert, "on a database migrated with migrate --cluster: `direct` splits each batch by the sharding key (cityHash64(visitor_id)) and inserts into\n"+
		"each shard's local tables on one replica of the shard, failing over to its other replicas; distributed inserts through the Distributed tables\n"+
		"with insert_distributed_sync=1 (bench/RESULTS.md compares them); either way pipeline_state is written and read on one replica per shard\n"+
		"(docs/operations.md), so that a checkpoint is read back where it was written")
	durationVar(fs, &f.sessionTimeout, "session-timeout", 45*time.Second, "consumer group session timeout: a member silent this long is dropped and its partitions move (the broker's minimum applies)")
}

func runCmd(ctx context.Context, args []string) error {
	fs := newFlagSet("run", "Consume the clickstream and transactions topics as a member of a consumer group,\nsessionise events, attribute lifecycle stages and write the results to ClickHouse.\nEvery flag can also be set as FUNNELHOUSE_<FLAG>, e.g. FUNNELHOUSE_BROKERS.")
	var f pipelineFlags
	f.register(fs, true)
	check := fs.Bool("check", false, "validate the configuration and connectivity (brokers, topics and partition counts, ClickHouse, migrations), print a verdict and exit")
	cpuProfile := fs.String("cpu-profile", "", "write a CPU profile of the whole run to this `file` (see go tool pprof); --pprof serves /debug/pprof on --metrics-addr for a window")
	heapProfile := fs.String("heap-profile", "", "write a heap profile to this `file` each time the live heap grows by a tenth past its largest (checked every second),\n"+
		"so that it shows what the heap held at its largest, where peak RSS comes from (see go tool pprof -sample_index=inuse_space)")
	blockProfile := fs.String("block-profile", "", "write a profile of where goroutines waited (channels, locks, selects: a wait of 10µs or more is always sampled) to this `file` at exit:\n"+
		"where the member waits for its input, its checkpoints or ClickHouse rather than works (see go tool pprof)")
	if err := parseWithEnv(fs, args); err != nil {
		return err
	}
	if *check {
		return checkRun(ctx, os.Stdout, &f)
	}
	if *cpuProfile != "" {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	if *heapProfile != "" {
		stop, err := startHeapProfile(*heapProfile, time.Second)
		if err != nil {
			return err
		}
		defer stop()
	}
	if *blockProfile != "" {
		stop, err := startBlockProfile(*blockProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	return runPipeline(ctx, &f, nil)
}

// startBlockProfile samples where goroutines wait, from now until stop,
// which writes the profile to path. Waits of 10µs or more are all kept,
// shorter ones in proportion: what a member's goroutines spend waiting on
// each other shows, not each nanosecond of a busy channel.
func startBlockProfile(path string) (stop func(), err error) {
	out, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--block-profile: %w", err)
	}
	runtime.SetBlockProfileRate(int((10 * time.Microsecond).Nanoseconds()))
	return func() {
		runtime.SetBlockProfileRate(0)
		if err := errors.Join(runtimepprof.Lookup("block").WriteTo(out, 0), out.Close()); err != nil {
			slog.Warn("cannot write the block profile", "file", path, "err", err)
		}
	}, nil
}

// startHeapProfile writes a heap profile to path each time the live heap
// (as the last collection left it) has grown by a tenth past the largest
// seen, checked every interval. The file then holds the heap at (about)
// its largest: what peak RSS is made of, which a profile taken at exit,
// after the last flush, does not show.
func startHeapProfile(path string, interval time.Duration) (stop func(), err error) {
	if err := writeHeapProfile(path); err != nil {
		return nil, fmt.Errorf("--heap-profile: %w", err)
	}
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		live := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		largest := uint64(0)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			metrics.Read(live)
			if n := live[0].Value.Uint64(); n > largest+largest/10 {
				largest = n
				if err := writeHeapProfile(path); err != nil {
					slog.Warn("cannot write the heap profile", "file", path, "err", err)
				}
			}
		}
	}()
	return func() { close(done); <-finished }, nil
}

// writeHeapProfile replaces path with the current heap profile.
func writeHeapProfile(path string) error {
	tmp := path + ".tmp"
	out, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if err := errors.Join(runtimepprof.Lookup("heap").WriteTo(out, 0), out.Close()); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

func startCPUProfile(path string) (stop func(), err error) {
	out, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpu-profile: %w", err)
	}
	if err := runtimepprof.StartCPUProfile(out); err != nil {
		out.Close()
		return nil, fmt.Errorf("--cpu-profile: %w", err)
	}
	return func() {
		runtimepprof.StopCPUProfile()
		out.Close()
	}, nil
}

// runPipeline opens the sink and runs the pipeline until ctx ends.
func runPipeline(ctx context.Context, f *pipelineFlags, onReady func(*pipeline.Pipeline)) error {
	limit, source, err := applyMemoryLimit(f.memoryLimit)
	if err != nil {
		return err
	}
	gcPercent, gcFrom := applyGCPercent()
	slog.Info("memory budget", "bytes", limit, "from", source, "gc_limit", debug.SetMemoryLimit(-1), "gc_percent", gcPercent, "gc_percent_from", gcFrom)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	followLiveHeap(ctx, debug.SetMemoryLimit(-1), reg)
	hook, err := killHook()
	if err != nil {
		return err
	}
	endpoint, err := f.endpoint()
	if err != nil {
		return err
	}
	kafkaOpts, err := f.kafka.opts()
	if err != nil {
		return err
	}
	if err := flagErrors(f.cfg.Validate()); err != nil {
		return err
	}
	if f.clusterInsert != "" && !slices.Contains(chsink.ClusterInsertModes, f.clusterInsert) {
		return fmt.Errorf("invalid --cluster-insert %q: want %s", f.clusterInsert, strings.Join(chsink.ClusterInsertModes, " or "))
	}
	sink, err := chsink.Open(ctx, chsink.Config{Endpoint: endpoint, Registerer: reg, Hook: hook, ClusterInsert: f.clusterInsert})
	if err != nil {
		return err
	}
	defer sink.Close()
	cfg := f.cfg
	cfg.Registerer = reg
	cfg.MemoryLimit = limit
	cfg.KafkaOpts = append(cfg.KafkaOpts, kafkaOpts...)
	if f.sessionTimeout > 0 {
		cfg.KafkaOpts = append(cfg.KafkaOpts, kgo.SessionTimeout(f.sessionTimeout), kgo.HeartbeatInterval(min(max(f.sessionTimeout/10, 100*time.Millisecond), 3*time.Second)))
	}
	pl, err := pipeline.New(cfg, sink)
	if err != nil {
		return flagErrors(err)
	}
	if f.metricsAddr != "" {
		srv, err := status.Serve(f.metricsAddr, reg, pl.Ready, f.pprof)
		if err != nil {
			return fmt.Errorf("--metrics-addr: %w", err)
		}
		defer srv.Close()
	}
	if onReady != nil {
		onReady(pl)
	}
	slog.Info("pipeline starting", "brokers", f.cfg.Brokers, "group", f.cfg.Group, "instance_id", f.cfg.InstanceID, "database", sink.Database())
	return f.kafka.saslHint(flagErrors(pl.Run(ctx)))
}
