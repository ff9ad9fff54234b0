// Package perf is the benchmark harness of `funnelhouse bench`: end-to-end
// records per second of funnelhouse on the embedded broker and a ClickHouse,
// each run verified exact (bench/verify), the query time of every view BI
// tools read on the last run's database (views.go), append-to-visible
// latency on live traffic, peak RSS and CPU seconds per million records
// (of the measured process, of ClickHouse and of the broker; the
// harness's own apart), and the same records through the peers:
// ClickHouse's Kafka engine (bench/kafkaengine), bench/naive, and the same
// views computed at query time (bench/querytime), whose dashboard is timed
// beside funnelhouse's.
// With a ClickHouse cluster (Config.Cluster), each measured run of
// funnelhouse is repeated on the cluster, whose CPU is the sum over its
// servers, ZooKeeper's reported apart.
// The broker, funnelhouse and the naive peer run as child processes of the
// funnelhouse binary, so that their CPU and memory are their own.
package perf

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/funnelhouse/funnelhouse/bench/e2e"
	"github.com/funnelhouse/funnelhouse/bench/expected"
	"github.com/funnelhouse/funnelhouse/bench/feed"
	"github.com/funnelhouse/funnelhouse/bench/kafkaengine"
	"github.com/funnelhouse/funnelhouse/bench/progress"
	"github.com/funnelhouse/funnelhouse/bench/traffic"
	"github.com/funnelhouse/funnelhouse/bench/verify"
	chsink "github.com/funnelhouse/funnelhouse/sinks/clickhouse"
)

// Peers are the peers Run knows, by name.
var Peers = []string{"kafka-engine", "naive", "query-time"}

// Config says what Run measures; bench's flags fill it.
type Config struct {
	Endpoint       chsink.Endpoint // each measured run drops and re-creates its database
	Bin            string          // the funnelhouse binary, started as `broker`, `run` and `naive-peer`
	Events         int             // approximate number of generated events
	Runs           int             // measured runs of funnelhouse; the median is reported
	Partitions     int             // of the topics
	Peers          []string        // of Peers, measured on the same records
	CHPIDFile      string          // pid file of the ClickHouse server, for its CPU seconds; "" for none
	BrokerDataDir  string          // the broker keeps its records in a new directory under this one; "" keeps them in its memory
	LatencySeconds int             // seconds of live traffic for the latency; 0 skips it
	LatencyRate    int             // events per second of the live traffic
	Seed           int64           // generator seed
	BatchRows      int             // --batch-rows of the measured runs
	FlushInterval  time.Duration   // --flush-interval of the measured runs
	MemoryLimit    string          // --memory-limit of the measured runs; "" for run's default
	ProfileDir     string          // where each measured run writes its CPU profile (GROUP.pprof), its heap at its largest (GROUP.heap.pprof) and where it waited (GROUP.block.pprof); "" for none
	// Cluster, when set, is a ClickHouse cluster on which each measured run
	// of funnelhouse is repeated (ClusterSystem), right after the one on the
	// single server, on the same records.
	Cluster *ClusterTarget
}

// target is a ClickHouse that the measured funnelhouse runs write to.
type target struct {
	system   string // its result's name
	endpoint chsink.Endpoint
	reset    func(context.Context) error // drops and re-creates the database
	servers  servers                     // whose CPU is reported
	note     string
	cluster  string   // the cluster's name and shape; "" for one server
	args     []string // more flags of its `funnelhouse run`
}

// bench is one Run's world: the embedded broker and what every
// measurement shares.
type bench struct {
	cfg       Config
	brokers   []string
	chPID     int
	brokerPID int
}

// servers are the single ClickHouse server and the broker, whose CPU is
// reported beside the measured process.
func (b *bench) servers() servers {
	s := oneServer(b.chPID)
	s.broker = b.brokerPID
	return s
}

