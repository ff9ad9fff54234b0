package clickhouse

import (
	"bytes"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/shopspring/decimal"

	"github.com/funnelhouse/funnelhouse/pipeline/rows"
	"github.com/funnelhouse/funnelhouse/schemas"
)

// The driver's String column, written through stringsOf, holds what its
// own Append would have put there; other column types are left to Append.
func TestStringsOfWritesTheDriversColumn(t *testing.T) {
	c, err := column.Type("String").Column("s", time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	str, ok := stringsOf(c)
	if !ok {
		t.Fatal("stringsOf does not find the ch-go column of clickhouse-go's String: its layout changed")
	}
	want := []string{"a", "", "héllo", "x?y#z"}
	str.Grow(len(want), 12)
	for _, s := range want {
		str.Append(s)
	}
	if c.Rows() != len(want) {
		t.Fatalf("column has %d rows, want %d", c.Rows(), len(want))
	}
	for i, s := range want {
		if got := c.Row(i, false); got != s {
			t.Errorf("row %d = %q, want %q", i, got, s)
		}
	}
	c.Reset()
	if c.Rows() != 0 {
		t.Fatalf("Reset left %d rows", c.Rows())
	}
	for _, typ := range []column.Type{"Nullable(String)", "UInt64", "FixedString(4)"} {
		other, err := typ.Column("o", time.UTC)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := stringsOf(other); ok {
			t.Errorf("stringsOf accepts a %s column", typ)
		}
	}
}

// The columns of an INSERT get the buffers of the last INSERT into the
// same table, empty, and hold the new rows only; a type whose data the
// driver keeps elsewhere (Nullable) is left alone.
func TestSpareColumnsLendTheLastInsertsBuffers(t *testing.T) {
	types := []column.Type{"String", "UInt64", "DateTime", "Decimal(18, 2)", "Enum8('a' = 1, 'b' = 2)", "UInt8", "Nullable(String)"}
	first := [][]any{{"first row text"}, {[]uint64{7}}, {[]time.Time{time.Unix(1e9, 0)}}, {[]decimal.Decimal{decimal.New(150, -2)}},
		{[]string{"a"}}, {[]uint8{1}}, {[]*string{nil}}}
	second := [][]any{{"x"}, {[]uint64{9}}, {[]time.Time{time.Unix(2e9, 0)}}, {[]decimal.Decimal{decimal.New(-5, -2)}},
		{[]string{"b"}}, {[]uint8{0}}, {[]*string{nil}}}
	newColumns := func() []column.Interface {
		var cols []column.Interface
		for i, typ := range types {
			c, err := typ.Column("c"+strconv.Itoa(i), time.UTC)
			if err != nil {
				t.Fatal(err)
			}
			cols = append(cols, c)
		}
		return cols
	}
	appendRows := func(cols []column.Interface, values [][]any) {
		for i, c := range cols {
			v := values[i][0]
			if s, ok := v.(string); ok {
				v = []string{s}
			}
			if _, err := c.Append(v); err != nil {
				t.Fatalf("%s: %v", types[i], err)
			}
		}
	}
	var spare spareColumns
	cols := newColumns()
	takeBack := spare.lend("events", cols)
	appendRows(cols, first)
	takeBack()
	if len(spare.free) != 7 { // String's Buf and Pos, one slice each for the next five, none for Nullable
		t.Fatalf("kept %d slices, want 7: %v", len(spare.free), spare.free)
	}
	for i, c := range cols[:6] {
		if len(bufferSlices(c)) == 0 || bufferSlices(c)[0].Cap() != 0 {
			t.Errorf("%s: the sent column still holds its buffer", types[i])
		}
	}

	cols = newColumns()
	takeBack = spare.lend("events", cols)
	for i, c := range cols[:6] {
		for _, s := range bufferSlices(c) {
			if s.Cap() == 0 || s.Len() != 0 {
				t.Errorf("%s: lent a slice of len %d cap %d, want empty with room", types[i], s.Len(), s.Cap())
			}
		}
	}
	if len(spare.free) != 0 {
		t.Errorf("%d slices still kept after lending them", len(spare.free))
	}
	appendRows(cols, second)
	for i, c := range cols {
		if c.Rows() != 1 {
			t.Fatalf("%s: %d rows, want 1", types[i], c.Rows())
		}
	}
	if got := cols[0].Row(0, false); got != "x" {
		t.Errorf("String row = %q, want x", got)
	}
	if got := cols[1].Row(0, false); got != uint64(9) {
		t.Errorf("UInt64 row = %v, want 9", got)
	}
	if got := cols[3].Row(0, false).(decimal.Decimal); !got.Equal(decimal.New(-5, -2)) {
		t.Errorf("Decimal row = %v, want -0.05", got)
	}
	if got := cols[4].Row(0, false); got != "b" {
		t.Errorf("Enum8 row = %v, want b", got)
	}
	takeBack()

	other := newColumns()
	takeBack = spare.lend("sessions", other)
	appendRows(other, first)
	takeBack()
	if len(spare.free) != 14 {
		t.Errorf("another table's insert took %d slices, want its own 7 besides the 7 kept", len(spare.free))
	}
}

// Numbers and enums written through fixedOf encode exactly as the driver's
// own Append of the same rows would, for every type of the events table
// and of the others (Enum8, Decimal(18, 4), Nullable(UInt8), UInt8,
// UInt32, UInt64, Int32, Int64), over rows of two batches.
func TestFixedColumnsEncodeAsTheDriversAppend(t *testing.T) {
	b1, b2 := new(rows.Batch), new(rows.Batch)
	e := rows.Event{EventID: "e", VisitorID: "v", Type: schemas.OrderCompleted, Stage: rows.StageConversion, Amount: -12345678,
		Rating: schemas.Absent, NPS: 10, CSAT: 0, CES: schemas.Absent, Trial: true, KafkaPartition: -1, KafkaOffset: 1 << 40, TsMs: 1738879575928}
	b1.Events.Append(&e)
	e.Type, e.Stage, e.Amount, e.Rating, e.NPS, e.Trial, e.KafkaOffset = schemas.PageView, rows.StageAwareness, 0, 5, schemas.Absent, false, 0
	b2.Events.Append(&e)
	b2.Events.Append(&e)
	batches := []*rows.Batch{b1, b2}
	types := map[string]column.Type{
		"type":  "Enum8('page_view' = 1, 'order_completed' = 11)",
		"stage": "Enum8('none' = 0, 'awareness' = 1, 'conversion' = 3)", "amount": "Decimal(18, 4)",
		"rating": "Nullable(UInt8)", "nps": "Nullable(UInt8)", "ces": "Nullable(UInt8)", "trial": "UInt8",
		"ts_ms": "UInt64", "kafka_partition": "Int32", "kafka_offset": "Int64",
	}
	var vals rows.Buffers
	for i, name := range rows.EventsTable.ColumnNames() {
		typ, ok := types[name]
		if !ok {
			continue
		}
		direct, err := typ.Column(name, time.UTC)
		if err != nil {
			t.Fatal(err)
		}
		f, ok := fixedOf(direct)
		if !ok {
			t.Fatalf("%s: fixedOf does not find the ch-go column of a %s: the driver's layout changed", name, typ)
		}
		for _, r := range [][2]int{{0, 2}, {2, 3}} { // two blocks, the second after the first
			if ok, err := f.append(&rows.EventsTable, i, batches, r[0], r[1]); !ok || err != nil {
				t.Fatalf("%s: append = %v, %v", name, ok, err)
			}
		}
		viaDriver, _ := typ.Column(name, time.UTC)
		if _, err := viaDriver.Append(driverValues(rows.EventsTable.Values(i, batches, &vals))); err != nil {
			t.Fatal(err)
		}
		var got, want proto.Buffer
		direct.Encode(&got)
		viaDriver.Encode(&want)
		if direct.Rows() != 3 || !bytes.Equal(got.Buf, want.Buf) {
			t.Errorf("%s (%s): %d rows encoded as %x, the driver's Append as %x", name, typ, direct.Rows(), got.Buf, want.Buf)
		}
	}
}

// A value an Enum8 column does not know is an error, as with the driver's
// Append; types fixedOf cannot write are left to Append.
func TestFixedColumnsRefuseWhatTheDriverRefuses(t *testing.T) {
	b := new(rows.Batch)
	b.Events.Append(&rows.Event{Type: schemas.Survey})
	c, _ := column.Type("Enum8('page_view' = 1)").Column("type", time.UTC)
	f, ok := fixedOf(c)
	if !ok {
		t.Fatal("fixedOf does not take an Enum8")
	}
	i := slices.Index(rows.EventsTable.ColumnNames(), "type")
	if _, err := f.append(&rows.EventsTable, i, []*rows.Batch{b}, 0, 1); err == nil || !strings.Contains(err.Error(), "column type") {
		t.Errorf("an unknown Enum8 value: error %v, want one naming the column", err)
	}
	for _, typ := range []column.Type{"Decimal(18, 2)", "Nullable(String)", "Nullable(Int8)", "DateTime", "String", "Decimal(38, 4)"} {
		other, err := typ.Column("o", time.UTC)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := fixedOf(other); ok {
			t.Errorf("fixedOf accepts a %s column", typ)
		}
	}
}
