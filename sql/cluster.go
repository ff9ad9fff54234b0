package sql

// The cluster form of the migrations (funnelhouse migrate --cluster NAME).
//
// The files under migrations/ stay the single truth: the cluster form is
// generated from them here, statement by statement, rather than written
// beside them, so that the two cannot drift apart and a new migration gets
// its cluster form (or a loud error naming the statement this file does not
// know how to rewrite) without anyone remembering to write it twice.
//
// What the rewrite makes of each statement kind:
//
//   - CREATE TABLE t (…) ENGINE = XMergeTree[(args)] becomes t_local, ON
//     CLUSTER, with ENGINE = ReplicatedXMergeTree('/clickhouse/tables/{shard}/<db>/t_local',
//     '{replica}'[, args]), plus t itself: ENGINE = Distributed(cluster, db,
//     t_local, key), ON CLUSTER. {shard} and {replica} are the servers'
//     macros. The views, BI tools and readers keep using t.
//   - CREATE MATERIALIZED VIEW mv TO t AS SELECT … FROM s becomes, ON
//     CLUSTER, TO t_local … FROM s_local: a materialised view fires on the
//     server that receives the insert into its source, so it must watch the
//     local table and write the local table of the same server. Its target
//     is replicated, so the other replicas get the states by replication
//     (a replica fetching a part does not fire the view again, so nothing is
//     counted twice).
//   - CREATE VIEW v AS … becomes ON CLUSTER and reads the Distributed
//     tables; `IN (SELECT` becomes `GLOBAL IN (SELECT` (a subquery over a
//     Distributed table inside a query over another is refused by the
//     default distributed_product_mode, and GLOBAL IN is exact whatever the
//     sharding).
//   - ALTER TABLE t ADD COLUMN IF NOT EXISTS … runs ON CLUSTER on t_local
//     (18.16 runs it on one replica per shard and replicates it; a server
//     answering "column already exists" counts as done), then on t on each
//     server in turn: 18.16 refuses ALTER … ON CLUSTER on a table that is
//     not replicated in a cluster with internal_replication.
//   - DROP TABLE IF EXISTS x becomes ON CLUSTER (and drops x's local table
//     too when x was a table).
//   - RENAME TABLE t TO t_old, t_new TO t (a migration swapping a rebuilt
//     table in) renames no replicated table: t's Distributed table is
//     created again over t_new's local table, which keeps its name and
//     ZooKeeper path, and later statements are rewritten to it (see
//     renameForm). A rerun of the migration meets the local tables under
//     the names it creates them with, so it creates no second table on a
//     ZooKeeper path in use.
//
// The sharding key keeps all rows of a visitor on one shard:
// cityHash64(visitor_id). The pipeline can compute the same hash
// (github.com/go-faster/city's CH64 is ClickHouse's cityHash64) and the
// shard as hash % shards when every shard has weight 1, to write each
// row to its shard's local table directly. Because a visitor's rows are on
// one shard, a replayed row meets the row it replaces on the same shard,
// the materialised views on the local tables write their states to the
// visitor's shard too, and FINAL (applied per shard) stays exact.
// Tables without visitor_id: see shardingKey.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/ClickHouse/clickhouse-go/v2/lib/proto"
)

// LocalSuffix names the replicated table under each Distributed table,
// t_local under t, unless a migration swapped a rebuilt table in under t's
// name (see LocalTable).
const LocalSuffix = "_local"

// Cluster says where migrate --cluster applies the migrations.
type Cluster struct {
	// Name is the cluster in the servers' remote_servers.
	Name string
	// Dial opens a connection to one server of the cluster, host and native
	// port as system.clusters lists them, with the credentials the first
	// connection used; the caller closes it. It is needed for the ALTERs of
	// Distributed tables, run on each server in turn, and to bring servers
	// added to the cluster up to date.
	Dial func(ctx context.Context, host string, port uint16) (driver.Conn, error)
	// Out, when set, is told which servers were brought up to date.
	Out io.Writer
}

