package pipeline

import (
	"encoding/binary"
	"net/url"
	"strings"
	"time"

	"github.com/segmentio/ksuid"

	"github.com/funnelhouse/funnelhouse/pipeline/rows"
	"github.com/funnelhouse/funnelhouse/schemas"
)

// session is a visitor's open session (SPEC §4). Sessions live by value in
// the Processor's slab and are reused once closed, URL buffer included, so
// that opening one allocates nothing in the steady state.
type session struct {
	id                       [ksuidLen]byte // KSUID text
	firstIsPageView          bool
	first                    bool   // the visitor's first session
	entryLen                 uint16 // urls[:entryLen] is the entry URL, the rest the exit URL
	startMs, endMs           int64
	events, pageViews        uint32
	orders                   uint32
	source, medium, campaign symbol
	customerID               strRef
	revenue                  schemas.Amount
	urls                     []byte
}

const ksuidLen = 27

func (s *session) entryURL() []byte { return s.urls[:s.entryLen] }
func (s *session) exitURL() []byte  { return s.urls[s.entryLen:] }

// startSession opens a session for v at clickstream event e.
func (p *Processor) startSession(v *visitor, e *schemas.Event) *session {
	var i uint32
	if n := len(p.freeSessions); n > 0 {
		i = p.freeSessions[n-1]
		p.freeSessions = p.freeSessions[:n-1]
	} else {
		i, _ = p.sessions.add()
	}
	s := p.sessions.at(i)
	urls := append(s.urls[:0], e.URL...)
	*s = session{
		startMs:         e.TsMs,
		endMs:           e.TsMs,
		events:          1,
		pageViews:       b2u(e.Type == schemas.PageView),
		firstIsPageView: e.Type == schemas.PageView,
		entryLen:        uint16(len(e.URL)), // url is at most 2048 bytes
		urls:            append(urls, e.URL...),
		source:          p.symbols.intern(Source(e)),
		medium:          p.symbols.intern(e.UTMMedium),
		campaign:        p.symbols.intern(e.UTMCampaign),
		customerID:      v.customerID,
		first:           !v.is(hadSession),
	}
	v.set(hadSession, true)
	SessionIDTo(s.id[:0], e.VisitorID, e.EventID, e.TsMs)
	v.session = i + 1
	return s
}

func (s *session) extend(e *schemas.Event, customerID strRef) {
	s.endMs = e.TsMs
	s.events++
	s.pageViews += b2u(e.Type == schemas.PageView)
	s.urls = append(s.urls[:s.entryLen], e.URL...)
	s.customerID = customerID
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
	return string(SessionIDTo(nil, visitorID, firstEventID, startMs))
}

// SessionIDTo appends SessionID's text to b.
func SessionIDTo(b []byte, visitorID, firstEventID string, startMs int64) []byte {
	var payload [16]byte
	binary.BigEndian.PutUint64(payload[:8], pairHash(visitorID, firstEventID))
	binary.BigEndian.PutUint64(payload[8:], pairHash(firstEventID, visitorID))
	t := time.Unix(rows.FloorDiv(startMs, 1000), 0)
	if t.Before(ksuidEpoch) {
		t = ksuidEpoch
	}
	id, err := ksuid.FromParts(t, payload[:])
	if err != nil {
		panic("BUG: ksuid.FromParts with a 16-byte payload: " + err.Error())
	}
	return id.Append(b)
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
	if h, ok := plainHost(ref); ok {
		return h
	}
	return parsedHost(ref)
}

// parsedHost is referrerHost by url.Parse, for any referrer.
func parsedHost(ref string) string {
	if !strings.Contains(ref, "://") {
		ref = "//" + ref
	}
	u, err := url.Parse(ref)
	if err != nil {
		return ""
	}
	return strings.ToLower(u.Hostname())
}

// plainHost is referrerHost for the common referrer, without url.Parse's
// allocations: "http://" or "https://" or no scheme, then a host of
// lower-case letters, digits, dots and dashes, then the end or one of
// "/?#", and no byte anywhere that url.Parse could reject (a control byte,
// a space or '%'). It reports false for anything else.
func plainHost(ref string) (string, bool) {
	rest, ok := strings.CutPrefix(ref, "https://")
	if !ok {
		rest, ok = strings.CutPrefix(ref, "http://")
	}
	if !ok && strings.Contains(ref, "://") {
		return "", false
	}
	end := len(rest)
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if c == '/' || c == '?' || c == '#' {
			end = i
			break
		}
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '-') {
			return "", false
		}
	}
	if end == 0 {
		return "", false
	}
	for i := end; i < len(rest); i++ {
		if c := rest[i]; c <= ' ' || c == 0x7f || c == '%' {
			return "", false
		}
	}
	return rest[:end], true
}
