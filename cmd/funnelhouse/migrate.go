package main

import (
	"context"
	"fmt"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	chsink "github.com/funnelhouse/funnelhouse/sinks/clickhouse"
	fhsql "github.com/funnelhouse/funnelhouse/sql"
)

// connect opens a connection to the ClickHouse of the flags and returns it
// with the database's name; the caller closes it.
func (f *clickhouseFlags) connect(ctx context.Context) (driver.Conn, string, error) {
	e, err := f.endpoint()
	if err != nil {
		return nil, "", err
	}
	return chsink.Connect(ctx, e)
}

func migrateCmd(ctx context.Context, args []string) error {
	fs := newFlagSet("migrate", "Create or upgrade funnelhouse's ClickHouse database, tables and views.\nIdempotent: applies only the versions not yet recorded in <database>.schema_migrations.")
	var f clickhouseFlags
	f.register(fs)
	if err := parseWithEnv(fs, args); err != nil {
		return err
	}
	e, err := f.endpoint()
	if err != nil {
		return err
	}
	return migrate(ctx, e)
}

func migrate(ctx context.Context, e chsink.Endpoint) error {
	conn, db, err := chsink.Connect(ctx, e)
	if err != nil {
		return err
	}
	defer conn.Close()
	applied, err := fhsql.Migrate(ctx, conn, db)
	if err != nil {
		return err
	}
	fmt.Println(fhsql.Applied(db, applied))
	return nil
}
