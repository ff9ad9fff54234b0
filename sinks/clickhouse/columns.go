package clickhouse

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"unsafe"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"

	"github.com/funnelhouse/funnelhouse/pipeline/rows"
	"github.com/funnelhouse/funnelhouse/schemas"
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
	if _, ok := c.(*column.String); !ok {
		return chStrings{}, false
	}
	col := driverColumn(c)
	if !col.IsValid() || col.Type() != reflect.TypeFor[proto.ColStr]() {
		return chStrings{}, false
	}
	return chStrings{col.Addr().Interface().(*proto.ColStr)}, true
}

// driverColumn is the ch-go column that clickhouse-go's column c keeps in
// its field col, settable; not valid when c has no such field.
func driverColumn(c column.Interface) reflect.Value { return driverField(c, "col") }

// Grow is rows.StringColumn.Grow.
func (c chStrings) Grow(rows, bytes int) {
	c.col.Buf = slices.Grow(c.col.Buf, bytes)
	c.col.Pos = slices.Grow(c.col.Pos, rows)
}

// Append is rows.StringColumn.Append.
func (c chStrings) Append(s string) { c.col.Append(s) }

// spareColumns keeps the driver's column buffers from one INSERT to the
// next. clickhouse-go builds new, empty columns for every PrepareBatch, so
// each flush grew every column from nothing again: over a 5M-event run,
// 3.9 GB of the member's 11-12 GB of allocations (heap profiles, see
// bench/RESULTS.md, "GOGC 50"). Once an INSERT is sent, the slices of its
// columns are taken back and lent to the next INSERT of the same table and
// column, so what is kept is one block of each table, which the next
// flush needs anyway. Measured: 8.1-8.7 GB allocated, the GC's background
// work 2.05 → 1.39 s per run, peak RSS about 20 MiB more.
type spareColumns struct {
	mu   sync.Mutex
	free map[string]reflect.Value // an empty slice with room, by table, column and slice
}

// spareSlot is a slice inside a driver column, settable.
type spareSlot struct {
	key   string
	slice reflect.Value
}

// lend gives the new columns cols of table the slices kept from the last
// INSERT into it, and returns the function that takes them back: call it
// once the INSERT is sent or aborted, when the driver is done with them.
func (s *spareColumns) lend(table string, cols []column.Interface) (takeBack func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var slots []spareSlot
	for _, c := range cols {
		for i, slice := range bufferSlices(c) {
			key := table + "." + c.Name() + "." + strconv.Itoa(i)
			if v, ok := s.free[key]; ok && slice.Cap() == 0 {
				slice.Set(v)
				delete(s.free, key)
			}
			slots = append(slots, spareSlot{key, slice})
		}
	}
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.free == nil {
			s.free = map[string]reflect.Value{}
		}
		for _, sl := range slots {
			if sl.slice.Cap() > 0 {
				s.free[sl.key] = sl.slice.Slice(0, 0)
			}
			sl.slice.SetZero()
		}
	}
}

// bufferSlices are the slices of plain values (no pointers) that hold the
// data of the driver column c: the ch-go column in its field col (a slice,
// a struct of slices such as String's Buf and Pos, or an interface holding
// a pointer to one, as Decimal's). Another layout yields none, and its
// column simply grows from nothing as before.
func bufferSlices(c column.Interface) []reflect.Value {
	p := reflect.ValueOf(chColumn(c))
	if p.Kind() != reflect.Pointer || p.IsNil() {
		return nil
	}
	col := p.Elem()
	switch col.Kind() {
	case reflect.Slice:
		if plain(col.Type().Elem()) {
			return []reflect.Value{col}
		}
	case reflect.Struct:
		var out []reflect.Value
		for i := range col.NumField() {
			if f := col.Field(i); f.Kind() == reflect.Slice && plain(f.Type().Elem()) {
				out = append(out, settable(f))
			}
		}
		return out
	}
	return nil
}

// settable is v (addressable) without the read-only mark of an unexported
// field.
func settable(v reflect.Value) reflect.Value {
	if !v.IsValid() || !v.CanAddr() {
		return reflect.Value{}
	}
	return reflect.NewAt(v.Type(), unsafe.Pointer(v.UnsafeAddr())).Elem()
}

// plain reports whether values of t hold no pointers, so that a kept
// slice of them keeps nothing else alive.
func plain(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return true
	case reflect.Array:
		return plain(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if !plain(t.Field(i).Type) {
				return false
			}
		}
		return true
	}
	return false
}

// fixedColumn is a column of numbers or enums that fillBlock writes
// straight into the driver's ch-go column (rows.AnyTable.AppendFixed).
//
// Why: the driver's Append takes a slice of the column's type, which the
// rows would first be gathered into, and converts value by value: an
// Enum8 through two interface calls and a map lookup each, a Decimal
// through shopspring's big integers, a Nullable through a slice of
// pointers. A CPU profile at 5M events put 7 % of the process there
// (bench/RESULTS.md, "numbers straight into the driver's columns").
type fixedColumn struct {
	dst   any        // *[]T for AppendFixed, or a rows.NullableUInt8
	enum  *[]int8    // an Enum8 column's values, checked against known
	known *[256]bool // the Enum8's values (by uint8)
}

