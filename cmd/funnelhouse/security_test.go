package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/funnelhouse/funnelhouse/bench/traffic"
	chsink "github.com/funnelhouse/funnelhouse/sinks/clickhouse"
)

// TestSecurityFlagErrors checks the errors a user sees for wrong security
// settings: each names the flag at fault.
func TestSecurityFlagErrors(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string // "" = valid
	}{
		{nil, nil, ""},
		{[]string{"--kafka-tls", "--kafka-sasl-mechanism", "plain", "--kafka-sasl-user", "u"}, map[string]string{"FUNNELHOUSE_KAFKA_SASL_PASSWORD": "p"}, ""},
		// PLAIN sends the password as it is: not without TLS, unless the
		// override says so. SCRAM never sends it.
		{[]string{"--kafka-sasl-mechanism", "plain", "--kafka-sasl-user", "u"}, map[string]string{"FUNNELHOUSE_KAFKA_SASL_PASSWORD": "p"},
			"--kafka-sasl-mechanism plain without --kafka-tls sends the password in clear text: add --kafka-tls, use scram-sha-256 or scram-sha-512, or accept it with --kafka-allow-plaintext-password"},
		{[]string{"--kafka-sasl-mechanism", "PLAIN", "--kafka-sasl-user", "u", "--kafka-sasl-password-file", pwFile}, nil, "--kafka-sasl-mechanism plain without --kafka-tls"},
		{[]string{"--kafka-sasl-mechanism", "plain", "--kafka-sasl-user", "u", "--kafka-allow-plaintext-password"}, map[string]string{"FUNNELHOUSE_KAFKA_SASL_PASSWORD": "p"}, ""},
		{[]string{"--kafka-sasl-mechanism", "plain", "--kafka-sasl-user", "u"}, map[string]string{"FUNNELHOUSE_KAFKA_SASL_PASSWORD": "p", "FUNNELHOUSE_KAFKA_ALLOW_PLAINTEXT_PASSWORD": "true"}, ""},
		{[]string{"--kafka-sasl-mechanism", "scram-sha-256", "--kafka-sasl-user", "u"}, map[string]string{"FUNNELHOUSE_KAFKA_SASL_PASSWORD": "p"}, ""},
		{[]string{"--kafka-sasl-mechanism", "scram-sha-512", "--kafka-sasl-user", "u", "--kafka-sasl-password-file", pwFile}, nil, ""},
		{[]string{"--kafka-sasl-mechanism", "gssapi", "--kafka-sasl-user", "u", "--kafka-sasl-password", "p"}, nil, `invalid --kafka-sasl-mechanism "gssapi"`},
		{[]string{"--kafka-sasl-mechanism", "plain"}, nil, "--kafka-sasl-mechanism plain needs --kafka-sasl-user and a password"},
		{[]string{"--kafka-sasl-user", "u"}, nil, "--kafka-sasl-mechanism is not"},
		{[]string{"--kafka-sasl-mechanism", "plain", "--kafka-sasl-user", "u", "--kafka-sasl-password", "p", "--kafka-sasl-password-file", pwFile}, nil, "--kafka-sasl-password and --kafka-sasl-password-file are both set"},
		{[]string{"--kafka-sasl-mechanism", "plain", "--kafka-sasl-user", "u", "--kafka-sasl-password-file", filepath.Join(dir, "missing")}, nil, "cannot read --kafka-sasl-password-file"},
		{[]string{"--kafka-tls-ca", notPEM}, nil, "--kafka-tls-* options are set but --kafka-tls is not"},
		{[]string{"--kafka-tls", "--kafka-tls-ca", notPEM}, nil, "--kafka-tls-ca " + notPEM + " holds no PEM certificate"},
		{[]string{"--kafka-tls", "--kafka-tls-cert", notPEM}, nil, "--kafka-tls-cert and --kafka-tls-key go together"},
		{[]string{"--clickhouse-tls", "--clickhouse-tls-ca", filepath.Join(dir, "missing")}, nil, "cannot read --clickhouse-tls-ca"},
		{[]string{"--clickstream-topic", "bad topic"}, nil, `invalid --clickstream-topic "bad topic"`},
		{[]string{"--dlq-topic", ".."}, nil, `invalid --dlq-topic ".."`},
		{[]string{"--clickhouse", "clickhouse://default@127.0.0.1:1/bad-db"}, nil, `invalid database name "bad-db"`},
	} {
		for k, v := range tc.env {
			t.Setenv(k, v)
		}
		err := checkRunFlags(tc.args)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v: unexpected error %v", tc.args, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v: got error %v, want one containing %q", tc.args, err, tc.want)
		}
		for k := range tc.env {
			os.Unsetenv(k)
		}
	}
}

