package schemas

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/valyala/fastjson"
)

// MaxValueBytes bounds a record value; larger values are rejected with
// ReasonTooLarge before any parsing.
const MaxValueBytes = 256 << 10

// Size limits of string fields, in UTF-8 bytes of the decoded (unescaped) string.
const (
	maxEventIDBytes   = 64
	maxVisitorIDBytes = 128
	maxURLBytes       = 2048
	maxUTMBytes       = 256
	maxOtherBytes     = 256 // customer_id, device, country, order_id, currency
)

// minTsMs is 2000-01-01T00:00:00Z; earlier events are rejected with ReasonBadTs.
const minTsMs = 946684800000

// maxFutureMs is how far ahead of the processing clock an event ts may be.
const maxFutureMs = int64(time.Hour / time.Millisecond)

// maxAmountUnits is 99999999999999.9999, the largest Amount (Decimal(18,4)).
const maxAmountUnits = 999999999999999999

// field numbers the known top-level fields in the order of the SPEC §2 table.
type field uint8

const (
	fEventID field = iota
	fType
	fTs
	fVisitorID
	fCustomerID
	fURL
	fReferrer
	fUTMSource
	fUTMMedium
	fUTMCampaign
	fDevice
	fCountry
	fOrderID
	fAmount
	fCurrency
	fRating
	fNPS
	fCSAT
	numFields
	fUnknown = numFields
)

var fieldNames = [numFields]string{
	"event_id", "type", "ts", "visitor_id", "customer_id", "url", "referrer",
	"utm_source", "utm_medium", "utm_campaign", "device", "country",
	"order_id", "amount", "currency", "rating", "nps", "csat",
}

func fieldOf(key []byte) field {
	// A switch on string(key) does not allocate.
	switch string(key) {
	case "event_id":
		return fEventID
	case "type":
		return fType
	case "ts":
		return fTs
	case "visitor_id":
		return fVisitorID
	case "customer_id":
		return fCustomerID
	case "url":
		return fURL
	case "referrer":
		return fReferrer
	case "utm_source":
		return fUTMSource
	case "utm_medium":
		return fUTMMedium
	case "utm_campaign":
		return fUTMCampaign
	case "device":
		return fDevice
	case "country":
		return fCountry
	case "order_id":
		return fOrderID
	case "amount":
		return fAmount
	case "currency":
		return fCurrency
	case "rating":
		return fRating
	case "nps":
		return fNPS
	case "csat":
		return fCSAT
	}
	return fUnknown
}

// optStrings are the optional string fields with their size limits, in the
// order they are checked (SPEC table order).
var optStrings = [...]struct {
	f   field
	max int
}{
	{fCustomerID, maxOtherBytes},
	{fURL, maxURLBytes},
	{fReferrer, maxURLBytes},
	{fUTMSource, maxUTMBytes},
	{fUTMMedium, maxUTMBytes},
	{fUTMCampaign, maxUTMBytes},
	{fDevice, maxOtherBytes},
	{fCountry, maxOtherBytes},
}

// unknownKV is an unknown top-level field. Both key and v point into the
// parser's memory and are valid only until the next parse.
type unknownKV struct {
	key []byte
	v   *fastjson.Value
}

// maxPairwiseDup is the number of unknown keys up to which duplicates are
// found by pairwise comparison; beyond it a map keeps the check linear.
const maxPairwiseDup = 16

