package ablation

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// Stage names of a CPU profile of `funnelhouse run`, by what the code
// does for a record on its way to ClickHouse.
const (
	StageGC      = "GC (background marking, assists, sweeping)"
	StageFetch   = "Kafka fetch and decompression (franz-go)"
	StageDecode  = "decode and validate (schemas)"
	StageProcess = "processing: dedup, hold, sessions, lifecycle, row append (pipeline)"
	StageState   = "checkpoint state encoding (pipeline Cut)"
	StageCold    = "held events spilled cold: zstd runs (pipeline coldHeld)"
	StageColumns = "column build for the driver (rows.Values, sink)"
	StageDriver  = "driver: copy, native encoding, compression, send (clickhouse-go, ch-go)"
	StageOther   = "other (scheduler, syscalls outside the above)"
)

// gcFrames mark a sample as the garbage collector's wherever they appear:
// the work is the collector's, whoever's goroutine paid for it.
var gcFrames = []string{"runtime.gcBgMarkWorker", "runtime.gcAssistAlloc", "runtime.bgsweep", "runtime.bgscavenge", "runtime.sweepone", "runtime.gcStart"}

// stageFrames are matched from the leaf up; the first frame that matches
// names the stage (so a decoder called by the processor counts as decode,
// and an allocation counts for whoever allocates).
var stageFrames = []struct{ prefix, stage string }{
	{"github.com/twmb/franz-go/", StageFetch},
	{"github.com/ClickHouse/ch-go/", StageDriver},
	{"github.com/ClickHouse/clickhouse-go/", StageDriver},
	{"github.com/funnelhouse/funnelhouse/schemas.", StageDecode},
	{"github.com/funnelhouse/funnelhouse/pipeline/rows.Col[", StageColumns},
	{"github.com/funnelhouse/funnelhouse/pipeline/rows.(*Table[", StageColumns},
	{"github.com/funnelhouse/funnelhouse/sinks/clickhouse.", StageColumns},
	{"github.com/funnelhouse/funnelhouse/pipeline.(*coldHeld)", StageCold},
	{"github.com/funnelhouse/funnelhouse/pipeline.(*Processor).Cut", StageState},
	{"github.com/funnelhouse/funnelhouse/pipeline.(*Processor).encode", StageState},
	{"github.com/funnelhouse/funnelhouse/pipeline.", StageProcess},
}

// StageOf names the stage of one sample's stack, leaf first.
func StageOf(stack []string) string {
	for _, f := range stack {
		for _, g := range gcFrames {
			if strings.HasPrefix(f, g) {
				return StageGC
			}
		}
	}
	for _, f := range stack {
		for _, s := range stageFrames {
			if strings.HasPrefix(f, s.prefix) {
				return s.stage
			}
		}
	}
	return StageOther
}

// StageShare is one stage's CPU in a profile.
type StageShare struct {
	Stage   string
	Seconds float64
	Share   float64 // of the profile's samples
}

// Stages reads `go tool pprof -traces` output of a CPU profile and sums
// its samples by stage, largest first.
func Stages(traces io.Reader) ([]StageShare, error) {
	sums := map[string]float64{}
	var value float64
	var stack []string
	flush := func() {
		if len(stack) > 0 {
			sums[StageOf(stack)] += value
		}
		stack = stack[:0]
	}
	sc := bufio.NewScanner(traces)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	inSamples := false
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "-----------+") {
			flush()
			inSamples = true
			continue
		}
		fields := strings.Fields(line)
		if !inSamples || len(fields) == 0 {
			continue
		}
		if len(stack) == 0 && len(fields) >= 2 {
			d, err := time.ParseDuration(fields[0])
			if err != nil {
				return nil, fmt.Errorf("not pprof -traces output of a CPU profile: %q", line)
			}
			value, fields = d.Seconds(), fields[1:]
		}
		stack = append(stack, strings.Join(fields, " "))
	}
	flush()
	return shares(sums), sc.Err()
}

func shares(sums map[string]float64) []StageShare {
	total := 0.0
	for _, v := range sums {
		total += v
	}
	var out []StageShare
	for s, v := range sums {
		out = append(out, StageShare{Stage: s, Seconds: v, Share: v / total})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seconds > out[j].Seconds })
	return out
}

// PrintStages writes the stages as a Markdown table; with cpuPerM (the
// process's CPU seconds per million records, as bench reports it) each
// stage's share of it too.
func PrintStages(out io.Writer, stages []StageShare, cpuPerM float64) {
	fmt.Fprintln(out, "| stage | profile s | share | CPU-s / M records |")
	fmt.Fprintln(out, "|---|---|---|---|")
	for _, s := range stages {
		perM := "—"
		if cpuPerM > 0 {
			perM = fmt.Sprintf("%.2f", s.Share*cpuPerM)
		}
		fmt.Fprintf(out, "| %s | %.2f | %.1f %% | %s |\n", s.Stage, s.Seconds, 100*s.Share, perM)
	}
}