// TestArgvPasswordWarnings checks the warning `run` and `migrate` log for a
// password given on the command line (which `ps` shows to every user): it
// names the flag and the safer alternative; the same password from the
// environment or a file draws no warning.
func TestArgvPasswordWarnings(t *testing.T) {
	var logged bytes.Buffer
	defer slog.SetDefault(slog.Default())
	slog.SetDefault(slog.New(slog.NewTextHandler(&logged, nil)))
	const (
		chWarn   = "--clickhouse-password on the command line is visible to every user of this machine (ps, /proc); use FUNNELHOUSE_CLICKHOUSE_PASSWORD or --clickhouse-password-file instead"
		saslWarn = "--kafka-sasl-password on the command line is visible to every user of this machine (ps, /proc); use FUNNELHOUSE_KAFKA_SASL_PASSWORD or --kafka-sasl-password-file instead"
		dsnWarn  = "the --clickhouse DSN on the command line carries a password, visible to every user of this machine (ps, /proc); give the DSN without it and the password as FUNNELHOUSE_CLICKHOUSE_PASSWORD or --clickhouse-password-file"
	)
	for _, tc := range []struct {
		command string
		args    []string
		env     map[string]string
		want    []string // warnings, in flag order
	}{
		{"run", []string{"--clickhouse-password", "s3cret"}, nil, []string{chWarn}},
		{"migrate", []string{"--clickhouse-password", "s3cret"}, nil, []string{chWarn}},
		{"run", []string{"--kafka-sasl-password", "s3cret", "--kafka-sasl-mechanism", "scram-sha-512"}, nil, []string{saslWarn}},
		{"run", []string{"--clickhouse", "clickhouse://fh:s3cret@ch:9000/funnelhouse"}, nil, []string{dsnWarn}},
		{"migrate", []string{"--clickhouse", "clickhouse://fh:s3cret@ch:9000/funnelhouse"}, nil, []string{dsnWarn}},
		{"migrate", []string{"--clickhouse", "clickhouse://fh@ch:9000/funnelhouse?password=s3cret"}, nil, []string{dsnWarn}},
		{"run", []string{"--clickhouse", "clickhouse://fh:s3cret@ch:9000/funnelhouse", "--clickhouse-password", "x", "--kafka-sasl-password", "y"}, nil, []string{dsnWarn, chWarn, saslWarn}},
		// Not in argv: no warning.
		{"run", []string{"--clickhouse", "clickhouse://fh@ch:9000/funnelhouse"}, map[string]string{"FUNNELHOUSE_CLICKHOUSE_PASSWORD": "s3cret", "FUNNELHOUSE_KAFKA_SASL_PASSWORD": "s3cret"}, nil},
		{"migrate", nil, map[string]string{"FUNNELHOUSE_CLICKHOUSE": "clickhouse://fh:s3cret@ch:9000/funnelhouse"}, nil},
		{"run", []string{"--clickhouse-password-file", "/run/secrets/pw", "--kafka-sasl-password-file", "/run/secrets/sasl"}, nil, nil},
		{"run", []string{"--clickhouse-password", ""}, nil, nil},
	} {
		for k, v := range tc.env {
			t.Setenv(k, v)
		}
		fs := newFlagSet(tc.command, "")
		switch tc.command {
		case "run":
			var f pipelineFlags
			f.register(fs, true)
		case "migrate":
			var f clickhouseFlags
			f.register(fs)
		}
		logged.Reset()
		if err := parseWithEnv(fs, tc.args); err != nil {
			t.Fatalf("%s %v: %v", tc.command, tc.args, err)
		}
		if got := argvSecretWarnings(fs); !slices.Equal(got, tc.want) {
			t.Errorf("%s %v (env %v): warnings\n%q\nwant\n%q", tc.command, tc.args, tc.env, got, tc.want)
		}
		// parseWithEnv logged each of them.
		if n := strings.Count(logged.String(), "level=WARN"); n != len(tc.want) {
			t.Errorf("%s %v: %d warnings logged, want %d:\n%s", tc.command, tc.args, n, len(tc.want), logged.String())
		}
		for _, w := range tc.want {
			if !strings.Contains(logged.String(), strings.ReplaceAll(w, `"`, `\"`)) {
				t.Errorf("%s %v: log lacks %q:\n%s", tc.command, tc.args, w, logged.String())
			}
		}
		for k := range tc.env {
			os.Unsetenv(k)
		}
	}
}

