package main

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/funnelhouse/funnelhouse/bench/traffic"
	chsink "github.com/funnelhouse/funnelhouse/sinks/clickhouse"
	"github.com/funnelhouse/funnelhouse/sql/report"
	"github.com/funnelhouse/funnelhouse/sql/report/reporttest"
)

// TestReport fills a database of its own with a small end-to-end run, runs
// `funnelhouse report --html`, checks the terminal tables, then opens the
// page in headless Chromium and compares what the rendered DOM holds (the
// data-* attributes of the chart elements) with the views queried directly.
func TestReport(t *testing.T) {
	r := newTestRun(t, "report", 2, traffic.Config{Seed: 11, Events: 20_000})
	r.pf.cfg.FlushInterval = 500 * time.Millisecond
	r.pf.cfg.BatchRows = 50_000
	ctx := context.Background()
	err := r.run(ctx)
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	htmlPath := filepath.Join(dir, "report.html")
	var out bytes.Buffer
	if err := runReport(ctx, []string{"--clickhouse", r.pf.dsn, "--html", htmlPath}, &out); err != nil {
		t.Fatalf("report: %v\n%s", err, out.String())
	}
	terminal := out.String()
	t.Logf("terminal output:\n%s", terminal)
	for _, title := range []string{report.TitleFunnel, report.TitleBounce, report.TitleChurn, report.TitleRevenue,
		report.TitleTraffic, report.TitleEntryPages, report.TitleExitPages, report.TitleSatisfaction, report.TitleTrials, report.TitleRetention, report.TitleCLV} {
		if !strings.Contains(terminal, "\n"+title) {
			t.Errorf("terminal output has no table titled %q", title)
		}
	}
	if !strings.Contains(terminal, "wrote "+htmlPath) {
		t.Errorf("terminal output does not say it wrote %s", htmlPath)
	}

	conn, db, err := chsink.Connect(ctx, chsink.Endpoint{DSN: r.pf.dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	want := reporttest.Query(t, ctx, conn, db, 0)
	if len(want.Churn) < 3 || want.Funnel[2] == 0 || len(want.Revenue) == 0 || want.Sessions == 0 {
		t.Fatalf("the run produced too little to check: %+v", want)
	}
	if c := want.Catalogue; len(c.Traffic) == 0 || len(c.EntryPages) == 0 || len(c.ExitPages) == 0 || len(c.Satisfaction) == 0 ||
		len(c.Trials) == 0 || len(c.Retention) == 0 || len(c.CLV) == 0 {
		t.Fatalf("the run produced too little of the catalogue to check: %+v", c)
	}

	page, err := os.ReadFile(htmlPath)
	if err != nil {
		t.Fatal(err)
	}
	reporttest.CheckSelfContained(t, string(page))
	// The page as written holds the numbers too (html/template's markup).
	reporttest.CheckDOM(t, "the HTML file", string(page), want)

	artefacts := os.Getenv("FUNNELHOUSE_TEST_ARTIFACTS")
	if artefacts == "" {
		artefacts = t.TempDir()
	} else if err := os.MkdirAll(artefacts, 0o755); err != nil {
		t.Fatal(err)
	}

	t.Run("chromium", func(t *testing.T) {
		browser := findChromium()
		if browser == "" {
			t.Fatal("chromium is not installed: it renders the report page to check its numbers; install it with `apt-get install chromium` (make test does, through deploy/prereqs.sh)")
		}
		dom := chromium(t, browser, "--dump-dom", "file://"+htmlPath)
		if !strings.Contains(dom, "<svg") || !strings.Contains(dom, "funnelhouse report") {
			t.Fatalf("chromium's DOM holds no chart:\n%.2000s", dom)
		}
		reporttest.CheckDOM(t, "the DOM rendered by chromium", dom, want)

		shot := filepath.Join(artefacts, "report.png")
		chromium(t, browser, "--screenshot="+shot, "--window-size=1280,2400", "--hide-scrollbars", "--force-device-scale-factor=1", "file://"+htmlPath)
		if err := os.WriteFile(filepath.Join(artefacts, "report.html"), page, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s (and the page: %s)", shot, filepath.Join(artefacts, "report.html"))
		f, err := os.Open(shot)
		if err != nil {
			t.Fatalf("chromium wrote no screenshot: %v", err)
		}
		defer f.Close()
		if st, err := f.Stat(); err != nil || st.Size() == 0 {
			t.Fatalf("empty screenshot %s", shot)
		}
		img, err := png.Decode(f)
		if err != nil {
			t.Fatalf("screenshot %s is not a PNG: %v", shot, err)
		}
		if b := img.Bounds(); b.Dx() != 1280 || b.Dy() != 2400 {
			t.Errorf("screenshot is %dx%d, want 1280x2400", b.Dx(), b.Dy())
		}
		// Not a blank page: the charts bring many colours.
		colours := map[uint32]bool{}
		b := img.Bounds()
		for y := b.Min.Y; y < b.Max.Y; y += 3 {
			for x := b.Min.X; x < b.Max.X; x += 3 {
				cr, cg, cb, _ := img.At(x, y).RGBA()
				colours[cr>>8<<16|cg>>8<<8|cb>>8] = true
			}
		}
		if len(colours) < 50 {
			t.Errorf("screenshot has only %d colours: is the page blank?", len(colours))
		}
	})

	t.Run("days", func(t *testing.T) {
		path := filepath.Join(dir, "report7.html")
		var out bytes.Buffer
		if err := runReport(ctx, []string{"--clickhouse", r.pf.dsn, "--html", path, "--days", "7", "--bucket", "day"}, &out); err != nil {
			t.Fatalf("report --days 7: %v\n%s", err, out.String())
		}
		page, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		want7 := reporttest.Query(t, ctx, conn, db, 7)
		reporttest.CheckDOM(t, "the HTML file of --days 7", string(page), want7)
	})
}

// findChromium returns the path of a Chromium-like browser, or "".
func findChromium() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// chromium runs the headless browser, isolated (its own profile, no
// background networking), and returns its standard output.
func chromium(t *testing.T, browser string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
		"--user-data-dir=" + t.TempDir()}
	cmd := exec.CommandContext(ctx, browser, append(base, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", browser, strings.Join(args, " "), err, lastBytes(stderr.String(), 3000))
	}
	return stdout.String()
}

func lastBytes(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

func TestReportFlags(t *testing.T) {
	for _, args := range [][]string{{"--days", "-1"}, {"--sources", "0"}, {"--sources", "9"}, {"--bucket", "month"}, {"extra"}} {
		err := runReport(context.Background(), append([]string{"--clickhouse", "clickhouse://default@127.0.0.1:1/x"}, args...), &bytes.Buffer{})
		if err == nil || strings.Contains(err.Error(), "cannot reach") {
			t.Errorf("report %v: %v, want a flag error", args, err)
		}
	}
}
