package schemas

import (
	"bytes"
	"time"

	"github.com/valyala/fastjson"
)

// MaxValueBytes bounds a record value; larger values are rejected with
// ReasonTooLarge before any parsing.
const MaxValueBytes = 256 << 10

// Decoder turns Kafka records into Events (SPEC §2).
//
// Decoder is not safe for concurrent use; keep one per goroutine (it reuses
// scratch buffers).
type Decoder struct {
	now func() time.Time

	// Per-Decode state, reset at the start of each call.
	value []byte              // the record value, during Decode only
	vals  [numFields]jval     // the known top-level fields
	ukeys []span              // the unknown top-level keys, as written in buf
	seen  map[string]struct{} // unknown keys, once there are many of them
	buf   []byte              // Props, then all string bytes of one event, copied once into a string
	arena Arena               // where those strings live
	unesc []byte              // decoded text of the known strings that had escapes
	tmp   []byte              // scratch: one decoded key or prop string

	p fastjson.Parser // names the fault of a value that scan rejects (badJSON)
}

// NewDecoder returns a Decoder. now is the processing clock used for the
// "not more than 1 h after the clock" rule on ts; nil means time.Now.
func NewDecoder(now func() time.Time) *Decoder {
	if now == nil {
		now = time.Now
	}
	return &Decoder{now: now}
}

// Decode fills *ev from one Kafka record of the given topic; on failure it
// returns a non-nil *Error and ev is unspecified.
//
// Checks run in a fixed order and the first failure wins, so the reason is
// stable: size of value; UTF-8, JSON syntax, object, duplicate keys; record
// key; then type, event_id, visitor_id (and key_mismatch), ts, and the other
// fields in SPEC table order.
//
// Decode does not keep key or value: every string in ev is a copy, so the
// caller may reuse its buffers at once. The strings of an event live in
// the Decoder's Arena with those of the events decoded around it, so
// keeping any of them alive keeps its chunk (about 250 events) alive:
// strings.Clone a string that outlives the event by much, such as a
// visitor's id.
func (d *Decoder) Decode(topic Topic, key, value []byte, ev *Event) *Error {
	if len(value) > MaxValueBytes {
		return errorf(ReasonTooLarge, "value: %d bytes is more than the limit of %d", len(value), MaxValueBytes)
	}
	// The whole value is checked before any field, so that bad_json wins.
	d.vals = [numFields]jval{}
	d.ukeys = d.ukeys[:0]
	d.buf = d.buf[:0]
	d.unesc = d.unesc[:0]
	if len(d.seen) > 0 {
		clear(d.seen)
	}
	if !d.scan(value) {
		return d.badJSON(value)
	}
	if len(key) == 0 {
		return errorf(ReasonMissingKey, "record key: absent or empty, it must be the visitor_id")
	}
	d.value = value
	e := d.decodeFields(topic, key, ev)
	d.value = nil
	return e
}

// decodeFields checks the fields of a scanned value and fills *ev.
func (d *Decoder) decodeFields(topic Topic, key []byte, ev *Event) *Error {
	// type
	typ, e := d.decodeType(topic)
	if e != nil {
		return e
	}
	// event_id, visitor_id
	if e := d.requiredString(fEventID, maxEventIDBytes); e != nil {
		return e
	}
	if e := d.requiredString(fVisitorID, maxVisitorIDBytes); e != nil {
		return e
	}
	if vid := d.text(fVisitorID); !bytes.Equal(key, vid) {
		return errorf(ReasonKeyMismatch, "field visitor_id: %s differs from the record key %s",
			quote(vid), quote(key))
	}
	// ts
	tsMs, e := d.decodeTs()
	if e != nil {
		return e
	}
	// optional strings
	for _, o := range optStrings {
		if e := d.optionalString(o.f, o.max); e != nil {
			return e
		}
	}
	// order_id, amount, currency: required on order_* events, checked when present elsewhere.
	isOrder := typ == OrderCompleted || typ == OrderRefunded
	if e := d.stringField(fOrderID, maxOtherBytes, isOrder); e != nil {
		return e
	}
	amount, e := d.decodeAmount(isOrder)
	if e != nil {
		return e
	}
	if e := d.decodeCurrency(isOrder); e != nil {
		return e
	}
	// rating, nps, csat
	rating, e := d.smallInt(fRating, 1, 5, typ == Review)
	if e != nil {
		return e
	}
	nps, e := d.smallInt(fNPS, 0, 10, false)
	if e != nil {
		return e
	}
	csat, e := d.smallInt(fCSAT, 1, 5, false)
	if e != nil {
		return e
	}

	// Copy every string of the event into one buffer, after the Props that
	// scan wrote there, and that into the arena as one string, so that an
	// event costs a few hundred bytes of a chunk and no allocation of its
	// own. The fields are substrings of it. Every string field is valid
	// now: a string, or absent (no text).
	var lo, hi [numFields]int
	buf := d.buf
	propsLen := len(buf)
	for _, f := range stringFields {
		lo[f] = len(buf)
		if d.vals[f].kind == kString {
			buf = append(buf, d.text(f)...)
		}
		hi[f] = len(buf)
	}
	d.buf = buf
	all := d.arena.String(buf)
	s := func(f field) string { return all[lo[f]:hi[f]] }

	*ev = Event{
		EventID:     s(fEventID),
		Type:        typ,
		TsMs:        tsMs,
		VisitorID:   s(fVisitorID),
		CustomerID:  s(fCustomerID),
		URL:         s(fURL),
		Referrer:    s(fReferrer),
		UTMSource:   s(fUTMSource),
		UTMMedium:   s(fUTMMedium),
		UTMCampaign: s(fUTMCampaign),
		Device:      s(fDevice),
		Country:     s(fCountry),
		OrderID:     s(fOrderID),
		Amount:      amount,
		Currency:    s(fCurrency),
		Rating:      rating,
		NPS:         nps,
		CSAT:        csat,
		Props:       all[:propsLen],
	}
	return nil
}

