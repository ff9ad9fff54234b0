package pipeline

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// CheckTopics verifies that the input topics exist with the same number of
// partitions (co-partitioning) and that the dead-letter topic exists. It
// returns the partition count.
func CheckTopics(ctx context.Context, adm *kadm.Client, clickstream, transactions, dlq string) (int, error) {
	md, err := adm.Metadata(ctx, clickstream, transactions, dlq)
	if err != nil {
		return 0, fmt.Errorf("cannot read topic metadata: %w", err)
	}
	count := func(field, topic string) (int, error) {
		td, ok := md.Topics[topic]
		if !ok || td.Err != nil {
			reason := "does not exist"
			if ok && td.Err != nil {
				reason = td.Err.Error()
			}
			return 0, fieldErrorf("%s topic %q: %s (create it, e.g. with `funnelhouse broker` or kafka-topics)", field, topic, reason)
		}
		return len(td.Partitions), nil
	}
	nc, err := count("ClickstreamTopic", clickstream)
	if err != nil {
		return 0, err
	}
	nt, err := count("TransactionsTopic", transactions)
	if err != nil {
		return 0, err
	}
	if _, err := count("DLQTopic", dlq); err != nil {
		return 0, err
	}
	if nc != nt {
		return 0, fmt.Errorf("topics are not co-partitioned: %q has %d partitions, %q has %d; both input topics need the same partition count", clickstream, nc, transactions, nt)
	}
	return nc, nil
}

// endOffsetsLoop tells owners where their inputs end, so that an input with
// no unread records can be recognised as idle (SPEC §3).
func (pl *Pipeline) endOffsetsLoop(ctx context.Context, adm *kadm.Client) {
	every := min(pl.cfg.Rules.IdleAdvance/4, time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// The last stable offset: a read-committed consumer reads no
		// further. A partition whose records retention deleted before they
		// were read has nothing to read: it ends at 0, like an empty one.
		ends, err := adm.ListCommittedOffsets(ctx, pl.topics[0], pl.topics[1])
		if err != nil {
			continue
		}
		starts, err := adm.ListStartOffsets(ctx, pl.topics[0], pl.topics[1])
		if err != nil {
			continue
		}
		pl.mu.Lock()
		for _, o := range pl.owners {
			for t, topic := range pl.topics {
				e, ok := ends.Lookup(topic, o.partition)
				s, sok := starts.Lookup(topic, o.partition)
				if !ok || e.Err != nil {
					continue
				}
				end := e.Offset
				if sok && s.Err == nil && s.Offset >= end {
					end = 0
				}
				o.ends[t].Store(end)
			}
		}
		pl.mu.Unlock()
	}
}
