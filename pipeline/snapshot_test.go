package pipeline

import (
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/funnelhouse/funnelhouse/pipeline/rows"
	"github.com/funnelhouse/funnelhouse/schemas"
)

// TestRestoreContinuesExactly stops a partition at several checkpoints,
// restores each time from the newest state rows (as pipeline_state FINAL
// returns them) into a new Processor and resumes at its offsets: the rows
// and counters must equal those of an uninterrupted run.
func TestRestoreContinuesExactly(t *testing.T) {
	records := benchRecords(t, 60_000)
	want, wantStats := runWithRestarts(t, records, nil)
	got, gotStats := runWithRestarts(t, records, []int{9_000, 21_017, 40_000, 52_123})
	if len(want) < 60_000 {
		t.Fatalf("only %d rows", len(want))
	}
	if !slices.Equal(got, want) {
		for i := range min(len(got), len(want)) {
			if got[i] != want[i] {
				t.Fatalf("%d rows after restarts, %d without; first difference:\n got %s\nwant %s", len(got), len(want), got[i], want[i])
			}
		}
		t.Fatalf("%d rows after restarts, %d without", len(got), len(want))
	}
	if fmt.Sprint(gotStats) != fmt.Sprint(wantStats) {
		t.Errorf("counters after restarts %+v, without %+v", gotStats, wantStats)
	}
}

// runWithRestarts processes records (offset = index), cutting a checkpoint
// every 5,000 and restarting from the state after the records at
// restartAt; it returns every table row but the state, sorted.
func runWithRestarts(t *testing.T, records []benchRecord, restartAt []int) ([]string, Stats) {
	lines, stats, _ := runWithRestartsSetup(t, records, restartAt, 256, func(*Processor, *written) {})
	return lines, stats
}

// runWithRestartsSetup is runWithRestarts advancing after every
// advanceEvery records, with setup called on each new processor, before
// its restore; it also returns the last processor.
func runWithRestartsSetup(t *testing.T, records []benchRecord, restartAt []int, advanceEvery int, setup func(*Processor, *written)) ([]string, Stats, *Processor) {
	now := func() time.Time { return benchClock }
	w := newWritten()
	start := func() *Processor {
		p := unendingProcessor("r", now)
		setup(p, w)
		return p
	}
	p := start()
	restarted := -1
	from := Offsets{-1, -1} // where each input resumed
	for i := 0; i < len(records); i++ {
		r := records[i]
		if from[r.topic] < 0 || int64(i) >= from[r.topic] {
			p.Add(r.topic, r.key, r.value, int64(i), benchClock)
		}
		if i%advanceEvery == advanceEvery-1 {
			p.Advance(benchClock)
		}
		restart := i > restarted && slices.Contains(restartAt, i)
		if i%5000 == 4999 || restart {
			b, _ := p.Cut()
			w.keep(b)
		}
		if restart {
			restarted = i
			p = start()
			off, err := p.Restore(w.saved())
			if err != nil {
				t.Fatal(err)
			}
			from = off
			i = max(int(min(off[0], off[1])), 0) - 1 // re-read from the older input's offset (-1: none read)
		}
	}
	p.SetEnd(schemas.Clickstream, 0)
	p.SetEnd(schemas.Transactions, 0)
	p.Advance(benchClock.Add(time.Hour))
	b, _ := p.Cut()
	w.keep(b)
	return w.sortedLines(), p.Stats().clone(), p
}

// unendingProcessor is a processor of partition 0 whose inputs never
// catch up, so that it never goes idle.
func unendingProcessor(group string, now func() time.Time) *Processor {
	p := NewProcessor(group, 0, [2]string{"clickstream", "transactions"}, DefaultRules(), now)
	p.SetEnd(schemas.Clickstream, math.MaxInt64)
	p.SetEnd(schemas.Transactions, math.MaxInt64)
	return p
}

// written is what a test run wrote: its table rows, a line each, and its
// state rows as pipeline_state FINAL returns them (the highest epoch per
// key; the later write on a tie).
type written struct {
	lines             []string
	sessions          []rows.Session // the sessions rows, as written
	state             map[stateKey]rows.State
	largestCheckpoint int // bytes of the largest checkpoint row
}

func newWritten() *written { return &written{state: map[stateKey]rows.State{}} }

func (w *written) keep(b *rows.Batch) {
	w.lines = append(w.lines, tableLines("events", b.Events.All())...)
	w.lines = append(w.lines, tableLines("sessions", b.Sessions.All())...)
	w.sessions = append(w.sessions, b.Sessions.All()...)
	w.lines = append(w.lines, tableLines("transitions", b.Transitions.All())...)
	for _, st := range b.State.All() {
		st.Key, st.Data = strings.Clone(st.Key), strings.Clone(st.Data)
		k := stateKey{st.Group, st.Partition, st.Kind, st.Key}
		if old, ok := w.state[k]; !ok || st.Epoch >= old.Epoch {
			w.state[k] = st
		}
		if st.Kind == rows.StateCheckpoint {
			w.largestCheckpoint = max(w.largestCheckpoint, len(st.Data))
		}
	}
}

// saved is what a restore loads.
func (w *written) saved() []rows.State { return slices.Collect(maps.Values(w.state)) }

func (w *written) sortedLines() []string {
	slices.Sort(w.lines)
	return w.lines
}

// tableLines renders each row as one line.
func tableLines[R any](table string, rs []R) []string {
	lines := make([]string, len(rs))
	for i, r := range rs {
		lines[i] = fmt.Sprintf("%s %v", table, r)
	}
	return lines
}

// TestCheckpointCountersBeforeRevenueOverflow: a checkpoint written before
// revenue_overflow existed has one dead-letter counter less (the reasons
// are stored in schemas.Reasons order, the new one last); it still
// restores, with that counter 0. One counter less than that is an error.
func TestCheckpointCountersBeforeRevenueOverflow(t *testing.T) {
	var s Stats
	s.Records[0], s.Events[schemas.PageView], s.Duplicates = 7, 6, 1
	s.DeadLetters = map[schemas.Reason]uint64{schemas.ReasonTooLarge: 3, schemas.ReasonRevenueOverflow: 5}
	encode := func(drop int) []byte {
		b := encodeStats(nil, &s)
		r := reader{b: b}
		counts := make([]uint64, r.count())
		for i := range counts {
			counts[i] = r.uvarint()
		}
		counts = counts[:len(counts)-drop]
		b = binary.AppendUvarint(nil, uint64(len(counts)))
		for _, c := range counts {
			b = binary.AppendUvarint(b, c)
		}
		return b
	}
	decode := func(b []byte) (Stats, error) {
		got := Stats{DeadLetters: map[schemas.Reason]uint64{}}
		r := reader{b: b}
		decodeStats(&r, &got)
		return got, r.err
	}
	if got, err := decode(encode(0)); err != nil || fmt.Sprint(got) != fmt.Sprint(s) {
		t.Errorf("round trip: %+v, %v; want %+v", got, err, s)
	}
	got, err := decode(encode(1))
	delete(s.DeadLetters, schemas.ReasonRevenueOverflow)
	if err != nil || fmt.Sprint(got) != fmt.Sprint(s) {
		t.Errorf("without the last counter: %+v, %v; want %+v", got, err, s)
	}
	if _, err := decode(encode(2)); err == nil {
		t.Error("two counters short: no error")
	}
}
