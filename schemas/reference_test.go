package schemas

// The decoder as it was before the single-pass scanner (scan.go): utf8.Valid,
// fastjson.Parser, strictLeaves and a walk over fastjson's values. It is kept
// here, unchanged but for names, as the reference that
// FuzzScanMatchesReference holds the Decoder to: the same *Error (reason
// and detail) or the same Event for every record.

import (
	"bytes"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/valyala/fastjson"
)

// refUnknownKV is an unknown top-level field. Both key and v point into the
// parser's memory and are valid only until the next parse.
type refUnknownKV struct {
	key []byte
	v   *fastjson.Value
}

// refDecoder turns Kafka records into Events (SPEC §2).
//
// refDecoder is not safe for concurrent use; keep one per goroutine (it reuses a
// fastjson.Parser and scratch buffers).
type refDecoder struct {
	now func() time.Time
	p   fastjson.Parser

	// Per-Decode state, reset at the start of each call. Everything here
	// points into p's memory and is dead after the next parse.
	fields  [numFields]*fastjson.Value
	unknown []refUnknownKV
	seen    map[string]struct{} // unknown keys, once there are many of them
	dupKey  []byte              // first duplicated top-level key, nil if none
	str     [numFields][]byte   // validated string values, unescaped

	num []byte // scratch: raw text of one JSON number
	buf []byte // scratch: all string bytes of one event, copied once into a string
}

