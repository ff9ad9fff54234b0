package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/funnelhouse/funnelhouse/bench/ablation"
	"github.com/funnelhouse/funnelhouse/bench/perf"
)

func ablationCmd(ctx context.Context, args []string) error {
	fs := newFlagSet("ablation", "Where ClickHouse's CPU goes when it stores funnelhouse's rows. Generates --events events as bench does,\n"+
		"computes in process the row batches the pipeline writes (flushes of --batch-rows, a checkpoint every\n"+
		"--checkpoint-records records and at the end), then, for each step of a cumulative ladder (events only,\n"+
		"+ sessions, + lifecycle_transitions, + pipeline_state, + each materialised view), inserts them with the\n"+
		"pipeline's sink into a fresh --clickhouse database and reports the server's CPU seconds per million\n"+
		"records until its merges settle. The database is dropped and re-created for every measurement.")
	var ch clickhouseFlags
	ch.register(fs)
	_ = fs.Set("clickhouse", "clickhouse://default@127.0.0.1:9000/funnelhouse_ablation")
	var wc ablation.WorkloadConfig
	var cfg ablation.Config
	var pidFile, jsonOut string
	fs.IntVar(&wc.Events, "events", 2_000_000, "approximate number of generated events")
	fs.Int64Var(&wc.Seed, "seed", 1, "generator seed")
	fs.IntVar(&wc.Partitions, "partitions", 4, "partitions of the topics")
	fs.IntVar(&wc.BatchRows, "batch-rows", 100_000, "the pipeline's --batch-rows: flush every partition once this many rows are buffered")
	// 10 s (the pipeline's checkpoint interval) at the ~180k records/s of `bench`.
	fs.IntVar(&wc.CheckpointRecords, "checkpoint-records", 1_800_000, "records between checkpoints (rows + pipeline_state); one more at the end")
	fs.StringVar(&pidFile, "clickhouse-pid-file", "", "pid file of the ClickHouse server (required: its CPU is what is measured; same machine only)")
	fs.StringVar(&cfg.HTTPURL, "clickhouse-http", "", "the same server's HTTP `URL` (http://127.0.0.1:PORT) for the reference step: the Kafka engine's raw tables fed the same records as JSONEachRow; empty skips it")
	fs.IntVar(&cfg.Repeats, "repeats", 3, "measurements of each step (in rounds); the median is reported")
	fs.Var(listFlag{&cfg.Steps}, "steps", "measure only these steps (table or view names, comma-separated); empty for all")
	fs.StringVar(&jsonOut, "json", "", "also write the results as JSON to this `file` (- for stdout)")
	var traces string
	var cpuPerM float64
	fs.StringVar(&traces, "profile-traces", "", "instead: sum a CPU profile of `funnelhouse run` by stage, from this `file` of `go tool pprof -traces` output (- for stdin)")
	fs.Float64Var(&cpuPerM, "process-cpu-per-m", 0, "with --profile-traces: the process's CPU seconds per million records (bench's column), to split by stage")
	if err := parseWithEnv(fs, args); err != nil {
		return err
	}
	if traces != "" {
		return printStages(traces, cpuPerM)
	}
	if cfg.CHPID = perf.ReadPID(pidFile); cfg.CHPID == 0 {
		return fmt.Errorf("--clickhouse-pid-file: no pid in %q", pidFile)
	}
	var err error
	if cfg.Endpoint, err = ch.endpoint(); err != nil {
		return err
	}
	cfg.Log = os.Stderr
	start := time.Now()
	w, err := ablation.NewWorkload(wc)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "workload: %d records, %d writes, rows %v (%.1f s)\n", w.Records, len(w.Writes), w.Rows, time.Since(start).Seconds())
	rep, err := ablation.Run(ctx, cfg, w)
	if rep != nil && err == nil {
		ablation.Print(os.Stdout, rep)
		return writeJSON(jsonOut, rep)
	}
	return err
}

// printStages prints the stages of a profile's `go tool pprof -traces`
// output.
func printStages(file string, cpuPerM float64) error {
	in := os.Stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	stages, err := ablation.Stages(in)
	if err != nil {
		return err
	}
	ablation.PrintStages(os.Stdout, stages, cpuPerM)
	return nil
}
