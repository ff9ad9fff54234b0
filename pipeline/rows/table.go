package rows

import (
	"math"
	"reflect"
	"time"

	"github.com/funnelhouse/funnelhouse/schemas"
)

// Table describes one table: its name, its columns in insert order, and
// where a Batch holds its rows.
type Table[R any] struct {
	Name    string
	Columns []Column[R]
	rows    func(*Batch) *Rows[R]
}

// Column is one column of a table of rows R: its name and its accessor.
type Column[R any] struct {
	Name string
	// values gathers the column's values of the table's rows from..to
	// of the batches (an accessor func(*R) T, typed at Col).
	values func(t *Table[R], batches []*Batch, from, to int, buf *Buffers) any
	// text is the accessor of a string column (textCol, or Col of a
	// string), nil otherwise.
	text func(*Rows[R], *R) string
	// fixed appends the values of the rows from..to of the batches to
	// dst when dst is a *[]T of the column's type T, or a NullableUInt8
	// for an OptionalInt8 column, and reports whether it was (Col).
	fixed func(t *Table[R], batches []*Batch, from, to int, dst any) bool
}

// Value is the Go type of a column's values, as a sink receives them.
// Enums are their int8 values; OptionalInt8 is a nullable small number.
type Value interface {
	string | int64 | uint64 | int8 | uint8 | int32 | uint32 | float64 | schemas.Amount | OptionalInt8 | time.Time
}

// OptionalInt8 is a small number that schemas.Absent marks as missing:
// NULL in the table.
type OptionalInt8 int8

// Col describes a column whose value in row r is get(r).
func Col[R any, T Value](name string, get func(*R) T) Column[R] {
	c := Column[R]{Name: name, values: func(t *Table[R], batches []*Batch, from, to int, buf *Buffers) any {
		out := (*buffer[T](buf))[:0]
		t.each(batches, from, to, func(_ *Rows[R], r *R) { out = append(out, get(r)) })
		*buffer[T](buf) = out
		return out
	}}
	if str, ok := any(get).(func(*R) string); ok {
		c.text = func(_ *Rows[R], r *R) string { return str(r) }
		return c
	}
	c.fixed = func(t *Table[R], batches []*Batch, from, to int, dst any) bool {
		switch dst := dst.(type) {
		case *[]T:
			out := *dst
			t.each(batches, from, to, func(_ *Rows[R], r *R) { out = append(out, get(r)) })
			*dst = out
			return true
		case NullableUInt8:
			opt, ok := any(get).(func(*R) OptionalInt8)
			if !ok {
				return false
			}
			vals, nulls := *dst.Values, *dst.Nulls
			t.each(batches, from, to, func(_ *Rows[R], r *R) {
				if v := opt(r); int8(v) == schemas.Absent {
					vals, nulls = append(vals, 0), append(nulls, 1)
				} else {
					vals, nulls = append(vals, uint8(v)), append(nulls, 0)
				}
			})
			*dst.Values, *dst.Nulls = vals, nulls
			return true
		}
		return false
	}
	return c
}

// NullableUInt8 is where AppendFixed writes an OptionalInt8 column: its
// values (0 where absent) and its null flags (1 where absent), as
// ClickHouse's Nullable(UInt8) keeps them.
type NullableUInt8 struct{ Values, Nulls *[]uint8 }

// AppendFixed appends column i's values of the rows from..to of the
// batches to dst, when dst is a *[]T of the column's Value type T (an
// enum's int8, an Amount's ten-thousandths, …) or a NullableUInt8 for an
// OptionalInt8 column, and reports whether it was. Like AppendTexts it
// lets a sink write into its driver's own column buffers, without a slice
// in between or the driver's conversion of each value.
func (t *Table[R]) AppendFixed(i int, batches []*Batch, from, to int, dst any) bool {
	f := t.Columns[i].fixed
	return f != nil && f(t, batches, from, to, dst)
}

// textCol describes a string column whose value in row r is get(rows, r),
// a string kept in the rows' text: valid until the batch is reset.
func textCol[R any](name string, get func(*Rows[R], *R) string) Column[R] {
	return Column[R]{Name: name, text: get, values: func(t *Table[R], batches []*Batch, from, to int, buf *Buffers) any {
		out := (*buffer[string](buf))[:0]
		t.each(batches, from, to, func(rs *Rows[R], r *R) { out = append(out, get(rs, r)) })
		*buffer[string](buf) = out
		return out
	}}
}

// StringColumn receives a string column's strings, such as a driver's
// column buffer: Grow once with the rows and bytes to come, then Append
// each string in order.
type StringColumn interface {
	Grow(rows, bytes int)
	Append(s string)
}

// IsText reports whether column i is a string column (textCol, or Col of
// a string).
func (t *Table[R]) IsText(i int) bool { return t.Columns[i].text != nil }

