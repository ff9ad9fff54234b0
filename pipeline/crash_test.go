package pipeline

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/funnelhouse/funnelhouse/schemas"
)

// TestRestoreAnywhere crashes a partition at random moments, some while
// it still re-reads its replay range, others right after a checkpoint is
// stored, with held events spilled, releases paused by the row bound and
// visitors forgotten and loaded back, over traffic with duplicates and
// malformed records. Records are fed as the owner feeds them: after a
// restore, the replay range of the clickstream whole, then that of the
// transactions. The rows and counters must equal those of a run without
// crashes.
func TestRestoreAnywhere(t *testing.T) {
	records := generatedRecords(t, 40_000, 0.002)
	want, wantStats := runWithRestarts(t, records, nil)
	seeds := uint64(12)
	if n, err := strconv.Atoi(os.Getenv("FUNNELHOUSE_CRASH_SEEDS")); err == nil {
		seeds = uint64(n)
	}
	for seed := range seeds {
		rng := rand.New(rand.NewPCG(seed, 7))
		got, gotStats, crashes := runWithCrashes(t, records, rng)
		name := fmt.Sprintf("seed %d (%d crashes)", seed, crashes)
		if !slices.Equal(got, want) {
			missing, extra := diffLines(want, got)
			t.Fatalf("%s: %d rows, %d without crashes; missing %d, first %v; extra %d, first %v",
				name, len(got), len(want), len(missing), first(missing, 3), len(extra), first(extra, 3))
		}
		if fmt.Sprint(gotStats) != fmt.Sprint(wantStats) {
			t.Fatalf("%s: counters %+v, without crashes %+v", name, gotStats, wantStats)
		}
	}
}

// The odds, per record fed, out of crashOdds: a crash right after a
// stored checkpoint, a crash losing what was not cut, a checkpoint.
const (
	crashOdds     = 20_000
	crashStored   = 2
	crashLost     = crashStored + 1
	checkpointCut = crashLost + 22
)

// runWithCrashes is runWithRestarts with crashes drawn from rng.
func runWithCrashes(t *testing.T, records []benchRecord, rng *rand.Rand) ([]string, Stats, int) {
	now := func() time.Time { return benchClock }
	w := newWritten()
	start := func() *Processor {
		p := unendingProcessor("r", now)
		p.hotLimit = 1 + rng.IntN(64)
		p.maxRowBytes = int64(1+rng.IntN(8)) << 14
		p.cold.runBytes = 1 << 12
		p.forgetAfter = (3 * 24 * time.Hour).Milliseconds()
		p.ForgetTo(loadFrom(w, "r", 0))
		return p
	}
	p, crashes, steps := start(), 0, 0
	// feed gives the record of index i to p, and crashes (returning true)
	// at random: after a stored checkpoint, or losing what was not cut.
	feed := func(i int) bool {
		r := records[i]
		p.Add(r.topic, r.key, r.value, int64(i), benchClock)
		if steps++; steps%256 == 0 || p.ReleasePaused() {
			p.Advance(benchClock)
		}
		switch n := rng.IntN(crashOdds); {
		case n < crashStored:
			b, _ := p.Cut()
			w.keep(b)
			return true
		case n < crashLost:
			return true
		case n < checkpointCut:
			b, _ := p.Cut()
			w.keep(b)
		}
		return false
	}
	next := 0 // the first record of the interleaved stream not yet fed
	for next < len(records) {
		crashed := false
		for ; next < len(records) && !crashed; next++ {
			crashed = feed(next)
		}
		for crashed {
			crashes++
			if testing.Verbose() && crashes%50 == 0 {
				t.Logf("crash %d at record %d, step %d", crashes, next, steps)
			}
			p = start()
			from, err := p.Restore(w.saved())
			if err != nil {
				t.Fatal(err)
			}
			crashed = false
			resume := Offsets{p.Next(0), p.Next(1)}
			for topic := range 2 {
				for i := max(from[topic], 0); i < resume[topic] && !crashed; i++ {
					if records[i].topic == schemas.Topic(topic) {
						crashed = feed(int(i))
					}
				}
				if !crashed && p.inputs[topic].replaying() {
					p.EndReplay(schemas.Topic(topic))
				}
			}
			next = int(min(resume[0], resume[1]))
			if resume[0] < 0 || resume[1] < 0 {
				next = 0
			}
			for ; next < len(records) && !crashed; next++ {
				if int64(next) >= resume[records[next].topic] {
					crashed = feed(next)
				}
			}
		}
	}
	p.SetEnd(schemas.Clickstream, 0)
	p.SetEnd(schemas.Transactions, 0)
	for done := false; !done; {
		p.Advance(benchClock.Add(time.Hour))
		done = !p.ReleasePaused()
		b, _ := p.Cut()
		w.keep(b)
	}
	return dedupLines(w.sortedLines()), p.Stats().clone(), crashes
}

// dedupLines drops repeated lines: rows written again by a replay, which
// every table replaces.
func dedupLines(lines []string) []string { return slices.Compact(lines) }

// diffLines returns the lines of want not in got and those of got not in
// want; both are sorted.
func diffLines(want, got []string) (missing, extra []string) {
	i, j := 0, 0
	for i < len(want) || j < len(got) {
		switch {
		case j == len(got) || i < len(want) && want[i] < got[j]:
			missing = append(missing, want[i])
			i++
		case i == len(want) || got[j] < want[i]:
			extra = append(extra, got[j])
			j++
		default:
			i, j = i+1, j+1
		}
	}
	return missing, extra
}

func first(s []string, n int) []string { return s[:min(n, len(s))] }
