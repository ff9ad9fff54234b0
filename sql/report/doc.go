// Package report reads the BI views that the sql migrations define
// (funnel_daily, bounce_daily, churn_monthly, revenue_daily, and the
// lifecycle catalogue of SPEC §6.1: a section per stage, one file per chart:
// traffic.go, entrypages.go, satisfaction.go, trials.go, retention.go,
// clv.go) and shows them
// to people: as terminal tables and as one self-contained HTML page whose
// charts are inline SVG drawn here (no script, no network). Every chart
// element carries the numbers it shows in data-* attributes, so that a test
// (or a curious reader) can check them.
//
// The way through the package: Load queries the views into Data, BuildPage
// turns Data into a Page (the view models with their chart geometry), and
// Page.Render fills report.html.tmpl. PrintTables is the terminal side; it
// queries the views itself and prints what ClickHouse returns.
package report
