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
	if _, err := CheckTopics(ctx, adm, "cs", "missing", "dlq"); err == nil || !strings.Contains(err.Error(), `TransactionsTopic topic "missing"`) {
		t.Errorf("missing topic: got %v, want an error naming the field and topic", err)
	}
	if n, err := CheckTopics(ctx, adm, "cs", "tx4", "dlq"); err != nil || n != 4 {
		t.Errorf("equal counts: got %d, %v", n, err)
	}
}