// Run produces cfg.Events generated events once (no malformed records:
// ClickHouse 18.16's Kafka engine cannot skip them), measures funnelhouse
// cfg.Runs times from a cold start, then the latency and the peers. It
// returns what it measured so far also with an error.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	for _, peer := range cfg.Peers {
		if !slices.Contains(Peers, peer) {
			return nil, fmt.Errorf("invalid peer %q: want one of %s", peer, strings.Join(Peers, ", "))
		}
	}
	cs, tx, dlq := "bench.clickstream", "bench.transactions", "bench.dlq"
	broker, err := startBroker(ctx, cfg.Bin, cfg.Partitions, cfg.BrokerDataDir, []string{cs, tx, dlq, "live.clickstream", "live.transactions", "live.dlq"})
	if err != nil {
		return nil, err
	}
	defer broker.Close()
	b := &bench{cfg: cfg, brokers: broker.Addrs(), chPID: readPID(cfg.CHPIDFile), brokerPID: broker.Pid}

	tc := traffic.Config{Seed: cfg.Seed, Events: cfg.Events}.WithDefaults()
	tc.BadRate = 0
	tc.ClickstreamTopic, tc.TransactionsTopic = cs, tx
	expect := verify.NewExpectation(cs, tx, time.Now)
	if _, err := feed.Traffic(ctx, b.brokers, tc, func(r *traffic.Record) { expect.Add(r.Topic, r.Key, r.Value) }); err != nil {
		return nil, err
	}
	want := expect.Compute(expected.Config{SessionGap: 30 * time.Minute, ChurnAfter: 90 * 24 * time.Hour, HorizonMs: time.Now().Add(-10 * time.Minute).UnixMilli()})
	rep := &Report{Events: int64(len(expect.Events)), Records: expect.Records, Partitions: cfg.Partitions, Ratios: map[string]float64{}}
	defer rep.sumCPU()

	// funnelhouse, cfg.Runs times from a cold start; with a cluster, each
	// run on the single server is followed by one on the cluster, so that
	// both see the same load of this shared machine.
	targets := []*target{{system: "funnelhouse", endpoint: cfg.Endpoint, servers: b.servers(),
		reset: func(ctx context.Context) error { return e2e.ResetDatabase(ctx, cfg.Endpoint, os.Stdout) },
		note:  "sessionises, attributes, writes events, sessions, transitions, state; verified exact"}}
	if cfg.Cluster != nil {
		ct, err := b.clusterTargets(ctx)
		if err != nil {
			return rep, fmt.Errorf("cluster %s: %w", cfg.Cluster.Name, err)
		}
		targets = append(targets, ct...)
	}
	measured := make([][]runMeasure, len(targets))
	for i := 0; i < cfg.Runs; i++ {
		// The single server first, then the cluster's insert modes, their
		// order rotating from run to run so that none always follows the
		// same one.
		order := []int{0}
		for k := range len(targets) - 1 {
			order = append(order, 1+(k+i)%(len(targets)-1))
		}
		for _, j := range order {
			t := targets[j]
			run, err := b.funnelhouse(ctx, t, fmt.Sprintf("bench-%s-%d-%d", t.system, time.Now().Unix(), i), cs, tx, dlq, expect, want)
			if err != nil {
				return rep, fmt.Errorf("%s run %d: %w", t.system, i+1, err)
			}
			measured[j] = append(measured[j], run)
			n := run.numbers(expect.Records)
			fmt.Fprintf(os.Stderr, "%s run %d/%d: %.2f s, %.0f events/s, CPU-s per million records %.2f (ClickHouse %.2f), peak RSS %.0f MiB, verified\n",
				t.system, i+1, cfg.Runs, run.seconds, float64(len(expect.Events))/run.seconds, n.CPU, n.ClickHouseCPU, n.PeakRSSMiB)
		}
	}
	rep.Verified = true
	rows := int64(len(expect.Events) + len(want.Sessions) + len(want.Transitions))
	for j, t := range targets {
		rep.Results = append(rep.Results, t.result(measured[j], expect.Records, int64(len(expect.Events)), rows))
	}
	fh := rep.Results[0]
	// On the single server's last run, whose database the cluster's runs
	// leave alone.
	vt, err := b.funnelhouseViews(ctx)
	if err != nil {
		return rep, fmt.Errorf("funnelhouse view query times: %w", err)
	}
	fh.ViewQueryMs, fh.ViewRows, fh.ViewQueryLoad1 = vt.Ms, vt.Rows, vt.Load1
	if fh.DiskBytesPerEvent, fh.StateBytesPerVisitor, err = b.storage(ctx, "", rep.Events); err != nil {
		return rep, fmt.Errorf("funnelhouse storage: %w", err)
	}
	if cfg.Cluster != nil {
		// The events by shard of the last cluster run: the same for every
		// mode, which place the rows alike.
		counts, countErr := rowsByShard(ctx, cfg.Cluster)
		for _, cl := range rep.Results[1:] {
			rep.Ratios[cl.System+"/funnelhouse"] = cl.RecordsPerSec / fh.RecordsPerSec
			if countErr != nil {
				cl.Note += fmt.Sprintf("; events rows by shard: cannot count (%v)", countErr)
			} else {
				cl.EventsByShard = counts
			}
		}
	}
	if slices.Contains(cfg.Peers, "query-time") {
		if fh.Dashboard, err = b.funnelhouseDashboard(ctx); err != nil {
			return rep, fmt.Errorf("funnelhouse dashboard: %w", err)
		}
	}

	if cfg.LatencySeconds > 0 {
		if err := b.latency(ctx, rep); err != nil {
			return rep, fmt.Errorf("latency: %w", err)
		}
	}
	// A peer that fails (e.g. the Kafka engine's consumer stalls) is
	// reported with what it measured, and the others still run.
	var peerErrs []error
	for _, peer := range cfg.Peers {
		var r *Result
		switch peer {
		case "kafka-engine":
			r, err = b.kafkaEngine(ctx, cs, tx, expect)
		case "naive":
			r, err = b.naive(ctx, cs, tx, expect)
		case "query-time":
			r, err = b.queryTime(ctx, cs, tx, expect, want)
		}
		if err != nil {
			if r != nil {
				r.Note += "; failed: " + err.Error()
				rep.Results = append(rep.Results, r) // what it measured before failing
			}
			peerErrs = append(peerErrs, fmt.Errorf("peer %s: %w", peer, err))
			continue
		}
		rep.Results = append(rep.Results, r)
		rep.Ratios["funnelhouse/"+peer] = fh.RecordsPerSec / r.RecordsPerSec
		if r.Dashboard != nil && fh.Dashboard != nil {
			rep.Ratios["dashboard time "+peer+"/funnelhouse"] = r.Dashboard.Ms / fh.Dashboard.Ms
		}
	}
	return rep, errors.Join(peerErrs...)
}

