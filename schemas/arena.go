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
	chunk []byte
}

// arenaChunk holds about 250 typical events.
const arenaChunk = 64 << 10

// String returns a string with the bytes of b. Strings over a quarter of
// a chunk get their own allocation, so that they waste no chunk.
func (a *Arena) String(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if len(b) > arenaChunk/4 {
		return string(b)
	}
	if cap(a.chunk)-len(a.chunk) < len(b) {
		a.chunk = make([]byte, 0, arenaChunk)
	}
	start := len(a.chunk)
	a.chunk = append(a.chunk, b...) // within capacity: the chunk never moves
	return unsafe.String(&a.chunk[start], len(b))
}
