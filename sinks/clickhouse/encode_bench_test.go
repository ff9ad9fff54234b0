package clickhouse

import (
	"fmt"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go/proto"
	chcol "github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/shopspring/decimal"

	"github.com/funnelhouse/funnelhouse/pipeline/rows"
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

func benchEvents(n int) *rows.Batch {
	b := new(rows.Batch)
	r := rows.Event{EventID: "2sgaGTJQktacUmnVvwgSyK25473", Type: schemas.PageView, TsMs: 1738879575928,
		VisitorID: "v105fiknev1bx3", CustomerID: "cus_1qvtnz9mpv8ki", SessionID: "2sgaEk9Hp6BWIo2mAB078mDN03P", Stage: 1,
		URL: "/products/42", Referrer: "https://www.google.com/", Source: "google", Medium: "cpc", Campaign: "spring",
		Device: "mobile", Country: "DE", Rating: schemas.Absent, NPS: schemas.Absent, CSAT: schemas.Absent, CES: schemas.Absent,
		SessionStartMs: 1738879575928, KafkaTopic: "clickstream", KafkaPartition: 3}
	for i := 0; i < n; i++ {
		if i%50 == 0 {
			r.Type, r.OrderID, r.Amount, r.Currency = schemas.OrderCompleted, "o1", 129900, "EUR"
		} else {
			r.Type, r.OrderID, r.Amount, r.Currency = schemas.PageView, "", 0, ""
		}
		r.KafkaOffset = int64(i)
		b.Events.Append(&r)
	}
	return b
}

// benchEnum8 stands for the events table's Enum8 columns (type, stage).
const benchEnum8 = "Enum8('v0' = 0, 'v1' = 1, 'v2' = 2, 'v3' = 3, 'v4' = 4, 'v5' = 5, 'v6' = 6, 'v7' = 7, 'v8' = 8, " +
	"'v9' = 9, 'v10' = 10, 'v11' = 11, 'v12' = 12, 'v13' = 13, 'v14' = 14)"

// BenchmarkEncodeEvents measures column encoding of the events table: from
// our rows through the driver's columns to the native wire format, as a
// batch insert does before the network, into columns new to each insert.
// "fill" is the sink's way (fillBlock: text, numbers and enums straight
// into the driver's buffers); "fill-texts" the way before, with only the
// text written directly; "append-slices" the driver's own Append of every
// column as a slice, the way before that; all in the same run.
func BenchmarkEncodeEvents(b *testing.B) {
	const n = 100_000
	batches := []*rows.Batch{benchEvents(n)}
	events := &rows.EventsTable
	var vals rows.Buffers
	var types []chcol.Type
	for j, name := range events.ColumnNames() {
		typ := wireType(driverValues(events.Values(j, batches, &vals)))
		if name == "type" || name == "stage" {
			typ = benchEnum8
		}
		types = append(types, typ)
	}
	for _, way := range []string{"fill", "fill-texts", "append-slices"} {
		b.Run(way, func(b *testing.B) {
			var buf proto.Buffer
			b.ReportAllocs()
			for b.Loop() {
				buf.Reset()
				cols := make([]chcol.Interface, len(types))
				for j, name := range events.ColumnNames() {
					col, err := types[j].Column(name, time.UTC)
					if err != nil {
						b.Fatal(err)
					}
					cols[j] = col
				}
				if way != "append-slices" {
					fixed := fixedColumns(cols)
					if way == "fill-texts" {
						fixed = make([]*fixedColumn, len(cols))
					}
					if err := fillBlock(cols, textColumns(cols, events), fixed, events, batches, 0, n, &vals); err != nil {
						b.Fatal(err)
					}
				} else {
					for j, col := range cols {
						if _, err := col.Append(driverValues(events.Values(j, batches, &vals))); err != nil {
							b.Fatal(err)
						}
					}
				}
				for _, col := range cols {
					col.Encode(&buf)
				}
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(len(buf.Buf))/n, "wire-bytes/event")
		})
	}
}
