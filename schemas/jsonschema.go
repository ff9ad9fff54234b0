package schemas

import _ "embed"

// JSON Schemas (draft 2020-12) of the record values on each input topic, for
// producers to validate against. They describe the same rules as Decoder as
// far as JSON Schema can; what it cannot express (the record key, duplicate
// keys, byte limits on non-ASCII strings, integer-literal ts, ts against the
// clock) is listed in each schema's description. TestJSONSchemas keeps them
// and the decoder in agreement on a shared sample set.
var (
	//go:embed clickstream.schema.json
	ClickstreamJSONSchema []byte

	//go:embed transactions.schema.json
	TransactionsJSONSchema []byte
)
