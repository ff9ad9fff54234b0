package pipeline

import (
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/funnelhouse/funnelhouse/pipeline/rows"
	"github.com/funnelhouse/funnelhouse/schemas"
)

// metrics are the pipeline's Prometheus metrics. Labels are of low
// cardinality: topic, partition, type, stage, reason.
type metrics struct {
	records        *prometheus.CounterVec
	events         *prometheus.CounterVec
	deadLetters    *prometheus.CounterVec
	duplicates     prometheus.Counter
	late           prometheus.Counter
	sessions       prometheus.Counter
	transitions    *prometheus.CounterVec
	openSessions   *prometheus.GaugeVec
	visitors       *prometheus.GaugeVec
	forgotten      prometheus.Counter
	reloaded       prometheus.Counter
	lookups        prometheus.Counter
	forgottenBytes *prometheus.GaugeVec
	held           *prometheus.GaugeVec
	spilled        *prometheus.GaugeVec
	stateBytes     *prometheus.GaugeVec
	stateWritten   prometheus.Counter
	watermarkLag   *prometheus.GaugeVec
	consumerLag    *prometheus.GaugeVec
	checkpointSec  prometheus.Histogram
	flushSec       prometheus.Histogram
	commitSec      prometheus.Histogram
	lastCheckpoint prometheus.Gauge
	partitions     prometheus.Gauge
}

