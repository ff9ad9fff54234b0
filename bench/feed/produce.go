// Package feed is the Kafka side of the harness: it produces generated
// traffic (or given records) to the brokers and watches a consumer group
// commit it.
package feed

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/funnelhouse/funnelhouse/bench/progress"
	"github.com/funnelhouse/funnelhouse/bench/traffic"
)

// Traffic generates cfg's records and produces them to the brokers,
// waiting until every one is acknowledged. keep, when not nil, sees each
// record (its slices are only valid during the call).
func Traffic(ctx context.Context, brokers []string, cfg traffic.Config, keep func(*traffic.Record), opts ...kgo.Opt) (traffic.Stats, error) {
	gen, err := traffic.New(cfg)
	if err != nil {
		return traffic.Stats{}, err
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.ProducerBatchCompression(kgo.Lz4Compression()),
		kgo.ProducerLinger(0),
		kgo.MaxBufferedRecords(100_000),
	}, opts...)...)
	if err != nil {
		return traffic.Stats{}, fmt.Errorf("cannot create Kafka producer for %v: %w", brokers, err)
	}
	defer cl.Close()
	var (
		acked    atomic.Int64
		errOnce  sync.Once
		firstErr error
	)
	prog := progress.New("produce", int64(float64(cfg.Events)*(1+cfg.DupRate+cfg.BadRate)))
	var rec traffic.Record
	n := int64(0)
	for gen.Next(&rec) {
		if ctx.Err() != nil {
			return gen.Stats(), ctx.Err()
		}
		if keep != nil {
			keep(&rec)
		}
		r := &kgo.Record{Topic: rec.Topic, Value: append([]byte(nil), rec.Value...)}
		if rec.Key != nil {
			r.Key = append([]byte(nil), rec.Key...)
		}
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			if err != nil {
				errOnce.Do(func() { firstErr = err })
			}
			acked.Add(1)
		})
		n++
		prog.Update(acked.Load())
	}
	if err := cl.Flush(ctx); err != nil {
		return gen.Stats(), err
	}
	prog.Done(n)
	if firstErr != nil {
		return gen.Stats(), fmt.Errorf("cannot produce generated traffic: %w", firstErr)
	}
	return gen.Stats(), nil
}

// Records produces records synchronously, in order.
func Records(ctx context.Context, brokers []string, recs []traffic.Record, opts ...kgo.Opt) error {
	if len(recs) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ProducerBatchCompression(kgo.Lz4Compression())}, opts...)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	krecs := make([]*kgo.Record, len(recs))
	for i, r := range recs {
		krecs[i] = &kgo.Record{Topic: r.Topic, Key: r.Key, Value: r.Value}
	}
	return cl.ProduceSync(ctx, krecs...).FirstErr()
}
