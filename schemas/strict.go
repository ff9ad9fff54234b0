package schemas

import (
	"encoding/binary"
	"math/bits"
)

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

// strByte marks the bytes that end the fast scan of a string: '"', '\\' and
// control characters, which JSON does not allow raw in a string.
var strByte = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['"'] = true
	t['\\'] = true
	return t
}()

// strictLeaves reports whether every string and number in s, a document that
// fastjson.Parser accepted, is strict JSON.
func strictLeaves(s []byte) bool {
	i := 0
	for i < len(s) {
		switch c := s[i]; c {
		case ' ', '\t', '\n', '\r', '{', '}', '[', ']', ',', ':':
			i++
		case '"':
			j, ok := scanString(s, i+1)
			if !ok {
				return false
			}
			i = j
		case 't', 'f', 'n':
			var lit string
			switch c {
			case 't':
				lit = "true"
			case 'f':
				lit = "false"
			default:
				lit = "null"
			}
			if len(s)-i < len(lit) || string(s[i:i+len(lit)]) != lit {
				return false // "nan"
			}
			i += len(lit)
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

// scanString checks a string whose opening quote is before s[i] and returns
// the index after its closing quote.
func scanString(s []byte, i int) (int, bool) {
	for i < len(s) {
		// Skip plain bytes: eight at a time while eight are left (this loop
		// was 40% of Decode when it went byte by byte), then one at a time.
		if i+8 <= len(s) {
			m := specialMask(binary.LittleEndian.Uint64(s[i:]))
			if m == 0 {
				i += 8
				continue
			}
			i += bits.TrailingZeros64(m) / 8
		} else if !strByte[s[i]] {
			i++
			continue
		}
		c := s[i]
		switch {
		case c == '"':
			return i + 1, true
		case c < 0x20:
			return i, false
		}
		// A backslash: a JSON escape must follow.
		if i+1 >= len(s) {
			return i, false
		}
		switch s[i+1] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			i += 2
		case 'u':
			if i+6 > len(s) || !isHex(s[i+2]) || !isHex(s[i+3]) || !isHex(s[i+4]) || !isHex(s[i+5]) {
				return i, false
			}
			i += 6
		default:
			return i, false
		}
	}
	return i, false
}

const (
	lsb = 0x0101010101010101 // the low bit of each byte
	msb = 0x8080808080808080 // the high bit of each byte
)

// specialMask sets the high bit of each byte of x (eight string bytes, the
// first in the low byte) that is '"', '\\' or a control character. It is the
// "has a byte less than n" trick (x - n×lsb) & ^x & msb, applied to x for
// n = 0x20 and to x^'"' and x^'\\' for n = 1; XOR with a byte below 0x80 keeps
// each high bit, so one ^x serves all three. Only the lowest set bit is
// exact (a borrow can set spurious bits above a true one), which is all the
// caller uses.
func specialMask(x uint64) uint64 {
	quote := x ^ (lsb * '"')
	backslash := x ^ (lsb * '\\')
	return ((x - lsb*0x20) | (quote - lsb) | (backslash - lsb)) & ^x & msb
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// scanNumber checks a number -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
// starting at s[i] and returns the index after it. The number must not run
// on into more number characters ("1.2.3", "1e5e5").
func scanNumber(s []byte, i int) (int, bool) {
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	default:
		return i, false
	}
	if i < len(s) && s[i] == '.' {
		i++
		j := i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		if i == j {
			return i, false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		j := i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		if i == j {
			return i, false
		}
	}
	if i < len(s) {
		switch s[i] {
		case '.', 'e', 'E', '+', '-':
			return i, false
		}
		if isDigit(s[i]) { // "01"
			return i, false
		}
	}
	return i, true
}
