package perf

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/funnelhouse/funnelhouse/bench/e2e"
	"github.com/funnelhouse/funnelhouse/bench/traffic"
	chsink "github.com/funnelhouse/funnelhouse/sinks/clickhouse"
)

// latency runs a child against live traffic at LatencyRate and
// measures, for a sample of records, the time from the record's append
// (its Kafka timestamp) to its row being visible in events.
func (b *bench) latency(ctx context.Context, rep *Report) error {
	e, brokers := b.cfg.Endpoint, b.brokers
	if err := e2e.ResetDatabase(ctx, e, os.Stdout); err != nil {
		return err
	}
	conn, db, err := chsink.Connect(ctx, e)
	if err != nil {
		return err
	}
	defer conn.Close()
	cs, tx, dlq := "live.clickstream", "live.transactions", "live.dlq"
	cmd := exec.CommandContext(ctx, b.cfg.Bin, "run", "--brokers", strings.Join(brokers, ","), "--clickhouse", e.DSN, "--group", "bench-live",
		"--clickstream-topic", cs, "--transactions-topic", tx, "--dlq-topic", dlq, "--idle-advance", "1s", "--metrics-addr", "",
		"--flush-interval", "200ms")
	cmd.Env = childEnv(e)
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }()

	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	// Live traffic, delivered in order at the given rate; every 100th
	// clickstream record is a probe. Journeys run for months after the last
	// arrival, so the arrivals start early enough for every ts to be past.
	tc := traffic.Config{Seed: b.cfg.Seed + 1, Events: b.cfg.LatencyRate * b.cfg.LatencySeconds, Start: time.Now().AddDate(0, 0, -400).Truncate(24 * time.Hour), Days: 30}.WithDefaults()
	tc.BadRate, tc.DupRate, tc.MaxDelay = 0, 0, 0
	tc.ClickstreamTopic, tc.TransactionsTopic = cs, tx
	gen, err := traffic.New(tc)
	if err != nil {
		return err
	}
	probes := make(chan probe, 1<<16)
	var rec traffic.Record
	var ev struct {
		EventID string `json:"event_id"`
	}
	start := time.Now()
	sent := 0
	time.Sleep(2 * time.Second) // let the member join
	prodDone := make(chan struct{})
	go func() {
		defer close(prodDone)
		for ctx.Err() == nil && gen.Next(&rec) {
			due := start.Add(time.Duration(float64(sent) / float64(b.cfg.LatencyRate) * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				time.Sleep(d)
			}
			r := &kgo.Record{Topic: rec.Topic, Key: append([]byte(nil), rec.Key...), Value: append([]byte(nil), rec.Value...)}
			if sent%100 == 0 && rec.Topic == cs && json.Unmarshal(rec.Value, &ev) == nil {
				visitor := string(rec.Key)
				id := ev.EventID
				cl.Produce(ctx, r, func(r *kgo.Record, err error) {
					if err == nil {
						probes <- probe{visitor, id, r.Timestamp}
					}
				})
			} else {
				cl.Produce(ctx, r, nil)
			}
			sent++
		}
		_ = cl.Flush(ctx)
	}()
	var latencies []float64
	pending := map[string]probe{}
	deadline := time.Now().Add(time.Duration(b.cfg.LatencySeconds)*time.Second + 90*time.Second)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		draining := false
		select {
		case <-prodDone:
			draining = true
		default:
		}
	collect:
		for {
			select {
			case p := <-probes:
				pending[p.visitor+"\x00"+p.event] = p
			default:
				break collect
			}
		}
		if len(pending) > 0 {
			visible, err := visibleProbes(ctx, conn, db, pending)
			now := time.Now()
			if err == nil {
				for _, k := range visible {
					latencies = append(latencies, float64(now.Sub(pending[k].appended).Microseconds())/1000)
					delete(pending, k)
				}
			}
		}
		if draining && len(pending) == 0 && len(probes) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d probe events not visible after %s", len(pending), time.Duration(b.cfg.LatencySeconds)*time.Second+90*time.Second)
		}
		time.Sleep(20 * time.Millisecond)
	}
	slices.Sort(latencies)
	rep.LatencyN = len(latencies)
	rep.LatencyRate = b.cfg.LatencyRate
	if len(latencies) > 0 {
		rep.LatencyP50 = latencies[len(latencies)/2]
		rep.LatencyP99 = latencies[len(latencies)*99/100]
	}
	return nil
}

// probe is a record whose visibility in events is timed.
type probe struct {
	visitor, event string
	appended       time.Time
}

// visibleProbes returns the keys of the pending probes whose rows are in
// events.
func visibleProbes(ctx context.Context, conn driver.Conn, db string, pending map[string]probe) ([]string, error) {
	visitors := make([]string, 0, len(pending))
	events := make([]string, 0, len(pending))
	for _, p := range pending {
		visitors = append(visitors, p.visitor)
		events = append(events, p.event)
	}
	rows, err := conn.Query(ctx, "SELECT visitor_id, event_id FROM "+db+".events WHERE has(?, visitor_id) AND has(?, event_id)", visitors, events)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v, e string
		if err := rows.Scan(&v, &e); err != nil {
			return nil, err
		}
		if _, ok := pending[v+"\x00"+e]; ok {
			out = append(out, v+"\x00"+e)
		}
	}
	return out, rows.Err()
}
