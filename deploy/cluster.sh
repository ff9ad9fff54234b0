#!/usr/bin/env bash
# Run a private, loopback-only ClickHouse cluster in DIR: one ZooKeeper
# (Debian's zookeeper 3.8) and SHARDS x REPLICAS clickhouse-server 18.16.1
# processes, each with its own config, free ports and data dir.
#
#   deploy/cluster.sh start  DIR [--shards N] [--replicas M]   (default 2 x 2)
#   deploy/cluster.sh stop   DIR
#   deploy/cluster.sh status DIR
#
# start and status print one DSN per server on stdout, shard by shard
# (clickhouse://default@127.0.0.1:PORT/); the first line is the one to use
# (shard 1, replica 1). Progress and errors go to stderr. status exits 1
# unless ZooKeeper and every server answer.
#
# The cluster is named funnelhouse (CLUSTER_NAME overrides it) in every
# server's remote_servers, with internal_replication: a Distributed table
# writes each row to one replica of its shard and the Replicated* engine
# copies it to the others. Each server has the macros shard (1..N) and
# replica (s<shard>r<n>, unique in the cluster, so that a table replicated
# on every server can use it too).
#
# Order: ZooKeeper first, then the servers; stop in reverse. A server that
# starts while ZooKeeper is down cannot load its replicated tables and exits
# (../shared/CLUSTER-18.md), so start waits for ZooKeeper's "imok" first.
#
# Layout of DIR: zk/ (conf/zoo.cfg, data/, log, pid, client.port),
# s<shard>r<n>/ (one deploy/clickhouse.sh directory per server, with
# etc/config.d/cluster.xml added: remote_servers, zookeeper, macros and the
# interserver port), shape (shards and replicas of the last start),
# ports (native, http, interserver port of each server, reused on restart
# while they are free).
#
# Environment: ZK_START_TIMEOUT (seconds, default 30); CH_START_TIMEOUT and
# CH_STOP_TIMEOUT are passed to deploy/clickhouse.sh.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
CLICKHOUSE=(bash "$SCRIPT_DIR/clickhouse.sh")
CLUSTER_NAME=${CLUSTER_NAME:-funnelhouse}

log() { printf 'cluster.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
	echo "usage: $0 start|stop|status DIR [--shards N] [--replicas M]" >&2
	exit 2
}

read_file() { [[ -s $1 ]] && tr -d ' \n\r\t' <"$1"; }

# ---- ports (the same checks as deploy/clickhouse.sh) ------------------------

port_free() {
	local port=$1
	if command -v ss >/dev/null 2>&1; then
		if ss -Htln "sport = :$port" 2>/dev/null | grep -q .; then
			return 1
		fi
	fi
	if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
		return 1
	fi
	return 0
}

# TAKEN holds the ports chosen in this run, so that two servers never get
# the same one. The pickers assign to a variable instead of printing: a
# command substitution would run them in a subshell and lose TAKEN.
TAKEN=" "

# random_port VAR: a free port not chosen yet, into VAR. Below the
# kernel's ephemeral range when it leaves room (32768 by default): a port
# in it can be taken by any outgoing connection between the check and the
# bind, as ZooKeeper's once was in CI (BindException).
random_port() {
	local p lo span=40000
	read -r lo _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || lo=0
	if ((lo - 20000 >= 1000)); then
		span=$((lo - 20000))
	fi
	for _ in $(seq 1 200); do
		p=$((20000 + (RANDOM * 32768 + RANDOM) % span))
		if [[ $TAKEN != *" $p "* ]] && port_free "$p"; then
			TAKEN+="$p "
			printf -v "$1" '%s' "$p"
			return 0
		fi
	done
	die "no free TCP port found in 20000-$((20000 + span - 1))"
}

# reuse_or_pick VAR OLD: OLD when it is a free port not chosen yet, else a
# new one, into VAR.
reuse_or_pick() {
	local old=${2:-}
	if [[ $old =~ ^[0-9]+$ && $TAKEN != *" $old "* ]] && port_free "$old"; then
		TAKEN+="$old "
		printf -v "$1" '%s' "$old"
	else
		random_port "$1"
	fi
}