// Decoder turns Kafka records into Events (SPEC §2).
//
// Decoder is not safe for concurrent use; keep one per goroutine (it reuses a
// fastjson.Parser and scratch buffers).
type Decoder struct {
	now func() time.Time
	p   fastjson.Parser

	// Per-Decode state, reset at the start of each call. Everything here
	// points into p's memory and is dead after the next parse.
	fields  [numFields]*fastjson.Value
	unknown []unknownKV
	seen    map[string]struct{} // unknown keys, once there are many of them
	dupKey  []byte              // first duplicated top-level key, nil if none
	str     [numFields][]byte   // validated string values, unescaped

	num []byte // scratch: raw text of one JSON number
	buf []byte // scratch: all string bytes of one event, copied once into a string
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
// caller may reuse its buffers at once. The strings of one event share one
// backing allocation (one allocation per event), so keeping any of them
// alive keeps all of them, Props included: strings.Clone a string that
// outlives the event by much, such as an event_id held for dedup.
func (d *Decoder) Decode(topic Topic, key, value []byte, ev *Event) *Error {
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
func (d *Decoder) parse(value []byte) *Error {
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
		return errorf(ReasonBadJSON, "value: want a JSON object, got %s", jsonTypeName(t))
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
func (d *Decoder) visitTop(key []byte, v *fastjson.Value) {
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
	d.unknown = append(d.unknown, unknownKV{key: key, v: v})
}

// absent reports whether v counts as absent: not there, null, or "".
func absent(v *fastjson.Value) bool {
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

func (d *Decoder) decodeType(topic Topic) (Type, *Error) {
	v := d.fields[fType]
	if absent(v) {
		return 0, missing(fType)
	}
	if t := v.Type(); t != fastjson.TypeString {
		return 0, wrongJSONType(fType, "a string", t)
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
func (d *Decoder) requiredString(f field, max int) *Error {
	if absent(d.fields[f]) {
		return missing(f)
	}
	return d.optionalString(f, max)
}

// optionalString validates an optional string field into d.str[f]; an absent
// field leaves d.str[f] nil.
func (d *Decoder) optionalString(f field, max int) *Error {
	v := d.fields[f]
	if absent(v) {
		return nil
	}
	if t := v.Type(); t != fastjson.TypeString {
		return wrongJSONType(f, "a string", t)
	}
	b, _ := v.StringBytes()
	if len(b) > max {
		return errorf(ReasonTooLarge, "field %s: %d bytes is more than the limit of %d", fieldNames[f], len(b), max)
	}
	d.str[f] = b
	return nil
}

// rawNumber returns the JSON text of number v, valid until the next call.
func (d *Decoder) rawNumber(v *fastjson.Value) []byte {
	d.num = v.MarshalTo(d.num[:0])
	return d.num
}

func (d *Decoder) decodeTs() (int64, *Error) {
	v := d.fields[fTs]
	if absent(v) {
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
		return 0, errorf(ReasonBadTs, "field ts: must be a string or an integer, got %s", jsonTypeName(t))
	}
	if ms < minTsMs {
		return 0, errorf(ReasonBadTs, "field ts: not before 2000-01-01, got %s", msString(ms))
	}
	if limit := d.now().UnixMilli() + maxFutureMs; ms > limit {
		return 0, errorf(ReasonBadTs, "field ts: more than 1h after the processing clock, got %s, limit %s", msString(ms), msString(limit))
	}
	return ms, nil
}

func msString(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// parseEpochMs parses the raw text of a JSON number that must be an integer
// literal: an optional '-' and digits, no fraction, no exponent.
func parseEpochMs(raw []byte) (int64, bool) {
	s := raw
	if len(s) > 0 && s[0] == '-' {
		s = s[1:]
	}
	if len(s) == 0 || len(s) > 18 { // 18 digits cannot overflow int64
		return 0, false
	}
	var n int64
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if raw[0] == '-' {
		n = -n
	}
	return n, true
}

// parseRFC3339Ms parses YYYY-MM-DDTHH:MM:SS[.fraction](Z|±hh:mm) into UTC epoch
// milliseconds. The fraction may have any number of digits and is truncated,
// never rounded, to milliseconds. 'T' and 'Z' must be upper case.
func parseRFC3339Ms(s []byte) (int64, bool) {
	if len(s) < len("2006-01-02T15:04:05Z") ||
		s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return 0, false
	}
	year, ok1 := digits(s[0:4])
	month, ok2 := digits(s[5:7])
	day, ok3 := digits(s[8:10])
	hour, ok4 := digits(s[11:13])
	minute, ok5 := digits(s[14:16])
	sec, ok6 := digits(s[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) ||
		month < 1 || month > 12 || day < 1 || day > daysIn(year, month) ||
		hour > 23 || minute > 59 || sec > 59 {
		return 0, false
	}
	s = s[19:]
	ms := 0
	if s[0] == '.' {
		i := 1
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			if i <= 3 {
				ms = ms*10 + int(s[i]-'0')
			}
			i++
		}
		if i == 1 {
			return 0, false // a '.' needs at least one digit
		}
		for j := i; j <= 3; j++ {
			ms *= 10 // ".5" is 500 ms
		}
		s = s[i:]
	}
	offsetMin := 0
	switch {
	case len(s) == 1 && s[0] == 'Z':
	case len(s) == 6 && (s[0] == '+' || s[0] == '-') && s[3] == ':':
		oh, ok1 := digits(s[1:3])
		om, ok2 := digits(s[4:6])
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return 0, false
		}
		offsetMin = oh*60 + om
		if s[0] == '-' {
			offsetMin = -offsetMin
		}
	default:
		return 0, false
	}
	t := time.Date(year, time.Month(month), day, hour, minute-offsetMin, sec, 0, time.UTC)
	return t.Unix()*1000 + int64(ms), true
}

// digits parses a short run of ASCII digits.
func digits(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func daysIn(year, month int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// decimal is a JSON number split exactly as sig × 10^exp, where sig is the
// significand without leading or trailing zeros. Nothing goes through float64.
type decimal struct {
	neg  bool
	zero bool
	nd   int    // significant digits
	sig  uint64 // the significand, exact when nd <= 19
	exp  int
}

// maxExp saturates absurd exponents (1e999999999999) while keeping exp
// arithmetic far from overflow.
const maxExp = 1 << 30

// parseDecimal parses JSON number text (-?int[.frac][(e|E)[+-]digits]).
func parseDecimal(s []byte) (decimal, bool) {
	var d decimal
	i := 0
	if i < len(s) && s[i] == '-' {
		d.neg = true
		i++
	}
	intLo := i
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	intPart := s[intLo:i]
	if len(intPart) == 0 || len(intPart) > 1 && intPart[0] == '0' {
		return d, false
	}
	var frac []byte
	if i < len(s) && s[i] == '.' {
		i++
		lo := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		frac = s[lo:i]
		if len(frac) == 0 {
			return d, false
		}
	}
	e := 0
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		eneg := false
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			eneg = s[i] == '-'
			i++
		}
		lo := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			if e < maxExp {
				e = e*10 + int(s[i]-'0')
			}
			i++
		}
		if i == lo {
			return d, false
		}
		if eneg {
			e = -e
		}
	}
	if i != len(s) {
		return d, false
	}

	// The digits are intPart followed by frac; digit k of them is at(k).
	n := len(intPart) + len(frac)
	at := func(k int) byte {
		if k < len(intPart) {
			return intPart[k]
		}
		return frac[k-len(intPart)]
	}
	first := 0
	for first < n && at(first) == '0' {
		first++
	}
	if first == n {
		d.zero = true
		return d, true
	}
	last := n - 1
	for at(last) == '0' {
		last--
	}
	d.nd = last - first + 1
	// value = digits[first..last] × 10^(e - len(frac) + trailing zeros)
	d.exp = e - len(frac) + (n - 1 - last)
	if d.nd <= 19 {
		for k := first; k <= last; k++ {
			d.sig = d.sig*10 + uint64(at(k)-'0')
		}
	}
	return d, true
}

// pow10 holds 10^0 … 10^18.
var pow10 = [...]uint64{
	1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18,
}

// parseAmount converts JSON number text exactly to Amount units
// (ten-thousandths). The error is the rule broken, nil when ok.
func parseAmount(raw []byte) (Amount, string) {
	d, ok := parseDecimal(raw)
	switch {
	case !ok:
		return 0, "not a JSON number"
	case d.zero:
		return 0, "" // also "-0"
	case d.neg:
		return 0, "must be >= 0"
	}
	scale := d.exp + 4 // units = sig × 10^scale
	if scale < 0 {
		return 0, "at most 4 decimal places"
	}
	if d.nd+scale > 18 {
		return 0, "must be <= 99999999999999.9999"
	}
	// nd+scale <= 18 keeps sig × 10^scale below 10^18: no overflow.
	return Amount(d.sig * pow10[scale]), ""
}

func (d *Decoder) decodeAmount(required bool) (Amount, *Error) {
	v := d.fields[fAmount]
	if absent(v) {
		if required {
			return 0, missing(fAmount)
		}
		return 0, nil
	}
	if t := v.Type(); t != fastjson.TypeNumber {
		return 0, wrongJSONType(fAmount, "a JSON number", t)
	}
	raw := d.rawNumber(v)
	a, msg := parseAmount(raw)
	if msg != "" {
		return 0, errorf(ReasonBadValue, "field amount: %s, got %s", msg, quote(raw))
	}
	return a, nil
}

func (d *Decoder) decodeCurrency(required bool) *Error {
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

func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }

// smallInt decodes an integer field in [lo, hi]: a JSON number whose value is
// integral (4 and 4.0 are fine, 4.5 and "4" are not). Absent gives Absent.
func (d *Decoder) smallInt(f field, lo, hi int64, required bool) (int8, *Error) {
	v := d.fields[f]
	if absent(v) {
		if required {
			return Absent, missing(f)
		}
		return Absent, nil
	}
	if t := v.Type(); t != fastjson.TypeNumber {
		return Absent, wrongJSONType(f, "an integer", t)
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
func (d *Decoder) appendProps(dst []byte) []byte {
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
		dst = appendJSON(dst, u.v)
	}
	return append(dst, '}')
}

// appendJSON re-serializes v compactly. It writes strings itself rather than
// with fastjson's MarshalTo, which escapes unescaped strings Go-style
// (strconv.Quote: \x01, \U0010ffff) and so can produce invalid JSON. Numbers
// keep their original text. Recursion is bounded by fastjson.MaxDepth.
func appendJSON(dst []byte, v *fastjson.Value) []byte {
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
			dst = appendJSON(dst, vv)
		})
		return append(dst, '}')
	case fastjson.TypeArray:
		a, _ := v.Array()
		dst = append(dst, '[')
		for i, vv := range a {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSON(dst, vv)
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

const hexDigits = "0123456789abcdef"

// appendJSONString appends s (valid UTF-8) as a JSON string literal.
func appendJSONString(dst, s []byte) []byte {
	dst = append(dst, '"')
	start := 0
	for i, c := range s {
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

func errorf(r Reason, format string, args ...any) *Error {
	return &Error{Reason: r, Detail: fmt.Sprintf(format, args...)}
}

func missing(f field) *Error {
	return errorf(ReasonMissingField, "field %s: required but absent, null or empty", fieldNames[f])
}

func wrongJSONType(f field, want string, got fastjson.Type) *Error {
	return errorf(ReasonBadValue, "field %s: must be %s, got %s", fieldNames[f], want, jsonTypeName(got))
}

// jsonTypeName names a JSON type the way JSON Schema does.
func jsonTypeName(t fastjson.Type) string {
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

// maxQuoted bounds the bytes of user input quoted into a detail.
const maxQuoted = 40

// quote renders user input for a detail: at most maxQuoted bytes (cut at a
// rune boundary, "..." marks the cut), Go-quoted so control bytes and
// invalid UTF-8 stay visible and harmless.
func quote(b []byte) string {
	if len(b) <= maxQuoted {
		return strconv.Quote(string(b))
	}
	n := maxQuoted
	for n > maxQuoted-utf8.UTFMax && !utf8.RuneStart(b[n]) {
		n--
	}
	return strconv.Quote(string(b[:n])) + "..."
}
