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
	clock tsLimit

	// Per-Decode state, reset at the start of each call.
	fieldValues                     // the known top-level fields
	ukeys       []span              // the unknown top-level keys, as written in buf
	seen        map[string]struct{} // unknown keys, once there are many of them
	buf         []byte              // Props, then all string bytes of one event, copied once into a string
	arena       Arena               // where those strings live
	tmp         []byte              // scratch: one decoded key or prop string

	p fastjson.Parser // names the fault of a value that scan rejects (badJSON)
}

// NewDecoder returns a Decoder. now is the processing clock used for the
// "not more than 1 h after the clock" rule on ts; nil means time.Now.
func NewDecoder(now func() time.Time) *Decoder {
	if now == nil {
		now = time.Now
	}
	return &Decoder{clock: tsLimit{now: now}}
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
		return tooLarge(value)
	}
	// The whole value is checked before any field, so that bad_json wins.
	d.reset()
	d.ukeys = d.ukeys[:0]
	d.buf = d.buf[:0]
	if len(d.seen) > 0 {
		clear(d.seen)
	}
	if !d.scan(value) {
		return d.badJSON(value)
	}
	d.value = value
	c, e := d.validate(topic, key, &d.clock)
	if e == nil {
		d.buf = d.fill(ev, &c, d.buf, &d.arena)
	}
	d.value = nil
	return e
}

// tooLarge is the rejection of a value over MaxValueBytes, which comes
// before any parsing.
func tooLarge(value []byte) *Error {
	return errorf(ReasonTooLarge, "value: %d bytes is more than the limit of %d", len(value), MaxValueBytes)
}

// checked is what validate found besides the strings.
type checked struct {
	typ               Type
	tsMs              int64
	amount            Amount
	rating, nps, csat int8
	ces               int8
	trial             bool
}

// validate checks the record key and the known fields, in the order that
// Decode states.
func (fv *fieldValues) validate(topic Topic, key []byte, clock *tsLimit) (c checked, e *Error) {
	if len(key) == 0 {
		return c, errorf(ReasonMissingKey, "record key: absent or empty, it must be the visitor_id")
	}
	if c.typ, e = fv.decodeType(topic); e != nil {
		return c, e
	}
	if e := fv.checkIDs(key); e != nil {
		return c, e
	}
	if c.tsMs, e = fv.decodeTs(clock); e != nil {
		return c, e
	}
	for _, o := range optStrings {
		if e := fv.optionalString(o.f, o.max); e != nil {
			return c, e
		}
	}
	// order_id, amount, currency: required on order_* events, checked when present elsewhere.
	isOrder := c.typ == OrderCompleted || c.typ == OrderRefunded
	if e := fv.stringField(fOrderID, maxOtherBytes, isOrder); e != nil {
		return c, e
	}
	if c.amount, e = fv.decodeAmount(isOrder); e != nil {
		return c, e
	}
	if e := fv.decodeCurrency(isOrder); e != nil {
		return c, e
	}
	if c.rating, e = fv.smallInt(fRating, 1, 5, c.typ == Review); e != nil {
		return c, e
	}
	if c.nps, e = fv.smallInt(fNPS, 0, 10, false); e != nil {
		return c, e
	}
	if c.csat, e = fv.smallInt(fCSAT, 1, 5, false); e != nil {
		return c, e
	}
	if c.ces, e = fv.smallInt(fCES, 1, 7, false); e != nil {
		return c, e
	}
	if c.trial, e = fv.decodeTrial(c.typ); e != nil {
		return c, e
	}
	return c, fv.optionalString(fPlan, maxPlanBytes)
}

// decodeTrial reads trial, which only subscription_started events have: a
// boolean there (absent, null or "" = false), ignored on every other type
// (SPEC §2: "any other type ignores it"), whatever its value.
func (fv *fieldValues) decodeTrial(typ Type) (bool, *Error) {
	if typ != SubscriptionStarted || fv.absent(fTrial) {
		return false, nil
	}
	if k := fv.vals[fTrial].kind; k != kBool {
		return false, wrongJSONType(fTrial, "a boolean", k)
	}
	return fv.text(fTrial)[0] == 't', nil
}

