package schemas

// The field table: the known top-level fields of a record value (SPEC §2),
// their size limits, and where an extractor notes their values.

// Size limits of string fields, in UTF-8 bytes of the decoded (unescaped) string.
const (
	maxEventIDBytes   = 64
	maxVisitorIDBytes = 128
	maxURLBytes       = 2048
	maxUTMBytes       = 256
	maxOtherBytes     = 256 // customer_id, device, country, order_id, currency
	maxPlanBytes      = 64
)

// field numbers the known top-level fields in the order of the SPEC §2 table.
type field uint8

const (
	fEventID field = iota
	fType
	fTs
	fVisitorID
	fCustomerID
	fURL
	fReferrer
	fUTMSource
	fUTMMedium
	fUTMCampaign
	fDevice
	fCountry
	fOrderID
	fAmount
	fCurrency
	fRating
	fNPS
	fCSAT
	fCES
	fTrial
	fPlan
	numFields
	fUnknown = numFields
)

var fieldNames = [numFields]string{
	"event_id", "type", "ts", "visitor_id", "customer_id", "url", "referrer",
	"utm_source", "utm_medium", "utm_campaign", "device", "country",
	"order_id", "amount", "currency", "rating", "nps", "csat", "ces", "trial", "plan",
}

func fieldOf(key []byte) field {
	// A switch on string(key) does not allocate.
	switch string(key) {
	case "event_id":
		return fEventID
	case "type":
		return fType
	case "ts":
		return fTs
	case "visitor_id":
		return fVisitorID
	case "customer_id":
		return fCustomerID
	case "url":
		return fURL
	case "referrer":
		return fReferrer
	case "utm_source":
		return fUTMSource
	case "utm_medium":
		return fUTMMedium
	case "utm_campaign":
		return fUTMCampaign
	case "device":
		return fDevice
	case "country":
		return fCountry
	case "order_id":
		return fOrderID
	case "amount":
		return fAmount
	case "currency":
		return fCurrency
	case "rating":
		return fRating
	case "nps":
		return fNPS
	case "csat":
		return fCSAT
	case "ces":
		return fCES
	case "trial":
		return fTrial
	case "plan":
		return fPlan
	}
	return fUnknown
}

// optStrings are the optional string fields with their size limits, in the
// order they are checked (SPEC table order).
var optStrings = [...]struct {
	f   field
	max int
}{
	{fCustomerID, maxOtherBytes},
	{fURL, maxURLBytes},
	{fReferrer, maxURLBytes},
	{fUTMSource, maxUTMBytes},
	{fUTMMedium, maxUTMBytes},
	{fUTMCampaign, maxUTMBytes},
	{fDevice, maxOtherBytes},
	{fCountry, maxOtherBytes},
}

// stringFields are the fields that Event holds as strings.
var stringFields = [...]field{
	fEventID, fVisitorID, fCustomerID, fURL, fReferrer, fUTMSource, fUTMMedium,
	fUTMCampaign, fDevice, fCountry, fOrderID, fCurrency, fPlan,
}

// kind is the JSON type of a top-level value; kAbsent marks a known field
// the record does not have.
type kind uint8

const (
	kAbsent kind = iota
	kNull
	kBool
	kNumber
	kString
	kArray
	kObject
)

// jval is where the value of a known top-level field is. It holds offsets,
// not slices, so filling fieldValues.vals stores no pointers (pointer stores
// into the heap pay for GC write barriers, which were 15% of Decode when the
// decoder kept fastjson values).
type jval struct {
	kind kind
	// esc: the value's text is unesc[lo:hi]; the scanner puts there the
	// decoded text of a string that had escapes, the fuzz reference every
	// text. Otherwise the text is value[lo:hi] (a string's without quotes).
	esc    bool
	lo, hi int32
}

// fieldValues holds the known top-level fields of one record value. An
// extractor fills it (the scanner; in tests the reference's walk over
// fastjson values) and the validators (decode.go) read it, so that the two
// decoders differ only in how they extract fields.
type fieldValues struct {
	vals  [numFields]jval
	value []byte // the record value, during Decode only
	unesc []byte // text that is not in value as it stands (see jval.esc)
}

// reset forgets the fields of the previous record.
func (fv *fieldValues) reset() {
	fv.vals = [numFields]jval{}
	fv.unesc = fv.unesc[:0]
}

// text returns the text of field f: a string's decoded bytes, a number's
// JSON text. It is valid until the next Decode.
func (fv *fieldValues) text(f field) []byte {
	v := fv.vals[f]
	if v.esc {
		return fv.unesc[v.lo:v.hi]
	}
	return fv.value[v.lo:v.hi]
}

// absent reports whether field f counts as absent: not there, null, or "".
// (A string with escapes is never empty.)
func (fv *fieldValues) absent(f field) bool {
	v := fv.vals[f]
	return v.kind == kAbsent || v.kind == kNull || v.kind == kString && v.lo == v.hi
}
