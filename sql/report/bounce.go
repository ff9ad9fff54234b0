package report

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

type bounceView struct {
	Range, Bucket string
	Empty         bool
	Axes          axes
	Series        []lineSeries[bounceDot]
	Table         htmlTable
}

type bounceDot struct {
	X, Y, R           float64
	Source, Bucket    string
	Rate              float64
	Sessions, Bounces uint64
	Title             string
}

func buildBounce(d *Data, topSources int, bucket string) bounceView {
	v := bounceView{Axes: newAxes("bounce rate"), Empty: len(d.bounce) == 0, Range: "no rows"}
	if v.Empty {
		v.Bucket = "day"
		return v
	}
	first, last := d.bounce[0].day, d.bounce[len(d.bounce)-1].day
	v.Range = "days " + first + " .. " + last
	bucket = chooseBucket(bucket, parseDay(first), parseDay(last))
	v.Bucket = bucket
	bb := aggregateBounce(d.bounce, bucket)
	sources := bb.topSources(topSources)
	bt0, bt1 := parseDay(bb.buckets[0]), parseDay(bb.buckets[len(bb.buckets)-1])
	pl := bouncePlot{bucket: bucket, buckets: bb.buckets, sc: newDayScale(v.Axes, bt0, bt1), r: dotRadius(len(bb.buckets))}
	pl.top = v.Axes.yScale(math.Min(bb.maxRate(sources), 1), fmtPctShort)
	v.Axes.XTicks = dateTicks(pl.sc, bt1)
	pl.axes = v.Axes
	for i, s := range sources {
		src := s
		v.Series = append(v.Series, pl.line(s, seriesClasses[i], func(b string) *bounceAgg { return bb.bySource[src][b] }))
	}
	v.Series = append(v.Series, pl.line("(all sources)", "call", func(b string) *bounceAgg { return bb.all[b] }))
	v.Table = bb.table(bucket, sources)
	return v
}

// chooseBucket resolves "auto": weeks when the days span more than 92.
func chooseBucket(bucket string, t0, t1 time.Time) string {
	if bucket != "auto" {
		return bucket
	}
	if t1.Sub(t0) > 92*24*time.Hour {
		return "week"
	}
	return "day"
}

// bucketOf is the bucket a day falls in: the day, or its week's Monday.
func bucketOf(bucket, day string) string {
	if bucket == "week" {
		t := parseDay(day)
		return t.AddDate(0, 0, -((int(t.Weekday()) + 6) % 7)).Format("2006-01-02") // Monday
	}
	return day
}

// bounceBuckets is bounce_daily summed by bucket, for every source and all.
type bounceBuckets struct {
	buckets  []string // ordered
	all      map[string]*bounceAgg
	bySource map[string]map[string]*bounceAgg
	total    map[string]uint64 // sessions by source
}

func aggregateBounce(rows []bounceRow, bucket string) bounceBuckets {
	bb := bounceBuckets{all: map[string]*bounceAgg{}, bySource: map[string]map[string]*bounceAgg{}, total: map[string]uint64{}}
	for _, r := range rows {
		b := bucketOf(bucket, r.day)
		if bb.all[b] == nil {
			bb.all[b] = &bounceAgg{}
			bb.buckets = append(bb.buckets, b)
		}
		bb.all[b].sessions += r.sessions
		bb.all[b].bounces += r.bounces
		if bb.bySource[r.source] == nil {
			bb.bySource[r.source] = map[string]*bounceAgg{}
		}
		a := bb.bySource[r.source][b]
		if a == nil {
			a = &bounceAgg{}
			bb.bySource[r.source][b] = a
		}
		a.sessions += r.sessions
		a.bounces += r.bounces
		bb.total[r.source] += r.sessions
	}
	sort.Strings(bb.buckets)
	return bb
}

// topSources are the n sources with the most sessions, ties by name.
func (bb *bounceBuckets) topSources(n int) []string {
	sources := make([]string, 0, len(bb.total))
	for s := range bb.total {
		sources = append(sources, s)
	}
	sort.Slice(sources, func(i, j int) bool {
		if bb.total[sources[i]] != bb.total[sources[j]] {
			return bb.total[sources[i]] > bb.total[sources[j]]
		}
		return sources[i] < sources[j]
	})
	if len(sources) > n {
		sources = sources[:n]
	}
	return sources
}

// maxRate is the highest rate the chart draws: all sources' and the
// sources'.
func (bb *bounceBuckets) maxRate(sources []string) float64 {
	maxRate := 0.0
	for _, b := range bb.buckets {
		maxRate = math.Max(maxRate, ratio(bb.all[b].bounces, bb.all[b].sessions))
		for _, s := range sources {
			if a := bb.bySource[s][b]; a != nil {
				maxRate = math.Max(maxRate, ratio(a.bounces, a.sessions))
			}
		}
	}
	return maxRate
}

// table is the chart's numbers: a row per bucket, a column per line.
func (bb *bounceBuckets) table(bucket string, sources []string) htmlTable {
	t := htmlTable{Head: []string{bucketNoun(bucket)}}
	for _, s := range sources {
		t.Head = append(t.Head, displaySource(s))
	}
	t.Head = append(t.Head, "(all sources)")
	for _, b := range bb.buckets {
		row := []string{b}
		for _, s := range sources {
			row = append(row, rateCell(bb.bySource[s][b]))
		}
		row = append(row, rateCell(bb.all[b]))
		t.Rows = append(t.Rows, row)
	}
	return t
}

// bouncePlot places the bounce chart's lines.
type bouncePlot struct {
	axes    axes
	sc      dayScale
	top, r  float64
	bucket  string
	buckets []string
}

// line draws one source's rates (get returns nil for a bucket it lacks).
func (pl *bouncePlot) line(name, class string, get func(b string) *bounceAgg) lineSeries[bounceDot] {
	ls := lineSeries[bounceDot]{Name: name, Class: class}
	var path strings.Builder
	prevIdx := -2
	for i, b := range pl.buckets {
		a := get(b)
		if a == nil || a.sessions == 0 {
			continue
		}
		rate := ratio(a.bounces, a.sessions)
		dot := bounceDot{X: pl.sc.x(parseDay(b)), Y: pl.axes.y(rate, pl.top), R: pl.r, Source: name, Bucket: b, Rate: rate, Sessions: a.sessions, Bounces: a.bounces}
		dot.Title = fmt.Sprintf("%s, %s %s: %s bounce rate (%s of %s sessions)", displaySource(name), bucketNoun(pl.bucket), b, fmtPct(rate), fmtInt(a.bounces), fmtInt(a.sessions))
		// A bucket without sessions breaks the line; with weekly
		// buckets a missing week is a gap too.
		cmd := "L"
		if prevIdx != i-1 {
			cmd = "M"
		}
		fmt.Fprintf(&path, "%s%s %s ", cmd, fmtCoord(dot.X), fmtCoord(dot.Y))
		prevIdx = i
		ls.Dots = append(ls.Dots, dot)
	}
	ls.Path = strings.TrimSpace(path.String())
	return ls
}

// bounceAgg is the sessions and bounces of a source (or all) in a bucket.
type bounceAgg struct{ sessions, bounces uint64 }

func rateCell(a *bounceAgg) string {
	if a == nil || a.sessions == 0 {
		return "-"
	}
	return fmtPct(ratio(a.bounces, a.sessions))
}

func bucketNoun(bucket string) string {
	if bucket == "week" {
		return "week of"
	}
	return "day"
}
