package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/funnelhouse/funnelhouse/pipeline"
)

// The memory budget (--memory-limit). Without one, the Go GC lets the heap
// grow to twice the live data (GOGC=100) before it collects: a member
// holding 1 GiB of state needs 2 GiB, and a container limit in between
// gets it OOM-killed, replayed and killed again. Given a budget, the GC
// collects harder as the heap nears it (debug.SetMemoryLimit); the budget
// is a soft limit, not a cap on what the state may need.

// gcLimit is the part of the budget given to the Go heap: the rest, 10%
// and at least 48 MiB, is for what the heap does not count (the binary's
// pages, stacks, the runtime's own memory). With twice the live heap over
// the limit, the heap grows to it, so the rest must fit beside it.
func gcLimit(budget int64) int64 { return budget - max(budget/10, 48<<20) }

// defaultGCPercent is the heap growth between collections (GOGC) of a
// member, unless GOGC is set. Most of a member's heap is buffers replaced
// at every flush (rows, fetched records, the driver's columns), so at Go's
// default of 100 the heap, and RSS with it, peaks at twice them. Measured
// at 5M events (bench/RESULTS.md, "GOGC 50"): peak RSS 870 → 700 MiB
// (medians) for 10 % more CPU in the process, 4 % of the total with
// ClickHouse's and the broker's.
const defaultGCPercent = 50

// applyGCPercent sets defaultGCPercent unless GOGC is set, and returns the
// GC percent in force and where it came from.
func applyGCPercent() (int, string) {
	if os.Getenv("GOGC") != "" {
		p := debug.SetGCPercent(100)
		debug.SetGCPercent(p)
		return p, "GOGC"
	}
	debug.SetGCPercent(defaultGCPercent)
	return defaultGCPercent, "default"
}

// applyMemoryLimit sets the GC's limit from --memory-limit, else from the
// cgroup's memory limit, else from pipeline.DefaultMemoryLimit, unless
// GOMEMLIMIT is set: the runtime has applied that one, and it is the
// budget. It returns the budget in bytes and where it came from.
func applyMemoryLimit(flagValue string) (int64, string, error) {
	limit, source := int64(0), ""
	switch {
	case flagValue != "":
		n, err := parseBytes(flagValue)
		if err != nil {
			return 0, "", fmt.Errorf("invalid --memory-limit %q: %w", flagValue, err)
		}
		limit, source = n, "--memory-limit"
	case os.Getenv("GOMEMLIMIT") != "":
		return debug.SetMemoryLimit(-1), "GOMEMLIMIT", nil
	default:
		limit, source = cgroupMemoryLimit("/sys/fs/cgroup"), "cgroup"
		if limit == 0 {
			limit, source = pipeline.DefaultMemoryLimit, "default"
		}
	}
	debug.SetMemoryLimit(gcLimit(limit)) // every source above gives a budget > 0
	return limit, source, nil
}

// liveHeapHeadroom is the part of the live heap the GC's limit keeps above
// it once the live heap outgrows the budget: a collection per eighth of the
// live heap allocated, which is every few seconds for a member at 20,000
// events/s with 2 GB live.
const liveHeapHeadroom = 8

// followLiveHeap registers its gauges and keeps the GC's limit above the
// live heap, checked every second until ctx ends. The budget is soft, and
// on real-time traffic the state itself can outgrow it: a member at 20,000
// events/s keeps 40 minutes of event ids and open sessions, over 2 GB. A
// limit under the live heap makes the GC collect without pause: measured
// (bench --live, 45 minutes, bench/RESULTS.md), 1.2-1.36 cores at steady
// state, 0.34 with this. So the limit rises with the live heap, with an
// eighth of it as headroom, and comes back to the budget's when the live
// heap shrinks; a warning says when it rises, and the gauges show it.
func followLiveHeap(ctx context.Context, budgetLimit int64, reg prometheus.Registerer) {
	var limit atomic.Int64
	limit.Store(budgetLimit)
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "funnelhouse", Name: "gc_limit_bytes",
			Help: "The Go GC's memory limit in force: the budget's, or above it while the live heap outgrows it (funnelhouse_memory_over_budget)."},
			func() float64 { return float64(limit.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "funnelhouse", Name: "memory_over_budget",
			Help: "1 while the live heap outgrows the memory budget, so that the GC's limit follows it instead of collecting without pause; else 0. Raise --memory-limit or spread the partitions over more members."},
			func() float64 { return map[bool]float64{true: 1}[limit.Load() > budgetLimit] }),
	)
	go func() {
		sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			metrics.Read(sample)
			live := int64(sample[0].Value.Uint64())
			want := max(budgetLimit, live+live/liveHeapHeadroom)
			old := limit.Load()
			if want == old || want > budgetLimit && old > budgetLimit && abs(want-old) < old/32 {
				continue // a change under 3 %: not worth a new limit
			}
			debug.SetMemoryLimit(want)
			limit.Store(want)
			switch {
			case old == budgetLimit:
				slog.Warn("the live heap outgrows the memory budget: the GC's limit follows it; raise --memory-limit or spread the partitions over more members",
					"live_heap_bytes", live, "gc_limit_bytes", want, "budget_gc_limit_bytes", budgetLimit)
			case want == budgetLimit:
				slog.Info("the live heap is back within the memory budget", "live_heap_bytes", live, "gc_limit_bytes", want)
			}
		}
	}()
}

func abs(n int64) int64 { return max(n, -n) }

// cgroupMemoryLimit reads the memory limit of the process's cgroup (v2
// memory.max, else v1 memory.limit_in_bytes) under root; 0 when there is
// none.
func cgroupMemoryLimit(root string) int64 {
	for _, file := range []string{"memory.max", "memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(filepath.Join(root, file))
		if err != nil {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil || n <= 0 || n >= 1<<60 { // "max", or v1's "no limit"
			return 0
		}
		return n
	}
	return 0
}

// parseBytes reads a size: an integer with an optional unit, B, KiB, MiB,
// GiB, KB, MB or GB.
func parseBytes(s string) (int64, error) {
	units := []struct {
		suffix string
		factor int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	num, factor := strings.TrimSpace(s), int64(1)
	for _, u := range units {
		if strings.HasSuffix(num, u.suffix) {
			num, factor = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.factor
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/factor {
		return 0, fmt.Errorf("want a positive number of bytes, e.g. 1073741824, 1024MiB or 1GiB")
	}
	return n * factor, nil
}
