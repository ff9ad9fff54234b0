package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/funnelhouse/funnelhouse/bench/expected"
	"github.com/funnelhouse/funnelhouse/bench/traffic"
	"github.com/funnelhouse/funnelhouse/deploy/kafka"
	chsink "github.com/funnelhouse/funnelhouse/sinks/clickhouse"
)

// benchResult is one measured system in a bench run.
type benchResult struct {
	System         string    `json:"system"`
	Runs           int       `json:"runs"`
	Records        int64     `json:"records"`
	Rows           int64     `json:"rows_per_run"`
	Seconds        []float64 `json:"seconds"`
	MedianSeconds  float64   `json:"median_seconds"`
	RecordsPerSec  float64   `json:"records_per_s"`
	EventsPerSec   float64   `json:"events_per_s,omitempty"`
	PeakRSSMiB     float64   `json:"peak_rss_mib,omitempty"`
	CPUSecPerMEv   float64   `json:"cpu_s_per_million_records,omitempty"`
	CHCPUSecPerMEv float64   `json:"clickhouse_cpu_s_per_million_records,omitempty"`
	// The bench process's own CPU while the system ran: with the embedded
	// broker, mostly the broker serving fetches.
	BenchCPUSecPerMEv float64 `json:"bench_process_cpu_s_per_million_records,omitempty"`
	Note              string  `json:"note,omitempty"`
}

type benchReport struct {
	Events      int64              `json:"events"`
	Records     int64              `json:"records"`
	Partitions  int                `json:"partitions"`
	Results     []*benchResult     `json:"results"`
	LatencyP50  float64            `json:"latency_p50_ms"`
	LatencyP99  float64            `json:"latency_p99_ms"`
	LatencyN    int                `json:"latency_samples"`
	LatencyRate int                `json:"latency_rate_events_per_s"`
	Ratios      map[string]float64 `json:"ratios"`
	Verified    bool               `json:"verified"`
}

// benchFlags are the flags of bench.
type benchFlags struct {
	ch          clickhouseFlags
	events      int
	runs        int
	partitions  int
	peers       []string
	jsonOut     string
	chPIDFile   string
	latencySecs int
	latencyRate int
	seed        int64
	batchRows   int
	profileDir  string
	flushEvery  time.Duration
}