// newMetrics creates the metrics, with gauges that read pl when scraped, and
// registers them with reg unless it is nil.
func newMetrics(reg prometheus.Registerer, pl *Pipeline) (*metrics, error) {
	var c collectors
	m := &metrics{
		records:        c.counterVec("records_total", "Input records consumed, by topic.", "topic"),
		events:         c.counterVec("events_total", "Valid, non-duplicate events, by type.", "type"),
		deadLetters:    c.counterVec("dead_letters_total", "Records sent to the dead-letter topic, by reason.", "reason"),
		duplicates:     c.counter("duplicates_total", "Records dropped as duplicates of an event already seen."),
		late:           c.counter("late_events_total", "Events older than the watermark on arrival, stored with late = 1."),
		sessions:       c.counter("sessions_closed_total", "Sessions closed and written."),
		transitions:    c.counterVec("stage_transitions_total", "Lifecycle transitions, by stage.", "stage"),
		openSessions:   c.gaugeVec("open_sessions", "Sessions open, by partition.", "partition"),
		visitors:       c.gaugeVec("tracked_visitors", "Visitors with lifecycle state in memory, by partition.", "partition"),
		forgotten:      c.counter("visitors_forgotten_total", "Visitors that left memory after --forget-after of inactivity (their state stays in pipeline_state)."),
		reloaded:       c.counter("visitors_reloaded_total", "Forgotten visitors loaded back from pipeline_state when they returned."),
		lookups:        c.counter("visitor_lookups_total", "Queries that loaded forgotten visitors back (one per run of records that needed any)."),
		forgottenBytes: c.gaugeVec("forgotten_filter_bytes", "Bytes of the Bloom filter of forgotten visitor ids, by partition.", "partition"),
		held:           c.gaugeVec("held_events", "Events waiting for the watermark, by partition.", "partition"),
		spilled:        c.gaugeVec("held_spilled_bytes", "Bytes of compressed held events in spill files, by partition.", "partition"),
		stateBytes:     c.gaugeVec("checkpoint_state_bytes", "Bytes of state written by the partition's last checkpoint.", "partition"),
		stateWritten:   c.counter("checkpoint_state_written_bytes_total", "Bytes of state (pipeline_state data) written by checkpoints, summed over partitions."),
		watermarkLag:   c.gaugeVec("watermark_delay_seconds", "Processing clock minus the partition's watermark.", "partition"),
		consumerLag:    c.gaugeVec("consumer_lag_records", "Records in the topic-partition not yet read.", "topic", "partition"),
		checkpointSec: c.histogram("checkpoint_duration_seconds", "Time to write a checkpoint's rows and state.",
			prometheus.ExponentialBuckets(0.005, 2, 14)),
		flushSec: c.histogram("flush_duration_seconds", "Time to write the rows of a flush between checkpoints.",
			prometheus.ExponentialBuckets(0.005, 2, 14)),
		commitSec: c.histogram("commit_duration_seconds", "Time to commit offsets after a checkpoint.",
			prometheus.ExponentialBuckets(0.001, 2, 14)),
		lastCheckpoint: c.gauge("last_checkpoint_timestamp_seconds", "When this member's last checkpoint was acknowledged by ClickHouse (Unix time)."),
		partitions:     c.gauge("partitions", "Partitions of each input topic (the partition numbers the group must own)."),
	}
	gaugeFunc := func(o prometheus.Opts, value func() float64) {
		c.add(prometheus.NewGaugeFunc(prometheus.GaugeOpts(o), value))
	}
	seconds := func(d time.Duration) func() float64 { return func() float64 { return d.Seconds() } }
	gaugeFunc(opts("buffered_rows", "Rows processed but not yet acknowledged by ClickHouse; fetching pauses above 2 x --batch-rows."),
		func() float64 { return float64(pl.buffered.Load()) })
	gaugeFunc(opts("buffered_bytes", "Estimated bytes of those rows; fetching pauses above an eighth of the memory budget."),
		func() float64 { return float64(pl.bufferedBytes.Load()) })
	gaugeFunc(opts("fetch_paused", "1 while fetching waits for buffered rows to drain (rows or bytes over their bound), else 0."),
		func() float64 { return map[bool]float64{true: 1}[pl.fetchPaused.Load()] })
	gaugeFunc(opts("memory_budget_bytes", "The memory budget: --memory-limit, GOMEMLIMIT, the cgroup limit, or 1 GiB by default."),
		func() float64 { return float64(pl.budget.limit) })
	gaugeFunc(prometheus.Opts{Namespace: "funnelhouse", Name: "ready", Help: "1 while /readyz answers ready (partitions assigned, ClickHouse healthy, no fatal error), else 0."},
		func() float64 { return map[bool]float64{true: 1}[pl.Ready()] })
	gaugeFunc(opts("assigned_partitions", "Partition numbers (of both input topics) this member owns."),
		func() float64 { return float64(len(pl.ownersOf(nil))) })
	// The settings the alert rules compare with (deploy/prometheus/rules.yml).
	gaugeFunc(opts("flush_interval_seconds", "The --flush-interval setting."), seconds(pl.cfg.FlushInterval))
	gaugeFunc(opts("checkpoint_interval_seconds", "The --checkpoint-interval setting."), seconds(pl.cfg.CheckpointInterval))
	gaugeFunc(opts("lateness_seconds", "The --lateness setting."), seconds(pl.cfg.Rules.Lateness))
	gaugeFunc(opts("idle_advance_seconds", "The --idle-advance setting."), seconds(pl.cfg.Rules.IdleAdvance))
	if reg != nil {
		for _, col := range c.all {
			if err := reg.Register(col); err != nil {
				return nil, fmt.Errorf("cannot register pipeline metrics: %w", err)
			}
		}
	}
	return m, nil
}

// opts names a metric funnelhouse_pipeline_<name>.
func opts(name, help string) prometheus.Opts {
	return prometheus.Opts{Namespace: "funnelhouse", Subsystem: "pipeline", Name: name, Help: help}
}

// collectors creates the pipeline's collectors and keeps them for
// registration.
type collectors struct{ all []prometheus.Collector }

func (c *collectors) add(col prometheus.Collector) { c.all = append(c.all, col) }

func (c *collectors) counter(name, help string) prometheus.Counter {
	m := prometheus.NewCounter(prometheus.CounterOpts(opts(name, help)))
	c.add(m)
	return m
}

func (c *collectors) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	m := prometheus.NewCounterVec(prometheus.CounterOpts(opts(name, help)), labels)
	c.add(m)
	return m
}

