package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/funnelhouse/funnelhouse/bench/perf"
	chsink "github.com/funnelhouse/funnelhouse/sinks/clickhouse"
	fhsql "github.com/funnelhouse/funnelhouse/sql"
)

func benchCmd(ctx context.Context, args []string) error {
	fs := newFlagSet("bench", "End-to-end events per second, verified. On the embedded broker (a `funnelhouse broker` child, whose CPU\n"+
		"is counted as the broker's) and the ClickHouse of --clickhouse:\n"+
		"produce --events generated events once, then run `funnelhouse run` (a child process) from a cold start until\n"+
		"drained, --runs times, each on a fresh database, checking every view against the expected computation;\n"+
		"time every view on the last run's database (all rows read, median of 5 after a warm-up: view_query_ms);\n"+
		"measure append-to-visible latency with live traffic; run the peers on the same records; print a table\n"+
		"(and JSON with --json). Generated with no malformed records: ClickHouse 18.16's Kafka engine cannot skip them.\n\n"+
		"With --live: real-time traffic instead (events with ts = now, each held for --lateness), see the --live-* flags.\n\n"+
		"With --cluster: each measured run is repeated on a ClickHouse cluster (system funnelhouse-cluster), its database migrated\n"+
		"with `migrate --cluster`; with --cluster-dir (deploy/cluster.sh's directory) its CPU is the sum over its servers, ZooKeeper's apart.")
	var ch clickhouseFlags
	var cfg perf.Config
	var jsonOut string
	ch.register(fs)
	fs.Lookup("clickhouse").DefValue = "clickhouse://default@127.0.0.1:9000/funnelhouse_bench"
	_ = fs.Set("clickhouse", "clickhouse://default@127.0.0.1:9000/funnelhouse_bench")
	fs.IntVar(&cfg.Events, "events", 5_000_000, "approximate number of generated events")
	fs.IntVar(&cfg.Runs, "runs", 3, "measured runs of funnelhouse (the median is reported)")
	fs.IntVar(&cfg.Partitions, "partitions", 4, "partitions of the topics")
	cfg.Peers = slices.Clone(perf.Peers)
	fs.Var(listFlag{&cfg.Peers}, "peers", "peers to measure on the same records: kafka-engine (ClickHouse's Kafka table engine, raw ingest), naive (bench/naive),\n"+
		"query-time (the Kafka engine's raw events with the four core views computed at query time; its dashboard is timed beside funnelhouse's); empty for none")
	fs.StringVar(&jsonOut, "json", "", "also write the results as JSON to this `file` (- for stdout)")
	fs.StringVar(&cfg.CHPIDFile, "clickhouse-pid-file", "", "pid file of the ClickHouse server, to report its CPU seconds (same machine only)")
	fs.StringVar(&cfg.BrokerDataDir, "broker-data-dir", "", "the embedded broker keeps the records in a new directory under this `directory`, removed at the end,\n"+
		"instead of its memory (about 300 B a record: use it from 20M events on)")
	fs.IntVar(&cfg.LatencySeconds, "latency-seconds", 10, "seconds of live traffic for the latency measurement (0: skip)")
	fs.IntVar(&cfg.LatencyRate, "latency-rate", 20_000, "events per second of the live traffic")
	fs.Int64Var(&cfg.Seed, "seed", 1, "generator seed")
	fs.IntVar(&cfg.BatchRows, "batch-rows", 100_000, "--batch-rows of the measured funnelhouse run")
	fs.StringVar(&cfg.ProfileDir, "profile", "", "write a CPU profile of each measured funnelhouse run to this `directory` (GROUP.pprof), its heap at its largest live size (GROUP.heap.pprof) and where it waited (GROUP.block.pprof)")
	durationVar(fs, &cfg.FlushInterval, "flush-interval", time.Second, "--flush-interval of the measured funnelhouse run")
	fs.StringVar(&cfg.MemoryLimit, "memory-limit", "", "--memory-limit of the measured funnelhouse run (`bytes`, e.g. 512MiB; empty: run's default)")
	var growth []string
	fs.Var(listFlag{&growth}, "growth", "run the whole bench once per `size` in this list (events: 1000000, 5M, 20M) instead of --events,\n"+
		"and print how records/s, CPU, memory and storage grow; --json gets every size's report")
	var cl benchClusterFlags
	cl.register(fs)
	var live liveFlags
	live.register(fs)
	if err := parseWithEnv(fs, args); err != nil {
		return err
	}
	if live.on {
		if cl.name != "" {
			return fmt.Errorf("--cluster is not measured with --live: run bench --cluster without --live")
		}
		return live.run(ctx, fs, &ch, cfg, jsonOut)
	}
	for _, peer := range cfg.Peers {
		if !slices.Contains(perf.Peers, peer) {
			return fmt.Errorf("invalid --peers %q: want one of %s", peer, strings.Join(perf.Peers, ", "))
		}
	}
	var err error
	if cfg.Endpoint, err = ch.endpoint(); err != nil {
		return err
	}
	if cfg.Cluster, err = cl.target(cfg.Endpoint); err != nil {
		return err
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(harnessGCPercent)
	}
	if cfg.Bin, err = os.Executable(); err != nil {
		return err
	}
	if len(growth) > 0 {
		return runGrowth(ctx, cfg, growth, jsonOut)
	}
	rep, err := perf.Run(ctx, cfg)
	if rep != nil {
		perf.Print(os.Stdout, rep)
		if werr := writeJSON(jsonOut, rep); werr != nil {
			return werr
		}
	}
	return err
}

