package clickhouse

import (
	"reflect"
	"slices"
	"strconv"
	"sync"
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
func driverColumn(c column.Interface) reflect.Value {
	p := reflect.ValueOf(c)
	if p.Kind() != reflect.Pointer || p.IsNil() || p.Elem().Kind() != reflect.Struct {
		return reflect.Value{}
	}
	return settable(p.Elem().FieldByName("col"))
}

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
	col := driverColumn(c)
	if col.IsValid() && col.Kind() == reflect.Interface && !col.IsNil() && col.Elem().Kind() == reflect.Pointer {
		col = settable(col.Elem().Elem())
	}
	if !col.IsValid() {
		return nil
	}
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
