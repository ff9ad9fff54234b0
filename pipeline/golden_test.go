package pipeline

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/funnelhouse/funnelhouse/bench/expected"
	"github.com/funnelhouse/funnelhouse/pipeline/rows"
	"github.com/funnelhouse/funnelhouse/schemas"
)

var update = flag.Bool("update", false, "rewrite the golden files' output sections")

// Golden files (testdata/golden/*.txt) hold events in and rows out:
//
//	# comment
//	<offset from 2025-01-01T00:00:00Z> <type> <visitor_id> <event_id> [field=value ...]
//	idle            (processing clock jumps past --idle-advance: idle inputs stop holding the watermark)
//	-- output --
//	rows, sorted
//
// Lines are delivered in file order (arrival order); a line "-- permute --"
// before the output repeats the run with the input lines in reverse order
// (without directives), which must give the same rows. At the end every
// input is drained and the watermark passes every deadline.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/golden/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			g := readGolden(t, file)
			got := runGolden(t, g.input)
			if g.permute {
				var reversed []string
				for i := len(g.input) - 1; i >= 0; i-- {
					if g.input[i] != "idle" {
						reversed = append(reversed, g.input[i])
					}
				}
				if again := runGolden(t, reversed); strings.Join(again, "\n") != strings.Join(got, "\n") {
					t.Errorf("another arrival order gave other rows:\n%s\nwant\n%s", strings.Join(again, "\n"), strings.Join(got, "\n"))
				}
			}
			if !g.late {
				crossCheck(t, g.input, got)
			}
			if *update {
				writeGolden(t, file, g, got)
				return
			}
			if want := strings.Join(g.output, "\n"); strings.Join(got, "\n") != want {
				t.Errorf("rows differ (run with -update to see the diff in git)\ngot:\n%s\nwant:\n%s", strings.Join(got, "\n"), want)
			}
		})
	}
}

type golden struct {
	header  []string // comments and input lines, verbatim
	input   []string
	permute bool
	late    bool // has late events, which the expected computation does not model
	output  []string
}

func readGolden(t *testing.T, file string) golden {
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var g golden
	inOutput := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "-- output --":
			inOutput = true
		case inOutput:
			if line != "" {
				g.output = append(g.output, line)
			}
		default:
			g.header = append(g.header, line)
			trimmed := strings.TrimSpace(line)
			switch {
			case trimmed == "-- permute --":
				g.permute = true
			case trimmed == "idle":
				g.late = true
				g.input = append(g.input, trimmed)
			case trimmed == "" || strings.HasPrefix(trimmed, "#"):
			default:
				g.input = append(g.input, trimmed)
			}
		}
	}
	return g
}

