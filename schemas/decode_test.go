package schemas

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// testNow is the fixed processing clock of the tests.
var testNow = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func testClock() time.Time { return testNow }

// Helpers building record values around a valid base event.
func pv(extra string) string {
	return `{"event_id":"e1","type":"page_view","ts":"2025-03-01T10:00:00Z","visitor_id":"v1"` + extra + `}`
}

func typed(typ, extra string) string {
	return `{"event_id":"e1","type":"` + typ + `","ts":"2025-03-01T10:00:00Z","visitor_id":"v1"` + extra + `}`
}

func order(extra string) string {
	return typed("order_completed", `,"order_id":"o1","amount":12.5,"currency":"EUR"`+extra)
}

func withTs(ts string) string {
	return `{"event_id":"e1","type":"page_view","ts":` + ts + `,"visitor_id":"v1"}`
}

// decodeCase is one record and the expected outcome: reason "" means the
// record decodes, and check (if set) inspects the event.
type decodeCase struct {
	name   string
	topic  Topic
	key    *string // nil: "v1"
	value  string
	reason Reason
	detail string // substring the detail must contain
	check  func(t *testing.T, ev *Event)
}

func keyOf(c decodeCase) []byte {
	if c.key == nil {
		return []byte("v1")
	}
	if *c.key == "<nil>" {
		return nil
	}
	return []byte(*c.key)
}

func strp(s string) *string { return &s }

var nilKey = strp("<nil>")

func ms(s string) int64 {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UnixMilli()
}

func wantTs(want string) func(*testing.T, *Event) {
	return func(t *testing.T, ev *Event) {
		t.Helper()
		if ev.TsMs != ms(want) {
			t.Errorf("TsMs = %d (%s), want %s", ev.TsMs, ev.Time().Format(time.RFC3339Nano), want)
		}
	}
}

func wantAmount(units Amount) func(*testing.T, *Event) {
	return func(t *testing.T, ev *Event) {
		t.Helper()
		if ev.Amount != units {
			t.Errorf("Amount = %d (%s), want %d", ev.Amount, ev.Amount, units)
		}
	}
}

func wantProps(props string) func(*testing.T, *Event) {
	return func(t *testing.T, ev *Event) {
		t.Helper()
		if ev.Props != props {
			t.Errorf("Props = %q, want %q", ev.Props, props)
		}
	}
}

func wantInts(rating, nps, csat int8) func(*testing.T, *Event) {
	return func(t *testing.T, ev *Event) {
		t.Helper()
		if ev.Rating != rating || ev.NPS != nps || ev.CSAT != csat {
			t.Errorf("rating, nps, csat = %d, %d, %d, want %d, %d, %d", ev.Rating, ev.NPS, ev.CSAT, rating, nps, csat)
		}
	}
}

func wantCES(ces int8) func(*testing.T, *Event) {
	return func(t *testing.T, ev *Event) {
		t.Helper()
		if ev.CES != ces {
			t.Errorf("ces = %d, want %d", ev.CES, ces)
		}
	}
}

func wantTrialPlan(trial bool, plan string) func(*testing.T, *Event) {
	return func(t *testing.T, ev *Event) {
		t.Helper()
		if ev.Trial != trial || ev.Plan != plan || ev.Props != "" {
			t.Errorf("trial, plan, props = %v, %q, %q, want %v, %q, \"\"", ev.Trial, ev.Plan, ev.Props, trial, plan)
		}
	}
}

var (
	s64   = strings.Repeat("a", 64)
	s65   = strings.Repeat("a", 65)
	s128  = strings.Repeat("b", 128)
	s129  = strings.Repeat("b", 129)
	s256  = strings.Repeat("c", 256)
	s257  = strings.Repeat("c", 257)
	u2048 = "https://x.example/" + strings.Repeat("p", 2048-len("https://x.example/"))
	u2049 = u2048 + "q"
)