// clusterStep is one statement of a migration's cluster form.
type clusterStep struct {
	sql string // with {db} in place
	// perServer: run on each server of the cluster through Cluster.Dial
	// (with execStatement's ADD COLUMN IF NOT EXISTS emulation) instead of
	// ON CLUSTER.
	perServer bool
	// once: run once, on the server migrate is connected to (a back-fill
	// INSERT … SELECT, which takes no ON CLUSTER).
	once bool
	// tolerate: per-server answers with this code mean "already done".
	tolerate int64
}

// tableInfo is what the rewrite needs to know about a table created by an
// earlier statement.
type tableInfo struct {
	hasVisitor bool
	orderBy    string
	local      string // the replicated table under the Distributed one
}

var (
	createTableRe = regexp.MustCompile(`(?is)^CREATE\s+TABLE\s+IF\s+NOT\s+EXISTS\s+\{db\}\.(\w+)\s*\((.*)$`)
	createMVRe    = regexp.MustCompile(`(?is)^CREATE\s+MATERIALIZED\s+VIEW\s+IF\s+NOT\s+EXISTS\s+\{db\}\.(\w+)\s+(TO\s.*)$`)
	createViewRe  = regexp.MustCompile(`(?is)^CREATE\s+VIEW\s+IF\s+NOT\s+EXISTS\s+\{db\}\.(\w+)\s+(AS\s.*)$`)
	dropTableRe   = regexp.MustCompile(`(?is)^DROP\s+TABLE\s+IF\s+EXISTS\s+\{db\}\.(\w+)$`)
	engineRe      = regexp.MustCompile(`(?s)ENGINE\s*=\s*(\w*)MergeTree(\s*\(([^)]*)\))?`)
	orderByRe     = regexp.MustCompile(`(?is)\bORDER\s+BY\s+(.+?)(?:\s+SETTINGS\s.*)?$`)
	rebuiltRe     = regexp.MustCompile(`_\d{4}$`) // t_NNNN: t rebuilt by migration NNNN, swapped in under t
	visitorColRe  = regexp.MustCompile(`(?m)^\s*visitor_id\s+String\b`)
	dbTableRe     = regexp.MustCompile(`\{db\}\.(\w+)\b`)
	inSubqueryRe  = regexp.MustCompile(`(?i)(^|[^\w])IN\s*\(\s*SELECT\b`)
	insertRe      = regexp.MustCompile(`(?is)^INSERT\s+INTO\s+\{db\}\.\w+\b`)
	addColumnRe   = regexp.MustCompile(`(?is)^ALTER\s+TABLE\s+\{db\}\.(\w+)\s+ADD\s+COLUMN\s+IF\s+NOT\s+EXISTS(\s+\w+\s.*)$`)
	renameRe      = regexp.MustCompile(`(?is)^RENAME\s+TABLE\s+(.*)$`)
	renamePairRe  = regexp.MustCompile(`(?is)^\s*\{db\}\.(\w+)\s+TO\s+\{db\}\.(\w+)\s*$`)
)

// shardingKeys are the keys of the tables without visitor_id. Every row a
// replacing or aggregating engine must collapse has to be on one shard, so
// the key is (a prefix of) the sorting key:
//   - pipeline_state: by consumer group and partition. A checkpoint (its
//     'checkpoint' row and its partition's 'visitor' rows) is one insert;
//     with this key it goes to one shard in one block, so it stays all or
//     nothing, and every epoch of a key lands beside the one it replaces.
//
// A table rebuilt by migration NNNN as t_NNNN shards as t does: its rows
// are t's, copied through its Distributed table, and t's Distributed table
// is created over its local table at the swap (renameForm).
//
// Any other table without visitor_id is sharded by its whole sorting key
// (the state tables of the views: they are written by the materialised
// views on the local tables, so the key only decides where a direct insert
// through the Distributed table goes, and uniqExact/min/max states merge
// exactly across shards whatever it is).
var shardingKeys = map[string]string{
	"pipeline_state": "cityHash64(consumer_group, kafka_partition)",
}

func shardingKey(table string, info tableInfo) string {
	if info.hasVisitor {
		return "cityHash64(visitor_id)"
	}
	if k, ok := shardingKeys[rebuiltRe.ReplaceAllString(table, "")]; ok {
		return k
	}
	key := strings.TrimSpace(info.orderBy)
	if strings.HasPrefix(key, "(") && strings.HasSuffix(key, ")") {
		key = key[1 : len(key)-1]
	}
	return "cityHash64(" + key + ")"
}

