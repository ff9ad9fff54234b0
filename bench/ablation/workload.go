// Package ablation measures where ClickHouse's CPU goes when it stores
// funnelhouse's rows: it computes, in process, the exact row batches the
// pipeline writes for generated traffic, then inserts the same batches
// with the pipeline's ClickHouse sink into a fresh database once per step
// of a cumulative ladder (events only, + sessions, + transitions, +
// pipeline_state, + each materialised view), measuring the server's CPU
// seconds until its background merges settle. A reference step inserts
// the same records into the Kafka engine peer's raw tables.
package ablation

import (
	"fmt"
	"math"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/funnelhouse/funnelhouse/bench/traffic"
	"github.com/funnelhouse/funnelhouse/pipeline"
	"github.com/funnelhouse/funnelhouse/pipeline/rows"
	"github.com/funnelhouse/funnelhouse/schemas"
)

// Workload is what the pipeline writes for one generated input: each
// write is one flush or checkpoint of every partition, as the pipeline
// hands it to its sink.
type Workload struct {
	Records int64            // input records, duplicates included
	Writes  [][]*rows.Batch  // in order
	Rows    map[string]int64 // by table
	traffic traffic.Config
}

// Topic names as in `funnelhouse bench` (events.kafka_topic holds them).
const (
	clickstreamTopic  = "bench.clickstream"
	transactionsTopic = "bench.transactions"
)

// clock is the processing time: fixed, so that the rows do not depend on
// the machine's speed (the generated events are far older).
var clock = time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)

// WorkloadConfig says what to generate and how the pipeline would batch it.
type WorkloadConfig struct {
	Events     int   // approximate number of valid events
	Seed       int64 // generator seed
	Partitions int   // of the topics
	// BatchRows is the pipeline's --batch-rows: a flush of every partition
	// once this many rows are buffered in all of them.
	BatchRows int
	// CheckpointRecords is the number of input records between two
	// checkpoints (rows and pipeline_state): the pipeline checkpoints
	// every 10 s, so this is 10 s at the end-to-end rate. One more
	// checkpoint at the end, as when the pipeline is drained.
	CheckpointRecords int
}

// partitioned is the processor of one partition number and the next
// offset of each of its inputs.
type partitioned struct {
	proc *pipeline.Processor
	next [2]int64
}

// NewWorkload generates the traffic (as bench produces it: no malformed
// records), routes each record to its partition as the producer's default
// partitioner does, runs it through one Processor per partition, and keeps
// every batch the pipeline would write.
func NewWorkload(cfg WorkloadConfig) (*Workload, error) {
	tc := traffic.Config{Seed: cfg.Seed, Events: cfg.Events}.WithDefaults()
	tc.BadRate = 0
	tc.ClickstreamTopic, tc.TransactionsTopic = clickstreamTopic, transactionsTopic
	gen, err := traffic.New(tc)
	if err != nil {
		return nil, err
	}
	w := &Workload{Rows: map[string]int64{}, traffic: tc}
	parts := make([]partitioned, cfg.Partitions)
	for i := range parts {
		p := pipeline.NewProcessor("ablation", int32(i), [2]string{clickstreamTopic, transactionsTopic}, pipeline.DefaultRules(), func() time.Time { return clock })
		// Never caught up, so never idle, until the end.
		p.SetEnd(schemas.Clickstream, math.MaxInt64)
		p.SetEnd(schemas.Transactions, math.MaxInt64)
		parts[i].proc = p
	}
	router := [2]kgo.TopicPartitioner{kgo.StickyKeyPartitioner(nil).ForTopic(clickstreamTopic), kgo.StickyKeyPartitioner(nil).ForTopic(transactionsTopic)}
	var r traffic.Record
	for gen.Next(&r) {
		t := schemas.Clickstream
		if r.Topic == transactionsTopic {
			t = schemas.Transactions
		}
		i := router[t].Partition(&kgo.Record{Key: r.Key}, cfg.Partitions)
		pt := &parts[i]
		if err := pt.proc.Add(t, r.Key, r.Value, pt.next[t], clock); err != nil {
			return nil, fmt.Errorf("generated record rejected: %v", err)
		}
		pt.next[t]++
		w.Records++
		if (pt.next[0]+pt.next[1])&255 == 0 {
			pt.proc.Advance(clock)
		}
		w.cutIfDue(parts, cfg)
	}
	for i := range parts {
		parts[i].proc.SetEnd(schemas.Clickstream, 0)
		parts[i].proc.SetEnd(schemas.Transactions, 0)
		parts[i].proc.Advance(clock.Add(time.Hour)) // both inputs idle: every event and session released
	}
	w.cut(parts, true)
	for i := range parts {
		parts[i].proc.Close()
	}
	return w, nil
}

// cutIfDue flushes every partition when their rows reach BatchRows and
// checkpoints every CheckpointRecords records.
func (w *Workload) cutIfDue(parts []partitioned, cfg WorkloadConfig) {
	if cfg.CheckpointRecords > 0 && w.Records%int64(cfg.CheckpointRecords) == 0 {
		w.cut(parts, true)
		return
	}
	n := 0
	for i := range parts {
		n += parts[i].proc.Rows()
	}
	if n >= cfg.BatchRows {
		w.cut(parts, false)
	}
}

// cut takes every partition's rows (and with withState its checkpoint)
// as one write.
func (w *Workload) cut(parts []partitioned, withState bool) {
	batches := make([]*rows.Batch, 0, len(parts))
	for i := range parts {
		var b *rows.Batch
		if withState {
			b, _ = parts[i].proc.Cut()
		} else {
			b = parts[i].proc.Flush()
		}
		batches = append(batches, b)
		for _, t := range rows.Tables {
			w.Rows[t.TableName()] += int64(t.Len(b))
		}
	}
	w.Writes = append(w.Writes, batches)
}
