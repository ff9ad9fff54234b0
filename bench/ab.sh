#!/usr/bin/env bash
# A/B of funnelhouse builds end to end, on a noisy machine: the builds take
# turns, round after round, each run on a ClickHouse of its own started
# fresh for it (deploy/clickhouse.sh), so that no run inherits another's
# parts, merges or caches. Compare medians of the rounds, not single runs.
#
#   bench/ab.sh OUTDIR ROUNDS EVENTS BINARY...
#
# e.g. git worktree add /tmp/before HEAD~1 && (cd /tmp/before && go build -o /tmp/fh-before ./cmd/funnelhouse)
#      go build -o /tmp/fh-after ./cmd/funnelhouse
#      bench/ab.sh /tmp/ab 4 2000000 /tmp/fh-before /tmp/fh-after
#
# The servers' data go under AB_CLICKHOUSE_PARENT (default .local/bench,
# on a journaled filesystem: bench/datadir.sh).
#
# OUTDIR/summary gets a line per run (the bench's funnelhouse row and the
# load average at its end); OUTDIR/NAME-ROUND.{log,json} the whole output.
set -euo pipefail
if [[ $# -lt 4 ]]; then
	sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
fi
out=$1 rounds=$2 events=$3
shift 3
repo=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
parent=${AB_CLICKHOUSE_PARENT:-$repo/.local/bench}
bash "$repo/bench/datadir.sh" "$parent"
for round in $(seq 1 "$rounds"); do
	for bin in "$@"; do
		name=$(basename "$bin")
		dir=$(mktemp -d "$parent/ab-clickhouse.XXXXXX")
		dsn=$(bash "$repo/deploy/clickhouse.sh" start "$dir" 2>/dev/null | tail -1)
		rc=0
		"$bin" bench --clickhouse "${dsn}fh_ab" --events "$events" --runs 1 --peers '' --latency-seconds 0 \
			--clickhouse-pid-file "$dir/pid" --json "$out/$name-$round.json" >"$out/$name-$round.log" 2>&1 || rc=$?
		echo "$name round $round rc=$rc load=$(cut -d' ' -f1 /proc/loadavg) $(grep -E '^ +funnelhouse +1 ' "$out/$name-$round.log" || true)" | tee -a "$out/summary"
		bash "$repo/deploy/clickhouse.sh" stop "$dir" >/dev/null 2>&1 || true
		rm -rf "$dir"
	done
done
