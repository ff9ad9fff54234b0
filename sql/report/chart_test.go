package report

import (
	"math"
	"testing"
)

func TestNiceScale(t *testing.T) {
	for _, c := range []struct {
		max, top, step float64
	}{{0, 1, 0.2}, {0.47, 0.5, 0.1}, {1, 1, 0.2}, {23456, 25000, 5000}, {3, 3, 1}, {0.004, 0.004, 0.001}, {0.0041, 0.005, 0.001}} {
		top, step := niceScale(c.max, 5)
		if math.Abs(top-c.top) > 1e-9 || math.Abs(step-c.step) > 1e-9 {
			t.Errorf("niceScale(%v) = %v, %v; want %v, %v", c.max, top, step, c.top, c.step)
		}
	}
}
