package clickhouse

import (
	"testing"

	ch "github.com/ClickHouse/clickhouse-go/v2"
)

// The sink keeps an idle connection per INSERT in flight (two) and
// compresses in 1 MiB pieces, unless the DSN asks for something else.
func TestKeepBuffersSmall(t *testing.T) {
	for _, c := range []struct {
		dsn               string
		idle, compression int
	}{
		{"clickhouse://default@127.0.0.1:9000/db", 2, 1 << 20},
		{"clickhouse://default@127.0.0.1:9000/db?max_idle_conns=3&max_compression_buffer=2048", 3, 2048},
	} {
		opts, err := ch.ParseDSN(c.dsn)
		if err != nil {
			t.Fatal(err)
		}
		keepBuffersSmall(opts)
		if opts.MaxIdleConns != c.idle || opts.MaxCompressionBuffer != c.compression {
			t.Errorf("%s: %d idle connections, compression buffer %d; want %d and %d", c.dsn, opts.MaxIdleConns, opts.MaxCompressionBuffer, c.idle, c.compression)
		}
	}
}