func benchCmd(ctx context.Context, args []string) error {
	fs := newFlagSet("bench", "End-to-end events per second, verified. On the embedded broker and the ClickHouse of --clickhouse:\n"+
		"produce --events generated events once, then run `funnelhouse run` (a child process) from a cold start until\n"+
		"drained, --runs times, each on a fresh database, checking every view against the expected computation;\n"+
		"measure append-to-visible latency with live traffic; run the peers on the same records; print a table\n"+
		"(and JSON with --json). Generated with no malformed records: ClickHouse 18.16's Kafka engine cannot skip them.")
	var f benchFlags
	f.ch.register(fs)
	fs.Lookup("clickhouse").DefValue = "clickhouse://default@127.0.0.1:9000/funnelhouse_bench"
	_ = fs.Set("clickhouse", "clickhouse://default@127.0.0.1:9000/funnelhouse_bench")
	fs.IntVar(&f.events, "events", 5_000_000, "approximate number of generated events")
	fs.IntVar(&f.runs, "runs", 3, "measured runs of funnelhouse (the median is reported)")
	fs.IntVar(&f.partitions, "partitions", 4, "partitions of the topics")
	f.peers = []string{"kafka-engine", "naive"}
	fs.Var(listFlag{&f.peers}, "peers", "peers to measure on the same records: kafka-engine (ClickHouse's Kafka table engine, raw ingest), naive (bench/naive); empty for none")
	fs.StringVar(&f.jsonOut, "json", "", "also write the results as JSON to this `file` (- for stdout)")
	fs.StringVar(&f.chPIDFile, "clickhouse-pid-file", "", "pid file of the ClickHouse server, to report its CPU seconds (same machine only)")
	fs.IntVar(&f.latencySecs, "latency-seconds", 10, "seconds of live traffic for the latency measurement (0: skip)")
	fs.IntVar(&f.latencyRate, "latency-rate", 20_000, "events per second of the live traffic")
	fs.Int64Var(&f.seed, "seed", 1, "generator seed")
	fs.IntVar(&f.batchRows, "batch-rows", 100_000, "--batch-rows of the measured funnelhouse run")
	fs.StringVar(&f.profileDir, "profile", "", "write a CPU profile of each measured funnelhouse run to this `directory` (GROUP.pprof)")
	durationVar(fs, &f.flushEvery, "flush-interval", time.Second, "--flush-interval of the measured funnelhouse run")
	if err := parseWithEnv(fs, args); err != nil {
		return err
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	rep, err := runBench(ctx, &f)
	if rep != nil {
		printBench(os.Stdout, rep)
		if f.jsonOut != "" {
			out, _ := json.MarshalIndent(rep, "", "  ")
			if f.jsonOut == "-" {
				fmt.Println(string(out))
			} else if werr := os.WriteFile(f.jsonOut, append(out, '\n'), 0o644); werr != nil {
				return werr
			}
		}
	}
	return err
}

func runBench(ctx context.Context, f *benchFlags) (*benchReport, error) {
	endpoint, err := f.ch.endpoint()
	if err != nil {
		return nil, err
	}
	bin, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cs, tx, dlq := "bench.clickstream", "bench.transactions", "bench.dlq"
	b, err := kafka.Start(ctx, kafka.Config{Listen: "127.0.0.1:0", Partitions: f.partitions, Topics: []string{cs, tx, dlq, "live.clickstream", "live.transactions", "live.dlq"}})
	if err != nil {
		return nil, err
	}
	defer b.Close()
	brokers := b.Addrs()

	tc := traffic.Config{Seed: f.seed, Events: f.events}.WithDefaults()
	tc.BadRate = 0
	tc.ClickstreamTopic, tc.TransactionsTopic = cs, tx
	expect := newExpectation(cs, tx, time.Now)
	if _, err := produceTraffic(ctx, brokers, tc, func(r *traffic.Record) { expect.add(r.Topic, r.Key, r.Value) }); err != nil {
		return nil, err
	}
	want := expected.Compute(expect.events, expected.Config{SessionGap: 30 * time.Minute, ChurnAfter: 90 * 24 * time.Hour, HorizonMs: time.Now().Add(-10 * time.Minute).UnixMilli()})
	rep := &benchReport{Events: int64(len(expect.events)), Records: expect.records, Partitions: f.partitions, Ratios: map[string]float64{}}
	chPID := readPID(f.chPIDFile)

	// funnelhouse, --runs times from a cold start.
	fh := &benchResult{System: "funnelhouse", Runs: f.runs, Records: expect.records,
		Rows: int64(len(expect.events) + len(want.Sessions) + len(want.Transitions)),
		Note: "sessionises, attributes, writes events, sessions, transitions, state; verified exact"}
	var rss, cpu, chCPU, benchCPU []float64
	for i := 0; i < f.runs; i++ {
		run, err := benchFunnelhouse(ctx, bin, brokers, endpoint, f, fmt.Sprintf("bench-%d-%d", time.Now().Unix(), i), cs, tx, dlq, expect, want, chPID)
		if err != nil {
			return rep, fmt.Errorf("funnelhouse run %d: %w", i+1, err)
		}
		fh.Seconds = append(fh.Seconds, run.seconds)
		rss, cpu, chCPU = append(rss, run.rssMiB), append(cpu, run.cpu), append(chCPU, run.chCPU)
		benchCPU = append(benchCPU, run.benchCPU)
		fmt.Fprintf(os.Stderr, "funnelhouse run %d/%d: %.2f s, %.0f events/s, verified\n", i+1, f.runs, run.seconds, float64(len(expect.events))/run.seconds)
	}
	rep.Verified = true
	fh.MedianSeconds = median(fh.Seconds)
	fh.RecordsPerSec = float64(expect.records) / fh.MedianSeconds
	fh.EventsPerSec = float64(len(expect.events)) / fh.MedianSeconds
	fh.PeakRSSMiB = slices.Max(rss)
	fh.CPUSecPerMEv = perMillion(median(cpu), expect.records)
	fh.BenchCPUSecPerMEv = perMillion(median(benchCPU), expect.records)
	fh.CHCPUSecPerMEv = perMillion(median(chCPU), expect.records) // 0 without --clickhouse-pid-file
	rep.Results = append(rep.Results, fh)

	if f.latencySecs > 0 {
		if err := benchLatency(ctx, bin, brokers, endpoint, f, rep); err != nil {
			return rep, fmt.Errorf("latency: %w", err)
		}
	}
	for _, peer := range f.peers {
		var r *benchResult
		switch peer {
		case "kafka-engine":
			r, err = benchKafkaEngine(ctx, brokers, endpoint, cs, tx, expect, chPID)
		case "naive":
			r, err = benchNaive(ctx, bin, brokers, endpoint, f, cs, tx, expect, chPID)
		default:
			return rep, fmt.Errorf("invalid --peers %q: want kafka-engine or naive", peer)
		}
		if err != nil {
			return rep, fmt.Errorf("peer %s: %w", peer, err)
		}
		rep.Results = append(rep.Results, r)
		rep.Ratios["funnelhouse/"+peer] = fh.RecordsPerSec / r.RecordsPerSec
	}
	return rep, nil
}

type runMeasure struct {
	seconds, rssMiB, cpu, chCPU, benchCPU float64
}

// benchFunnelhouse runs one `funnelhouse run` child on a fresh database
// until every record is committed and the tables hold the expected rows,
// then verifies every view.
func benchFunnelhouse(ctx context.Context, bin string, brokers []string, e chsink.Endpoint, f *benchFlags, group, cs, tx, dlq string,
	expect *expectation, want *expected.Result, chPID int) (runMeasure, error) {
	var m runMeasure
	if err := resetDatabase(ctx, e); err != nil {
		return m, err
	}
	conn, db, err := chsink.Connect(ctx, e)
	if err != nil {
		return m, err
	}
	defer conn.Close()
	w, err := newCommitWatcher(brokers, nil, group, cs, tx)
	if err != nil {
		return m, err
	}
	defer w.close()
	before := markCPU(chPID)
	start := time.Now()
	cmd := exec.CommandContext(ctx, bin, "run", "--brokers", strings.Join(brokers, ","), "--clickhouse", e.DSN, "--group", group,
		"--clickstream-topic", cs, "--transactions-topic", tx, "--dlq-topic", dlq, "--idle-advance", "200ms", "--metrics-addr", "",
		"--batch-rows", strconv.Itoa(f.batchRows), "--flush-interval", f.flushEvery.String())
	if f.profileDir != "" {
		cmd.Args = append(cmd.Args, "--cpu-profile", filepath.Join(f.profileDir, group+".pprof"))
	}
	cmd.Env = childEnv(e)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return m, err
	}
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()
	prog := newProgress("funnelhouse", expect.records)
	// Drained: every record committed, then the last sessions and churns
	// written. Plain counts: a run without crashes writes no row twice (the
	// verification below uses FINAL), and FINAL on a busy table would slow
	// the measured run.
	for {
		n, _ := w.records(ctx)
		prog.update(n)
		if n >= expect.records && tableCount(ctx, conn, db+".sessions") == uint64(len(want.Sessions)) &&
			tableCount(ctx, conn, db+".lifecycle_transitions") == uint64(len(want.Transitions)) {
			break
		}
		if err := ctx.Err(); err != nil {
			return m, err
		}
		time.Sleep(50 * time.Millisecond)
	}
	m.seconds = time.Since(start).Seconds()
	prog.done(expect.records)
	m.rssMiB = float64(peakRSSOf(cmd.Process.Pid)) / (1 << 20)
	m.cpu = cpuSeconds(cmd.Process.Pid)
	used := before.since(chPID)
	m.chCPU, m.benchCPU = used.clickhouse, used.self
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		return m, fmt.Errorf("run exited with %v: %s", err, lastLines(stderr.String(), 10))
	}
	if err := verifyViews(ctx, conn, db, want, len(expect.events)); err != nil {
		return m, err
	}
	return m, checkAccounting(ctx, conn, db, group, expect)
}

