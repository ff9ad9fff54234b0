package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os/exec"
	"testing"
	"time"

	"github.com/funnelhouse/funnelhouse/pipeline/status"
)

// status runs `funnelhouse status --json` with the rig's flags.
func (r *faultRig) status(t *testing.T, extra ...string) (*status.Report, error) {
	t.Helper()
	args := append(append([]string{"status"}, r.runArgs()[1:]...), append([]string{"--json"}, extra...)...)
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(r.bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var rep status.Report
	if jerr := json.Unmarshal(stdout.Bytes(), &rep); jerr != nil {
		t.Fatalf("status printed no JSON (%v, exit %v):\n%s%s", jerr, err, stdout.String(), stderr.String())
	}
	if err != nil && !bytes.Contains(stderr.Bytes(), []byte("stuck partitions")) {
		t.Fatalf("status failed: %v\n%s", err, stderr.String())
	}
	return &rep, err
}

// TestStatus runs `funnelhouse status` against a running member, after it
// is SIGKILLed (its partitions lag with no owner: stuck, exit non-zero) and
// after a new member drained the input.
func TestStatus(t *testing.T) {
	if testing.Short() {
		t.Skip("1M events")
	}
	r := newFaultRig(t, "status", 1_000_000, 4)
	m := r.start(nil)
	waitCommitted(t, r, r.expect.Records/4)
	rep, err := r.status(t)
	if err != nil {
		t.Errorf("status of a running member exits with %v", err)
	}
	if len(rep.Partitions) != 4 || rep.Members != 1 || len(rep.Views) != 4 {
		t.Fatalf("status shows %d partitions, %d members, %d views; want 4, 1, 4", len(rep.Partitions), rep.Members, len(rep.Views))
	}
	for _, p := range rep.Partitions {
		if p.Owner == "" || p.Epoch == 0 || p.AgeSeconds < 0 || p.AgeSeconds > 30 || p.StateBytes == 0 || p.Committed[0] > p.End[0] || p.Stuck {
			t.Errorf("running member: partition %+v", p)
		}
	}
	m.kill()
	waitFor(t, "the killed member leaves the group", time.Minute, func() bool { return len(r.groupShares()) == 0 })
	time.Sleep(3 * time.Second) // older than --stuck-after
	rep, err = r.status(t, "--stuck-after", "2s")
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Errorf("status after the kill exits with %v, want a non-zero exit", err)
	}
	for _, p := range rep.Partitions {
		if p.Lag > 0 && (!p.Stuck || p.Owner != "") {
			t.Errorf("after the kill: lagging partition %+v is not stuck and ownerless", p)
		}
	}
	if len(rep.Stuck()) == 0 {
		t.Error("after the kill no partition is stuck")
	}
	last := r.start(nil)
	r.waitDrained(3 * time.Minute)
	rep, err = r.status(t)
	if err != nil {
		t.Errorf("status after draining exits with %v", err)
	}
	for _, p := range rep.Partitions {
		if p.Lag != 0 || p.Held != 0 || p.Stuck {
			t.Errorf("after draining: partition %+v", p)
		}
	}
	for _, v := range rep.Views {
		if v.Rows == 0 || v.Newest == "" {
			t.Errorf("after draining: view %+v is empty", v)
		}
	}
	last.stop(t, 30*time.Second)
}
