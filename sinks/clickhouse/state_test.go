package clickhouse_test

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"testing"

	"github.com/funnelhouse/funnelhouse/bench/e2e"
	"github.com/funnelhouse/funnelhouse/pipeline/rows"
	chsink "github.com/funnelhouse/funnelhouse/sinks/clickhouse"
)

// TestLoadVisitors reads forgotten visitors back from a real ClickHouse:
// the newest row of each key asked for (several epochs written), none of
// another partition or group, keys that need quoting, and more keys than
// one IN list holds.
func TestLoadVisitors(t *testing.T) {
	dsn := os.Getenv("FUNNELHOUSE_TEST_CLICKHOUSE")
	if dsn == "" {
		t.Skip("FUNNELHOUSE_TEST_CLICKHOUSE is not set: run `make test`")
	}
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = fmt.Sprintf("/fh_loadvisitors_%d", os.Getpid())
	ctx := context.Background()
	endpoint := chsink.Endpoint{DSN: u.String()}
	if err := e2e.ResetDatabase(ctx, endpoint, io.Discard); err != nil {
		t.Fatal(err)
	}
	sink, err := chsink.Open(ctx, chsink.Config{Endpoint: endpoint})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()

	hostile := []string{`it's`, `back\slash`, `"quoted"`, "tab\there", "ünïcödé ✓", `?`, `') OR 1=1 --`}
	var keys []string
	for i := range 4500 {
		keys = append(keys, fmt.Sprintf("v%05d", i))
	}
	keys = append(keys, hostile...)
	for epoch := uint64(1); epoch <= 3; epoch++ {
		b := rows.GetBatch()
		for _, k := range keys {
			b.State.Append(&rows.State{Group: "g", Partition: 1, Kind: rows.StateVisitor, Key: k, Epoch: epoch, Data: fmt.Sprintf("%s@%d", k, epoch)})
			b.State.Append(&rows.State{Group: "g", Partition: 2, Kind: rows.StateVisitor, Key: k, Epoch: 9, Data: "other partition"})
			b.State.Append(&rows.State{Group: "h", Partition: 1, Kind: rows.StateVisitor, Key: k, Epoch: 9, Data: "other group"})
		}
		if err := sink.Write(ctx, []*rows.Batch{b}); err != nil {
			t.Fatal(err)
		}
		rows.PutBatch(b)
	}
	ask := append(slices.Clone(keys), "never-written")
	got, err := sink.LoadVisitors(ctx, "g", 1, ask)
	if err != nil {
		t.Fatal(err)
	}
	byKey := map[string]rows.State{}
	for _, r := range got {
		if _, dup := byKey[r.Key]; dup {
			t.Errorf("key %q returned twice", r.Key)
		}
		byKey[r.Key] = r
	}
	if len(byKey) != len(keys) {
		t.Errorf("%d rows for %d keys written and one not", len(byKey), len(keys))
	}
	for _, k := range keys {
		r, ok := byKey[k]
		if want := fmt.Sprintf("%s@3", k); !ok || r.Data != want || r.Epoch != 3 || r.Kind != rows.StateVisitor || r.Partition != 1 {
			t.Errorf("key %q: got %+v (found %v), want data %q of epoch 3", k, r, ok, want)
		}
	}
}