func decodeCases() []decodeCase {
	return []decodeCase{
		// --- valid events ---
		{name: "page_view minimal", value: pv(""), check: func(t *testing.T, ev *Event) {
			want := Event{EventID: "e1", Type: PageView, TsMs: ms("2025-03-01T10:00:00Z"), VisitorID: "v1",
				Rating: Absent, NPS: Absent, CSAT: Absent, CES: Absent}
			if *ev != want {
				t.Errorf("got %+v\nwant %+v", *ev, want)
			}
		}},
		{name: "page_view full", value: `{"event_id":"2c8BqXqmvLkyQ3yZ8mJ4k1a9Xy7","type":"page_view","ts":"2025-03-01T10:00:00.123Z",` +
			`"visitor_id":"v1","customer_id":"c9","url":"https://shop.example/p/1?x=1","referrer":"https://www.google.com/",` +
			`"utm_source":"google","utm_medium":"cpc","utm_campaign":"spring","device":"mobile","country":"DE"}`,
			check: func(t *testing.T, ev *Event) {
				want := Event{EventID: "2c8BqXqmvLkyQ3yZ8mJ4k1a9Xy7", Type: PageView, TsMs: ms("2025-03-01T10:00:00.123Z"),
					VisitorID: "v1", CustomerID: "c9", URL: "https://shop.example/p/1?x=1", Referrer: "https://www.google.com/",
					UTMSource: "google", UTMMedium: "cpc", UTMCampaign: "spring", Device: "mobile", Country: "DE",
					Rating: Absent, NPS: Absent, CSAT: Absent, CES: Absent}
				if *ev != want {
					t.Errorf("got %+v\nwant %+v", *ev, want)
				}
			}},
		{name: "whitespace around", value: " \n\t{ \"event_id\" : \"e1\" , \"type\":\"click\",\"ts\":\"2025-03-01T10:00:00Z\",\"visitor_id\":\"v1\" }\r\n"},
		{name: "every clickstream type", value: typed("search", "")},
		{name: "signup", value: typed("signup", "")},
		{name: "login", value: typed("login", "")},
		{name: "add_to_cart", value: typed("add_to_cart", "")},
		{name: "checkout_started", value: typed("checkout_started", "")},
		{name: "referral", value: typed("referral", "")},
		{name: "survey without scores", value: typed("survey", ""), check: wantInts(Absent, Absent, Absent)},
		{name: "subscription_started", topic: Transactions, value: typed("subscription_started", "")},
		{name: "subscription_cancelled", topic: Transactions, value: typed("subscription_cancelled", "")},
		{name: "order_completed", topic: Transactions, value: order(""), check: func(t *testing.T, ev *Event) {
			if ev.Type != OrderCompleted || ev.OrderID != "o1" || ev.Amount != 125000 || ev.Currency != "EUR" {
				t.Errorf("got %+v", *ev)
			}
		}},
		{name: "order_refunded", topic: Transactions, value: typed("order_refunded", `,"order_id":"o1","amount":0,"currency":"USD"`), check: func(t *testing.T, ev *Event) {
			if ev.Type != OrderRefunded || ev.Amount != 0 || ev.Currency != "USD" {
				t.Errorf("got %+v", *ev)
			}
		}},
		{name: "unicode strings", value: `{"event_id":"é✓","type":"search","ts":"2025-03-01T10:00:00Z","visitor_id":"访客","url":"https://例え.jp/パス","country":"\u00c9\n"}`,
			key: strp("访客"), check: func(t *testing.T, ev *Event) {
				if ev.EventID != "é✓" || ev.VisitorID != "访客" || ev.URL != "https://例え.jp/パス" || ev.Country != "É\n" {
					t.Errorf("got %+v", *ev)
				}
			}},
		{name: "escaped visitor_id equals raw key", value: `{"event_id":"e1","type":"click","ts":"2025-03-01T10:00:00Z","visitor_id":"v\u0031"}`},
		{name: "escaped key names", value: `{"event\u005fid":"e1","type":"click","ts":"2025-03-01T10:00:00Z","visitor_id":"v1"}`},

		// --- too_large: value ---
		{name: "value over 256 KiB", value: pv(`,"pad":"` + strings.Repeat("x", MaxValueBytes) + `"`), reason: ReasonTooLarge, detail: "value:"},
		{name: "value exactly 256 KiB", value: func() string {
			s := pv(`,"pad":""`)
			return pv(`,"pad":"` + strings.Repeat("x", MaxValueBytes-len(s)) + `"`)
		}(), check: func(t *testing.T, ev *Event) {
			if len(ev.Props) < MaxValueBytes-200 {
				t.Errorf("props truncated: %d bytes", len(ev.Props))
			}
		}},
		{name: "too large wins over bad json", value: strings.Repeat("{", MaxValueBytes+1), reason: ReasonTooLarge},

		// --- bad_json ---
		{name: "empty value", value: "", reason: ReasonBadJSON, detail: "value: empty"},
		{name: "invalid UTF-8", value: pv(`,"x":"` + "\xff\xfe" + `"`), reason: ReasonBadJSON, detail: "UTF-8"},
		{name: "invalid UTF-8 in key", value: "{\"\xc3\":1}", reason: ReasonBadJSON},
		{name: "not json", value: `hello`, reason: ReasonBadJSON},
		{name: "truncated", value: `{"event_id":"e1"`, reason: ReasonBadJSON},
		{name: "trailing garbage", value: pv("") + "x", reason: ReasonBadJSON},
		{name: "two objects", value: pv("") + pv(""), reason: ReasonBadJSON},
		{name: "whitespace only", value: "  ", reason: ReasonBadJSON},
		{name: "array", value: `[]`, reason: ReasonBadJSON, detail: "got array"},
		{name: "null", value: `null`, reason: ReasonBadJSON, detail: "got null"},
		{name: "string", value: `"x"`, reason: ReasonBadJSON, detail: "got string"},
		{name: "number", value: `42`, reason: ReasonBadJSON},
		{name: "NaN is not JSON", value: pv(`,"x":NaN`), reason: ReasonBadJSON},
		{name: "nan is not JSON", value: pv(`,"x":nan`), reason: ReasonBadJSON},
		{name: "leading zero is not JSON", value: pv(`,"x":01`), reason: ReasonBadJSON},
		{name: "plus sign is not JSON", value: pv(`,"x":+1`), reason: ReasonBadJSON},
		{name: "bad escape", value: pv(`,"x":"\q"`), reason: ReasonBadJSON},
		{name: "raw control char in string", value: pv(`,"x":"a` + "\x01" + `b"`), reason: ReasonBadJSON},
		{name: "raw control char before an escape", value: pv(`,"x":"` + "\x04" + `\b"`), reason: ReasonBadJSON},
		{name: "single quotes", value: `{'event_id':'e1'}`, reason: ReasonBadJSON},
		{name: "duplicate known key", value: pv(`,"event_id":"e2"`), reason: ReasonBadJSON, detail: `"event_id" appears more than once`},
		{name: "duplicate known key via escape", value: pv(`,"t\u0079pe":"click"`), reason: ReasonBadJSON, detail: `"type"`},
		{name: "duplicate unknown key", value: pv(`,"x":1,"x":2`), reason: ReasonBadJSON, detail: `"x"`},
		{name: "duplicate unknown key among many", value: pv(manyKeys(40) + `,"k7":0`), reason: ReasonBadJSON, detail: `"k7"`},
		{name: "many distinct unknown keys", value: pv(manyKeys(40)), check: func(t *testing.T, ev *Event) {
			if !strings.HasPrefix(ev.Props, `{"k0":0,"k1":1,`) || !strings.HasSuffix(ev.Props, `"k39":39}`) {
				t.Errorf("Props = %s", ev.Props)
			}
		}},
		{name: "nested duplicate keys are kept", value: pv(`,"x":{"a":1,"a":2}`), check: wantProps(`{"x":{"a":1,"a":2}}`)},
		{name: "duplicate beats missing key", key: nilKey, value: pv(`,"x":1,"x":1`), reason: ReasonBadJSON},
		{name: "nesting beyond limit", value: pv(`,"x":` + strings.Repeat("[", 400) + strings.Repeat("]", 400)), reason: ReasonBadJSON, detail: "nested deeper"},
		{name: "nesting within limit", value: pv(`,"x":` + strings.Repeat("[", 250) + strings.Repeat("]", 250)),
			check: wantProps(`{"x":` + strings.Repeat("[", 250) + strings.Repeat("]", 250) + `}`)},

		// --- missing_key ---
		{name: "nil key", key: nilKey, value: pv(""), reason: ReasonMissingKey},
		{name: "empty key", key: strp(""), value: pv(""), reason: ReasonMissingKey},
		{name: "missing key beats missing type", key: nilKey, value: `{}`, reason: ReasonMissingKey},

		// --- type ---
		{name: "empty object", value: `{}`, reason: ReasonMissingField, detail: "field type:"},
		{name: "type missing", value: `{"event_id":"e1","ts":"2025-03-01T10:00:00Z","visitor_id":"v1"}`, reason: ReasonMissingField, detail: "field type:"},
		{name: "type null", value: `{"event_id":"e1","type":null,"ts":"2025-03-01T10:00:00Z","visitor_id":"v1"}`, reason: ReasonMissingField, detail: "field type:"},
		{name: "type empty", value: typed("", ""), reason: ReasonMissingField, detail: "field type:"},
		{name: "type not a string", value: `{"event_id":"e1","type":3,"ts":"2025-03-01T10:00:00Z","visitor_id":"v1"}`, reason: ReasonBadValue, detail: "field type: must be a string, got number"},
		{name: "type bool", value: `{"type":true}`, reason: ReasonBadValue, detail: "got boolean"},
		{name: "unknown type", value: typed("pageview", ""), reason: ReasonUnknownType, detail: `field type: "pageview"`},
		{name: "type is case sensitive", value: typed("Page_View", ""), reason: ReasonUnknownType},
		{name: "unknown type beats missing event_id", value: `{"type":"nope"}`, reason: ReasonUnknownType},
		{name: "order on clickstream", value: order(""), reason: ReasonWrongTopic, detail: "topic transactions"},
		{name: "page_view on transactions", topic: Transactions, value: pv(""), reason: ReasonWrongTopic, detail: "field type:"},
		{name: "subscription on clickstream", value: typed("subscription_started", ""), reason: ReasonWrongTopic},
		{name: "wrong topic beats bad ts", topic: Transactions, value: withTs(`"yesterday"`), reason: ReasonWrongTopic},

		// --- event_id ---
		{name: "event_id missing", value: `{"type":"click","ts":"2025-03-01T10:00:00Z","visitor_id":"v1"}`, reason: ReasonMissingField, detail: "field event_id:"},
		{name: "event_id null", value: `{"event_id":null,"type":"click","ts":"2025-03-01T10:00:00Z","visitor_id":"v1"}`, reason: ReasonMissingField, detail: "field event_id:"},
		{name: "event_id empty", value: `{"event_id":"","type":"click","ts":"2025-03-01T10:00:00Z","visitor_id":"v1"}`, reason: ReasonMissingField, detail: "field event_id:"},
		{name: "event_id number", value: `{"event_id":17,"type":"click","ts":"2025-03-01T10:00:00Z","visitor_id":"v1"}`, reason: ReasonBadValue, detail: "field event_id: must be a string"},
		{name: "event_id 64 bytes", value: `{"event_id":"` + s64 + `","type":"click","ts":"2025-03-01T10:00:00Z","visitor_id":"v1"}`},
		{name: "event_id 65 bytes", value: `{"event_id":"` + s65 + `","type":"click","ts":"2025-03-01T10:00:00Z","visitor_id":"v1"}`, reason: ReasonTooLarge, detail: "field event_id: 65 bytes"},
		{name: "event_id 64 bytes of multibyte runes", value: `{"event_id":"` + strings.Repeat("é", 32) + `","type":"click","ts":"2025-03-01T10:00:00Z","visitor_id":"v1"}`},
		{name: "event_id 33 runes but 66 bytes", value: `{"event_id":"` + strings.Repeat("é", 33) + `","type":"click","ts":"2025-03-01T10:00:00Z","visitor_id":"v1"}`, reason: ReasonTooLarge},
		{name: "event_id limit counts unescaped bytes", value: `{"event_id":"` + strings.Repeat(`\u0061`, 64) + `","type":"click","ts":"2025-03-01T10:00:00Z","visitor_id":"v1"}`},
		{name: "event_id checked before visitor_id", value: `{"type":"click","ts":"2025-03-01T10:00:00Z"}`, reason: ReasonMissingField, detail: "field event_id:"},

		// --- visitor_id and key ---
		{name: "visitor_id missing", value: `{"event_id":"e1","type":"click","ts":"2025-03-01T10:00:00Z"}`, reason: ReasonMissingField, detail: "field visitor_id:"},
		{name: "visitor_id null", value: `{"event_id":"e1","type":"click","ts":"2025-03-01T10:00:00Z","visitor_id":null}`, reason: ReasonMissingField, detail: "field visitor_id:"},
		{name: "visitor_id empty", value: `{"event_id":"e1","type":"click","ts":"2025-03-01T10:00:00Z","visitor_id":""}`, reason: ReasonMissingField, detail: "field visitor_id:"},
		{name: "visitor_id object", value: `{"event_id":"e1","type":"click","ts":"2025-03-01T10:00:00Z","visitor_id":{}}`, reason: ReasonBadValue, detail: "field visitor_id: must be a string, got object"},
		{name: "visitor_id 128 bytes", key: strp(s128), value: `{"event_id":"e1","type":"click","ts":"2025-03-01T10:00:00Z","visitor_id":"` + s128 + `"}`},
		{name: "visitor_id 129 bytes", key: strp(s129), value: `{"event_id":"e1","type":"click","ts":"2025-03-01T10:00:00Z","visitor_id":"` + s129 + `"}`, reason: ReasonTooLarge, detail: "field visitor_id:"},
		{name: "key mismatch", key: strp("v2"), value: pv(""), reason: ReasonKeyMismatch, detail: `field visitor_id: "v1" differs from the record key "v2"`},
		{name: "key mismatch is case sensitive", key: strp("V1"), value: pv(""), reason: ReasonKeyMismatch},
		{name: "key mismatch beats bad ts", key: strp("v2"), value: withTs(`"nope"`), reason: ReasonKeyMismatch},
		{name: "key mismatch detail is bounded", key: strp(strings.Repeat("k", 1000)), value: pv(""), reason: ReasonKeyMismatch},

		// --- ts ---
		{name: "ts missing", value: `{"event_id":"e1","type":"click","visitor_id":"v1"}`, reason: ReasonMissingField, detail: "field ts:"},
		{name: "ts null", value: withTs(`null`), reason: ReasonMissingField, detail: "field ts:"},
		{name: "ts empty string", value: withTs(`""`), reason: ReasonMissingField, detail: "field ts:"},
		{name: "ts Z", value: withTs(`"2025-03-01T10:00:00Z"`), check: wantTs("2025-03-01T10:00:00Z")},
		{name: "ts offset", value: withTs(`"2025-03-01T12:00:00+02:00"`), check: wantTs("2025-03-01T10:00:00Z")},
		{name: "ts negative offset", value: withTs(`"2025-02-28T23:30:00-05:30"`), check: wantTs("2025-03-01T05:00:00Z")},
		{name: "ts -00:00", value: withTs(`"2025-03-01T10:00:00-00:00"`), check: wantTs("2025-03-01T10:00:00Z")},
		{name: "ts micro fraction truncated", value: withTs(`"2025-03-01T10:00:00.123456Z"`), check: wantTs("2025-03-01T10:00:00.123Z")},
		{name: "ts .9999 truncated not rounded", value: withTs(`"2025-03-01T10:00:00.9999Z"`), check: wantTs("2025-03-01T10:00:00.999Z")},
		{name: "ts .5", value: withTs(`"2025-03-01T10:00:00.5Z"`), check: wantTs("2025-03-01T10:00:00.500Z")},
		{name: "ts .05", value: withTs(`"2025-03-01T10:00:00.05Z"`), check: wantTs("2025-03-01T10:00:00.050Z")},
		{name: "ts long fraction", value: withTs(`"2025-03-01T10:00:00.000999999999999999999Z"`), check: wantTs("2025-03-01T10:00:00Z")},
		{name: "ts fraction with offset", value: withTs(`"2025-03-01T11:00:00.7+01:00"`), check: wantTs("2025-03-01T10:00:00.700Z")},
		{name: "ts leap day", value: withTs(`"2024-02-29T00:00:00Z"`), check: wantTs("2024-02-29T00:00:00Z")},
		{name: "ts 2000-01-01 exactly", value: withTs(`"2000-01-01T00:00:00Z"`), check: wantTs("2000-01-01T00:00:00Z")},
		{name: "ts 1 ms before 2000", value: withTs(`"1999-12-31T23:59:59.999Z"`), reason: ReasonBadTs, detail: "field ts: not before 2000-01-01"},
		{name: "ts 2000 by offset is before", value: withTs(`"2000-01-01T00:30:00+01:00"`), reason: ReasonBadTs},
		{name: "ts now+1h exactly", value: withTs(`"2025-03-01T13:00:00Z"`), check: wantTs("2025-03-01T13:00:00Z")},
		{name: "ts now+1h+1ms", value: withTs(`"2025-03-01T13:00:00.001Z"`), reason: ReasonBadTs, detail: "field ts: more than 1h after"},
		{name: "ts now+1h+0.9ms truncates to ok", value: withTs(`"2025-03-01T13:00:00.0009Z"`), check: wantTs("2025-03-01T13:00:00Z")},
		{name: "ts far future", value: withTs(`"9999-12-31T23:59:59Z"`), reason: ReasonBadTs},
		{name: "ts epoch ms", value: withTs(`1740823200000`), check: wantTs("2025-03-01T10:00:00Z")},
		{name: "ts epoch ms 2000 exactly", value: withTs(`946684800000`), check: wantTs("2000-01-01T00:00:00Z")},
		{name: "ts epoch ms 1 before 2000", value: withTs(`946684799999`), reason: ReasonBadTs},
		{name: "ts epoch ms now+1h", value: withTs(fmt.Sprint(testNow.Add(time.Hour).UnixMilli())), check: wantTs("2025-03-01T13:00:00Z")},
		{name: "ts epoch ms now+1h+1", value: withTs(fmt.Sprint(testNow.Add(time.Hour).UnixMilli() + 1)), reason: ReasonBadTs},
		{name: "ts epoch seconds are before 2000", value: withTs(`1740823200`), reason: ReasonBadTs},
		{name: "ts zero", value: withTs(`0`), reason: ReasonBadTs},
		{name: "ts negative", value: withTs(`-1740823200000`), reason: ReasonBadTs},
		{name: "ts epoch ms exponent", value: withTs(`1.7e12`), reason: ReasonBadTs, detail: "integer literal"},
		{name: "ts epoch ms integral exponent", value: withTs(`1740823200000e0`), reason: ReasonBadTs},
		{name: "ts epoch ms fraction", value: withTs(`1740823200000.0`), reason: ReasonBadTs},
		{name: "ts epoch ms overflow", value: withTs(`99999999999999999999999`), reason: ReasonBadTs},
		{name: "ts string of digits", value: withTs(`"1740823200000"`), reason: ReasonBadTs},
		{name: "ts no zone", value: withTs(`"2025-03-01T10:00:00"`), reason: ReasonBadTs},
		{name: "ts lower-case z", value: withTs(`"2025-03-01T10:00:00z"`), reason: ReasonBadTs},
		{name: "ts lower-case t", value: withTs(`"2025-03-01t10:00:00Z"`), reason: ReasonBadTs},
		{name: "ts space separator", value: withTs(`"2025-03-01 10:00:00Z"`), reason: ReasonBadTs},
		{name: "ts offset without colon", value: withTs(`"2025-03-01T10:00:00+0200"`), reason: ReasonBadTs},
		{name: "ts offset hours only", value: withTs(`"2025-03-01T10:00:00+02"`), reason: ReasonBadTs},
		{name: "ts empty fraction", value: withTs(`"2025-03-01T10:00:00.Z"`), reason: ReasonBadTs},
		{name: "ts date only", value: withTs(`"2025-03-01"`), reason: ReasonBadTs},
		{name: "ts Feb 30", value: withTs(`"2025-02-30T10:00:00Z"`), reason: ReasonBadTs},
		{name: "ts Feb 29 non-leap", value: withTs(`"2025-02-29T10:00:00Z"`), reason: ReasonBadTs},
		{name: "ts hour 24", value: withTs(`"2025-03-01T24:00:00Z"`), reason: ReasonBadTs},
		{name: "ts leap second", value: withTs(`"2016-12-31T23:59:60Z"`), reason: ReasonBadTs},
		{name: "ts month 13", value: withTs(`"2025-13-01T10:00:00Z"`), reason: ReasonBadTs},
		{name: "ts non-digit", value: withTs(`"2025-0a-01T10:00:00Z"`), reason: ReasonBadTs},
		{name: "ts trailing text", value: withTs(`"2025-03-01T10:00:00Z "`), reason: ReasonBadTs},
		{name: "ts bool", value: withTs(`true`), reason: ReasonBadTs, detail: "got boolean"},
		{name: "ts object", value: withTs(`{}`), reason: ReasonBadTs},
		{name: "ts array", value: withTs(`[]`), reason: ReasonBadTs},
		{name: "ts detail is bounded", value: withTs(`"` + strings.Repeat("9", 5000) + `"`), reason: ReasonBadTs},

		// --- optional strings ---
		{name: "optional strings null and empty", value: pv(`,"customer_id":null,"url":"","referrer":null,"utm_source":"","utm_medium":null,"utm_campaign":"","device":null,"country":""`),
			check: func(t *testing.T, ev *Event) {
				if ev.CustomerID != "" || ev.URL != "" || ev.Referrer != "" || ev.UTMSource != "" || ev.Device != "" || ev.Country != "" || ev.Props != "" {
					t.Errorf("got %+v", *ev)
				}
			}},
		{name: "customer_id number", value: pv(`,"customer_id":42`), reason: ReasonBadValue, detail: "field customer_id: must be a string, got number"},
		{name: "customer_id 256 bytes", value: pv(`,"customer_id":"` + s256 + `"`)},
		{name: "customer_id 257 bytes", value: pv(`,"customer_id":"` + s257 + `"`), reason: ReasonTooLarge, detail: "field customer_id:"},
		{name: "url 2048 bytes", value: pv(`,"url":"` + u2048 + `"`), check: func(t *testing.T, ev *Event) {
			if ev.URL != u2048 {
				t.Errorf("URL has %d bytes", len(ev.URL))
			}
		}},
		{name: "url 2049 bytes", value: pv(`,"url":"` + u2049 + `"`), reason: ReasonTooLarge, detail: "field url: 2049 bytes is more than the limit of 2048"},
		{name: "url array", value: pv(`,"url":["x"]`), reason: ReasonBadValue, detail: "field url:"},
		{name: "referrer 2048 bytes", value: pv(`,"referrer":"` + u2048 + `"`)},
		{name: "referrer 2049 bytes", value: pv(`,"referrer":"` + u2049 + `"`), reason: ReasonTooLarge, detail: "field referrer:"},
		{name: "referrer bool", value: pv(`,"referrer":false`), reason: ReasonBadValue, detail: "field referrer:"},
		{name: "utm_source 256 bytes", value: pv(`,"utm_source":"` + s256 + `"`)},
		{name: "utm_source 257 bytes", value: pv(`,"utm_source":"` + s257 + `"`), reason: ReasonTooLarge, detail: "field utm_source:"},
		{name: "utm_medium 257 bytes", value: pv(`,"utm_medium":"` + s257 + `"`), reason: ReasonTooLarge, detail: "field utm_medium:"},
		{name: "utm_campaign 257 bytes", value: pv(`,"utm_campaign":"` + s257 + `"`), reason: ReasonTooLarge, detail: "field utm_campaign:"},
		{name: "utm_campaign object", value: pv(`,"utm_campaign":{"a":1}`), reason: ReasonBadValue, detail: "field utm_campaign:"},
		{name: "device 257 bytes", value: pv(`,"device":"` + s257 + `"`), reason: ReasonTooLarge, detail: "field device:"},
		{name: "device number", value: pv(`,"device":1`), reason: ReasonBadValue, detail: "field device:"},
		{name: "country 257 bytes", value: pv(`,"country":"` + s257 + `"`), reason: ReasonTooLarge, detail: "field country:"},
		{name: "country bool", value: pv(`,"country":true`), reason: ReasonBadValue, detail: "field country:"},
		{name: "first bad optional field wins", value: pv(`,"country":1,"url":2`), reason: ReasonBadValue, detail: "field url:"},
		{name: "bad ts beats bad url", value: `{"event_id":"e1","type":"click","ts":"x","visitor_id":"v1","url":1}`, reason: ReasonBadTs},

		// --- order fields ---
		{name: "order_id missing", topic: Transactions, value: typed("order_completed", `,"amount":1,"currency":"EUR"`), reason: ReasonMissingField, detail: "field order_id:"},
		{name: "order_id null", topic: Transactions, value: typed("order_refunded", `,"order_id":null,"amount":1,"currency":"EUR"`), reason: ReasonMissingField, detail: "field order_id:"},
		{name: "order_id empty", topic: Transactions, value: typed("order_completed", `,"order_id":"","amount":1,"currency":"EUR"`), reason: ReasonMissingField},
		{name: "order_id number", topic: Transactions, value: typed("order_completed", `,"order_id":7,"amount":1,"currency":"EUR"`), reason: ReasonBadValue, detail: "field order_id:"},
		{name: "order_id 257 bytes", topic: Transactions, value: typed("order_completed", `,"order_id":"`+s257+`","amount":1,"currency":"EUR"`), reason: ReasonTooLarge, detail: "field order_id:"},
		{name: "amount missing", topic: Transactions, value: typed("order_completed", `,"order_id":"o1","currency":"EUR"`), reason: ReasonMissingField, detail: "field amount:"},
		{name: "amount null", topic: Transactions, value: typed("order_completed", `,"order_id":"o1","amount":null,"currency":"EUR"`), reason: ReasonMissingField, detail: "field amount:"},
		{name: "amount string", topic: Transactions, value: typed("order_completed", `,"order_id":"o1","amount":"12.50","currency":"EUR"`), reason: ReasonBadValue, detail: "field amount: must be a JSON number, got string"},
		{name: "amount empty string", topic: Transactions, value: typed("order_completed", `,"order_id":"o1","amount":"","currency":"EUR"`), reason: ReasonMissingField, detail: "field amount:"},
		{name: "amount bool", topic: Transactions, value: typed("order_completed", `,"order_id":"o1","amount":true,"currency":"EUR"`), reason: ReasonBadValue},
		{name: "amount negative", topic: Transactions, value: typed("order_completed", `,"order_id":"o1","amount":-1.5,"currency":"EUR"`), reason: ReasonBadValue, detail: "field amount: must be >= 0, got \"-1.5\""},
		{name: "amount -0", topic: Transactions, value: typed("order_completed", `,"order_id":"o1","amount":-0.0,"currency":"EUR"`), check: wantAmount(0)},
		{name: "amount 1.50000", topic: Transactions, value: typed("order_completed", `,"order_id":"o1","amount":1.50000,"currency":"EUR"`), check: wantAmount(15000)},
		{name: "amount 1.00001", topic: Transactions, value: typed("order_completed", `,"order_id":"o1","amount":1.00001,"currency":"EUR"`), reason: ReasonBadValue, detail: "at most 4 decimal places"},
		{name: "amount 1e-4", topic: Transactions, value: typed("order_completed", `,"order_id":"o1","amount":1e-4,"currency":"EUR"`), check: wantAmount(1)},
		{name: "amount 1e-5", topic: Transactions, value: typed("order_completed", `,"order_id":"o1","amount":1e-5,"currency":"EUR"`), reason: ReasonBadValue},
		{name: "amount 12.5e2", topic: Transactions, value: typed("order_completed", `,"order_id":"o1","amount":12.5e2,"currency":"EUR"`), check: wantAmount(12500000)},
		{name: "amount 1E+3", topic: Transactions, value: typed("order_completed", `,"order_id":"o1","amount":1E+3,"currency":"EUR"`), check: wantAmount(10000000)},
		{name: "amount max", topic: Transactions, value: typed("order_completed", `,"order_id":"o1","amount":99999999999999.9999,"currency":"EUR"`), check: wantAmount(999999999999999999)},
		{name: "amount over max", topic: Transactions, value: typed("order_completed", `,"order_id":"o1","amount":100000000000000,"currency":"EUR"`), reason: ReasonBadValue, detail: "must be <= 99999999999999.9999"},
		{name: "amount huge exponent", topic: Transactions, value: typed("order_completed", `,"order_id":"o1","amount":1e999999999999999999999,"currency":"EUR"`), reason: ReasonBadValue},
		{name: "amount tiny exponent", topic: Transactions, value: typed("order_completed", `,"order_id":"o1","amount":1e-999999999999999999999,"currency":"EUR"`), reason: ReasonBadValue},
		{name: "amount detail is bounded", topic: Transactions, value: typed("order_completed", `,"order_id":"o1","amount":1.`+strings.Repeat("1", 5000)+`,"currency":"EUR"`), reason: ReasonBadValue},
		{name: "currency missing", topic: Transactions, value: typed("order_completed", `,"order_id":"o1","amount":1`), reason: ReasonMissingField, detail: "field currency:"},
		{name: "currency null", topic: Transactions, value: typed("order_completed", `,"order_id":"o1","amount":1,"currency":null`), reason: ReasonMissingField, detail: "field currency:"},
		{name: "currency lower case", topic: Transactions, value: typed("order_completed", `,"order_id":"o1","amount":1,"currency":"eur"`), reason: ReasonBadValue, detail: "field currency:"},
		{name: "currency 4 letters", topic: Transactions, value: typed("order_completed", `,"order_id":"o1","amount":1,"currency":"EURO"`), reason: ReasonBadValue},
		{name: "currency 2 letters", topic: Transactions, value: typed("order_completed", `,"order_id":"o1","amount":1,"currency":"EU"`), reason: ReasonBadValue},
		{name: "currency digits", topic: Transactions, value: typed("order_completed", `,"order_id":"o1","amount":1,"currency":"978"`), reason: ReasonBadValue},
		{name: "currency non-ASCII", topic: Transactions, value: typed("order_completed", `,"order_id":"o1","amount":1,"currency":"ÉUR"`), reason: ReasonBadValue},
		{name: "currency number", topic: Transactions, value: typed("order_completed", `,"order_id":"o1","amount":1,"currency":978`), reason: ReasonBadValue},
		{name: "currency 257 bytes", topic: Transactions, value: typed("order_completed", `,"order_id":"o1","amount":1,"currency":"`+s257+`"`), reason: ReasonTooLarge, detail: "field currency:"},
		{name: "order_id checked before amount", topic: Transactions, value: typed("order_completed", `,"currency":"x"`), reason: ReasonMissingField, detail: "field order_id:"},
		{name: "amount checked before currency", topic: Transactions, value: typed("order_completed", `,"order_id":"o1","amount":-1,"currency":"x"`), reason: ReasonBadValue, detail: "field amount:"},
		{name: "order fields on other types are kept", topic: Transactions, value: typed("subscription_started", `,"order_id":"o1","amount":9.99,"currency":"GBP"`),
			check: func(t *testing.T, ev *Event) {
				if ev.OrderID != "o1" || ev.Amount != 99900 || ev.Currency != "GBP" || ev.Props != "" {
					t.Errorf("got %+v", *ev)
				}
			}},
		{name: "order fields optional on other types", value: pv(`,"order_id":null,"amount":null,"currency":""`), check: wantAmount(0)},
		{name: "amount checked on other types", value: typed("checkout_started", `,"amount":-1`), reason: ReasonBadValue, detail: "field amount:"},
		{name: "amount string on other types", value: typed("add_to_cart", `,"amount":"1"`), reason: ReasonBadValue},
		{name: "currency checked on other types", value: typed("add_to_cart", `,"currency":"usd"`), reason: ReasonBadValue, detail: "field currency:"},
		{name: "order_id checked on other types", value: typed("add_to_cart", `,"order_id":[]`), reason: ReasonBadValue},

		// --- rating, nps, csat ---
		{name: "review rating 1", value: typed("review", `,"rating":1`), check: wantInts(1, Absent, Absent)},
		{name: "review rating 5", value: typed("review", `,"rating":5`), check: wantInts(5, Absent, Absent)},
		{name: "review rating 4.0", value: typed("review", `,"rating":4.0`), check: wantInts(4, Absent, Absent)},
		{name: "review rating 40e-1", value: typed("review", `,"rating":40e-1`), check: wantInts(4, Absent, Absent)},
		{name: "review rating 0", value: typed("review", `,"rating":0`), reason: ReasonBadValue, detail: "field rating: must be between 1 and 5"},
		{name: "review rating 6", value: typed("review", `,"rating":6`), reason: ReasonBadValue, detail: "field rating:"},
		{name: "review rating -1", value: typed("review", `,"rating":-1`), reason: ReasonBadValue},
		{name: "review rating 4.5", value: typed("review", `,"rating":4.5`), reason: ReasonBadValue, detail: "must be an integer"},
		{name: "review rating string", value: typed("review", `,"rating":"4"`), reason: ReasonBadValue, detail: "field rating: must be an integer, got string"},
		{name: "review rating huge", value: typed("review", `,"rating":1e300`), reason: ReasonBadValue},
		{name: "review rating missing", value: typed("review", ""), reason: ReasonMissingField, detail: "field rating:"},
		{name: "review rating null", value: typed("review", `,"rating":null`), reason: ReasonMissingField},
		{name: "review rating empty string", value: typed("review", `,"rating":""`), reason: ReasonMissingField},
		{name: "rating optional on other types", value: typed("survey", `,"rating":3`), check: wantInts(3, Absent, Absent)},
		{name: "rating checked on other types", value: pv(`,"rating":9`), reason: ReasonBadValue},
		{name: "survey nps 0", value: typed("survey", `,"nps":0`), check: wantInts(Absent, 0, Absent)},
		{name: "survey nps 10", value: typed("survey", `,"nps":10`), check: wantInts(Absent, 10, Absent)},
		{name: "survey nps 11", value: typed("survey", `,"nps":11`), reason: ReasonBadValue, detail: "field nps: must be between 0 and 10"},
		{name: "survey nps -1", value: typed("survey", `,"nps":-1`), reason: ReasonBadValue},
		{name: "survey nps -0", value: typed("survey", `,"nps":-0`), check: wantInts(Absent, 0, Absent)},
		{name: "survey nps 9.5", value: typed("survey", `,"nps":9.5`), reason: ReasonBadValue},
		{name: "survey nps 1e1", value: typed("survey", `,"nps":1e1`), check: wantInts(Absent, 10, Absent)},
		{name: "survey nps string", value: typed("survey", `,"nps":"9"`), reason: ReasonBadValue},
		{name: "survey nps empty string", value: typed("survey", `,"nps":""`), check: wantInts(Absent, Absent, Absent)},
		{name: "survey nps null", value: typed("survey", `,"nps":null`), check: wantInts(Absent, Absent, Absent)},
		{name: "survey csat 1", value: typed("survey", `,"csat":1`), check: wantInts(Absent, Absent, 1)},
		{name: "survey csat 5", value: typed("survey", `,"csat":5`), check: wantInts(Absent, Absent, 5)},
		{name: "survey csat 0", value: typed("survey", `,"csat":0`), reason: ReasonBadValue, detail: "field csat:"},
		{name: "survey csat 6", value: typed("survey", `,"csat":6`), reason: ReasonBadValue},
		{name: "survey csat bool", value: typed("survey", `,"csat":false`), reason: ReasonBadValue},
		{name: "survey all scores", value: typed("survey", `,"nps":9,"csat":4,"rating":5`), check: wantInts(5, 9, 4)},
		{name: "nps before csat", value: typed("survey", `,"csat":9,"nps":99`), reason: ReasonBadValue, detail: "field nps:"},
		{name: "rating before nps", value: typed("survey", `,"nps":99,"rating":0`), reason: ReasonBadValue, detail: "field rating:"},
		{name: "survey ces 1", value: typed("survey", `,"ces":1`), check: wantCES(1)},
		{name: "survey ces 7", value: typed("survey", `,"ces":7.0`), check: wantCES(7)},
		{name: "survey ces 0", value: typed("survey", `,"ces":0`), reason: ReasonBadValue, detail: "field ces: must be between 1 and 7"},
		{name: "survey ces 8", value: typed("survey", `,"ces":8`), reason: ReasonBadValue, detail: "field ces:"},
		{name: "survey ces 2.5", value: typed("survey", `,"ces":2.5`), reason: ReasonBadValue, detail: "field ces: must be an integer"},
		{name: "survey ces string", value: typed("survey", `,"ces":"5"`), reason: ReasonBadValue, detail: "field ces: must be an integer, got string"},
		{name: "survey ces null", value: typed("survey", `,"ces":null`), check: wantCES(Absent)},
		{name: "survey ces empty string", value: typed("survey", `,"ces":""`), check: wantCES(Absent)},
		{name: "csat before ces", value: typed("survey", `,"ces":0,"csat":0`), reason: ReasonBadValue, detail: "field csat:"},

		// --- trial, plan ---
		{name: "trial true", topic: Transactions, value: typed("subscription_started", `,"trial":true,"plan":"pro"`), check: wantTrialPlan(true, "pro")},
		{name: "trial false", topic: Transactions, value: typed("subscription_started", `,"trial":false`), check: wantTrialPlan(false, "")},
		{name: "trial absent", topic: Transactions, value: typed("subscription_started", ``), check: wantTrialPlan(false, "")},
		{name: "trial null", topic: Transactions, value: typed("subscription_started", `,"trial":null`), check: wantTrialPlan(false, "")},
		{name: "trial empty string", topic: Transactions, value: typed("subscription_started", `,"trial":""`), check: wantTrialPlan(false, "")},
		{name: "trial string", topic: Transactions, value: typed("subscription_started", `,"trial":"true"`), reason: ReasonBadValue, detail: "field trial: must be a boolean, got string"},
		{name: "trial number", topic: Transactions, value: typed("subscription_started", `,"trial":1`), reason: ReasonBadValue, detail: "field trial:"},
		{name: "trial object", topic: Transactions, value: typed("subscription_started", `,"trial":{"a":1}`), reason: ReasonBadValue, detail: "field trial: must be a boolean, got object"},
		{name: "trial ignored on other types", topic: Transactions, value: typed("subscription_cancelled", `,"trial":true`), check: wantTrialPlan(false, "")},
		{name: "bad trial ignored on other types", value: pv(`,"trial":[1]`), check: wantProps("")},
		{name: "plan on cancel", topic: Transactions, value: typed("subscription_cancelled", `,"plan":"basic é"`), check: wantTrialPlan(false, "basic é")},
		{name: "plan 64 bytes", topic: Transactions, value: typed("subscription_started", `,"plan":"`+s64+`"`), check: wantTrialPlan(false, s64)},
		{name: "plan 65 bytes", topic: Transactions, value: typed("subscription_started", `,"plan":"`+s65+`"`), reason: ReasonTooLarge, detail: "field plan: 65 bytes is more than the limit of 64"},
		{name: "plan number", topic: Transactions, value: typed("subscription_started", `,"plan":3`), reason: ReasonBadValue, detail: "field plan: must be a string, got number"},
		{name: "plan null", topic: Transactions, value: typed("subscription_started", `,"plan":null`), check: wantTrialPlan(false, "")},
		{name: "trial before plan", topic: Transactions, value: typed("subscription_started", `,"plan":3,"trial":3`), reason: ReasonBadValue, detail: "field trial:"},
		{name: "currency before rating", value: typed("review", `,"rating":0,"currency":"x"`), reason: ReasonBadValue, detail: "field currency:"},

		// --- props ---
		{name: "props none", value: pv(""), check: wantProps("")},
		{name: "props in input order", value: `{"z":1,"event_id":"e1","a":"x","type":"page_view","ts":"2025-03-01T10:00:00Z","visitor_id":"v1","m":null}`,
			check: wantProps(`{"z":1,"a":"x","m":null}`)},
		{name: "props nested compact", value: pv(`, "cart" : { "items" : [ 1 , 2.50 , {"sku":"a b"} ], "ok" : true, "no": false }`),
			check: wantProps(`{"cart":{"items":[1,2.50,{"sku":"a b"}],"ok":true,"no":false}}`)},
		{name: "props number text kept", value: pv(`,"x":1.0e+10,"y":-0.000`), check: wantProps(`{"x":1.0e+10,"y":-0.000}`)},
		{name: "props escapes", value: pv(`,"q\"k":"a\"b\\c\n\u0001\u00e9\/","u":"\ud83d\ude00"`), check: wantProps(`{"q\"k":"a\"b\\c\n\u0001é/","u":"😀"}`)},
		{name: "props empty containers", value: pv(`,"o":{},"a":[],"s":""`), check: wantProps(`{"o":{},"a":[],"s":""}`)},
		{name: "props unicode key", value: pv(`,"ключ":"значение"`), check: wantProps(`{"ключ":"значение"}`)},
		{name: "known fields never in props", value: order(`,"coupon":"X"`), topic: Transactions, check: wantProps(`{"coupon":"X"}`)},
	}
}

