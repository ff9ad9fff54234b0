package pipeline

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"slices"

	"github.com/klauspost/compress/s2"

	"github.com/funnelhouse/funnelhouse/schemas"
)

// On real-time traffic every event is held for the lateness, so a
// partition at 2,000 events/s holds 1.2M of them with the default 10 min.
// Decoded, an event costs ~450 bytes; its raw record, compressed with
// its neighbours, ~50. So beyond hotHeldLimit events, held events are
// kept as coldHeld: their raw records in runs sorted in processing order,
// compressed with s2 and spilled to disk (spill.go). A run is decompressed when the watermark
// reaches its first event, and its records are decoded again one by one as
// they are released (decoding is deterministic, and the clock only rejects
// records too far in the future, which a later clock accepts).

// hotHeldLimit is the number of held events a processor keeps decoded.
// Historical replays rarely hold more; real-time traffic always does.
const hotHeldLimit = 16384

// A run is sealed at coldRunLen records or coldRunBytes of them: large
// enough to compress well, small enough to decompress for one release
// (records of 200 KiB would make 1,024 of them 200 MiB).
const (
	coldRunLen   = 1024
	coldRunBytes = 1 << 20
)

type coldHeld struct {
	open  openRun
	runs  []*coldRun // sealed runs, a min-heap by head
	n     int        // events held in open and runs
	spill spillStore
	// runBytes seals a run at this many bytes of records (the budget's
	// share, at most coldRunBytes).
	runBytes int
	// spillErr is the first failure to spill a run: such a run stays in
	// memory, compressed.
	spillErr error

	scratch    []byte       // compressed output, before it is copied to its size
	rawScratch []byte       // a sorted run before it is compressed
	recs       []coldRecord // the open run's records while they are sorted
	readBuf    []byte       // a spilled run read back, compressed
	// spare holds the decompressed buffers of runs read to their end, for
	// the next runs to open: on real-time traffic every held event goes
	// through one, and a new zeroed buffer per run cost more than the copy.
	spare [][]byte
}

// maxSpare bounds the spare run buffers: a few runs are read at once
// where their events interleave in ts.
const maxSpare = 4

// coldKey is the processing order of a record: ts, topic, event_id.
type coldKey struct {
	ts    int64
	topic schemas.Topic
	id    []byte
}

func (a *coldKey) compare(b *coldKey) int {
	if c := cmp.Compare(a.ts, b.ts); c != 0 {
		return c
	}
	if c := cmp.Compare(a.topic, b.topic); c != 0 {
		return c
	}
	return bytes.Compare(a.id, b.id)
}

// openRun collects records until it is sealed.
type openRun struct {
	buf   []byte // records as appendColdRecord writes them
	ends  []int  // end of each record in buf
	minTs int64
}

// coldRun is a sealed run: compressed until opened, then read in order.
type coldRun struct {
	data    []byte   // compressed (nil once spilled), or raw once opened
	spilled spillRef // where the compressed run is on disk, if it is
	opened  bool
	buf     []byte     // the opened run's whole buffer, spare once read
	head    coldRecord // the next record, valid once opened (and its key before)
	left    int
}

// coldRecord is one raw record as a run holds it.
type coldRecord struct {
	key        coldKey
	offset     int64
	rkey, rval []byte
}

func (c *coldHeld) len() int { return c.n }

// add keeps a record whose event (of ts and id) waits for the watermark.
func (c *coldHeld) add(t schemas.Topic, offset, ts int64, id string, key, value []byte) {
	o := &c.open
	if len(o.ends) == 0 || ts < o.minTs {
		o.minTs = ts
	}
	o.buf = appendColdRecord(o.buf, t, offset, ts, id, key, value)
	o.ends = append(o.ends, len(o.buf))
	c.n++
	if len(o.ends) == coldRunLen || len(o.buf) >= c.runBytes {
		c.seal(true)
	}
}

func appendColdRecord[S string | []byte](b []byte, t schemas.Topic, offset, ts int64, id S, key, value []byte) []byte {
	b = append(b, byte(t))
	b = binary.AppendVarint(b, offset)
	b = binary.AppendVarint(b, ts)
	b = appendString(b, id)
	b = appendString(b, key)
	return appendString(b, value)
}

// readColdRecord parses the record at the start of b, its byte fields
// aliasing b, and returns the rest. The run's bytes were written by
// appendColdRecord: a failure is a bug.
func readColdRecord(b []byte, r *coldRecord) []byte {
	rd := reader{b: b}
	r.key.topic = schemas.Topic(rd.byte())
	r.offset = rd.varint()
	r.key.ts = rd.varint()
	r.key.id = rd.bytes()
	r.rkey = rd.bytes()
	r.rval = rd.bytes()
	if rd.err != nil {
		panic("BUG: corrupt held run: " + rd.err.Error())
	}
	return rd.b
}

