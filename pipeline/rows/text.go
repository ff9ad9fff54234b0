package rows

import (
	"math"
	"unsafe"
)

// texts is the text of a table's rows in a batch: chunks filled in order,
// which never move once allocated. One growing slice was copied at every
// doubling (growslice under the text appends was 2.4 % of a member's CPU
// at 5M events)
// and left up to half its capacity unused; a batch got ready for the
// next flush reserved the whole previous text in advance as well. Chunks
// grow from 16 KiB to 1 MiB, so a table with little text keeps little.
type texts struct {
	chunks [][]byte // chunks[:used] hold text; the rest are kept for reuse
	used   int
	bytes  int // text held, over the chunks in use
}

const (
	textChunkBits = 20
	textChunkMax  = 1 << textChunkBits // a chunk's capacity, unless one string is longer
	textChunkMin  = textChunkMax >> 6
	maxTextChunks = 1 << (32 - textChunkBits)
)

// alloc returns n bytes of the text to fill, and where they start: their
// chunk's index above textChunkBits, their position in it below.
func (x *texts) alloc(n int) (uint32, []byte) {
	if n == 0 {
		return 0, nil
	}
	// A position must stay below textChunkMax, even in a kept chunk made
	// larger for one long string: beyond, it would spill into the index.
	if x.used == 0 || min(cap(x.chunks[x.used-1]), textChunkMax)-len(x.chunks[x.used-1]) < n {
		x.next(n)
	}
	c := &x.chunks[x.used-1]
	pos := len(*c)
	*c = (*c)[:pos+n] // within capacity: the chunk does not move
	x.bytes += n
	return uint32(x.used-1)<<textChunkBits | uint32(pos), (*c)[pos : pos+n]
}

// next starts a chunk with room for need bytes: a kept one if it has the
// room, else a new one twice the size of the one before (a string longer
// than textChunkMax gets a chunk of its own, at position 0).
func (x *texts) next(need int) {
	if x.used < len(x.chunks) && cap(x.chunks[x.used]) >= need {
		x.used++
		return
	}
	if x.used >= maxTextChunks || need > math.MaxUint32 {
		panic("BUG: a batch's text is over 4 GiB; the row byte bounds should have flushed it long before")
	}
	c := make([]byte, 0, max(need, textChunkMin<<min(x.used, 6)))
	if x.used < len(x.chunks) {
		x.chunks[x.used] = c // a kept chunk too small for need: replaced
	} else {
		x.chunks = append(x.chunks, c)
	}
	x.used++
}

// at is the bytes start..end of those alloc returned at off, as a string
// aliasing the text: valid until reset, which reuses the chunks.
func (x *texts) at(off uint32, start, end int) string {
	if start == end {
		return ""
	}
	c := x.chunks[off>>textChunkBits]
	return unsafe.String(&c[int(off&(textChunkMax-1))+start], end-start)
}

// reset empties the text and keeps its chunks.
func (x *texts) reset() {
	for i := range x.chunks[:x.used] {
		x.chunks[i] = x.chunks[i][:0]
	}
	x.used, x.bytes = 0, 0
}

// capBytes is the memory the chunks keep.
func (x *texts) capBytes() int64 {
	n := 0
	for _, c := range x.chunks {
		n += cap(c)
	}
	return int64(n)
}
