package pipeline

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/funnelhouse/funnelhouse/schemas"
	chsink "github.com/funnelhouse/funnelhouse/sinks/clickhouse"
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
	now := func() time.Time { return benchClock }
	start := func() *Processor {
		p := NewProcessor("r", 0, [2]string{"clickstream", "transactions"}, DefaultRules(), now)
		p.SetEnd(schemas.Clickstream, math.MaxInt64)
		p.SetEnd(schemas.Transactions, math.MaxInt64)
		return p
	}
	type stateKey struct {
		kind int8
		key  string
	}
	state := map[stateKey]chsink.StateRow{}
	var rows []string
	keep := func(b *chsink.Batch) {
		rows = append(rows, tableLines("events", &b.Events)...)
		rows = append(rows, tableLines("sessions", &b.Sessions)...)
		rows = append(rows, tableLines("transitions", &b.Transitions)...)
		st := &b.State
		for i := range st.Len() {
			state[stateKey{st.Kind[i], st.Key[i]}] = chsink.StateRow{Kind: st.Kind[i], Key: strings.Clone(st.Key[i]), Epoch: st.Epoch[i], Data: []byte(st.Data[i])}
		}
	}
	p := start()
	restarted := -1
	for i := 0; i < len(records); i++ {
		r := records[i]
		if next := p.Next(r.topic); next < 0 || int64(i) >= next {
			p.Add(r.topic, r.key, r.value, int64(i), benchClock)
		}
		if i%256 == 255 {
			p.Advance(benchClock)
		}
		restart := i > restarted && slices.Contains(restartAt, i)
		if i%5000 == 4999 || restart {
			b, _ := p.Cut()
			keep(b)
		}
		if restart {
			restarted = i
			p = start()
			var saved []chsink.StateRow
			for _, r := range state {
				saved = append(saved, r)
			}
			off, err := p.Restore(saved)
			if err != nil {
				t.Fatal(err)
			}
			i = int(min(off[0], off[1])) - 1 // re-read from the older input's offset; Add skips what the state has
		}
	}
	p.SetEnd(schemas.Clickstream, 0)
	p.SetEnd(schemas.Transactions, 0)
	p.Advance(benchClock.Add(time.Hour))
	b, _ := p.Cut()
	keep(b)
	slices.Sort(rows)
	return rows, p.Stats().clone()
}

// tableLines renders each row of a column struct as one line.
func tableLines(table string, columns any) []string {
	v := reflect.ValueOf(columns).Elem()
	n := v.Field(0).Len()
	lines := make([]string, n)
	for i := range n {
		var b strings.Builder
		b.WriteString(table)
		for f := range v.NumField() {
			fmt.Fprintf(&b, " %v", v.Field(f).Index(i))
		}
		lines[i] = b.String()
	}
	return lines
}
