package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"1073741824": 1 << 30, "1GiB": 1 << 30, "512 MiB": 512 << 20, "2GB": 2e9, "100B": 100, "64KiB": 64 << 10} {
		if got, err := parseBytes(in); err != nil || got != want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-1GiB", "1.5GiB", "lots", "1TiB", "9999999999999GiB"} {
		if _, err := parseBytes(in); err == nil {
			t.Errorf("parseBytes(%q) accepted", in)
		}
	}
}

func TestCgroupMemoryLimit(t *testing.T) {
	for content, want := range map[string]int64{"1073741824\n": 1 << 30, "max\n": 0, "9223372036854771712\n": 0} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "memory.max"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := cgroupMemoryLimit(dir); got != want {
			t.Errorf("memory.max %q: %d, want %d", content, got, want)
		}
	}
	v1 := t.TempDir()
	if err := os.MkdirAll(filepath.Join(v1, "memory"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(v1, "memory", "memory.limit_in_bytes"), []byte("536870912\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := cgroupMemoryLimit(v1); got != 512<<20 {
		t.Errorf("cgroup v1: %d, want %d", got, 512<<20)
	}
	if got := cgroupMemoryLimit(t.TempDir()); got != 0 {
		t.Errorf("no cgroup files: %d, want 0", got)
	}
}
