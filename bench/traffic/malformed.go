package traffic

import (
	"strings"

	"github.com/funnelhouse/funnelhouse/schemas"
)

// Malformed records. Each variant breaks exactly one rule of SPEC §2 and is
// otherwise a valid event, so its reason is unambiguous given the decoder's
// order of checks: value size; UTF-8, JSON syntax, object, duplicate keys;
// record key; type (and topic); event_id; visitor_id and key match; ts; the
// other fields.

// badVariant builds one kind of malformed record.
type badVariant struct {
	reason schemas.Reason
	name   string
	// build appends the value to b and returns it with the topic and key.
	build func(g *Generator, v *visitor, ts int64, b []byte) ([]byte, schemas.Topic, keyMode, string)
}

// Templates: valid events of the visitor at ts, to be broken.

func (g *Generator) badPageView(v *visitor, ts int64) pev {
	return pev{ts: ts, typ: schemas.PageView, page: pageProduct, item: uint16(g.rng.intn(5000)),
		cust: v.customer != "", rating: schemas.Absent, nps: schemas.Absent, csat: schemas.Absent, ces: schemas.Absent}
}

func (g *Generator) badOrder(v *visitor, ts int64) pev {
	e := pev{ts: ts, typ: schemas.OrderCompleted, amount: 49_9900, order: g.orderNo,
		cust: v.customer != "", rating: schemas.Absent, nps: schemas.Absent, csat: schemas.Absent, ces: schemas.Absent}
	g.orderNo++
	return e
}

func (g *Generator) badReview(v *visitor, ts int64) pev {
	e := g.badPageView(v, ts)
	e.typ, e.rating = schemas.Review, 5
	return e
}

func (g *Generator) badSurvey(v *visitor, ts int64) pev {
	e := g.badPageView(v, ts)
	e.typ, e.page, e.nps, e.csat = schemas.Survey, pageSurvey, 9, 4
	return e
}

// broken returns a variant that renders template with o applied on the
// template's own topic, keyed by the visitor.
func broken(reason schemas.Reason, name string, template func(*Generator, *visitor, int64) pev, o override) badVariant {
	return badVariant{reason: reason, name: name,
		build: func(g *Generator, v *visitor, ts int64, b []byte) ([]byte, schemas.Topic, keyMode, string) {
			e := template(g, v, ts)
			return g.appendEvent(b, v, &e, &o), e.typ.Topic(), keyNormal, v.id
		}}
}

// raw returns a variant whose value is the fixed text value, on topic.
func raw(name, value string, topic schemas.Topic) badVariant {
	return badVariant{reason: schemas.ReasonBadJSON, name: name,
		build: func(g *Generator, v *visitor, ts int64, b []byte) ([]byte, schemas.Topic, keyMode, string) {
			return append(b, value...), topic, keyNormal, v.id
		}}
}

// ov builds an override from field/token pairs.
func ov(pairs ...any) override {
	var o override
	for i := 0; i < len(pairs); i += 2 {
		o.with(pairs[i].(ofield), pairs[i+1].(string))
	}
	return o
}

var (
	pageView = (*Generator).badPageView
	order    = (*Generator).badOrder
	review   = (*Generator).badReview
	survey   = (*Generator).badSurvey
)

