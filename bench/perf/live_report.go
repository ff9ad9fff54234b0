package perf

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// LiveReport is a whole `bench --live` run, as bench/live.json keeps it.
type LiveReport struct {
	Traffic    string        `json:"traffic"`
	Partitions int           `json:"partitions"`
	DurationS  float64       `json:"duration_s"`
	Results    []*LiveResult `json:"results"`
}

// LiveResult is one combination of a rate and a lateness. CPU seconds are
// per million records produced, from the start to the end of the traffic.
type LiveResult struct {
	Rate         int     `json:"rate_events_per_s"`
	Lateness     string  `json:"lateness"`
	LatenessS    float64 `json:"lateness_s"`
	DurationS    float64 `json:"duration_s"`
	Partitions   int     `json:"partitions"`
	Records      int64   `json:"records_produced"`
	AchievedRate float64 `json:"achieved_rate_per_s"`
	Consumed     int64   `json:"records_consumed"`
	// Records produced but not yet consumed by funnelhouse at the end: a
	// child that cannot keep up shows here.
	BacklogAtEnd int64 `json:"backlog_at_end"`
	StateBytes   int64 `json:"state_bytes_written"`
	// Mean state bytes written per second from WindowFromS to the end:
	// held events at their steady state when Steady.
	StateBytesPerS float64 `json:"state_bytes_per_s"`
	WindowFromS    float64 `json:"state_window_from_s"`
	// Over the same window: checkpoints, the state each wrote, and the
	// mean time of a checkpoint's write (rows and state).
	CheckpointsPerS         float64      `json:"checkpoints_per_s"`
	StateBytesPerCheckpoint float64      `json:"state_bytes_per_checkpoint"`
	CheckpointMeanS         float64      `json:"checkpoint_mean_s"`
	Steady                  bool         `json:"steady"`
	PeakRSSMiB              float64      `json:"peak_rss_mib"`
	HeldAtEnd               int64        `json:"held_at_end"`
	CPUSecPerM              float64      `json:"cpu_s_per_million_records"`
	CHCPUSecPerM            float64      `json:"clickhouse_cpu_s_per_million_records,omitempty"`
	BenchCPUSecPerM         float64      `json:"bench_process_cpu_s_per_million_records"`
	LatencyP50S             float64      `json:"latency_p50_s,omitempty"`
	LatencyP99S             float64      `json:"latency_p99_s,omitempty"`
	LatencyN                int          `json:"latency_samples"`
	LatencyMissing          int          `json:"latency_probes_not_visible"`
	LatencyNote             string       `json:"latency_note"`
	ScrapeErrors            int          `json:"scrape_errors,omitempty"`
	Error                   string       `json:"error,omitempty"` // the run failed: its samples so far, no summary
	Samples                 []LiveSample `json:"samples"`
}

// LiveSample is the state of a run at one moment; counters and CPU
// seconds are cumulative from the start of the traffic, rates over the
// interval since the sample before.
type LiveSample struct {
	ElapsedS       float64 `json:"elapsed_s"`
	Produced       int64   `json:"records_produced"`
	Consumed       int64   `json:"records_consumed"`
	RatePerS       float64 `json:"produce_rate_per_s"`
	Held           int64   `json:"held_events"`
	StateBytes     int64   `json:"state_bytes_written"`
	StateBytesPerS float64 `json:"state_bytes_per_s"`
	Checkpoints    int64   `json:"checkpoints"`
	CheckpointS    float64 `json:"checkpoint_s"` // their write time, summed
	RSSMiB         float64 `json:"rss_mib"`
	CPU            float64 `json:"cpu_s"`
	CHCPU          float64 `json:"clickhouse_cpu_s"`
	BenchCPU       float64 `json:"bench_process_cpu_s"`
}

// printSample is a run's progress line.
func printSample(w io.Writer, res *LiveResult, s LiveSample) {
	fmt.Fprintf(w, "[%d/s, lateness %s] %4.0f s: %6.0f records/s, held %d, backlog %d, state %s/s, %d checkpoints, RSS %.0f MiB\n",
		res.Rate, res.Lateness, s.ElapsedS, s.RatePerS, s.Held, s.Produced-s.Consumed, mb(s.StateBytesPerS), s.Checkpoints, s.RSSMiB)
}

