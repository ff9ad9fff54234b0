package pipeline

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// restartStableRange is the range balancer with join metadata that a
// restart does not change. franz-go puts the member's last generation in
// it, so a restarted static member would join with other metadata than
// its predecessor, and brokers that compare the metadata (kfake does)
// rebalance the whole group instead of handing back the old assignment.
// Range is eager: the generation means nothing to it.
type restartStableRange struct{ kgo.GroupBalancer }

func (b restartStableRange) JoinGroupMetadata(topics []string, owned map[string][]int32, _ int32) []byte {
	return b.GroupBalancer.JoinGroupMetadata(topics, owned, -1)
}

// fatalGroupErrors are the group errors that retrying cannot mend: the
// member must stop rather than sit "running" and consume nothing.
var fatalGroupErrors = []*kerr.Error{
	kerr.FencedInstanceID,          // another process joined with our instance id
	kerr.UnreleasedInstanceID,      // our instance id is still held by a live member
	kerr.GroupAuthorizationFailed,  // no ACL for the group
	kerr.TopicAuthorizationFailed,  // no ACL for an input topic
	kerr.GroupIDNotFound,           // the group was deleted under us
	kerr.InvalidGroupID,            // the broker refuses the group name
	kerr.InconsistentGroupProtocol, // a member of another kind shares the group
}

func isFatalGroupError(err error) bool {
	for _, f := range fatalGroupErrors {
		if errors.Is(err, f) {
			return true
		}
	}
	return false
}

// groupErrorHook sees group management errors before franz-go backs off
// and rejoins. On a fatal one it marks the pipeline not ready and leaves
// the group at once: a fenced static member that rejoined would fence the
// process that replaced it, and the two would take turns forever.
type groupErrorHook struct{ pl *Pipeline }

func (h groupErrorHook) OnGroupManageError(err error) {
	if !isFatalGroupError(err) {
		return
	}
	if h.pl.failGroup(err) {
		// Leaving cancels the rejoin that would follow the backoff; it
		// cannot run inside the hook, which the group loop calls
		// synchronously.
		go h.pl.cl.LeaveGroupContext(context.Background())
	}
}

// failGroup records a fatal group error, which makes the member not ready
// and ends Run with it. It reports whether err was the first.
func (pl *Pipeline) failGroup(err error) bool {
	what := fmt.Errorf("consumer group %q: %w", pl.cfg.Group, err)
	if errors.Is(err, kerr.FencedInstanceID) || errors.Is(err, kerr.UnreleasedInstanceID) {
		what = fmt.Errorf("consumer group %q: instance id %q is used by another member (%w); give each member its own instance id", pl.cfg.Group, pl.cfg.InstanceID, err)
	}
	if !pl.fatal.CompareAndSwap(nil, &what) {
		return false
	}
	pl.log.Error("fatal consumer group error; stopping", "err", what)
	return true
}