// fixedOf returns where c's values go as plain numbers, or false when c is
// of another type or layout (the caller then goes through Append).
func fixedOf(c column.Interface) (fixedColumn, bool) {
	if n, ok := c.(*column.Nullable); ok {
		return nullableUInt8Of(n)
	}
	switch p := chColumn(c).(type) {
	case *proto.ColEnum8:
		known, ok := enumValues(c)
		if !ok {
			return fixedColumn{}, false
		}
		values := (*[]int8)(unsafe.Pointer(p)) // proto.Enum8 is an int8
		return fixedColumn{dst: values, enum: values, known: known}, true
	case *proto.ColDecimal64:
		if scale := driverField(c, "scale"); !scale.IsValid() || scale.Kind() != reflect.Int || !isAmountScale(scale.Int()) {
			return fixedColumn{}, false
		}
		return fixedColumn{dst: (*[]schemas.Amount)(unsafe.Pointer(p))}, true // both int64s of ten-thousandths
	case *proto.ColInt8:
		return fixedColumn{dst: (*[]int8)(p)}, true
	case *proto.ColUInt8:
		return fixedColumn{dst: (*[]uint8)(p)}, true
	case *proto.ColInt32:
		return fixedColumn{dst: (*[]int32)(p)}, true
	case *proto.ColUInt32:
		return fixedColumn{dst: (*[]uint32)(p)}, true
	case *proto.ColInt64:
		return fixedColumn{dst: (*[]int64)(p)}, true
	case *proto.ColUInt64:
		return fixedColumn{dst: (*[]uint64)(p)}, true
	case *proto.ColFloat64:
		return fixedColumn{dst: (*[]float64)(p)}, true
	}
	return fixedColumn{}, false
}

// nullableUInt8Of is fixedOf of a Nullable(UInt8) column: its base column's
// values and its own null flags.
func nullableUInt8Of(n *column.Nullable) (fixedColumn, bool) {
	base, ok := chColumn(n.Base()).(*proto.ColUInt8)
	nulls := driverField(n, "nulls")
	if !ok || !nulls.IsValid() || nulls.Type() != reflect.TypeFor[proto.ColUInt8]() {
		return fixedColumn{}, false
	}
	return fixedColumn{dst: rows.NullableUInt8{Values: (*[]uint8)(base), Nulls: (*[]uint8)(nulls.Addr().Interface().(*proto.ColUInt8))}}, true
}

// append appends column i of t's rows from..to to the driver's column and
// reports whether it could; an Enum8 value the column does not know is an
// error, as the driver's Append makes it.
func (f fixedColumn) append(t rows.AnyTable, i int, batches []*rows.Batch, from, to int) (bool, error) {
	before := 0
	if f.enum != nil {
		before = len(*f.enum)
	}
	if !t.AppendFixed(i, batches, from, to, f.dst) {
		return false, nil
	}
	if f.enum != nil {
		for _, v := range (*f.enum)[before:] {
			if !f.known[uint8(v)] {
				return true, fmt.Errorf("column %s: %d is not a value of its Enum8", t.ColumnNames()[i], v)
			}
		}
	}
	return true, nil
}

// chColumn is the ch-go column inside clickhouse-go's column c (its field
// col, or what that interface holds), as a pointer; nil when c has none.
func chColumn(c column.Interface) any {
	col := driverColumn(c)
	switch {
	case !col.IsValid():
		return nil
	case col.Kind() == reflect.Interface:
		if col.IsNil() {
			return nil
		}
		return col.Elem().Interface()
	default:
		return col.Addr().Interface()
	}
}

// isAmountScale reports whether a Decimal of this many digits after the
// point counts in schemas.Amount's units.
func isAmountScale(digits int64) bool {
	units := int64(1)
	for range digits {
		units *= 10
	}
	return digits >= 0 && units == schemas.AmountScale
}

// driverField is c's field name, settable; not valid when c has none.
func driverField(c column.Interface, name string) reflect.Value {
	p := reflect.ValueOf(c)
	if p.Kind() != reflect.Pointer || p.IsNil() || p.Elem().Kind() != reflect.Struct {
		return reflect.Value{}
	}
	return settable(p.Elem().FieldByName(name))
}

// enumValues are the values of clickhouse-go's Enum8 column c (its map vi
// from value to name).
func enumValues(c column.Interface) (*[256]bool, bool) {
	vi := driverField(c, "vi")
	if !vi.IsValid() || vi.Kind() != reflect.Map || vi.Type().Key() != reflect.TypeFor[proto.Enum8]() {
		return nil, false
	}
	known := new([256]bool)
	for it := vi.MapRange(); it.Next(); {
		known[uint8(it.Key().Int())] = true
	}
	return known, true
}