// manyKeys returns `,"k0":0,"k1":1,…` with n keys.
func manyKeys(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `,"k%d":%d`, i, i)
	}
	return b.String()
}

func TestDecode(t *testing.T) {
	d := NewDecoder(testClock)
	seen := map[Reason]bool{}
	for _, c := range decodeCases() {
		t.Run(c.name, func(t *testing.T) {
			var ev Event
			key, value := keyOf(c), []byte(c.value)
			err := d.Decode(c.topic, key, value, &ev)
			if c.reason == "" {
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				checkEvent(t, c.topic, key, &ev)
				if c.check != nil {
					c.check(t, &ev)
				}
				return
			}
			if err == nil {
				t.Fatalf("Decode succeeded with %+v, want %s", ev, c.reason)
			}
			seen[err.Reason] = true
			if err.Reason != c.reason {
				t.Fatalf("reason %s (%s), want %s", err.Reason, err.Detail, c.reason)
			}
			if !strings.Contains(err.Detail, c.detail) {
				t.Errorf("detail %q does not contain %q", err.Detail, c.detail)
			}
			checkError(t, err)
		})
	}
	for _, r := range DecodeReasons {
		if !seen[r] {
			t.Errorf("no case for reason %s", r)
		}
	}
}

// checkEvent re-checks the rules on a decoded event; it is shared with the fuzzer.
func checkEvent(t *testing.T, topic Topic, key []byte, ev *Event) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Errorf("invalid event %+v: "+format, append([]any{*ev}, args...)...)
	}
	if ev.Type == 0 || int(ev.Type) >= NumTypes || ev.Type.Topic() != topic {
		fail("type %v on topic %v", ev.Type, topic)
	}
	if n := len(ev.EventID); n == 0 || n > 64 {
		fail("event_id of %d bytes", n)
	}
	if n := len(ev.VisitorID); n == 0 || n > 128 {
		fail("visitor_id of %d bytes", n)
	}
	if ev.VisitorID != string(key) {
		fail("visitor_id differs from key %q", key)
	}
	if ev.TsMs < ms("2000-01-01T00:00:00Z") || ev.TsMs > testNow.Add(time.Hour).UnixMilli() {
		fail("ts out of range")
	}
	if ev.Amount < 0 || ev.Amount > 999999999999999999 {
		fail("amount out of range")
	}
	if len(ev.URL) > 2048 || len(ev.Referrer) > 2048 || len(ev.UTMSource) > 256 || len(ev.UTMMedium) > 256 ||
		len(ev.UTMCampaign) > 256 || len(ev.CustomerID) > 256 || len(ev.Device) > 256 || len(ev.Country) > 256 || len(ev.OrderID) > 256 {
		fail("string over its limit")
	}
	isOrder := ev.Type == OrderCompleted || ev.Type == OrderRefunded
	if isOrder && ev.OrderID == "" {
		fail("order without order_id")
	}
	if ev.Currency != "" || isOrder {
		c := ev.Currency
		if len(c) != 3 || !isUpper(c[0]) || !isUpper(c[1]) || !isUpper(c[2]) {
			fail("bad currency")
		}
	}
	if ev.Type == Review && ev.Rating == Absent {
		fail("review without rating")
	}
	if ev.Rating != Absent && (ev.Rating < 1 || ev.Rating > 5) {
		fail("rating out of range")
	}
	if ev.NPS != Absent && (ev.NPS < 0 || ev.NPS > 10) {
		fail("nps out of range")
	}
	if ev.CSAT != Absent && (ev.CSAT < 1 || ev.CSAT > 5) {
		fail("csat out of range")
	}
	if ev.CES != Absent && (ev.CES < 1 || ev.CES > 7) {
		fail("ces out of range")
	}
	if ev.Trial && ev.Type != SubscriptionStarted {
		fail("trial on %s", ev.Type)
	}
	if len(ev.Plan) > 64 {
		fail("plan of %d bytes", len(ev.Plan))
	}
	if ev.Props != "" {
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(ev.Props), &m); err != nil || len(m) == 0 {
			fail("props not a non-empty JSON object: %v", err)
		}
		for k := range m {
			if fieldOf([]byte(k)) != fUnknown {
				fail("known field %q in props", k)
			}
		}
	}
}

