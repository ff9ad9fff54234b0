package schemas

import (
	"fmt"
	"math/big"
	"math/rand/v2"
	"testing"
)

func TestParseAmount(t *testing.T) {
	ok := map[string]Amount{
		"0": 0, "0.0": 0, "-0": 0, "-0.0e5": 0, "0e-99": 0, "0.00000000001": -1, // -1: rejected, see below
		"1": 10000, "1.5": 15000, "1.50000": 15000, "12.5": 125000, "0.0001": 1, "0.00010000": 1,
		"1e-4": 1, "1E-4": 1, "100e-6": 1, "12.5e2": 12500000, "1e3": 10000000, "1E+3": 10000000,
		"0.1e1": 10000, "5e-1": 5000, "123456789.1234": 1234567891234, "9.99": 99900,
		"99999999999999.9999": 999999999999999999, "999999999999999999e-4": 999999999999999999, "12.3456e1": 1234560,
		"0.000000000000000000000000001e30": 10000000, "00": -1,
	}
	for lit, want := range ok {
		got, msg := parseAmount([]byte(lit))
		if want < 0 {
			if msg == "" {
				t.Errorf("parseAmount(%s) = %d, want an error", lit, got)
			}
			continue
		}
		if msg != "" || got != want {
			t.Errorf("parseAmount(%s) = %d, %q, want %d", lit, got, msg, want)
		}
	}
	bad := map[string]string{
		"1.00001": "at most 4 decimal places", "1e-5": "at most 4 decimal places", "0.00001": "at most 4 decimal places",
		"1.234567e1": "at most 4 decimal places", "1e-999999999999999": "at most 4 decimal places",
		"-1": "must be >= 0", "-1.5": "must be >= 0", "-0.00001": "must be >= 0",
		"100000000000000": "must be <= 99999999999999.9999", "1e14": "must be <= 99999999999999.9999",
		"99999999999999.99991e1": "must be <= 99999999999999.9999", "1e999999999999999999": "must be <= 99999999999999.9999",
		"": "not a JSON number", "1.": "not a JSON number", ".5": "not a JSON number", "1e": "not a JSON number",
		"1x": "not a JSON number", "NaN": "not a JSON number", "-": "not a JSON number",
	}
	for lit, want := range bad {
		got, msg := parseAmount([]byte(lit))
		if msg != want {
			t.Errorf("parseAmount(%q) = %d, %q, want error %q", lit, got, msg, want)
		}
	}
}

// TestParseAmountMatchesBigRat compares parseAmount with exact rational
// arithmetic on random literals.
func TestParseAmountMatchesBigRat(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	digits := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte('0' + r.IntN(10))
		}
		return string(b)
	}
	maxUnits := new(big.Rat).SetInt64(maxAmountUnits)
	for range 20000 {
		lit := ""
		if r.IntN(8) == 0 {
			lit = "-"
		}
		ip := digits(1 + r.IntN(16))
		for len(ip) > 1 && ip[0] == '0' {
			ip = ip[1:]
		}
		lit += ip
		if r.IntN(2) == 0 {
			lit += "." + digits(1+r.IntN(8))
		}
		if r.IntN(2) == 0 {
			lit += fmt.Sprintf("e%d", r.IntN(30)-15)
		}
		got, msg := parseAmount([]byte(lit))

		v, ok := new(big.Rat).SetString(lit)
		if !ok {
			t.Fatalf("big.Rat cannot parse %s", lit)
		}
		units := new(big.Rat).Mul(v, big.NewRat(AmountScale, 1))
		var want string
		switch {
		case v.Sign() < 0:
			want = "must be >= 0"
		case !units.IsInt():
			want = "at most 4 decimal places"
		case units.Cmp(maxUnits) > 0:
			want = "must be <= 99999999999999.9999"
		}
		if msg != want {
			t.Fatalf("parseAmount(%s) = %d, %q, want %q", lit, got, msg, want)
		}
		if want == "" && units.Num().Int64() != int64(got) {
			t.Fatalf("parseAmount(%s) = %d, want %s", lit, got, units.Num())
		}
	}
}