// clusterForm rewrites the statements of m for cluster. tables holds the
// tables created by earlier migrations and gains this one's.
func clusterForm(m Migration, cluster string, tables map[string]tableInfo) ([][]clusterStep, error) {
	out := make([][]clusterStep, len(m.Statements))
	on := " ON CLUSTER " + cluster + " "
	for i, stmt := range m.Statements {
		fail := func(why string) error {
			return fmt.Errorf("BUG: migration %04d_%s statement %d has no cluster form (%s): %s", m.Version, m.Name, i+1, why, firstLine(stmt))
		}
		switch {
		case createTableRe.MatchString(stmt):
			g := createTableRe.FindStringSubmatch(stmt)
			table, rest := g[1], g[2]
			em := engineRe.FindStringSubmatchIndex(rest)
			if em == nil {
				return nil, fail("not a MergeTree engine")
			}
			local := table + LocalSuffix
			args := "'/clickhouse/tables/{shard}/{db}/" + local + "', '{replica}'"
			if em[6] >= 0 && strings.TrimSpace(rest[em[6]:em[7]]) != "" {
				args += ", " + strings.TrimSpace(rest[em[6]:em[7]])
			}
			kind := rest[em[2]:em[3]]
			rest = rest[:em[0]] + "ENGINE = Replicated" + kind + "MergeTree(" + args + ")" + rest[em[1]:]
			info := tableInfo{hasVisitor: visitorColRe.MatchString(g[2]), local: local}
			if om := orderByRe.FindStringSubmatch(rest); om != nil {
				info.orderBy = om[1]
			} else {
				return nil, fail("no ORDER BY")
			}
			tables[table] = info
			out[i] = []clusterStep{
				{sql: "CREATE TABLE IF NOT EXISTS {db}." + local + on + "(" + rest},
				distributedStep(table, info, cluster),
			}
		case createMVRe.MatchString(stmt):
			g := createMVRe.FindStringSubmatch(stmt)
			body := dbTableRe.ReplaceAllStringFunc(g[2], func(s string) string {
				if info, ok := tables[strings.TrimPrefix(s, "{db}.")]; ok {
					return "{db}." + info.local
				}
				return s
			})
			out[i] = []clusterStep{{sql: "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}." + g[1] + on + body}}
		case createViewRe.MatchString(stmt):
			g := createViewRe.FindStringSubmatch(stmt)
			body := inSubqueryRe.ReplaceAllString(g[2], "${1}GLOBAL IN (SELECT")
			out[i] = []clusterStep{{sql: "CREATE VIEW IF NOT EXISTS {db}." + g[1] + on + body}}
		case addColumnRe.MatchString(stmt):
			g := addColumnRe.FindStringSubmatch(stmt)
			table := g[1]
			info, ok := tables[table]
			if !ok {
				return nil, fail("ALTER of a table no earlier migration created")
			}
			out[i] = []clusterStep{
				{sql: "ALTER TABLE {db}." + info.local + on + "ADD COLUMN" + g[2], tolerate: codeDuplicateColumn},
				{sql: stmt, perServer: true},
			}
		case dropTableRe.MatchString(stmt):
			name := dropTableRe.FindStringSubmatch(stmt)[1]
			out[i] = []clusterStep{{sql: "DROP TABLE IF EXISTS {db}." + name + on}}
			if info, ok := tables[name]; ok {
				out[i] = append(out[i], clusterStep{sql: "DROP TABLE IF EXISTS {db}." + info.local + on})
				delete(tables, name)
			}
		case renameRe.MatchString(stmt):
			steps, err := renameForm(renameRe.FindStringSubmatch(stmt)[1], cluster, tables)
			if err != nil {
				return nil, fail(err.Error())
			}
			out[i] = steps
		case insertRe.MatchString(stmt):
			// A back-fill: run once, into the Distributed table, which
			// shards the rows; reading the Distributed tables reads all
			// shards. Back-fills are idempotent (replacing or distinct
			// targets), so a rerun changes nothing.
			out[i] = []clusterStep{{sql: inSubqueryRe.ReplaceAllString(stmt, "${1}GLOBAL IN (SELECT"), once: true}}
		default:
			return nil, fail("unknown statement kind")
		}
	}
	return out, nil
}

