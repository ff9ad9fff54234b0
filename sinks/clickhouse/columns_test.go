package clickhouse

import (
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
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
