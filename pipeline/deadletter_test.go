package pipeline

import (
	"bytes"
	"strconv"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/funnelhouse/funnelhouse/schemas"
)

func TestDeadLetterBound(t *testing.T) {
	header := func(r *kgo.Record, k string) string {
		for _, h := range r.Headers {
			if h.Key == k {
				return string(h.Value)
			}
		}
		return ""
	}
	bad := &schemas.Error{Reason: schemas.ReasonTooLarge, Detail: "record: larger than 256 KiB"}
	small := &kgo.Record{Topic: "cs", Partition: 3, Offset: 7, Key: []byte("v1"), Value: []byte(`{"x":1}`)}
	dl := deadLetter("dlq", small, bad)
	if !bytes.Equal(dl.Value, small.Value) || !bytes.Equal(dl.Key, small.Key) || header(dl, "funnelhouse.truncated") != "" ||
		header(dl, "funnelhouse.offset") != "7" || header(dl, "funnelhouse.partition") != "3" || header(dl, "funnelhouse.reason") != "too_large" {
		t.Errorf("a small record is not copied as it is: %+v", dl)
	}
	huge := &kgo.Record{Topic: "cs", Offset: 9, Key: bytes.Repeat([]byte("k"), 300_000), Value: bytes.Repeat([]byte("a"), 3_000_000)}
	dl = deadLetter("dlq", huge, bad)
	size := len(dl.Key) + len(dl.Value)
	for _, h := range dl.Headers {
		size += len(h.Key) + len(h.Value)
	}
	if size > 1_000_012-1_000 {
		t.Errorf("dead letter of a 3.3 MB record is %d bytes with headers, over franz-go's batch limit", size)
	}
	if header(dl, "funnelhouse.truncated") != "true" || header(dl, "funnelhouse.original_value_bytes") != "3000000" ||
		header(dl, "funnelhouse.original_key_bytes") != "300000" || header(dl, "funnelhouse.offset") != "9" ||
		header(dl, "funnelhouse.original_value_xxhash64") != strconv.FormatUint(xxhash.Sum64(huge.Value), 16) {
		t.Errorf("truncated dead letter headers: %v", dl.Headers)
	}
	if !bytes.HasPrefix(huge.Value, dl.Value) || !bytes.HasPrefix(huge.Key, dl.Key) || len(dl.Key) == 0 {
		t.Error("a truncated dead letter does not keep the start of key and value")
	}
}