// distributedStep creates the Distributed table t over its local table.
func distributedStep(t string, info tableInfo, cluster string) clusterStep {
	return clusterStep{sql: "CREATE TABLE IF NOT EXISTS {db}." + t + " ON CLUSTER " + cluster + " AS {db}." + info.local +
		" ENGINE = Distributed(" + cluster + ", {db}, " + info.local + ", " + shardingKey(t, info) + ")"}
}

// renameForm is the cluster form of RENAME TABLE pairs, which swap a
// rebuilt table in: RENAME TABLE t TO t_old, t_new TO t. The local tables
// keep their names and ZooKeeper paths, and tables follows the names, pair
// by pair as RENAME applies them, so that later statements use t_new's
// local table for t. The Distributed tables, which hold no rows, are
// dropped and t's is created again over t_new's local table: 18.16 does
// not move a Distributed table's directory at a RENAME (its queued inserts
// would be lost at the next restart, and the database could not be
// dropped). t_old gets no Distributed table, since a later statement of
// the migration only drops it with its local table; a rerun that finds
// t_old's local table gone then has nothing to create it over.
func renameForm(pairs, cluster string, tables map[string]tableInfo) ([]clusterStep, error) {
	before := maps.Clone(tables)
	var steps []clusterStep
	for _, pair := range strings.Split(pairs, ",") {
		g := renamePairRe.FindStringSubmatch(pair)
		if g == nil {
			return nil, fmt.Errorf("a RENAME pair other than {db}.a TO {db}.b: %q", strings.TrimSpace(pair))
		}
		from, to := g[1], g[2]
		info, ok := tables[from]
		if !ok {
			return nil, fmt.Errorf("RENAME of %s, which no earlier statement created as a table", from)
		}
		if _, taken := tables[to]; taken {
			return nil, fmt.Errorf("RENAME to %s, a table that exists", to)
		}
		delete(tables, from)
		tables[to] = info
		steps = append(steps, clusterStep{sql: "DROP TABLE IF EXISTS {db}." + from + " ON CLUSTER " + cluster + " "})
		if _, swappedIn := before[to]; swappedIn {
			steps = append(steps, distributedStep(to, info, cluster))
		}
	}
	return steps, nil
}

// LocalTable returns the name of the replicated table under the
// Distributed table t in the cluster form of every migration: t_local, or
// the local table of the table a migration swapped in under t's name
// (events' is events_0006_local since 0006_events_on_time).
func LocalTable(t string) (string, error) {
	migrations, err := Migrations()
	if err != nil {
		return "", err
	}
	tables := map[string]tableInfo{}
	for _, m := range migrations {
		if _, err := clusterForm(m, "c", tables); err != nil {
			return "", err
		}
	}
	info, ok := tables[t]
	if !ok {
		return "", fmt.Errorf("no table %s in the migrations", t)
	}
	return info.local, nil
}

// codeDuplicateColumn is ClickHouse's ILLEGAL_COLUMN, the answer of a
// server that has the column already ("Cannot add column …: column with
// this name already exists").
const codeDuplicateColumn = 44

// ClusterStatements returns the cluster form of every migration, with db in
// place: what migrate --cluster runs (for tests and for review).
func ClusterStatements(db, cluster string) (map[int][]string, error) {
	migrations, err := Migrations()
	if err != nil {
		return nil, err
	}
	tables := map[string]tableInfo{}
	out := map[int][]string{}
	for _, m := range migrations {
		steps, err := clusterForm(m, cluster, tables)
		if err != nil {
			return nil, err
		}
		for _, s := range steps {
			for _, st := range s {
				q := strings.ReplaceAll(st.sql, "{db}", db)
				if st.perServer {
					q = "-- on each server: " + q
				}
				if st.once {
					q = "-- once: " + q
				}
				out[m.Version] = append(out[m.Version], q)
			}
		}
	}
	return out, nil
}

