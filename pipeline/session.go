package pipeline

import (
	"encoding/binary"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/segmentio/ksuid"

	"github.com/funnelhouse/funnelhouse/pipeline/rows"
	"github.com/funnelhouse/funnelhouse/schemas"
)

// session is a visitor's open session (SPEC §4). Sessions live by value in
// the Processor's slab and are reused once closed. They hold no pointer:
// the garbage collector never scans them, and opening one allocates
// nothing in the steady state.
type session struct {
	id                       [ksuidLen]byte // KSUID text
	firstIsPageView          bool
	first                    bool // the visitor's first session
	firstOfDay               bool // the visitor's first that day with its source and medium (see dayKeys)
	startMs, endMs           int64
	events, pageViews        uint32
	orders                   uint32
	source, medium, campaign symbol
	entry, exit              urlRef
	customerID               strRef
	revenue                  schemas.Amount
}

const ksuidLen = 27

// startSession opens a session for v at clickstream event e.
func (p *Processor) startSession(vi uint32, v *visitor, e *schemas.Event) *session {
	var i uint32
	if n := len(p.freeSessions); n > 0 {
		i = p.freeSessions[n-1]
		p.freeSessions = p.freeSessions[:n-1]
	} else {
		i, _ = p.sessions.add()
	}
	s := p.sessions.at(i)
	entry := p.urls.ref(e.URL)
	source := Source(e)
	*s = session{
		startMs:         e.TsMs,
		endMs:           e.TsMs,
		events:          1,
		pageViews:       b2u(e.Type == schemas.PageView),
		firstIsPageView: e.Type == schemas.PageView,
		entry:           entry,
		exit:            p.urls.hold(entry),
		source:          p.symbols.intern(source),
		medium:          p.symbols.intern(e.UTMMedium),
		campaign:        p.symbols.intern(e.UTMCampaign),
		customerID:      v.customerID,
		first:           !v.is(hadSession),
		firstOfDay:      p.visitors.days.mark(vi, dayPair(dayOf(e.TsMs), source, e.UTMMedium)),
	}
	v.set(hadSession, true)
	SessionIDTo(s.id[:0], e.VisitorID, e.EventID, e.TsMs)
	v.session = i + 1
	return s
}

// dayKeys remembers, per visitor, the (source, medium) pairs of the
// sessions it started on the UTC day of its latest session start, so that
// exactly one session per visitor, day, source and medium is marked
// first_of_day, and traffic_daily counts its visitors as a sum of marks
// rather than distinct visitor ids at query time. A visitor's sessions
// start in ts order, so a session on a later day starts the set afresh;
// entries of days no session can start on any more are pruned, so only
// the visitors active in the last day or two have one.
//
// A pair is kept as a dayPair: the day in the top 16 bits, the low 48 bits
// of pairHash(source, medium) below (two pairs of one visitor and day are
// told apart unless their hashes agree on 48 bits). The first map's values
// hold no pointer: the garbage collector does not scan it.
type dayKeys struct {
	first map[uint32]uint64   // by visitor slot: the day's first pair
	more  map[uint32][]uint64 // the day's later pairs, for the few visitors with several
	// pruned: the days before it are pruned already.
	pruned uint16
}

func dayPair(day uint16, source, medium string) uint64 {
	return uint64(day)<<48 | pairHash(source, medium)&(1<<48-1)
}

func pairDay(pair uint64) uint16 { return uint16(pair >> 48) }

// mark records a session of visitor vi with pair (a dayPair) and reports
// whether it is the visitor's first with that pair that day.
func (d *dayKeys) mark(vi uint32, pair uint64) bool {
	if d.first == nil {
		d.first, d.more = map[uint32]uint64{}, map[uint32][]uint64{}
	}
	first, ok := d.first[vi]
	if !ok || pairDay(first) != pairDay(pair) {
		d.first[vi] = pair
		if len(d.more) > 0 {
			delete(d.more, vi)
		}
		return true
	}
	if first == pair {
		return false
	}
	// Sorted, so that a visitor with many pairs a day (a short
	// --session-gap and a source per session) costs a search, not a scan.
	more := d.more[vi]
	i, found := slices.BinarySearch(more, pair)
	if !found {
		d.more[vi] = slices.Insert(more, i, pair)
	}
	return !found
}

