package perf

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/funnelhouse/funnelhouse/bench/e2e"
	"github.com/funnelhouse/funnelhouse/deploy/kafka"
	chsink "github.com/funnelhouse/funnelhouse/sinks/clickhouse"
)

// LiveConfig says what RunLive measures; `bench --live`'s flags fill it.
// Every combination of a rate and a lateness is one run.
type LiveConfig struct {
	Endpoint   chsink.Endpoint // each run drops and re-creates its database
	Bin        string          // the funnelhouse binary, started as `run`
	Rates      []int           // events per second
	Latenesses []time.Duration // --lateness of the child
	Duration   time.Duration   // of each run's traffic
	Partitions int             // of each run's topics
	CHPIDFile  string          // pid file of the ClickHouse server, for its CPU seconds; "" for none
	Seed       int64           // generator seed
	// MemoryLimit is the child's --memory-limit; "" for its default.
	MemoryLimit string
	// ProfileDir is where each run's child writes its CPU profile
	// (GROUP.pprof), its largest heap (GROUP.heap.pprof) and where it
	// waited (GROUP.block.pprof); "" for none.
	ProfileDir string
	Progress   io.Writer // a line per sample
}

// liveSampleEvery is the time between two samples of a run.
const liveSampleEvery = 10 * time.Second

// RunLive measures funnelhouse on real-time traffic: for each rate and
// lateness, a `funnelhouse run` child on a fresh database, group and
// topics, fed events whose ts is the wall clock, so that every event is
// held for the lateness before it is released. It returns what it measured
// so far also with an error.
func RunLive(ctx context.Context, cfg LiveConfig) (*LiveReport, error) {
	broker, err := kafka.Start(ctx, kafka.Config{Listen: "127.0.0.1:0", Partitions: cfg.Partitions})
	if err != nil {
		return nil, err
	}
	defer broker.Close()
	b := &bench{brokers: broker.Addrs(), chPID: readPID(cfg.CHPIDFile)}
	rep := &LiveReport{Traffic: LiveTraffic, Partitions: cfg.Partitions, DurationS: cfg.Duration.Seconds()}
	var errs []error
	for _, rate := range cfg.Rates {
		for _, lateness := range cfg.Latenesses {
			lr := &liveRun{bench: b, cfg: &cfg, n: len(rep.Results), rate: rate, lateness: lateness}
			res, err := lr.do(ctx)
			if res == nil {
				res = &LiveResult{Rate: rate, Lateness: shortDuration(lateness), LatenessS: lateness.Seconds(), Partitions: cfg.Partitions}
			}
			rep.Results = append(rep.Results, res)
			if err != nil {
				// A run that fails (a child that cannot keep up and dies, say)
				// is a result too: the others still run.
				err = fmt.Errorf("live run at %d events/s, lateness %s: %w", rate, shortDuration(lateness), err)
				res.Error, errs = err.Error(), append(errs, err)
				fmt.Fprintln(cfg.Progress, err)
				if ctx.Err() != nil {
					return rep, errors.Join(errs...)
				}
				continue
			}
			PrintLiveResult(cfg.Progress, res)
		}
	}
	return rep, errors.Join(errs...)
}

// liveRun is one combination of a rate and a lateness.
type liveRun struct {
	*bench
	cfg      *LiveConfig
	n        int // its number, for the names of its topics and group
	rate     int
	lateness time.Duration

	cmd     *exec.Cmd
	stderr  *tailBuffer
	metrics string // the child's --metrics-addr
}

// do runs it: topics, database, child, traffic with samples and probes.
func (r *liveRun) do(ctx context.Context) (*LiveResult, error) {
	prefix := fmt.Sprintf("live%d", r.n)
	cs, tx, dlq := prefix+".clickstream", prefix+".transactions", prefix+".dlq"
	if err := kafka.CreateTopics(ctx, r.brokers, r.cfg.Partitions, []string{cs, tx, dlq}); err != nil {
		return nil, err
	}
	// The broker keeps every record in memory: drop each run's topics.
	defer r.deleteTopics(cs, tx, dlq)
	if err := e2e.ResetDatabase(ctx, r.cfg.Endpoint, r.cfg.Progress); err != nil {
		return nil, err
	}
	conn, db, err := chsink.Connect(ctx, r.cfg.Endpoint)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if err := r.start(ctx, cs, tx, dlq); err != nil {
		return nil, err
	}
	defer r.stop()
	cl, err := kgo.NewClient(kgo.SeedBrokers(r.brokers...), kgo.ProducerLinger(5*time.Millisecond), kgo.MaxBufferedRecords(max(10_000, r.rate)))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	probes := make(chan probe, 1<<16)
	p := &liveProducer{cl: cl, rate: r.rate, duration: r.cfg.Duration, cs: cs, tx: tx, seed: r.cfg.Seed + int64(r.n)*1_000_003, probes: probes}
	lat := &liveLatency{conn: conn, db: db, lateness: r.lateness, probes: probes, pending: map[string]probe{}}
	return r.measure(ctx, p, lat)
}

