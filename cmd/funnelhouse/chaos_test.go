package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The fault matrix (make chaos): seeded runs of the whole path, each with a
// random mix of faults, each ending with every view and table equal to the
// expected computation and every record counted once. make test runs a
// small slice of it.

// chaosFault is one kind of fault; inject applies it to a running world and
// returns when the world is whole again (members, ClickHouse and broker
// up), with what it did in words.
type chaosFault struct {
	name   string
	inject func(w *chaosWorld) string
}

var chaosFaults = []chaosFault{
	{"kill", func(w *chaosWorld) string {
		i := w.rng.IntN(len(w.members))
		w.members[i].kill()
		w.members[i] = w.startMember(i, nil)
		return fmt.Sprintf("SIGKILL of member %d", i+1)
	}},
	{"kill-before-state", func(w *chaosWorld) string {
		return w.killAt("after-insert:sessions", "after the sessions insert, before the state insert")
	}},
	{"kill-before-commit", func(w *chaosWorld) string {
		return w.killAt("after-insert:pipeline_state", "between the state insert and the offset commit")
	}},
	{"clickhouse-down", func(w *chaosWorld) string {
		d := time.Duration(5+w.rng.IntN(26)) * time.Second
		w.stopCH()
		time.Sleep(d)
		w.startCH()
		return fmt.Sprintf("ClickHouse stopped for %s", d)
	}},
	{"broker-restart", func(w *chaosWorld) string {
		w.rig.restartBroker()
		return "broker SIGKILLed and restarted on its data dir"
	}},
	{"join-leave", func(w *chaosWorld) string {
		third := w.startMember(len(w.members), nil)
		stay := time.Duration(2000+w.rng.IntN(4000)) * time.Millisecond
		time.Sleep(stay)
		third.stop(w.rig.t, time.Minute)
		return fmt.Sprintf("a third member joined for %s and left", stay)
	}},
}

// chaosWorld is one run: a rig, its members and the shared ClickHouse.
type chaosWorld struct {
	rig             *faultRig
	rng             *rand.Rand
	static          bool
	members         []*member
	restarts        int // members that exited on their own
	stopCH, startCH func()
}

// revive restarts the members that exited on their own, as a process
// supervisor (Kubernetes, systemd) would: a member exits non-zero when it
// cannot continue safely: when its partitions were lost while their
// checkpoint was being written, or when a visitor it loads back has state
// of the partition's next owner.
func (w *chaosWorld) revive() {
	for i, m := range w.members {
		select {
		case err := <-m.exited:
			out, _ := os.ReadFile(m.log)
			if !exitsOnItsOwn(out) {
				w.rig.t.Errorf("member %d exited on its own, not for a lost or revoked checkpoint (%v):\n%s", i+1, err, tail(out, 6000))
			}
			w.rig.t.Logf("member %d exited on its own (%v); restarting it", i+1, err)
			w.restarts++
			w.members[i] = w.startMember(i, nil)
		default:
		}
	}
}

// exitsOnItsOwn reports whether a member's log ends with an error it exits
// non-zero for by design (see revive), and has no panic.
func exitsOnItsOwn(log []byte) bool {
	i := bytes.LastIndex(log, []byte("funnelhouse run: "))
	if i < 0 || bytes.Contains(log, []byte("panic:")) {
		return false
	}
	exit := log[i:]
	return bytes.Contains(exit, []byte("partitions lost to another member")) ||
		bytes.Contains(exit, []byte("moved to another member")) || bytes.Contains(exit, []byte("near the rebalance timeout"))
}

func (w *chaosWorld) startMember(i int, env []string) *member {
	var args []string
	if w.static {
		args = []string{"--instance-id", fmt.Sprintf("m%d", i+1)}
	}
	return w.rig.start(env, args...)
}

// killAt restarts a random member with a failpoint that SIGKILLs it at the
// n-th time it reaches point, waits for that, and starts it again.
func (w *chaosWorld) killAt(point, what string) string {
	i, n := w.rng.IntN(len(w.members)), 1+w.rng.IntN(3)
	w.members[i].kill()
	m := w.startMember(i, []string{fmt.Sprintf("FUNNELHOUSE_TEST_KILL=%s:%d", point, n)})
	reached := "reached"
	select {
	case err := <-m.exited:
		if !killedBySignal(err) {
			w.rig.t.Errorf("member %d exited with %v at the failpoint, want SIGKILL", i+1, err)
		}
	case <-time.After(time.Minute):
		m.kill()
		reached = "not reached in 1 min (the input had ended): SIGKILLed instead"
	}
	w.members[i] = w.startMember(i, nil)
	return fmt.Sprintf("member %d SIGKILLed %s (%s:%d, %s)", i+1, what, point, n, reached)
}

