package schemas

import (
	"bytes"

	"github.com/valyala/fastjson"
)

// The scanner: one pass over a record value that checks all of it (JSON
// syntax, strict leaves, UTF-8 of string contents, nesting depth, duplicated
// top-level keys), notes where each known top-level field's value is, and
// writes the unknown fields compactly as the Props object. It replaced
// utf8.Valid + fastjson.Parser + strictLeaves + a walk over fastjson's
// values, which together cost about three times as much (BenchmarkDecode
// page_view went from about 800 to 290 ns on a busy 2-core machine).
//
// It accepts exactly what that chain accepted; when it rejects a value,
// Decoder.badJSON runs the chain (diagnose) to name the fault, so error
// details are the same as before too. The scanner only extracts: the
// fields it notes are checked by the validators (decode.go), which the
// reference decoder (reference_test.go) shares, so FuzzScanMatchesReference
// holds the scanner to the chain it replaced. The token checks are in
// jsonlex.go.
//
// Outside strings a valid document is ASCII, so checking UTF-8 inside
// strings is checking the whole value.

// maxDepth is the nesting limit, fastjson's, counted as fastjson counts it:
// the top-level object is at depth 1, its field values at depth 2, and no
// value may be deeper than maxDepth.
const maxDepth = fastjson.MaxDepth

// scan checks that value is one JSON object without duplicated top-level
// keys, fills d.vals with its known fields (d.unesc with the decoded text
// of their strings that had escapes) and appends the unknown ones to
// d.buf as one compact JSON object (nothing when there are none). It returns
// false on any fault without saying which: see Decoder.badJSON.
func (d *Decoder) scan(b []byte) bool {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return skipWS(b, i+1) == len(b)
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return false
		}
		end, esc, ok := scanString(b, i+1)
		if !ok {
			return false
		}
		rawKey := b[i+1 : end-1]
		key := rawKey
		if esc {
			d.tmp = appendUnescaped(d.tmp[:0], rawKey)
			key = d.tmp
		}
		i = skipWS(b, end)
		if i >= len(b) || b[i] != ':' {
			return false
		}
		i = skipWS(b, i+1)
		if i >= len(b) {
			return false
		}
		if f := fieldOf(key); f != fUnknown {
			if d.vals[f].kind != kAbsent {
				return false // duplicated key
			}
			i, ok = d.scanField(b, i, f)
		} else {
			i, ok = d.scanUnknown(b, i, rawKey, esc)
		}
		if !ok {
			return false
		}
		i = skipWS(b, i)
		if i >= len(b) {
			return false
		}
		if b[i] == '}' {
			break
		}
		if b[i] != ',' {
			return false
		}
		i = skipWS(b, i+1)
	}
	if len(d.ukeys) > 0 {
		d.buf = append(d.buf, '}')
	}
	return skipWS(b, i+1) == len(b)
}

// scanField scans the value of known field f, which starts at b[i], into
// d.vals[f] and returns the index after it.
func (d *Decoder) scanField(b []byte, i int, f field) (int, bool) {
	v := jval{lo: int32(i)}
	switch c := b[i]; c {
	case '"':
		end, esc, ok := scanString(b, i+1)
		if !ok {
			return i, false
		}
		v = jval{kind: kString, lo: int32(i + 1), hi: int32(end - 1)}
		if esc {
			lo := len(d.unesc)
			d.unesc = appendUnescaped(d.unesc, b[i+1:end-1])
			v = jval{kind: kString, esc: true, lo: int32(lo), hi: int32(len(d.unesc))}
		}
		d.vals[f] = v
		return end, true
	case '{', '[':
		// Always a bad_value later, but the rest of the document must be
		// checked first: copy it like a prop and drop the copy.
		n := len(d.buf)
		var ok bool
		d.buf, i, ok = d.appendValue(d.buf, b, i, 2)
		d.buf = d.buf[:n]
		v.kind = kArray
		if c == '{' {
			v.kind = kObject
		}
		d.vals[f] = v
		return i, ok
	case 't', 'f', 'n':
		end, ok := scanLiteral(b, i)
		v.kind, v.hi = kBool, int32(end) // text: true or false (trial reads it)
		if c == 'n' {
			v.kind = kNull
		}
		d.vals[f] = v
		return end, ok
	}
	end, ok := scanNumber(b, i)
	v.kind, v.hi = kNumber, int32(end)
	d.vals[f] = v
	return end, ok
}

