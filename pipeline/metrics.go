package pipeline

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/funnelhouse/funnelhouse/pipeline/rows"
	"github.com/funnelhouse/funnelhouse/schemas"
)

// metrics are the pipeline's Prometheus metrics. Labels are of low
// cardinality: topic, partition, type, stage, reason.
type metrics struct {
	records       *prometheus.CounterVec
	events        *prometheus.CounterVec
	deadLetters   *prometheus.CounterVec
	duplicates    prometheus.Counter
	late          prometheus.Counter
	sessions      prometheus.Counter
	transitions   *prometheus.CounterVec
	openSessions  *prometheus.GaugeVec
	visitors      *prometheus.GaugeVec
	held          *prometheus.GaugeVec
	stateBytes    *prometheus.GaugeVec
	watermarkLag  *prometheus.GaugeVec
	consumerLag   *prometheus.GaugeVec
	checkpointSec prometheus.Histogram
	commitSec     prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	const ns = "funnelhouse"
	m := &metrics{
		records: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "pipeline", Name: "records_total",
			Help: "Input records consumed, by topic."}, []string{"topic"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "pipeline", Name: "events_total",
			Help: "Valid, non-duplicate events, by type."}, []string{"type"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "pipeline", Name: "dead_letters_total",
			Help: "Records sent to the dead-letter topic, by reason."}, []string{"reason"}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: "pipeline", Name: "duplicates_total",
			Help: "Records dropped as duplicates of an event already seen."}),
		late: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: "pipeline", Name: "late_events_total",
			Help: "Events older than the watermark on arrival, stored with late = 1."}),
		sessions: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: "pipeline", Name: "sessions_closed_total",
			Help: "Sessions closed and written."}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: "pipeline", Name: "stage_transitions_total",
			Help: "Lifecycle transitions, by stage."}, []string{"stage"}),
		openSessions: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: "pipeline", Name: "open_sessions",
			Help: "Sessions open, by partition."}, []string{"partition"}),
		visitors: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: "pipeline", Name: "tracked_visitors",
			Help: "Visitors with lifecycle state in memory, by partition."}, []string{"partition"}),
		held: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: "pipeline", Name: "held_events",
			Help: "Events waiting for the watermark, by partition."}, []string{"partition"}),
		stateBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: "pipeline", Name: "checkpoint_state_bytes",
			Help: "Bytes of state written by the partition's last checkpoint."}, []string{"partition"}),
		watermarkLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: "pipeline", Name: "watermark_delay_seconds",
			Help: "Processing clock minus the partition's watermark."}, []string{"partition"}),
		consumerLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: "pipeline", Name: "consumer_lag_records",
			Help: "Records in the topic-partition not yet read."}, []string{"topic", "partition"}),
		checkpointSec: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: "pipeline", Name: "checkpoint_duration_seconds",
			Help: "Time to write a checkpoint's rows and state.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 14)}),
		commitSec: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: "pipeline", Name: "commit_duration_seconds",
			Help: "Time to commit offsets after a checkpoint.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
	}
	if reg != nil {
		reg.MustRegister(m.records, m.events, m.deadLetters, m.duplicates, m.late, m.sessions, m.transitions,
			m.openSessions, m.visitors, m.held, m.stateBytes, m.watermarkLag, m.consumerLag, m.checkpointSec, m.commitSec)
	}
	return m
}

// publish adds what a processor counted since the last publish (prev) to
// the counters and sets its gauges.
func (m *metrics) publish(partition int32, topics [2]string, p *Processor, prev *Stats, now time.Time) {
	s := p.Stats()
	for t := range s.Records {
		if d := s.Records[t] - prev.Records[t]; d > 0 {
			m.records.WithLabelValues(topics[t]).Add(float64(d))
		}
	}
	for t := range s.Events {
		if d := s.Events[t] - prev.Events[t]; d > 0 {
			m.events.WithLabelValues(schemas.Type(t).String()).Add(float64(d))
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
	for st := range s.Transitions {
		if d := s.Transitions[st] - prev.Transitions[st]; d > 0 {
			m.transitions.WithLabelValues(rows.Stage(st).String()).Add(float64(d))
		}
	}
	*prev = s.clone()
	part := strconv.Itoa(int(partition))
	m.openSessions.WithLabelValues(part).Set(float64(p.OpenSessions()))
	m.visitors.WithLabelValues(part).Set(float64(p.Visitors()))
	m.held.WithLabelValues(part).Set(float64(p.Held()))
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
	for _, g := range []*prometheus.GaugeVec{m.openSessions, m.visitors, m.held, m.stateBytes, m.watermarkLag} {
		g.DeleteLabelValues(part)
	}
	for _, t := range topics {
		m.consumerLag.DeleteLabelValues(t, part)
	}
}
