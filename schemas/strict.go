package schemas

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
// scanner rejected (Decoder.badJSON), and are the reference the scanner is
// held to. The string, number and literal checks here are the scanner's.

// strictLeaves reports whether every string and number in s, a document that
// fastjson.Parser accepted, is strict JSON (and every string valid UTF-8,
// which Decoder.badJSON has checked before).
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