// MigrateCluster is Migrate on a cluster: database, tables and views are
// created ON CLUSTER in their cluster form (see the top of this file), and
// the applied versions are recorded in db.schema_migrations, a
// ReplicatedMergeTree with one replica on every server of the cluster (not
// sharded: every server holds the whole history, so migrate can start from
// any of them). Every statement is idempotent, so a migration that failed
// half way is applied again by the next run; the error names the statement
// and the servers that failed, from ClickHouse's answer to the ON CLUSTER
// query.
func MigrateCluster(ctx context.Context, conn driver.Conn, db string, c Cluster) ([]int, error) {
	if err := ValidateIdentifier("database", db); err != nil {
		return nil, err
	}
	if err := ValidateIdentifier("cluster", c.Name); err != nil {
		return nil, err
	}
	hosts, err := clusterHosts(ctx, conn, c.Name)
	if err != nil {
		return nil, err
	}
	migrations, err := Migrations()
	if err != nil {
		return nil, err
	}
	on := " ON CLUSTER " + c.Name + " "
	setup := []string{
		"CREATE DATABASE IF NOT EXISTS " + db + on,
		"CREATE TABLE IF NOT EXISTS " + db + ".schema_migrations" + on +
			"(version UInt32, name String, applied_at DateTime('UTC')) " +
			"ENGINE = ReplicatedMergeTree('/clickhouse/tables/all/" + db + "/schema_migrations', '{shard}-{replica}') ORDER BY version",
	}
	for _, stmt := range setup {
		if err := execOnCluster(ctx, conn, stmt, 0); err != nil {
			return nil, fmt.Errorf("cannot prepare database %s on cluster %s: %w", db, c.Name, err)
		}
	}
	var engine string
	if err := conn.QueryRow(ctx, "SELECT engine FROM system.tables WHERE database = ? AND name = 'schema_migrations'", db).Scan(&engine); err != nil {
		return nil, fmt.Errorf("cannot read the engine of %s.schema_migrations: %w", db, err)
	}
	if !strings.HasPrefix(engine, "Replicated") {
		return nil, fmt.Errorf("database %s was migrated for a single server (its schema_migrations is %s): use another database for --cluster %s", db, engine, c.Name)
	}
	done, err := appliedOnCluster(ctx, conn, c, hosts, db)
	if err != nil {
		return nil, err
	}
	// Every migration is rewritten, applied or not, so that tables knows
	// the tables of the earlier ones.
	tables := map[string]tableInfo{}
	forms := make([][][]clusterStep, len(migrations))
	for i, m := range migrations {
		if forms[i], err = clusterForm(m, c.Name, tables); err != nil {
			return nil, err
		}
	}
	// Servers added to the cluster since (a new shard, a new replica) have
	// the database and schema_migrations from the setup above, but none of
	// the tables of the migrations already applied: they get them first,
	// so that the pending migrations find the tables they build on.
	if err := catchUpServers(ctx, c, hosts, db, migrations, forms, done); err != nil {
		return nil, err
	}
	var applied []int
	for mi, m := range migrations {
		steps := forms[mi]
		if done[m.Version] {
			continue
		}
		for i, stmtSteps := range steps {
			for _, st := range stmtSteps {
				q := strings.ReplaceAll(st.sql, "{db}", db)
				if st.perServer {
					err = execOnEachServer(ctx, c, hosts, db, q)
				} else if st.once {
					err = conn.Exec(ctx, q)
				} else {
					err = execOnCluster(ctx, conn, q, st.tolerate)
				}
				if err != nil {
					return applied, fmt.Errorf("cannot apply migration %04d_%s, statement %d, on cluster %s: %w; "+
						"the migration is not recorded: fix the cause and run migrate --cluster again (every statement is idempotent)",
						m.Version, m.Name, i+1, c.Name, err)
				}
			}
		}
		record := fmt.Sprintf("INSERT INTO %s.schema_migrations SELECT %d, '%s', now()", db, m.Version, m.Name)
		if err := conn.Exec(ctx, record); err != nil {
			return applied, fmt.Errorf("cannot record migration %04d_%s: %w", m.Version, m.Name, err)
		}
		applied = append(applied, m.Version)
	}
	return applied, nil
}

