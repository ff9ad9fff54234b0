package pipeline

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/funnelhouse/funnelhouse/pipeline/rows"
	"github.com/funnelhouse/funnelhouse/schemas"
)

// loadFrom is a VisitorLoader over what a test run wrote, as
// pipeline_state FINAL returns it.
func loadFrom(w *written, group string, partition int32) VisitorLoader {
	return func(ids []string) ([]rows.State, error) {
		var out []rows.State
		for _, id := range ids {
			if r, ok := w.state[stateKey{group, partition, rows.StateVisitor, id}]; ok {
				out = append(out, r)
			}
		}
		return out, nil
	}
}

// TestForgottenVisitorsComeBackExactly: with visitors forgotten after 3
// days of inactivity (the generated traffic spans 120 days) and loaded back
// when they return, with and without restarts, the rows and counters
// equal those of a run that keeps every visitor in memory.
func TestForgottenVisitorsComeBackExactly(t *testing.T) {
	records := benchRecords(t, 60_000)
	want, wantStats := runWithRestarts(t, records, nil)
	for _, restartAt := range [][]int{nil, {9_000, 21_017, 40_000, 52_123}} {
		var counts ForgetCounts
		var prev *Processor
		got, gotStats, last := runWithRestartsSetup(t, records, restartAt, 256, func(p *Processor, w *written) {
			if prev != nil {
				counts.Add(prev.ForgetCounts())
			}
			prev = p
			p.forgetAfter = (3 * 24 * time.Hour).Milliseconds()
			p.ForgetTo(loadFrom(w, "r", 0))
		})
		counts.Add(last.ForgetCounts())
		name := fmt.Sprintf("restarts at %v", restartAt)
		if !slices.Equal(got, want) {
			for i := range min(len(got), len(want)) {
				if got[i] != want[i] {
					t.Fatalf("%s: %d rows, %d without forgetting; first difference:\n got %s\nwant %s", name, len(got), len(want), got[i], want[i])
				}
			}
			t.Fatalf("%s: %d rows, %d without forgetting", name, len(got), len(want))
		}
		if fmt.Sprint(gotStats) != fmt.Sprint(wantStats) {
			t.Errorf("%s: counters %+v, without forgetting %+v", name, gotStats, wantStats)
		}
		t.Logf("%s: %+v; %d visitors in memory at the end", name, counts, last.Visitors())
		if counts.Forgotten < 1000 || counts.Reloaded < 100 || counts.Lookups == 0 {
			t.Errorf("%s: %+v: the traffic did not make visitors leave and come back", name, counts)
		}
	}
}

func (c *ForgetCounts) Add(o ForgetCounts) {
	c.Forgotten += o.Forgotten
	c.Reloaded += o.Reloaded
	c.Lookups += o.Lookups
}

// TestForgettingBoundsMemory: 400,000 visitors seen once each over 400
// days, each with a campaign of its own, forgotten after 2 days: the
// visitors, their strings and the symbols in memory stay those of the last
// few days; the Bloom filter of forgotten ids costs under 2.5 bytes each, and
// its false positives (new visitors looked up in vain) stay rare.
func TestForgettingBoundsMemory(t *testing.T) {
	defer func(dead, symbols int) { compactAtDeadBytes, symbolsCompactAt = dead, symbols }(compactAtDeadBytes, symbolsCompactAt)
	compactAtDeadBytes, symbolsCompactAt = 64<<10, 1024
	const visitors, perDay = 400_000, 1000
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := start
	p := NewProcessor("m", 0, [2]string{"clickstream", "transactions"}, DefaultRules(), func() time.Time { return clock })
	p.SetEnd(schemas.Clickstream, 1<<62)
	p.SetEnd(schemas.Transactions, 0) // empty: idle from the start
	p.forgetAfter = (2 * 24 * time.Hour).Milliseconds()
	w := newWritten()
	p.ForgetTo(loadFrom(w, "m", 0))
	var most int
	for i := range visitors {
		ts := start.Add(time.Duration(i) * (24 * time.Hour / perDay))
		clock = ts.Add(time.Second)
		v := fmt.Sprintf("visitor-%07d", i)
		value := fmt.Appendf(nil, `{"event_id":"e%d","type":"page_view","ts":%q,"visitor_id":%q,"url":"https://shop.example/p","utm_source":"ads","utm_campaign":"c%d"}`,
			i, ts.Format(time.RFC3339Nano), v, i)
		if err := p.Add(schemas.Clickstream, []byte(v), value, int64(i), clock); err != nil {
			t.Fatal(err)
		}
		if i%100 == 99 {
			p.Advance(clock)
		}
		if i%2000 == 1999 {
			b, _ := p.Cut()
			w.keep(b)
			w.lines = w.lines[:0]
			most = max(most, p.Visitors())
		}
	}
	runtime.GC()
	c := p.ForgetCounts()
	filter := p.forgotten.bytes()
	t.Logf("%+v; at most %d visitors in memory; strings %d KiB (%d KiB dropped), %d symbols, filter %d KiB",
		c, most, p.visitors.strs.size()>>10, p.visitors.strs.dead>>10, len(p.symbols.names), filter>>10)
	if bound := 3 * perDay; most > bound || p.visitors.slab.len() > 2*bound {
		t.Errorf("%d visitors in memory at most, slab of %d: want ≤ %d (those of the last 2 days, and those since the last checkpoint), slab ≤ %d", most, p.visitors.slab.len(), bound, 2*bound)
	}
	if c.Lookups > visitors/200 {
		t.Errorf("%d lookups for %d new visitors, want ≤ 0.5%%: the filter's false positives", c.Lookups, visitors)
	}
	if c.Forgotten < visitors-4*perDay {
		t.Errorf("%d visitors forgotten, want ≥ %d", c.Forgotten, visitors-4*perDay)
	}
	if size := p.visitors.strs.size(); size > 1<<20 {
		t.Errorf("visitor strings take %d bytes, want ≤ 1 MiB: the dropped ones are not compacted away", size)
	}
	if n := len(p.symbols.names); n > 4*4*perDay {
		t.Errorf("%d symbols, want those of the visitors in memory (at most %d)", n, 4*4*perDay)
	}
	if perID := float64(filter) / visitors; perID > 2.5 {
		t.Errorf("the filter of forgotten ids costs %.2f bytes each, want ≤ 2.5", perID)
	}
}

