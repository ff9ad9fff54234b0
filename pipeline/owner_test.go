package pipeline

import (
	"testing"
	"time"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/funnelhouse/funnelhouse/schemas"
)

// TestFeedWaitsForUnreadBehindInput: the input behind in event time is
// waited for as long as it has unread records, however long its fetch
// takes, so that the other input's records stay in their queue instead of
// being held; only an input whose end is not known yet is given up on
// after IdleAdvance, and one read to its end at once.
func TestFeedWaitsForUnreadBehindInput(t *testing.T) {
	clock := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	now := func() time.Time { return clock }
	rules := DefaultRules()
	rules.IdleAdvance = 200 * time.Millisecond
	pl := &Pipeline{cfg: Config{Rules: rules, Now: now}}
	proc := NewProcessor("g", 0, [2]string{"clickstream", "transactions"}, rules, now)
	o := newOwner(pl, 0, proc, Offsets{}, make(chan struct{}))
	cs := int(schemas.Clickstream)
	later := clock.Add(time.Hour) // long past IdleAdvance since the last fetch

	if !o.waitFor(cs, clock) {
		t.Error("end not known yet, nothing fetched for 0 s: feeding does not wait")
	}
	if o.waitFor(cs, later) {
		t.Error("end not known yet, nothing fetched for an hour: feeding still waits")
	}
	o.ends[cs].Store(1000)
	if !o.waitFor(cs, later) {
		t.Error("1,000 records unread, nothing fetched for an hour: feeding feeds the other input (its records would all be held)")
	}
	o.ends[cs].Store(0)
	if o.waitFor(cs, clock) {
		t.Error("empty input: feeding waits for it")
	}
}

// A record of an uncompressed batch no longer points into the fetch
// response once queued; one of a compressed batch, and null keys and
// values, are left as they are.
func TestDetachFreesTheFetchResponse(t *testing.T) {
	response := []byte("....key1{\"type\":\"page_view\"}....")
	r := &kgo.Record{Key: response[4:8], Value: response[8:28]}
	detach(r)
	if string(r.Key) != "key1" || string(r.Value) != `{"type":"page_view"}` {
		t.Fatalf("detach changed the record: key %q value %q", r.Key, r.Value)
	}
	for _, b := range [][]byte{r.Key, r.Value} {
		if &b[0] == &response[4] || &b[0] == &response[8] || cap(b) > 20 {
			t.Fatal("the detached record still points into the fetch response")
		}
	}

	compressed := &kgo.Record{Key: response[4:8], Value: response[8:28], Attrs: lz4Attrs(t)}
	detach(compressed)
	if &compressed.Value[0] != &response[8] {
		t.Error("a record of a compressed batch (already a copy) was copied again")
	}
	nullKey := &kgo.Record{Value: response[8:28]}
	detach(nullKey)
	if nullKey.Key != nil {
		t.Error("a null key became an empty one")
	}
}

// lz4Attrs are the attributes of a record of an lz4-compressed batch, as
// franz-go sets them from a fetched batch (it has no constructor for them).
func lz4Attrs(t *testing.T) kgo.RecordAttrs {
	var a kgo.RecordAttrs
	*(*uint8)(unsafe.Pointer(&a)) = 0x03 // the batch attributes' codec bits: 3 = lz4
	if a.CompressionType() != 3 {
		t.Fatalf("RecordAttrs layout changed: compression type %d", a.CompressionType())
	}
	return a
}
