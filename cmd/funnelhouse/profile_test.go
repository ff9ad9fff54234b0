package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// heldForProfile keeps the test's allocation live while the profile is
// taken.
var heldForProfile [][]byte

// allocateForHeapProfile allocates n MiB that stay live, under a name the
// heap profile must show.
//
//go:noinline
func allocateForHeapProfile(n int) {
	for range n {
		heldForProfile = append(heldForProfile, make([]byte, 1<<20))
	}
}

// The heap profile is written again once the live heap has grown, and
// shows what made it grow, although the heap is smaller by the time the
// profiling stops.
func TestHeapProfileAtTheLargestHeap(t *testing.T) {
	path := filepath.Join(t.TempDir(), "heap.pprof")
	stop, err := startHeapProfile(path, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	allocateForHeapProfile(64)
	runtime.GC()
	time.Sleep(200 * time.Millisecond)
	heldForProfile = nil
	runtime.GC()
	time.Sleep(100 * time.Millisecond)
	stop()

	if !bytes.Contains(readProfile(t, path), []byte("allocateForHeapProfile")) {
		t.Error("the heap profile does not show the allocation that made the heap largest")
	}
	if _, err := startHeapProfile(filepath.Join(t.TempDir(), "missing", "heap.pprof"), time.Second); err == nil {
		t.Error("a heap profile in a missing directory: no error")
	}
}

// waitForBlockProfile waits on ch under a name the block profile must show.
//
//go:noinline
func waitForBlockProfile(ch chan struct{}) { <-ch }

// The block profile shows where a goroutine waited while it was on.
func TestBlockProfile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "block.pprof")
	stop, err := startBlockProfile(path)
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan struct{})
	go func() { time.Sleep(50 * time.Millisecond); close(ch) }()
	waitForBlockProfile(ch)
	stop()

	if !bytes.Contains(readProfile(t, path), []byte("waitForBlockProfile")) {
		t.Error("the block profile does not show the wait")
	}
	if _, err := startBlockProfile(filepath.Join(t.TempDir(), "missing", "block.pprof")); err == nil {
		t.Error("a block profile in a missing directory: no error")
	}
}

// readProfile returns the uncompressed bytes of the gzipped profile at
// path, which hold the names of the functions it shows.
func readProfile(t *testing.T, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s is not a gzipped profile: %v", path, err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}
