// Package status answers an operator's first questions about a running
// funnelhouse consumer group, from the broker and ClickHouse alone: who owns
// each partition, how far behind it is, when it last checkpointed and how
// large its state is; and whether the views are current. It is what
// `funnelhouse status` prints.
package status

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/funnelhouse/funnelhouse/pipeline"
)

// Config says where to look.
type Config struct {
	Admin    *kadm.Client
	Conn     driver.Conn
	Database string
	Group    string
	Topics   [2]string // clickstream, transactions
	// StuckAfter: a partition with unread records whose checkpoint is
	// older than this (or that has no owner) is stuck.
	StuckAfter time.Duration
}

// Partition is one partition number of both input topics.
type Partition struct {
	Partition  int32    `json:"partition"`
	Owner      string   `json:"owner"`     // instance id, else client id and host; "" when none
	Committed  [2]int64 `json:"committed"` // per input topic; -1 when none
	End        [2]int64 `json:"end"`
	Lag        int64    `json:"lag"`
	Epoch      uint64   `json:"checkpoint_epoch"`       // 0 when none
	AgeSeconds int64    `json:"checkpoint_age_seconds"` // -1 when none
	StateBytes uint64   `json:"state_bytes"`
	Held       uint64   `json:"held_events"`
	Stuck      bool     `json:"stuck"`
}

// View is one of the BI views.
type View struct {
	Name   string `json:"name"`
	Rows   uint64 `json:"rows"`
	Newest string `json:"newest"` // the newest day or month, "" when empty
}

// Report is the group's state at one moment.
type Report struct {
	Group      string      `json:"group"`
	Topics     [2]string   `json:"topics"`
	Members    int         `json:"members"`
	Partitions []Partition `json:"partitions"`
	Views      []View      `json:"views"`
}

// Stuck returns the partitions that are stuck.
func (r *Report) Stuck() []int32 {
	var out []int32
	for _, p := range r.Partitions {
		if p.Stuck {
			out = append(out, p.Partition)
		}
	}
	return out
}

// views are the BI views with the column that says how current each is.
var views = []struct{ name, newest string }{
	{"funnel_daily", "cohort_day"},
	{"bounce_daily", "day"},
	{"churn_monthly", "month"},
	{"revenue_daily", "day"},
}