// childEnv passes the ClickHouse password to a child in the environment,
// never on its command line.
func childEnv(e chsink.Endpoint) []string {
	env := os.Environ()
	if e.Password != "" {
		env = append(env, "FUNNELHOUSE_CLICKHOUSE_PASSWORD="+e.Password)
	}
	return env
}

func tableCount(ctx context.Context, conn driver.Conn, table string) uint64 {
	var n uint64
	_ = conn.QueryRow(ctx, "SELECT count() FROM "+table).Scan(&n)
	return n
}

// benchLatency runs a child against live traffic at --latency-rate and
// measures, for a sample of records, the time from the record's append
// (its Kafka timestamp) to its row being visible in events.
func benchLatency(ctx context.Context, bin string, brokers []string, e chsink.Endpoint, f *benchFlags, rep *benchReport) error {
	if err := resetDatabase(ctx, e); err != nil {
		return err
	}
	conn, db, err := chsink.Connect(ctx, e)
	if err != nil {
		return err
	}
	defer conn.Close()
	cs, tx, dlq := "live.clickstream", "live.transactions", "live.dlq"
	cmd := exec.CommandContext(ctx, bin, "run", "--brokers", strings.Join(brokers, ","), "--clickhouse", e.DSN, "--group", "bench-live",
		"--clickstream-topic", cs, "--transactions-topic", tx, "--dlq-topic", dlq, "--idle-advance", "1s", "--metrics-addr", "",
		"--flush-interval", "200ms")
	cmd.Env = childEnv(e)
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }()

	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	// Live traffic, delivered in order at the given rate; every 100th
	// clickstream record is a probe. Journeys run for months after the last
	// arrival, so the arrivals start early enough for every ts to be past.
	tc := traffic.Config{Seed: f.seed + 1, Events: f.latencyRate * f.latencySecs, Start: time.Now().AddDate(0, 0, -400).Truncate(24 * time.Hour), Days: 30}.WithDefaults()
	tc.BadRate, tc.DupRate, tc.MaxDelay = 0, 0, 0
	tc.ClickstreamTopic, tc.TransactionsTopic = cs, tx
	gen, err := traffic.New(tc)
	if err != nil {
		return err
	}
	probes := make(chan probe, 1<<16)
	var rec traffic.Record
	var ev struct {
		EventID string `json:"event_id"`
	}
	start := time.Now()
	sent := 0
	time.Sleep(2 * time.Second) // let the member join
	prodDone := make(chan struct{})
	go func() {
		defer close(prodDone)
		for gen.Next(&rec) {
			due := start.Add(time.Duration(float64(sent) / float64(f.latencyRate) * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			}
			r := &kgo.Record{Topic: rec.Topic, Key: append([]byte(nil), rec.Key...), Value: append([]byte(nil), rec.Value...)}
			if sent%100 == 0 && rec.Topic == cs && json.Unmarshal(rec.Value, &ev) == nil {
				visitor := string(rec.Key)
				id := ev.EventID
				cl.Produce(ctx, r, func(r *kgo.Record, err error) {
					if err == nil {
						probes <- probe{visitor, id, r.Timestamp}
					}
				})
			} else {
				cl.Produce(ctx, r, nil)
			}
			sent++
		}
		_ = cl.Flush(ctx)
	}()
	var latencies []float64
	pending := map[string]probe{}
	deadline := time.Now().Add(time.Duration(f.latencySecs)*time.Second + 90*time.Second)
	for {
		draining := false
		select {
		case <-prodDone:
			draining = true
		default:
		}
	collect:
		for {
			select {
			case p := <-probes:
				pending[p.visitor+"\x00"+p.event] = p
			default:
				break collect
			}
		}
		if len(pending) > 0 {
			visible, err := visibleProbes(ctx, conn, db, pending)
			now := time.Now()
			if err == nil {
				for _, k := range visible {
					latencies = append(latencies, float64(now.Sub(pending[k].appended).Microseconds())/1000)
					delete(pending, k)
				}
			}
		}
		if draining && len(pending) == 0 && len(probes) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d probe events not visible after %s", len(pending), time.Duration(f.latencySecs)*time.Second+90*time.Second)
		}
		time.Sleep(20 * time.Millisecond)
	}
	slices.Sort(latencies)
	rep.LatencyN = len(latencies)
	rep.LatencyRate = f.latencyRate
	if len(latencies) > 0 {
		rep.LatencyP50 = latencies[len(latencies)/2]
		rep.LatencyP99 = latencies[len(latencies)*99/100]
	}
	return nil
}

