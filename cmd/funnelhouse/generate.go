package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/funnelhouse/funnelhouse/bench/feed"
	"github.com/funnelhouse/funnelhouse/bench/traffic"
)

// trafficFlags are the generator's flags, shared by generate, demo and bench.
type trafficFlags struct {
	cfg   traffic.Config
	start string
}

func (f *trafficFlags) register(fs *flag.FlagSet, events int) {
	d := traffic.Config{}.WithDefaults()
	fs.Int64Var(&f.cfg.Seed, "seed", 1, "random seed: the same seed and flags give the same records")
	fs.IntVar(&f.cfg.Events, "events", events, "approximate number of valid events")
	fs.StringVar(&f.start, "start", d.Start.Format("2006-01-02"), "first visitor arrival (UTC date)")
	fs.IntVar(&f.cfg.Days, "days", d.Days, "visitors arrive over this many days")
	durationVar(fs, &f.cfg.MaxDelay, "max-delay", d.MaxDelay, "out-of-order delivery: each record arrives up to this late (keep it below --lateness); 0 = in order")
	fs.Float64Var(&f.cfg.DupRate, "dup-rate", d.DupRate, "share of events sent twice")
	fs.Float64Var(&f.cfg.BadRate, "bad-rate", d.BadRate, "share of extra malformed records (they go to the dead-letter topic)")
}

// config returns the traffic configuration for the given topics.
func (f *trafficFlags) config(clickstream, transactions string) (traffic.Config, error) {
	start, err := time.Parse("2006-01-02", f.start)
	if err != nil {
		return traffic.Config{}, fmt.Errorf("invalid --start %q: want YYYY-MM-DD", f.start)
	}
	c := f.cfg
	c.Start = start
	c.ClickstreamTopic, c.TransactionsTopic = clickstream, transactions
	// WithDefaults fills zero values, so pass the zero-meaningful
	// fields through it and restore them.
	maxDelay, dup, bad := c.MaxDelay, c.DupRate, c.BadRate
	c = c.WithDefaults()
	c.MaxDelay, c.DupRate, c.BadRate = maxDelay, dup, bad
	return c, c.Validate()
}

func generateCmd(ctx context.Context, args []string) error {
	fs := newFlagSet("generate", "Produce synthetic, realistic traffic to Kafka: visitors arriving over --days, sessions,\nsign-ups, orders, surveys, reviews, referrals, cancellations, churn and return; with\nout-of-order delivery, duplicates and malformed records on request. Deterministic for --seed.")
	var tf trafficFlags
	tf.register(fs, traffic.DefaultEvents)
	brokers := []string{"127.0.0.1:9092"}
	fs.Var(listFlag{&brokers}, "brokers", "Kafka bootstrap brokers, a comma-separated list of `host:port`")
	clickstream := fs.String("clickstream-topic", "clickstream", "topic for clickstream events")
	transactions := fs.String("transactions-topic", "transactions", "topic for transaction events")
	var ks kafkaSecurity
	ks.register(fs)
	if err := parseWithEnv(fs, args); err != nil {
		return err
	}
	opts, err := ks.opts()
	if err != nil {
		return err
	}
	cfg, err := tf.config(*clickstream, *transactions)
	if err != nil {
		return err
	}
	stats, err := feed.Traffic(ctx, brokers, cfg, nil, opts...)
	if err != nil {
		return err
	}
	fmt.Printf("produced %d records: %d valid events, %d duplicates, %d malformed, %d visitors\n",
		stats.Records, stats.Valid, stats.Duplicates, stats.Malformed, stats.Visitors)
	return nil
}
