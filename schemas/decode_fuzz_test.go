package schemas

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/valyala/fastjson"
)

// cloneEvent returns ev with every string copied, to compare against after
// ev's input buffers were overwritten.
func cloneEvent(ev Event) Event {
	for _, p := range []*string{&ev.EventID, &ev.VisitorID, &ev.CustomerID, &ev.URL, &ev.Referrer,
		&ev.UTMSource, &ev.UTMMedium, &ev.UTMCampaign, &ev.Device, &ev.Country, &ev.OrderID,
		&ev.Currency, &ev.Plan, &ev.Props} {
		*p = strings.Clone(*p)
	}
	return ev
}

// FuzzDecode checks the decoder's contract on arbitrary records.
//
// Invariant: Decode never panics, and for every input it returns either
//   - nil, with an Event that passes a re-check of the rules (checkEvent): a
//     valid type on that topic, non-empty event_id and visitor_id within
//     their limits, VisitorID == key, TsMs in [2000-01-01, now+1h], strings
//     within their limits, a non-negative Amount, a valid currency when
//     present, rating/nps/csat/ces Absent or in range (rating present on review),
//     trial only on subscription_started, plan within 64 bytes,
//     Props "" or a JSON object of unknown fields only; and whose strings do
//     not alias key or value; or
//   - a non-nil *Error whose Reason is one of DecodeReasons and whose Detail is
//     non-empty;
//
// and decoding the same record again gives the same outcome.
func FuzzDecode(f *testing.F) {
	for _, c := range decodeCases() {
		if len(c.value) > 8<<10 {
			continue // keep the seed corpus small; the big cases are in TestDecode
		}
		f.Add(uint8(c.topic), keyOf(c), []byte(c.value))
	}
	d := NewDecoder(testClock)
	f.Fuzz(func(t *testing.T, topicByte uint8, key, value []byte) {
		topic := Topic(topicByte & 1)
		key = bytes.Clone(key)
		value = bytes.Clone(value)

		var ev Event
		err := d.Decode(topic, key, value, &ev)
		if err != nil {
			checkError(t, err)
		} else {
			checkEvent(t, topic, key, &ev)
		}

		// Same outcome again, and the first event survives reuse of the
		// input buffers and of the decoder.
		want := cloneEvent(ev)
		var ev2 Event
		err2 := d.Decode(topic, key, value, &ev2)
		switch {
		case (err == nil) != (err2 == nil):
			t.Fatalf("second decode: %v, first: %v", err2, err)
		case err != nil && *err != *err2:
			t.Fatalf("second decode: %v, first: %v", err2, err)
		case err == nil && ev2 != want:
			t.Fatalf("second decode: %+v, first: %+v", ev2, want)
		}
		if err == nil {
			for i := range value {
				value[i] = 0
			}
			for i := range key {
				key[i] = 0
			}
			if ev != want {
				t.Fatalf("event aliases its input: %+v, want %+v", ev, want)
			}
		}
	})
}

// FuzzStrictLeaves holds strictLeaves to its contract. Invariant: on a UTF-8
// document that fastjson.Parser accepts, strictLeaves never panics and
// accepts exactly what encoding/json.Valid accepts.
//
// fastjson.Validate is not the reference: this fuzzer found that it misses a
// raw control character placed before an escape in the same string
// (testdata/fuzz/FuzzStrictLeaves/dbdda53e309140d3: "\x04\\b").
func FuzzStrictLeaves(f *testing.F) {
	for _, c := range decodeCases() {
		if len(c.value) <= 8<<10 {
			f.Add([]byte(c.value))
		}
	}
	for _, s := range []string{`-`, `-0`, `0.0e+0`, `[1E5,-1e-5]`, `[Infinity]`, `[-inf]`, `[+1]`, `[.5]`, `[1.]`,
		`["\u12G4"]`, `["\uabcd\u00E9"]`, `["\/\b\f\n\r\t"]`, `{"a\u0000":1}`, `[NaN]`, `[nAn]`, `[nul]`, `[1.5e]`} {
		f.Add([]byte(s))
	}
	var p fastjson.Parser
	f.Fuzz(func(t *testing.T, value []byte) {
		if !utf8.Valid(value) {
			return
		}
		if _, err := p.ParseBytes(value); err != nil {
			return
		}
		got := strictLeaves(value)
		if want := json.Valid(value); got != want {
			t.Fatalf("strictLeaves(%q) = %v, json.Valid says %v", value, got, want)
		}
	})
}
