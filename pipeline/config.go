// Package pipeline turns decoded events into funnelhouse's rows: it consumes
// the co-partitioned input topics, keeps one owner goroutine per partition
// number with that partition's state (watermark, pending events, open
// sessions, visitor lifecycle, recent event ids), and hands columnar batches
// to the ClickHouse sink. Offsets are committed, and state checkpointed,
// only after ClickHouse acknowledged the rows derived before them (SPEC §7).
package pipeline

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Rules are the event-time parameters of SPEC §3–5.
type Rules struct {
	SessionGap  time.Duration // default 30m
	Lateness    time.Duration // default 10m
	ChurnAfter  time.Duration // default 90 days
	IdleAdvance time.Duration // default 30s
}

// DefaultRules returns SPEC's defaults.
func DefaultRules() Rules {
	return Rules{SessionGap: 30 * time.Minute, Lateness: 10 * time.Minute, ChurnAfter: 90 * 24 * time.Hour, IdleAdvance: 30 * time.Second}
}

// Validate checks the rules; errors name the flag.
func (r Rules) Validate() error {
	var errs []error
	check := func(flag string, d time.Duration) {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("--%s must be positive, got %s", flag, d))
		}
	}
	check("session-gap", r.SessionGap)
	check("lateness", r.Lateness)
	check("churn-after", r.ChurnAfter)
	check("idle-advance", r.IdleAdvance)
	return errors.Join(errs...)
}

// ParseDuration accepts Go durations ("30m", "2160h") and whole or
// fractional days ("90d", "1.5d").
func ParseDuration(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(days, 64)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q: want e.g. 30m, 2160h or 90d", s)
		}
		return time.Duration(n * float64(24*time.Hour)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q: want e.g. 30m, 2160h or 90d", s)
	}
	return d, nil
}
