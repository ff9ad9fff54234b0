package pipeline

import (
	"strconv"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/funnelhouse/funnelhouse/schemas"
)

// MaxDeadLetterBytes bounds a dead letter's key plus value. franz-go
// refuses a record batch over 1,000,012 bytes, and a broker's topic over
// about 1 MB, but an input topic may hold larger records (compressed, or
// with a larger max.message.bytes): copied whole, such a record would fail
// the checkpoint again after every restart. The room left is for headers.
const MaxDeadLetterBytes = 900_000

// dlqDeliveryTimeout bounds the retries of one dead letter.
const dlqDeliveryTimeout = 30 * time.Second

// deadLetter returns the record for the dead-letter topic: key and value as
// they came, unless they are over the bound together; then they are cut,
// and headers give the original sizes and the xxhash64 of the original
// value, so that the record can be found and compared in the input topic.
func deadLetter(topic string, r *kgo.Record, err *schemas.Error) *kgo.Record {
	dl := &kgo.Record{
		Topic: topic,
		Key:   r.Key,
		Value: r.Value,
		Headers: []kgo.RecordHeader{
			{Key: "funnelhouse.reason", Value: []byte(err.Reason)},
			{Key: "funnelhouse.detail", Value: []byte(err.Detail)},
			{Key: "funnelhouse.topic", Value: []byte(r.Topic)},
			{Key: "funnelhouse.partition", Value: strconv.AppendInt(nil, int64(r.Partition), 10)},
			{Key: "funnelhouse.offset", Value: strconv.AppendInt(nil, r.Offset, 10)},
		},
	}
	if len(r.Key)+len(r.Value) <= MaxDeadLetterBytes {
		return dl
	}
	keep := min(len(r.Key), MaxDeadLetterBytes/8) // a key is an id: keep its start
	dl.Key = r.Key[:keep]
	dl.Value = r.Value[:min(len(r.Value), MaxDeadLetterBytes-keep)]
	dl.Headers = append(dl.Headers,
		kgo.RecordHeader{Key: "funnelhouse.truncated", Value: []byte("true")},
		kgo.RecordHeader{Key: "funnelhouse.original_key_bytes", Value: strconv.AppendInt(nil, int64(len(r.Key)), 10)},
		kgo.RecordHeader{Key: "funnelhouse.original_value_bytes", Value: strconv.AppendInt(nil, int64(len(r.Value)), 10)},
		kgo.RecordHeader{Key: "funnelhouse.original_value_xxhash64", Value: strconv.AppendUint(nil, xxhash.Sum64(r.Value), 16)},
	)
	return dl
}