// TestFencedWriterCannotHideForgottenVisitor: a member fenced while it
// still writes (here: it goes on after another restored its checkpoint)
// loads forgotten visitors back in its own, older fork and writes them
// again. The new owner's rows must not change: its restore claimed the
// settled rows into its fork, so the fenced member's rows lose, whether
// they land before the new owner's first checkpoint or after.
func TestFencedWriterCannotHideForgottenVisitor(t *testing.T) {
	records := benchRecords(t, 60_000)
	want, _ := runWithRestarts(t, records, nil)
	const handover, fencedUntil = 30_000, 45_000
	for _, ownerCutsFirst := range []bool{false, true} {
		w := newWritten()
		start := func() *Processor {
			p := NewProcessor("r", 0, [2]string{"clickstream", "transactions"}, DefaultRules(), func() time.Time { return benchClock })
			p.SetEnd(schemas.Clickstream, math.MaxInt64)
			p.SetEnd(schemas.Transactions, math.MaxInt64)
			p.forgetAfter = (3 * 24 * time.Hour).Milliseconds()
			p.ForgetTo(loadFrom(w, "r", 0))
			return p
		}
		feed := func(p *Processor, to *written, from, until int64) {
			for i := from; i < until; i++ {
				p.Add(records[i].topic, records[i].key, records[i].value, i, benchClock)
				if i%256 == 255 {
					p.Advance(benchClock)
				}
				if i%5000 == 4999 {
					b, _ := p.Cut()
					to.keep(b)
				}
			}
		}
		fenced := start()
		feed(fenced, w, 0, handover)
		b, _ := fenced.Cut()
		w.keep(b)

		owner := start()
		off, err := owner.Restore(w.saved())
		if err != nil {
			t.Fatal(err)
		}
		ownerRows := &written{state: w.state} // the same pipeline_state
		from := min(off[0], off[1])
		if ownerCutsFirst {
			feed(owner, ownerRows, from, handover+5000)
			from = handover + 5000
		}
		feed(fenced, &written{state: w.state}, handover, fencedUntil) // its rows are replaced; its state rows stay
		b, _ = fenced.Cut()
		(&written{state: w.state}).keep(b)
		if fenced.ForgetCounts().Reloaded == 0 {
			t.Fatal("the fenced member loaded no forgotten visitor back: the test shows nothing")
		}
		// Once the owner has written its claims, the fenced member meets a
		// later fork and stops, with the error its member exits on.
		if err := fenced.Err(); ownerCutsFirst != errors.Is(err, errPartitionMoved) {
			t.Errorf("owner cuts first %v: the fenced member's error is %v", ownerCutsFirst, err)
		}
		feed(owner, ownerRows, from, int64(len(records)))
		owner.SetEnd(schemas.Clickstream, 0)
		owner.SetEnd(schemas.Transactions, 0)
		owner.Advance(benchClock.Add(time.Hour))
		b, _ = owner.Cut()
		ownerRows.keep(b)

		got := append(w.lines, ownerRows.lines...)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			extra := 0
			for _, l := range got {
				if _, found := slices.BinarySearch(want, l); !found {
					extra++
				}
			}
			t.Errorf("owner cuts first %v: %d rows, %d without the fenced member (%d not among them); reloaded %d",
				ownerCutsFirst, len(got), len(want), extra, owner.ForgetCounts().Reloaded)
		}
	}
}
