package report

import (
	"fmt"
	"testing"

	"github.com/shopspring/decimal"
)

func TestFormat(t *testing.T) {
	for in, want := range map[string]string{"0": "0.00", "1234567.891": "1,234,567.89", "-1234.5": "-1,234.50", "999.999": "1,000.00"} {
		if got := fmtMoney(decimal.RequireFromString(in)); got != want {
			t.Errorf("fmtMoney(%s) = %s, want %s", in, got, want)
		}
	}
	if got := fmtInt(1234567); got != "1,234,567" {
		t.Errorf("fmtInt = %s", got)
	}
	if got := fmt.Sprint(fmtCompact(25000), " ", fmtCompact(1.5e6), " ", fmtCompact(12)); got != "25k 1.5M 12" {
		t.Errorf("fmtCompact = %s", got)
	}
}
