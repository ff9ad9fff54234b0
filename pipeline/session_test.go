package pipeline

import (
	"cmp"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/funnelhouse/funnelhouse/pipeline/rows"
	"github.com/funnelhouse/funnelhouse/schemas"
)

// TestSessionURLsInterned checks the URL table of open sessions: one entry
// per distinct URL however many sessions are on it, the same after a
// restore, and empty once every session has closed, with each session's
// row carrying its own entry and exit URLs.
func TestSessionURLsInterned(t *testing.T) {
	const visitors, pages = 3000, 10
	clock := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	p := NewProcessor("u", 0, [2]string{"clickstream", "transactions"}, DefaultRules(), func() time.Time { return clock })
	p.SetEnd(schemas.Transactions, 0)
	offset := int64(0)
	add := func(v string, ts time.Time, url string) {
		value := fmt.Appendf(nil, `{"event_id":"e%d","type":"page_view","ts":%q,"visitor_id":%q,"url":%q}`, offset, ts.Format(time.RFC3339Nano), v, url)
		if err := p.Add(schemas.Clickstream, []byte(v), value, offset, clock); err != nil {
			t.Fatal(err)
		}
		offset++
	}
	entry := func(i int) string { return fmt.Sprintf("https://shop.example.com/p/%d", i%pages) }
	exit := func(i int) string { return fmt.Sprintf("https://shop.example.com/c/%d?sort=price", i%pages) }
	for i := range visitors {
		v := fmt.Sprintf("v%d", i)
		add(v, clock, entry(i))
		add(v, clock.Add(time.Second), exit(i+1)) // the exit moves on,
		add(v, clock.Add(2*time.Second), exit(i)) // and again
		if i%3 == 0 {
			add(v, clock.Add(3*time.Second), entry(i)) // back to the entry: one URL for both
		}
	}
	add("late-mover", clock.Add(11*time.Minute), "/") // the watermark passes the others
	p.Advance(clock.Add(20 * time.Minute))            // idle inputs: the watermark is 10 minutes before
	if p.OpenSessions() != visitors {
		t.Fatalf("%d sessions open, want %d", p.OpenSessions(), visitors)
	}
	checkURLs := func(p *Processor, what string) {
		t.Helper()
		refs := 0
		for r, n := range p.urls.refs {
			refs += int(n)
			if n > 0 && p.urls.ids[p.urls.names[r]] != urlRef(r) {
				t.Fatalf("%s: URL %q of reference %d is not interned under it", what, p.urls.names[r], r)
			}
		}
		if p.urls.len() != 2*pages || refs != 2*p.OpenSessions() {
			t.Fatalf("%s: %d URLs with %d references for %d open sessions, want %d URLs and 2 references a session", what, p.urls.len(), refs, p.OpenSessions(), 2*pages)
		}
	}
	checkURLs(p, "open")

	batch, _ := p.Cut()
	restored := NewProcessor("u", 0, [2]string{"clickstream", "transactions"}, DefaultRules(), func() time.Time { return clock })
	if _, err := restored.Restore(batch.State.All()); err != nil {
		t.Fatal(err)
	}
	checkURLs(restored, "restored")

	for _, q := range []*Processor{p, restored} {
		q.SetEnd(schemas.Clickstream, 0)
		q.SetEnd(schemas.Transactions, 0)
		q.Advance(clock.Add(2 * time.Hour))
		if q.OpenSessions() != 0 || q.urls.len() != 0 || len(q.urls.free) != len(q.urls.names)-1 {
			t.Fatalf("every session closed: %d open, %d URLs held, %d of %d references free", q.OpenSessions(), q.urls.len(), len(q.urls.free), len(q.urls.names)-1)
		}
		b, _ := q.Cut()
		closed := 0
		for _, s := range b.Sessions.All() {
			var i int
			if _, err := fmt.Sscanf(s.VisitorID, "v%d", &i); err != nil {
				continue
			}
			closed++
			wantExit := exit(i)
			if i%3 == 0 {
				wantExit = entry(i)
			}
			if s.EntryURL != entry(i) || s.ExitURL != wantExit {
				t.Fatalf("session of %s: entry %q exit %q, want %q and %q", s.VisitorID, s.EntryURL, s.ExitURL, entry(i), wantExit)
			}
		}
		if closed != visitors {
			t.Fatalf("%d sessions rows, want %d", closed, visitors)
		}
	}
}

// FuzzPlainHost checks that the fast path agrees with url.Parse wherever
// it answers.
func FuzzPlainHost(f *testing.F) {
	for _, ref := range []string{
		"https://www.google.com/search?q=x", "http://news.example.org", "t.co/abc", "https://a.com#x",
		"https://a.com:8080/", "HTTPS://A.COM/", "https://user@a.com/", "https://a.com/%zz", "https://a.com/ a",
		"ftp://a.com/", "//a.com/x", "/path", "a..b", "https://-a-.com?", "https://a.com/\x7f", "",
	} {
		f.Add(ref)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		if h, ok := plainHost(ref); ok {
			if want := parsedHost(ref); h != want {
				t.Fatalf("plainHost(%q) = %q, url.Parse gives %q", ref, h, want)
			}
		}
	})
}