var badVariants = []badVariant{
	// bad_json
	{reason: schemas.ReasonBadJSON, name: "truncated",
		build: func(g *Generator, v *visitor, ts int64, b []byte) ([]byte, schemas.Topic, keyMode, string) {
			e := g.badPageView(v, ts)
			start := len(b)
			b = g.appendEvent(b, v, &e, nil)
			n := len(b) - start
			return b[:start+1+g.rng.intn(n-1)], schemas.Clickstream, keyNormal, v.id // a proper prefix of an object
		}},
	raw("array", "[]", schemas.Clickstream),
	raw("null", "null", schemas.Transactions),
	raw("empty", "", schemas.Clickstream),
	raw("not_json", "page_view v1 2025-01-01", schemas.Clickstream),
	broken(schemas.ReasonBadJSON, "invalid_utf8", pageView, ov(oURL, "\"https://shop.example.com/p/\xff\xfe1\"")),
	{reason: schemas.ReasonBadJSON, name: "duplicate_key",
		build: func(g *Generator, v *visitor, ts int64, b []byte) ([]byte, schemas.Topic, keyMode, string) {
			e := g.badPageView(v, ts)
			o := override{tail: `,"type":"click"`}
			return g.appendEvent(b, v, &e, &o), schemas.Clickstream, keyNormal, v.id
		}},
	{reason: schemas.ReasonBadJSON, name: "trailing_garbage",
		build: func(g *Generator, v *visitor, ts int64, b []byte) ([]byte, schemas.Topic, keyMode, string) {
			e := g.badOrder(v, ts)
			return append(g.appendEvent(b, v, &e, nil), '}'), schemas.Transactions, keyNormal, v.id
		}},

	// missing_key
	{reason: schemas.ReasonMissingKey, name: "nil_key",
		build: func(g *Generator, v *visitor, ts int64, b []byte) ([]byte, schemas.Topic, keyMode, string) {
			e := g.badPageView(v, ts)
			return g.appendEvent(b, v, &e, nil), schemas.Clickstream, keyNil, ""
		}},
	{reason: schemas.ReasonMissingKey, name: "empty_key",
		build: func(g *Generator, v *visitor, ts int64, b []byte) ([]byte, schemas.Topic, keyMode, string) {
			e := g.badOrder(v, ts)
			return g.appendEvent(b, v, &e, nil), schemas.Transactions, keyEmpty, ""
		}},

	// missing_field
	broken(schemas.ReasonMissingField, "no_event_id", pageView, ov(oEventID, "")),
	broken(schemas.ReasonMissingField, "null_event_id", order, ov(oEventID, "null")),
	broken(schemas.ReasonMissingField, "no_visitor_id", pageView, ov(oVisitorID, "")),
	broken(schemas.ReasonMissingField, "order_without_amount", order, ov(oAmount, "")),
	broken(schemas.ReasonMissingField, "order_without_order_id", order, ov(oOrderID, "")),
	broken(schemas.ReasonMissingField, "order_null_currency", order, ov(oCurrency, "null")),
	broken(schemas.ReasonMissingField, "review_without_rating", review, ov(oRating, "")),

	// unknown_type
	broken(schemas.ReasonUnknownType, "purchase", pageView, ov(oType, `"purchase"`)),
	broken(schemas.ReasonUnknownType, "camel_case", pageView, ov(oType, `"PageView"`)),
	broken(schemas.ReasonUnknownType, "dashed", order, ov(oType, `"order-completed"`)),

	// wrong_topic
	{reason: schemas.ReasonWrongTopic, name: "order_on_clickstream",
		build: func(g *Generator, v *visitor, ts int64, b []byte) ([]byte, schemas.Topic, keyMode, string) {
			e := g.badOrder(v, ts)
			return g.appendEvent(b, v, &e, nil), schemas.Clickstream, keyNormal, v.id
		}},
	{reason: schemas.ReasonWrongTopic, name: "page_view_on_transactions",
		build: func(g *Generator, v *visitor, ts int64, b []byte) ([]byte, schemas.Topic, keyMode, string) {
			e := g.badPageView(v, ts)
			return g.appendEvent(b, v, &e, nil), schemas.Transactions, keyNormal, v.id
		}},

	// bad_ts
	broken(schemas.ReasonBadTs, "exponent", pageView, ov(oTs, "1.7e12")),
	broken(schemas.ReasonBadTs, "words", pageView, ov(oTs, `"yesterday"`)),
	broken(schemas.ReasonBadTs, "before_2000", order, ov(oTs, `"1999-12-31T23:59:59Z"`)),
	broken(schemas.ReasonBadTs, "epoch_ms_before_2000", pageView, ov(oTs, "946684799999")),
	broken(schemas.ReasonBadTs, "digits_string", pageView, ov(oTs, `"1735689600000"`)),
	broken(schemas.ReasonBadTs, "no_zone", order, ov(oTs, `"2025-01-03T10:00:00"`)),
	broken(schemas.ReasonBadTs, "fractional_epoch", pageView, ov(oTs, "1735689600000.0")),
	broken(schemas.ReasonBadTs, "space_separator", pageView, ov(oTs, `"2025-01-03 10:00:00Z"`)),

	// bad_value
	broken(schemas.ReasonBadValue, "negative_amount", order, ov(oAmount, "-5.00")),
	broken(schemas.ReasonBadValue, "amount_string", order, ov(oAmount, `"49.99"`)),
	broken(schemas.ReasonBadValue, "amount_5_decimals", order, ov(oAmount, "1.00001")),
	broken(schemas.ReasonBadValue, "lower_case_currency", order, ov(oCurrency, `"usd"`)),
	broken(schemas.ReasonBadValue, "long_currency", order, ov(oCurrency, `"EURO"`)),
	broken(schemas.ReasonBadValue, "rating_7", review, ov(oRating, "7")),
	broken(schemas.ReasonBadValue, "rating_fraction", review, ov(oRating, "4.5")),
	broken(schemas.ReasonBadValue, "nps_11", survey, ov(oNPS, "11")),
	broken(schemas.ReasonBadValue, "csat_0", survey, ov(oCSAT, "0")),
	broken(schemas.ReasonBadValue, "ces_8", survey, override{tail: `,"ces":8`}),
	broken(schemas.ReasonBadValue, "ces_string", survey, override{tail: `,"ces":"5"`}),

	// key_mismatch
	{reason: schemas.ReasonKeyMismatch, name: "other_visitor",
		build: func(g *Generator, v *visitor, ts int64, b []byte) ([]byte, schemas.Topic, keyMode, string) {
			e := g.badPageView(v, ts)
			return g.appendEvent(b, v, &e, nil), schemas.Clickstream, keyNormal, v.id + "0"
		}},
	{reason: schemas.ReasonKeyMismatch, name: "key_case",
		build: func(g *Generator, v *visitor, ts int64, b []byte) ([]byte, schemas.Topic, keyMode, string) {
			e := g.badOrder(v, ts)
			return g.appendEvent(b, v, &e, nil), schemas.Transactions, keyNormal, strings.ToUpper(v.id)
		}},

	// too_large
	broken(schemas.ReasonTooLarge, "event_id_65", pageView, ov(oEventID, q(strings.Repeat("k", 65)))),
	broken(schemas.ReasonTooLarge, "url_3000", pageView, ov(oURL, q("https://shop.example.com/search?q="+strings.Repeat("a", 3000-34)))),
	broken(schemas.ReasonTooLarge, "utm_campaign_300", pageView, ov(oUTMCampaign, q(strings.Repeat("c", 300)))),
	broken(schemas.ReasonTooLarge, "plan_65", order, override{tail: `,"plan":` + q(strings.Repeat("p", 65))}),
	{reason: schemas.ReasonTooLarge, name: "visitor_id_129",
		build: func(g *Generator, v *visitor, ts int64, b []byte) ([]byte, schemas.Topic, keyMode, string) {
			long := strings.Repeat("v", 129)
			e := g.badOrder(v, ts)
			o := ov(oVisitorID, q(long))
			return g.appendEvent(b, v, &e, &o), schemas.Transactions, keyNormal, long
		}},
}

// malformed adds one malformed record for visitor v around ts.
func (g *Generator) malformed(v *visitor, ts int64) {
	bv := &badVariants[g.rng.intn(len(badVariants))]
	o := g.newRecord(ts + g.delay())
	o.kind = Malformed
	o.reason = bv.reason
	o.value, o.topic, o.keyMode, o.key = bv.build(g, v, ts, o.value)
	g.out.push(o)
}