// checkError checks the shape of a rejection; it is shared with the fuzzer.
func checkError(t *testing.T, err *Error) {
	t.Helper()
	known := false
	for _, r := range DecodeReasons {
		known = known || err.Reason == r
	}
	if !known {
		t.Errorf("unknown reason %q", err.Reason)
	}
	if err.Detail == "" {
		t.Errorf("empty detail for %s", err.Reason)
	}
	if len(err.Detail) > 400 {
		t.Errorf("detail of %d bytes: %q", len(err.Detail), err.Detail)
	}
}

func TestDecodeCopiesStrings(t *testing.T) {
	d := NewDecoder(testClock)
	key := []byte("v1")
	value := []byte(pv(`,"url":"https://a.example/","x":{"y":"z"}`))
	var ev Event
	if err := d.Decode(Clickstream, key, value, &ev); err != nil {
		t.Fatal(err)
	}
	want := cloneEvent(ev)
	for i := range value {
		value[i] = 'X'
	}
	key[0] = 'X'
	// A second decode reuses the parser's and the decoder's buffers.
	var ev2 Event
	if err := d.Decode(Clickstream, []byte("v2"), []byte(`{"event_id":"e2","type":"click","ts":"2025-03-01T10:00:00Z","visitor_id":"v2","url":"https://b.example/","q":[1]}`), &ev2); err != nil {
		t.Fatal(err)
	}
	if ev != want || ev.URL != "https://a.example/" || ev.Props != `{"x":{"y":"z"}}` || ev.VisitorID != "v1" {
		t.Errorf("event changed after its input was reused: %+v", ev)
	}
}

