package perf

// funnelhouse on a ClickHouse cluster (`bench --cluster`): the same
// records, the same `funnelhouse run`, written through the Distributed
// tables of a database migrated with `migrate --cluster` (docs/operations.md,
// "ClickHouse cluster"), measured beside the single server.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/funnelhouse/funnelhouse/bench/e2e"
	chsink "github.com/funnelhouse/funnelhouse/sinks/clickhouse"
	fhsql "github.com/funnelhouse/funnelhouse/sql"
)

// ClusterSystem begins the names of the cluster's results,
// ClusterSystem-<insert mode>.
const ClusterSystem = "funnelhouse-cluster"

// ClusterTarget is a ClickHouse cluster on which Run also measures
// funnelhouse.
type ClusterTarget struct {
	// Name is the cluster in the servers' remote_servers, as migrate
	// --cluster takes it.
	Name string
	// Endpoint is one server of the cluster (any: run and migrate reach the
	// others through it) with the bench's database, which each measured
	// run drops on every server and migrates again in the cluster form.
	Endpoint chsink.Endpoint
	// Dir is the deploy/cluster.sh directory of the cluster, for the pids
	// of its servers (DIR/s<shard>r<n>/pid) and of ZooKeeper (DIR/zk/pid),
	// whose CPU is reported; "" reports none (a cluster elsewhere).
	Dir string
	// Inserts are the cluster insert modes measured (run's
	// --cluster-insert: chsink.InsertDirect, chsink.InsertDistributed),
	// each a result of its own, ClusterSystem-<mode>; empty means the
	// default mode only.
	Inserts []string
}

// clusterServers reads the pids of a deploy/cluster.sh directory, its
// servers shard by shard as DIR/shape gives them.
func clusterServers(dir string) (servers, error) {
	var s servers
	shape, err := os.ReadFile(filepath.Join(dir, "shape"))
	if err != nil {
		return s, fmt.Errorf("cannot read the cluster's shape (is %s a deploy/cluster.sh directory?): %w", dir, err)
	}
	var shards, replicas int
	if _, err := fmt.Sscan(string(shape), &shards, &replicas); err != nil || shards < 1 || replicas < 1 {
		return s, fmt.Errorf("%s: want \"SHARDS REPLICAS\", got %q", filepath.Join(dir, "shape"), strings.TrimSpace(string(shape)))
	}
	alivePID := func(file string) (int, error) {
		pid := readPID(file)
		if pid <= 0 {
			return 0, fmt.Errorf("no pid in %s: is the cluster running (bash deploy/cluster.sh status %s)?", file, dir)
		}
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err != nil {
			return 0, fmt.Errorf("process %d of %s is not running: %w", pid, file, err)
		}
		return pid, nil
	}
	for sh := 1; sh <= shards; sh++ {
		for r := 1; r <= replicas; r++ {
			name := fmt.Sprintf("s%dr%d", sh, r)
			pid, err := alivePID(filepath.Join(dir, name, "pid"))
			if err != nil {
				return s, err
			}
			s.clickhouse, s.names = append(s.clickhouse, pid), append(s.names, name)
		}
	}
	if s.zookeeper, err = alivePID(filepath.Join(dir, "zk", "pid")); err != nil {
		return s, err
	}
	return s, nil
}

// clusterShape says how many shards and replicas the cluster has, as
// system.clusters on the endpoint's server lists them: "2 shards x 1
// replica". It fails when the server does not know the cluster.
func clusterShape(ctx context.Context, c *ClusterTarget) (string, error) {
	conn, _, err := chsink.Connect(ctx, c.Endpoint)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	var shards, replicas uint32
	if err := conn.QueryRow(ctx, "SELECT max(shard_num), max(replica_num) FROM system.clusters WHERE cluster = ?", c.Name).Scan(&shards, &replicas); err != nil {
		return "", fmt.Errorf("cannot read cluster %s from system.clusters: %w", c.Name, err)
	}
	if shards == 0 {
		return "", fmt.Errorf("the server of --cluster-clickhouse knows no cluster %q (system.clusters)", c.Name)
	}
	return fmt.Sprintf("%d shard%s x %d replica%s", shards, plural(shards), replicas, plural(replicas)), nil
}

func plural(n uint32) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// rowsByShard counts the events rows on the first replica of each shard
// (events' local table): how evenly cityHash64(visitor_id) spread the
// visitors.
func rowsByShard(ctx context.Context, c *ClusterTarget) ([]uint64, error) {
	local, err := fhsql.LocalTable("events")
	if err != nil {
		return nil, err
	}
	conn, db, err := chsink.Connect(ctx, c.Endpoint)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	rows, err := conn.Query(ctx, "SELECT host_name, port FROM system.clusters WHERE cluster = ? AND replica_num = 1 ORDER BY shard_num", c.Name)
	if err != nil {
		return nil, err
	}
	type hostPort struct {
		host string
		port uint16
	}
	var hosts []hostPort
	for rows.Next() {
		var h hostPort
		if err := rows.Scan(&h.host, &h.port); err != nil {
			rows.Close()
			return nil, err
		}
		hosts = append(hosts, h)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	dial := c.Endpoint.Dialer()
	var counts []uint64
	for _, h := range hosts {
		sc, err := dial(ctx, h.host, h.port)
		if err != nil {
			return nil, err
		}
		n := tableCount(ctx, sc, db+"."+local)
		sc.Close()
		counts = append(counts, n)
	}
	return counts, nil
}

// clusterTargets are the cluster as targets of the measured runs, one per
// insert mode.
func (b *bench) clusterTargets(ctx context.Context) ([]*target, error) {
	c := b.cfg.Cluster
	shape, err := clusterShape(ctx, c)
	if err != nil {
		return nil, err
	}
	modes := c.Inserts
	if len(modes) == 0 {
		modes = []string{chsink.DefaultClusterInsert}
	}
	var out []*target
	for _, mode := range modes {
		how := "inserts through the Distributed tables with insert_distributed_sync=1 (pipeline_state on one replica per shard)"
		switch mode {
		case chsink.InsertDirect:
			how = "inserts split by cityHash64(visitor_id) into each shard's local tables (pipeline_state on one replica per shard)"
		case chsink.InsertDistributed:
		default:
			return nil, fmt.Errorf("invalid cluster insert mode %q: want %s", mode, strings.Join(chsink.ClusterInsertModes, " or "))
		}
		t := &target{system: ClusterSystem + "-" + mode, endpoint: c.Endpoint, args: []string{"--cluster-insert", mode},
			reset: func(ctx context.Context) error { return e2e.ResetClusterDatabase(ctx, c.Endpoint, c.Name, os.Stdout) },
			note: fmt.Sprintf("the same run on ClickHouse cluster %s (%s): migrate --cluster, --cluster-insert %s: %s; "+
				"verified exact through the Distributed tables", c.Name, shape, mode, how),
			cluster: c.Name + ": " + shape}
		if c.Dir != "" {
			if t.servers, err = clusterServers(c.Dir); err != nil {
				return nil, err
			}
			t.servers.broker = b.brokerPID
		} else {
			t.servers.broker = b.brokerPID
			t.note += "; no --cluster-dir: the cluster's CPU is not measured"
		}
		out = append(out, t)
	}
	return out, nil
}