// Gather reads the group from the broker and the checkpoints and views from
// ClickHouse.
func Gather(ctx context.Context, cfg Config) (*Report, error) {
	r := &Report{Group: cfg.Group, Topics: cfg.Topics}
	parts, err := r.readKafka(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := readCheckpoints(ctx, cfg, parts); err != nil {
		return nil, err
	}
	for _, p := range parts {
		p.Stuck = p.Lag > 0 && (p.Owner == "" || p.AgeSeconds < 0 || time.Duration(p.AgeSeconds)*time.Second > cfg.StuckAfter)
		r.Partitions = append(r.Partitions, *p)
	}
	sort.Slice(r.Partitions, func(i, j int) bool { return r.Partitions[i].Partition < r.Partitions[j].Partition })
	for _, v := range views {
		var row View
		row.Name = v.name
		q := fmt.Sprintf("SELECT count(), if(count() = 0, '', toString(max(%s))) FROM %s.%s", v.newest, cfg.Database, v.name)
		if err := cfg.Conn.QueryRow(ctx, q).Scan(&row.Rows, &row.Newest); err != nil {
			return nil, fmt.Errorf("cannot read view %s.%s: %w", cfg.Database, v.name, err)
		}
		r.Views = append(r.Views, row)
	}
	return r, nil
}

// readKafka returns the partitions with their owners, committed and end
// offsets, and lag.
func (r *Report) readKafka(ctx context.Context, cfg Config) (map[int32]*Partition, error) {
	ends, err := cfg.Admin.ListEndOffsets(ctx, cfg.Topics[0], cfg.Topics[1])
	if err != nil {
		return nil, fmt.Errorf("cannot list the end offsets of %s and %s: %w", cfg.Topics[0], cfg.Topics[1], err)
	}
	committed, err := cfg.Admin.FetchOffsets(ctx, cfg.Group)
	if err != nil {
		return nil, fmt.Errorf("cannot fetch the committed offsets of group %s: %w", cfg.Group, err)
	}
	groups, err := cfg.Admin.DescribeGroups(ctx, cfg.Group)
	if err != nil {
		return nil, fmt.Errorf("cannot describe group %s: %w", cfg.Group, err)
	}
	owners := map[int32]string{}
	for _, m := range groups[cfg.Group].Members {
		r.Members++
		owner := m.ClientID + "@" + strings.TrimPrefix(m.ClientHost, "/")
		if m.InstanceID != nil {
			owner = *m.InstanceID
		}
		if c, ok := m.Assigned.AsConsumer(); ok {
			for _, t := range c.Topics {
				if t.Topic == cfg.Topics[0] {
					for _, p := range t.Partitions {
						owners[p] = owner
					}
				}
			}
		}
	}
	parts := map[int32]*Partition{}
	for i, topic := range cfg.Topics {
		for p, e := range ends[topic] {
			if e.Err != nil {
				return nil, fmt.Errorf("cannot list the end offset of %s[%d]: %w", topic, p, e.Err)
			}
			part := parts[p]
			if part == nil {
				part = &Partition{Partition: p, Owner: owners[p], Committed: [2]int64{-1, -1}, AgeSeconds: -1}
				parts[p] = part
			}
			part.End[i] = e.Offset
			read := int64(0)
			if c, ok := committed.Lookup(topic, p); ok && c.Err == nil && c.At >= 0 {
				part.Committed[i], read = c.At, c.At
			}
			part.Lag += max(e.Offset-read, 0)
		}
	}
	return parts, nil
}

// readCheckpoints adds each partition's newest checkpoint: epoch, age,
// held events and the bytes of all its state rows.
func readCheckpoints(ctx context.Context, cfg Config, parts map[int32]*Partition) error {
	rows, err := cfg.Conn.Query(ctx, "SELECT kafka_partition, epoch, toInt64(now()) - toInt64(written_at), data FROM "+cfg.Database+
		".pipeline_state FINAL WHERE consumer_group = ? AND kind = 'checkpoint'", cfg.Group)
	if err != nil {
		return fmt.Errorf("cannot read the checkpoints of group %s: %w", cfg.Group, err)
	}
	defer rows.Close()
	for rows.Next() {
		var p int32
		var epoch uint64
		var age int64
		var data string
		if err := rows.Scan(&p, &epoch, &age, &data); err != nil {
			return err
		}
		if part := parts[p]; part != nil {
			part.Epoch, part.AgeSeconds = epoch, age
			stats, err := pipeline.CheckpointStats([]byte(data))
			if err != nil {
				return fmt.Errorf("checkpoint of partition %d, epoch %d: %w", p, epoch, err)
			}
			part.Held = stats.Held
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	sizes, err := cfg.Conn.Query(ctx, "SELECT kafka_partition, sum(length(data)) FROM "+cfg.Database+
		".pipeline_state FINAL WHERE consumer_group = ? GROUP BY kafka_partition", cfg.Group)
	if err != nil {
		return fmt.Errorf("cannot read the state sizes of group %s: %w", cfg.Group, err)
	}
	defer sizes.Close()
	for sizes.Next() {
		var p int32
		var n uint64
		if err := sizes.Scan(&p, &n); err != nil {
			return err
		}
		if part := parts[p]; part != nil {
			part.StateBytes = n
		}
	}
	return sizes.Err()
}

// WriteJSON writes the report as one JSON object.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes the report as two tables.
func (r *Report) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "group %s: %d member(s), %d partition(s) of %s and %s\n\n", r.Group, r.Members, len(r.Partitions), r.Topics[0], r.Topics[1])
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PARTITION\tOWNER\tCOMMITTED\tEND\tLAG\tEPOCH\tCHECKPOINT AGE\tSTATE BYTES\tHELD\t")
	for _, p := range r.Partitions {
		owner, age := p.Owner, "-"
		if owner == "" {
			owner = "(none)"
		}
		if p.AgeSeconds >= 0 {
			age = (time.Duration(p.AgeSeconds) * time.Second).String()
		}
		verdict := ""
		if p.Stuck {
			verdict = "STUCK"
		}
		fmt.Fprintf(tw, "%d\t%s\t%d/%d\t%d/%d\t%d\t%d\t%s\t%d\t%d\t%s\n", p.Partition, owner, max(p.Committed[0], 0), max(p.Committed[1], 0),
			p.End[0], p.End[1], p.Lag, p.Epoch, age, p.StateBytes, p.Held, verdict)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VIEW\tROWS\tNEWEST")
	for _, v := range r.Views {
		newest := v.Newest
		if newest == "" {
			newest = "-"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\n", v.Name, v.Rows, newest)
	}
	return tw.Flush()
}
