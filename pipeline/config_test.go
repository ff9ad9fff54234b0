package pipeline

import (
	"reflect"
	"strings"
	"testing"
)

func TestConfigValidateNamesTheField(t *testing.T) {
	cfg := Config{Brokers: nil, ClickstreamTopic: "a", TransactionsTopic: "a"}
	cfg.setDefaults()
	cfg.Rules.Lateness = -1
	err := cfg.Validate()
	for _, want := range []string{"Brokers is empty", "ClickstreamTopic and TransactionsTopic", "Lateness must be positive"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
}

func TestValidateNames(t *testing.T) {
	f := func(mutate func(*Config), want string) {
		t.Helper()
		cfg := DefaultConfig()
		cfg.Brokers = []string{"127.0.0.1:9092"}
		mutate(&cfg)
		err := cfg.Validate()
		switch {
		case want == "" && err != nil:
			t.Errorf("unexpected error %v", err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("got %v, want an error containing %q", err, want)
		}
	}
	f(func(*Config) {}, "")
	f(func(c *Config) { c.InstanceID = "pod-0.funnelhouse_1" }, "")
	f(func(c *Config) { c.Group = " " }, "Group is empty")
	f(func(c *Config) { c.InstanceID = "a b" }, `invalid InstanceID "a b"`)
	f(func(c *Config) { c.ClickstreamTopic = "bad topic" }, `invalid ClickstreamTopic "bad topic"`)
	f(func(c *Config) { c.DLQTopic = ".." }, `invalid DLQTopic ".."`)
	f(func(c *Config) { c.TransactionsTopic = strings.Repeat("t", 250) }, "invalid TransactionsTopic")
}

// TestDefaults checks that a zero Config takes DefaultConfig's values.
func TestDefaults(t *testing.T) {
	var c Config
	c.setDefaults()
	if c.Now == nil || c.Logger == nil {
		t.Fatal("setDefaults left Now or Logger nil")
	}
	c.Now, c.Logger = nil, nil
	d := DefaultConfig()
	if !reflect.DeepEqual(c, d) {
		t.Errorf("zero Config after setDefaults:\n%+v\nDefaultConfig:\n%+v", c, d)
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]string{"90d": "2160h0m0s", "30m": "30m0s", "1.5d": "36h0m0s", "2160h": "2160h0m0s"} {
		d, err := ParseDuration(in)
		if err != nil || d.String() != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %s", in, d, err, want)
		}
	}
	for _, in := range []string{"", "d", "90", "x30m"} {
		if _, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) succeeded", in)
		}
	}
}