// appliedOnCluster is the union of the versions recorded on every server.
// schema_migrations is replicated to all of them, but a server that has
// just joined may not have fetched it yet: the versions of the server
// migrate is connected to alone could make it apply everything again.
func appliedOnCluster(ctx context.Context, conn driver.Conn, c Cluster, hosts []clusterHost, db string) (map[int]bool, error) {
	done, err := AppliedVersions(ctx, conn, db)
	if err != nil {
		return nil, err
	}
	if c.Dial == nil {
		return done, nil
	}
	for _, h := range hosts {
		err := func() error {
			hc, err := c.Dial(ctx, h.host, h.port)
			if err != nil {
				return err
			}
			defer hc.Close()
			v, err := AppliedVersions(ctx, hc, db)
			for k := range v {
				done[k] = true
			}
			return err
		}()
		if err != nil {
			return nil, fmt.Errorf("cannot read the migrations applied on %s: %w", h, err)
		}
	}
	return done, nil
}

// catchUpServers gives every server that has fewer of db's tables than
// another (one added to the cluster after db was migrated) the applied
// migrations' tables and views: their cluster form run on that server
// alone, in order, without ON CLUSTER. Back-fills are skipped: a new
// shard starts empty, and a new replica fetches its shard's parts, the
// back-filled ones included. So are the objects a later applied migration
// drops, with their ALTERs and the drop: creating them could fail (a view
// whose scalar subquery 18.16 runs at creation reads a table the other
// servers dropped long ago). ADD COLUMN is skipped where the column is
// there already (a new replica may take its shard's current structure
// from ZooKeeper).
func catchUpServers(ctx context.Context, c Cluster, hosts []clusterHost, db string, migrations []Migration, forms [][][]clusterStep, done map[int]bool) error {
	if c.Dial == nil || len(done) == 0 {
		return nil
	}
	counts := make([]uint64, len(hosts))
	most := uint64(0)
	for i, h := range hosts {
		err := func() error {
			hc, err := c.Dial(ctx, h.host, h.port)
			if err != nil {
				return err
			}
			defer hc.Close()
			return hc.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = ? AND name != 'schema_migrations'", db).Scan(&counts[i])
		}()
		if err != nil {
			return fmt.Errorf("cannot count the tables of %s on %s: %w", db, h, err)
		}
		most = max(most, counts[i])
	}
	on := " ON CLUSTER " + c.Name + " "
	ref := hosts[slices.Index(counts, most)]
	for i, h := range hosts {
		if counts[i] == most {
			continue
		}
		err := func() error {
			hc, err := c.Dial(ctx, h.host, h.port)
			if err != nil {
				return err
			}
			defer hc.Close()
			rc, err := c.Dial(ctx, ref.host, ref.port)
			if err != nil {
				return err
			}
			defer rc.Close()
			// A view created early may read one that a later migration
			// redefined (and the plan creates there): a step that finds a
			// table missing waits for a later round.
			pending := catchUpPlan(migrations, forms, done)
			for len(pending) > 0 {
				var later []catchUpStep
				var lastErr error
				for _, step := range pending {
					err := catchUpStatement(ctx, hc, rc, ref, db, on, migrations[step.migration], step)
					if isCode(err, codeUnknownTable) {
						later, lastErr = append(later, step), err
						continue
					}
					if err != nil {
						return err
					}
				}
				if len(later) == len(pending) {
					return lastErr
				}
				pending = later
			}
			return nil
		}()
		if err != nil {
			return fmt.Errorf("cannot bring %s, which lacks tables of %s (a server added to cluster %s?), up to date: %w; fix the cause and run migrate --cluster again",
				h, db, c.Name, err)
		}
		if c.Out != nil {
			fmt.Fprintf(c.Out, "server %s had %d of the %d tables and views of %s: created the rest from the applied migrations\n", h, counts[i], most, db)
		}
	}
	return nil
}

