package rows

import (
	"math"
	"unsafe"
)

// texts is the text of a table's rows in a batch: chunks filled in order,
// which never move once allocated. One growing slice was copied at every
// doubling (growslice under put was 2.4 % of a member's CPU at 5M events)
// and left up to half its capacity unused; a batch got ready for the
// next flush reserved the whole previous text in advance as well. Chunks
// grow from 16 KiB to 1 MiB, so a table with little text keeps little.
type texts struct {
	chunks [][]byte // chunks[:used] hold text; the rest are kept for reuse
	used   int
	bytes  int // text held, over the chunks in use
}

// Text is a string kept in its rows' text: its chunk (above
// textChunkBits of off), where it starts in the chunk, and its length.
type Text struct{ off, len uint32 }

const (
	textChunkBits = 20
	textChunkMax  = 1 << textChunkBits // a chunk's capacity, unless one string is longer
	textChunkMin  = textChunkMax >> 6
	maxTextChunks = 1 << (32 - textChunkBits)
)

// put copies s into the text.
func (x *texts) put(s string) Text {
	if len(s) == 0 {
		return Text{}
	}
	if x.used == 0 || cap(x.chunks[x.used-1])-len(x.chunks[x.used-1]) < len(s) {
		x.next(len(s))
	}
	c := &x.chunks[x.used-1]
	pos := len(*c)
	*c = append(*c, s...) // within capacity: the chunk does not move
	x.bytes += len(s)
	return Text{off: uint32(x.used-1)<<textChunkBits | uint32(pos), len: uint32(len(s))}
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

// str is the string of t, aliasing the text: valid until reset, which
// reuses the chunks.
func (x *texts) str(t Text) string {
	if t.len == 0 {
		return ""
	}
	c := x.chunks[t.off>>textChunkBits]
	return unsafe.String(&c[t.off&(textChunkMax-1)], int(t.len))
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