// text returns the text of field f: a string's decoded bytes, a number's
// JSON text. It is valid until the next Decode.
func (d *Decoder) text(f field) []byte {
	v := d.vals[f]
	if v.esc {
		return d.unesc[v.lo:v.hi]
	}
	return d.value[v.lo:v.hi]
}

// absent reports whether field f counts as absent: not there, null, or "".
// (A string with escapes is never empty.)
func (d *Decoder) absent(f field) bool {
	v := d.vals[f]
	return v.kind == kAbsent || v.kind == kNull || v.kind == kString && v.lo == v.hi
}

func (d *Decoder) decodeType(topic Topic) (Type, *Error) {
	if d.absent(fType) {
		return 0, missing(fType)
	}
	if k := d.vals[fType].kind; k != kString {
		return 0, wrongJSONType(fType, "a string", k)
	}
	b := d.text(fType)
	typ := ParseType(string(b))
	if typ == 0 {
		return 0, errorf(ReasonUnknownType, "field type: %s names no event type", quote(b))
	}
	if typ.Topic() != topic {
		return 0, errorf(ReasonWrongTopic, "field type: %s events belong on topic %s, not %s", typ, typ.Topic(), topic)
	}
	return typ, nil
}

// requiredString validates a required string field.
// stringField checks field f as requiredString does when required, else
// as optionalString does.
func (d *Decoder) stringField(f field, max int, required bool) *Error {
	if required {
		return d.requiredString(f, max)
	}
	return d.optionalString(f, max)
}

func (d *Decoder) requiredString(f field, max int) *Error {
	if d.absent(f) {
		return missing(f)
	}
	return d.optionalString(f, max)
}

// optionalString validates an optional string field.
func (d *Decoder) optionalString(f field, max int) *Error {
	if d.absent(f) {
		return nil
	}
	if k := d.vals[f].kind; k != kString {
		return wrongJSONType(f, "a string", k)
	}
	if n := len(d.text(f)); n > max {
		return errorf(ReasonTooLarge, "field %s: %d bytes is more than the limit of %d", fieldNames[f], n, max)
	}
	return nil
}

// smallInt decodes an integer field in [lo, hi]: a JSON number whose value is
// integral (4 and 4.0 are fine, 4.5 and "4" are not). Absent gives Absent.
func (d *Decoder) smallInt(f field, lo, hi int64, required bool) (int8, *Error) {
	if d.absent(f) {
		if required {
			return Absent, missing(f)
		}
		return Absent, nil
	}
	if k := d.vals[f].kind; k != kNumber {
		return Absent, wrongJSONType(f, "an integer", k)
	}
	raw := d.text(f)
	n, ok := parseDecimal(raw)
	if !ok {
		return Absent, errorf(ReasonBadValue, "field %s: not a JSON number, got %s", fieldNames[f], quote(raw))
	}
	var x int64
	if !n.zero {
		if n.exp < 0 {
			return Absent, errorf(ReasonBadValue, "field %s: must be an integer, got %s", fieldNames[f], quote(raw))
		}
		if n.nd+n.exp > 3 { // >= 1000: out of any small range
			return Absent, errorf(ReasonBadValue, "field %s: must be between %d and %d, got %s", fieldNames[f], lo, hi, quote(raw))
		}
		x = int64(n.sig * pow10[n.exp])
		if n.neg {
			x = -x
		}
	}
	if x < lo || x > hi {
		return Absent, errorf(ReasonBadValue, "field %s: must be between %d and %d, got %s", fieldNames[f], lo, hi, quote(raw))
	}
	return int8(x), nil
}