// start starts the child and waits until it owns its partitions, so that
// the traffic's first records are not timed waiting for a group join.
func (r *liveRun) start(ctx context.Context, cs, tx, dlq string) error {
	addr, err := freeLoopbackAddr()
	if err != nil {
		return err
	}
	r.metrics = addr
	group := fmt.Sprintf("live-%d-%d", time.Now().Unix(), r.n)
	r.cmd = exec.CommandContext(ctx, r.cfg.Bin, "run", "--brokers", strings.Join(r.brokers, ","), "--clickhouse", r.cfg.Endpoint.DSN,
		"--group", group, "--clickstream-topic", cs, "--transactions-topic", tx, "--dlq-topic", dlq,
		"--lateness", r.lateness.String(), "--metrics-addr", addr)
	if r.cfg.MemoryLimit != "" {
		r.cmd.Args = append(r.cmd.Args, "--memory-limit", r.cfg.MemoryLimit)
	}
	if r.cfg.ProfileDir != "" {
		r.cmd.Args = append(r.cmd.Args, profileArgs(r.cfg.ProfileDir, group)...)
	}
	r.cmd.Env = childEnv(r.cfg.Endpoint)
	r.stderr = &tailBuffer{max: 64 << 10}
	r.cmd.Stderr = r.stderr
	if err := r.cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { _ = r.cmd.Wait(); close(exited) }()
	for deadline := time.Now().Add(time.Minute); ; {
		if code, _ := httpGet("http://" + addr + "/readyz"); code == http.StatusOK {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("run exited before it was ready: %s", lastLines(r.stderr.String(), 10))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("run not ready after a minute: %s", lastLines(r.stderr.String(), 10))
		}
	}
}

// stop ends the child: its last checkpoint is not measured, so it gets
// a minute and is then killed.
func (r *liveRun) stop() {
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	for i := 0; i < 600 && r.alive(); i++ {
		time.Sleep(100 * time.Millisecond)
	}
	_ = r.cmd.Process.Kill()
}

// alive reports whether the child has not exited (the goroutine of start
// reaps it, which sets ProcessState).
func (r *liveRun) alive() bool { return r.cmd.Process.Signal(syscall.Signal(0)) == nil }

func (r *liveRun) deleteTopics(topics ...string) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(r.brokers...))
	if err != nil {
		return
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := kadm.NewClient(cl).DeleteTopics(ctx, topics...); err != nil {
		fmt.Fprintf(os.Stderr, "warning: cannot delete topics %v of the embedded broker: %v\n", topics, err)
	}
}

