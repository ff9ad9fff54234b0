package traffic

import (
	"strconv"
	"time"

	"github.com/segmentio/ksuid"

	"github.com/funnelhouse/funnelhouse/schemas"
)

// Rendering of planned events into JSON values, with a byte-buffer encoder.

// touch is how a session was reached: the utm_* fields and referrer of its
// first event. Strings are JSON tokens, written as they are; "" omits the
// field.
type touch struct {
	source, medium, campaign, referrer string
}

// q quotes s as a JSON string token.
func q(s string) string { return string(appendString(nil, s)) }

var utmTouches = []touch{
	{q("google"), q("cpc"), q("brand_search"), q("https://www.google.com/")},
	{q("google"), q("cpc"), q("generic_shoes"), ""},
	{q("newsletter"), q("email"), q("weekly_2025_01"), ""},
	{q("newsletter"), q("email"), q("winter_sale"), ""},
	{q("facebook"), q("social"), q("spring_sale"), q("https://m.facebook.com/")},
	{q("instagram"), q("social"), q("influencer_anna"), ""},
	{q("tiktok"), q("video"), q("ugc_q1"), ""},
	{q("bing"), q("cpc"), q("brand"), ""},
	{q("affiliate"), q("partner"), q("rabatt-été"), ""},       // raw UTF-8
	{q("newsletter"), q("email"), `"\u00e9t\u00e9_sale"`, ""}, // escaped: été_sale
	{q("Google"), q("CPC"), "", q("https://www.google.com/")}, // a differently spelled source
	{q("partner.example.net"), q(""), q(""), ""},              // empty medium/campaign: absent
}
var utmWeights = []int{12, 8, 6, 3, 6, 4, 3, 2, 2, 1, 1, 1}

var referrerTouches = []touch{
	{referrer: q("https://www.google.com/search?q=running+shoes")},
	{referrer: q("https://www.google.com/")},
	{referrer: q("http://facebook.com/")},
	{referrer: q("https://m.facebook.com/story.php?id=1")},
	{referrer: q("HTTPS://WWW.Example.com:8080/x")},
	{referrer: q("news.ycombinator.com/item?id=4242")},
	{referrer: q("www.reddit.com/r/running/comments/abc")},
	{referrer: q("https://t.co/AbC123")},
	{referrer: q("https://duckduckgo.com:443/?q=shoes")},
	{referrer: q("https://www.bing.com/search?q=shoes")},
	{referrer: q("blog.example.org/2025/01/best-shoes")},
	{referrer: q("android-app://com.google.android.gm/")},
	{referrer: q("https://L.Instagram.com/?u=https%3A%2F%2Fshop.example.com")},
	{referrer: q("https://shop.example.com/p/12")},
	{referrer: `"https:\/\/www.pinterest.com\/pin\/1\/"`}, // escaped slashes
}
var referrerWeights = []int{12, 8, 4, 3, 2, 2, 3, 2, 2, 2, 2, 1, 1, 2, 1}

var directTouches = []touch{
	{},
	{referrer: "null"},
	{referrer: `""`},
	{source: `""`, medium: "null"},
}
var directWeights = []int{20, 3, 2, 1}

// touches concatenates the three groups; pev.touch is 1 + an index into it.
var touches, touchGroups = func() ([]touch, [3]int) {
	var all []touch
	var starts [3]int
	for i, group := range [][]touch{utmTouches, referrerTouches, directTouches} {
		starts[i] = len(all)
		all = append(all, group...)
	}
	return all, starts
}()

// pickTouch picks how a session was reached: first touches come from
// campaigns and referrers more often, later sessions are more often direct.
func (g *Generator) pickTouch(first bool) uint8 {
	r := g.rng
	groupWeights := []int{40, 35, 25}
	if !first {
		groupWeights = []int{25, 30, 45}
	}
	var i int
	switch r.pick(groupWeights) {
	case 0:
		i = touchGroups[0] + r.pick(utmWeights)
	case 1:
		i = touchGroups[1] + r.pick(referrerWeights)
	default:
		i = touchGroups[2] + r.pick(directWeights)
	}
	return uint8(1 + i)
}

var categories = []string{"shoes", "shirts", "bags", "outdoor", "sale", "kids", "accessories"}

var blogSlugs = []string{"how-to-choose-running-shoes", "winter-care", "our-story", "size-guide"}

