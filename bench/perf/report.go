package perf

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// Result is one measured system in a bench run.
type Result struct {
	System  string    `json:"system"`
	Runs    int       `json:"runs"`
	Records int64     `json:"records"`
	Rows    int64     `json:"rows_per_run"`
	Seconds []float64 `json:"seconds"`
	// PerRun is each run's own numbers, in the order run: the medians
	// below hide a trend from run to run (a server that slows as runs
	// follow each other).
	PerRun         []RunNumbers `json:"per_run,omitempty"`
	MedianSeconds  float64      `json:"median_seconds"`
	RecordsPerSec  float64      `json:"records_per_s"`
	EventsPerSec   float64      `json:"events_per_s,omitempty"`
	PeakRSSMiB     float64      `json:"peak_rss_mib,omitempty"`
	CPUSecPerMEv   float64      `json:"cpu_s_per_million_records,omitempty"`
	CHCPUSecPerMEv float64      `json:"clickhouse_cpu_s_per_million_records,omitempty"`
	// The broker's CPU while the system ran (`funnelhouse broker`, a
	// process of its own), and the bench process's: the harness polling
	// for the end, which is not the measured system's and not in the total.
	BrokerCPUSecPerMEv float64 `json:"broker_cpu_s_per_million_records,omitempty"`
	BenchCPUSecPerMEv  float64 `json:"bench_process_cpu_s_per_million_records,omitempty"`
	// On a cluster: CHCPUSecPerMEv is the sum over its servers, each one
	// also here by its deploy/cluster.sh name (s<shard>r<n>), and
	// ZooKeeper's CPU is apart.
	CHCPUByServer         map[string]float64 `json:"clickhouse_cpu_s_per_million_records_by_server,omitempty"`
	ZooKeeperCPUSecPerMEv float64            `json:"zookeeper_cpu_s_per_million_records,omitempty"`
	// TotalCPUSecPerMEv is the sum of all of them: what the whole machine
	// spent per million records.
	TotalCPUSecPerMEv float64 `json:"total_cpu_s_per_million_records,omitempty"`
	// Cluster is the cluster's name and shape ("funnelhouse: 2 shards x 1
	// replica"); EventsByShard the events rows on each shard after the
	// last run, shard by shard.
	Cluster       string   `json:"cluster,omitempty"`
	EventsByShard []uint64 `json:"events_rows_by_shard,omitempty"`
	Note          string   `json:"note,omitempty"`
	// The four core views read in full (funnelhouse when the query-time
	// peer is measured, and that peer).
	Dashboard *Dashboard `json:"dashboard,omitempty"`
	// The query-time peer's views compared with the expected computation.
	ViewChecks []ViewCheck `json:"view_checks,omitempty"`
	// Every view BI tools read (sql.Views), read in full after the last
	// run's ingest: median milliseconds of ViewRounds reads, rows returned,
	// and the 1-minute load average when the reads began (funnelhouse).
	ViewQueryMs map[string]float64 `json:"view_query_ms,omitempty"`
	// Storage after the last run, once its merges settled: the bytes on
	// disk of the system's database per valid event, and (funnelhouse) the
	// bytes of pipeline_state's visitor rows per visitor.
	DiskBytesPerEvent    float64           `json:"disk_bytes_per_event,omitempty"`
	StateBytesPerVisitor float64           `json:"state_bytes_per_visitor,omitempty"`
	ViewRows             map[string]uint64 `json:"view_rows,omitempty"`
	ViewQueryLoad1       float64           `json:"view_query_load_avg_1m,omitempty"`
}

// RunNumbers are one run's records/s, CPU-s per million records of the
// measured process, ClickHouse and the broker, and peak RSS.
type RunNumbers struct {
	RecordsPerSec float64 `json:"records_per_s"`
	CPU           float64 `json:"cpu_s_per_million_records"`
	ClickHouseCPU float64 `json:"clickhouse_cpu_s_per_million_records"`
	BrokerCPU     float64 `json:"broker_cpu_s_per_million_records"`
	PeakRSSMiB    float64 `json:"peak_rss_mib"`
}

// Report is a whole bench run, as bench/results.json keeps it.
type Report struct {
	Events      int64              `json:"events"`
	Records     int64              `json:"records"`
	Partitions  int                `json:"partitions"`
	Results     []*Result          `json:"results"`
	LatencyP50  float64            `json:"latency_p50_ms"`
	LatencyP99  float64            `json:"latency_p99_ms"`
	LatencyN    int                `json:"latency_samples"`
	LatencyRate int                `json:"latency_rate_events_per_s"`
	Ratios      map[string]float64 `json:"ratios"`
	Verified    bool               `json:"verified"`
}

// sumCPU sets each result's total CPU seconds per million records.
func (rep *Report) sumCPU() {
	for _, r := range rep.Results {
		r.TotalCPUSecPerMEv = r.total()
	}
}

func (r *Result) total() float64 {
	return r.CPUSecPerMEv + r.CHCPUSecPerMEv + r.ZooKeeperCPUSecPerMEv + r.BrokerCPUSecPerMEv
}