// localCreateRe is the creation of a replicated local table, without ON
// CLUSTER: its name with and without the database.
// catchUpStatement runs one step of the plan on hc, a new server; ref is
// a server with every table (rc its connection).
func catchUpStatement(ctx context.Context, hc, rc driver.Conn, ref clusterHost, db, on string, m Migration, step catchUpStep) error {
	q := strings.Replace(strings.ReplaceAll(step.sql, "{db}", db), on, " ", 1)
	if local := localCreateRe.FindStringSubmatch(q); local != nil {
		// A replica joining a shard must be created with the shard's
		// current structure (18.16 refuses another: "Table structure in
		// ZooKeeper is too different"): the one a server with every table
		// has, ALTERs included, macros unexpanded.
		var n uint64
		if err := rc.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = ? AND name = ?", db, local[2]).Scan(&n); err != nil {
			return fmt.Errorf("cannot look up %s on %s: %w", local[1], ref, err)
		}
		if n > 0 {
			var current string
			if err := rc.QueryRow(ctx, "SHOW CREATE TABLE "+local[1]).Scan(&current); err != nil {
				return fmt.Errorf("cannot read the structure of %s on %s: %w", local[1], ref, err)
			}
			q = strings.Replace(current, "CREATE TABLE ", "CREATE TABLE IF NOT EXISTS ", 1)
		}
	}
	if step.tolerate == codeDuplicateColumn {
		q = strings.Replace(q, " ADD COLUMN ", " ADD COLUMN IF NOT EXISTS ", 1)
	}
	if err := execStatement(ctx, hc, db, q); err != nil {
		return fmt.Errorf("migration %04d_%s, statement %d: %w", m.Version, m.Name, step.statement+1, err)
	}
	return nil
}

// codeUnknownTable is ClickHouse's UNKNOWN_TABLE.
const codeUnknownTable = 60

// catchUpStep is one step of catchUpServers' plan: the step of the
// cluster form of migrations[migration]'s statement.
type catchUpStep struct {
	migration, statement int
	clusterStep
}

// catchUpPlan is the applied migrations' steps a new server runs: not the
// back-fills, and not the creates and ALTERs of an object a later step
// drops (nor that drop).
func catchUpPlan(migrations []Migration, forms [][][]clusterStep, done map[int]bool) []catchUpStep {
	var plan []catchUpStep
	for mi, m := range migrations {
		if !done[m.Version] {
			continue
		}
		for si, stmtSteps := range forms[mi] {
			for _, st := range stmtSteps {
				if st.once {
					continue
				}
				if drop := dropTableRe.FindStringSubmatch(strings.TrimSpace(onClusterRe.ReplaceAllString(st.sql, ""))); drop != nil {
					plan = slices.DeleteFunc(plan, func(s catchUpStep) bool { return objectOf(s.sql) == drop[1] })
					continue
				}
				plan = append(plan, catchUpStep{mi, si, st})
			}
		}
	}
	return plan
}

var (
	onClusterRe = regexp.MustCompile(`\s+ON\s+CLUSTER\s+\S+`)
	objectRe    = regexp.MustCompile(`(?is)^(?:CREATE\s+(?:TABLE|VIEW|MATERIALIZED\s+VIEW)\s+IF\s+NOT\s+EXISTS|ALTER\s+TABLE)\s+\{db\}\.(\w+)`)
)

// objectOf is the table or view a step creates or alters, or "".
func objectOf(stmt string) string {
	if m := objectRe.FindStringSubmatch(stmt); m != nil {
		return m[1]
	}
	return ""
}

var localCreateRe = regexp.MustCompile(`^CREATE TABLE IF NOT EXISTS (\w+\.(\w+` + LocalSuffix + `)) \(`)

// clusterHost is one server of a cluster, as system.clusters lists it.
type clusterHost struct {
	host string
	port uint16
}

func (h clusterHost) String() string { return fmt.Sprintf("%s:%d", h.host, h.port) }

func clusterHosts(ctx context.Context, conn driver.Conn, cluster string) ([]clusterHost, error) {
	rows, err := conn.Query(ctx, "SELECT host_address, port FROM system.clusters WHERE cluster = ? ORDER BY shard_num, replica_num", cluster)
	if err != nil {
		return nil, fmt.Errorf("cannot read system.clusters: %w", err)
	}
	defer rows.Close()
	var out []clusterHost
	for rows.Next() {
		var h clusterHost
		if err := rows.Scan(&h.host, &h.port); err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no cluster %s in this server's remote_servers (system.clusters)", cluster)
	}
	return out, nil
}

