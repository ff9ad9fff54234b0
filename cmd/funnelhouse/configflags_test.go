package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/funnelhouse/funnelhouse/pipeline"
)

// TestFlagErrors checks that the config fields a pipeline error names
// become run's flags, and that a broker's words stay as they are.
func TestFlagErrors(t *testing.T) {
	cfg := pipeline.DefaultConfig()
	cfg.InstanceID = "a b"
	cfg.Rules.SessionGap = 0
	err := flagErrors(cfg.Validate())
	for _, want := range []string{"--brokers is empty", `invalid --instance-id "a b"`, "--session-gap must be positive"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want it to contain %q", err, want)
		}
	}
	wrapped := &pipeline.FieldError{Text: "Brokers 127.0.0.1:9092", Err: fmt.Errorf("cannot join: %w", kerr.GroupAuthorizationFailed)}
	got := flagErrors(wrapped).Error()
	if !strings.HasPrefix(got, "--brokers 127.0.0.1:9092: cannot join: ") || !strings.Contains(got, "Group authorization failed") {
		t.Errorf("got %q, want the flag in front and the broker's words kept", got)
	}
	if flagErrors(nil) != nil {
		t.Error("flagErrors(nil) != nil")
	}
}
