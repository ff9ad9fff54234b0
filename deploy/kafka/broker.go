// Package kafka runs franz-go's kfake as an embedded Kafka-protocol broker
// for the demo, the tests and `funnelhouse broker`. It speaks the real wire
// protocol, so any Kafka client (kcat, another funnelhouse process) can use
// it. Production points --brokers at a real cluster instead.
package kafka

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Config configures the embedded broker.
type Config struct {
	// Listen is the loopback host:port; port 0 picks a free one.
	Listen string
	// DataDir keeps records and committed offsets across restarts; empty
	// keeps everything in memory.
	DataDir string
	// Topics are created with Partitions partitions each (created
	// explicitly: kfake does not persist auto-created topics).
	Topics     []string
	Partitions int
	// MinSessionTimeout lowers the broker's minimum group session timeout
	// (Kafka's default 6s) so tests can detect dead members quickly.
	MinSessionTimeout time.Duration
	// TLS, when set, makes the broker speak TLS only.
	TLS *tls.Config
	// Users, when set, enables SASL with these superusers; a user is
	// {mechanism, name, password} with mechanism PLAIN, SCRAM-SHA-256 or
	// SCRAM-SHA-512.
	Users [][3]string
	// ClientOpts are what clients need to reach the broker (TLS, SASL); the
	// broker uses them to create its topics.
	ClientOpts []kgo.Opt
}

// Broker is a running embedded broker.
type Broker struct {
	cluster *kfake.Cluster
}

// Start starts the broker and creates its topics.
func Start(ctx context.Context, cfg Config) (*Broker, error) {
	host, portText, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("invalid --listen %q: %w", cfg.Listen, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("invalid --listen %q: bad port", cfg.Listen)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("invalid --listen %q: the embedded broker listens on loopback only", cfg.Listen)
	}
	if cfg.Partitions <= 0 {
		return nil, fmt.Errorf("--partitions must be positive, got %d", cfg.Partitions)
	}
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.Ports(port)}
	if cfg.DataDir != "" {
		opts = append(opts, kfake.DataDir(cfg.DataDir), kfake.SyncWrites())
	}
	if cfg.MinSessionTimeout > 0 {
		opts = append(opts, kfake.GroupMinSessionTimeout(cfg.MinSessionTimeout))
	}
	if cfg.TLS != nil {
		opts = append(opts, kfake.TLS(cfg.TLS))
	}
	if len(cfg.Users) > 0 {
		opts = append(opts, kfake.EnableSASL())
		for _, u := range cfg.Users {
			opts = append(opts, kfake.Superuser(u[0], u[1], u[2]))
		}
	}
	cluster, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("cannot start the embedded broker on %s: %w", cfg.Listen, err)
	}
	b := &Broker{cluster: cluster}
	if err := CreateTopics(ctx, b.Addrs(), cfg.Partitions, cfg.Topics, cfg.ClientOpts...); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// Addrs are the broker's listen addresses, for --brokers.
func (b *Broker) Addrs() []string { return b.cluster.ListenAddrs() }

// Close stops the broker.
func (b *Broker) Close() { b.cluster.Close() }

// CreateTopics creates topics with the given partition count; a topic that
// already exists with that count is fine, with another count an error.
func CreateTopics(ctx context.Context, brokers []string, partitions int, topics []string, opts ...kgo.Opt) error {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	resp, err := adm.CreateTopics(ctx, int32(partitions), 1, nil, topics...)
	if err != nil {
		return fmt.Errorf("cannot create topics %v: %w", topics, err)
	}
	var errs []error
	for _, t := range resp.Sorted() {
		if t.Err == nil {
			continue
		}
		if !errors.Is(t.Err, kerr.TopicAlreadyExists) {
			errs = append(errs, fmt.Errorf("cannot create topic %q: %w", t.Topic, t.Err))
			continue
		}
		md, err := adm.Metadata(ctx, t.Topic)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if n := len(md.Topics[t.Topic].Partitions); n != partitions {
			errs = append(errs, fmt.Errorf("topic %q exists with %d partitions, want %d", t.Topic, n, partitions))
		}
	}
	return errors.Join(errs...)
}