# ---- ZooKeeper ----------------------------------------------------------------

ensure_zookeeper() {
	bash "$SCRIPT_DIR/prereqs.sh" cluster
	[[ -r /usr/share/java/zookeeper.jar ]] || die "/usr/share/java/zookeeper.jar still missing after installing zookeeper"
	command -v java >/dev/null 2>&1 || die "zookeeper is installed but java is not on PATH"
}

# zk_ruok PORT: ZooKeeper answers "imok" (no nc needed).
zk_ruok() {
	local out
	out=$(
		exec 2>/dev/null
		exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
		printf ruok >&3
		timeout 2 cat <&3
	) || true
	[[ $out == imok ]]
}

# zk_alive PID: the process is the ZooKeeper of this DIR.
zk_alive() {
	local pid=$1 cmd
	[[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
	cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
	[[ $cmd == *QuorumPeerMain*"$DIR/zk/conf/zoo.cfg"* ]]
}

zk_running() {
	local pid port
	pid=$(read_file "$DIR/zk/pid") || return 1
	port=$(read_file "$DIR/zk/client.port") || return 1
	zk_alive "$pid" && zk_ruok "$port"
}

zk_start() {
	local port pid deadline t0
	if zk_running; then
		log "ZooKeeper already running (pid $(read_file "$DIR/zk/pid"), port $(read_file "$DIR/zk/client.port"))"
		TAKEN+="$(read_file "$DIR/zk/client.port") "
		return 0
	fi
	ensure_zookeeper
	mkdir -p "$DIR/zk/conf" "$DIR/zk/data"
	reuse_or_pick port "$(read_file "$DIR/zk/client.port" || true)"
	# admin.enableServer=false: else it binds 8080.
	cat >"$DIR/zk/conf/zoo.cfg" <<EOF
tickTime=2000
initLimit=10
syncLimit=5
dataDir=$DIR/zk/data
clientPort=$port
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=*
maxClientCnxns=0
EOF
	cat >"$DIR/zk/conf/log4j.properties" <<'EOF'
log4j.rootLogger=INFO, CONSOLE
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} [myid:%X{myid}] - %-5p [%t:%C{1}@%L] - %m%n
EOF
	echo "$port" >"$DIR/zk/client.port"
	printf '===== %s start port=%s =====\n' "$(date -u +%FT%TZ)" "$port" >>"$DIR/zk/log"
	# Only these jars: a classpath over all of /usr/share/java has several
	# competing logging bindings. zookeeper.jar's manifest names the rest.
	local cp=$DIR/zk/conf:/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-log4j12.jar:/usr/share/java/log4j-1.2.jar
	t0=$(date +%s%N)
	(exec 9>&- && cd "$DIR/zk" && exec setsid java -Xmx256m -Dzookeeper.log.dir="$DIR/zk" -cp "$cp" \
		org.apache.zookeeper.server.quorum.QuorumPeerMain "$DIR/zk/conf/zoo.cfg" \
		</dev/null >>"$DIR/zk/log" 2>&1) &
	pid=$!
	echo "$pid" >"$DIR/zk/pid"
	deadline=$((SECONDS + ${ZK_START_TIMEOUT:-30}))
	until zk_ruok "$port"; do
		if ! kill -0 "$pid" 2>/dev/null; then
			tail -n 30 "$DIR/zk/log" >&2 || true
			rm -f "$DIR/zk/pid"
			die "ZooKeeper exited during start-up (log in $DIR/zk/log)"
		fi
		if ((SECONDS >= deadline)); then
			kill -KILL "$pid" 2>/dev/null || true
			rm -f "$DIR/zk/pid"
			tail -n 30 "$DIR/zk/log" >&2 || true
			die "ZooKeeper did not answer ruok within ${ZK_START_TIMEOUT:-30} s"
		fi
		sleep 0.1
	done
	log "ZooKeeper ready in $((($(date +%s%N) - t0) / 1000000)) ms (pid $pid, port $port)"
}

zk_stop() {
	local pid
	pid=$(read_file "$DIR/zk/pid" || true)
	if [[ -z $pid ]] || ! zk_alive "$pid"; then
		rm -f "$DIR/zk/pid"
		log "ZooKeeper not running"
		return 0
	fi
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "ZooKeeper pid $pid still alive after 10 s; sending SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$DIR/zk/pid"
	log "ZooKeeper stopped (pid $pid)"
}

# ---- ClickHouse servers --------------------------------------------------------

# servers: the names of the servers of the shape in SHARDS/REPLICAS, shard
# by shard.
servers() {
	local s r
	for ((s = 1; s <= SHARDS; s++)); do
		for ((r = 1; r <= REPLICAS; r++)); do
			echo "s${s}r${r}"
		done
	done
}

# choose_ports: fills NATIVE/HTTP/INTER[name], reusing DIR/ports.
declare -A NATIVE HTTP INTER
choose_ports() {
	local name old_n old_h old_i
	declare -A old
	if [[ -r $DIR/ports ]]; then
		while read -r name old_n old_h old_i; do
			old[$name]="$old_n $old_h $old_i"
		done <"$DIR/ports"
	fi
	: >"$DIR/ports.new"
	for name in $(servers); do
		read -r old_n old_h old_i <<<"${old[$name]:-}"
		reuse_or_pick "NATIVE[$name]" "$old_n"
		reuse_or_pick "HTTP[$name]" "$old_h"
		reuse_or_pick "INTER[$name]" "$old_i"
		echo "$name ${NATIVE[$name]} ${HTTP[$name]} ${INTER[$name]}" >>"$DIR/ports.new"
	done
	mv "$DIR/ports.new" "$DIR/ports"
}

# write_cluster_xml NAME SHARD: DIR/NAME/etc/config.d/cluster.xml, merged by
# the server into the config.xml that deploy/clickhouse.sh renders.
write_cluster_xml() {
	local name=$1 shard=$2 s r zk_port
	zk_port=$(read_file "$DIR/zk/client.port")
	mkdir -p "$DIR/$name/etc/config.d"
	{
		echo '<?xml version="1.0"?>'
		echo '<!-- Written by deploy/cluster.sh: this server in the cluster. -->'
		echo '<yandex>'
		echo "    <interserver_http_port>${INTER[$name]}</interserver_http_port>"
		echo '    <interserver_http_host>127.0.0.1</interserver_http_host>'
		echo "    <remote_servers><$CLUSTER_NAME>"
		for ((s = 1; s <= SHARDS; s++)); do
			echo '        <shard><internal_replication>true</internal_replication>'
			for ((r = 1; r <= REPLICAS; r++)); do
				echo "            <replica><host>127.0.0.1</host><port>${NATIVE[s${s}r${r}]}</port></replica>"
			done
			echo '        </shard>'
		done
		echo "    </$CLUSTER_NAME></remote_servers>"
		echo "    <zookeeper><node><host>127.0.0.1</host><port>$zk_port</port></node>"
		echo '        <session_timeout_ms>30000</session_timeout_ms></zookeeper>'
		echo "    <macros><shard>$shard</shard><replica>$name</replica></macros>"
		echo '    <distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>'
		echo '</yandex>'
	} >"$DIR/$name/etc/config.d/cluster.xml"
}

dsn() { printf 'clickhouse://default@127.0.0.1:%s/\n' "$1"; }

# ---- commands ---------------------------------------------------------------

cmd_start() {
	local name shard started=()
	if [[ -r $DIR/shape ]]; then
		local old
		old=$(<"$DIR/shape")
		if [[ $old != "$SHARDS $REPLICAS" ]]; then
			die "$DIR holds a cluster of ${old/ / shards x } replicas; stop it and use another DIR for $SHARDS x $REPLICAS"
		fi
	fi
	echo "$SHARDS $REPLICAS" >"$DIR/shape"
	zk_start
	# Ports of the servers already running are kept by reuse_or_pick only
	# when free, so a partly running cluster is stopped first.
	for name in $(servers); do
		if "${CLICKHOUSE[@]}" status "$DIR/$name" >/dev/null 2>&1; then
			log "$name is running already; restarting the servers so that every config names the same ports"
			stop_servers
			break
		fi
	done
	# Every config names every port, so a port taken between choosing and
	# binding (other servers on this machine) means new ports for all.
	local attempt ok
	for attempt in 1 2 3; do
		choose_ports
		ok=1
		for name in $(servers); do
			shard=${name#s}
			shard=${shard%%r*}
			mkdir -p "$DIR/$name"
			write_cluster_xml "$name" "$shard"
			if ! CH_NATIVE_PORT=${NATIVE[$name]} CH_HTTP_PORT=${HTTP[$name]} "${CLICKHOUSE[@]}" start "$DIR/$name" >/dev/null; then
				log "server $name failed to start (attempt $attempt; logs in $DIR/$name/log); stopping the others"
				stop_servers
				ok=0
				break
			fi
			started+=("$name")
		done
		((ok)) && break
		rm -f "$DIR/ports"
		TAKEN=" $(read_file "$DIR/zk/client.port") "
	done
	if ((!ok)); then
		zk_stop
		die "cluster start failed after 3 attempts"
	fi
	log "cluster $CLUSTER_NAME: $SHARDS shard(s) x $REPLICAS replica(s) in $DIR"
	for name in $(servers); do
		dsn "${NATIVE[$name]}"
	done
}

stop_servers() {
	local names
	# Reverse order of start.
	names=$(servers | tac)
	for name in $names; do
		"${CLICKHOUSE[@]}" stop "$DIR/$name" || true
	done
}

cmd_stop() {
	stop_servers
	zk_stop
}

cmd_status() {
	local name port rc=0 out=()
	if zk_running; then
		log "ZooKeeper running (pid $(read_file "$DIR/zk/pid"), port $(read_file "$DIR/zk/client.port"))"
	else
		log "ZooKeeper not running"
		rc=1
	fi
	for name in $(servers); do
		if port=$("${CLICKHOUSE[@]}" status "$DIR/$name" 2>/dev/null); then
			out+=("$port")
		else
			log "server $name not running"
			rc=1
		fi
	done
	((${#out[@]} == 0)) || printf '%s\n' "${out[@]}"
	return $rc
}

# ---- main -------------------------------------------------------------------

[[ $# -ge 2 ]] || usage
CMD=$1
DIR_ARG=$2
shift 2
[[ -n $DIR_ARG ]] || usage

SHARDS=
REPLICAS=
while [[ $# -gt 0 ]]; do
	case $1 in
	--shards) [[ $# -ge 2 ]] || usage; SHARDS=$2; shift 2 ;;
	--shards=*) SHARDS=${1#*=}; shift ;;
	--replicas) [[ $# -ge 2 ]] || usage; REPLICAS=$2; shift 2 ;;
	--replicas=*) REPLICAS=${1#*=}; shift ;;
	*) usage ;;
	esac
done

case $CMD in
start) mkdir -p "$DIR_ARG" ;;
stop | status)
	if [[ ! -d $DIR_ARG ]]; then
		[[ $CMD == stop ]] && { log "not running (no directory $DIR_ARG)"; exit 0; }
		die "no cluster in $DIR_ARG (directory does not exist)"
	fi
	;;
*) usage ;;
esac
DIR=$(cd "$DIR_ARG" && pwd -P)
case $DIR in
*['&<>"'\''']*) die "DIR must not contain & < > \" or ': $DIR" ;;
esac

# stop and status use the shape of the last start unless told otherwise.
if [[ -z $SHARDS || -z $REPLICAS ]] && [[ $CMD != start ]] && [[ -r $DIR/shape ]]; then
	read -r old_s old_r <"$DIR/shape"
	SHARDS=${SHARDS:-$old_s}
	REPLICAS=${REPLICAS:-$old_r}
fi
SHARDS=${SHARDS:-2}
REPLICAS=${REPLICAS:-2}
[[ $SHARDS =~ ^[1-9][0-9]?$ ]] || die "--shards must be 1-99, got $SHARDS"
[[ $REPLICAS =~ ^[1-9][0-9]?$ ]] || die "--replicas must be 1-99, got $REPLICAS"

if [[ $CMD != status ]] && command -v flock >/dev/null 2>&1; then
	exec 9>>"$DIR/.lock"
	flock 9
fi

case $CMD in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
esac