// searchQueries: the text (sent as the unknown field "query") and its URL
// encoding.
var searchQueries = []struct{ text, url string }{
	{"running shoes", "running+shoes"},
	{"red dress", "red+dress"},
	{"café table", "caf%C3%A9+table"},
	{"größe 42", "gr%C3%B6%C3%9Fe+42"},
	{"waterproof jacket", "waterproof+jacket"},
	{"gift card", "gift+card"},
	{`12" laptop sleeve`, "12%22+laptop+sleeve"},
}

// extras are unknown fields (kept in props), as raw JSON.
var extras = []string{
	`"app_version":"4.12.0"`,
	`"experiment":{"id":"checkout_v2","arm":"b"}`,
	`"consent":true`,
	`"screen":{"w":390,"h":844}`,
	`"tags":["sale","new"]`,
	`"session_hint":null`,
	`"latency_ms":12.5`,
}

// Offsets for ts written with a zone offset, in minutes east of UTC.
var tsOffsets = []int{120, 60, -300, -240, 330, -420, 540}

var tsFormatWeights = []int{850, 50, 70, 20, 10}

// override replaces fields of a rendered event to make it malformed.
type override struct {
	set  [numOFields]bool
	tok  [numOFields]string // raw JSON token; "" omits the field
	tail string             // raw JSON appended before the closing brace, e.g. `,"type":"click"`
}

type ofield uint8

const (
	oEventID ofield = iota
	oType
	oTs
	oVisitorID
	oURL
	oUTMCampaign
	oOrderID
	oAmount
	oCurrency
	oRating
	oNPS
	oCSAT
	numOFields
)

var ofieldNames = [numOFields]string{
	"event_id", "type", "ts", "visitor_id", "url", "utm_campaign",
	"order_id", "amount", "currency", "rating", "nps", "csat",
}

// with returns o with field f replaced by tok ("" omits it).
func (o *override) with(f ofield, tok string) *override {
	o.set[f], o.tok[f] = true, tok
	return o
}

// has reports whether f is overridden; o may be nil.
func (o *override) has(f ofield) bool { return o != nil && o.set[f] }

// appendEventID appends a new KSUID for an event at ts: the event time and a
// payload from the seeded source, so ids are deterministic and unique.
func (g *Generator) appendEventID(b []byte, ts int64) []byte {
	var payload [16]byte
	x, y := g.rng.u64(), g.rng.u64()
	for i := range 8 {
		payload[i] = byte(x >> (8 * i))
		payload[8+i] = byte(y >> (8 * i))
	}
	id, err := ksuid.FromParts(time.Unix(ts/1000, 0), payload[:])
	if err != nil {
		panic("BUG: ksuid.FromParts with a 16-byte payload: " + err.Error())
	}
	b = append(b, '"')
	b = id.Append(b)
	return append(b, '"')
}

// appendTs appends ts in one of the accepted forms.
func (g *Generator) appendTs(b []byte, ts int64) []byte {
	r := g.rng
	switch tsFormat(r.pick(tsFormatWeights)) {
	case tsOffset:
		return appendRFC3339(b, ts, tsOffsets[r.intn(len(tsOffsets))], true, -1)
	case tsEpochMs:
		return strconv.AppendInt(b, ts, 10)
	case tsMicrosZ:
		return appendRFC3339(b, ts, 0, true, int64(r.intn(1000)))
	case tsSecondsZ:
		if ts%1000 == 0 {
			return appendRFC3339(b, ts, 0, false, -1)
		}
	}
	return appendRFC3339(b, ts, 0, true, -1)
}

// appendURL appends the url of a clickstream event as a JSON string.
func appendURL(b []byte, v *visitor, e *pev) []byte {
	b = append(b, '"')
	if devices[v.device] == "mobile" {
		b = append(b, "https://m.shop.example.com"...)
	} else {
		b = append(b, "https://shop.example.com"...)
	}
	switch e.page {
	case pageProduct:
		b = strconv.AppendInt(append(b, "/p/"...), int64(e.item), 10)
		switch e.item % 13 { // query strings and fragments: one page each
		case 1:
			b = append(b, "?color=red"...)
		case 2:
			b = append(b, "#reviews"...)
		case 3:
			b = append(b, "?ref=home#size"...)
		}
	case pageCategory:
		b = append(append(b, "/c/"...), categories[int(e.item)%len(categories)]...)
	case pageSearch:
		b = append(append(b, "/search?q="...), searchQueries[int(e.item)%len(searchQueries)].url...)
	case pageCart:
		b = append(b, "/cart"...)
	case pageCheckout:
		b = append(b, "/checkout"...)
	case pageAccount:
		b = append(b, "/account/login"...)
	case pageSignup:
		b = append(b, "/signup"...)
	case pageBlog:
		b = append(append(b, "/blog/"...), blogSlugs[int(e.item)%len(blogSlugs)]...)
	case pageRefer:
		b = append(b, "/refer-a-friend"...)
	case pageSurvey:
		b = append(b, "/survey"...)
	default:
		b = append(b, '/')
	}
	return append(b, '"')
}