// measure produces the traffic while it samples every liveSampleEvery
// and looks for the probes, then sums up.
func (r *liveRun) measure(ctx context.Context, p *liveProducer, lat *liveLatency) (*LiveResult, error) {
	res := &LiveResult{Rate: r.rate, Lateness: shortDuration(r.lateness), LatenessS: r.lateness.Seconds(),
		DurationS: r.cfg.Duration.Seconds(), Partitions: r.cfg.Partitions}
	pid := r.cmd.Process.Pid
	base := sampleBase{start: time.Now(), cpu: cpuSeconds(pid), marks: beginCPU(r.chPID)}
	done := make(chan error, 1)
	go func() { done <- p.run(ctx) }()
	sampleT := time.NewTicker(liveSampleEvery)
	defer sampleT.Stop()
	probeT := time.NewTicker(500 * time.Millisecond)
	defer probeT.Stop()
	for {
		select {
		case err := <-done:
			if err == nil {
				err = p.err()
			}
			if err != nil {
				return res, fmt.Errorf("producer: %w", err)
			}
			end := time.Now()
			// The last tick often comes with the end: one sample for both,
			// its interval from the sample before.
			if n := len(res.Samples); n > 0 && time.Since(base.start).Seconds()-res.Samples[n-1].ElapsedS < 1 {
				res.Samples = res.Samples[:n-1]
			}
			r.sample(res, p, &base)
			res.PeakRSSMiB = float64(PeakRSS(pid)) / (1 << 20)
			lat.collect(ctx)
			lat.summarise(res, end)
			summarise(res, r.cfg.Duration, r.lateness)
			return res, nil
		case <-sampleT.C:
			if !r.alive() {
				return res, fmt.Errorf("run exited: %s", lastLines(r.stderr.String(), 10))
			}
			r.sample(res, p, &base)
			printSample(r.cfg.Progress, res, res.Samples[len(res.Samples)-1])
		case <-probeT.C:
			lat.collect(ctx)
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
}

// sampleBase is what the samples of a run are relative to.
type sampleBase struct {
	start time.Time
	cpu   float64 // the child's CPU seconds when the traffic started
	marks cpuMark
}

// sample appends a sample of the child's metrics and the processes.
func (r *liveRun) sample(res *LiveResult, p *liveProducer, base *sampleBase) {
	pid := r.cmd.Process.Pid
	m, err := scrapeMetrics(r.metrics)
	if err != nil {
		res.ScrapeErrors++
	}
	used := base.marks.since(oneServer(r.chPID))
	s := LiveSample{
		ElapsedS: time.Since(base.start).Seconds(), Produced: p.acked.Load(),
		Consumed: int64(m["funnelhouse_pipeline_records_total"]), Held: int64(m["funnelhouse_pipeline_held_events"]),
		StateBytes:  int64(m["funnelhouse_pipeline_checkpoint_state_written_bytes_total"]),
		Checkpoints: int64(m["funnelhouse_pipeline_checkpoint_duration_seconds_count"]), CheckpointS: m["funnelhouse_pipeline_checkpoint_duration_seconds_sum"],
		RSSMiB: float64(RSS(pid)) / (1 << 20), CPU: cpuSeconds(pid) - base.cpu, CHCPU: used.clickhouse, BenchCPU: used.self,
	}
	if err != nil && len(res.Samples) > 0 { // keep the counters of the last scrape
		last := res.Samples[len(res.Samples)-1]
		s.Consumed, s.Held, s.StateBytes = last.Consumed, last.Held, last.StateBytes
		s.Checkpoints, s.CheckpointS = last.Checkpoints, last.CheckpointS
	}
	prev := LiveSample{}
	if len(res.Samples) > 0 {
		prev = res.Samples[len(res.Samples)-1]
	}
	if dt := s.ElapsedS - prev.ElapsedS; dt > 0 {
		s.RatePerS = float64(s.Produced-prev.Produced) / dt
		s.StateBytesPerS = float64(s.StateBytes-prev.StateBytes) / dt
	}
	res.Samples = append(res.Samples, s)
}

// steadyWindow is where in a run of duration d held events are at their
// steady state (rate x lateness): from the lateness on, but at least the
// last half; steady is false when the run is too short for that.
func steadyWindow(d, lateness time.Duration) (from time.Duration, steady bool) {
	from = d / 2
	if lateness <= from {
		return from, true
	}
	if d-lateness >= liveSampleEvery {
		return lateness, true
	}
	return from, false
}

// summarise fills the result's totals from its samples.
func summarise(res *LiveResult, d, lateness time.Duration) {
	last := res.Samples[len(res.Samples)-1]
	res.Records, res.Consumed, res.HeldAtEnd = last.Produced, last.Consumed, last.Held
	res.BacklogAtEnd = last.Produced - last.Consumed
	res.StateBytes = last.StateBytes
	res.AchievedRate = float64(last.Produced) / last.ElapsedS
	from, steady := steadyWindow(d, lateness)
	res.Steady = steady
	first := LiveSample{}
	for _, s := range res.Samples {
		if s.ElapsedS >= from.Seconds()-1 { // samples come a little after their tick
			first = s
			break
		}
	}
	if dt := last.ElapsedS - first.ElapsedS; dt > 0 {
		res.StateBytesPerS = float64(last.StateBytes-first.StateBytes) / dt
		res.WindowFromS = first.ElapsedS
		res.CheckpointsPerS = float64(last.Checkpoints-first.Checkpoints) / dt
	}
	// The state rate is bytes per checkpoint x checkpoints per second: a
	// checkpoint that takes longer than --flush-interval makes them rarer.
	if n := last.Checkpoints - first.Checkpoints; n > 0 {
		res.StateBytesPerCheckpoint = float64(last.StateBytes-first.StateBytes) / float64(n)
		res.CheckpointMeanS = (last.CheckpointS - first.CheckpointS) / float64(n)
	}
	res.CPUSecPerM = perMillion(last.CPU, last.Produced)
	res.CHCPUSecPerM = perMillion(last.CHCPU, last.Produced)
	res.BenchCPUSecPerM = perMillion(last.BenchCPU, last.Produced)
}

// shortDuration is d without zero trailing units: 10m, not 10m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// scrapeMetrics is the sum of each metric's samples at a /metrics address.
func scrapeMetrics(addr string) (map[string]float64, error) {
	code, body := httpGet("http://" + addr + "/metrics")
	if code != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %d", code)
	}
	sums := map[string]float64{}
	for _, line := range strings.Split(body, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		name, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if i := strings.IndexByte(name, '{'); i >= 0 {
			// Label values may hold spaces: the value follows the '}'.
			end := strings.LastIndexByte(line, '}')
			name, value = name[:i], strings.TrimSpace(line[end+1:])
		}
		if v, err := strconv.ParseFloat(value, 64); err == nil {
			sums[name] += v
		}
	}
	return sums, nil
}

// metricsClient waits no longer than a sample interval: a child busy with
// a huge checkpoint still answers /metrics from another goroutine.
var metricsClient = &http.Client{Timeout: 5 * time.Second}

// httpGet returns the status code (0 when there is none) and body.
func httpGet(url string) (int, string) {
	resp, err := metricsClient.Get(url)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// freeLoopbackAddr is a loopback address whose port was free a moment ago.
func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// tailBuffer keeps the last max bytes written to it: a child's log over a
// long run, for the error that ends it.
type tailBuffer struct {
	mu  sync.Mutex
	b   []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = slices.Delete(t.b, 0, over)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
