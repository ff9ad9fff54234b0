package perf

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/funnelhouse/funnelhouse/bench/traffic"
)

// LiveTraffic says what the live producer sends: bench/traffic's visitors
// and sessions, in the generator's delivery order, each event's ts rewritten
// to the wall clock when it is produced.
const LiveTraffic = "bench/traffic visitors and sessions in delivery order, ts rewritten to the wall clock at production; " +
	"no duplicates, no malformed records"

// probesPerSecond is how many clickstream records a second are timed from
// append to visible in events: enough for a p99 over a minute, few enough
// that the look-ups cost ClickHouse nothing measurable.
const probesPerSecond = 20

// liveProducer sends real-time traffic at a fixed rate.
type liveProducer struct {
	cl       *kgo.Client
	rate     int
	duration time.Duration
	cs, tx   string
	seed     int64
	probes   chan<- probe

	sent, acked, failed atomic.Int64
	firstErr            atomic.Pointer[error]
}

// tick is how often the producer catches up with its schedule: at 20,000
// events/s, batches of 100 records.
const tick = 5 * time.Millisecond

// run produces rate events a second for duration, on a schedule fixed from
// its start (a slow moment is caught up at the next tick, so the mean rate
// holds), then waits for every record to be acknowledged.
func (p *liveProducer) run(ctx context.Context) error {
	gen, err := p.generator(0)
	if err != nil {
		return err
	}
	var rec traffic.Record
	var clicks int64
	probeEvery := int64(max(1, p.rate/probesPerSecond))
	t := time.NewTicker(tick)
	defer t.Stop()
	start := time.Now()
	for reseeds := int64(1); ; {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		elapsed := time.Since(start)
		if elapsed >= p.duration {
			break
		}
		for due := int64(float64(p.rate) * elapsed.Seconds()); p.sent.Load() < due; p.sent.Add(1) {
			for !gen.Next(&rec) {
				// The generator ends after its Events: go on with new
				// visitors (another seed gives other ids).
				if gen, err = p.generator(reseeds); err != nil {
					return err
				}
				reseeds++
			}
			probe := rec.Topic == p.cs && clicks%probeEvery == 0
			if rec.Topic == p.cs {
				clicks++
			}
			if err := p.produce(ctx, &rec, probe); err != nil {
				return err
			}
		}
	}
	return p.cl.Flush(ctx)
}

// generator is the traffic of the seed's n-th continuation: in order (the
// ts are rewritten anyway), no duplicates and no malformed records, so
// that every record is one event held for the lateness.
func (p *liveProducer) generator(n int64) (*traffic.Generator, error) {
	tc := traffic.Config{Seed: p.seed + n, Events: max(1000, int(float64(p.rate)*p.duration.Seconds()))}.WithDefaults()
	tc.BadRate, tc.DupRate, tc.MaxDelay = 0, 0, 0
	tc.ClickstreamTopic, tc.TransactionsTopic = p.cs, p.tx
	return traffic.New(tc)
}

// produce sends one record with its ts set to now; a probe reports its
// append time (the record's Kafka timestamp) once acknowledged.
func (p *liveProducer) produce(ctx context.Context, rec *traffic.Record, isProbe bool) error {
	value, err := withTs(make([]byte, 0, len(rec.Value)+8), rec.Value, time.Now())
	if err != nil {
		return err
	}
	r := &kgo.Record{Topic: rec.Topic, Key: bytes.Clone(rec.Key), Value: value}
	var pr probe
	if isProbe {
		var ev struct {
			EventID string `json:"event_id"`
		}
		if err := json.Unmarshal(value, &ev); err != nil {
			return fmt.Errorf("probe record: %w", err)
		}
		pr = probe{visitor: string(r.Key), event: ev.EventID}
	}
	p.cl.Produce(ctx, r, func(r *kgo.Record, err error) {
		if err != nil {
			p.failed.Add(1)
			p.firstErr.CompareAndSwap(nil, &err)
			return
		}
		p.acked.Add(1)
		if isProbe {
			pr.appended = r.Timestamp
			select {
			case p.probes <- pr:
			default: // the reader is behind: one probe fewer, never a blocked producer
			}
		}
	})
	return nil
}

// err is the first failed produce, nil when every record was acknowledged.
func (p *liveProducer) err() error {
	if e := p.firstErr.Load(); e != nil {
		return fmt.Errorf("%d records not produced: %w", p.failed.Load(), *e)
	}
	return nil
}

var tsField = []byte(`,"ts":`)

// withTs appends value to dst with its ts replaced by now (RFC 3339, UTC,
// milliseconds). The generator writes event_id, type and ts first, and
// neither of the first two can hold `,"ts":`; ts is a string or an integer
// (epoch milliseconds).
func withTs(dst, value []byte, now time.Time) ([]byte, error) {
	i := bytes.Index(value, tsField)
	if i < 0 {
		return nil, errors.New("generated record without a ts field: " + string(value))
	}
	start := i + len(tsField)
	end := start
	switch {
	case end < len(value) && value[end] == '"':
		j := bytes.IndexByte(value[end+1:], '"')
		if j < 0 {
			return nil, errors.New("generated record with an unterminated ts: " + string(value))
		}
		end += j + 2
	default:
		for end < len(value) && value[end] >= '0' && value[end] <= '9' {
			end++
		}
	}
	dst = append(dst, value[:start]...)
	dst = append(dst, '"')
	dst = now.UTC().AppendFormat(dst, "2006-01-02T15:04:05.000Z")
	dst = append(dst, '"')
	return append(dst, value[end:]...), nil
}
