package ablation

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/funnelhouse/funnelhouse/pipeline/rows"
	chsink "github.com/funnelhouse/funnelhouse/sinks/clickhouse"
)

// Config says what Run measures.
type Config struct {
	Endpoint chsink.Endpoint // its database is dropped and re-created for every measurement
	CHPID    int             // the server's pid, for its CPU seconds
	// HTTPURL is the same server's HTTP interface (http://host:port) for
	// the reference step; "" skips it.
	HTTPURL string
	Repeats int      // measurements of each step; the median is reported
	Steps   []string // names of the steps to measure (Step.Name or its view or table); empty: all
	Log     io.Writer
	// Settle is how long a database must stay without merges, its parts
	// unchanged, to count as settled (default 3s); Idle is how long the
	// server's idle CPU rate is measured (default 5s). Tests shorten them.
	Settle, Idle time.Duration
}

// Result is one step's measurements.
type Result struct {
	Step     string    `json:"step"`
	Rows     int64     `json:"rows"` // rows inserted into funnelhouse's tables (not the views')
	Runs     []Measure `json:"runs"`
	CPUPerM  float64   `json:"cpu_s_per_m_records"` // median over Runs, per million input records
	Increase float64   `json:"increase_s_per_m"`    // over the step before (ladder only)
	// InsertPerM and MergePerM split the run with the median total.
	InsertPerM float64   `json:"insert_s_per_m"`
	MergePerM  float64   `json:"merge_s_per_m"`
	AllPerM    []float64 `json:"all_s_per_m"` // every run's total, in order
}

// Report is what Run measured.
type Report struct {
	Records int64            `json:"records"`
	Rows    map[string]int64 `json:"rows"` // by table, per run
	Writes  int              `json:"writes"`
	IdleCPU float64          `json:"idle_cpu_s_per_s"` // subtracted from every measurement
	Steps   []*Result        `json:"steps"`
	Ref     *Result          `json:"reference,omitempty"`
}

// Run measures every selected step of the ladder, and the reference,
// cfg.Repeats times in rounds (each round all steps once), so that the
// shared machine's slow spells fall on all steps alike.
func Run(ctx context.Context, cfg Config, w *Workload) (*Report, error) {
	steps, err := selected(cfg.Steps)
	if err != nil {
		return nil, err
	}
	conn, db, err := chsink.Connect(ctx, cfg.Endpoint)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	s := &server{endpoint: cfg.Endpoint, conn: conn, db: db, pid: cfg.CHPID, settleFor: orDefault(cfg.Settle, 3*time.Second)}
	s.measureIdle(orDefault(cfg.Idle, 5*time.Second))
	rep := &Report{Records: w.Records, Rows: w.Rows, Writes: len(w.Writes), IdleCPU: s.idle}
	for _, st := range steps {
		rep.Steps = append(rep.Steps, &Result{Step: st.Name, Rows: stepRows(w, st)})
	}
	if cfg.HTTPURL != "" {
		rep.Ref = &Result{Step: ReferenceStep, Rows: w.Records}
	}
	for round := 1; round <= max(cfg.Repeats, 1); round++ {
		for i, st := range steps {
			m, err := s.measureStep(ctx, st, w)
			if err != nil {
				return rep, fmt.Errorf("step %q: %w", st.Name, err)
			}
			rep.Steps[i].add(m, w.Records)
			logf(cfg.Log, "round %d: %-40s %6.2f CPU-s/M (insert %.2f, merges %.2f), %.1f s\n", round, st.Name, perM(m.CPU(), w.Records), perM(m.InsertCPU, w.Records), perM(m.MergeCPU, w.Records), m.Seconds)
		}
		if rep.Ref != nil {
			m, err := s.measureReference(ctx, cfg.HTTPURL, w)
			if err != nil {
				return rep, fmt.Errorf("reference: %w", err)
			}
			rep.Ref.add(m, w.Records)
			logf(cfg.Log, "round %d: %-40s %6.2f CPU-s/M\n", round, "reference", perM(m.CPU(), w.Records))
		}
	}
	for i, r := range rep.Steps {
		r.summarise(w.Records)
		if i > 0 {
			r.Increase = r.CPUPerM - rep.Steps[i-1].CPUPerM
		}
	}
	if rep.Ref != nil {
		rep.Ref.summarise(w.Records)
	}
	return rep, s.conn.Exec(ctx, "DROP DATABASE IF EXISTS "+db)
}

