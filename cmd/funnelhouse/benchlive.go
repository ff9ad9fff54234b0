package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/funnelhouse/funnelhouse/bench/perf"
	"github.com/funnelhouse/funnelhouse/pipeline"
)

// liveFlags are the flags of `bench --live`.
type liveFlags struct {
	on         bool
	rate       int
	rates      []string
	duration   time.Duration
	lateness   time.Duration
	latenesses []string
}

// liveDefaultPartitions is --partitions of `bench --live` when not given:
// a production-like topic, where the state is split over more partitions
// than the 4 of the historical bench.
const liveDefaultPartitions = 12

func (f *liveFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&f.on, "live", false, "measure real-time traffic instead: events with ts = now at a fixed rate, each held for --lateness before release; "+
		"reports state bytes written per second, held events, RSS, CPU and latency (--partitions defaults to 12 here)")
	fs.IntVar(&f.rate, "live-rate", 20_000, "with --live: events per second")
	fs.Var(listFlag{&f.rates}, "live-rates", "with --live: a comma-separated list of rates, one run each (overrides --live-rate)")
	durationVar(fs, &f.duration, "live-duration", 10*time.Minute, "with --live: traffic time of each run (a `duration`)")
	durationVar(fs, &f.lateness, "lateness", 10*time.Minute, "with --live: --lateness of the measured funnelhouse run (a `duration`)")
	fs.Var(listFlag{&f.latenesses}, "live-latenesses", "with --live: a comma-separated list of latenesses, one run each with every rate (overrides --lateness)")
}

// config turns the flags into a perf.LiveConfig, naming the flag at fault.
func (f *liveFlags) config(fs *flag.FlagSet, cfg perf.Config) (perf.LiveConfig, error) {
	lc := perf.LiveConfig{Duration: f.duration, Partitions: cfg.Partitions, CHPIDFile: cfg.CHPIDFile, Seed: cfg.Seed, MemoryLimit: cfg.MemoryLimit, ProfileDir: cfg.ProfileDir, Progress: os.Stdout}
	if !given(fs, "partitions") {
		lc.Partitions = liveDefaultPartitions
	}
	lc.Rates = []int{f.rate}
	if len(f.rates) > 0 {
		lc.Rates = nil
		for _, s := range f.rates {
			n, err := strconv.Atoi(s)
			if err != nil || n <= 0 {
				return lc, fmt.Errorf("invalid --live-rates %q: want positive events per second", s)
			}
			lc.Rates = append(lc.Rates, n)
		}
	}
	lc.Latenesses = []time.Duration{f.lateness}
	if len(f.latenesses) > 0 {
		lc.Latenesses = nil
		for _, s := range f.latenesses {
			d, err := pipeline.ParseDuration(s)
			if err != nil || d <= 0 {
				return lc, fmt.Errorf("invalid --live-latenesses %q: want positive durations (2m, 10m)", s)
			}
			lc.Latenesses = append(lc.Latenesses, d)
		}
	}
	switch {
	case f.rate <= 0:
		return lc, fmt.Errorf("invalid --live-rate %d: want > 0", f.rate)
	case f.lateness <= 0:
		return lc, fmt.Errorf("invalid --lateness %s: want > 0", f.lateness)
	case f.duration < 10*time.Second:
		return lc, fmt.Errorf("invalid --live-duration %s: want at least 10s (one sample)", f.duration)
	case lc.Partitions <= 0:
		return lc, fmt.Errorf("invalid --partitions %d: want > 0", lc.Partitions)
	}
	return lc, nil
}

// given reports whether a flag was set on the command line or in the
// environment (parseWithEnv does not mark the latter as set).
func given(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	_, env := os.LookupEnv(envName(name))
	return set || env
}

// run is `bench --live`.
func (f *liveFlags) run(ctx context.Context, fs *flag.FlagSet, ch *clickhouseFlags, cfg perf.Config, jsonOut string) error {
	lc, err := f.config(fs, cfg)
	if err != nil {
		return err
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if lc.Endpoint, err = ch.endpoint(); err != nil {
		return err
	}
	if lc.Bin, err = os.Executable(); err != nil {
		return err
	}
	rep, err := perf.RunLive(ctx, lc)
	if rep != nil && len(rep.Results) > 0 {
		perf.PrintLive(os.Stdout, rep)
		if werr := writeJSON(jsonOut, rep); werr != nil {
			return werr
		}
	}
	return err
}
