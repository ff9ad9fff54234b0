package pipeline

import (
	"fmt"
	"testing"
	"time"

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
