package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/funnelhouse/funnelhouse/bench/traffic"
	"github.com/funnelhouse/funnelhouse/pipeline"
	"github.com/funnelhouse/funnelhouse/schemas"
)

// TestPoisonRecord puts a 3 MB record, which the broker accepted
// compressed, among generated traffic: its dead letter must be cut to fit
// the producer's limit (it used to fail every checkpoint, and the member
// exited, restarted and failed again on the same record), and the rest of
// the traffic must be exact.
func TestPoisonRecord(t *testing.T) {
	if testing.Short() {
		t.Skip("200k events")
	}
	r := newFaultRig(t, "poison", 200_000, 2)
	key := []byte("vpoison")
	value := []byte(`{"event_id":"p1","type":"page_view","ts":"2025-01-01T00:00:00Z","visitor_id":"vpoison","url":"/` + strings.Repeat("a", 3<<20) + `"}`)
	cl, err := kgo.NewClient(kgo.SeedBrokers(r.brokerAddr), kgo.ProducerBatchMaxBytes(16<<20), kgo.ProducerBatchCompression(kgo.Lz4Compression()))
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: r.cs, Key: key, Value: value}).FirstErr(); err != nil {
		t.Fatalf("the broker refused the compressed 3 MB record: %v", err)
	}
	cl.Close()
	r.expect.add(r.cs, key, value)
	r.malformed = append(r.malformed, traffic.Record{Key: key, Value: value[:pipeline.MaxDeadLetterBytes-len(key)], Reason: schemas.ReasonTooLarge})

	m := r.start(nil)
	waitFor(t, "every record committed", 3*time.Minute, func() bool {
		select {
		case err := <-m.exited:
			t.Fatalf("the member exited on the poison record: %v", err)
		default:
		}
		return r.committed() >= r.expect.records
	})
	r.waitDrained(3 * time.Minute)
	m.stop(t, 30*time.Second)
	r.verify()
}
