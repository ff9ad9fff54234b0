package rows

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/funnelhouse/funnelhouse/schemas"
)

// TestColumns checks the values each table description derives from a row,
// including times before 1970 (rounded down, like ClickHouse's
// toStartOfSecond).
func TestColumns(t *testing.T) {
	var b Batch
	b.Events.Append(&Event{EventID: "e1", TsMs: -1500, Type: schemas.Signup, Stage: StageAcquisition,
		Amount: 12345, Rating: schemas.Absent, NPS: 9, CSAT: schemas.Absent, Late: true, KafkaPartition: 3, KafkaOffset: 7})
	b.Sessions.Append(&Session{SessionID: "s1", StartMs: 1_000, EndMs: 62_500, IsBounce: true, Revenue: 5})
	b.Transitions.Append(&Transition{VisitorID: "v1", Stage: StageChurned, TsMs: 86_400_000 + 1, CohortDayMs: 86_400_000})
	b.State.Append(&State{Group: "g", Partition: 2, Kind: StateCheckpoint, Epoch: 4, Data: "x"})
	var buf Buffers
	values := func(tb AnyTable, name string) any {
		for i, c := range tb.ColumnNames() {
			if c == name {
				return tb.Values(i, []*Batch{&b, &b}, &buf)
			}
		}
		t.Fatalf("%s has no column %s", tb.TableName(), name)
		return nil
	}
	for _, tc := range []struct {
		table  AnyTable
		column string
		want   any
	}{
		{&EventsTable, "ts", []int64{-2, -2}},
		{&EventsTable, "ts_ms", []uint64{uint64(1<<64 - 1500), uint64(1<<64 - 1500)}},
		{&EventsTable, "type", []int8{int8(schemas.Signup), int8(schemas.Signup)}},
		{&EventsTable, "stage", []int8{2, 2}},
		{&EventsTable, "amount", []schemas.Amount{12345, 12345}},
		{&EventsTable, "rating", []OptionalInt8{OptionalInt8(schemas.Absent), OptionalInt8(schemas.Absent)}},
		{&EventsTable, "nps", []OptionalInt8{9, 9}},
		{&EventsTable, "late", []uint8{1, 1}},
		{&EventsTable, "kafka_partition", []int32{3, 3}},
		{&SessionsTable, "duration_s", []float64{61.5, 61.5}},
		{&SessionsTable, "end", []int64{62, 62}},
		{&SessionsTable, "is_bounce", []uint8{1, 1}},
		{&TransitionsTable, "cohort_day", []time.Time{time.Unix(86_400, 0).UTC(), time.Unix(86_400, 0).UTC()}},
		{&TransitionsTable, "stage", []int8{6, 6}},
		{&StateTable, "kind", []int8{1, 1}},
		{&StateTable, "data", []string{"x", "x"}},
	} {
		if got := values(tc.table, tc.column); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s.%s = %v, want %v", tc.table.TableName(), tc.column, got, tc.want)
		}
	}
	for _, tb := range Tables {
		seen := map[string]bool{}
		for i, name := range tb.ColumnNames() {
			if seen[name] {
				t.Errorf("%s lists %s twice", tb.TableName(), name)
			}
			seen[name] = true
			if n := reflect.ValueOf(tb.Values(i, []*Batch{&b}, &buf)).Len(); n != 1 {
				t.Errorf("%s.%s has %d values, want 1", tb.TableName(), name, n)
			}
		}
	}
	if b.Rows() != 4 {
		t.Errorf("Rows() = %d, want 4", b.Rows())
	}
}

// TestPutBatch checks that a batch given back is empty and keeps no
// references to the rows' strings.
func TestPutBatch(t *testing.T) {
	b := GetBatch()
	b.Events.Append(&Event{EventID: "e1"})
	b.State.Append(&State{Data: "d"})
	PutBatch(b)
	if b.Rows() != 0 {
		t.Fatalf("Rows() = %d after PutBatch", b.Rows())
	}
	if s := b.State.All()[:1][0]; s.Data != "" {
		t.Errorf("a free batch still references %q", s.Data)
	}
	if n := b.Events.text.bytes; n != 0 {
		t.Errorf("a free batch's event text holds %d bytes", n)
	}
}

