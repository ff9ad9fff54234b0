package verify

import (
	"testing"

	"github.com/funnelhouse/funnelhouse/schemas"
)

func TestParseAmount(t *testing.T) {
	f := func(s string, want schemas.Amount, ok bool) {
		t.Helper()
		got, err := parseAmount(s)
		if (err == nil) != ok || got != want {
			t.Errorf("parseAmount(%q) = %v, %v; want %v, ok %v", s, got, err, want, ok)
		}
	}
	f("12.5000", 125000, true)
	f("-3.25", -32500, true)
	f("0", 0, true)
	f("1.23456", 0, false)
	f("1e3", 0, false)
	f("99999999999999999999", 0, false)
}
