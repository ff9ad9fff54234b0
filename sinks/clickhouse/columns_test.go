package clickhouse

import (
	"strconv"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/shopspring/decimal"
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