// TestSessionFirstOfDay: one session per visitor, UTC day, source and
// medium is marked first_of_day, whatever the order of the day's sources,
// and the same after a restart between two sessions of the day (the
// visitor's pairs of the day are in its state row).
func TestSessionFirstOfDay(t *testing.T) {
	day := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	type visit struct {
		visitor        string
		at             time.Duration // after day's start
		source, medium string        // utm_source and utm_medium; "" for none
		first          bool
	}
	visits := []visit{
		{"v", 10 * time.Minute, "google", "cpc", true},
		{"w", 20 * time.Minute, "google", "cpc", true}, // another visitor
		{"v", 2 * time.Hour, "", "", true},
		{"v", 4 * time.Hour, "google", "cpc", false},
		{"v", 6 * time.Hour, "google", "email", true}, // the medium differs
		{"v", 8 * time.Hour, "", "", false},
		{"v", 10 * time.Hour, "google", "email", false},
		{"v", 24*time.Hour + 5*time.Minute, "google", "cpc", true}, // the next day
		{"v", 26 * time.Hour, "google", "cpc", false},
		{"w", 26 * time.Hour, "newsletter", "", true},
	}
	// Each visit beside an order of another visitor at the same ts: the
	// watermark follows the slower input.
	var records []benchRecord
	for i, v := range visits {
		ts := day.Add(v.at).Format(time.RFC3339)
		utm := ""
		if v.source != "" {
			utm = fmt.Sprintf(`,"utm_source":%q,"utm_medium":%q`, v.source, v.medium)
		}
		view := fmt.Sprintf(`{"event_id":"e%d","type":"page_view","ts":%q,"visitor_id":%q,"url":"https://shop.example.com/"%s}`, i, ts, v.visitor, utm)
		order := fmt.Sprintf(`{"event_id":"o%d","type":"order_completed","ts":%q,"visitor_id":"z","order_id":"%d","amount":9.5,"currency":"EUR"}`, i, ts, i)
		records = append(records, benchRecord{schemas.Clickstream, []byte(v.visitor), []byte(view)},
			benchRecord{schemas.Transactions, []byte("z"), []byte(order)})
	}
	want := sessionsWithRestart(t, records, nil)
	if len(want) != len(visits) {
		t.Fatalf("%d sessions, want %d", len(want), len(visits))
	}
	for i, v := range visits {
		if s := want[i]; s.VisitorID != v.visitor || s.FirstOfDay != v.first {
			t.Errorf("session of %s at %s from %q/%q: first_of_day %v, want %v", s.VisitorID, v.at, s.Source, s.Medium, s.FirstOfDay, v.first)
		}
	}
	for restartAt := range records {
		if got := sessionsWithRestart(t, records, []int{restartAt}); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("restarted after record %d:\n%v\nwithout:\n%v", restartAt, got, want)
		}
	}
}

// sessionsWithRestart runs records as runWithRestarts does, advancing
// after each, and returns the sessions rows by start.
func sessionsWithRestart(t *testing.T, records []benchRecord, restartAt []int) []rows.Session {
	t.Helper()
	var w *written
	runWithRestartsSetup(t, records, restartAt, 1, func(_ *Processor, cur *written) { w = cur })
	slices.SortFunc(w.sessions, func(a, b rows.Session) int { return cmp.Compare(a.StartMs, b.StartMs) })
	return w.sessions
}

// TestDayKeysManyPairs: a visitor with many pairs in one day (a short
// --session-gap and a source per session) is marked once per pair, in any
// order, and a new day starts afresh.
func TestDayKeysManyPairs(t *testing.T) {
	var d dayKeys
	const day = 20000
	for i := range 3000 {
		pair := dayPair(day, fmt.Sprintf("s%d", (i*7919)%1000), "cpc") // 1,000 pairs, each three times
		if got, want := d.mark(1, pair), i < 1000; got != want {
			t.Fatalf("session %d: marked %v, want %v", i, got, want)
		}
	}
	if n := 1 + len(d.more[1]); n != 1000 {
		t.Fatalf("%d pairs kept, want 1000", n)
	}
	if !d.mark(1, dayPair(day+1, "s0", "cpc")) || len(d.more[1]) != 0 {
		t.Fatalf("the next day did not start afresh: %d pairs kept", 1+len(d.more[1]))
	}
	d.prune(day + 2)
	if len(d.first) != 0 {
		t.Fatalf("%d visitors kept after their day was pruned", len(d.first))
	}
}