// probe is a record whose visibility in events is timed.
type probe struct {
	visitor, event string
	appended       time.Time
}

// visibleProbes returns the keys of the pending probes whose rows are in
// events.
func visibleProbes(ctx context.Context, conn driver.Conn, db string, pending map[string]probe) ([]string, error) {
	visitors := make([]string, 0, len(pending))
	events := make([]string, 0, len(pending))
	for _, p := range pending {
		visitors = append(visitors, p.visitor)
		events = append(events, p.event)
	}
	rows, err := conn.Query(ctx, "SELECT visitor_id, event_id FROM "+db+".events WHERE has(?, visitor_id) AND has(?, event_id)", visitors, events)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v, e string
		if err := rows.Scan(&v, &e); err != nil {
			return nil, err
		}
		if _, ok := pending[v+"\x00"+e]; ok {
			out = append(out, v+"\x00"+e)
		}
	}
	return out, rows.Err()
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

func readPID(file string) int {
	if file == "" {
		return 0
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// cpuMark is the CPU seconds used so far by ClickHouse (0 without its pid)
// and by this process, which hosts the embedded broker.
type cpuMark struct{ clickhouse, self float64 }

func markCPU(chPID int) cpuMark { return cpuMark{cpuSeconds(chPID), cpuSeconds(os.Getpid())} }

// since is the CPU used from m until now.
func (m cpuMark) since(chPID int) cpuMark {
	now := markCPU(chPID)
	return cpuMark{now.clickhouse - m.clickhouse, now.self - m.self}
}

// perMillion turns seconds over n records into seconds per million records.
func perMillion(seconds float64, n int64) float64 { return seconds / float64(n) * 1e6 }

// cpuSeconds is a process's user + system CPU time so far, from /proc.
func cpuSeconds(pid int) float64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces) start after ")".
	fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(fields) < 13 {
		return 0
	}
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	return (utime + stime) / 100 // clock ticks; 100 per second on Linux
}