// recovered returns how long after a fault every partition made progress
// again (its committed offsets moved, or it had nothing left to read): the
// partitions of a killed member, too, not only the group's total.
func (w *chaosWorld) recovered() time.Duration {
	start := time.Now()
	before, _, err := w.rig.partitionProgress()
	for ; err != nil && time.Since(start) < time.Minute; before, _, err = w.rig.partitionProgress() {
		time.Sleep(50 * time.Millisecond) // a restarted broker is not yet serving
	}
	for {
		w.revive()
		now, ends, err := w.rig.partitionProgress()
		if err == nil && allMoved(before, now, ends) {
			return time.Since(start)
		}
		if time.Since(start) > 3*time.Minute {
			w.rig.t.Errorf("a partition made no progress within 3 min of the fault: committed %v of %v", now, ends)
			return time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func allMoved(before, now, ends map[string]int64) bool {
	for tp, end := range ends {
		if now[tp] < end && now[tp] <= before[tp] {
			return false
		}
	}
	return true
}

// partitionProgress returns the committed and end offsets of every input
// partition, keyed "topic/partition".
func (r *faultRig) partitionProgress() (committed, ends map[string]int64, err error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(r.brokerAddr))
	if err != nil {
		return nil, nil, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	offs, err := adm.FetchOffsets(ctx, r.group)
	if err != nil {
		return nil, nil, err
	}
	listed, err := adm.ListEndOffsets(ctx, r.cs, r.tx)
	if err != nil {
		return nil, nil, err
	}
	committed, ends = map[string]int64{}, map[string]int64{}
	listed.Each(func(o kadm.ListedOffset) {
		key := fmt.Sprintf("%s/%d", o.Topic, o.Partition)
		ends[key] = o.Offset
		if c, ok := offs.Lookup(o.Topic, o.Partition); ok && c.Err == nil {
			committed[key] = c.At
		}
	})
	return committed, ends, nil
}

type chaosResult struct {
	run      int
	seed     uint64
	faults   []string
	recovery time.Duration // the longest, from a fault's end to progress
	passed   bool
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("%s=%q: want a number", name, v)
	}
	return n
}

// TestChaos runs FUNNELHOUSE_CHAOS_RUNS (default 2) seeded runs; run i uses
// seed FUNNELHOUSE_CHAOS_SEED+i (default: from the clock), so a failed run
// is repeated with its seed and FUNNELHOUSE_CHAOS_RUNS=1.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("minutes of faults")
	}
	runs := envInt(t, "FUNNELHOUSE_CHAOS_RUNS", 2)
	base := uint64(envInt(t, "FUNNELHOUSE_CHAOS_SEED", int(time.Now().UnixNano()%1e9)))
	chBase, stopCH, startCH := ownClickHouse(t)
	var results []chaosResult
	for i := range runs {
		res := chaosResult{run: i + 1, seed: base + uint64(i)}
		res.passed = t.Run(fmt.Sprintf("seed=%d", res.seed), func(t *testing.T) {
			chaosRun(t, &res, strings.TrimRight(chBase, "/"), stopCH, startCH)
		})
		results = append(results, res)
	}
	t.Log("\n" + chaosTable(results))
}

func chaosRun(t *testing.T, res *chaosResult, chBase string, stopCH, startCH func()) {
	rng := rand.New(rand.NewPCG(res.seed, 0))
	name := fmt.Sprintf("chaos%d", res.seed)
	rig := newFaultRigWith(t, chBase+"/fh_"+name, name, 1_000_000, 4, t.TempDir())
	w := &chaosWorld{rig: rig, rng: rng, static: rng.IntN(2) == 0, stopCH: stopCH, startCH: startCH}
	membership := "dynamic membership"
	if w.static {
		membership = "static membership"
	}
	res.faults = append(res.faults, membership)
	w.members = []*member{w.startMember(0, nil), w.startMember(1, nil)}
	faults := make([]chaosFault, 2+rng.IntN(2))
	for k := range faults {
		faults[k] = chaosFaults[rng.IntN(len(chaosFaults))]
	}
	for k, f := range faults {
		// Spread the faults over the run: the k-th once this share of the
		// records is committed, after a random delay.
		w.revive()
		waitCommitted(t, rig, rig.expect.Records*int64(k+1)/int64(len(faults)+2))
		time.Sleep(time.Duration(rng.IntN(1000)) * time.Millisecond)
		what := f.inject(w)
		took := w.recovered()
		res.recovery = max(res.recovery, took)
		res.faults = append(res.faults, what)
		t.Logf("fault %d: %s; progress %s after", k+1, what, took.Round(10*time.Millisecond))
	}
	rig.waitDrainedWhile(3*time.Minute, w.revive)
	if w.restarts > 0 {
		res.faults = append(res.faults, fmt.Sprintf("%d member exit(s) on their own, restarted", w.restarts))
	}
	// A member can exit on its own as SIGTERM lands, for a checkpoint
	// lost in the rebalance after a fault (seen after a broker restart
	// during a ClickHouse outage): by design, as in revive, and verify
	// shows nothing was lost.
	for _, m := range w.members {
		m.stopAccepting(t, time.Minute, exitsOnItsOwn)
	}
	rig.verify()
}

func chaosTable(results []chaosResult) string {
	var b strings.Builder
	failed := 0
	fmt.Fprintf(&b, "%-4s %-10s %-10s %-7s %s\n", "run", "seed", "recovery", "result", "faults")
	for _, r := range results {
		verdict := "exact"
		if !r.passed {
			verdict = "FAILED"
			failed++
		}
		fmt.Fprintf(&b, "%-4d %-10d %-10s %-7s %s\n", r.run, r.seed, fmt.Sprintf("%.1fs", r.recovery.Seconds()), verdict, strings.Join(r.faults, "; "))
	}
	fmt.Fprintf(&b, "%d passed, %d failed\n", len(results)-failed, failed)
	return b.String()
}
