package perf

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/funnelhouse/funnelhouse/bench/expected"
	"github.com/funnelhouse/funnelhouse/bench/feed"
	"github.com/funnelhouse/funnelhouse/bench/querytime"
	"github.com/funnelhouse/funnelhouse/bench/traffic"
	"github.com/funnelhouse/funnelhouse/bench/verify"
	"github.com/funnelhouse/funnelhouse/deploy/kafka"
	chsink "github.com/funnelhouse/funnelhouse/sinks/clickhouse"
)

// TestQueryTimePeer measures the query-time peer on ~20k generated events
// (duplicates included, no late events: delivery delay 5 min, lateness
// 10 min) against the ClickHouse of FUNNELHOUSE_TEST_CLICKHOUSE: every
// record is ingested, the dashboard is timed, and every view returns rows
// and equals the expected computation, all four being exact on such
// traffic (see bench/querytime); a wrong expected row is found and
// reported.
func TestQueryTimePeer(t *testing.T) {
	base := os.Getenv("FUNNELHOUSE_TEST_CLICKHOUSE")
	if base == "" {
		t.Skip("FUNNELHOUSE_TEST_CLICKHOUSE is not set: run `make test`, which starts a local ClickHouse")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cs, tx := "qt.clickstream", "qt.transactions"
	broker, err := kafka.Start(ctx, kafka.Config{Listen: "127.0.0.1:0", Partitions: 2, Topics: []string{cs, tx}})
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	tc := traffic.Config{Seed: 11, Events: 20_000, ClickstreamTopic: cs, TransactionsTopic: tx}.WithDefaults()
	tc.BadRate = 0 // the Kafka engine of 18.16 cannot skip malformed records
	expect := verify.NewExpectation(cs, tx, time.Now)
	if _, err := feed.Traffic(ctx, broker.Addrs(), tc, func(r *traffic.Record) { expect.Add(r.Topic, r.Key, r.Value) }); err != nil {
		t.Fatal(err)
	}
	if expect.Duplicates == 0 {
		t.Fatal("the traffic has no duplicates: the dedup is not tested")
	}
	want := expect.Compute(expected.Config{SessionGap: querytime.SessionGap, ChurnAfter: querytime.ChurnAfter,
		HorizonMs: time.Now().Add(-querytime.Lateness).UnixMilli()})

	var churned, reactivated int
	for _, c := range want.Churn {
		churned, reactivated = churned+int(c.Churned), reactivated+int(c.Reactivated)
	}
	if churned == 0 || reactivated == 0 {
		t.Fatalf("the traffic has %d churns and %d reactivations: churn_monthly is not tested", churned, reactivated)
	}
	// One wrong row in the expected bounce_daily: the comparison must
	// find exactly that one, and report it.
	want.Bounce[len(want.Bounce)/2].Sessions++

	dsn := fmt.Sprintf("%s/fh_qt_%d", strings.TrimRight(base, "/"), os.Getpid())
	b := &bench{cfg: Config{Endpoint: chsink.Endpoint{DSN: dsn}}, brokers: broker.Addrs()}
	r, err := b.queryTime(ctx, cs, tx, expect, want)
	if err != nil {
		t.Fatal(err)
	}
	if r.Rows != expect.Records || r.RecordsPerSec <= 0 {
		t.Errorf("ingested %d rows of %d records at %.0f records/s", r.Rows, expect.Records, r.RecordsPerSec)
	}
	if r.Dashboard == nil || r.Dashboard.Ms <= 0 || len(r.Dashboard.ViewMs) != len(querytime.Views) {
		t.Errorf("dashboard not timed: %+v", r.Dashboard)
	}
	if len(r.ViewChecks) != len(querytime.Views) {
		t.Fatalf("%d view checks, want %d: %+v", len(r.ViewChecks), len(querytime.Views), r.ViewChecks)
	}
	for _, c := range r.ViewChecks {
		wantDiffering := 0
		if c.View == "bounce_daily" {
			wantDiffering = 1
		}
		if c.Rows == 0 || c.Error != "" || c.Differing != wantDiffering {
			t.Errorf("%s: %d rows (%d expected), %d differ, want %d: %s%s", c.View, c.Rows, c.WantRows, c.Differing, wantDiffering, c.Error, c.First)
		}
	}
	var out bytes.Buffer
	Print(&out, &Report{Results: []*Result{r}})
	for _, line := range []string{"query-time funnel_daily: equal", "query-time churn_monthly: equal", "query-time revenue_daily: equal",
		"query-time bounce_daily: 1 of", "likely: " + querytime.Limits["bounce_daily"]} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("the report lacks %q:\n%s", line, out.String())
		}
	}
	t.Logf("%s", out.String())
}