// appendEvent appends the JSON value of e, with the fields of o (nil for a
// valid event) replaced.
func (g *Generator) appendEvent(b []byte, v *visitor, e *pev, o *override) []byte {
	start := len(b)
	b = append(b, '{')
	field := func(name string) { // keeps the comma logic in one place
		if len(b) > start+1 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, name...)
		b = append(b, '"', ':')
	}
	put := func(f ofield) {
		if o.tok[f] != "" {
			field(ofieldNames[f])
			b = append(b, o.tok[f]...)
		}
	}

	if o.has(oEventID) {
		put(oEventID)
	} else {
		field("event_id")
		b = g.appendEventID(b, e.ts)
	}
	if o.has(oType) {
		put(oType)
	} else {
		field("type")
		b = appendString(b, e.typ.String())
	}
	if o.has(oTs) {
		put(oTs)
	} else {
		field("ts")
		b = g.appendTs(b, e.ts)
	}
	if o.has(oVisitorID) {
		put(oVisitorID)
	} else {
		field("visitor_id")
		b = appendString(b, v.id)
	}
	if e.cust {
		field("customer_id")
		b = appendString(b, v.customer)
	}
	isClick := e.typ.Topic() == schemas.Clickstream
	if o.has(oURL) {
		put(oURL)
	} else if isClick && !e.noURL {
		field("url")
		b = appendURL(b, v, e)
	}
	if e.touch > 0 {
		t := &touches[e.touch-1]
		if t.referrer != "" {
			field("referrer")
			b = append(b, t.referrer...)
		}
		if t.source != "" {
			field("utm_source")
			b = append(b, t.source...)
		}
		if t.medium != "" {
			field("utm_medium")
			b = append(b, t.medium...)
		}
		if t.campaign != "" && !o.has(oUTMCampaign) {
			field("utm_campaign")
			b = append(b, t.campaign...)
		}
	}
	if o.has(oUTMCampaign) {
		put(oUTMCampaign)
	}
	if isClick {
		field("device")
		b = appendString(b, devices[v.device])
	}
	field("country")
	b = appendString(b, countries[v.country].code)

	if e.typ == schemas.OrderCompleted || e.typ == schemas.OrderRefunded {
		if o.has(oOrderID) {
			put(oOrderID)
		} else {
			field("order_id")
			b = append(b, `"ord_`...)
			b = appendBase36(b, mix(e.order^g.orderSalt))
			b = append(b, '"')
		}
		if o.has(oAmount) {
			put(oAmount)
		} else {
			field("amount")
			b = appendAmount(b, e.amount, amountFormat(g.rng.pick([]int{90, 5, 3, 2})))
		}
		if o.has(oCurrency) {
			put(oCurrency)
		} else {
			field("currency")
			b = appendString(b, countries[v.country].currency)
		}
	}
	if o.has(oRating) {
		put(oRating)
	} else if e.rating != schemas.Absent {
		field("rating")
		b = strconv.AppendInt(b, int64(e.rating), 10)
	}
	if o.has(oNPS) {
		put(oNPS)
	} else if e.nps != schemas.Absent {
		field("nps")
		b = strconv.AppendInt(b, int64(e.nps), 10)
	}
	if o.has(oCSAT) {
		put(oCSAT)
	} else if e.csat != schemas.Absent {
		field("csat")
		b = strconv.AppendInt(b, int64(e.csat), 10)
	}
	if e.ces != schemas.Absent {
		field("ces")
		b = strconv.AppendInt(b, int64(e.ces), 10)
	}
	switch e.trial {
	case 1:
		field("trial")
		b = append(b, "true"...)
	case 2:
		field("trial")
		b = append(b, "false"...)
	}
	if e.plan > 0 {
		field("plan")
		b = appendString(b, plans[e.plan-1])
	}

	if e.typ == schemas.Search {
		field("query")
		b = appendString(b, searchQueries[int(e.item)%len(searchQueries)].text)
	}
	if e.extra > 0 {
		b = append(b, ',')
		b = append(b, extras[e.extra-1]...)
	}
	if o != nil {
		b = append(b, o.tail...)
	}
	return append(b, '}')
}
