//go:build testhooks

// The fault-injection hook of the crash tests, built only with
// `-tags testhooks` (buildBinary in e2e_test.go). A default build gets the
// no-op in faults_off.go: a production binary never kills itself, whatever
// its environment says.

package main

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// killHook reads FUNNELHOUSE_TEST_KILL=<point>:<n>, a fault-injection
// switch for the crash tests: the process SIGKILLs itself the n-th time
// the sink reaches point (e.g. "after-insert:pipeline_state:3" kills it
// between an acknowledged checkpoint and its offset commit). Unset: nil.
func killHook() (func(string), error) {
	spec := os.Getenv("FUNNELHOUSE_TEST_KILL")
	if spec == "" {
		return nil, nil
	}
	i := strings.LastIndexByte(spec, ':')
	n, err := strconv.Atoi(spec[i+1:])
	if i < 0 || err != nil || n < 1 {
		return nil, fmt.Errorf("invalid FUNNELHOUSE_TEST_KILL=%q: want <point>:<n>, e.g. after-insert:events:2", spec)
	}
	point, seen := spec[:i], 0
	var mu sync.Mutex // the sink's INSERTs of a write run at once
	return func(p string) {
		if p != point {
			return
		}
		mu.Lock()
		seen++
		now := seen == n
		mu.Unlock()
		if now {
			slog.Warn("FUNNELHOUSE_TEST_KILL: killing myself", "point", p, "time", n)
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // the signal is on its way
		}
	}, nil
}
