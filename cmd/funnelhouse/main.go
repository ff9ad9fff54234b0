// Command funnelhouse is the customer-lifecycle metrics pipeline: Kafka in,
// sessions and lifecycle stages out, ClickHouse views for BI. This package
// only wires the stages together; see README.md for the architecture.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/funnelhouse/funnelhouse/pipeline"
)

type command struct {
	summary string
	run     func(ctx context.Context, args []string) error
}

var commands = map[string]command{
	"run":        {"run the pipeline: consume Kafka, write ClickHouse", runCmd},
	"migrate":    {"create or upgrade the ClickHouse tables and views", migrateCmd},
	"generate":   {"produce synthetic, realistic traffic to Kafka", generateCmd},
	"demo":       {"embedded broker + local ClickHouse + generated traffic + pipeline, then the tables", demoCmd},
	"broker":     {"run the embedded Kafka-protocol broker on a loopback port", brokerCmd},
	"bench":      {"end-to-end events/s against the peers, verified against the expected numbers", benchCmd},
	"ablation":   {"ClickHouse CPU per table and view: the pipeline's rows inserted step by step", ablationCmd},
	"naive-peer": {"the straightforward implementation bench compares against", naivePeerCmd},
	"report":     {"the metrics as terminal tables and a self-contained HTML page with charts", reportCmd},
	"status":     {"per partition: owner, offsets, lag, checkpoint age, state; per view: rows, newest day", statusCmd},
	"checkpoint": {"show a partition's stored state, or discard one that cannot be restored", checkpointCmd},
}

func usage() {
	fmt.Fprintf(os.Stderr, "funnelhouse: customer-lifecycle metrics from Kafka to ClickHouse.\n\nUsage: funnelhouse <command> [flags]\n\nCommands:\n")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-9s %s\n", n, commands[n].summary)
	}
	fmt.Fprintf(os.Stderr, "\nRun `funnelhouse <command> --help` for a command's flags.\n")
}

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage()
		if len(os.Args) < 2 {
			os.Exit(2)
		}
		return
	}
	cmd, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "funnelhouse: unknown command %q\n\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := cmd.run(ctx, os.Args[2:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintf(os.Stderr, "funnelhouse %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

// newFlagSet returns a flag set whose usage explains the command.
func newFlagSet(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: funnelhouse %s [flags]\n\n%s\n\nFlags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseWithEnv parses args, then fills every flag not given on the command
// line from FUNNELHOUSE_<FLAG> (upper case, '-' as '_'), so that secrets and
// deployment settings need not appear in a process listing; a password
// given on the command line is logged as a warning (argvSecretWarnings).
func parseWithEnv(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (flags only; see --help)", fs.Arg(0))
	}
	// Before the environment fills the rest: fs.Visit sees only the flags
	// set on the command line (Value.Set below does not mark a flag set).
	warnArgvSecrets(fs)
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] {
			return
		}
		env := envName(f.Name)
		if v, ok := os.LookupEnv(env); ok {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("invalid %s=%q (for --%s): %w", env, v, f.Name, err))
			}
		}
	})
	return errors.Join(errs...)
}

func envName(flagName string) string {
	return "FUNNELHOUSE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// durationFlag accepts Go durations and days ("90d").
type durationFlag struct{ d *time.Duration }

func (f durationFlag) String() string {
	if f.d == nil {
		return ""
	}
	return formatDuration(*f.d)
}

func (f durationFlag) Set(s string) error {
	d, err := pipeline.ParseDuration(s)
	if err != nil {
		return err
	}
	*f.d = d
	return nil
}

func formatDuration(d time.Duration) string {
	if d >= 24*time.Hour && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

func durationVar(fs *flag.FlagSet, p *time.Duration, name string, value time.Duration, usage string) {
	*p = value
	fs.Var(durationFlag{p}, name, usage)
}

// listFlag is a comma-separated list.
type listFlag struct{ l *[]string }

func (f listFlag) String() string {
	if f.l == nil {
		return ""
	}
	return strings.Join(*f.l, ",")
}

func (f listFlag) Set(s string) error {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	*f.l = out
	return nil
}
