package schemas

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"testing"
)

func TestSpecialMask(t *testing.T) {
	interesting := []byte{0, 1, 0x1f, 0x20, 0x21, '"', '#', '[', '\\', ']', 0x7f, 0x80, 0xa2, 0xdc, 0xff}
	checkMask(t, "specialMask", specialMask, func(c byte) bool { return strByte[c] }, rand.NewPCG(3, 4), interesting)
}

// TestStopMask checks that stopMask finds the first byte that is '"', '\\',
// a control character or not ASCII, like TestSpecialMask does for specialMask.
func TestStopMask(t *testing.T) {
	interesting := []byte{0, 1, 0x1f, 0x20, 0x21, '"', '#', '[', '\\', ']', 0x7f, 0x80, 0xa2, 0xc3, 0xdc, 0xff}
	checkMask(t, "stopMask", stopMask, func(c byte) bool { return strByte[c] || c >= 0x80 }, rand.NewPCG(5, 6), interesting)
}

// checkMask compares a word-at-a-time mask (the high bit of each byte that
// stops a scan, little-endian) with stops, one byte at a time, on random
// words made half of interesting bytes.
func checkMask(t *testing.T, name string, mask func(uint64) uint64, stops func(byte) bool, src rand.Source, interesting []byte) {
	t.Helper()
	r := rand.New(src)
	var b [8]byte
	for range 200000 {
		for i := range b {
			if r.IntN(2) == 0 {
				b[i] = interesting[r.IntN(len(interesting))]
			} else {
				b[i] = byte(r.Uint32())
			}
		}
		want := 8
		for i, c := range b {
			if stops(c) {
				want = i
				break
			}
		}
		got := 8
		if m := mask(binary.LittleEndian.Uint64(b[:])); m != 0 {
			got = bits.TrailingZeros64(m) / 8
		}
		if got != want {
			t.Fatalf("%s(% x): first stop byte %d, want %d", name, b, got, want)
		}
	}
}
