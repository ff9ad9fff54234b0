package main

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/funnelhouse/funnelhouse/pipeline"
)

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"1073741824": 1 << 30, "1GiB": 1 << 30, "512 MiB": 512 << 20, "2GB": 2e9, "100B": 100, "64KiB": 64 << 10} {
		if got, err := parseBytes(in); err != nil || got != want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-1GiB", "1.5GiB", "lots", "1TiB", "9999999999999GiB"} {
		if _, err := parseBytes(in); err == nil {
			t.Errorf("parseBytes(%q) accepted", in)
		}
	}
}

func TestCgroupMemoryLimit(t *testing.T) {
	for content, want := range map[string]int64{"1073741824\n": 1 << 30, "max\n": 0, "9223372036854771712\n": 0} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "memory.max"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := cgroupMemoryLimit(dir); got != want {
			t.Errorf("memory.max %q: %d, want %d", content, got, want)
		}
	}
	v1 := t.TempDir()
	if err := os.MkdirAll(filepath.Join(v1, "memory"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(v1, "memory", "memory.limit_in_bytes"), []byte("536870912\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := cgroupMemoryLimit(v1); got != 512<<20 {
		t.Errorf("cgroup v1: %d, want %d", got, 512<<20)
	}
	if got := cgroupMemoryLimit(t.TempDir()); got != 0 {
		t.Errorf("no cgroup files: %d, want 0", got)
	}
}

// TestMemoryBudgetSources checks where the budget comes from and that the
// GC's limit follows it.
func TestMemoryBudgetSources(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })

	t.Setenv("GOMEMLIMIT", "")
	limit, source, err := applyMemoryLimit("768MiB")
	if err != nil || limit != 768<<20 || source != "--memory-limit" || debug.SetMemoryLimit(-1) != gcLimit(768<<20) {
		t.Errorf("--memory-limit 768MiB: budget %d from %q (%v), GC limit %d; want %d from the flag, GC limit %d",
			limit, source, err, debug.SetMemoryLimit(-1), 768<<20, gcLimit(768<<20))
	}
	if _, _, err := applyMemoryLimit("lots"); err == nil || !strings.Contains(err.Error(), "--memory-limit") {
		t.Errorf("--memory-limit lots: %v, want an error naming the flag", err)
	}

	limit, source, _ = applyMemoryLimit("")
	switch {
	case source == "cgroup" && limit > 0: // a container's limit wins over the default
	case source != "default" || limit != pipeline.DefaultMemoryLimit || debug.SetMemoryLimit(-1) != gcLimit(pipeline.DefaultMemoryLimit):
		t.Errorf("no flag, no cgroup limit: budget %d from %q, GC limit %d; want the default %d, GC limit %d",
			limit, source, debug.SetMemoryLimit(-1), pipeline.DefaultMemoryLimit, gcLimit(pipeline.DefaultMemoryLimit))
	}

	debug.SetMemoryLimit(300 << 20) // as the runtime does from GOMEMLIMIT at start
	t.Setenv("GOMEMLIMIT", "300MiB")
	if limit, source, _ := applyMemoryLimit(""); limit != 300<<20 || source != "GOMEMLIMIT" {
		t.Errorf("GOMEMLIMIT=300MiB: budget %d from %q, want %d from GOMEMLIMIT", limit, source, 300<<20)
	}
}

// TestGCPercent checks that a member collects at defaultGCPercent unless
// GOGC says otherwise.
func TestGCPercent(t *testing.T) {
	before := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(before) })

	t.Setenv("GOGC", "")
	if p, from := applyGCPercent(); p != defaultGCPercent || from != "default" || debug.SetGCPercent(100) != defaultGCPercent {
		t.Errorf("no GOGC: %d from %q, want %d from the default", p, from, defaultGCPercent)
	}

	debug.SetGCPercent(80) // as the runtime does from GOGC at start
	t.Setenv("GOGC", "80")
	if p, from := applyGCPercent(); p != 80 || from != "GOGC" || debug.SetGCPercent(100) != 80 {
		t.Errorf("GOGC=80: %d from %q, want 80 from GOGC", p, from)
	}
}

// TestGCLimitFollowsLiveHeap: a live heap over the budget's GC limit
// raises the limit to the live heap and an eighth, with the gauges saying
// so, and the limit comes back to the budget's once the heap is freed.
// Without it the GC would collect without pause (bench/RESULTS.md).
func TestGCLimitFollowsLiveHeap(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	const budget = 32 << 20
	debug.SetMemoryLimit(budget)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reg := prometheus.NewRegistry()
	followLiveHeap(ctx, budget, reg)
	gauge := func(name string) float64 {
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range families {
			if f.GetName() == name {
				return f.GetMetric()[0].GetGauge().GetValue()
			}
		}
		t.Fatalf("no gauge %s", name)
		return 0
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("after 10 s: %s; GC limit %d", what, debug.SetMemoryLimit(-1))
			}
		}
	}
	live := make([]byte, 128<<20)
	for i := range live {
		live[i] = 1 // touched: the live heap counts it either way
	}
	runtime.GC()
	waitFor("the limit is not above the live heap", func() bool { return debug.SetMemoryLimit(-1) >= 128<<20+16<<20 })
	if gauge("funnelhouse_memory_over_budget") != 1 || gauge("funnelhouse_gc_limit_bytes") < 144<<20 {
		t.Errorf("over budget %v, gc limit %v: want 1 and at least 144 MiB", gauge("funnelhouse_memory_over_budget"), gauge("funnelhouse_gc_limit_bytes"))
	}
	runtime.KeepAlive(live)
	live = nil
	runtime.GC()
	waitFor("the limit is not back to the budget's", func() bool { return debug.SetMemoryLimit(-1) == budget })
	if gauge("funnelhouse_memory_over_budget") != 0 {
		t.Error("still over budget once the heap was freed")
	}
}
