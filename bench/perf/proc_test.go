package perf

import (
	"os"
	"testing"
)

func TestProc(t *testing.T) {
	if rss := PeakRSS(os.Getpid()); rss <= 0 {
		t.Errorf("PeakRSS of this process = %d, want > 0", rss)
	}
	if rss := RSS(os.Getpid()); rss <= 0 || rss > PeakRSS(os.Getpid()) {
		t.Errorf("RSS of this process = %d, want in (0, peak %d]", rss, PeakRSS(os.Getpid()))
	}
	if PeakRSS(-1) != 0 || RSS(-1) != 0 || cpuSeconds(0) != 0 || readPID("") != 0 {
		t.Error("no process must read as 0")
	}
	for i := 0; cpuSeconds(os.Getpid()) == 0 && i < 1e8; i++ {
	}
	if cpuSeconds(os.Getpid()) <= 0 {
		t.Error("cpuSeconds of this process stays 0")
	}
	if m := median([]float64{3, 1, 2, 5}); m != 3 {
		t.Errorf("median = %v, want 3 (the upper middle)", m)
	}
	if median(nil) != 0 {
		t.Error("median of nothing must be 0")
	}
}