// A batch got like another has room for its rows, so that the appends of
// the next flush do not grow them from empty.
func TestGetBatchLike(t *testing.T) {
	var prev Batch
	for i := range 1000 {
		prev.Events.Append(&Event{EventID: strings.Repeat("e", i%40), URL: "https://example.com/p"})
		prev.Sessions.Append(&Session{SessionID: "s", EntryURL: "https://example.com/"})
	}
	prev.Transitions.Append(&Transition{VisitorID: "v1"})
	b := GetBatchLike(&prev)
	if b.Rows() != 0 {
		t.Fatalf("%d rows in a new batch", b.Rows())
	}
	for _, c := range []struct {
		name           string
		rows, wantRows int
	}{
		{"events", cap(b.Events.rows), len(prev.Events.rows)},
		{"sessions", cap(b.Sessions.rows), len(prev.Sessions.rows)},
		{"transitions", cap(b.Transitions.rows), len(prev.Transitions.rows)},
	} {
		if c.rows < c.wantRows {
			t.Errorf("%s: room for %d rows, want %d", c.name, c.rows, c.wantRows)
		}
	}
}

// The text keeps everything written into it, across chunks and past a
// piece longer than a chunk, without moving what it holds; reset reuses
// the chunks.
func TestTextChunks(t *testing.T) {
	var x texts
	long := strings.Repeat("L", textChunkMax+3)
	for round := range 2 {
		var (
			want []string
			offs []uint32
			seen []string // read back when written, read again at the end
		)
		for i := range 40_000 {
			s := strings.Repeat(string(rune('a'+i%26)), 1+i%97)
			if i == 20_000 {
				s = long
			}
			off, dst := x.alloc(len(s))
			copy(dst, s)
			want, offs = append(want, s), append(offs, off)
			seen = append(seen, x.at(off, 0, len(s)))
		}
		if off, dst := x.alloc(0); off != 0 || dst != nil || x.at(0, 0, 0) != "" {
			t.Errorf("round %d: nothing is not at 0", round)
		}
		bytes := 0
		for i, s := range want {
			bytes += len(s)
			if got := x.at(offs[i], 0, len(s)); got != s || seen[i] != s {
				t.Fatalf("round %d: piece %d reads %.20q (and %.20q when written), want %.20q", round, i, got, seen[i], s)
			}
			if got := x.at(offs[i], 1, len(s)); got != s[1:] {
				t.Fatalf("round %d: piece %d from 1 reads %.20q", round, i, got)
			}
		}
		if x.bytes != bytes || x.used < 3 {
			t.Errorf("round %d: %d bytes in %d chunks, want %d bytes in several", round, x.bytes, x.used, bytes)
		}
		kept := x.capBytes()
		x.reset()
		if x.bytes != 0 || x.used != 0 || x.capBytes() != kept {
			t.Errorf("round %d: after reset %d bytes in %d chunks, %d kept of %d", round, x.bytes, x.used, x.capBytes(), kept)
		}
	}
}

// A chunk made for a string longer than textChunkMax, kept by reset and
// filled again, takes no more than textChunkMax: a position past it would
// read as another chunk's.
func TestTextChunkKeptFromALongString(t *testing.T) {
	var x texts
	x.alloc(textChunkMax + 10)
	x.reset()
	off, dst := x.alloc(textChunkMax)
	copy(dst, strings.Repeat("a", textChunkMax))
	off2, dst2 := x.alloc(5)
	copy(dst2, "bbbbb")
	if got := x.at(off2, 0, 5); got != "bbbbb" || off2>>textChunkBits == off>>textChunkBits {
		t.Errorf("5 bytes after a full chunk: at %#x (the full one at %#x), read %q", off2, off, got)
	}
}

// An event's strings come back as they went in, each in its column, the
// empty ones and long props included.
func TestEventStrings(t *testing.T) {
	var b Batch
	events := []Event{
		{},
		{EventID: "e1", VisitorID: "v1", URL: "https://example.com/a?b#c", KafkaTopic: "clickstream", Props: `{"k":1}`},
		{EventID: "e2", Props: strings.Repeat("p", 256<<10), Plan: "pro", Currency: "EUR", Referrer: "r"},
		{EventID: "e3", VisitorID: "v3", CustomerID: "c3", SessionID: "s3", URL: "u", Referrer: "r3", Source: "s", Medium: "m",
			Campaign: "c", Device: "d", Country: "FR", OrderID: "o3", Currency: "USD", Plan: "basic", KafkaTopic: "transactions"},
	}
	for i := range events {
		b.Events.Append(&events[i])
	}
	got := b.Events.All()
	for i := range events {
		if got[i] != events[i] {
			t.Errorf("event %d: got %+.60v, want %+.60v", i, got[i], events[i])
		}
	}
	// Each column reads its own string.
	names := EventsTable.ColumnNames()
	for i, name := range names {
		if !EventsTable.IsText(i) {
			continue
		}
		vals := EventsTable.Values(i, []*Batch{&b}, new(Buffers)).([]string)
		if name == "currency" && (vals[2] != "EUR" || vals[3] != "USD") || name == "kafka_topic" && vals[1] != "clickstream" ||
			name == "order_id" && vals[3] != "o3" || name == "props" && len(vals[2]) != 256<<10 {
			t.Errorf("column %s reads %.30q", name, vals)
		}
	}
}

