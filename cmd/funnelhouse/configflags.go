package main

import (
	"errors"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/funnelhouse/funnelhouse/pipeline"
)

// configFlags maps the pipeline.Config fields that library errors name to
// the flags of `run` that set them.
var configFlags = map[string]string{
	"Brokers":           "--brokers",
	"Group":             "--group",
	"InstanceID":        "--instance-id",
	"ClickstreamTopic":  "--clickstream-topic",
	"TransactionsTopic": "--transactions-topic",
	"DLQTopic":          "--dlq-topic",
	"SessionGap":        "--session-gap",
	"Lateness":          "--lateness",
	"ChurnAfter":        "--churn-after",
	"IdleAdvance":       "--idle-advance",
	"ForgetAfter":       "--forget-after",
	"SpillDir":          "--spill-dir",
}

// configField matches a field of configFlags as a word.
var configField = regexp.MustCompile(`\b(` + strings.Join(slices.Sorted(maps.Keys(configFlags)), "|") + `)\b`)

// flagErrors rewrites the config fields that a pipeline.FieldError names
// into the flags a user sets: "Brokers is empty" becomes "--brokers is
// empty". Other text (a broker's or driver's words) is kept as it is.
func flagErrors(err error) error {
	if err == nil {
		return nil
	}
	if msg := flagText(err); msg != err.Error() {
		return flagError{msg, err}
	}
	return err
}

func flagText(err error) string {
	msg := err.Error()
	var fe *pipeline.FieldError
	switch e := err.(type) {
	case *pipeline.FieldError:
		t := configField.ReplaceAllStringFunc(e.Text, func(field string) string { return configFlags[field] })
		if e.Err != nil {
			t += ": " + flagText(e.Err)
		}
		return t
	case interface{ Unwrap() []error }:
		var msgs []string
		for _, e := range e.Unwrap() {
			msgs = append(msgs, flagText(e))
		}
		return strings.Join(msgs, "\n")
	}
	if inner := errors.Unwrap(err); inner != nil && errors.As(err, &fe) && strings.HasSuffix(msg, inner.Error()) {
		return msg[:len(msg)-len(inner.Error())] + flagText(inner)
	}
	return msg
}

// flagError is an error with its text in flag terms; it wraps the
// original.
type flagError struct {
	msg string
	err error
}

func (e flagError) Error() string { return e.msg }
func (e flagError) Unwrap() error { return e.err }
