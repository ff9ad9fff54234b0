package pipeline

import (
	"context"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestCheckTopicsRefusesDifferentPartitionCounts(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx := context.Background()
	for topic, n := range map[string]int32{"cs": 4, "tx": 3, "tx4": 4, "dlq": 1} {
		if _, err := adm.CreateTopic(ctx, n, 1, nil, topic); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := CheckTopics(ctx, adm, "cs", "tx", "dlq"); err == nil ||
		!strings.Contains(err.Error(), `"cs" has 4 partitions, "tx" has 3`) {
		t.Errorf("different counts: got %v, want a co-partitioning error naming both", err)
	}
	if _, err := CheckTopics(ctx, adm, "cs", "missing", "dlq"); err == nil || !strings.Contains(err.Error(), `--transactions-topic topic "missing"`) {
		t.Errorf("missing topic: got %v, want an error naming the flag and topic", err)
	}
	if n, err := CheckTopics(ctx, adm, "cs", "tx4", "dlq"); err != nil || n != 4 {
		t.Errorf("equal counts: got %d, %v", n, err)
	}
}

func TestConfigValidateNamesTheFlag(t *testing.T) {
	cfg := Config{Brokers: nil, ClickstreamTopic: "a", TransactionsTopic: "a"}
	cfg.setDefaults()
	cfg.Rules.Lateness = -1
	err := cfg.Validate()
	for _, want := range []string{"--brokers", "--clickstream-topic and --transactions-topic", "--lateness must be positive"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]string{"90d": "2160h0m0s", "30m": "30m0s", "1.5d": "36h0m0s", "2160h": "2160h0m0s"} {
		d, err := ParseDuration(in)
		if err != nil || d.String() != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %s", in, d, err, want)
		}
	}
	for _, in := range []string{"", "d", "90", "x30m"} {
		if _, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) succeeded", in)
		}
	}
}
