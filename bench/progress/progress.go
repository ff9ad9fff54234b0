// Package progress reports the progress of a long step of the harness
// (producing, consuming, a measured run) on standard error.
package progress

import (
	"fmt"
	"io"
	"os"
	"time"
)

// Line reports a long step: on a terminal one line redrawn in place,
// otherwise a plain line every few seconds (for logs and CI). Not
// goroutine-safe.
type Line struct {
	w        io.Writer
	label    string
	total    int64
	start    time.Time
	last     time.Time
	terminal bool
	// Every is the least time between two updates shown; a caller that
	// wants only the final line sets it to an hour.
	Every time.Duration
}

// New starts a Line for total items (0: unknown) of the step label.
func New(label string, total int64) *Line {
	terminal := false
	if fi, err := os.Stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		terminal = true
	}
	every := 5 * time.Second
	if terminal {
		every = 200 * time.Millisecond
	}
	now := time.Now()
	return &Line{w: os.Stderr, label: label, total: total, start: now, last: now, terminal: terminal, Every: every}
}

// Update shows done of total, the rate and the time left; cheap when
// called often.
func (p *Line) Update(done int64) {
	now := time.Now()
	if now.Sub(p.last) < p.Every {
		return
	}
	p.last = now
	p.print(done, now)
}

func (p *Line) print(done int64, now time.Time) {
	elapsed := now.Sub(p.start).Seconds()
	rate := float64(done) / max(elapsed, 1e-9)
	line := fmt.Sprintf("%s: %d", p.label, done)
	if p.total > 0 {
		left := "?"
		if rate > 0 {
			left = time.Duration(float64(max(p.total-done, 0)) / rate * float64(time.Second)).Round(time.Second).String()
		}
		line += fmt.Sprintf("/%d (%.0f%%), %.0f/s, ETA %s", p.total, 100*float64(done)/float64(p.total), rate, left)
	} else {
		line += fmt.Sprintf(", %.0f/s", rate)
	}
	if p.terminal {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
	} else {
		fmt.Fprintln(p.w, line)
	}
}

// Done prints the final count and ends the line.
func (p *Line) Done(done int64) {
	elapsed := time.Since(p.start)
	if p.terminal {
		fmt.Fprint(p.w, "\r\033[K")
	}
	fmt.Fprintf(p.w, "%s: %d in %s (%.0f/s)\n", p.label, done, elapsed.Round(time.Millisecond), float64(done)/max(elapsed.Seconds(), 1e-9))
}