func TestStageNames(t *testing.T) {
	if StageNone.String() != "" || StageAwareness.String() != "awareness" || StageReactivated.String() != "reactivated" || NumStages != 8 {
		t.Errorf("stage names: %q %q %q, %d stages", StageNone, StageAwareness, StageReactivated, NumStages)
	}
}

// TestValuesRange checks that the ranges of a column, taken across batches
// of different sizes, put together give the whole column.
func TestValuesRange(t *testing.T) {
	sizes := []int{3, 0, 1, 5, 2}
	var batches []*Batch
	offset := int64(0)
	for _, n := range sizes {
		b := new(Batch)
		for range n {
			b.Events.Append(&Event{KafkaOffset: offset})
			offset++
		}
		batches = append(batches, b)
	}
	col := slices.Index(EventsTable.ColumnNames(), "kafka_offset")
	var buf Buffers
	for _, block := range []int{1, 2, 3, 4, 11, 20} {
		var got []int64
		for from := 0; from < int(offset); from += block {
			got = append(got, EventsTable.ValuesRange(col, batches, from, from+block, &buf).([]int64)...)
		}
		if len(got) != int(offset) {
			t.Fatalf("blocks of %d: %d values, want %d", block, len(got), offset)
		}
		for i, v := range got {
			if v != int64(i) {
				t.Fatalf("blocks of %d: value %d is %d", block, i, v)
			}
		}
	}
}

// stringSink is a rows.StringColumn that records what it is given.
type stringSink struct {
	rows, bytes int
	got         []string
}

func (s *stringSink) Grow(rows, bytes int) { s.rows, s.bytes = s.rows+rows, s.bytes+bytes }
func (s *stringSink) Append(v string)      { s.got = append(s.got, v) }

// TestAppendTexts checks that the string columns appended range by range
// across batches give the strings ValuesRange gives, announced exactly by
// Grow, for a text column of event rows and a string column of sessions;
// and that a column without a destination is left alone.
func TestAppendTexts(t *testing.T) {
	var batches []*Batch
	var urls, ids []string
	for i, n := range []int{3, 0, 1, 5, 2} {
		b := new(Batch)
		for j := range n {
			url := strings.Repeat("u", i+j) // "" first: an empty string still takes a row
			b.Events.Append(&Event{URL: url, EventID: "e"})
			b.Sessions.Append(&Session{SessionID: url + "s"})
			urls, ids = append(urls, url), append(ids, url+"s")
		}
		batches = append(batches, b)
	}
	check := func(table AnyTable, column string, want []string) {
		t.Helper()
		col := slices.Index(table.ColumnNames(), column)
		if !table.IsText(col) {
			t.Fatalf("%s.%s is not a string column", table.TableName(), column)
		}
		for _, block := range []int{1, 2, 4, 11} {
			var dst stringSink
			dsts := make([]StringColumn, len(table.ColumnNames()))
			dsts[col] = &dst
			for from := 0; from < len(want); from += block {
				table.AppendTexts(batches, from, from+block, dsts)
			}
			bytes := 0
			for _, s := range want {
				bytes += len(s)
			}
			if !slices.Equal(dst.got, want) || dst.rows != len(want) || dst.bytes != bytes {
				t.Fatalf("%s.%s in blocks of %d: got %q (grown by %d rows, %d bytes), want %q (%d bytes)",
					table.TableName(), column, block, dst.got, dst.rows, dst.bytes, want, bytes)
			}
		}
	}
	check(&EventsTable, "url", urls)
	check(&SessionsTable, "session_id", ids)
	if EventsTable.IsText(slices.Index(EventsTable.ColumnNames(), "kafka_offset")) {
		t.Fatal("kafka_offset is taken as a string column")
	}
}