// maxPairwiseDup is the number of unknown keys up to which duplicates are
// found by pairwise comparison; beyond it a map keeps the check linear.
const maxPairwiseDup = 16

// scanUnknown appends the unknown field rawKey (the key's text between its
// quotes; esc if it has escapes), whose value starts at b[i], to the Props
// object in d.buf, and returns the index after the value. It fails on a key
// that an earlier unknown field had.
func (d *Decoder) scanUnknown(b []byte, i int, rawKey []byte, esc bool) (int, bool) {
	if len(d.ukeys) == 0 {
		d.buf = append(d.buf, '{')
	} else {
		d.buf = append(d.buf, ',')
	}
	// Keys are compared as written to Props (after unescaping and
	// re-escaping), which is the same as comparing the decoded keys:
	// appendJSONString is one-to-one.
	lo := len(d.buf)
	d.buf = d.appendString(d.buf, rawKey, esc)
	key := d.buf[lo:]
	if len(d.ukeys) < maxPairwiseDup {
		for _, k := range d.ukeys {
			if bytes.Equal(d.buf[k.lo:k.hi], key) {
				return i, false
			}
		}
	} else {
		if d.seen == nil {
			d.seen = make(map[string]struct{})
		}
		if len(d.seen) == 0 {
			for _, k := range d.ukeys {
				d.seen[string(d.buf[k.lo:k.hi])] = struct{}{}
			}
		}
		if _, dup := d.seen[string(key)]; dup {
			return i, false
		}
		d.seen[string(key)] = struct{}{}
	}
	d.ukeys = append(d.ukeys, span{int32(lo), int32(len(d.buf))})
	d.buf = append(d.buf, ':')
	var ok bool
	d.buf, i, ok = d.appendValue(d.buf, b, i, 2)
	return i, ok
}

// span is a range of bytes in one of the Decoder's buffers.
type span struct{ lo, hi int32 }

// appendValue checks the JSON value at b[i], at nesting depth depth, and
// appends it compactly to dst: without whitespace, strings decoded and
// re-escaped with appendJSONString, numbers as written. It returns the index
// after the value.
func (d *Decoder) appendValue(dst, b []byte, i, depth int) ([]byte, int, bool) {
	if depth > maxDepth || i >= len(b) {
		return dst, i, false
	}
	switch c := b[i]; c {
	case '"':
		end, esc, ok := scanString(b, i+1)
		if !ok {
			return dst, i, false
		}
		return d.appendString(dst, b[i+1:end-1], esc), end, true
	case '{', '[':
		closing := byte('}')
		if c == '[' {
			closing = ']'
		}
		dst = append(dst, c)
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == closing {
			return append(dst, closing), i + 1, true
		}
		for {
			var ok bool
			if c == '{' {
				if i >= len(b) || b[i] != '"' {
					return dst, i, false
				}
				end, esc, ok := scanString(b, i+1)
				if !ok {
					return dst, i, false
				}
				dst = d.appendString(dst, b[i+1:end-1], esc)
				i = skipWS(b, end)
				if i >= len(b) || b[i] != ':' {
					return dst, i, false
				}
				dst = append(dst, ':')
				i = skipWS(b, i+1)
			}
			dst, i, ok = d.appendValue(dst, b, i, depth+1)
			if !ok {
				return dst, i, false
			}
			i = skipWS(b, i)
			if i >= len(b) {
				return dst, i, false
			}
			if b[i] == closing {
				return append(dst, closing), i + 1, true
			}
			if b[i] != ',' {
				return dst, i, false
			}
			dst = append(dst, ',')
			i = skipWS(b, i+1)
		}
	case 't', 'f', 'n':
		end, ok := scanLiteral(b, i)
		return append(dst, b[i:end]...), end, ok
	}
	end, ok := scanNumber(b, i)
	return append(dst, b[i:end]...), end, ok
}

// appendString appends the JSON string whose text between the quotes is raw
// as fastjson + appendJSONString wrote it: decoded, then re-escaped. Without
// escapes that is raw itself, as raw holds no '"', '\\' or control bytes.
func (d *Decoder) appendString(dst, raw []byte, esc bool) []byte {
	if !esc {
		dst = append(dst, '"')
		dst = append(dst, raw...)
		return append(dst, '"')
	}
	d.tmp = appendUnescaped(d.tmp[:0], raw)
	return appendJSONString(dst, d.tmp)
}