// peakRSSOf is a process's peak resident set (VmHWM) in bytes.
func peakRSSOf(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(rest), "%d kB", &kb)
			return kb << 10
		}
	}
	return 0
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func printBench(w io.Writer, rep *benchReport) {
	fmt.Fprintf(w, "\n%d records (%d valid events), %d partitions\n\n", rep.Records, rep.Events, rep.Partitions)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "system\truns\tmedian s\trecords/s\tpeak RSS MiB\tCPU s/M records\tClickHouse CPU s/M\tbench+broker CPU s/M\t")
	for _, r := range rep.Results {
		fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.0f\t%.0f\t%.2f\t%.2f\t%.2f\t\n", r.System, r.Runs, r.MedianSeconds, r.RecordsPerSec, r.PeakRSSMiB, r.CPUSecPerMEv, r.CHCPUSecPerMEv, r.BenchCPUSecPerMEv)
	}
	tw.Flush()
	for _, r := range rep.Results {
		if r.Note != "" {
			fmt.Fprintf(w, "  %s: %s\n", r.System, r.Note)
		}
	}
	if rep.LatencyN > 0 {
		fmt.Fprintf(w, "\nlatency, append to visible in events, live traffic at %d events/s: p50 %.0f ms, p99 %.0f ms (%d probes)\n", rep.LatencyRate, rep.LatencyP50, rep.LatencyP99, rep.LatencyN)
	}
	keys := make([]string, 0, len(rep.Ratios))
	for k := range rep.Ratios {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "ratio %s: %.2fx\n", k, rep.Ratios[k])
	}
	if rep.Verified {
		fmt.Fprintln(w, "every funnelhouse run: every view (the four and the catalogue), sessions, transitions and events equal the expected computation")
	}
}