// drop forgets visitor vi's pairs (its slot is freed).
func (d *dayKeys) drop(vi uint32) {
	delete(d.first, vi)
	delete(d.more, vi)
}

// prune drops the pairs of days before day.
func (d *dayKeys) prune(day uint16) {
	if day <= d.pruned {
		return
	}
	d.pruned = day
	for vi, first := range d.first {
		if pairDay(first) < day {
			d.drop(vi)
		}
	}
}

// appendTo encodes visitor vi's pairs of the day: their count, then each.
func (d *dayKeys) appendTo(b []byte, vi uint32) []byte {
	first, ok := d.first[vi]
	if !ok {
		return append(b, 0)
	}
	more := d.more[vi]
	b = binary.AppendUvarint(b, uint64(1+len(more)))
	b = binary.LittleEndian.AppendUint64(b, first)
	for _, m := range more {
		b = binary.LittleEndian.AppendUint64(b, m)
	}
	return b
}

// read restores visitor vi's pairs as appendTo wrote them.
func (d *dayKeys) read(r *reader, vi uint32) {
	n := r.uvarint()
	for i := uint64(0); i < n && r.err == nil; i++ {
		d.mark(vi, r.uint64())
	}
}

func (p *Processor) extendSession(s *session, e *schemas.Event, customerID strRef) {
	s.endMs = e.TsMs
	s.events++
	s.pageViews += b2u(e.Type == schemas.PageView)
	if e.URL != p.urls.name(s.exit) {
		exit := s.exit
		s.exit = p.urls.ref(e.URL)
		p.urls.unref(exit)
	}
	s.customerID = customerID
}

// urlRef is an interned URL in a urlTable. 0 is "".
type urlRef uint32

// urlTable interns the entry and exit URLs of open sessions, counting the
// sessions that refer to each, so that a session holds two 4-byte
// references instead of a URL buffer, and a page that many sessions are
// on is kept once. A URL is dropped with its last reference: the table
// holds the pages of the open sessions, not every URL ever seen, however
// many distinct URLs the traffic carries.
type urlTable struct {
	names []string
	refs  []uint32 // by urlRef; refs[0] is unused
	ids   map[string]urlRef
	free  []urlRef
}

func newURLTable() urlTable {
	return urlTable{names: []string{""}, refs: []uint32{0}, ids: map[string]urlRef{}}
}

// ref returns url's reference, counting one more holder of it.
func (t *urlTable) ref(url string) urlRef {
	if url == "" {
		return 0
	}
	if r, ok := t.ids[url]; ok {
		t.refs[r]++
		return r
	}
	c := strings.Clone(url) // url may live in an event's chunk
	var r urlRef
	if n := len(t.free); n > 0 {
		r, t.free = t.free[n-1], t.free[:n-1]
		t.names[r], t.refs[r] = c, 1
	} else {
		r = urlRef(len(t.names))
		t.names, t.refs = append(t.names, c), append(t.refs, 1)
	}
	t.ids[c] = r
	return r
}

// hold counts one more holder of r and returns it.
func (t *urlTable) hold(r urlRef) urlRef {
	if r != 0 {
		t.refs[r]++
	}
	return r
}

// unref drops one holder of r, and the URL with its last holder.
func (t *urlTable) unref(r urlRef) {
	if r == 0 {
		return
	}
	if t.refs[r]--; t.refs[r] == 0 {
		delete(t.ids, t.names[r])
		t.names[r] = ""
		t.free = append(t.free, r)
	}
}

// name is r's URL. The string stays valid after r is dropped.
func (t *urlTable) name(r urlRef) string { return t.names[r] }

// len is the number of distinct URLs held.
func (t *urlTable) len() int { return len(t.ids) }

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
