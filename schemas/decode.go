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

// stringFields are the fields that Event holds as strings.
var stringFields = [...]field{
	fEventID, fVisitorID, fCustomerID, fURL, fReferrer, fUTMSource, fUTMMedium,
	fUTMCampaign, fDevice, fCountry, fOrderID, fCurrency,
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

func (d *Decoder) decodeTs() (int64, *Error) {
	if d.absent(fTs) {
		return 0, missing(fTs)
	}
	var ms int64
	switch k := d.vals[fTs].kind; k {
	case kString:
		b := d.text(fTs)
		var ok bool
		if ms, ok = parseRFC3339Ms(b); !ok {
			return 0, errorf(ReasonBadTs, "field ts: want an RFC 3339 time with a zone (Z or ±hh:mm) or integer epoch milliseconds, got %s", quote(b))
		}
	case kNumber:
		raw := d.text(fTs)
		var ok bool
		if ms, ok = parseEpochMs(raw); !ok {
			return 0, errorf(ReasonBadTs, "field ts: epoch milliseconds must be a JSON integer literal in range, got %s", quote(raw))
		}
	default:
		return 0, errorf(ReasonBadTs, "field ts: must be a string or an integer, got %s", jsonTypeName(k))
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
	if d.absent(fAmount) {
		if required {
			return 0, missing(fAmount)
		}
		return 0, nil
	}
	if k := d.vals[fAmount].kind; k != kNumber {
		return 0, wrongJSONType(fAmount, "a JSON number", k)
	}
	raw := d.text(fAmount)
	a, msg := parseAmount(raw)
	if msg != "" {
		return 0, errorf(ReasonBadValue, "field amount: %s, got %s", msg, quote(raw))
	}
	return a, nil
}

func (d *Decoder) decodeCurrency(required bool) *Error {
	if e := d.stringField(fCurrency, maxOtherBytes, required); e != nil {
		return e
	}
	if d.absent(fCurrency) {
		return nil
	}
	c := d.text(fCurrency)
	if len(c) != 3 || !isUpper(c[0]) || !isUpper(c[1]) || !isUpper(c[2]) {
		return errorf(ReasonBadValue, "field currency: must be 3 upper-case letters (ISO 4217), got %s", quote(c))
	}
	return nil
}

func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }

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

func wrongJSONType(f field, want string, got kind) *Error {
	return errorf(ReasonBadValue, "field %s: must be %s, got %s", fieldNames[f], want, jsonTypeName(got))
}

// jsonTypeName names a JSON type the way JSON Schema does.
func jsonTypeName(k kind) string {
	switch k {
	case kObject:
		return "object"
	case kArray:
		return "array"
	case kString:
		return "string"
	case kNumber:
		return "number"
	case kBool:
		return "boolean"
	}
	return "null"
}

// badJSON names the fault of a value that scan rejected. It runs the checks
// that scan replaced, in their order, which also fixes which fault is named
// when there are several: UTF-8 of the whole value; JSON structure and
// nesting depth (fastjson's parser, which is lenient with leaves); strict
// leaves; an object; duplicated keys.
func (d *Decoder) badJSON(value []byte) *Error {
	if len(value) == 0 {
		return errorf(ReasonBadJSON, "value: empty, want a JSON object")
	}
	if !utf8.Valid(value) {
		return errorf(ReasonBadJSON, "value: not valid UTF-8")
	}
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
		return errorf(ReasonBadJSON, "value: want a JSON object, got %s", fastjsonTypeName(t))
	}
	o, _ := v.Object()
	var dup []byte
	seen := make(map[string]struct{}, o.Len())
	o.Visit(func(key []byte, _ *fastjson.Value) {
		if dup != nil {
			return
		}
		if _, ok := seen[string(key)]; ok {
			dup = key
		}
		seen[string(key)] = struct{}{}
	})
	if dup != nil {
		return errorf(ReasonBadJSON, "value: key %s appears more than once", quote(dup))
	}
	// Not reached: scan and these checks accept the same values
	// (FuzzScanMatchesReference). Should they ever differ, reject.
	return errorf(ReasonBadJSON, "value: not valid JSON")
}

func fastjsonTypeName(t fastjson.Type) string {
	switch t {
	case fastjson.TypeArray:
		return "array"
	case fastjson.TypeString:
		return "string"
	case fastjson.TypeNumber:
		return "number"
	case fastjson.TypeTrue, fastjson.TypeFalse:
		return "boolean"
	case fastjson.TypeObject:
		return "object"
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
