package pipeline

import (
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/funnelhouse/funnelhouse/schemas"
)

// TestMetricNames pins the metric names (dashboards and alerts use them)
// and checks that a registry refusing them is an error of New, not a
// panic.
func TestMetricNames(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := Config{Brokers: []string{"127.0.0.1:1"}, Registerer: reg}
	if _, err := New(cfg, nil); err != nil {
		t.Fatal(err)
	}
	var names []string
	ch := make(chan *prometheus.Desc, 64)
	go func() {
		for _, c := range collectorsOfNew(t) {
			c.Describe(ch)
		}
		close(ch)
	}()
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	for d := range ch {
		names = append(names, fq.FindStringSubmatch(d.String())[1])
	}
	slices.Sort(names)
	want := []string{"assigned_partitions", "buffered_bytes", "buffered_rows", "checkpoint_duration_seconds", "checkpoint_interval_seconds", "checkpoint_state_bytes",
		"checkpoint_state_written_bytes_total", "commit_duration_seconds",
		"consumer_lag_records", "dead_letters_total", "duplicates_total", "events_total", "fetch_paused", "flush_duration_seconds", "flush_interval_seconds", "forgotten_filter_bytes", "held_events", "held_spilled_bytes",
		"idle_advance_seconds", "last_checkpoint_timestamp_seconds", "late_events_total", "lateness_seconds", "memory_budget_bytes",
		"open_sessions", "partitions", "records_total", "sessions_closed_total", "stage_transitions_total", "tracked_visitors", "visitor_lookups_total", "visitors_forgotten_total", "visitors_reloaded_total", "watermark_delay_seconds"}
	for i := range want {
		want[i] = "funnelhouse_pipeline_" + want[i]
	}
	want = append(want, "funnelhouse_ready") // sorted: "funnelhouse_r" follows "funnelhouse_p"
	if !slices.Equal(names, want) {
		t.Errorf("metric names:\n got %v\nwant %v", names, want)
	}
	if _, err := New(cfg, nil); err == nil || !strings.Contains(err.Error(), "cannot register pipeline metrics") {
		t.Errorf("second New on the same registry: got %v, want a registration error", err)
	}
}

// collectorsOfNew returns the collectors New registers, by registering them
// with a recorder.
func collectorsOfNew(t *testing.T) []prometheus.Collector {
	var rec recorder
	if _, err := newMetrics(&rec, &Pipeline{}); err != nil {
		t.Fatal(err)
	}
	return rec.cs
}

type recorder struct{ cs []prometheus.Collector }

func (r *recorder) Register(c prometheus.Collector) error   { r.cs = append(r.cs, c); return nil }
func (r *recorder) MustRegister(cs ...prometheus.Collector) { r.cs = append(r.cs, cs...) }
func (r *recorder) Unregister(prometheus.Collector) bool    { return false }

// TestEventsCounterNeverGoesDown: an event rejected at its release
// (revenue_overflow) is taken off Stats.Events; the counter stays where it
// was until the events that follow catch up (before, the difference
// wrapped around to 2^64).
func TestEventsCounterNeverGoesDown(t *testing.T) {
	m, err := newMetrics(nil, &Pipeline{})
	if err != nil {
		t.Fatal(err)
	}
	p := NewProcessor("m", 0, [2]string{"clickstream", "transactions"}, DefaultRules(), time.Now)
	var prev Stats
	var prevForget ForgetCounts
	orders := m.events.WithLabelValues(schemas.OrderCompleted.String())
	for _, c := range []struct{ events, want uint64 }{{5, 5}, {4, 5}, {4, 5}, {7, 7}} {
		p.stats.Events[schemas.OrderCompleted] = c.events
		m.publish(0, [2]string{"clickstream", "transactions"}, p, &prev, &prevForget, time.Now())
		var got dto.Metric
		if err := orders.Write(&got); err != nil || got.GetCounter().GetValue() != float64(c.want) {
			t.Fatalf("Events %d: counter %v (%v), want %d", c.events, got.GetCounter().GetValue(), err, c.want)
		}
	}
}