// seal sorts the open records into a run, compressed unless it is about to
// be released.
func (c *coldHeld) seal(compress bool) {
	o := &c.open
	if len(o.ends) == 0 {
		return
	}
	recs := slices.Grow(c.recs[:0], len(o.ends))[:len(o.ends)]
	c.recs = recs
	start := 0
	for i, end := range o.ends {
		readColdRecord(o.buf[start:end], &recs[i])
		start = end
	}
	slices.SortFunc(recs, func(a, b coldRecord) int { return a.key.compare(&b.key) })
	raw := c.rawScratch[:0]
	if !compress {
		raw = c.buffer(len(o.buf))[:0] // kept as the run's data
	}
	for i := range recs {
		r := &recs[i]
		raw = appendColdRecord(raw, r.key.topic, r.offset, r.key.ts, r.key.id, r.rkey, r.rval)
	}
	run := &coldRun{data: raw, opened: true, left: len(recs)}
	if !compress {
		run.buf = raw
	}
	if compress {
		c.rawScratch = raw
		c.scratch = s2.Encode(c.scratch[:cap(c.scratch)], raw)
		if ref, err := c.spill.write(c.scratch); err == nil {
			run.spilled = ref
		} else {
			c.spillErr = cmp.Or(c.spillErr, err)
			run.data = bytes.Clone(c.scratch) // exactly its size: it is kept for minutes
		}
		run.opened = false
		run.head.key = recs[0].key
		run.head.key.id = bytes.Clone(run.head.key.id) // not an alias of raw
	} else {
		run.data = readColdRecord(run.data, &run.head)
	}
	clear(recs) // they alias o.buf
	o.buf, o.ends = o.buf[:0], o.ends[:0]
	if cap(o.buf) > 4<<20 {
		o.buf = nil // a run of huge records is not worth keeping
	}
	c.runs = append(c.runs, run)
	siftUp(len(c.runs)-1, c.runLess, c.runSwap)
}

func (c *coldHeld) runLess(i, j int) bool { return c.runs[i].head.key.compare(&c.runs[j].head.key) < 0 }
func (c *coldHeld) runSwap(i, j int)      { c.runs[i], c.runs[j] = c.runs[j], c.runs[i] }

// peek returns the first cold record in processing order, or nil, once
// every record before watermark is in a sealed run.
func (c *coldHeld) peek(watermark int64) *coldKey {
	if len(c.open.ends) > 0 && c.open.minTs < watermark {
		c.seal(false)
	}
	if len(c.runs) == 0 {
		return nil
	}
	return &c.runs[0].head.key
}

// pop removes the first record; it stays valid until the next pop. It
// fails only if a spilled run cannot be read back.
func (c *coldHeld) pop() (coldRecord, error) {
	run := c.runs[0]
	if !run.opened {
		if err := c.open1(run); err != nil {
			return coldRecord{}, err
		}
	}
	r := run.head
	c.n--
	if run.left--; run.left == 0 {
		// r aliases run.buf, which only a later pop or peek reuses.
		c.recycle(run.buf)
		last := len(c.runs) - 1
		c.runSwap(0, last)
		c.runs[last] = nil
		c.runs = c.runs[:last]
	} else {
		run.data = readColdRecord(run.data, &run.head)
	}
	siftDown(0, len(c.runs), c.runLess, c.runSwap)
	return r, nil
}

// open1 decompresses a run, reading it back from disk if it was spilled.
func (c *coldHeld) open1(run *coldRun) error {
	compressed := run.data
	if run.spilled.seg != nil {
		var err error
		if c.readBuf, err = c.spill.read(run.spilled, c.readBuf); err != nil {
			return err
		}
		compressed, run.spilled = c.readBuf, spillRef{}
	}
	n, err := s2.DecodedLen(compressed)
	if err != nil {
		panic("BUG: corrupt held run: " + err.Error())
	}
	raw, err := s2.Decode(c.buffer(n), compressed)
	if err != nil {
		panic("BUG: corrupt held run: " + err.Error())
	}
	run.buf = raw
	run.data, run.opened = readColdRecord(raw, &run.head), true
	return nil
}

// buffer returns n bytes for a run's records, spare or new.
func (c *coldHeld) buffer(n int) []byte {
	for i, b := range c.spare {
		if cap(b) >= n {
			last := len(c.spare) - 1
			c.spare[i], c.spare[last] = c.spare[last], nil
			c.spare = c.spare[:last]
			return b[:n]
		}
	}
	return make([]byte, n, n+n/8) // room for a slightly larger next run
}

// recycle keeps the buffer of a run read to its end for the next ones,
// unless enough are kept or it is a huge run's.
func (c *coldHeld) recycle(b []byte) {
	if b == nil || cap(b) > 2*coldRunBytes {
		return
	}
	if len(c.spare) < maxSpare {
		c.spare = append(c.spare, b)
	}
}

// close releases the spill files; the held events are dropped.
func (c *coldHeld) close() {
	c.spill.close(c.runs)
	c.runs, c.n, c.spare = nil, 0, nil
}