// execOnEachServer runs stmt (an ALTER … ADD COLUMN IF NOT EXISTS of a
// Distributed table) on every server, skipping those that have the column.
func execOnEachServer(ctx context.Context, c Cluster, hosts []clusterHost, db, stmt string) error {
	if c.Dial == nil {
		return errors.New("BUG: Cluster.Dial is nil")
	}
	var failed, done []string
	var first error
	for _, h := range hosts {
		err := func() error {
			hc, err := c.Dial(ctx, h.host, h.port)
			if err != nil {
				return err
			}
			defer hc.Close()
			return execStatement(ctx, hc, db, stmt)
		}()
		if err != nil {
			failed = append(failed, fmt.Sprintf("%s (%v)", h, err))
			if first == nil {
				first = err
			}
			continue
		}
		done = append(done, h.String())
	}
	if len(failed) > 0 {
		return &ClusterError{Statement: stmt, Failed: failed, Done: done, err: first}
	}
	return nil
}

// ClusterError is a statement that failed on some servers of a cluster.
type ClusterError struct {
	Statement string   // as sent
	Failed    []string // "host:port (error)" of each server that failed or did not answer
	Done      []string // host:port of each server that ran it
	err       error
}

func (e *ClusterError) Error() string {
	done := "none"
	if len(e.Done) > 0 {
		done = strings.Join(e.Done, ", ")
	}
	return fmt.Sprintf("%q failed on %d of %d server(s): %s; done on: %s",
		firstLine(e.Statement), len(e.Failed), len(e.Failed)+len(e.Done), strings.Join(e.Failed, "; "), done)
}

func (e *ClusterError) Unwrap() error { return e.err }

// ExecOnCluster runs one ON CLUSTER statement; when it fails on some
// servers the error is a *ClusterError naming them and those that ran it.
func ExecOnCluster(ctx context.Context, conn driver.Conn, stmt string) error {
	return execOnCluster(ctx, conn, stmt, 0)
}

// execOnCluster runs one ON CLUSTER statement and reads ClickHouse's
// answer: a row per server (host, port, status, error, …) as each one
// finishes, then, when any failed, the exception of the first. A server
// whose status is tolerate (when not 0) counts as done.
func execOnCluster(ctx context.Context, conn driver.Conn, stmt string, tolerate int64) error {
	rows, err := conn.Query(ctx, stmt)
	if err != nil {
		return fmt.Errorf("cannot run %q: %w", firstLine(stmt), err)
	}
	defer rows.Close()
	names := rows.Columns()
	var failed, done []string
	for rows.Next() {
		vals := make([]any, len(names))
		for i, ct := range rows.ColumnTypes() {
			vals[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rows.Scan(vals...); err != nil {
			return fmt.Errorf("cannot read the answer to %q: %w", firstLine(stmt), err)
		}
		row := map[string]string{}
		for i, n := range names {
			row[n] = fmt.Sprint(reflect.ValueOf(vals[i]).Elem().Interface())
		}
		server := row["host"] + ":" + row["port"]
		if status := row["status"]; status == "0" || (tolerate != 0 && status == fmt.Sprint(tolerate)) {
			done = append(done, server)
		} else {
			failed = append(failed, fmt.Sprintf("%s (code %s: %s)", server, status, strings.TrimSpace(row["error"])))
		}
	}
	err = rows.Err()
	if err == nil && len(failed) == 0 {
		return nil
	}
	if len(failed) == 0 && len(done) == 0 {
		return fmt.Errorf("cannot run %q: %w", firstLine(stmt), err)
	}
	if len(failed) == 0 {
		// Every server that answered is done (or tolerated): the exception
		// is either the tolerated one or a timeout naming servers that did
		// not answer.
		if tolerate != 0 && isCode(err, tolerate) {
			return nil
		}
		failed = append(failed, fmt.Sprintf("servers that did not answer (%v)", err))
	}
	sort.Strings(done)
	return &ClusterError{Statement: stmt, Failed: failed, Done: done, err: err}
}

func isCode(err error, code int64) bool {
	var ex *proto.Exception
	return errors.As(err, &ex) && int64(ex.Code) == code
}

// firstLine shortens a statement for a message.
func firstLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 160 {
		s = s[:157] + "..."
	}
	return s
}
