package schemas

// The decoder as it was before the single-pass scanner (scan.go), as far as
// it extracts fields: utf8.Valid, fastjson.Parser, strictLeaves and a walk
// over fastjson's values (diagnose does the first three). It is the
// reference that FuzzScanMatchesReference holds the Decoder to: the same
// *Error (reason and detail) or the same Event for every record. Both share
// the validators (decode.go), so the two differ only in how they extract
// fields.

import (
	"time"

	"github.com/valyala/fastjson"
)

// refUnknownKV is an unknown top-level field. Both key and v point into the
// parser's memory and are valid only until the next parse.
type refUnknownKV struct {
	key []byte
	v   *fastjson.Value
}

// refDecoder turns Kafka records into Events as Decoder does.
type refDecoder struct {
	now func() time.Time
	p   fastjson.Parser

	// Per-Decode state, reset at the start of each call.
	fieldValues
	unknown []refUnknownKV // points into p's memory, dead after the next parse
	buf     []byte         // Props, then all string bytes of one event
	arena   Arena
}

// Decode is Decoder.Decode.
func (d *refDecoder) Decode(topic Topic, key, value []byte, ev *Event) *Error {
	if len(value) > MaxValueBytes {
		return tooLarge(value)
	}
	o, e := diagnose(&d.p, value)
	if e != nil {
		return e
	}
	d.extract(o)
	c, e := d.validate(topic, key, &tsLimit{now: d.now}) // the clock read for every event
	if e != nil {
		return e
	}
	d.buf = d.fill(ev, &c, d.appendProps(d.buf[:0]), &d.arena)
	return nil
}

// extract sorts the top-level fields of o, which has no duplicated keys:
// the known ones into d.vals, with their text (a string's decoded bytes, a
// number's JSON text) copied to d.unesc, the unknown ones into d.unknown.
func (d *refDecoder) extract(o *fastjson.Object) {
	d.reset()
	clear(d.unknown)
	d.unknown = d.unknown[:0]
	o.Visit(func(key []byte, v *fastjson.Value) {
		if f := fieldOf(key); f != fUnknown {
			d.vals[f] = d.jval(v)
			return
		}
		d.unknown = append(d.unknown, refUnknownKV{key: key, v: v})
	})
}

// jval copies the text of v to d.unesc and says where it is.
func (d *refDecoder) jval(v *fastjson.Value) jval {
	lo := len(d.unesc)
	k := kindOf(v.Type())
	switch k {
	case kString:
		b, _ := v.StringBytes()
		d.unesc = append(d.unesc, b...)
	case kNumber, kBool:
		d.unesc = v.MarshalTo(d.unesc) // the number as written; true or false
	}
	return jval{kind: k, esc: true, lo: int32(lo), hi: int32(len(d.unesc))}
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
