package pipeline

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/funnelhouse/funnelhouse/schemas"
)

// pageView is a valid clickstream record of visitor v at ts.
func pageView(id, v string, ts time.Time) (key, value []byte) {
	return []byte(v), fmt.Appendf(nil, `{"event_id":%q,"type":"page_view","ts":%q,"visitor_id":%q,"url":"/"}`, id, ts.Format(time.RFC3339Nano), v)
}

// TestFutureOutlierKeepsTrafficOnTime is the probe of issue 13: one record
// 59 minutes ahead of the clock (SPEC accepts up to 1 h) must not push the
// watermark ahead and make the next hour of real-time traffic late.
func TestFutureOutlierKeepsTrafficOnTime(t *testing.T) {
	clock := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	p := NewProcessor("h", 0, [2]string{"clickstream", "transactions"}, DefaultRules(), func() time.Time { return clock })
	p.SetEnd(schemas.Transactions, 0) // no transactions: idle after --idle-advance
	offset := int64(0)
	add := func(id, v string, ts time.Time) {
		k, val := pageView(id, v, ts)
		if err := p.Add(schemas.Clickstream, k, val, offset, clock); err != nil {
			t.Fatalf("record %s rejected: %v", id, err)
		}
		offset++
		p.SetEnd(schemas.Clickstream, offset+1) // more to come
		p.Advance(clock)
	}
	add("outlier", "vfuture", clock.Add(59*time.Minute))
	for i := range 3600 {
		clock = clock.Add(time.Second)
		add(fmt.Sprintf("e%d", i), fmt.Sprintf("v%d", i%50), clock)
	}
	if late := p.Stats().Late; late != 0 {
		t.Errorf("%d of 3,600 on-time records were late after one record 59 min in the future, want 0", late)
	}
	if w, limit := p.Watermark(), clock.Add(-DefaultRules().Lateness).UnixMilli(); w > limit {
		t.Errorf("watermark %s is ahead of the clock minus the lateness (%s)", time.UnixMilli(w).UTC(), time.UnixMilli(limit).UTC())
	}
}

// TestVisitorStringsFull fills a partition's visitor string store (4 GiB
// in production, 256 KiB here): the member must stop with an error naming
// the partition and turn not ready, not panic.
func TestVisitorStringsFull(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the pipeline on an in-process broker")
	}
	defer func(n int) { maxStoreChunks = n }(maxStoreChunks)
	maxStoreChunks = 4
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()
	// 4,000 visitors with 120-byte ids (about 480 KB of strings), all on
	// partition 1; partition 0 gets a few.
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var recs []*kgo.Record
	for i := range 4000 {
		v := fmt.Sprintf("%0120d", i)
		k, val := pageView(fmt.Sprintf("e%d", i), v, base.Add(time.Duration(i)*time.Second))
		recs = append(recs, &kgo.Record{Topic: "clickstream", Partition: 1, Key: k, Value: val})
	}
	for i := range 10 {
		k, val := pageView(fmt.Sprintf("f%d", i), fmt.Sprintf("w%d", i), base)
		recs = append(recs, &kgo.Record{Topic: "clickstream", Partition: 0, Key: k, Value: val})
	}
	produceRecords(t, brokers, 2, recs)

	sink := newMemSink()
	pl := startPipeline(t, brokers, "full", sink)
	err = pl.wait(t)
	if err == nil || !strings.Contains(err.Error(), "partition 1:") || !strings.Contains(err.Error(), "visitor strings") {
		t.Fatalf("Run returned %v; want an error naming partition 1 and its visitor strings", err)
	}
	t.Logf("Run returned: %v", err)
	if pl.Ready() {
		t.Error("the member is still ready after its partition failed")
	}
	// Nothing of the failed state was written: a visitor whose id did not
	// fit would have an empty one.
	for k := range sink.transitions {
		if k.visitorID == "" {
			t.Fatalf("a transition without visitor id was written: %+v", sink.transitions[k])
		}
	}
}

// produceRecords creates the default input topics with n partitions and
// the dead-letter topic, and produces recs (each names its topic and
// partition).
func produceRecords(t *testing.T, brokers []string, partitions int32, recs []*kgo.Record) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopics(ctx, partitions, 1, nil, "clickstream", "transactions"); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "funnelhouse.dlq"); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}
