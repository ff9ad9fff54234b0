package clickhouse

import (
	"fmt"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go/proto"
	chcol "github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/shopspring/decimal"

	"github.com/funnelhouse/funnelhouse/schemas"
)

// wireType is the ClickHouse type whose native encoding a column slice
// gets (Enum8 is Int8 on the wire, DateTime is UInt32).
func wireType(v any) chcol.Type {
	switch v.(type) {
	case []string:
		return "String"
	case []int64:
		return "DateTime"
	case []uint64:
		return "UInt64"
	case []int8:
		return "Int8"
	case []uint8:
		return "UInt8"
	case []int32:
		return "Int32"
	case []uint32:
		return "UInt32"
	case []float64:
		return "Float64"
	case []decimal.Decimal:
		return "Decimal(18, 4)"
	case []*uint8:
		return "Nullable(UInt8)"
	case []time.Time:
		return "Date"
	}
	panic(fmt.Sprintf("BUG: no wire type for %T", v))
}

func benchEvents(n int) *Batch {
	b := new(Batch)
	e := schemas.Event{EventID: "2sgaGTJQktacUmnVvwgSyK25473", Type: schemas.PageView, TsMs: 1738879575928,
		VisitorID: "v105fiknev1bx3", CustomerID: "cus_1qvtnz9mpv8ki", URL: "/products/42", Referrer: "https://www.google.com/",
		Device: "mobile", Country: "DE", Rating: schemas.Absent, NPS: schemas.Absent, CSAT: schemas.Absent, CES: schemas.Absent}
	for i := 0; i < n; i++ {
		if i%50 == 0 {
			e.Type, e.OrderID, e.Amount, e.Currency = schemas.OrderCompleted, "o1", 129900, "EUR"
		} else {
			e.Type, e.OrderID, e.Amount, e.Currency = schemas.PageView, "", 0, ""
		}
		b.Events.Append(&e, "2sgaEk9Hp6BWIo2mAB078mDN03P", e.TsMs, 1, "google", "cpc", "spring", false, "clickstream", 3, int64(i))
	}
	return b
}

// BenchmarkEncodeEvents measures column encoding of the events table: from
// our typed column slices through the driver's columns to the native wire
// format, as a batch insert does before the network.
func BenchmarkEncodeEvents(b *testing.B) {
	const rows = 100_000
	batch := benchEvents(rows)
	events := tables[0]
	b.ReportAllocs()
	b.ResetTimer()
	var buf proto.Buffer
	for i := 0; i < b.N; i++ {
		buf.Reset()
		for _, c := range events.columns {
			v := c.values(batch)
			col, err := wireType(v).Column(c.name, time.UTC)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := col.Append(v); err != nil {
				b.Fatal(err)
			}
			col.Encode(&buf)
		}
	}
	b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(len(buf.Buf))/rows, "wire-bytes/event")
}
