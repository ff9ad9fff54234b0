// Package sql holds funnelhouse's ClickHouse objects as versioned migrations
// embedded in the binary (SPEC §6) and applies them.
//
// Each file migrations/NNNN_name.sql is one version. Statements are separated
// by a semicolon at the end of a line and name objects as {db}.table; every
// statement is idempotent (IF NOT EXISTS), so a migration interrupted half
// way is simply applied again (ADD COLUMN IF NOT EXISTS, which 18.16 does
// not parse, is run by execStatement). Every statement runs on ClickHouse
// 18.16.1 and on current releases.
package sql

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migration is one versioned file of statements.
type Migration struct {
	Version    int
	Name       string
	Statements []string // with {db} still in place
}

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// ValidateIdentifier checks a database or table name before it is put into
// SQL text: letters, digits and underscores, not starting with a digit.
func ValidateIdentifier(kind, name string) error {
	if !identifier.MatchString(name) {
		return fmt.Errorf("invalid %s name %q: use 1-64 letters, digits or underscores, not starting with a digit", kind, name)
	}
	return nil
}

// Migrations returns the embedded migrations in version order.
func Migrations() ([]Migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var out []Migration
	for _, path := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(path, "migrations/"), ".sql")
		num, name, ok := strings.Cut(base, "_")
		version, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("BUG: migration file %s is not named NNNN_name.sql", path)
		}
		text, err := migrationFiles.ReadFile(path)
		if err != nil {
			return nil, err
		}
		out = append(out, Migration{Version: version, Name: name, Statements: splitStatements(string(text))})
	}
	return out, nil
}

// splitStatements splits on ";" at the end of a line and drops comment-only
// chunks.
func splitStatements(text string) []string {
	var out []string
	for _, chunk := range strings.Split(text, ";\n") {
		var b strings.Builder
		for _, line := range strings.Split(chunk, "\n") {
			if t := strings.TrimSpace(line); t == "" || strings.HasPrefix(t, "--") {
				continue
			}
			b.WriteString(line)
			b.WriteByte('\n')
		}
		if s := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(b.String()), ";")); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Migrate creates database db when missing and applies every migration not
// yet recorded in db.schema_migrations. Running it again changes nothing.
// It returns the versions it applied.
func Migrate(ctx context.Context, conn driver.Conn, db string) ([]int, error) {
	if err := ValidateIdentifier("database", db); err != nil {
		return nil, err
	}
	migrations, err := Migrations()
	if err != nil {
		return nil, err
	}
	setup := []string{
		"CREATE DATABASE IF NOT EXISTS " + db,
		"CREATE TABLE IF NOT EXISTS " + db + ".schema_migrations (version UInt32, name String, applied_at DateTime('UTC')) ENGINE = MergeTree ORDER BY version",
	}
	for _, stmt := range setup {
		if err := conn.Exec(ctx, stmt); err != nil {
			return nil, fmt.Errorf("cannot prepare database %s: %w", db, err)
		}
	}
	done, err := AppliedVersions(ctx, conn, db)
	if err != nil {
		return nil, err
	}
	var applied []int
	for _, m := range migrations {
		if done[m.Version] {
			continue
		}
		for i, stmt := range m.Statements {
			if err := execStatement(ctx, conn, db, strings.ReplaceAll(stmt, "{db}", db)); err != nil {
				return applied, fmt.Errorf("cannot apply migration %04d_%s, statement %d: %w", m.Version, m.Name, i+1, err)
			}
		}
		// INSERT … SELECT: 18.16 hangs on INSERT … VALUES sent by the driver.
		record := fmt.Sprintf("INSERT INTO %s.schema_migrations SELECT %d, '%s', now()", db, m.Version, m.Name)
		if err := conn.Exec(ctx, record); err != nil {
			return applied, fmt.Errorf("cannot record migration %04d_%s: %w", m.Version, m.Name, err)
		}
		applied = append(applied, m.Version)
	}
	return applied, nil
}

// Applied is the line that says what Migrate applied to db.
func Applied(db string, applied []int) string {
	if len(applied) == 0 {
		return fmt.Sprintf("database %s is up to date", db)
	}
	return fmt.Sprintf("database %s: applied migrations %v", db, applied)
}

// AppliedVersions reads the versions recorded in db.schema_migrations.
func AppliedVersions(ctx context.Context, conn driver.Conn, db string) (map[int]bool, error) {
	rows, err := conn.Query(ctx, "SELECT DISTINCT version FROM "+db+".schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("cannot read %s.schema_migrations: %w", db, err)
	}
	defer rows.Close()
	done := map[int]bool{}
	for rows.Next() {
		var v uint32
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		done[int(v)] = true
	}
	return done, rows.Err()
}

// CheckMigrated returns an error naming the first pending migration when db
// lacks any: the one message for every command that needs the tables.
func CheckMigrated(ctx context.Context, conn driver.Conn, db string) error {
	pending, err := Pending(ctx, conn, db)
	if err != nil {
		return err
	}
	if len(pending) > 0 {
		return fmt.Errorf("database %s lacks %d migration(s), the first %04d_%s: run `funnelhouse migrate`", db, len(pending), pending[0].Version, pending[0].Name)
	}
	return nil
}

// Distributed reports whether db was migrated for a cluster (migrate
// --cluster): its tables are then Distributed over replicated local ones.
func Distributed(ctx context.Context, conn driver.Conn, db string) (bool, error) {
	var engine string
	if err := conn.QueryRow(ctx, "SELECT engine FROM system.tables WHERE database = ? AND name = 'events'", db).Scan(&engine); err != nil {
		return false, fmt.Errorf("cannot read the engine of %s.events: %w", db, err)
	}
	return engine == "Distributed", nil
}

// Pending reports the migrations not yet applied to db.
func Pending(ctx context.Context, conn driver.Conn, db string) ([]Migration, error) {
	migrations, err := Migrations()
	if err != nil {
		return nil, err
	}
	done, err := AppliedVersions(ctx, conn, db)
	if err != nil {
		return migrations, nil // no schema_migrations table: nothing applied
	}
	var out []Migration
	for _, m := range migrations {
		if !done[m.Version] {
			out = append(out, m)
		}
	}
	return out, nil
}

// addColumnIfNotExists matches ALTER TABLE db.table ADD COLUMN IF NOT
// EXISTS name …, which ClickHouse 18.16 does not parse.
var addColumnIfNotExists = regexp.MustCompile(`(?is)^(ALTER\s+TABLE\s+(\w+)\.(\w+)\s+ADD\s+COLUMN)\s+IF\s+NOT\s+EXISTS(\s+(\w+)\s.*)$`)

// execStatement runs one statement of a migration. ADD COLUMN IF NOT EXISTS
// is run the same way on every version: skipped when system.columns lists
// the column, else run without IF NOT EXISTS (a syntax error on 18.16), so
// that a migration interrupted half way is applied again safely.
func execStatement(ctx context.Context, conn driver.Conn, db, stmt string) error {
	m := addColumnIfNotExists.FindStringSubmatch(stmt)
	if m == nil {
		return conn.Exec(ctx, stmt)
	}
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM system.columns WHERE database = ? AND table = ? AND name = ?",
		m[2], m[3], m[5]).Scan(&n); err != nil {
		return fmt.Errorf("cannot look up column %s.%s.%s: %w", m[2], m[3], m[5], err)
	}
	if n > 0 {
		return nil
	}
	return conn.Exec(ctx, m[1]+m[4])
}
