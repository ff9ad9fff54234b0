package clickhouse

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/funnelhouse/funnelhouse/pipeline/rows"
	fhsql "github.com/funnelhouse/funnelhouse/sql"
)

// TestWriteRowsAtOnceStateLast: a write's row INSERTs run two at a time,
// the events of a large flush in two of them, and pipeline_state's begins
// only once every one of them is acknowledged; every row lands once. Each
// row INSERT, its rows sent, waits at its hook until a second has begun
// (5 s at most): one after the other, none would.
func TestWriteRowsAtOnceStateLast(t *testing.T) {
	dsn := os.Getenv("FUNNELHOUSE_TEST_CLICKHOUSE")
	if dsn == "" {
		t.Skip("FUNNELHOUSE_TEST_CLICKHOUSE is not set: run `make test`")
	}
	ctx := context.Background()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	db := fmt.Sprintf("fh_atonce_%d", os.Getpid())
	u.Path = "/" + db
	admin, _, err := Connect(ctx, Endpoint{DSN: u.String()})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+db); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db) })
	if _, err := fhsql.Migrate(ctx, admin, db); err != nil {
		t.Fatal(err)
	}

	const rowInserts = 4 // events in two, sessions, transitions
	var mu sync.Mutex
	var points []string
	begun, inFlight, mostInFlight := 0, 0, 0
	twoBegun := make(chan struct{})
	hook := func(p string) {
		rowInsert := !strings.HasSuffix(p, ":"+rows.StateTable.Name)
		during := strings.HasPrefix(p, "during-insert:")
		mu.Lock()
		points = append(points, p)
		switch {
		case rowInsert && during:
			inFlight++
			mostInFlight = max(mostInFlight, inFlight)
			if begun++; begun == 2 {
				close(twoBegun)
			}
		case rowInsert:
			inFlight--
		}
		mu.Unlock()
		if rowInsert && during {
			select {
			case <-twoBegun:
			case <-time.After(5 * time.Second):
			}
		}
	}
	sink, err := Open(ctx, Config{Endpoint: Endpoint{DSN: u.String()}, Hook: hook})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	batches := []*rows.Batch{testBatch(1, 20_000), testBatch(2, 20_000)} // 40,000 events: two INSERTs
	if err := sink.Write(ctx, batches); err != nil {
		t.Fatal(err)
	}

	t.Logf("hook points: %v", points)
	if n := len(slices.DeleteFunc(slices.Clone(points), func(p string) bool { return p != "during-insert:"+rows.EventsTable.Name })); n != 2 {
		t.Errorf("%d INSERTs into events, want 2: %v", n, points)
	}
	if mostInFlight != 2 {
		t.Errorf("%d row INSERTs in flight at most, want 2: %v", mostInFlight, points)
	}
	if n := slices.Index(points, "during-insert:"+rows.StateTable.Name); n != 2*rowInserts {
		t.Errorf("the state INSERT began at hook point %d, want %d (after every row INSERT's acknowledgement): %v", n, 2*rowInserts, points)
	}
	for table, want := range map[string]int{"events": 40_000, "sessions": 10_000, "lifecycle_transitions": 10_000, "pipeline_state": 2} {
		var got uint64
		if err := admin.QueryRow(ctx, "SELECT count() FROM "+db+"."+table).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != uint64(want) {
			t.Errorf("%s: %d rows, want %d", table, got, want)
		}
	}
}