// newRefDecoder returns a refDecoder. now is the processing clock used for the
// "not more than 1 h after the clock" rule on ts; nil means time.Now.
func newRefDecoder(now func() time.Time) *refDecoder {
	if now == nil {
		now = time.Now
	}
	return &refDecoder{now: now}
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
// caller may reuse its buffers at once. The strings of one event share one
// backing allocation (one allocation per event), so keeping any of them
// alive keeps all of them, Props included: strings.Clone a string that
// outlives the event by much, such as an event_id held for dedup.
func (d *refDecoder) Decode(topic Topic, key, value []byte, ev *Event) *Error {
	if len(value) > MaxValueBytes {
		return errorf(ReasonTooLarge, "value: %d bytes is more than the limit of %d", len(value), MaxValueBytes)
	}
	if e := d.parse(value); e != nil {
		return e
	}
	if len(key) == 0 {
		return errorf(ReasonMissingKey, "record key: absent or empty, it must be the visitor_id")
	}

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
	if !bytes.Equal(key, d.str[fVisitorID]) {
		return errorf(ReasonKeyMismatch, "field visitor_id: %s differs from the record key %s",
			quote(d.str[fVisitorID]), quote(key))
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
	if isOrder {
		e = d.requiredString(fOrderID, maxOtherBytes)
	} else {
		e = d.optionalString(fOrderID, maxOtherBytes)
	}
	if e != nil {
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

	// Copy every string of the event into one buffer and convert it to one
	// string, so an event costs one allocation however many fields it has.
	// The fields are substrings of it (plain string slicing, no unsafe).
	var lo, hi [numFields]int
	buf := d.buf[:0]
	for f := range numFields {
		lo[f] = len(buf)
		buf = append(buf, d.str[f]...)
		hi[f] = len(buf)
	}
	propsLo := len(buf)
	buf = d.appendProps(buf)
	d.buf = buf
	all := string(buf)
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
		Props:       all[propsLo:],
	}
	return nil
}

// parse checks that value is one UTF-8 JSON object without duplicated
// top-level keys and sorts its fields into d.fields and d.unknown.
func (d *refDecoder) parse(value []byte) *Error {
	d.fields = [numFields]*fastjson.Value{}
	d.str = [numFields][]byte{}
	clear(d.unknown)
	d.unknown = d.unknown[:0]
	d.dupKey = nil
	if len(d.seen) > 0 {
		clear(d.seen)
	}

	if len(value) == 0 {
		return errorf(ReasonBadJSON, "value: empty, want a JSON object")
	}
	if !utf8.Valid(value) {
		return errorf(ReasonBadJSON, "value: not valid UTF-8")
	}
	// fastjson's parser checks the structure but is lenient with leaves (it
	// takes NaN, 01, bad escapes and raw control characters); strictLeaves
	// rejects those, for less than fastjson.Validate would cost.
	v, err := d.p.ParseBytes(value)
	if err != nil {
		if strings.Contains(err.Error(), "too big depth") {
			return errorf(ReasonBadJSON, "value: nested deeper than %d levels", fastjson.MaxDepth)
		}
		return errorf(ReasonBadJSON, "value: not valid JSON")
	}
	if !strictLeaves(value) {
		return errorf(ReasonBadJSON, "value: not valid JSON")
	}
	if t := v.Type(); t != fastjson.TypeObject {
		return errorf(ReasonBadJSON, "value: want a JSON object, got %s", refJSONTypeName(t))
	}
	o, _ := v.Object()
	o.Visit(d.visitTop)
	if d.dupKey != nil {
		return errorf(ReasonBadJSON, "value: key %s appears more than once", quote(d.dupKey))
	}
	return nil
}

// visitTop sorts one top-level field (keys already unescaped) and notes the
// first duplicated key.
func (d *refDecoder) visitTop(key []byte, v *fastjson.Value) {
	if f := fieldOf(key); f != fUnknown {
		if d.fields[f] != nil && d.dupKey == nil {
			d.dupKey = key
		}
		d.fields[f] = v
		return
	}
	if d.dupKey == nil {
		if len(d.unknown) < maxPairwiseDup {
			for i := range d.unknown {
				if bytes.Equal(d.unknown[i].key, key) {
					d.dupKey = key
				}
			}
		} else {
			if d.seen == nil {
				d.seen = make(map[string]struct{})
			}
			if len(d.seen) == 0 {
				for _, u := range d.unknown {
					d.seen[string(u.key)] = struct{}{}
				}
			}
			if _, ok := d.seen[string(key)]; ok {
				d.dupKey = key
			}
			d.seen[string(key)] = struct{}{}
		}
	}
	d.unknown = append(d.unknown, refUnknownKV{key: key, v: v})
}

// absent reports whether v counts as absent: not there, null, or "".
func refAbsent(v *fastjson.Value) bool {
	if v == nil {
		return true
	}
	switch v.Type() {
	case fastjson.TypeNull:
		return true
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		return len(b) == 0
	}
	return false
}

func (d *refDecoder) decodeType(topic Topic) (Type, *Error) {
	v := d.fields[fType]
	if refAbsent(v) {
		return 0, missing(fType)
	}
	if t := v.Type(); t != fastjson.TypeString {
		return 0, refWrongJSONType(fType, "a string", t)
	}
	b, _ := v.StringBytes()
	typ := ParseType(string(b))
	if typ == 0 {
		return 0, errorf(ReasonUnknownType, "field type: %s names no event type", quote(b))
	}
	if typ.Topic() != topic {
		return 0, errorf(ReasonWrongTopic, "field type: %s events belong on topic %s, not %s", typ, typ.Topic(), topic)
	}
	return typ, nil
}

// requiredString validates a required string field into d.str[f].
func (d *refDecoder) requiredString(f field, max int) *Error {
	if refAbsent(d.fields[f]) {
		return missing(f)
	}
	return d.optionalString(f, max)
}

// optionalString validates an optional string field into d.str[f]; an absent
// field leaves d.str[f] nil.
func (d *refDecoder) optionalString(f field, max int) *Error {
	v := d.fields[f]
	if refAbsent(v) {
		return nil
	}
	if t := v.Type(); t != fastjson.TypeString {
		return refWrongJSONType(f, "a string", t)
	}
	b, _ := v.StringBytes()
	if len(b) > max {
		return errorf(ReasonTooLarge, "field %s: %d bytes is more than the limit of %d", fieldNames[f], len(b), max)
	}
	d.str[f] = b
	return nil
}

// rawNumber returns the JSON text of number v, valid until the next call.
func (d *refDecoder) rawNumber(v *fastjson.Value) []byte {
	d.num = v.MarshalTo(d.num[:0])
	return d.num
}

func (d *refDecoder) decodeTs() (int64, *Error) {
	v := d.fields[fTs]
	if refAbsent(v) {
		return 0, missing(fTs)
	}
	var ms int64
	switch t := v.Type(); t {
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		var ok bool
		if ms, ok = parseRFC3339Ms(b); !ok {
			return 0, errorf(ReasonBadTs, "field ts: want an RFC 3339 time with a zone (Z or ±hh:mm) or integer epoch milliseconds, got %s", quote(b))
		}
	case fastjson.TypeNumber:
		raw := d.rawNumber(v)
		var ok bool
		if ms, ok = parseEpochMs(raw); !ok {
			return 0, errorf(ReasonBadTs, "field ts: epoch milliseconds must be a JSON integer literal in range, got %s", quote(raw))
		}
	default:
		return 0, errorf(ReasonBadTs, "field ts: must be a string or an integer, got %s", refJSONTypeName(t))
	}
	if ms < minTsMs {
		return 0, errorf(ReasonBadTs, "field ts: not before 2000-01-01, got %s", msString(ms))
	}
	if limit := d.now().UnixMilli() + maxFutureMs; ms > limit {
		return 0, errorf(ReasonBadTs, "field ts: more than 1h after the processing clock, got %s, limit %s", msString(ms), msString(limit))
	}
	return ms, nil
}

func (d *refDecoder) decodeAmount(required bool) (Amount, *Error) {
	v := d.fields[fAmount]
	if refAbsent(v) {
		if required {
			return 0, missing(fAmount)
		}
		return 0, nil
	}
	if t := v.Type(); t != fastjson.TypeNumber {
		return 0, refWrongJSONType(fAmount, "a JSON number", t)
	}
	raw := d.rawNumber(v)
	a, msg := parseAmount(raw)
	if msg != "" {
		return 0, errorf(ReasonBadValue, "field amount: %s, got %s", msg, quote(raw))
	}
	return a, nil
}

func (d *refDecoder) decodeCurrency(required bool) *Error {
	var e *Error
	if required {
		e = d.requiredString(fCurrency, maxOtherBytes)
	} else {
		e = d.optionalString(fCurrency, maxOtherBytes)
	}
	if e != nil {
		return e
	}
	c := d.str[fCurrency]
	if c == nil {
		return nil
	}
	if len(c) != 3 || !isUpper(c[0]) || !isUpper(c[1]) || !isUpper(c[2]) {
		return errorf(ReasonBadValue, "field currency: must be 3 upper-case letters (ISO 4217), got %s", quote(c))
	}
	return nil
}

// smallInt decodes an integer field in [lo, hi]: a JSON number whose value is
// integral (4 and 4.0 are fine, 4.5 and "4" are not). Absent gives Absent.
func (d *refDecoder) smallInt(f field, lo, hi int64, required bool) (int8, *Error) {
	v := d.fields[f]
	if refAbsent(v) {
		if required {
			return Absent, missing(f)
		}
		return Absent, nil
	}
	if t := v.Type(); t != fastjson.TypeNumber {
		return Absent, refWrongJSONType(f, "an integer", t)
	}
	raw := d.rawNumber(v)
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

// appendProps appends the unknown top-level fields as one compact JSON
// object, in input order, or nothing when there are none.
func (d *refDecoder) appendProps(dst []byte) []byte {
	if len(d.unknown) == 0 {
		return dst
	}
	dst = append(dst, '{')
	for i, u := range d.unknown {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, u.key)
		dst = append(dst, ':')
		dst = refAppendJSON(dst, u.v)
	}
	return append(dst, '}')
}

// appendJSON re-serializes v compactly. It writes strings itself rather than
// with fastjson's MarshalTo, which escapes unescaped strings Go-style
// (strconv.Quote: \x01, \U0010ffff) and so can produce invalid JSON. Numbers
// keep their original text. Recursion is bounded by fastjson.MaxDepth.
func refAppendJSON(dst []byte, v *fastjson.Value) []byte {
	switch v.Type() {
	case fastjson.TypeObject:
		o, _ := v.Object()
		dst = append(dst, '{')
		first := true
		o.Visit(func(k []byte, vv *fastjson.Value) {
			if !first {
				dst = append(dst, ',')
			}
			first = false
			dst = appendJSONString(dst, k)
			dst = append(dst, ':')
			dst = refAppendJSON(dst, vv)
		})
		return append(dst, '}')
	case fastjson.TypeArray:
		a, _ := v.Array()
		dst = append(dst, '[')
		for i, vv := range a {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = refAppendJSON(dst, vv)
		}
		return append(dst, ']')
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		return appendJSONString(dst, b)
	case fastjson.TypeNumber:
		return v.MarshalTo(dst)
	case fastjson.TypeTrue:
		return append(dst, "true"...)
	case fastjson.TypeFalse:
		return append(dst, "false"...)
	}
	return append(dst, "null"...)
}

func refWrongJSONType(f field, want string, got fastjson.Type) *Error {
	return errorf(ReasonBadValue, "field %s: must be %s, got %s", fieldNames[f], want, refJSONTypeName(got))
}

// jsonTypeName names a JSON type the way JSON Schema does.
func refJSONTypeName(t fastjson.Type) string {
	switch t {
	case fastjson.TypeObject:
		return "object"
	case fastjson.TypeArray:
		return "array"
	case fastjson.TypeString:
		return "string"
	case fastjson.TypeNumber:
		return "number"
	case fastjson.TypeTrue, fastjson.TypeFalse:
		return "boolean"
	}
	return "null"
}