// selected is the ladder's steps that names select (all when empty).
func selected(names []string) ([]Step, error) {
	steps, err := Ladder()
	if err != nil || len(names) == 0 {
		return steps, err
	}
	var out []Step
	for _, st := range steps {
		if slices.ContainsFunc(names, func(n string) bool { return n == st.Name || "+ "+n == st.Name || n+" only" == st.Name }) {
			out = append(out, st)
		}
	}
	if len(out) != len(names) {
		return nil, fmt.Errorf("unknown step in %v: the steps are %s", names, stepNames(steps))
	}
	return out, nil
}

func stepNames(steps []Step) string {
	var names []string
	for _, st := range steps {
		names = append(names, st.Name)
	}
	return strings.Join(names, ", ")
}

// stepRows is the rows a step inserts into funnelhouse's own tables.
func stepRows(w *Workload, st Step) int64 {
	var n int64
	for _, t := range st.Tables {
		n += w.Rows[t.TableName()]
	}
	return n
}

func (r *Result) add(m Measure, records int64) {
	r.Runs = append(r.Runs, m)
	r.AllPerM = append(r.AllPerM, perM(m.CPU(), records))
}

// summarise sets the medians: the run with the median total gives the
// insert and merge split too.
func (r *Result) summarise(records int64) {
	order := slices.Clone(r.Runs)
	slices.SortFunc(order, func(a, b Measure) int { return cmpFloat(a.CPU(), b.CPU()) })
	mid := order[len(order)/2]
	r.CPUPerM, r.InsertPerM, r.MergePerM = perM(mid.CPU(), records), perM(mid.InsertCPU, records), perM(mid.MergeCPU, records)
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

func perM(seconds float64, records int64) float64 { return seconds / float64(records) * 1e6 }

func logf(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, format, args...)
	}
}

// Print writes the report as a Markdown table.
func Print(out io.Writer, rep *Report) {
	fmt.Fprintf(out, "%d input records; rows per run: events %d, sessions %d, lifecycle_transitions %d, pipeline_state %d, in %d writes; server idle %.3f CPU-s/s (subtracted)\n\n",
		rep.Records, rep.Rows[rows.EventsTable.Name], rep.Rows[rows.SessionsTable.Name], rep.Rows[rows.TransitionsTable.Name], rep.Rows[rows.StateTable.Name], rep.Writes, rep.IdleCPU)
	fmt.Fprintln(out, "| step | rows | ClickHouse CPU-s / M records (median) | increase | of which inserts | of which merges after | runs |")
	fmt.Fprintln(out, "|---|---|---|---|---|---|---|")
	for i, r := range rep.Steps {
		inc := fmt.Sprintf("%+.2f", r.Increase)
		if i == 0 {
			inc = "—"
		}
		printRow(out, r, inc)
	}
	if rep.Ref != nil {
		printRow(out, rep.Ref, "—")
	}
}

func printRow(out io.Writer, r *Result, inc string) {
	var runs []string
	for _, v := range r.AllPerM {
		runs = append(runs, fmt.Sprintf("%.2f", v))
	}
	fmt.Fprintf(out, "| %s | %d | %.2f | %s | %.2f | %.2f | %s |\n", r.Step, r.Rows, r.CPUPerM, inc, r.InsertPerM, r.MergePerM, strings.Join(runs, ", "))
}
