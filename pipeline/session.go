package pipeline

import (
	"encoding/binary"
	"net/url"
	"strings"
	"time"

	"github.com/segmentio/ksuid"

	"github.com/funnelhouse/funnelhouse/schemas"
)

// session is a visitor's open session (SPEC §4). Sessions are recycled by
// the Processor once closed.
type session struct {
	id                       string
	startMs, endMs           int64
	events, pageViews        uint32
	firstIsPageView          bool
	entryURL                 string
	exitURL                  string // the last event's, in its decoder buffer until the session closes
	source, medium, campaign string // interned
	customerID               string
	orders                   uint32
	revenue                  schemas.Amount
}

// startSession opens a session for v at clickstream event e.
func (p *Processor) startSession(v *visitor, e *schemas.Event) *session {
	var s *session
	if n := len(p.freeSessions); n > 0 {
		s = p.freeSessions[n-1]
		p.freeSessions = p.freeSessions[:n-1]
	} else {
		s = new(session)
	}
	entry := strings.Clone(e.URL)
	*s = session{
		id:              SessionID(e.VisitorID, e.EventID, e.TsMs),
		startMs:         e.TsMs,
		endMs:           e.TsMs,
		events:          1,
		pageViews:       b2u(e.Type == schemas.PageView),
		firstIsPageView: e.Type == schemas.PageView,
		entryURL:        entry,
		exitURL:         entry, // not e.URL: that would keep the event's buffer alive
		source:          p.strings.intern(Source(e)),
		medium:          p.strings.intern(e.UTMMedium),
		campaign:        p.strings.intern(e.UTMCampaign),
		customerID:      v.customerID,
	}
	return s
}

func (s *session) extend(e *schemas.Event, customerID string) {
	s.endMs = e.TsMs
	s.events++
	s.pageViews += b2u(e.Type == schemas.PageView)
	s.exitURL = e.URL
	s.customerID = customerID
}

// interner shares the text of low-cardinality strings (sources, mediums,
// campaigns) between sessions and visitors instead of copying it out of
// each event's buffer. Past its size limit it copies.
type interner map[string]string

const internLimit = 100_000

func (in interner) intern(s string) string {
	if s == "" {
		return ""
	}
	if v, ok := in[s]; ok {
		return v
	}
	c := strings.Clone(s)
	if len(in) < internLimit {
		in[c] = c
	}
	return c
}

// covers reports whether a transaction at ts belongs to the session:
// start <= ts < end + gap.
func (s *session) covers(ts int64, gap int64) bool { return ts >= s.startMs && ts < s.endMs+gap }

func (s *session) isBounce() bool { return s.events == 1 && s.firstIsPageView && s.orders == 0 }

func b2u(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

// ksuidEpoch is the earliest time a KSUID can hold.
var ksuidEpoch = time.Unix(ksuid.Nil.Time().Unix(), 0)

// SessionID is deterministic: a KSUID whose time is the session start and
// whose payload hashes the visitor and the first event, so a replay yields
// the same id.
func SessionID(visitorID, firstEventID string, startMs int64) string {
	var payload [16]byte
	binary.BigEndian.PutUint64(payload[:8], pairHash(visitorID, firstEventID))
	binary.BigEndian.PutUint64(payload[8:], pairHash(firstEventID, visitorID))
	t := time.Unix(floorDiv(startMs, 1000), 0)
	if t.Before(ksuidEpoch) {
		t = ksuidEpoch
	}
	id, err := ksuid.FromParts(t, payload[:])
	if err != nil {
		panic("BUG: ksuid.FromParts with a 16-byte payload: " + err.Error())
	}
	return id.String()
}

// Source is the attribution rule of SPEC §4: utm_source, else the
// referrer's host, else "(direct)".
func Source(e *schemas.Event) string {
	if e.UTMSource != "" {
		return e.UTMSource
	}
	if h := referrerHost(e.Referrer); h != "" {
		return h
	}
	return "(direct)"
}

func referrerHost(ref string) string {
	if ref == "" {
		return ""
	}
	if !strings.Contains(ref, "://") {
		ref = "//" + ref
	}
	u, err := url.Parse(ref)
	if err != nil {
		return ""
	}
	return strings.ToLower(u.Hostname())
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}
