package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/funnelhouse/funnelhouse/sql/report"
)

type reportFlags struct {
	ch      clickhouseFlags
	html    string
	days    int
	sources int
	bucket  string
}

func reportCmd(ctx context.Context, args []string) error {
	return runReport(ctx, args, os.Stdout)
}

// runReport is reportCmd writing its terminal output to w.
func runReport(ctx context.Context, args []string, w io.Writer) error {
	fs := newFlagSet("report", "The metrics of the four BI views (funnel_daily, bounce_daily, churn_monthly, revenue_daily)\n"+
		"as terminal tables and, with --html, as one self-contained HTML page with charts (inline SVG:\n"+
		"no script, nothing fetched from the network). Reads only; the database must have been migrated.")
	var f reportFlags
	f.ch.register(fs)
	fs.StringVar(&f.html, "html", "", "also write the report as one self-contained HTML page to this `file`")
	fs.IntVar(&f.days, "days", 0, "limit the day-level views (funnel cohorts, bounce and revenue days) to the last `N` days up to the latest day present in each; 0: all (churn_monthly is always shown in full)")
	fs.IntVar(&f.sources, "sources", 5, "sources drawn in the bounce-rate chart: the `N` with the most sessions (1-8)")
	fs.StringVar(&f.bucket, "bucket", "auto", "time bucket of the bounce-rate chart: day, week, or auto (week when the days span more than 92 days)")
	if err := parseWithEnv(fs, args); err != nil {
		return err
	}
	switch {
	case f.days < 0:
		return fmt.Errorf("--days must be >= 0, got %d", f.days)
	case f.sources < 1 || f.sources > report.MaxSources:
		return fmt.Errorf("--sources must be in [1, %d], got %d", report.MaxSources, f.sources)
	case f.bucket != "auto" && f.bucket != "day" && f.bucket != "week":
		return fmt.Errorf("--bucket must be day, week or auto, got %q", f.bucket)
	}
	conn, db, err := f.ch.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := report.CheckViews(ctx, conn, db); err != nil {
		return err
	}
	if err := report.PrintTables(ctx, w, conn, db, f.days); err != nil {
		return err
	}
	if f.html == "" {
		return nil
	}
	data, err := report.Load(ctx, conn, db, f.days)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := report.BuildPage(data, f.sources, f.bucket, time.Now()).Render(&buf); err != nil {
		return err
	}
	if err := writeFileAtomic(f.html, buf.Bytes()); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nwrote %s (%d KiB)\n", f.html, (buf.Len()+1023)/1024)
	return nil
}

// writeFileAtomic replaces path with one rename, so that whoever reads the
// page (a browser, a web server) never sees half of it.
func writeFileAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	return nil
}
