package schemas

// The JSON lexer: the token checks that the scanner (scan.go) and strictLeaves
// (diagnose.go) share, and JSON string escaping both ways (appendUnescaped
// reads a string as fastjson does, appendJSONString writes one).

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"unicode/utf16"
	"unicode/utf8"
)

// skipWS returns the index of the first byte at or after b[i] that is not
// JSON whitespace.
func skipWS(b []byte, i int) int {
	for i < len(b) && b[i] <= ' ' {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// scanLiteral checks that true, false or null starts at b[i] and returns the
// index after it.
func scanLiteral(b []byte, i int) (int, bool) {
	var lit string
	switch b[i] {
	case 't':
		lit = "true"
	case 'f':
		lit = "false"
	default:
		lit = "null"
	}
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return i, false
	}
	return i + len(lit), true
}

// strByte marks the bytes that specialMask finds: '"', '\\' and control
// characters, which JSON does not allow raw in a string (TestSpecialMask).
var strByte = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['"'] = true
	t['\\'] = true
	return t
}()

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

// stopMask sets the high bit of each byte of x (eight string bytes, the
// first in the low byte) that ends the fast scan of a string: the bytes
// specialMask marks, and the bytes of multi-byte UTF-8 sequences, which
// need checking. As with specialMask, only the lowest set bit is exact.
func stopMask(x uint64) uint64 {
	return specialMask(x) | x&msb
}

// scanString checks the string whose opening quote is before b[i], strictly
// (escapes, no raw control characters, valid UTF-8), and returns the index
// after its closing quote and whether it has escapes.
func scanString(b []byte, i int) (end int, esc, ok bool) {
	for {
		// Skip plain ASCII eight bytes at a time while eight are left.
		for i+8 <= len(b) {
			m := stopMask(binary.LittleEndian.Uint64(b[i:]))
			if m != 0 {
				i += bits.TrailingZeros64(m) / 8
				break
			}
			i += 8
		}
		if i >= len(b) {
			return i, esc, false
		}
		c := b[i]
		switch {
		case c == '"':
			return i + 1, esc, true
		case c == '\\':
			// A JSON escape must follow.
			if i+1 >= len(b) {
				return i, esc, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) || !isHex(b[i+5]) {
					return i, esc, false
				}
				i += 6
			default:
				return i, esc, false
			}
			esc = true
		case c < 0x20:
			return i, esc, false
		case c < utf8.RuneSelf:
			i++ // plain ASCII in the last seven bytes
		default:
			r, n := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && n == 1 {
				return i, esc, false
			}
			i += n
		}
	}
}

// appendUnescaped appends the decoded text of raw, the text between the
// quotes of a string that scanString accepted, exactly as fastjson v1.6.10
// decodes it (unescapeStringBestEffort), so that strings and Props are the
// same as before the scanner. In particular, for \uXXXX escapes of UTF-16
// surrogates:
//   - a surrogate followed by another \u escape is decoded as a pair with it,
//     and both become U+FFFD unless they are a high and a low surrogate;
//   - a surrogate not followed by a \u escape stays as its six bytes of text,
//     backslash included.
func appendUnescaped(dst, raw []byte) []byte {
	for {
		n := bytes.IndexByte(raw, '\\')
		if n < 0 {
			return append(dst, raw...)
		}
		dst = append(dst, raw[:n]...)
		c := raw[n+1]
		raw = raw[n+2:]
		switch c {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			x := rune(hex4(raw))
			hex := raw[:4]
			raw = raw[4:]
			switch {
			case !utf16.IsSurrogate(x):
				dst = utf8.AppendRune(dst, x)
			case len(raw) >= 6 && raw[0] == '\\' && raw[1] == 'u':
				dst = utf8.AppendRune(dst, utf16.DecodeRune(x, rune(hex4(raw[2:]))))
				raw = raw[6:]
			default:
				dst = append(dst, '\\', 'u')
				dst = append(dst, hex...)
			}
		default: // '"', '\\', '/'
			dst = append(dst, c)
		}
	}
}

// hex4 decodes the four hex digits at the start of b.
func hex4(b []byte) uint16 {
	var x uint16
	for _, c := range b[:4] {
		switch {
		case c >= 'a':
			c -= 'a' - 10
		case c >= 'A':
			c -= 'A' - 10
		default:
			c -= '0'
		}
		x = x<<4 | uint16(c)
	}
	return x
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// skipDigits returns the index after the run of digits starting at s[i].
func skipDigits(s []byte, i int) int {
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return i
}

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
		i = skipDigits(s, i)
	default:
		return i, false
	}
	if i < len(s) && s[i] == '.' {
		j := skipDigits(s, i+1)
		if j == i+1 {
			return j, false
		}
		i = j
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		j := skipDigits(s, i)
		if j == i {
			return j, false
		}
		i = j
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
