package schemas

import (
	"strings"
	"testing"
)

// scanSamples are record values aimed at the scanner's edges, beyond the
// decoder table: escapes and surrogates, whitespace, nesting at the limit,
// leaves next to structure, many keys.
var scanSamples = []string{
	// Escapes, decoded exactly as fastjson decodes them.
	pv(`,"x":"\ud800"`),                // a lone surrogate stays as text
	pv(`,"x":"\ud800\u0041"`),          // a surrogate pairs with the next \u: U+FFFD
	pv(`,"x":"\udc00\ud800\udc00x"`),   // ... and the third is lone again
	pv(`,"x":"\uD83D\uDE00\uD83D"`),    // a pair, then a lone high surrogate
	pv(`,"x":"\uDBFF\uDFFF\\u0041\/"`), // U+10FFFF, then an escaped backslash
	pv(`,"x":"a\u00e9\b\f\n\r\t\"\\\/\u0000"`),
	pv(`,"x\u0000":1,"\u00e9":{"\ud800":["\n"]}`),
	pv(`,"é":1,"\u00e9":2`), // duplicate after decoding
	pv(`,"\/":1,"/":2`),
	pv(`,"a\"":1,"a\u0022":2`),
	pv(`,"ts":1`), // duplicate known key, late
	`{"event_id":"e\u0031","type":"p\u0061ge_view","ts":"2025-03-01T10:00:00\u005a","visitor_id":"\u0076\u0031","url":"\ud800"}`,
	`{"event_id":"` + strings.Repeat(`\u00e9`, 32) + `","type":"click","ts":"2025-03-01T10:00:00Z","visitor_id":"v1"}`,
	`{"event_id":"` + strings.Repeat(`\ud800`, 10) + `","type":"click","ts":"2025-03-01T10:00:00Z","visitor_id":"v1"}`,
	`{"event_id":"` + strings.Repeat(`\ud800`, 11) + `","type":"click","ts":"2025-03-01T10:00:00Z","visitor_id":"v1"}`,
	// Bad strings.
	pv(`,"x":"\u12G4"`), pv(`,"x":"\u12"`), pv(`,"x":"\`), pv(`,"x":"\x"`), pv(`,"x":"` + "\x7f\u2028" + `"`),
	pv(`,"x":"` + "\xed\xa0\x80" + `"`), // an encoded surrogate is not UTF-8
	pv(`,"x":"` + "\xf4\x90\x80\x80" + `"`),
	pv(`,"x":"` + "\xc0\xaf" + `"`),
	pv(`,"x":"abcdefg` + "\xe2\x82" + `"`),
	pv(`,"x":1`) + "\xff",
	pv(`,"x":"` + "\x1f" + `"`),
	`{"event_id":"e1","type":"click","ts":"2025-03-01T10:00:00Z","visitor_id":"v1","x":"abc`,
	`{"abcdefgh`, `{"a":"abcdefgh`, `{"a":"abcdefgh"`, `{"a":"abcdefgh"}`, `{"a":"\u00e`,
	// Whitespace and structure.
	" {\t\"a\"\r:\n[ ] , \"b\" : { } }\n", "{}", " {} ", "{}x", "{},", "{,}", `{"a":1,}`, `{"a":[1,]}`, `{"a":[,1]}`,
	`{"a"}`, `{"a":}`, `{"a" 1}`, `{"a":1 "b":2}`, `{"a":{"b"}}`, `{"a":{"b":}}`, `{"a":{1:2}}`, `{"a":[1 2]}`,
	"{\"a\":1}\x00", "\ufeff{}", "{\"a\":\v1}", "{\"a\":\f1}",
	`{"a":[{"b":[{"c":null}]},true,false,null,-0.5e-3,"s"]}`,
	`{"a":tru}`, `{"a":fals}`, `{"a":nul}`, `{"a":nulll}`, `{"a":truex}`, `{"a":NaN}`, `{"a":-Inf}`, `{"a":[nan]}`,
	`{"a":-}`, `{"a":01}`, `{"a":1.}`, `{"a":.1}`, `{"a":1e}`, `{"a":1e+}`, `{"a":1.5E-07}`, `{"a":-0}`, `{"a":1.2.3}`, `{"a":+1}`,
	`{"a":1-2}`, `{"a":1x}`, `{"a":[1]x}`, `{"a":{}x}`,
	pv(`,"ts":01`), pv(`,"amount":1.`), `{"event_id":"e1","type":"click","ts":0x10,"visitor_id":"v1"}`,
	// Nesting: field values are at depth 2, so 299 brackets reach 300.
	pv(`,"x":` + strings.Repeat("[", 298) + "1" + strings.Repeat("]", 298)),
	pv(`,"x":` + strings.Repeat("[", 299) + "1" + strings.Repeat("]", 299)),
	pv(`,"x":` + strings.Repeat("[", 299) + strings.Repeat("]", 299)),
	pv(`,"x":` + strings.Repeat("[", 300) + strings.Repeat("]", 300)),
	pv(`,"x":` + strings.Repeat(`{"a":`, 299) + "1" + strings.Repeat("}", 299)),
	pv(`,"x":` + strings.Repeat(`{"a":`, 298) + "{}" + strings.Repeat("}", 298)),
	pv(`,"x":` + strings.Repeat(`{"a":`, 299) + "{}" + strings.Repeat("}", 299)),
	pv(`,"x":` + strings.Repeat("[", 400)),
	pv(`,"x":` + strings.Repeat("[", 400) + "NaN"),
	pv(`,"x":NaN,"y":` + strings.Repeat("[", 400) + strings.Repeat("]", 400)),
	pv(`,"y":` + strings.Repeat("[", 400) + strings.Repeat("]", 400) + `,"x":NaN`),
	pv(`,"x":"` + "\xff" + `","y":` + strings.Repeat("[", 400) + strings.Repeat("]", 400)),
	pv(`,"url":` + strings.Repeat("[", 400) + strings.Repeat("]", 400)),
	pv(`,"url":[1,{"a":"b"}]`), pv(`,"url":{"a":NaN}`), pv(`,"url":[1,2`),
	// Duplicates: the first repeated key is named, known or not.
	pv(`,"x":1,"y":2,"x":3,"y":4`), pv(`,"x":1,"url":"a","y":2,"url":"b","x":3`),
	pv(manyKeys(16) + `,"k15":0`), pv(manyKeys(17) + `,"k16":0`), pv(manyKeys(17) + `,"k0":0`),
	pv(manyKeys(60) + `,"k59":0,"k3":0`), pv(manyKeys(60)), pv(manyKeys(40) + `,"type":"x"`),
	// Top level not an object.
	`[1]`, `"x"`, `1`, `true`, `null`, ` `, `[`, `{`, `"`, `[1,`, `{"a":1}{`,
	// Field values of every kind.
	pv(`,"url":null,"referrer":"","device":"` + "\u00e9" + `","country":"\u00c9"`),
	`{"event_id":"e1","type":"review","ts":"2025-03-01T10:00:00Z","visitor_id":"v1","rating":4.0e0,"nps":-0.0,"csat":5E0}`,
	`{"event_id":"e1","type":"review","ts":"2025-03-01T10:00:00Z","visitor_id":"v1","rating":true}`,
	`{"event_id":"e1","type":"review","ts":"2025-03-01T10:00:00Z","visitor_id":"v1","rating":[]}`,
	`{"event_id":"e1","type":"review","ts":"2025-03-01T10:00:00Z","visitor_id":"v1","rating":{}}`,
	`{"event_id":"e1","type":"order_completed","ts":1740823200000,"visitor_id":"v1","order_id":"\u006f1","amount":1e2,"currency":"\u0045UR"}`,
	`{"event_id":{},"type":"click","ts":"2025-03-01T10:00:00Z","visitor_id":"v1"}`,
	`{"event_id":"e1","type":[],"ts":"2025-03-01T10:00:00Z","visitor_id":"v1"}`,
	`{"event_id":"e1","type":"click","ts":{},"visitor_id":"v1"}`,
	`{"event_id":"e1","type":"click","ts":null,"visitor_id":"v1","ts2":false}`,
}

// TestDecodeMatchesReference runs the decoder table and scanSamples through
// the Decoder and the reference decoder (reference_test.go).
func TestDecodeMatchesReference(t *testing.T) {
	d, ref := NewDecoder(testClock), &refDecoder{now: testClock}
	check := func(topic Topic, key, value []byte) {
		t.Helper()
		for _, topic := range []Topic{Clickstream, Transactions} {
			var ev, want Event
			err := d.Decode(topic, key, value, &ev)
			wantErr := ref.Decode(topic, key, value, &want)
			if !sameOutcome(err, wantErr, &ev, &want) {
				t.Errorf("Decode(%s, %q, %.300q)\n got %v %+v\nwant %v %+v", topic, key, value, err, ev, wantErr, want)
			}
		}
	}
	for _, c := range decodeCases() {
		check(c.topic, keyOf(c), []byte(c.value))
	}
	for _, s := range schemaSamples {
		check(s.topic, []byte("v1"), []byte(s.value))
	}
	for _, v := range scanSamples {
		check(Clickstream, []byte("v1"), []byte(v))
		check(Clickstream, nil, []byte(v))
		// Every prefix of a short sample is a truncated document.
		if len(v) <= 300 {
			for n := range len(v) {
				check(Clickstream, []byte("v1"), []byte(v[:n]))
			}
		}
	}
}

func sameOutcome(err, wantErr *Error, ev, want *Event) bool {
	if err == nil || wantErr == nil {
		return err == nil && wantErr == nil && *ev == *want
	}
	return *err == *wantErr
}

// FuzzScanMatchesReference holds the Decoder to the reference decoder.
// Invariant: for every record, both return the same *Error (reason and
// detail), or both succeed with the same Event.
func FuzzScanMatchesReference(f *testing.F) {
	for _, c := range decodeCases() {
		if len(c.value) <= 8<<10 {
			f.Add(uint8(c.topic), keyOf(c), []byte(c.value))
		}
	}
	for _, v := range scanSamples {
		if len(v) <= 8<<10 {
			f.Add(uint8(Clickstream), []byte("v1"), []byte(v))
		}
	}
	d, ref := NewDecoder(testClock), &refDecoder{now: testClock}
	f.Fuzz(func(t *testing.T, topicByte uint8, key, value []byte) {
		topic := Topic(topicByte & 1)
		var ev, want Event
		err := d.Decode(topic, key, value, &ev)
		wantErr := ref.Decode(topic, key, value, &want)
		if !sameOutcome(err, wantErr, &ev, &want) {
			t.Fatalf("Decode(%s, %q, %q)\n got %v %+v\nwant %v %+v", topic, key, value, err, ev, wantErr, want)
		}
	})
}
