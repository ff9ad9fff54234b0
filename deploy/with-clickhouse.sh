#!/usr/bin/env bash
# Run a command against a throwaway ClickHouse: the server is started in a
# temporary directory on free loopback ports, its DSN is exported as
# FUNNELHOUSE_TEST_CLICKHOUSE (its directory, with the pid file, as
# FUNNELHOUSE_TEST_CLICKHOUSE_DIR), and it is stopped and removed whatever
# happens. The command's exit code is kept. With FUNNELHOUSE_WITH_CLUSTER=SxR
# it also starts a cluster of S shards x R replicas (deploy/cluster.sh:
# ZooKeeper and S x R servers), its DSNs in FUNNELHOUSE_TEST_CLUSTER and its
# directory in FUNNELHOUSE_TEST_CLUSTER_DIR.
#
#   deploy/with-clickhouse.sh CMD [ARGS...]
set -uo pipefail

[[ $# -gt 0 ]] || { echo "usage: $0 CMD [ARGS...]" >&2; exit 2; }
clickhouse=(bash "$(dirname "${BASH_SOURCE[0]}")/clickhouse.sh")
ch_dir=$(mktemp -d "${TMPDIR:-/tmp}/funnelhouse-ch-test.XXXXXX")
cluster_dir=

cleanup() {
	local rc=$?
	if [[ $rc -ne 0 && -s $ch_dir/log/clickhouse-server.err.log ]]; then
		echo "--- last lines of the test ClickHouse error log ---" >&2
		tail -n 20 "$ch_dir/log/clickhouse-server.err.log" >&2 || true
	fi
	"${clickhouse[@]}" stop "$ch_dir" || true
	rm -rf "$ch_dir"
	if [[ -n $cluster_dir ]]; then
		bash "$(dirname "${BASH_SOURCE[0]}")/cluster.sh" stop "$cluster_dir" || true
		rm -rf "$cluster_dir"
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

dsn=$("${clickhouse[@]}" start "$ch_dir") || exit 1
export FUNNELHOUSE_TEST_CLICKHOUSE=$dsn FUNNELHOUSE_TEST_CLICKHOUSE_DIR=$ch_dir
echo "test ClickHouse: FUNNELHOUSE_TEST_CLICKHOUSE=$dsn"
if [[ -n ${FUNNELHOUSE_WITH_CLUSTER:-} ]]; then
	[[ $FUNNELHOUSE_WITH_CLUSTER =~ ^([0-9]+)x([0-9]+)$ ]] || { echo "FUNNELHOUSE_WITH_CLUSTER=$FUNNELHOUSE_WITH_CLUSTER: want SHARDSxREPLICAS, e.g. 2x1" >&2; exit 2; }
	cluster_dir=$(mktemp -d "${TMPDIR:-/tmp}/funnelhouse-cluster-test.XXXXXX")
	dsns=$(bash "$(dirname "${BASH_SOURCE[0]}")/cluster.sh" start "$cluster_dir" --shards "${BASH_REMATCH[1]}" --replicas "${BASH_REMATCH[2]}") || exit 1
	export FUNNELHOUSE_TEST_CLUSTER="$(echo $dsns)" FUNNELHOUSE_TEST_CLUSTER_DIR=$cluster_dir
	echo "test cluster: FUNNELHOUSE_TEST_CLUSTER=$FUNNELHOUSE_TEST_CLUSTER"
fi
"$@"
