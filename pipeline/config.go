package pipeline

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Config configures a Pipeline. Zero values take DefaultConfig's values.
// Errors about it name the field (Brokers, ClickstreamTopic, SessionGap…):
// a command line maps them to its flags.
type Config struct {
	Brokers []string
	Group   string
	// InstanceID makes this member static (KIP-345): restarted within the
	// session timeout, it takes its partitions back without a rebalance.
	// Empty keeps dynamic membership.
	InstanceID        string
	ClickstreamTopic  string
	TransactionsTopic string
	DLQTopic          string
	Rules             Rules
	BatchRows         int           // flush when this many rows are buffered
	FlushInterval     time.Duration // flush rows at least this often
	// CheckpointInterval is how often the state is written and offsets
	// committed. Rows go out every FlushInterval before the state that
	// covers them: a replay after a crash writes them again, and every
	// table replaces such a row. Longer: less state written; shorter: a
	// shorter replay after a crash.
	CheckpointInterval time.Duration
	ShutdownTimeout    time.Duration // give up writing the last rows after this
	// MemoryLimit is the member's memory budget in bytes (0: DefaultMemoryLimit).
	// Buffered rows, decoded held events and fetched records are each
	// bounded by a share of it (budget.go), in bytes: a record can carry
	// 256 KiB. The Go GC's own limit is the caller's to set.
	MemoryLimit int64
	// SpillDir is where held events beyond a few thousand per partition
	// are kept, compressed, until the watermark releases them: on
	// real-time traffic, every event of the last Lateness. "" is
	// os.TempDir(). Use a disk, not a tmpfs (which is memory).
	SpillDir string
	Now      func() time.Time // nil: time.Now
	Logger   *slog.Logger     // nil: slog.Default() when New is called
	// Registerer receives the pipeline's metrics; nil means none.
	Registerer prometheus.Registerer
	// KafkaOpts are extra franz-go options: TLS, SASL, timeouts.
	KafkaOpts []kgo.Opt
}

// DefaultConfig returns the defaults: group "funnelhouse", topics
// "clickstream", "transactions" and "funnelhouse.dlq", SPEC's rules, a
// flush every 100,000 rows or 1s, a checkpoint every 10s, 60s to write the last rows on shutdown.
// Brokers has no default.
func DefaultConfig() Config {
	return Config{
		Group:              "funnelhouse",
		ClickstreamTopic:   "clickstream",
		TransactionsTopic:  "transactions",
		DLQTopic:           "funnelhouse.dlq",
		Rules:              DefaultRules(),
		BatchRows:          100_000,
		FlushInterval:      time.Second,
		CheckpointInterval: 10 * time.Second,
		ShutdownTimeout:    60 * time.Second,
	}
}

// setDefaults gives each zero field DefaultConfig's value.
func (c *Config) setDefaults() {
	d := DefaultConfig()
	orDefault(&c.Group, d.Group)
	orDefault(&c.ClickstreamTopic, d.ClickstreamTopic)
	orDefault(&c.TransactionsTopic, d.TransactionsTopic)
	orDefault(&c.DLQTopic, d.DLQTopic)
	orDefault(&c.Rules, d.Rules)
	if c.BatchRows <= 0 {
		c.BatchRows = d.BatchRows
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = d.FlushInterval
	}
	if c.CheckpointInterval <= 0 {
		c.CheckpointInterval = d.CheckpointInterval
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = d.ShutdownTimeout
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

func orDefault[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}

// Validate checks the configuration; errors name the field.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, fieldErrorf("Brokers is empty: give at least one host:port"))
	}
	if c.ClickstreamTopic == c.TransactionsTopic {
		errs = append(errs, fieldErrorf("ClickstreamTopic and TransactionsTopic are both %q: they must differ", c.ClickstreamTopic))
	}
	if c.DLQTopic == c.ClickstreamTopic || c.DLQTopic == c.TransactionsTopic {
		errs = append(errs, fieldErrorf("DLQTopic %q must differ from the input topics", c.DLQTopic))
	}
	errs = append(errs, c.ValidateNames(), c.Rules.Validate(), c.validateSpillDir())
	return errors.Join(errs...)
}