type runMeasure struct {
	seconds, rssMiB, cpu float64
	used                 cpuMark // of the target's servers and of the bench process
}

// numbers are the run's own records/s, CPU per million of its records and
// peak RSS.
func (m runMeasure) numbers(records int64) RunNumbers {
	return RunNumbers{RecordsPerSec: float64(records) / m.seconds, CPU: perMillion(m.cpu, records),
		ClickHouseCPU: perMillion(m.used.clickhouse, records), BrokerCPU: perMillion(m.used.broker, records), PeakRSSMiB: m.rssMiB}
}

// result sums up a target's measured runs: the median run time and the
// median CPU of each process.
func (t *target) result(runs []runMeasure, records, events, rows int64) *Result {
	r := &Result{System: t.system, Runs: len(runs), Records: records, Rows: rows, Note: t.note, Cluster: t.cluster}
	var rss, cpu, chCPU, zkCPU, brokerCPU, benchCPU []float64
	perServer := make([][]float64, len(t.servers.names))
	for _, m := range runs {
		r.Seconds = append(r.Seconds, m.seconds)
		r.PerRun = append(r.PerRun, m.numbers(records))
		rss, cpu = append(rss, m.rssMiB), append(cpu, m.cpu)
		chCPU, zkCPU = append(chCPU, m.used.clickhouse), append(zkCPU, m.used.zookeeper)
		brokerCPU, benchCPU = append(brokerCPU, m.used.broker), append(benchCPU, m.used.self)
		for i, c := range m.used.perServer {
			perServer[i] = append(perServer[i], c)
		}
	}
	r.MedianSeconds = median(r.Seconds)
	r.RecordsPerSec = float64(records) / r.MedianSeconds
	r.EventsPerSec = float64(events) / r.MedianSeconds
	r.PeakRSSMiB = slices.Max(rss)
	r.CPUSecPerMEv = perMillion(median(cpu), records)
	r.BrokerCPUSecPerMEv = perMillion(median(brokerCPU), records)
	r.BenchCPUSecPerMEv = perMillion(median(benchCPU), records)
	r.CHCPUSecPerMEv = perMillion(median(chCPU), records) // 0 without the servers' pids
	r.ZooKeeperCPUSecPerMEv = perMillion(median(zkCPU), records)
	if t.cluster != "" && t.servers.zookeeper != 0 {
		r.CHCPUByServer = map[string]float64{}
		for i, name := range t.servers.names {
			r.CHCPUByServer[name] = perMillion(median(perServer[i]), records)
		}
	}
	return r
}