func TestDecodeOverwritesEvent(t *testing.T) {
	d := NewDecoder(testClock)
	ev := Event{URL: "old", Props: "old", Amount: 5, Rating: 3, NPS: 3, CSAT: 3, OrderID: "old"}
	if err := d.Decode(Clickstream, []byte("v1"), []byte(pv("")), &ev); err != nil {
		t.Fatal(err)
	}
	want := Event{EventID: "e1", Type: PageView, TsMs: ms("2025-03-01T10:00:00Z"), VisitorID: "v1", Rating: Absent, NPS: Absent, CSAT: Absent, CES: Absent}
	if ev != want {
		t.Errorf("got %+v, want %+v", ev, want)
	}
}

func TestNewDecoderNilClock(t *testing.T) {
	d := NewDecoder(nil)
	var ev Event
	ts := time.Now().Add(30 * time.Minute).UnixMilli()
	if err := d.Decode(Clickstream, []byte("v1"), []byte(withTs(fmt.Sprint(ts))), &ev); err != nil {
		t.Fatalf("ts 30 min ahead of the wall clock: %v", err)
	}
	ts = time.Now().Add(2 * time.Hour).UnixMilli()
	if err := d.Decode(Clickstream, []byte("v1"), []byte(withTs(fmt.Sprint(ts))), &ev); err == nil || err.Reason != ReasonBadTs {
		t.Fatalf("ts 2 h ahead of the wall clock: %v", err)
	}
}

func TestDetailBoundsUserInput(t *testing.T) {
	d := NewDecoder(testClock)
	long := strings.Repeat("Z", 10000)
	for _, value := range []string{
		typed(long, ""),
		withTs(`"` + long + `"`),
		typed("review", `,"rating":1.`+strings.Repeat("5", 10000)),
		`{"` + long + `":1,"` + long + `":2}`,
		typed("order_completed", `,"order_id":"o","amount":1,"currency":"`+strings.Repeat("e", 200)+`"`),
	} {
		var ev Event
		err := d.Decode(Transactions, []byte(long), []byte(value), &ev)
		if err == nil {
			t.Fatalf("Decode(%.40q…) succeeded", value)
		}
		if n := strings.Count(err.Detail, "Z") + strings.Count(err.Detail, "5") + strings.Count(err.Detail, "e"); n > 100 {
			t.Errorf("detail quotes %d bytes of input: %q", n, err.Detail)
		}
	}
}
