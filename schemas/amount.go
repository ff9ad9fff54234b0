package schemas

// amount of order_* events, and the exact decimals that it and the small
// integers (rating, nps, csat) are read as: never through float64, since
// Amount is a Decimal(18,4).

// maxAmountUnits is 99999999999999.9999, the largest Amount (Decimal(18,4)).
const maxAmountUnits = 999999999999999999

// decimal is a JSON number split exactly as sig × 10^exp, where sig is the
// significand without leading or trailing zeros. Nothing goes through float64.
type decimal struct {
	neg  bool
	zero bool
	nd   int    // significant digits
	sig  uint64 // the significand, exact when nd <= 19
	exp  int
}

// maxExp saturates absurd exponents (1e999999999999) while keeping exp
// arithmetic far from overflow.
const maxExp = 1 << 30

// parseDecimal parses JSON number text (-?int[.frac][(e|E)[+-]digits]).
func parseDecimal(s []byte) (decimal, bool) {
	var d decimal
	i := 0
	if i < len(s) && s[i] == '-' {
		d.neg = true
		i++
	}
	intLo := i
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	intPart := s[intLo:i]
	if len(intPart) == 0 || len(intPart) > 1 && intPart[0] == '0' {
		return d, false
	}
	var frac []byte
	if i < len(s) && s[i] == '.' {
		i++
		lo := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		frac = s[lo:i]
		if len(frac) == 0 {
			return d, false
		}
	}
	e := 0
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		eneg := false
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			eneg = s[i] == '-'
			i++
		}
		lo := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			if e < maxExp {
				e = e*10 + int(s[i]-'0')
			}
			i++
		}
		if i == lo {
			return d, false
		}
		if eneg {
			e = -e
		}
	}
	if i != len(s) {
		return d, false
	}

	// The digits are intPart followed by frac; digit k of them is at(k).
	n := len(intPart) + len(frac)
	at := func(k int) byte {
		if k < len(intPart) {
			return intPart[k]
		}
		return frac[k-len(intPart)]
	}
	first := 0
	for first < n && at(first) == '0' {
		first++
	}
	if first == n {
		d.zero = true
		return d, true
	}
	last := n - 1
	for at(last) == '0' {
		last--
	}
	d.nd = last - first + 1
	// value = digits[first..last] × 10^(e - len(frac) + trailing zeros)
	d.exp = e - len(frac) + (n - 1 - last)
	if d.nd <= 19 {
		for k := first; k <= last; k++ {
			d.sig = d.sig*10 + uint64(at(k)-'0')
		}
	}
	return d, true
}

// pow10 holds 10^0 … 10^18.
var pow10 = [...]uint64{
	1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18,
}

// parseAmount converts JSON number text exactly to Amount units
// (ten-thousandths). The error is the rule broken, nil when ok.
func parseAmount(raw []byte) (Amount, string) {
	d, ok := parseDecimal(raw)
	switch {
	case !ok:
		return 0, "not a JSON number"
	case d.zero:
		return 0, "" // also "-0"
	case d.neg:
		return 0, "must be >= 0"
	}
	scale := d.exp + 4 // units = sig × 10^scale
	if scale < 0 {
		return 0, "at most 4 decimal places"
	}
	if d.nd+scale > 18 {
		return 0, "must be <= 99999999999999.9999"
	}
	// nd+scale <= 18 keeps sig × 10^scale below 10^18: no overflow.
	return Amount(d.sig * pow10[scale]), ""
}

// decodeAmount checks amount, which must be there when required.
func (fv *fieldValues) decodeAmount(required bool) (Amount, *Error) {
	if fv.absent(fAmount) {
		if required {
			return 0, missing(fAmount)
		}
		return 0, nil
	}
	if k := fv.vals[fAmount].kind; k != kNumber {
		return 0, wrongJSONType(fAmount, "a JSON number", k)
	}
	raw := fv.text(fAmount)
	a, msg := parseAmount(raw)
	if msg != "" {
		return 0, errorf(ReasonBadValue, "field amount: %s, got %s", msg, quote(raw))
	}
	return a, nil
}
