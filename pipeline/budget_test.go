package pipeline

import (
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/funnelhouse/funnelhouse/schemas"
)

// TestReleaseBoundedByRowBytes: with a small bound on buffered rows, the
// watermark advances in steps, the rows go out between them, and the rows
// and counters equal those of an unbounded run, also when the member
// crashes (checkpoint, restore, replay) while a release is paused.
func TestReleaseBoundedByRowBytes(t *testing.T) {
	records := benchRecords(t, 60_000)
	want, wantStats := runWithRestarts(t, records, nil)
	const bound = 32 << 10
	for _, crashAt := range []int{-1, 3, 40} {
		got, gotStats, pauses, largest := runBounded(t, records, bound, crashAt)
		if !slices.Equal(got, want) {
			t.Fatalf("crash at pause %d: %d rows with a %d-byte bound, %d without", crashAt, len(got), bound, len(want))
		}
		if fmt.Sprint(gotStats) != fmt.Sprint(wantStats) {
			t.Errorf("crash at pause %d: counters %+v, want %+v", crashAt, gotStats, wantStats)
		}
		// A release stops at the first instant after the bound: one
		// instant's rows more at most.
		if pauses < 10 || largest > 2*bound {
			t.Errorf("crash at pause %d: %d pauses, largest flush %d bytes; want pauses, and flushes near the %d-byte bound", crashAt, pauses, largest, bound)
		}
		t.Logf("crash at pause %d: %d pauses, largest flush %d bytes", crashAt, pauses, largest)
	}
}

// runBounded is runWithRestarts with release bounded by maxRowBytes: the
// rows are flushed whenever a release pauses, and at the crashAt-th pause
// the processor is checkpointed and restored (-1: never).
func runBounded(t *testing.T, records []benchRecord, maxRowBytes int64, crashAt int) (lines []string, stats Stats, pauses int, largest int64) {
	now := func() time.Time { return benchClock }
	start := func() *Processor {
		p := NewProcessor("r", 0, [2]string{"clickstream", "transactions"}, DefaultRules(), now)
		p.maxRowBytes = maxRowBytes
		p.SetEnd(schemas.Clickstream, math.MaxInt64)
		p.SetEnd(schemas.Transactions, math.MaxInt64)
		return p
	}
	w := newWritten()
	p := start()
	from := Offsets{-1, -1}
	advance := func(at time.Time) (crashed bool) {
		for p.Advance(at); p.ReleasePaused(); p.Advance(at) {
			if pauses++; pauses == crashAt {
				b, _ := p.Cut()
				w.keep(b)
				p = start()
				off, err := p.Restore(w.saved())
				if err != nil {
					t.Fatal(err)
				}
				from = off
				return true
			}
			largest = max(largest, p.RowBytes())
			w.keep(p.Flush())
		}
		return false
	}
	for i := 0; i < len(records); i++ {
		r := records[i]
		if from[r.topic] < 0 || int64(i) >= from[r.topic] {
			p.Add(r.topic, r.key, r.value, int64(i), benchClock)
		}
		if i%256 == 255 && advance(benchClock) {
			i = int(min(from[0], from[1])) - 1
			continue
		}
		if i%5000 == 4999 {
			b, _ := p.Cut()
			w.keep(b)
		}
	}
	p.SetEnd(schemas.Clickstream, 0)
	p.SetEnd(schemas.Transactions, 0)
	advance(benchClock.Add(time.Hour))
	b, _ := p.Cut()
	w.keep(b)
	return w.sortedLines(), p.Stats().clone(), pauses, largest
}