// harnessGCPercent is the bench process's GOGC unless GOGC is set (the
// measured children keep their own default). The harness keeps about 550 B
// per event for the check, 11 GB at 20M events, and Go's default of 100
// would let its heap reach twice that on a 24 GiB machine that also holds
// the broker's records and ClickHouse. Once the records are produced the
// harness allocates little, so collecting at 25 % growth costs no
// measured CPU.
const harnessGCPercent = 25

// benchClusterFlags are the flags of `bench --cluster`.
type benchClusterFlags struct {
	name, dsn, dir string
	inserts        []string
}

func (f *benchClusterFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.name, "cluster", "", "also measure funnelhouse on this ClickHouse `cluster` (remote_servers name, as migrate --cluster takes it),\n"+
		"each run right after the one on --clickhouse, on the same records; needs --cluster-clickhouse")
	fs.StringVar(&f.dsn, "cluster-clickhouse", "", "with --cluster: `DSN` of one server of the cluster, with the bench's database (dropped on every server and\n"+
		"migrated with the cluster form before each run); --clickhouse's password and TLS settings apply")
	fs.StringVar(&f.dir, "cluster-dir", "", "with --cluster: the cluster's deploy/cluster.sh `directory`, to report the CPU of its servers (DIR/s<shard>r<n>/pid)\n"+
		"and of ZooKeeper (DIR/zk/pid); same machine only")
	f.inserts = []string{chsink.DefaultClusterInsert}
	fs.Var(listFlag{&f.inserts}, "cluster-inserts", "with --cluster: the `modes` of run's --cluster-insert to measure, comma-separated (direct, distributed), each a result\n"+
		"of its own (funnelhouse-cluster-<mode>), in an order rotating from run to run")
}

// target turns the flags into a perf.ClusterTarget (nil without
// --cluster), with single's password and TLS.
func (f *benchClusterFlags) target(single chsink.Endpoint) (*perf.ClusterTarget, error) {
	if f.name == "" {
		if f.dsn != "" || f.dir != "" {
			return nil, fmt.Errorf("--cluster-clickhouse and --cluster-dir need --cluster (the cluster's name)")
		}
		return nil, nil
	}
	if err := fhsql.ValidateIdentifier("cluster", f.name); err != nil {
		return nil, fmt.Errorf("invalid --cluster: %w", err)
	}
	if f.dsn == "" {
		return nil, fmt.Errorf("--cluster %s needs --cluster-clickhouse, the DSN of one of its servers with the bench's database", f.name)
	}
	u, err := url.Parse(f.dsn)
	if err != nil {
		return nil, fmt.Errorf("invalid --cluster-clickhouse: %w", err)
	}
	// The bench drops the database: never the default one by omission.
	if strings.Trim(u.Path, "/") == "" {
		return nil, fmt.Errorf("--cluster-clickhouse %q names no database; add one, e.g. %s/funnelhouse_bench (the bench drops and re-creates it)", f.dsn, strings.TrimRight(f.dsn, "/"))
	}
	e := single
	e.DSN = f.dsn
	if f.dir != "" {
		if st, err := os.Stat(f.dir); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("invalid --cluster-dir %q: not a directory", f.dir)
		}
	}
	for _, m := range f.inserts {
		if !slices.Contains(chsink.ClusterInsertModes, m) {
			return nil, fmt.Errorf("invalid --cluster-inserts %q: want %s", m, strings.Join(chsink.ClusterInsertModes, ", "))
		}
	}
	return &perf.ClusterTarget{Name: f.name, Endpoint: e, Dir: f.dir, Inserts: f.inserts}, nil
}

// writeJSON writes v as indented JSON to file (- for stdout, "" for
// nowhere).
func writeJSON(file string, v any) error {
	if file == "" {
		return nil
	}
	out, _ := json.MarshalIndent(v, "", "  ")
	if file == "-" {
		fmt.Println(string(out))
		return nil
	}
	return os.WriteFile(file, append(out, '\n'), 0o644)
}

// runGrowth runs the bench at each size of sizes.
func runGrowth(ctx context.Context, cfg perf.Config, sizes []string, jsonOut string) error {
	var g perf.Growth
	var events []int
	for _, s := range sizes {
		n, err := parseCount(s)
		if err != nil {
			return fmt.Errorf("invalid --growth %q: %w", s, err)
		}
		events = append(events, n)
	}
	var errs []error // a size that fails does not stop the next
	for _, n := range events {
		cfg.Events = n
		fmt.Fprintf(os.Stderr, "growth: %d events\n", n)
		rep, err := perf.Run(ctx, cfg)
		if rep != nil {
			perf.Print(os.Stdout, rep)
			g.Reports = append(g.Reports, rep)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "growth: %d events: %v\n", n, err)
			errs = append(errs, fmt.Errorf("%d events: %w", n, err))
		}
		if ctx.Err() != nil {
			break
		}
	}
	perf.PrintGrowth(os.Stdout, &g)
	return errors.Join(append(errs, writeJSON(jsonOut, &g))...)
}

// parseCount reads a count with an optional k or M suffix (5M, 500k).
func parseCount(s string) (int, error) {
	mult := 1
	switch {
	case strings.HasSuffix(s, "M"):
		s, mult = strings.TrimSuffix(s, "M"), 1_000_000
	case strings.HasSuffix(s, "k"):
		s, mult = strings.TrimSuffix(s, "k"), 1_000
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("want a positive count such as 1000000, 500k or 5M")
	}
	return n * mult, nil
}