// Print writes rep as a table with the notes, the latency and the ratios.
func Print(w io.Writer, rep *Report) {
	fmt.Fprintf(w, "\n%d records (%d valid events), %d partitions\n\n", rep.Records, rep.Events, rep.Partitions)
	// ZooKeeper's column only when a cluster was measured.
	zk := slices.ContainsFunc(rep.Results, func(r *Result) bool { return r.ZooKeeperCPUSecPerMEv > 0 })
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := "system\truns\tmedian s\trecords/s\tpeak RSS MiB\tCPU s/M records\tClickHouse CPU s/M\t"
	if zk {
		head += "ZooKeeper CPU s/M\t"
	}
	fmt.Fprintln(tw, head+"broker CPU s/M\ttotal CPU s/M\tharness CPU s/M\t")
	for _, r := range rep.Results {
		fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.0f\t%.0f\t%.2f\t%.2f\t", r.System, r.Runs, r.MedianSeconds, r.RecordsPerSec, r.PeakRSSMiB,
			r.CPUSecPerMEv, r.CHCPUSecPerMEv)
		if zk {
			fmt.Fprintf(tw, "%.2f\t", r.ZooKeeperCPUSecPerMEv)
		}
		fmt.Fprintf(tw, "%.2f\t%.2f\t%.2f\t\n", r.BrokerCPUSecPerMEv, r.total(), r.BenchCPUSecPerMEv)
	}
	tw.Flush()
	for _, r := range rep.Results {
		if r.Note != "" {
			fmt.Fprintf(w, "  %s: %s\n", r.System, r.Note)
		}
		if r.DiskBytesPerEvent > 0 {
			fmt.Fprintf(w, "  %s: %.1f bytes on disk per event after merges", r.System, r.DiskBytesPerEvent)
			if r.StateBytesPerVisitor > 0 {
				fmt.Fprintf(w, "; %.1f bytes of state per visitor", r.StateBytesPerVisitor)
			}
			fmt.Fprintln(w)
		}
		if len(r.CHCPUByServer) > 0 {
			names := make([]string, 0, len(r.CHCPUByServer))
			for name := range r.CHCPUByServer {
				names = append(names, name)
			}
			slices.Sort(names)
			var parts []string
			for _, name := range names {
				parts = append(parts, fmt.Sprintf("%s %.2f", name, r.CHCPUByServer[name]))
			}
			fmt.Fprintf(w, "  %s: ClickHouse CPU s/M by server: %s\n", r.System, strings.Join(parts, ", "))
		}
		if len(r.EventsByShard) > 0 {
			parts := make([]string, len(r.EventsByShard))
			for i, n := range r.EventsByShard {
				parts[i] = fmt.Sprintf("shard %d: %d", i+1, n)
			}
			fmt.Fprintf(w, "  %s: events rows by shard: %s\n", r.System, strings.Join(parts, ", "))
		}
	}
	printViewTimes(w, rep.Results)
	printDashboards(w, rep.Results)
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

// printDashboards writes the dashboard times and the query-time peer's
// view checks.
func printDashboards(w io.Writer, results []*Result) {
	for _, r := range results {
		if d := r.Dashboard; d != nil {
			fmt.Fprintf(w, "dashboard, %s: %.0f ms (median of %d rounds: funnel_daily %.0f, bounce_daily %.0f, churn_monthly %.0f, revenue_daily %.0f ms; ClickHouse CPU %.2f s per round)\n",
				r.System, d.Ms, DashboardRounds, d.ViewMs["funnel_daily"], d.ViewMs["bounce_daily"], d.ViewMs["churn_monthly"], d.ViewMs["revenue_daily"], d.CHCPUSec)
		}
	}
	for _, r := range results {
		for _, c := range r.ViewChecks {
			switch {
			case c.Error != "":
				fmt.Fprintf(w, "  %s %s: cannot compare: %s\n", r.System, c.View, c.Error)
			case c.Equal():
				fmt.Fprintf(w, "  %s %s: equal to the expected computation (%d rows)\n", r.System, c.View, c.Rows)
			default:
				fmt.Fprintf(w, "  %s %s: %d of %d rows differ (%d expected); likely: %s; first: %s\n", r.System, c.View, c.Differing, c.Rows, c.WantRows, c.Reason, c.First)
			}
		}
	}
}

// Growth is the same bench at several sizes (`bench --growth`).
type Growth struct {
	Reports []*Report `json:"growth"`
}

// PrintGrowth writes one line per size and system: how records/s, CPU,
// memory and storage change with the number of events.
func PrintGrowth(w io.Writer, g *Growth) {
	fmt.Fprintln(w, "\ngrowth: the same bench at each size")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "records\tsystem\trecords/s\ttotal CPU s/M\tpeak RSS MiB\tdisk B/event\tstate B/visitor\tdashboard ms\t")
	for _, rep := range g.Reports {
		for _, r := range rep.Results {
			dash := "-"
			if r.Dashboard != nil {
				dash = fmt.Sprintf("%.0f", r.Dashboard.Ms)
			}
			fmt.Fprintf(tw, "%d\t%s\t%.0f\t%.2f\t%.0f\t%.1f\t%.1f\t%s\t\n", rep.Records, r.System, r.RecordsPerSec, r.total(),
				r.PeakRSSMiB, r.DiskBytesPerEvent, r.StateBytesPerVisitor, dash)
		}
	}
	tw.Flush()
}
