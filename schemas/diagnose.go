package schemas

// Diagnosis: the wording of the details of rejections, and naming the fault
// of a value that is not one strict JSON object without duplicated keys.

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/valyala/fastjson"
)

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

// badJSON names the fault of a value that scan rejected.
func (d *Decoder) badJSON(value []byte) *Error {
	if _, e := diagnose(&d.p, value); e != nil {
		return e
	}
	// Not reached: scan and diagnose accept the same values
	// (FuzzScanMatchesReference). Should they ever differ, reject.
	return errorf(ReasonBadJSON, "value: not valid JSON")
}

// diagnose runs the checks that scan replaced, in their order, which also
// fixes which fault is named when there are several: UTF-8 of the whole
// value; JSON structure and nesting depth (fastjson's parser, which is
// lenient with leaves); strict leaves; an object; duplicated keys. It
// returns the object of a value that passes them all, in p's memory, from
// which the fuzz reference extracts the fields.
func diagnose(p *fastjson.Parser, value []byte) (*fastjson.Object, *Error) {
	if len(value) == 0 {
		return nil, errorf(ReasonBadJSON, "value: empty, want a JSON object")
	}
	if !utf8.Valid(value) {
		return nil, errorf(ReasonBadJSON, "value: not valid UTF-8")
	}
	v, err := p.ParseBytes(value)
	if err != nil {
		if strings.Contains(err.Error(), "too big depth") {
			return nil, errorf(ReasonBadJSON, "value: nested deeper than %d levels", fastjson.MaxDepth)
		}
		return nil, errorf(ReasonBadJSON, "value: not valid JSON")
	}
	if !strictLeaves(value) {
		return nil, errorf(ReasonBadJSON, "value: not valid JSON")
	}
	if t := v.Type(); t != fastjson.TypeObject {
		return nil, errorf(ReasonBadJSON, "value: want a JSON object, got %s", jsonTypeName(kindOf(t)))
	}
	o, _ := v.Object()
	if dup := firstDup(o); dup != nil {
		return nil, errorf(ReasonBadJSON, "value: key %s appears more than once", quote(dup))
	}
	return o, nil
}

// firstDup returns the first key of o that appeared before, nil if none.
func firstDup(o *fastjson.Object) []byte {
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
	return dup
}

// kindOf is the kind of a fastjson type.
func kindOf(t fastjson.Type) kind {
	switch t {
	case fastjson.TypeObject:
		return kObject
	case fastjson.TypeArray:
		return kArray
	case fastjson.TypeString:
		return kString
	case fastjson.TypeNumber:
		return kNumber
	case fastjson.TypeTrue, fastjson.TypeFalse:
		return kBool
	}
	return kNull
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

// fastjson's parser checks the structure of a document ({}, [], commas,
// colons, true/false/null) but is lenient with leaves: it takes NaN, Inf, +1,
// 01 and 1.2.3 as numbers, and raw control characters and unknown escapes in
// strings. fastjson.Validate is stricter but costs more than the parse itself,
// and it misses a raw control character that comes before an escape in the
// same string (fastjson v1.6.10).
// strictLeaves is the cheap complement: run on a document that fastjson has
// parsed, it rejects exactly the leaves strict JSON does not allow, so
// Parse + strictLeaves accepts exactly what encoding/json.Valid accepts (a
// differential fuzz test, FuzzStrictLeaves, holds it to that).
//
// Decode no longer parses with fastjson: the scanner (scan.go) checks a value
// in one pass. fastjson + strictLeaves now only name the fault of a value the
// scanner rejected (diagnose), and are the reference the scanner is held
// to. The string, number and literal checks are the scanner's (jsonlex.go).

// strictLeaves reports whether every string and number in s, a document that
// fastjson.Parser accepted, is strict JSON (and every string valid UTF-8,
// which diagnose has checked before).
func strictLeaves(s []byte) bool {
	i := 0
	for i < len(s) {
		switch c := s[i]; c {
		case ' ', '\t', '\n', '\r', '{', '}', '[', ']', ',', ':':
			i++
		case '"':
			j, _, ok := scanString(s, i+1)
			if !ok {
				return false
			}
			i = j
		case 't', 'f', 'n':
			j, ok := scanLiteral(s, i)
			if !ok {
				return false // "nan"
			}
			i = j
		default:
			j, ok := scanNumber(s, i)
			if !ok {
				return false
			}
			i = j
		}
	}
	return true
}