// TestPprofOnlyWithFlag starts `run` against the embedded broker and the
// test ClickHouse: without --pprof, /debug/pprof/ is 404 on the metrics
// address (which a container binds to 0.0.0.0); with it, the profiles are
// served. /metrics is served either way.
func TestPprofOnlyWithFlag(t *testing.T) {
	dsn := testDSN(t, "fh_pprof")
	ctx := context.Background()
	b := startBroker(t, 1, "pp.clickstream", "pp.transactions", "pp.dlq")
	if err := migrate(ctx, chsink.Endpoint{DSN: dsn}); err != nil {
		t.Fatal(err)
	}
	for _, extra := range [][]string{nil, {"--pprof"}} {
		addr := freeAddr(t)
		args := append([]string{"--brokers", strings.Join(b.Addrs(), ","), "--clickhouse", dsn, "--group", "pprof",
			"--clickstream-topic", "pp.clickstream", "--transactions-topic", "pp.transactions", "--dlq-topic", "pp.dlq",
			"--metrics-addr", addr}, extra...)
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- runCmd(runCtx, args) }()
		status := func(path string) int {
			resp, err := http.Get("http://" + addr + path)
			if err != nil {
				return 0
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		deadline := time.Now().Add(30 * time.Second)
		for status("/healthz") != http.StatusOK {
			select {
			case err := <-done:
				cancel()
				t.Fatalf("run %v ended before serving /healthz: %v", extra, err)
			case <-time.After(50 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				cancel()
				t.Fatalf("run %v: nothing serves /healthz on %s after 30 s", extra, addr)
			}
		}
		want := http.StatusNotFound
		if len(extra) > 0 {
			want = http.StatusOK
		}
		if got := status("/debug/pprof/"); got != want {
			t.Errorf("run %v: GET /debug/pprof/ is %d, want %d", extra, got, want)
		}
		if got := status("/metrics"); got != http.StatusOK {
			t.Errorf("run %v: GET /metrics is %d, want 200", extra, got)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run %v: %v", extra, err)
		}
	}
}

// checkRunFlags parses run's flags and builds what run builds from them,
// without connecting anywhere.
func checkRunFlags(args []string) error {
	fs := newFlagSet("run", "")
	var f pipelineFlags
	f.register(fs, true)
	if err := parseWithEnv(fs, args); err != nil {
		return err
	}
	if _, err := f.kafka.opts(); err != nil {
		return err
	}
	e, err := f.endpoint()
	if err != nil {
		return err
	}
	if err := flagErrors(f.cfg.ValidateNames()); err != nil {
		return err
	}
	if strings.Contains(e.DSN, "bad-db") { // Connect validates the name before dialling
		_, _, err := chsink.Connect(context.Background(), e)
		return err
	}
	return nil
}

// selfSigned returns a server TLS config for 127.0.0.1 and the PEM of its
// certificate, to trust as a CA.
func selfSigned(t *testing.T) (*tls.Config, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "funnelhouse test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	cert, err := tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, certPEM
}

// TestKafkaTLSAndSASL runs the pipeline against a broker that speaks only
// TLS and requires SASL, configured through run's own flags with the
// password from the environment, for PLAIN and SCRAM-SHA-256 (1M events
// each, views and accounting exact); and checks
// that a wrong password fails with a clear error.
func TestKafkaTLSAndSASL(t *testing.T) {
	if testing.Short() {
		t.Skip("1M events per mechanism")
	}
	serverTLS, caPEM := selfSigned(t)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	clientTLS := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	for _, mech := range []struct {
		flag, kfake string
		sasl        kgo.Opt
	}{
		{"plain", "PLAIN", kgo.SASL(plain.Auth{User: "fh", Pass: "s3cret"}.AsMechanism())},
		{"scram-sha-256", "SCRAM-SHA-256", kgo.SASL(scram.Auth{User: "fh", Pass: "s3cret"}.AsSha256Mechanism())},
	} {
		t.Run(mech.flag, func(t *testing.T) {
			var r e2eRun
			fs := newFlagSet("run", "")
			r.pf.register(fs, true)
			t.Setenv("FUNNELHOUSE_KAFKA_SASL_PASSWORD", "s3cret")
			args := []string{"--clickhouse", testDSN(t, "fh_sasl_"+strings.ReplaceAll(mech.flag, "-", "_")),
				"--kafka-tls", "--kafka-tls-ca", caFile, "--kafka-sasl-mechanism", mech.flag, "--kafka-sasl-user", "fh",
				"--idle-advance", "2s", "--flush-interval", "300ms", "--metrics-addr", "", "--group", "sasl"}
			if err := parseWithEnv(fs, args); err != nil {
				t.Fatal(err)
			}
			r.Partitions = 2
			r.Quiet = true
			r.Traffic = traffic.Config{Seed: 9, Events: 1_000_000}.WithDefaults()
			r.BrokerConfig.TLS = serverTLS
			r.BrokerConfig.Users = [][3]string{{mech.kfake, "fh", "s3cret"}}
			r.BrokerConfig.ClientOpts = []kgo.Opt{kgo.DialTLSConfig(clientTLS), mech.sasl}
			err := r.run(context.Background())
			if r.Broker != nil {
				defer r.Broker.Close()
			}
			if err != nil {
				t.Fatal(err)
			}

			// A wrong password fails within the start-up check, naming the
			// brokers and hinting at the credentials.
			t.Setenv("FUNNELHOUSE_KAFKA_SASL_PASSWORD", "wrong")
			var bad pipelineFlags
			fs = newFlagSet("run", "")
			bad.register(fs, true)
			if err := parseWithEnv(fs, append(args, "--brokers", strings.Join(r.Broker.Addrs(), ","))); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			start := time.Now()
			err = runPipeline(ctx, &bad, nil)
			if err == nil || !strings.Contains(err.Error(), "SASL") {
				t.Errorf("wrong password: got %v, want an error about SASL credentials", err)
			}
			t.Logf("wrong password: %v (after %s)", err, time.Since(start).Round(time.Millisecond))
		})
	}
}

// TestClickHousePassword connects as a user with a password (set up by
// deploy/clickhouse/users.xml) with the password from a file, and checks
// the error for a wrong one.
func TestClickHousePassword(t *testing.T) {
	base := testDSN(t, "unused")
	base = base[:strings.LastIndex(base, "/")]
	dsn := strings.Replace(base, "default@", "funnelhouse_test@", 1) + "/fh_password"
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("s3cret-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := clickhouseFlags{dsn: dsn, passwordFile: pwFile}
	e, err := f.endpoint()
	if err != nil {
		t.Fatal(err)
	}
	if err := migrate(context.Background(), e); err != nil {
		t.Fatalf("with the right password from a file: %v", err)
	}
	e.Password = "wrong"
	_, _, err = chsink.Connect(context.Background(), e)
	if err == nil || !strings.Contains(err.Error(), "cannot reach ClickHouse at") || !strings.Contains(strings.ToLower(err.Error()), "password") {
		t.Errorf("wrong password: got %v, want an error naming the server and the password", err)
	}
}

// TestClickHouseTLS gives a ClickHouse of the test's own a secure native
// port (config.d/tls.xml, a self-signed certificate) and migrates through
// it with --clickhouse-tls and --clickhouse-tls-ca; TLS to the plain port
// fails with a clear error.
func TestClickHouseTLS(t *testing.T) {
	plainDSN, dir, stop, start := ownClickHouseDir(t)
	serverTLS, caPEM := selfSigned(t)
	keyDER, err := x509.MarshalECPrivateKey(serverTLS.Certificates[0].PrivateKey.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"server.crt": caPEM,
		"server.key": pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, "etc", name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	securePort := freeAddr(t)[len("127.0.0.1:"):]
	tlsXML := `<?xml version="1.0"?>
<yandex>
    <tcp_port_secure>` + securePort + `</tcp_port_secure>
    <openSSL>
        <server>
            <certificateFile>` + dir + `/etc/server.crt</certificateFile>
            <privateKeyFile>` + dir + `/etc/server.key</privateKeyFile>
            <verificationMode>none</verificationMode>
            <loadDefaultCAFile>false</loadDefaultCAFile>
            <disableProtocols>sslv2,sslv3,tlsv1,tlsv1_1</disableProtocols>
        </server>
    </openSSL>
</yandex>
`
	if err := os.MkdirAll(filepath.Join(dir, "etc", "config.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "etc", "config.d", "tls.xml"), []byte(tlsXML), 0o644); err != nil {
		t.Fatal(err)
	}
	stop()
	start()
	waitListening(t, "127.0.0.1:"+securePort)
	caFile := filepath.Join(dir, "etc", "server.crt")

	plainPort := plainDSN[strings.LastIndex(plainDSN, ":")+1 : strings.LastIndex(plainDSN, "/")]
	secureDSN := strings.Replace(strings.TrimRight(plainDSN, "/"), ":"+plainPort, ":"+securePort, 1) + "/fh_tls"
	fs := newFlagSet("migrate", "")
	var f clickhouseFlags
	f.register(fs)
	if err := parseWithEnv(fs, []string{"--clickhouse", secureDSN, "--clickhouse-tls", "--clickhouse-tls-ca", caFile}); err != nil {
		t.Fatal(err)
	}
	e, err := f.endpoint()
	if err != nil {
		t.Fatal(err)
	}
	if err := migrate(context.Background(), e); err != nil {
		t.Fatalf("migrate over TLS: %v", err)
	}
	e.DSN = strings.TrimRight(plainDSN, "/") + "/fh_tls"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, _, err := chsink.Connect(ctx, e); err == nil || !strings.Contains(err.Error(), "ClickHouse") {
		t.Errorf("TLS to the plain port: got %v, want a connection error", err)
	} else {
		t.Logf("TLS to the plain port: %v", err)
	}
}