func writeGolden(t *testing.T, file string, g golden, rows []string) {
	var b strings.Builder
	for _, l := range g.header {
		b.WriteString(l + "\n")
	}
	b.WriteString("-- output --\n")
	for _, r := range rows {
		b.WriteString(r + "\n")
	}
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

var goldenBase = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func goldenRules() Rules {
	r := DefaultRules()
	r.IdleAdvance = time.Hour
	return r
}

// runGolden feeds the lines to one Processor and renders every row.
func runGolden(t *testing.T, lines []string) []string {
	t.Helper()
	clock := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	now := func() time.Time { return clock }
	p := NewProcessor("g", 0, [2]string{"clickstream", "transactions"}, goldenRules(), now)
	var offsets [2]int64
	var seenTopic [2]bool
	var rejected []Rejected
	advance := func() {
		p.Advance(clock)
		rejected = append(rejected, p.TakeRejected()...)
	}
	for _, line := range lines {
		clock = clock.Add(time.Second)
		if line == "idle" {
			for tp := range seenTopic {
				if !seenTopic[tp] {
					p.SetEnd(schemas.Topic(tp), 0)
				}
			}
			clock = clock.Add(2 * goldenRules().IdleAdvance)
			advance()
			continue
		}
		topic, key, value := goldenRecord(t, line)
		seenTopic[topic] = true
		if err := p.Add(topic, key, value, offsets[topic], clock); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		offsets[topic]++
		advance()
	}
	for tp := range offsets {
		p.SetEnd(schemas.Topic(tp), offsets[tp])
	}
	clock = clock.Add(2 * goldenRules().IdleAdvance)
	advance()
	b, _ := p.Cut()
	out := append(renderRows(b), renderRejected(t, rejected)...)
	sort.Strings(out)
	return out
}

// renderRejected renders the records rejected at their release as
// "deadletter <reason> <visitor_id> <event_id>".
func renderRejected(t *testing.T, rejected []Rejected) []string {
	var out []string
	for _, r := range rejected {
		var e schemas.Event
		if err := schemas.NewDecoder(nil).Decode(r.Topic, r.Key, r.Value, &e); err != nil {
			t.Fatalf("a dead letter's record does not decode: %v", err)
		}
		out = append(out, fmt.Sprintf("deadletter %s %s %s", r.Err.Reason, r.Key, e.EventID))
	}
	return out
}

// goldenRecord turns "<offset> <type> <visitor> <event_id> k=v..." into a
// JSON record.
func goldenRecord(t *testing.T, line string) (schemas.Topic, []byte, []byte) {
	fields := strings.Fields(line)
	if len(fields) < 4 {
		t.Fatalf("bad golden line %q", line)
	}
	off, err := parseOffset(fields[0])
	if err != nil {
		t.Fatalf("bad offset in %q: %v", line, err)
	}
	typ := schemas.ParseType(fields[1])
	if typ == 0 {
		t.Fatalf("bad type in %q", line)
	}
	ts := goldenBase.Add(off).Format("2006-01-02T15:04:05.000Z07:00")
	var b strings.Builder
	fmt.Fprintf(&b, `{"event_id":%q,"type":%q,"ts":%q,"visitor_id":%q`, fields[3], fields[1], ts, fields[2])
	for _, kv := range fields[4:] {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "amount", "rating", "nps", "csat":
			fmt.Fprintf(&b, `,%q:%s`, k, v)
		default:
			fmt.Fprintf(&b, `,%q:%q`, k, v)
		}
	}
	b.WriteString("}")
	return typ.Topic(), []byte(fields[2]), []byte(b.String())
}

// parseOffset reads "30m", "90d" or "90d+1ms".
func parseOffset(s string) (time.Duration, error) {
	days, rest, ok := strings.Cut(s, "d+")
	if !ok {
		return ParseDuration(s)
	}
	d, err := ParseDuration(days + "d")
	if err != nil {
		return 0, err
	}
	r, err := time.ParseDuration(rest)
	return d + r, err
}

func goldenTime(ms int64) string {
	d := time.UnixMilli(ms).UTC().Sub(goldenBase)
	return formatOffset(d)
}

// formatOffset writes an offset from goldenBase as e.g. "1d2h30m0.001s".
func formatOffset(d time.Duration) string {
	days := d / (24 * time.Hour)
	rest := d - days*24*time.Hour
	s := rest.String()
	if days != 0 {
		s = strconv.Itoa(int(days)) + "d+" + s
	}
	return s
}