// AppendTexts appends each string column i of the rows from..to of the
// batches to dst[i], where dst[i] is not nil. Unlike ValuesRange it builds
// no []string, sizes each dst once instead of growing it, and reads the
// rows twice in all rather than once per column: a row is wider than a
// cache line, and a column at a time read every row sixteen times over.
func (t *Table[R]) AppendTexts(batches []*Batch, from, to int, dst []StringColumn) {
	type text struct {
		dst   StringColumn
		get   func(*Rows[R], *R) string
		bytes int
	}
	var texts []text
	for i, c := range t.Columns {
		if c.text != nil && dst[i] != nil {
			texts = append(texts, text{dst: dst[i], get: c.text})
		}
	}
	if len(texts) == 0 {
		return
	}
	n := 0
	t.each(batches, from, to, func(rs *Rows[R], r *R) {
		n++
		for k := range texts {
			texts[k].bytes += len(texts[k].get(rs, r))
		}
	})
	for _, c := range texts {
		c.dst.Grow(n, c.bytes)
	}
	t.each(batches, from, to, func(rs *Rows[R], r *R) {
		for _, c := range texts {
			c.dst.Append(c.get(rs, r))
		}
	})
}

// each calls f with the table's rows from..to of the batches, counted over
// the batches in order.
func (t *Table[R]) each(batches []*Batch, from, to int, f func(*Rows[R], *R)) {
	for _, b := range batches {
		rows := t.rows(b)
		rs := rows.rows
		if from >= len(rs) {
			from, to = from-len(rs), to-len(rs)
			continue
		}
		rs = rs[from:min(to, len(rs))]
		for j := range rs {
			f(rows, &rs[j])
		}
		if to -= from + len(rs); to <= 0 {
			return
		}
		from = 0
	}
}

// AnyTable is a Table without its row type, for code that treats every
// table alike.
type AnyTable interface {
	TableName() string
	// ColumnNames are the columns in insert order.
	ColumnNames() []string
	// Len is the number of the table's rows in b.
	Len(b *Batch) int
	// Values returns column i of the table's rows in the batches, in
	// order, as a slice of the column's Value type ([]string, []int64, …).
	// The slice is one of buf's and valid until buf is used again.
	Values(i int, batches []*Batch, buf *Buffers) any
	// ValuesRange is Values of the rows from..to only (counted over the
	// batches in order), so that a large insert is sent in blocks.
	ValuesRange(i int, batches []*Batch, from, to int, buf *Buffers) any
	// IsText reports whether column i is a string column, which
	// AppendTexts fills.
	IsText(i int) bool
	// AppendTexts appends each string column i of the rows from..to to
	// dst[i] where that is not nil, in two passes over the rows for all
	// of them.
	AppendTexts(batches []*Batch, from, to int, dst []StringColumn)
	// AppendFixed appends column i's values of the rows from..to to dst
	// when dst is a *[]T of the column's Value type T, or a NullableUInt8
	// for an OptionalInt8 column, and reports whether it was.
	AppendFixed(i int, batches []*Batch, from, to int, dst any) bool
	reset(b *Batch)
}

// TableName is the table's name.
func (t *Table[R]) TableName() string { return t.Name }

// ColumnNames are the columns in insert order.
func (t *Table[R]) ColumnNames() []string {
	names := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		names[i] = c.Name
	}
	return names
}

// Len is the number of the table's rows in b.
func (t *Table[R]) Len(b *Batch) int { return t.rows(b).Len() }

func (t *Table[R]) reset(b *Batch) { t.rows(b).reset() }

// Values is AnyTable.Values.
func (t *Table[R]) Values(i int, batches []*Batch, buf *Buffers) any {
	return t.Columns[i].values(t, batches, 0, math.MaxInt, buf)
}

// ValuesRange is AnyTable.ValuesRange.
func (t *Table[R]) ValuesRange(i int, batches []*Batch, from, to int, buf *Buffers) any {
	return t.Columns[i].values(t, batches, from, to, buf)
}

// Buffers are the slices Values fills, one per Value type, reused from
// call to call. Not safe for concurrent use.
type Buffers struct {
	slices map[reflect.Type]any // *[]T by T
}

func buffer[T any](b *Buffers) *[]T {
	if b.slices == nil {
		b.slices = map[reflect.Type]any{}
	}
	p, ok := b.slices[reflect.TypeFor[T]()].(*[]T)
	if !ok {
		p = new([]T)
		b.slices[reflect.TypeFor[T]()] = p
	}
	return p
}

// Release drops the strings the buffers still reference, so that they keep
// no batch's text alive.
func (b *Buffers) Release() {
	s := buffer[string](b)
	clear(*s)
	*s = (*s)[:0]
}
