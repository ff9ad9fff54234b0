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
	t0, t1 := parseDay(first), parseDay(last)
	if bucket == "auto" {
		bucket = "day"
		if t1.Sub(t0) > 92*24*time.Hour {
			bucket = "week"
		}
	}
	v.Bucket = bucket
	bucketOf := func(day string) string {
		if bucket == "week" {
			t := parseDay(day)
			return t.AddDate(0, 0, -((int(t.Weekday()) + 6) % 7)).Format("2006-01-02") // Monday
		}
		return day
	}
	type agg = bounceAgg
	bySource := map[string]map[string]*agg{}
	all := map[string]*agg{}
	total := map[string]uint64{}
	var buckets []string
	for _, r := range d.bounce {
		b := bucketOf(r.day)
		if all[b] == nil {
			all[b] = &agg{}
			buckets = append(buckets, b)
		}
		all[b].sessions += r.sessions
		all[b].bounces += r.bounces
		if bySource[r.source] == nil {
			bySource[r.source] = map[string]*agg{}
		}
		a := bySource[r.source][b]
		if a == nil {
			a = &agg{}
			bySource[r.source][b] = a
		}
		a.sessions += r.sessions
		a.bounces += r.bounces
		total[r.source] += r.sessions
	}
	sort.Strings(buckets)
	sources := make([]string, 0, len(total))
	for s := range total {
		sources = append(sources, s)
	}
	sort.Slice(sources, func(i, j int) bool {
		if total[sources[i]] != total[sources[j]] {
			return total[sources[i]] > total[sources[j]]
		}
		return sources[i] < sources[j]
	})
	if len(sources) > topSources {
		sources = sources[:topSources]
	}
	maxRate := 0.0
	for _, b := range buckets {
		maxRate = math.Max(maxRate, ratio(all[b].bounces, all[b].sessions))
		for _, s := range sources {
			if a := bySource[s][b]; a != nil {
				maxRate = math.Max(maxRate, ratio(a.bounces, a.sessions))
			}
		}
	}
	top := v.Axes.yScale(math.Min(maxRate, 1), fmtPctShort)
	bt0, bt1 := parseDay(buckets[0]), parseDay(buckets[len(buckets)-1])
	sc := newDayScale(v.Axes, bt0, bt1)
	v.Axes.XTicks = dateTicks(sc, bt1)
	r := dotRadius(len(buckets))
	mk := func(name, class string, get func(b string) *agg) lineSeries[bounceDot] {
		ls := lineSeries[bounceDot]{Name: name, Class: class}
		var path strings.Builder
		prevIdx := -2
		for i, b := range buckets {
			a := get(b)
			if a == nil || a.sessions == 0 {
				continue
			}
			rate := ratio(a.bounces, a.sessions)
			dot := bounceDot{X: sc.x(parseDay(b)), Y: v.Axes.y(rate, top), R: r, Source: name, Bucket: b, Rate: rate, Sessions: a.sessions, Bounces: a.bounces}
			dot.Title = fmt.Sprintf("%s, %s %s: %s bounce rate (%s of %s sessions)", displaySource(name), bucketNoun(bucket), b, fmtPct(rate), fmtInt(a.bounces), fmtInt(a.sessions))
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
	for i, s := range sources {
		src := s
		v.Series = append(v.Series, mk(s, seriesClasses[i], func(b string) *agg { return bySource[src][b] }))
	}
	v.Series = append(v.Series, mk("(all sources)", "call", func(b string) *agg { return all[b] }))

	v.Table.Head = []string{bucketNoun(bucket)}
	for _, s := range v.Series {
		v.Table.Head = append(v.Table.Head, displaySource(s.Name))
	}
	for _, b := range buckets {
		row := []string{b}
		for _, s := range sources {
			row = append(row, rateCell(bySource[s][b]))
		}
		row = append(row, rateCell(all[b]))
		v.Table.Rows = append(v.Table.Rows, row)
	}
	return v
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
