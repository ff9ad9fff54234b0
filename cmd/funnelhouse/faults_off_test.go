//go:build !testhooks

package main

import "testing"

// TestKillHookOff: a default build (no -tags testhooks, as `go build`, the
// Dockerfile and `make build` make it) has no fault-injection hook, so a
// production binary with FUNNELHOUSE_TEST_KILL in its environment never
// kills itself. deploy's TestTestHooksNotInDefaultBuild checks that the
// variable's name is absent from a default binary.
func TestKillHookOff(t *testing.T) {
	t.Setenv("FUNNELHOUSE_TEST_KILL", "after-insert:pipeline_state:1")
	hook, err := killHook()
	if hook != nil || err != nil {
		t.Fatalf("default build: killHook() = %v, %v; want no hook and no error", hook != nil, err)
	}
}
