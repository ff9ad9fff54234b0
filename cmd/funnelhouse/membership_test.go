package main

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// groupShares returns, for a stable group, the number of partitions of the
// clickstream topic each member is assigned, sorted; nil while the group
// is rebalancing.
func (r *faultRig) groupShares() []int {
	cl, err := kgo.NewClient(kgo.SeedBrokers(r.brokerAddr))
	if err != nil {
		r.t.Fatal(err)
	}
	defer cl.Close()
	groups, err := kadm.NewClient(cl).DescribeGroups(context.Background(), r.group)
	g := groups[r.group]
	if err != nil || g.State != "Stable" {
		return nil
	}
	var shares []int
	for _, m := range g.Members {
		n := 0
		if c, ok := m.Assigned.AsConsumer(); ok {
			for _, tp := range c.Topics {
				if tp.Topic == r.cs {
					n += len(tp.Partitions)
				}
			}
		}
		shares = append(shares, n)
	}
	slices.Sort(shares)
	return shares
}

// assignedPartitions counts the member's "partition assigned" log lines.
func (m *member) assignedPartitions() int {
	out, _ := os.ReadFile(m.log)
	return strings.Count(string(out), "partition assigned")
}

// waitExit waits until the member exits, calling each at every poll, and
// returns its exit error; it fails the test after timeout.
func (m *member) waitExit(t *testing.T, what string, timeout time.Duration, each func()) error {
	t.Helper()
	var err error
	waitFor(t, what, timeout, func() bool {
		each()
		select {
		case err = <-m.exited:
			return true
		default:
			return false
		}
	})
	return err
}

// waitFor polls cond every 20 ms and returns how long it took to hold, or
// fails the test after timeout.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// recovery kills one of two members in the middle of a run, restarts it
// at once with the same flags and returns the time from its restart to
// owning its partitions again and to its first insert. The views must be
// exact when the input ends.
func recovery(t *testing.T, name string, static bool) (owned, firstInsert time.Duration) {
	r := newFaultRig(t, name, 1_000_000, 4)
	// The default session timeout: what production runs with.
	flags := func(id string) []string {
		args := []string{"--session-timeout", "45s"}
		if static {
			args = append(args, "--instance-id", id)
		}
		return args
	}
	// a joins first (it leads the group), then b; range gives each two
	// partitions, and a logs its two again after the eager rebalance.
	a := r.start(nil, flags("a")...)
	waitFor(t, "the first member owns every partition", time.Minute, func() bool { return a.assignedPartitions() >= 4 })
	b := r.start(nil, flags("b")...)
	waitFor(t, "the group settles on two partitions each", time.Minute, func() bool {
		return b.assignedPartitions() >= 2 && a.assignedPartitions() >= 6 && slices.Equal(r.groupShares(), []int{2, 2})
	})
	waitCommitted(t, r, r.expect.Records/4)
	if n := r.committed(); n >= r.expect.Records {
		t.Fatalf("all %d records were committed before the kill: it would not be mid-run", n)
	}
	const had = 2
	others := b.assignedPartitions()
	a.kill()
	metricsAddr := freeAddr(t)
	a = r.start(nil, append(flags("a"), "--metrics-addr", metricsAddr)...)
	owned = waitFor(t, "the restarted member owns its partitions", 3*time.Minute, func() bool {
		return a.assignedPartitions() >= had
	})
	firstInsert = owned + waitFor(t, "the restarted member inserts", time.Minute, func() bool {
		return scrape(t, metricsAddr)["funnelhouse_sink_insert_duration_seconds_count"] > 0
	})
	t.Logf("restarted member: owns its %d partitions %s after its restart, first insert after %s", had, owned.Round(time.Millisecond), firstInsert.Round(time.Millisecond))
	if static && b.assignedPartitions() != others {
		t.Errorf("the other member was reassigned (%d → %d assignments): a static member's restart must not rebalance the others", others, b.assignedPartitions())
	}
	r.waitDrained(3 * time.Minute)
	a.stop(t, 30*time.Second)
	b.stop(t, 30*time.Second)
	r.verify()
	return owned, firstInsert
}

// TestStaticMembershipRecovery: with instance ids, a member SIGKILLed and
// restarted at once owns its partitions again within 5 s, and the result
// is exact.
func TestStaticMembershipRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("1M events")
	}
	if owned, _ := recovery(t, "static", true); owned > 5*time.Second {
		t.Errorf("the restarted static member took %s to own its partitions, want ≤ 5s", owned)
	}
}

// TestDynamicMembershipRecovery measures the same restart without instance
// ids, for docs/operations.md: the new member waits for the dead one's
// session timeout (45 s) before the group rebalances.
func TestDynamicMembershipRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("1M events and a 45 s session timeout")
	}
	recovery(t, "dynamic", false)
}

// TestSharedInstanceID starts a second process with the instance id of a
// running one: the first is fenced and must exit non-zero with a message
// naming the instance id, not sit "running" with nothing to consume; the
// second takes over and the result is exact.
func TestSharedInstanceID(t *testing.T) {
	if testing.Short() {
		t.Skip("1M events")
	}
	r := newFaultRig(t, "shared", 1_000_000, 4)
	firstMetrics := freeAddr(t)
	first := r.start(nil, "--instance-id", "x", "--session-timeout", "45s", "--metrics-addr", firstMetrics)
	waitCommitted(t, r, r.expect.Records/4)
	second := r.start(nil, "--instance-id", "x", "--session-timeout", "45s")
	notReady := false
	select {
	case err := <-first.exited:
		t.Fatalf("the first member exited before the second joined: %v", err)
	default:
	}
	exitErr := first.waitExit(t, "the fenced member exits", time.Minute, func() {
		if readyz(firstMetrics) == 503 {
			notReady = true
		}
	})
	out, _ := os.ReadFile(first.log)
	if exitErr == nil {
		t.Error("the fenced member exited with status 0, want non-zero")
	}
	if !strings.Contains(string(out), `instance id "x" is used by another member`) {
		t.Errorf("the fenced member's output does not say why:\n%s", tail(out, 2000))
	}
	t.Logf("fenced member: exit %v, /readyz 503 seen before exit: %v", exitErr, notReady)
	r.waitDrained(3 * time.Minute)
	select {
	case err := <-second.exited:
		t.Fatalf("the member that took the instance id over exited: %v", err)
	default:
	}
	second.stop(t, 30*time.Second)
	r.verify()
}
