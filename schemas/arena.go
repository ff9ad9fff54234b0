package schemas

import "unsafe"

// Arena hands out strings copied into large append-only chunks, so that a
// stream of short strings costs one allocation per chunk rather than one
// per string, and the garbage collector tracks a few large objects rather
// than millions of small ones.
//
// A byte of a chunk is written once, before the string over it is handed
// out, and never again: that is what makes unsafe.String sound here. A
// string keeps its whole chunk alive, so an arena suits strings of similar
// lifetime (the events of one fetch, the rows of one batch); copy a string
// that must outlive its neighbours by much.
type Arena struct {
	chunk     []byte
	ChunkSize int // 0: DefaultChunkSize
}

// DefaultChunkSize holds about 250 typical events.
const DefaultChunkSize = 64 << 10

// String returns a string with the bytes of b.
func (a *Arena) String(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	dst := a.alloc(len(b))
	copy(dst, b)
	return unsafe.String(&dst[0], len(dst))
}

// Append returns a string of the bytes that appendTo adds to an empty
// slice of capacity max; appendTo must not add more than max bytes.
func (a *Arena) Append(max int, appendTo func([]byte) []byte) string {
	if max > a.size()/4 {
		return string(appendTo(make([]byte, 0, max)))
	}
	dst := appendTo(a.alloc(max)[:0])
	if len(dst) > max {
		panic("BUG: Arena.Append: appendTo wrote past max")
	}
	a.chunk = a.chunk[:len(a.chunk)-max+len(dst)] // give back the rest
	if len(dst) == 0 {
		return ""
	}
	return unsafe.String(&dst[0], len(dst))
}

func (a *Arena) size() int {
	if a.ChunkSize == 0 {
		return DefaultChunkSize
	}
	return a.ChunkSize
}

// alloc returns n fresh bytes; strings over a quarter of a chunk get their
// own allocation so that they waste no chunk.
func (a *Arena) alloc(n int) []byte {
	size := a.size()
	if n > size/4 {
		return make([]byte, n)
	}
	if cap(a.chunk)-len(a.chunk) < n {
		a.chunk = make([]byte, 0, size)
	}
	start := len(a.chunk)
	a.chunk = a.chunk[:start+n]
	return a.chunk[start : start+n : start+n]
}
