package main

import (
	"context"
	"fmt"
	"os"

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
	var cluster string
	fs.StringVar(&cluster, "cluster", "", "apply the cluster form on this ClickHouse `cluster` (remote_servers name): Replicated* tables named <table>_local\n(a table a migration rebuilt keeps its new table's) and Distributed tables of the tables' names,\ncreated ON CLUSTER (docs/operations.md, \"ClickHouse cluster\");\nempty: one server")
	if err := parseWithEnv(fs, args); err != nil {
		return err
	}
	e, err := f.endpoint()
	if err != nil {
		return err
	}
	if cluster != "" {
		return migrateCluster(ctx, e, cluster)
	}
	return migrate(ctx, e)
}

// migrateCluster applies the migrations ON CLUSTER through the server of e;
// the other servers are reached, for what cannot run ON CLUSTER, at the
// addresses system.clusters gives, with e's user, password and TLS.
func migrateCluster(ctx context.Context, e chsink.Endpoint, cluster string) error {
	if err := fhsql.ValidateIdentifier("cluster", cluster); err != nil {
		return fmt.Errorf("invalid --cluster: %w", err)
	}
	conn, db, err := chsink.Connect(ctx, e)
	if err != nil {
		return err
	}
	defer conn.Close()
	applied, err := fhsql.MigrateCluster(ctx, conn, db, fhsql.Cluster{Name: cluster, Dial: e.Dialer(), Out: os.Stdout})
	if err != nil {
		return err
	}
	fmt.Printf("%s (cluster %s)\n", fhsql.Applied(db, applied), cluster)
	return nil
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
