package verify

import (
	"context"
	"fmt"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/funnelhouse/funnelhouse/bench/expected"
	"github.com/funnelhouse/funnelhouse/pipeline"
	"github.com/funnelhouse/funnelhouse/schemas"
)

// StoredCounts sums the counters of every partition's newest checkpoint of
// a consumer group: what the group processed, each record exactly once.
func StoredCounts(ctx context.Context, conn driver.Conn, db, group string) (pipeline.Stats, error) {
	var total pipeline.Stats
	rows, err := conn.Query(ctx, "SELECT data FROM "+db+".pipeline_state FINAL WHERE consumer_group = ? AND kind = 'checkpoint'", group)
	if err != nil {
		return total, err
	}
	defer rows.Close()
	for rows.Next() {
		var data string
		if err := rows.Scan(&data); err != nil {
			return total, err
		}
		s, err := pipeline.CheckpointStats([]byte(data))
		if err != nil {
			return total, err
		}
		total.Add(&s)
	}
	return total, rows.Err()
}

// Accounting checks that every produced record is counted exactly once
// in the stored counters: as an event row, a dead letter or a duplicate.
func Accounting(ctx context.Context, conn driver.Conn, db, group string, x *Expectation) error {
	s, err := StoredCounts(ctx, conn, db, group)
	if err != nil {
		return err
	}
	var events, dead uint64
	for _, n := range s.Events {
		events += n
	}
	for _, n := range s.DeadLetters {
		dead += n
	}
	var rows uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM "+db+".events FINAL").Scan(&rows); err != nil {
		return err
	}
	read := s.Records[0] + s.Records[1]
	switch {
	case read != uint64(x.Records):
		return fmt.Errorf("stored counters say %d records were read, %d were produced", read, x.Records)
	case events+dead+s.Duplicates != read:
		return fmt.Errorf("%d events + %d dead letters + %d duplicates != %d records read", events, dead, s.Duplicates, read)
	case events != rows || rows != uint64(len(x.Events)):
		// An event is counted when it is read, and written when the
		// watermark passes it: held ones are in the checkpoint, not in
		// events, until a later run releases them.
		return fmt.Errorf("%d events counted, %d rows in events, %d expected; %d events held for the watermark in the last checkpoints", events, rows, len(x.Events), s.Held)
	case dead != uint64(x.RejectedTotal()) || s.Duplicates != uint64(x.Duplicates):
		return fmt.Errorf("%d dead letters and %d duplicates counted, want %d and %d", dead, s.Duplicates, x.RejectedTotal(), x.Duplicates)
	}
	return nil
}

// MissingEvents returns the events of want that have no row in events:
// what a failed accounting check lost, named so that its records can be
// found (Views names only their expected session and stage).
func MissingEvents(ctx context.Context, conn driver.Conn, db string, want []schemas.Event) ([]schemas.Event, error) {
	rows, err := conn.Query(ctx, "SELECT DISTINCT visitor_id, event_id FROM "+db+".events")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	have := map[uint64]bool{}
	for rows.Next() {
		var visitor, id string
		if err := rows.Scan(&visitor, &id); err != nil {
			return nil, err
		}
		have[expected.EventHash(visitor, id)] = true
	}
	var missing []schemas.Event
	for _, e := range want {
		if !have[expected.EventHash(e.VisitorID, e.EventID)] {
			missing = append(missing, e)
		}
	}
	return missing, rows.Err()
}