func renderRows(b *rows.Batch) []string {
	var out []string
	ids := map[string]string{} // session id → readable name
	name := func(id string) string {
		if id == "" {
			return "-"
		}
		if n, ok := ids[id]; ok {
			return n
		}
		n := "S" + strconv.Itoa(len(ids)+1)
		ids[id] = n
		return n
	}
	sessions := slices.Clone(b.Sessions.All())
	sort.Slice(sessions, func(a, c int) bool { return sessions[a].SessionID < sessions[c].SessionID })
	for _, s := range sessions {
		out = append(out, fmt.Sprintf("session %s visitor=%s customer=%s start=%s end=%s duration=%gs events=%d page_views=%d entry=%s exit=%s source=%s medium=%s campaign=%s bounce=%d orders=%d revenue=%s",
			name(s.SessionID), s.VisitorID, s.CustomerID, goldenTime(s.StartMs), goldenTime(s.EndMs), s.DurationS(),
			s.Events, s.PageViews, s.EntryURL, s.ExitURL, s.Source, s.Medium, s.Campaign, b2u(s.IsBounce), s.Orders, s.Revenue))
	}
	for _, tr := range b.Transitions.All() {
		out = append(out, fmt.Sprintf("transition %s %s ts=%s customer=%s cohort=%s source=%s event=%s",
			tr.VisitorID, tr.Stage, goldenTime(tr.TsMs), tr.CustomerID,
			tr.CohortDay().Format("2006-01-02"), tr.Source, tr.EventID))
	}
	for _, ev := range b.Events.All() {
		out = append(out, fmt.Sprintf("event %s %s %s at=%s session=%s stage=%s late=%d source=%s",
			ev.VisitorID, ev.EventID, ev.Type, goldenTime(ev.TsMs), name(ev.SessionID),
			ev.Stage, b2u(ev.Late), ev.Source))
	}
	sort.Strings(out)
	return out
}

// crossCheck compares the sessions, transitions and dead letters of
// released events with the independent expected computation
// (bench/expected) on the same events.
func crossCheck(t *testing.T, lines []string, got []string) {
	t.Helper()
	dec := schemas.NewDecoder(func() time.Time { return time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC) })
	seen := map[string]bool{}
	var events []schemas.Event
	for _, line := range lines {
		topic, key, value := goldenRecord(t, line)
		var e schemas.Event
		if err := dec.Decode(topic, key, value, &e); err != nil {
			t.Fatal(err)
		}
		if k := expected.EventKey(e.VisitorID, e.EventID); !seen[k] {
			seen[k] = true
			events = append(events, e)
		}
	}
	want := expected.Compute(events, expected.DefaultConfig())
	var b rows.Batch
	for _, s := range want.Sessions {
		b.Sessions.Append(&rows.Session{SessionID: s.SessionID, VisitorID: s.VisitorID, CustomerID: s.CustomerID,
			StartMs: s.StartMs, EndMs: s.EndMs, Events: s.Events, PageViews: s.PageViews, EntryURL: s.EntryURL, ExitURL: s.ExitURL,
			Source: s.Source, Medium: s.Medium, Campaign: s.Campaign, IsBounce: s.IsBounce, Orders: s.Orders, Revenue: s.Revenue})
	}
	for _, tr := range want.Transitions {
		day, _ := time.Parse("2006-01-02", tr.CohortDay)
		stage := rows.StageNone
		for stage < rows.NumStages-1 && stage.String() != tr.Stage {
			stage++
		}
		b.Transitions.Append(&rows.Transition{VisitorID: tr.VisitorID, CustomerID: tr.CustomerID, Stage: stage, TsMs: tr.TsMs,
			CohortDayMs: day.UnixMilli(), Source: tr.Source, EventID: tr.EventID})
	}
	wantRows := renderRows(&b)
	for _, e := range want.Rejected {
		wantRows = append(wantRows, fmt.Sprintf("deadletter %s %s %s", schemas.ReasonRevenueOverflow, e.VisitorID, e.EventID))
	}
	sort.Strings(wantRows)
	var gotRows []string
	for _, r := range got {
		if !strings.HasPrefix(r, "event ") {
			gotRows = append(gotRows, r)
		}
	}
	if strings.Join(gotRows, "\n") != strings.Join(wantRows, "\n") {
		t.Errorf("the pipeline and bench/expected disagree:\npipeline:\n%s\nexpected:\n%s", strings.Join(gotRows, "\n"), strings.Join(wantRows, "\n"))
	}
}
