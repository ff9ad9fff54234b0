package schemas

import (
	"bytes"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

func compileSchemas(t *testing.T) map[Topic]*jsonschema.Schema {
	t.Helper()
	out := map[Topic]*jsonschema.Schema{}
	for topic, src := range map[Topic][]byte{Clickstream: ClickstreamJSONSchema, Transactions: TransactionsJSONSchema} {
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(src))
		if err != nil {
			t.Fatalf("%s schema: %v", topic, err)
		}
		c := jsonschema.NewCompiler()
		c.DefaultDraft(jsonschema.Draft2020)
		url := topic.String() + ".schema.json"
		if err := c.AddResource(url, doc); err != nil {
			t.Fatalf("%s schema: %v", topic, err)
		}
		sch, err := c.Compile(url)
		if err != nil {
			t.Fatalf("%s schema: %v", topic, err)
		}
		out[topic] = sch
	}
	return out
}

// schemaSample is a record value, keyed "v1", and whether it is valid on its
// topic. Both the JSON Schema and Decoder must agree with valid.
type schemaSample struct {
	name  string
	topic Topic
	value string
	valid bool
}

var schemaSamples = []schemaSample{
	// valid
	{"page_view minimal", Clickstream, pv(""), true},
	{"page_view full", Clickstream, pv(`,"customer_id":"c1","url":"https://a.example/x","referrer":"https://b.example/","utm_source":"news","utm_medium":"email","utm_campaign":"spring","device":"desktop","country":"FR"`), true},
	{"optional fields null and empty", Clickstream, pv(`,"customer_id":null,"url":"","referrer":null,"utm_source":"","device":null,"country":"","order_id":null,"amount":null,"currency":"","nps":"","csat":null,"rating":null`), true},
	{"unknown fields", Clickstream, pv(`,"cart":{"items":[1,2]},"flag":true`), true},
	{"ts epoch ms", Clickstream, withTs(`1740823200000`), true},
	{"ts offset and fraction", Clickstream, withTs(`"2025-03-01T12:00:00.123456+02:00"`), true},
	{"unicode", Clickstream, pv(`,"url":"https://例え.jp/","country":"Ελλάδα"`), true},
	{"review", Clickstream, typed("review", `,"rating":5`), true},
	{"review rating 4.0", Clickstream, typed("review", `,"rating":4.0`), true},
	{"survey", Clickstream, typed("survey", `,"nps":0,"csat":5`), true},
	{"survey nps 10 rating 1", Clickstream, typed("survey", `,"nps":10,"rating":1`), true},
	{"add_to_cart with amount", Clickstream, typed("add_to_cart", `,"amount":19.99,"currency":"EUR"`), true},
	{"order_completed", Transactions, order(""), true},
	{"order_refunded zero", Transactions, typed("order_refunded", `,"order_id":"o1","amount":0,"currency":"USD"`), true},
	{"order exponent amount", Transactions, typed("order_completed", `,"order_id":"o1","amount":12.5e2,"currency":"JPY"`), true},
	{"order 4 decimals", Transactions, typed("order_completed", `,"order_id":"o1","amount":0.0001,"currency":"BHD"`), true},
	{"order max amount", Transactions, typed("order_completed", `,"order_id":"o1","amount":99999999999999.9999,"currency":"EUR"`), true},
	{"order trailing zeros", Transactions, typed("order_completed", `,"order_id":"o1","amount":1.50000,"currency":"EUR"`), true},
	{"subscription_started", Transactions, typed("subscription_started", `,"customer_id":"c1"`), true},
	{"subscription_cancelled", Transactions, typed("subscription_cancelled", ""), true},

	// invalid
	{"missing event_id", Clickstream, `{"type":"click","ts":"2025-03-01T10:00:00Z","visitor_id":"v1"}`, false},
	{"missing type", Clickstream, `{"event_id":"e1","ts":"2025-03-01T10:00:00Z","visitor_id":"v1"}`, false},
	{"missing ts", Clickstream, `{"event_id":"e1","type":"click","visitor_id":"v1"}`, false},
	{"missing visitor_id", Clickstream, `{"event_id":"e1","type":"click","ts":"2025-03-01T10:00:00Z"}`, false},
	{"null event_id", Clickstream, `{"event_id":null,"type":"click","ts":"2025-03-01T10:00:00Z","visitor_id":"v1"}`, false},
	{"empty event_id", Clickstream, `{"event_id":"","type":"click","ts":"2025-03-01T10:00:00Z","visitor_id":"v1"}`, false},
	{"event_id 65", Clickstream, `{"event_id":"` + s65 + `","type":"click","ts":"2025-03-01T10:00:00Z","visitor_id":"v1"}`, false},
	{"event_id number", Clickstream, `{"event_id":1,"type":"click","ts":"2025-03-01T10:00:00Z","visitor_id":"v1"}`, false},
	{"unknown type", Clickstream, typed("pageview", ""), false},
	{"order on clickstream", Clickstream, order(""), false},
	{"page_view on transactions", Transactions, pv(""), false},
	{"ts no zone", Clickstream, withTs(`"2025-03-01T10:00:00"`), false},
	{"ts digits string", Clickstream, withTs(`"1740823200000"`), false},
	{"ts before 2000", Clickstream, withTs(`946684799999`), false},
	{"ts bool", Clickstream, withTs(`true`), false},
	{"url too long", Clickstream, pv(`,"url":"` + u2049 + `"`), false},
	{"utm_source too long", Clickstream, pv(`,"utm_source":"` + s257 + `"`), false},
	{"customer_id number", Clickstream, pv(`,"customer_id":7`), false},
	{"device bool", Clickstream, pv(`,"device":true`), false},
	{"review without rating", Clickstream, typed("review", ""), false},
	{"review rating null", Clickstream, typed("review", `,"rating":null`), false},
	{"rating 6", Clickstream, typed("review", `,"rating":6`), false},
	{"rating 0", Clickstream, typed("review", `,"rating":0`), false},
	{"rating 4.5", Clickstream, typed("review", `,"rating":4.5`), false},
	{"rating string", Clickstream, typed("review", `,"rating":"4"`), false},
	{"nps 11", Clickstream, typed("survey", `,"nps":11`), false},
	{"csat 0", Clickstream, typed("survey", `,"csat":0`), false},
	{"order without order_id", Transactions, typed("order_completed", `,"amount":1,"currency":"EUR"`), false},
	{"order without amount", Transactions, typed("order_completed", `,"order_id":"o1","currency":"EUR"`), false},
	{"order without currency", Transactions, typed("order_refunded", `,"order_id":"o1","amount":1`), false},
	{"order amount null", Transactions, typed("order_completed", `,"order_id":"o1","amount":null,"currency":"EUR"`), false},
	{"order amount string", Transactions, typed("order_completed", `,"order_id":"o1","amount":"12.50","currency":"EUR"`), false},
	{"order amount negative", Transactions, typed("order_completed", `,"order_id":"o1","amount":-1,"currency":"EUR"`), false},
	{"order amount 5 decimals", Transactions, typed("order_completed", `,"order_id":"o1","amount":1.00001,"currency":"EUR"`), false},
	{"order amount too big", Transactions, typed("order_completed", `,"order_id":"o1","amount":1e14,"currency":"EUR"`), false},
	{"currency lower case", Transactions, typed("order_completed", `,"order_id":"o1","amount":1,"currency":"eur"`), false},
	{"currency 4 letters", Transactions, typed("order_completed", `,"order_id":"o1","amount":1,"currency":"EURO"`), false},
	{"currency on other type", Clickstream, typed("add_to_cart", `,"currency":"€"`), false},
	{"not an object", Clickstream, `[1]`, false},
}

