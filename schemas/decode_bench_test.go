package schemas

import (
	"testing"
)

// benchPageView is a realistic page_view of about 250 bytes.
const benchPageView = `{"event_id":"2c8BqXqmvLkyQ3yZ8mJ4k1a9Xy7","type":"page_view","ts":"2025-03-01T10:00:00.123Z",` +
	`"visitor_id":"v-7f3a9c2e41","url":"https://shop.example.com/products/42?color=blue",` +
	`"referrer":"https://www.google.com/","utm_source":"google","utm_medium":"cpc","device":"mobile","country":"DE"}`

const benchOrder = `{"event_id":"2c8BqZ1m3kQ9yZ8mJ4k1a9Xy7ab","type":"order_completed","ts":1740823200123,` +
	`"visitor_id":"v-7f3a9c2e41","customer_id":"c-1029","order_id":"o-88123","amount":129.95,"currency":"EUR",` +
	`"coupon":"SPRING10"}`

func BenchmarkDecode(b *testing.B) {
	for _, bc := range []struct {
		name  string
		topic Topic
		value string
	}{
		{"page_view", Clickstream, benchPageView},
		{"order", Transactions, benchOrder},
	} {
		b.Run(bc.name, func(b *testing.B) {
			d := NewDecoder(testClock)
			key, value := []byte("v-7f3a9c2e41"), []byte(bc.value)
			var ev Event
			if err := d.Decode(bc.topic, key, value, &ev); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(value)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if err := d.Decode(bc.topic, key, value, &ev); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