// validateSpillDir checks that held events can be spilled, before the
// first partition holds any.
func (c *Config) validateSpillDir() error {
	f, err := os.CreateTemp(c.SpillDir, "funnelhouse-check-*")
	if err != nil {
		return fieldWrap(err, "SpillDir %q is not a writable directory", cmp.Or(c.SpillDir, os.TempDir()))
	}
	f.Close()
	return os.Remove(f.Name())
}

// kafkaName is what Kafka accepts as a topic name, and what we accept as
// an instance id.
var kafkaName = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

func validKafkaName(s string) bool { return kafkaName.MatchString(s) && s != "." && s != ".." }

// ValidateNames checks the group, instance id and topic names before they
// reach a broker; errors name the field.
func (c *Config) ValidateNames() error {
	var errs []error
	if strings.TrimSpace(c.Group) == "" {
		errs = append(errs, fieldErrorf("Group is empty"))
	}
	if c.InstanceID != "" && !validKafkaName(c.InstanceID) {
		errs = append(errs, fieldErrorf("invalid InstanceID %q: it has 1-249 letters, digits, '.', '_' or '-'", c.InstanceID))
	}
	for _, t := range []struct{ field, name string }{
		{"ClickstreamTopic", c.ClickstreamTopic}, {"TransactionsTopic", c.TransactionsTopic}, {"DLQTopic", c.DLQTopic},
	} {
		if !validKafkaName(t.name) {
			errs = append(errs, fieldErrorf("invalid %s %q: a Kafka topic name has 1-249 letters, digits, '.', '_' or '-'", t.field, t.name))
		}
	}
	return errors.Join(errs...)
}

// FieldError is an error whose own text names Config fields (Brokers,
// ClickstreamTopic, SessionGap…), so that a command line can put its
// flags in their place. Err, when set, is the cause; its text follows.
type FieldError struct {
	Text string
	Err  error
}

func (e *FieldError) Error() string {
	if e.Err == nil {
		return e.Text
	}
	return e.Text + ": " + e.Err.Error()
}

func (e *FieldError) Unwrap() error { return e.Err }

func fieldErrorf(format string, args ...any) error {
	return &FieldError{Text: fmt.Sprintf(format, args...)}
}

// fieldWrap is fieldErrorf with a cause.
func fieldWrap(err error, format string, args ...any) error {
	return &FieldError{Text: fmt.Sprintf(format, args...), Err: err}
}

// Rules are the event-time parameters of SPEC §3–5.
type Rules struct {
	SessionGap  time.Duration // default 30m
	Lateness    time.Duration // default 10m
	ChurnAfter  time.Duration // default 90 days
	IdleAdvance time.Duration // default 30s
	// ForgetAfter: a visitor inactive this long leaves memory and is
	// loaded back from pipeline_state if it returns (see forget.go); 0
	// keeps every visitor in memory. Default 30 days.
	ForgetAfter time.Duration
}

// DefaultRules returns SPEC's defaults.
func DefaultRules() Rules {
	return Rules{SessionGap: 30 * time.Minute, Lateness: 10 * time.Minute, ChurnAfter: 90 * 24 * time.Hour, IdleAdvance: 30 * time.Second, ForgetAfter: 30 * 24 * time.Hour}
}

// Validate checks the rules; errors name the field.
func (r Rules) Validate() error {
	var errs []error
	check := func(field string, d time.Duration) {
		if d <= 0 {
			errs = append(errs, fieldErrorf("%s must be positive, got %s", field, d))
		}
	}
	check("SessionGap", r.SessionGap)
	check("Lateness", r.Lateness)
	check("ChurnAfter", r.ChurnAfter)
	check("IdleAdvance", r.IdleAdvance)
	if r.ForgetAfter < 0 {
		errs = append(errs, fieldErrorf("ForgetAfter must not be negative, got %s", r.ForgetAfter))
	}
	return errors.Join(errs...)
}

// ParseDuration accepts Go durations ("30m", "2160h") and whole or
// fractional days ("90d", "1.5d").
func ParseDuration(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(days, 64)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q: want e.g. 30m, 2160h or 90d", s)
		}
		return time.Duration(n * float64(24*time.Hour)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q: want e.g. 30m, 2160h or 90d", s)
	}
	return d, nil
}