func TestJSONSchemas(t *testing.T) {
	schemas := compileSchemas(t)
	d := NewDecoder(testClock)
	for _, s := range schemaSamples {
		t.Run(s.name, func(t *testing.T) {
			inst, err := jsonschema.UnmarshalJSON(strings.NewReader(s.value))
			if err != nil {
				t.Fatalf("sample is not JSON: %v", err)
			}
			schemaErr := schemas[s.topic].Validate(inst)
			if (schemaErr == nil) != s.valid {
				t.Errorf("JSON Schema: valid = %v, want %v (%v)", schemaErr == nil, s.valid, schemaErr)
			}
			var ev Event
			decErr := d.Decode(s.topic, []byte("v1"), []byte(s.value), &ev)
			if (decErr == nil) != s.valid {
				t.Errorf("Decoder: valid = %v, want %v (%v)", decErr == nil, s.valid, decErr)
			}
		})
	}
}

// TestJSONSchemasAgreeWithDecoder runs the whole decoder test table through
// the JSON Schemas too. They must agree on every record except the listed
// ones, which need what JSON Schema cannot express (see the schemas'
// description); the list is checked to be exact, so it cannot go stale.
func TestJSONSchemasAgreeWithDecoder(t *testing.T) {
	schemas := compileSchemas(t)
	schemaAcceptsDecoderRejects := map[string]bool{
		// The record key, the raw bytes and the parser.
		"nil key": true, "empty key": true, "key mismatch": true, "key mismatch is case sensitive": true,
		"key mismatch detail is bounded": true, "duplicate beats missing key": true,
		"value over 256 KiB": true, "invalid UTF-8": true, "nesting beyond limit": true,
		"duplicate known key": true, "duplicate known key via escape": true, "duplicate unknown key": true,
		"duplicate unknown key among many": true,
		// maxLength counts characters, the limit is bytes.
		"event_id 33 runes but 66 bytes": true,
		// The clock, the calendar, the offset, and how a number is written.
		"ts now+1h+1ms": true, "ts far future": true, "ts epoch ms now+1h+1": true,
		"ts 2000 by offset is before": true, "ts Feb 30": true, "ts Feb 29 non-leap": true,
		"ts epoch ms exponent": true, "ts epoch ms integral exponent": true, "ts epoch ms fraction": true,
	}
	// jsonschema v6.0.3 panics (a nil *big.Rat) on exponents that
	// big.Rat.SetString rejects, so these are not given to it.
	skip := map[string]bool{"amount huge exponent": true, "amount tiny exponent": true}

	seen := map[string]bool{}
	for _, c := range decodeCases() {
		if skip[c.name] {
			continue
		}
		inst, err := jsonschema.UnmarshalJSON(strings.NewReader(c.value))
		if err != nil {
			continue // not JSON: the decoder says bad_json, a schema cannot see it
		}
		schemaOK := schemas[c.topic].Validate(inst) == nil
		decoderOK := c.reason == ""
		if schemaAcceptsDecoderRejects[c.name] {
			seen[c.name] = true
			if !schemaOK || decoderOK {
				t.Errorf("%s: listed as accepted by the schema only, but schema valid = %v, decoder reason %q", c.name, schemaOK, c.reason)
			}
			continue
		}
		if schemaOK != decoderOK {
			t.Errorf("%s: JSON Schema valid = %v, decoder reason %q", c.name, schemaOK, c.reason)
		}
	}
	for name := range schemaAcceptsDecoderRejects {
		if !seen[name] {
			t.Errorf("listed case %q is not in the decoder table", name)
		}
	}
}