// profileArgs are the flags with which a measured `funnelhouse run` of
// consumer group group writes its profiles into dir: its CPU profile
// (GROUP.pprof), its heap at its largest (GROUP.heap.pprof) and where it
// waited (GROUP.block.pprof).
func profileArgs(dir, group string) []string {
	return []string{"--cpu-profile", filepath.Join(dir, group+".pprof"),
		"--heap-profile", filepath.Join(dir, group+".heap.pprof"),
		"--block-profile", filepath.Join(dir, group+".block.pprof")}
}

// funnelhouse runs one `funnelhouse run` child on a fresh database of t
// until every record is committed and the tables hold the expected rows,
// then verifies every view.
func (b *bench) funnelhouse(ctx context.Context, t *target, group, cs, tx, dlq string, expect *verify.Expectation, want *expected.Result) (runMeasure, error) {
	e, brokers := t.endpoint, b.brokers
	var m runMeasure
	if err := t.reset(ctx); err != nil {
		return m, err
	}
	conn, db, err := chsink.Connect(ctx, e)
	if err != nil {
		return m, err
	}
	defer conn.Close()
	w, err := feed.NewCommitWatcher(brokers, nil, group, cs, tx)
	if err != nil {
		return m, err
	}
	defer w.Close()
	before := t.servers.begin()
	start := time.Now()
	cmd := exec.CommandContext(ctx, b.cfg.Bin, "run", "--brokers", strings.Join(brokers, ","), "--clickhouse", e.DSN, "--group", group,
		"--clickstream-topic", cs, "--transactions-topic", tx, "--dlq-topic", dlq, "--idle-advance", "200ms", "--metrics-addr", "",
		"--batch-rows", strconv.Itoa(b.cfg.BatchRows), "--flush-interval", b.cfg.FlushInterval.String())
	cmd.Args = append(cmd.Args, t.args...)
	if b.cfg.MemoryLimit != "" {
		cmd.Args = append(cmd.Args, "--memory-limit", b.cfg.MemoryLimit)
	}
	if b.cfg.ProfileDir != "" {
		cmd.Args = append(cmd.Args, profileArgs(b.cfg.ProfileDir, group)...)
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
	prog := progress.New(t.system, expect.Records)
	// Drained: every record committed, then the last sessions and churns
	// written. Plain counts: a run without crashes writes no row twice (the
	// verification below uses FINAL), and FINAL on a busy table would slow
	// the measured run.
	for {
		n, _ := w.Records(ctx)
		prog.Update(n)
		if n >= expect.Records && tableCount(ctx, conn, db+".sessions") == uint64(len(want.Sessions)) &&
			tableCount(ctx, conn, db+".lifecycle_transitions") == uint64(len(want.Transitions)) {
			break
		}
		if err := ctx.Err(); err != nil {
			return m, err
		}
		time.Sleep(50 * time.Millisecond)
	}
	m.seconds = time.Since(start).Seconds()
	prog.Done(expect.Records)
	m.rssMiB = float64(PeakRSS(cmd.Process.Pid)) / (1 << 20)
	m.cpu = cpuSeconds(cmd.Process.Pid)
	m.used = before.since(t.servers)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		return m, fmt.Errorf("run exited with %v: %s", err, lastLines(stderr.String(), 10))
	}
	if err := verify.Views(ctx, conn, db, want, len(expect.Events)); err != nil {
		return m, err
	}
	return m, verify.Accounting(ctx, conn, db, group, expect)
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

// tableCount is the number of rows of table, 0 when ClickHouse cannot say.
func tableCount(ctx context.Context, conn driver.Conn, table string) uint64 {
	var n uint64
	_ = conn.QueryRow(ctx, "SELECT count() FROM "+table).Scan(&n)
	return n
}

// lastLines is the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// naive measures peer (b), bench/naive, as a child process (`funnelhouse
// naive-peer`) so that its CPU and memory are its own.
func (b *bench) naive(ctx context.Context, cs, tx string, expect *verify.Expectation) (*Result, error) {
	e, brokers := b.cfg.Endpoint, b.brokers
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
	before := b.servers().begin()
	start := time.Now()
	cmd := exec.CommandContext(ctx, b.cfg.Bin, "naive-peer", "--brokers", strings.Join(brokers, ","), "--clickhouse", base+"/"+pdb,
		"--group", fmt.Sprintf("naive-%d", time.Now().UnixNano()), "--clickstream-topic", cs, "--transactions-topic", tx,
		"--records", strconv.FormatInt(expect.Records, 10))
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
			if v := PeakRSS(cmd.Process.Pid); v > 0 {
				rss = v
			}
			if v := cpuSeconds(cmd.Process.Pid); v > 0 {
				cpu = v
			}
		}
	}
	secs := time.Since(start).Seconds()
	used := before.since(b.servers())
	r := &Result{System: "naive", Runs: 1, Records: expect.Records, Seconds: []float64{secs}, MedianSeconds: secs,
		RecordsPerSec: float64(expect.Records) / secs, PeakRSSMiB: float64(rss) / (1 << 20), CPUSecPerMEv: perMillion(cpu, expect.Records),
		CHCPUSecPerMEv: perMillion(used.clickhouse, expect.Records), BrokerCPUSecPerMEv: perMillion(used.broker, expect.Records), BenchCPUSecPerMEv: perMillion(used.self, expect.Records),
		Note: "bench/naive: encoding/json, a map per partition, row-by-row batch.Append"}
	return r, nil
}

