package report

import (
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// parseDay reads the dates the queries return with toString.
func parseDay(s string) time.Time {
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		return time.Time{}
	}
	return t
}

func ratio(a, b uint64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// fmtCoord is an SVG coordinate: at most two decimals.
func fmtCoord(v float64) string {
	s := strconv.FormatFloat(v, 'f', 2, 64)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	if s == "-0" || s == "" {
		return "0"
	}
	return s
}

// fmtExact is a float in data attributes: the shortest text that reads back
// as the same float64.
func fmtExact(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

func fmtInt(v uint64) string { return groupThousands(strconv.FormatUint(v, 10)) }

func groupThousands(digits string) string {
	neg := strings.HasPrefix(digits, "-")
	digits = strings.TrimPrefix(digits, "-")
	var b strings.Builder
	for i, c := range digits {
		if i > 0 && (len(digits)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func fmtPct(r float64) string { return strconv.FormatFloat(r*100, 'f', 1, 64) + "%" }

func fmtPctShort(r float64) string {
	s := strconv.FormatFloat(r*100, 'f', 1, 64)
	return strings.TrimSuffix(s, ".0") + "%"
}

func fmtMoney(d decimal.Decimal) string {
	s := d.StringFixed(2)
	intPart, frac, _ := strings.Cut(s, ".")
	return groupThousands(intPart) + "." + frac
}

func fmtCompact(v float64) string {
	a := math.Abs(v)
	trim := func(x float64, suffix string) string {
		return strings.TrimSuffix(strconv.FormatFloat(x, 'f', 1, 64), ".0") + suffix
	}
	switch {
	case a >= 1e9:
		return trim(v/1e9, "G")
	case a >= 1e6:
		return trim(v/1e6, "M")
	case a >= 1e3:
		return trim(v/1e3, "k")
	default:
		return trim(v, "")
	}
}

// displaySource gives the empty source a name a reader can see.
func displaySource(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
