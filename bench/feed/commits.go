package feed

import (
	"context"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// CommitWatcher reads how many input records a group has committed.
type CommitWatcher struct {
	cl     *kgo.Client
	adm    *kadm.Client
	group  string
	topics map[string]bool
}

// NewCommitWatcher watches group's commits on topics; opts are extra
// client options (TLS, SASL). Close it when done.
func NewCommitWatcher(brokers []string, opts []kgo.Opt, group string, topics ...string) (*CommitWatcher, error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)...)
	if err != nil {
		return nil, err
	}
	w := &CommitWatcher{cl: cl, adm: kadm.NewClient(cl), group: group, topics: map[string]bool{}}
	for _, t := range topics {
		w.topics[t] = true
	}
	return w, nil
}

// Records is the sum of the committed offsets of the input topics: the
// records read and written, as offsets start at 0.
func (w *CommitWatcher) Records(ctx context.Context) (int64, error) {
	offs, err := w.adm.FetchOffsets(ctx, w.group)
	if err != nil {
		return 0, err
	}
	var n int64
	offs.Each(func(o kadm.OffsetResponse) {
		if w.topics[o.Topic] && o.Err == nil && o.At > 0 {
			n += o.At
		}
	})
	return n, nil
}

// Close closes the watcher's client.
func (w *CommitWatcher) Close() { w.cl.Close() }