// benchKafkaEngine measures peer (a): ClickHouse's own Kafka table engine
// with a materialised view doing raw ingest of both topics into MergeTree
// tables: no sessions, no stages. From creating the views until every
// record is in the tables.
func benchKafkaEngine(ctx context.Context, brokers []string, e chsink.Endpoint, cs, tx string, expect *expectation, chPID int) (*benchResult, error) {
	conn, db, err := chsink.Connect(ctx, e)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	pdb := db + "_kafka_peer"
	group := fmt.Sprintf("kafka-peer-%d", time.Now().UnixNano())
	broker := strings.Join(brokers, ",")
	// Optional fields are Nullable: producers may send null. Unknown fields
	// are skipped (input_format_skip_unknown_fields in the server profile).
	tables := map[string]string{
		"clickstream":  "event_id String, type String, visitor_id String, customer_id Nullable(String), url Nullable(String), referrer Nullable(String), utm_source Nullable(String), utm_medium Nullable(String), utm_campaign Nullable(String), device Nullable(String), country Nullable(String)",
		"transactions": "event_id String, type String, visitor_id String, customer_id Nullable(String), order_id Nullable(String), amount Nullable(Float64), currency Nullable(String)",
	}
	topics := map[string]string{"clickstream": cs, "transactions": tx}
	stmts := []string{"DROP DATABASE IF EXISTS " + pdb, "CREATE DATABASE " + pdb}
	for name, cols := range tables {
		stmts = append(stmts,
			fmt.Sprintf("CREATE TABLE %s.%s_raw (%s) ENGINE = MergeTree ORDER BY (visitor_id, event_id)", pdb, name, cols),
			fmt.Sprintf("CREATE TABLE %s.%s_queue (%s) ENGINE = Kafka SETTINGS kafka_broker_list = '%s', kafka_topic_list = '%s', kafka_group_name = '%s', kafka_format = 'JSONEachRow', kafka_num_consumers = 1",
				pdb, name, cols, broker, topics[name], group+"-"+name))
	}
	for _, stmt := range stmts {
		if err := conn.Exec(ctx, stmt); err != nil {
			return nil, fmt.Errorf("%s: %w", stmt, err)
		}
	}
	before := markCPU(chPID)
	start := time.Now()
	for name := range tables {
		if err := conn.Exec(ctx, fmt.Sprintf("CREATE MATERIALIZED VIEW %s.%s_mv TO %s.%s_raw AS SELECT * FROM %s.%s_queue", pdb, name, pdb, name, pdb, name)); err != nil {
			return nil, err
		}
	}
	prog := newProgress("kafka-engine", expect.records)
	deadline := time.Now().Add(30 * time.Minute)
	var n uint64
	for {
		n = tableCount(ctx, conn, pdb+".clickstream_raw") + tableCount(ctx, conn, pdb+".transactions_raw")
		prog.update(int64(n))
		if int64(n) >= expect.records {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("only %d of %d records ingested", n, expect.records)
		}
		time.Sleep(100 * time.Millisecond)
	}
	secs := time.Since(start).Seconds()
	prog.done(int64(n))
	used := before.since(chPID)
	// The Kafka tables' consumers would otherwise keep polling (a broker
	// that is gone once the bench ends), costing ClickHouse CPU in every
	// later measurement.
	if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pdb); err != nil {
		return nil, fmt.Errorf("cannot drop the kafka-engine peer's database: %w", err)
	}
	r := &benchResult{System: "kafka-engine", Runs: 1, Records: expect.records, Rows: int64(n), Seconds: []float64{secs}, MedianSeconds: secs,
		RecordsPerSec: float64(n) / secs, CHCPUSecPerMEv: perMillion(used.clickhouse, int64(n)), BenchCPUSecPerMEv: perMillion(used.self, int64(n)),
		Note: "ClickHouse Kafka engine + materialised view, raw ingest, kafka_num_consumers = 1"}
	if int64(n) != expect.records {
		r.Note += fmt.Sprintf("; %d rows for %d records", n, expect.records)
	}
	return r, nil
}

// benchNaive measures peer (b), bench/naive, as a child process (`funnelhouse
// naive-peer`) so that its CPU and memory are its own.
func benchNaive(ctx context.Context, bin string, brokers []string, e chsink.Endpoint, f *benchFlags, cs, tx string, expect *expectation, chPID int) (*benchResult, error) {
	conn, db, err := chsink.Connect(ctx, e)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	pdb := db + "_naive_peer"
	if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pdb); err != nil {
		return nil, err
	}
	base := e.DSN[:strings.LastIndex(e.DSN, "/")]
	before := markCPU(chPID)
	start := time.Now()
	cmd := exec.CommandContext(ctx, bin, "naive-peer", "--brokers", strings.Join(brokers, ","), "--clickhouse", base+"/"+pdb,
		"--group", fmt.Sprintf("naive-%d", time.Now().UnixNano()), "--clickstream-topic", cs, "--transactions-topic", tx,
		"--records", strconv.FormatInt(expect.records, 10))
	cmd.Env = childEnv(e)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	// Sample peak RSS and CPU just before it exits: /proc goes with it.
	var rss int64
	var cpu float64
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for waiting := true; waiting; {
		select {
		case err := <-done:
			if err != nil {
				return nil, fmt.Errorf("naive-peer: %v: %s", err, lastLines(stderr.String(), 10))
			}
			waiting = false
		case <-time.After(50 * time.Millisecond):
			if v := peakRSSOf(cmd.Process.Pid); v > 0 {
				rss = v
			}
			if v := cpuSeconds(cmd.Process.Pid); v > 0 {
				cpu = v
			}
		}
	}
	secs := time.Since(start).Seconds()
	used := before.since(chPID)
	r := &benchResult{System: "naive", Runs: 1, Records: expect.records, Seconds: []float64{secs}, MedianSeconds: secs,
		RecordsPerSec: float64(expect.records) / secs, PeakRSSMiB: float64(rss) / (1 << 20), CPUSecPerMEv: perMillion(cpu, expect.records),
		CHCPUSecPerMEv: perMillion(used.clickhouse, expect.records), BenchCPUSecPerMEv: perMillion(used.self, expect.records),
		Note: "bench/naive: encoding/json, a map per partition, row-by-row batch.Append"}
	return r, nil
}
