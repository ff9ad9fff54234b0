package clickhouse

import (
	"reflect"
	"slices"
	"unsafe"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
)

// chStrings is the ch-go column inside clickhouse-go's String column, which
// a text column of rows is written into directly (rows.StringColumn).
//
// Why reach inside the driver: Append([]string) wants the strings as a
// []string (built from the rows' text, a first copy), then copies them into
// a column buffer that every INSERT starts empty and doubles as it goes. A
// CPU profile at 2M events put 10 % of the process in the driver's
// String.Append alone, copying and growing (bench/RESULTS.md, "strings
// straight into the driver's columns"). clickhouse-go has no public way to size a column,
// and it is held at v2.26.0, the last release whose batch inserts work on
// ClickHouse 18.16 (CLICKHOUSE-18.md), so its layout cannot move under us.
type chStrings struct{ col *proto.ColStr }

// stringsOf returns c's ch-go column, or false when c is not a String
// column of the layout above (a Nullable or LowCardinality column, or a
// driver whose String changed): the caller then appends a []string.
func stringsOf(c column.Interface) (chStrings, bool) {
	s, ok := c.(*column.String)
	if !ok {
		return chStrings{}, false
	}
	f := reflect.ValueOf(s).Elem().FieldByName("col")
	if !f.IsValid() || f.Type() != reflect.TypeFor[proto.ColStr]() {
		return chStrings{}, false
	}
	return chStrings{(*proto.ColStr)(unsafe.Pointer(f.UnsafeAddr()))}, true
}

// Grow is rows.StringColumn.Grow.
func (c chStrings) Grow(rows, bytes int) {
	c.col.Buf = slices.Grow(c.col.Buf, bytes)
	c.col.Pos = slices.Grow(c.col.Pos, rows)
}

// Append is rows.StringColumn.Append.
func (c chStrings) Append(s string) { c.col.Append(s) }