// kafkaEngine measures peer (a), bench/kafkaengine: from creating its
// views until every record is in its tables.
func (b *bench) kafkaEngine(ctx context.Context, cs, tx string, expect *verify.Expectation) (*Result, error) {
	conn, db, err := chsink.Connect(ctx, b.cfg.Endpoint)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	peer, err := kafkaengine.Create(ctx, conn, db+"_kafka_peer", b.brokers, cs, tx, fmt.Sprintf("kafka-peer-%d", time.Now().UnixNano()))
	if err != nil {
		return nil, err
	}
	before := b.servers().begin()
	start := time.Now()
	if err := peer.Start(ctx); err != nil {
		return nil, err
	}
	n, err := waitIngest(ctx, "kafka-engine", expect.Records, peer.Rows, nil)
	if err != nil {
		return nil, err
	}
	secs := time.Since(start).Seconds()
	used := before.since(b.servers())
	if err := peer.Drop(ctx); err != nil {
		return nil, err
	}
	r := &Result{System: "kafka-engine", Runs: 1, Records: expect.Records, Rows: int64(n), Seconds: []float64{secs}, MedianSeconds: secs,
		RecordsPerSec: float64(n) / secs, CHCPUSecPerMEv: perMillion(used.clickhouse, int64(n)), BrokerCPUSecPerMEv: perMillion(used.broker, int64(n)), BenchCPUSecPerMEv: perMillion(used.self, int64(n)),
		Note: "ClickHouse Kafka engine + materialised view, raw ingest, kafka_num_consumers = 1"}
	if int64(n) != expect.Records {
		r.Note += fmt.Sprintf("; %d rows for %d records", n, expect.Records)
	}
	return r, nil
}
