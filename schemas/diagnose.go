package schemas

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