// checkIDs checks event_id and visitor_id, which must equal the record key.
func (fv *fieldValues) checkIDs(key []byte) *Error {
	if e := fv.requiredString(fEventID, maxEventIDBytes); e != nil {
		return e
	}
	if e := fv.requiredString(fVisitorID, maxVisitorIDBytes); e != nil {
		return e
	}
	if vid := fv.text(fVisitorID); !bytes.Equal(key, vid) {
		return errorf(ReasonKeyMismatch, "field visitor_id: %s differs from the record key %s",
			quote(vid), quote(key))
	}
	return nil
}

// fill sets *ev from c and the valid fields. buf holds the Props; fill
// appends every string of the event after them and copies that into the
// arena as one string, so that an event costs a few hundred bytes of a
// chunk and no allocation of its own. The fields are substrings of it.
// It returns buf for reuse.
func (fv *fieldValues) fill(ev *Event, c *checked, buf []byte, a *Arena) []byte {
	var lo, hi [numFields]int
	propsLen := len(buf)
	for _, f := range stringFields {
		lo[f] = len(buf)
		if fv.vals[f].kind == kString { // else absent: no text
			buf = append(buf, fv.text(f)...)
		}
		hi[f] = len(buf)
	}
	all := a.String(buf)
	s := func(f field) string { return all[lo[f]:hi[f]] }

	*ev = Event{
		EventID:     s(fEventID),
		Type:        c.typ,
		TsMs:        c.tsMs,
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
		Amount:      c.amount,
		Currency:    s(fCurrency),
		Rating:      c.rating,
		NPS:         c.nps,
		CSAT:        c.csat,
		CES:         c.ces,
		Trial:       c.trial,
		Plan:        s(fPlan),
		Props:       all[:propsLen],
	}
	return buf
}

// decodeType checks type, which must name a type of topic.
func (fv *fieldValues) decodeType(topic Topic) (Type, *Error) {
	if fv.absent(fType) {
		return 0, missing(fType)
	}
	if k := fv.vals[fType].kind; k != kString {
		return 0, wrongJSONType(fType, "a string", k)
	}
	b := fv.text(fType)
	typ := ParseType(string(b))
	if typ == 0 {
		return 0, errorf(ReasonUnknownType, "field type: %s names no event type", quote(b))
	}
	if typ.Topic() != topic {
		return 0, errorf(ReasonWrongTopic, "field type: %s events belong on topic %s, not %s", typ, typ.Topic(), topic)
	}
	return typ, nil
}

// stringField checks field f as requiredString does when required, else
// as optionalString does.
func (fv *fieldValues) stringField(f field, max int, required bool) *Error {
	if required {
		return fv.requiredString(f, max)
	}
	return fv.optionalString(f, max)
}

// requiredString validates a required string field.
func (fv *fieldValues) requiredString(f field, max int) *Error {
	if fv.absent(f) {
		return missing(f)
	}
	return fv.optionalString(f, max)
}

// optionalString validates an optional string field.
func (fv *fieldValues) optionalString(f field, max int) *Error {
	if fv.absent(f) {
		return nil
	}
	if k := fv.vals[f].kind; k != kString {
		return wrongJSONType(f, "a string", k)
	}
	if n := len(fv.text(f)); n > max {
		return errorf(ReasonTooLarge, "field %s: %d bytes is more than the limit of %d", fieldNames[f], n, max)
	}
	return nil
}

// decodeCurrency checks currency, which must be there when required.
func (fv *fieldValues) decodeCurrency(required bool) *Error {
	if e := fv.stringField(fCurrency, maxOtherBytes, required); e != nil {
		return e
	}
	if fv.absent(fCurrency) {
		return nil
	}
	c := fv.text(fCurrency)
	if len(c) != 3 || !isUpper(c[0]) || !isUpper(c[1]) || !isUpper(c[2]) {
		return errorf(ReasonBadValue, "field currency: must be 3 upper-case letters (ISO 4217), got %s", quote(c))
	}
	return nil
}

func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }

// smallInt decodes an integer field in [lo, hi]: a JSON number whose value is
// integral (4 and 4.0 are fine, 4.5 and "4" are not). Absent gives Absent.
func (fv *fieldValues) smallInt(f field, lo, hi int64, required bool) (int8, *Error) {
	if fv.absent(f) {
		if required {
			return Absent, missing(f)
		}
		return Absent, nil
	}
	if k := fv.vals[f].kind; k != kNumber {
		return Absent, wrongJSONType(f, "an integer", k)
	}
	raw := fv.text(f)
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