// PrintLiveResult is a run's summary.
func PrintLiveResult(w io.Writer, r *LiveResult) {
	steady := "held events at steady state"
	if !r.Steady {
		steady = "held events still growing: the run is shorter than the lateness"
	}
	fmt.Fprintf(w, "[%d/s, lateness %s] %d records in %.0f s (%.0f/s achieved), %d consumed (backlog %d)\n",
		r.Rate, r.Lateness, r.Records, r.DurationS, r.AchievedRate, r.Consumed, r.BacklogAtEnd)
	fmt.Fprintf(w, "  state written: %s/s from %.0f s on (%s), %s in all\n", mb(r.StateBytesPerS), r.WindowFromS, steady, mb(float64(r.StateBytes)))
	fmt.Fprintf(w, "  there: %.2f checkpoints/s, %s of state each, %.2f s mean checkpoint write\n", r.CheckpointsPerS, mb(r.StateBytesPerCheckpoint), r.CheckpointMeanS)
	fmt.Fprintf(w, "  peak RSS %.0f MiB, held at end %d; CPU s per million records: funnelhouse %.2f, ClickHouse %.2f, bench process %.2f\n",
		r.PeakRSSMiB, r.HeldAtEnd, r.CPUSecPerM, r.CHCPUSecPerM, r.BenchCPUSecPerM)
	if r.LatencyN > 0 {
		fmt.Fprintf(w, "  latency p50 %.1f s, p99 %.1f s (lateness %.0f s + %.1f s, + %.1f s): %s\n",
			r.LatencyP50S, r.LatencyP99S, r.LatenessS, r.LatencyP50S-r.LatenessS, r.LatencyP99S-r.LatenessS, r.LatencyNote)
	} else {
		fmt.Fprintf(w, "  %s\n", r.LatencyNote)
	}
}

// PrintLive writes the table of all runs.
func PrintLive(w io.Writer, rep *LiveReport) {
	fmt.Fprintf(w, "\nlive traffic, %.0f s per run, %d partitions: %s\n\n", rep.DurationS, rep.Partitions, rep.Traffic)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "rate/s\tlateness\tachieved/s\tstate MB/s\tMB/checkpoint\tcheckpoint s\tpeak RSS MiB\theld at end\tbacklog at end\tCPU s/M funnelhouse\tClickHouse\tbench process\tlatency p50 s\tp99 s\t")
	for _, r := range rep.Results {
		if r.Error != "" {
			fmt.Fprintf(tw, "%d\t%s\tfailed\t\t\t\t\t\t\t\t\t\t\t\t\n", r.Rate, r.Lateness)
			continue
		}
		mark := ""
		if !r.Steady {
			mark = " *"
		}
		p50, p99 := "-", "-"
		if r.LatencyN > 0 {
			p50, p99 = fmt.Sprintf("%.1f", r.LatencyP50S), fmt.Sprintf("%.1f", r.LatencyP99S)
		}
		fmt.Fprintf(tw, "%d\t%s\t%.0f\t%.1f%s\t%.1f\t%.2f\t%.0f\t%d\t%d\t%.2f\t%.2f\t%.2f\t%s\t%s\t\n", r.Rate, r.Lateness, r.AchievedRate,
			r.StateBytesPerS/1e6, mark, r.StateBytesPerCheckpoint/1e6, r.CheckpointMeanS, r.PeakRSSMiB, r.HeldAtEnd, r.BacklogAtEnd, r.CPUSecPerM, r.CHCPUSecPerM, r.BenchCPUSecPerM, p50, p99)
	}
	tw.Flush()
	for _, r := range rep.Results {
		if r.Error != "" {
			fmt.Fprintf(w, "failed: %s\n", r.Error)
		}
	}
	fmt.Fprintln(w, "\nstate MB/s: pipeline_state bytes written by checkpoints (funnelhouse_pipeline_checkpoint_state_written_bytes_total),")
	fmt.Fprintln(w, "mean from the lateness (or the run's second half) to the end; * the run is shorter than the lateness, held events still grow.")
	fmt.Fprintln(w, "MB/checkpoint, checkpoint s: state written by one checkpoint (all partitions) and its mean write time, same window;")
	fmt.Fprintln(w, "state MB/s = MB/checkpoint x checkpoints/s, and checkpoints come no faster than --flush-interval or their write allows.")
	fmt.Fprintln(w, "latency: append to visible in events; it includes the lateness hold, as every event has ts = now.")
	fmt.Fprintln(w, "backlog: records produced minus those funnelhouse counted as consumed (funnelhouse_pipeline_records_total, updated")
	fmt.Fprintln(w, "about once a second, so a second's worth is no backlog).")
	fmt.Fprintln(w, "CPU s/M: CPU seconds per million records produced; the bench process hosts the broker and the producer.")
}

// mb formats bytes as MB (10^6).
func mb(b float64) string { return fmt.Sprintf("%.1f MB", b/1e6) }
