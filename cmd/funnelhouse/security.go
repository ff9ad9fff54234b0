package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// tlsFlags configure TLS to Kafka or ClickHouse.
type tlsFlags struct {
	enabled            bool
	caFile             string
	certFile, keyFile  string
	serverName         string
	insecureSkipVerify bool
}

func (f *tlsFlags) register(fs *flag.FlagSet, prefix, what string) {
	fs.BoolVar(&f.enabled, prefix+"tls", false, "connect to "+what+" over TLS")
	fs.StringVar(&f.caFile, prefix+"tls-ca", "", "PEM `file` of the CA that signed "+what+"'s certificate (default: the system's)")
	fs.StringVar(&f.certFile, prefix+"tls-cert", "", "PEM `file` of a client certificate, for mutual TLS (with --"+prefix+"tls-key)")
	fs.StringVar(&f.keyFile, prefix+"tls-key", "", "PEM `file` of the client certificate's key")
	fs.StringVar(&f.serverName, prefix+"tls-server-name", "", "server name to verify (default: the host dialled)")
	fs.BoolVar(&f.insecureSkipVerify, prefix+"tls-insecure-skip-verify", false, "do not verify "+what+"'s certificate (testing only)")
}

// config returns the TLS configuration, nil when TLS is off. Errors name
// the flag and the file.
func (f *tlsFlags) config(prefix string) (*tls.Config, error) {
	if !f.enabled {
		if f.caFile != "" || f.certFile != "" || f.keyFile != "" || f.insecureSkipVerify {
			return nil, fmt.Errorf("--%stls-* options are set but --%stls is not", prefix, prefix)
		}
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: f.serverName, InsecureSkipVerify: f.insecureSkipVerify}
	if f.caFile != "" {
		pem, err := os.ReadFile(f.caFile)
		if err != nil {
			return nil, fmt.Errorf("cannot read --%stls-ca: %w", prefix, err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--%stls-ca %s holds no PEM certificate", prefix, f.caFile)
		}
	}
	if (f.certFile == "") != (f.keyFile == "") {
		return nil, fmt.Errorf("--%stls-cert and --%stls-key go together: give both or neither", prefix, prefix)
	}
	if f.certFile != "" {
		cert, err := tls.LoadX509KeyPair(f.certFile, f.keyFile)
		if err != nil {
			return nil, fmt.Errorf("cannot load --%stls-cert/--%stls-key: %w", prefix, prefix, err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// kafkaSecurity are the flags for TLS and SASL to Kafka.
type kafkaSecurity struct {
	tls            tlsFlags
	mechanism      string
	user           string
	password       string
	passwordFile   string
	allowPlaintext bool // SASL PLAIN without TLS
}

func (k *kafkaSecurity) register(fs *flag.FlagSet) {
	k.tls.register(fs, "kafka-", "the Kafka brokers")
	fs.StringVar(&k.mechanism, "kafka-sasl-mechanism", "", "SASL `mechanism`: plain, scram-sha-256 or scram-sha-512 (default: no SASL)")
	fs.StringVar(&k.user, "kafka-sasl-user", "", "SASL user name")
	fs.StringVar(&k.password, "kafka-sasl-password", "", "SASL password; prefer FUNNELHOUSE_KAFKA_SASL_PASSWORD or --kafka-sasl-password-file, which stay out of process listings")
	fs.StringVar(&k.passwordFile, "kafka-sasl-password-file", "", "read the SASL password from this `file` (e.g. a mounted Secret)")
	fs.BoolVar(&k.allowPlaintext, "kafka-allow-plaintext-password", false, "allow --kafka-sasl-mechanism plain without --kafka-tls, which sends the password in clear text (a trusted network only)")
}

// opts returns the franz-go options for TLS and SASL.
func (k *kafkaSecurity) opts() ([]kgo.Opt, error) {
	var opts []kgo.Opt
	tc, err := k.tls.config("kafka-")
	if err != nil {
		return nil, err
	}
	if tc != nil {
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	mech := strings.ToLower(k.mechanism)
	if mech == "" {
		if k.user != "" || k.password != "" || k.passwordFile != "" {
			return nil, errors.New("--kafka-sasl-user or a password is set but --kafka-sasl-mechanism is not")
		}
		return opts, nil
	}
	password, err := secret("kafka-sasl-password", k.password, k.passwordFile)
	if err != nil {
		return nil, err
	}
	if k.user == "" || password == "" {
		return nil, fmt.Errorf("--kafka-sasl-mechanism %s needs --kafka-sasl-user and a password (FUNNELHOUSE_KAFKA_SASL_PASSWORD or --kafka-sasl-password-file)", k.mechanism)
	}
	switch mech {
	case "plain":
		// PLAIN sends the password as it is; SCRAM never sends it.
		if tc == nil && !k.allowPlaintext {
			return nil, errors.New("--kafka-sasl-mechanism plain without --kafka-tls sends the password in clear text: add --kafka-tls, use scram-sha-256 or scram-sha-512, or accept it with --kafka-allow-plaintext-password")
		}
		opts = append(opts, kgo.SASL(plain.Auth{User: k.user, Pass: password}.AsMechanism()))
	case "scram-sha-256":
		opts = append(opts, kgo.SASL(scram.Auth{User: k.user, Pass: password}.AsSha256Mechanism()))
	case "scram-sha-512":
		opts = append(opts, kgo.SASL(scram.Auth{User: k.user, Pass: password}.AsSha512Mechanism()))
	default:
		return nil, fmt.Errorf("invalid --kafka-sasl-mechanism %q: want plain, scram-sha-256 or scram-sha-512", k.mechanism)
	}
	return opts, nil
}

// saslHint says what to check when SASL is on and the broker closed the
// connection: brokers often close it without a word on a failed SASL
// handshake. Other errors, and nil, pass unchanged.
func (k *kafkaSecurity) saslHint(err error) error {
	if err == nil || k.mechanism == "" || !strings.Contains(err.Error(), "EOF") {
		return err
	}
	return fmt.Errorf("%w (with SASL %s as user %q: a connection closed by the broker usually means a wrong user, password or mechanism; check --kafka-sasl-user, the password and --kafka-sasl-mechanism)", err, k.mechanism, k.user)
}

// secret returns a password given directly or in a file (trailing newline
// removed); giving both is an error.
func secret(flagName, value, file string) (string, error) {
	if file == "" {
		return value, nil
	}
	if value != "" {
		return "", fmt.Errorf("--%s and --%s-file are both set: give one", flagName, flagName)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("cannot read --%s-file: %w", flagName, err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// argvSecretWarnings returns a warning for each password given on the
// command line (parsed into fs), where any user of the machine sees it in
// `ps` and /proc/PID/cmdline: --clickhouse-password, --kafka-sasl-password,
// and a password in the --clickhouse DSN. Each names the flag and the safer
// alternative. Values from FUNNELHOUSE_* variables are not flagged: those
// are not in the process listing.
func argvSecretWarnings(fs *flag.FlagSet) []string {
	var warnings []string
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "clickhouse-password", "kafka-sasl-password":
			if f.Value.String() != "" {
				warnings = append(warnings, fmt.Sprintf("--%s on the command line is visible to every user of this machine (ps, /proc); use %s or --%s-file instead", f.Name, envName(f.Name), f.Name))
			}
		case "clickhouse":
			if dsnHasPassword(f.Value.String()) {
				warnings = append(warnings, "the --clickhouse DSN on the command line carries a password, visible to every user of this machine (ps, /proc); give the DSN without it and the password as FUNNELHOUSE_CLICKHOUSE_PASSWORD or --clickhouse-password-file")
			}
		}
	})
	return warnings
}

// dsnHasPassword reports whether a DSN holds a password, as user:pass@ or
// as a password parameter.
func dsnHasPassword(dsn string) bool {
	u, err := url.Parse(dsn)
	if err != nil {
		// Unparsable: look for user:pass@ by hand rather than stay silent.
		_, rest, ok := strings.Cut(dsn, "://")
		userinfo, _, at := strings.Cut(rest, "@")
		return ok && at && strings.Contains(userinfo, ":")
	}
	if _, has := u.User.Password(); has {
		return true
	}
	return u.Query().Get("password") != ""
}

// warnArgvSecrets logs argvSecretWarnings; parseWithEnv calls it for every
// command.
func warnArgvSecrets(fs *flag.FlagSet) {
	for _, w := range argvSecretWarnings(fs) {
		slog.Warn("password in argv: " + w)
	}
}
