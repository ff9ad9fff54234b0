package traffic

import (
	"math/bits"
	"math/rand/v2"
	"strconv"
)

// This file holds the low-level helpers of the generator: a seeded random
// source and byte-buffer JSON writing. Nothing here goes through
// encoding/json, time.Format or floating-point arithmetic whose rounding
// could differ between platforms, so a seed gives the same bytes everywhere.

// rng is the generator's only source of randomness.
type rng struct{ pcg rand.PCG }

func newRNG(seed int64) *rng {
	r := &rng{}
	r.pcg.Seed(uint64(seed), 0x66756e6e656c686f) // "funnelho"
	return r
}

func (r *rng) u64() uint64 { return r.pcg.Uint64() }

// intn returns a number in [0, n); n must be > 0. The bias of the
// multiply-shift reduction (n / 2^64) is far below anything a test can see.
func (r *rng) intn(n int) int {
	hi, _ := bits.Mul64(r.u64(), uint64(n))
	return int(hi)
}

// between returns a number in [lo, hi); hi must be > lo.
func (r *rng) between(lo, hi int64) int64 {
	h, _ := bits.Mul64(r.u64(), uint64(hi-lo))
	return lo + int64(h)
}

// chance returns true with probability p.
func (r *rng) chance(p float64) bool {
	return float64(r.u64()>>11)*(1.0/(1<<53)) < p
}

// pick returns one of the weights' indexes with probability weight/sum.
func (r *rng) pick(weights []int) int {
	sum := 0
	for _, w := range weights {
		sum += w
	}
	x := r.intn(sum)
	for i, w := range weights {
		if x < w {
			return i
		}
		x -= w
	}
	return len(weights) - 1
}

// civil converts days since 1970-01-01 to a proleptic Gregorian date
// (Howard Hinnant's days_from_civil inverse).
func civil(days int64) (year, month, day int64) {
	z := days + 719468
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era--
	}
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y := yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d := doy - (153*mp+2)/5 + 1
	m := mp + 3
	if m > 12 {
		m -= 12
	}
	if m <= 2 {
		y++
	}
	return y, m, d
}

// appendDigits appends n zero-padded to width digits.
func appendDigits(b []byte, n int64, width int) []byte {
	var tmp [20]byte
	i := len(tmp)
	for ; width > 0 || n > 0; width-- {
		i--
		tmp[i] = byte('0' + n%10)
		n /= 10
	}
	return append(b, tmp[i:]...)
}

// tsFormat is how a ts is written.
type tsFormat uint8

const (
	tsMillisZ  tsFormat = iota // "2025-01-03T10:00:00.123Z"
	tsOffset                   // "2025-01-03T12:00:00.123+02:00", offset from the event
	tsEpochMs                  // 1735898400123 (a JSON integer)
	tsMicrosZ                  // "2025-01-03T10:00:00.123456Z": more digits, truncated by the decoder
	tsSecondsZ                 // "2025-01-03T10:00:00Z": only for ts on a whole second
)

// appendRFC3339 appends ms (epoch milliseconds) as an RFC 3339 string literal
// shifted to offsetMin minutes east of UTC. fraction false omits the
// fraction (ms must then be a whole second); sub >= 0 appends three more
// digits after the milliseconds (microseconds the decoder truncates).
func appendRFC3339(b []byte, ms int64, offsetMin int, fraction bool, sub int64) []byte {
	local := ms + int64(offsetMin)*60_000
	days := local / 86_400_000
	rem := local % 86_400_000
	if rem < 0 {
		days--
		rem += 86_400_000
	}
	y, m, d := civil(days)
	b = append(b, '"')
	b = appendDigits(b, y, 4)
	b = append(b, '-')
	b = appendDigits(b, m, 2)
	b = append(b, '-')
	b = appendDigits(b, d, 2)
	b = append(b, 'T')
	b = appendDigits(b, rem/3_600_000, 2)
	b = append(b, ':')
	b = appendDigits(b, rem/60_000%60, 2)
	b = append(b, ':')
	b = appendDigits(b, rem/1000%60, 2)
	if fraction {
		b = append(b, '.')
		b = appendDigits(b, rem%1000, 3)
		if sub >= 0 {
			b = appendDigits(b, sub, 3)
		}
	}
	switch {
	case offsetMin == 0:
		b = append(b, 'Z')
	default:
		sign := byte('+')
		if offsetMin < 0 {
			sign = '-'
			offsetMin = -offsetMin
		}
		b = append(b, sign)
		b = appendDigits(b, int64(offsetMin/60), 2)
		b = append(b, ':')
		b = appendDigits(b, int64(offsetMin%60), 2)
	}
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string literal. s is valid UTF-8 (the
// generator's own text); quotes, backslashes and control characters are
// escaped, everything else is copied as is.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// amountFormat is how an amount is written; all are exact JSON numbers.
type amountFormat uint8

const (
	amountPlain     amountFormat = iota // 49.99, 12.3456, 7 (trailing zeros dropped, at least two decimals unless whole)
	amountPadded                        // 49.9900 (four decimals)
	amountExponent                      // 4999e-2
	amountTrailing0                     // 49.990000 (more zeros than the limit of four decimals, still exact)
)

// appendAmount appends units (ten-thousandths, >= 0) as a JSON number.
func appendAmount(b []byte, units int64, f amountFormat) []byte {
	whole, frac := units/10000, units%10000
	switch f {
	case amountExponent:
		m, e := units, -4
		for e < 0 && m%10 == 0 {
			m /= 10
			e++
		}
		b = strconv.AppendInt(b, m, 10)
		if e < 0 {
			b = append(b, 'e', '-')
			b = strconv.AppendInt(b, int64(-e), 10)
		}
		return b
	case amountPadded:
		b = strconv.AppendInt(b, whole, 10)
		b = append(b, '.')
		return appendDigits(b, frac, 4)
	case amountTrailing0:
		b = strconv.AppendInt(b, whole, 10)
		b = append(b, '.')
		b = appendDigits(b, frac, 4)
		return append(b, "00"...)
	}
	b = strconv.AppendInt(b, whole, 10)
	if frac == 0 {
		return b
	}
	b = append(b, '.')
	digits := 4
	for digits > 2 && frac%10 == 0 {
		frac /= 10
		digits--
	}
	return appendDigits(b, frac, digits)
}

// base36 appends x in base 36.
func appendBase36(b []byte, x uint64) []byte { return strconv.AppendUint(b, x, 36) }

// mix is a bijective 64-bit mixer (the splitmix64 finaliser): distinct
// inputs give distinct outputs, so ids derived from counters stay unique.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