func (c *collectors) gauge(name, help string) prometheus.Gauge {
	m := prometheus.NewGauge(prometheus.GaugeOpts(opts(name, help)))
	c.add(m)
	return m
}

func (c *collectors) gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	m := prometheus.NewGaugeVec(prometheus.GaugeOpts(opts(name, help)), labels)
	c.add(m)
	return m
}

func (c *collectors) histogram(name, help string, buckets []float64) prometheus.Histogram {
	o := opts(name, help)
	m := prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: o.Namespace, Subsystem: o.Subsystem, Name: o.Name, Help: o.Help, Buckets: buckets})
	c.add(m)
	return m
}

// publish adds what a processor counted since the last publish (prev) to
// the counters and sets its gauges.
func (m *metrics) publish(partition int32, topics [2]string, p *Processor, prev *Stats, prevForget *ForgetCounts, now time.Time) {
	s := p.Stats()
	for t := range s.Records {
		if d := s.Records[t] - prev.Records[t]; d > 0 {
			m.records.WithLabelValues(topics[t]).Add(float64(d))
		}
	}
	// An event rejected at its release (revenue_overflow) is taken off
	// Events, but a counter cannot go down: it stays at the highest count
	// (prevEvents below) until the next events of the type catch up.
	prevEvents := prev.Events
	for t := range s.Events {
		if s.Events[t] > prev.Events[t] {
			m.events.WithLabelValues(schemas.Type(t).String()).Add(float64(s.Events[t] - prev.Events[t]))
		}
	}
	for r, n := range s.DeadLetters {
		if d := n - prev.DeadLetters[r]; d > 0 {
			m.deadLetters.WithLabelValues(string(r)).Add(float64(d))
		}
	}
	m.duplicates.Add(float64(s.Duplicates - prev.Duplicates))
	m.late.Add(float64(s.Late - prev.Late))
	m.sessions.Add(float64(s.SessionsClosed - prev.SessionsClosed))
	f := p.ForgetCounts()
	m.forgotten.Add(float64(f.Forgotten - prevForget.Forgotten))
	m.reloaded.Add(float64(f.Reloaded - prevForget.Reloaded))
	m.lookups.Add(float64(f.Lookups - prevForget.Lookups))
	*prevForget = f
	for st := range s.Transitions {
		if d := s.Transitions[st] - prev.Transitions[st]; d > 0 {
			m.transitions.WithLabelValues(rows.Stage(st).String()).Add(float64(d))
		}
	}
	*prev = s.clone()
	for t := range prev.Events {
		prev.Events[t] = max(prev.Events[t], prevEvents[t])
	}
	part := strconv.Itoa(int(partition))
	m.openSessions.WithLabelValues(part).Set(float64(p.OpenSessions()))
	m.visitors.WithLabelValues(part).Set(float64(p.Visitors()))
	m.forgottenBytes.WithLabelValues(part).Set(float64(p.forgotten.bytes()))
	m.held.WithLabelValues(part).Set(float64(p.Held()))
	m.spilled.WithLabelValues(part).Set(float64(p.cold.spill.bytes))
	if w := p.Watermark(); w > 0 {
		m.watermarkLag.WithLabelValues(part).Set(now.Sub(time.UnixMilli(w)).Seconds())
	}
	for t := range p.inputs {
		in := &p.inputs[t]
		if in.end >= 0 {
			m.consumerLag.WithLabelValues(topics[t], part).Set(float64(max(in.end-max(in.next, 0), 0)))
		}
	}
}

// forget removes a partition's gauges when it moves away.
func (m *metrics) forget(partition int32, topics [2]string) {
	part := strconv.Itoa(int(partition))
	for _, g := range []*prometheus.GaugeVec{m.openSessions, m.visitors, m.forgottenBytes, m.held, m.spilled, m.stateBytes, m.watermarkLag} {
		g.DeleteLabelValues(part)
	}
	for _, t := range topics {
		m.consumerLag.DeleteLabelValues(t, part)
	}
}
