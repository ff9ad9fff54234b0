#!/usr/bin/env bash
# Run a private, loopback-only ClickHouse server (Debian's 18.16.1) in DIR.
#
#   deploy/clickhouse.sh start  DIR   start (or reuse) the server; prints the DSN
#   deploy/clickhouse.sh stop   DIR   stop it (no error if it is not running)
#   deploy/clickhouse.sh status DIR   exit 0 and print the DSN if running, else exit 1
#   deploy/clickhouse.sh url    DIR   print the DSN; exit 1 if not running
#   deploy/clickhouse.sh client DIR [ARGS...]   clickhouse-client on its native port
#
# The DSN is clickhouse://default@127.0.0.1:NATIVE_PORT/ and is the only line
# written to stdout by start/status/url; progress and errors go to stderr.
#
# Layout of DIR: etc/ (rendered config.xml, users.xml), data/, tmp/,
# user_files/, format_schemas/, log/ (server logs and stdout.log), pid,
# native.port, http.port.
#
# Environment: CH_NATIVE_PORT, CH_HTTP_PORT force the ports (otherwise free
# random ports in 20000-59999 are chosen, reusing the previous ones when they
# are still free); CH_START_TIMEOUT (seconds, default 30); CH_STOP_TIMEOUT
# (seconds, default 20).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
TEMPLATE_DIR=$SCRIPT_DIR/clickhouse

log() { printf 'clickhouse.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
	echo "usage: $0 start|stop|status|url|client DIR [client args...]" >&2
	exit 2
}

find_server() {
	# clickhouse-server lives in /usr/sbin, which is not always on PATH.
	local p
	p=$(PATH=$PATH:/usr/sbin:/sbin command -v clickhouse-server 2>/dev/null) || return 1
	printf '%s\n' "$p"
}

ensure_installed() {
	if ! find_server >/dev/null || ! command -v clickhouse-client >/dev/null 2>&1; then
		bash "$SCRIPT_DIR/prereqs.sh" demo
	fi
	find_server >/dev/null || die "clickhouse-server still not found after install"
}

# ---- state of DIR -------------------------------------------------------

read_file() { [[ -s $1 ]] && tr -d ' \n\r\t' <"$1"; }

dsn() { printf 'clickhouse://default@127.0.0.1:%s/\n' "$1"; }

# ping PORT: true when GET /ping on the HTTP port answers "Ok."
ping_http() {
	local port=$1 body
	if command -v curl >/dev/null 2>&1; then
		body=$(curl -fsS --max-time 2 "http://127.0.0.1:$port/ping" 2>/dev/null) || return 1
	else
		body=$(
			exec 2>/dev/null
			exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
			printf 'GET /ping HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
			timeout 2 cat <&3
		) || return 1
	fi
	[[ $body == *Ok.* ]]
}

# is_our_server PID: the process runs a clickhouse binary (not, say, the
# setsid or nohup that launched it) with this DIR's config.
is_our_server() {
	local pid=$1 cmd exe
	cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
	[[ $cmd == *"--config-file=$DIR/etc/config.xml"* ]] || return 1
	if exe=$(readlink "/proc/$pid/exe" 2>/dev/null); then
		[[ ${exe##*/} == clickhouse* ]] || return 1
	fi
}

# pid_alive PID: the process exists and is our server (protects against a
# recycled pid).
pid_alive() {
	local pid=$1
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	if [[ -d /proc/$pid ]]; then
		is_our_server "$pid"
	fi
}

# pid_by_config: pid of the clickhouse-server started with DIR's config.
pid_by_config() {
	local f pid
	for f in /proc/[0-9]*; do
		pid=${f#/proc/}
		if is_our_server "$pid"; then
			echo "$pid"
			return 0
		fi
	done
	return 1
}

server_version() {
	local v
	command -v curl >/dev/null 2>&1 || return 0
	v=$(curl -fsS --max-time 2 --data-binary 'SELECT version()' "http://127.0.0.1:$HTTP/" 2>/dev/null) || return 0
	printf ' %s' "$v"
}

# running: sets PID/NATIVE/HTTP and succeeds when DIR has a live server.
running() {
	PID=$(read_file "$DIR/pid") || return 1
	NATIVE=$(read_file "$DIR/native.port") || return 1
	HTTP=$(read_file "$DIR/http.port") || return 1
	pid_alive "$PID" || return 1
	ping_http "$HTTP"
}

# ---- ports ----------------------------------------------------------------

# port_free PORT: nobody listens on it (any address) and nobody answers on
# 127.0.0.1:PORT.
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

random_port() {
	local p
	for _ in $(seq 1 200); do
		p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
		if [[ $p != "${1:-}" ]] && port_free "$p"; then
			echo "$p"
			return 0
		fi
	done
	die "no free TCP port found in 20000-59999"
}

# choose_ports ATTEMPT: sets NATIVE and HTTP.
choose_ports() {
	local attempt=$1 old
	if [[ -n ${CH_NATIVE_PORT:-} ]]; then
		NATIVE=$CH_NATIVE_PORT
	else
		old=$(read_file "$DIR/native.port" || true)
		if [[ $attempt -eq 1 && $old =~ ^[0-9]+$ ]] && port_free "$old"; then
			NATIVE=$old
		else
			NATIVE=$(random_port)
		fi
	fi
	if [[ -n ${CH_HTTP_PORT:-} ]]; then
		HTTP=$CH_HTTP_PORT
	else
		old=$(read_file "$DIR/http.port" || true)
		if [[ $attempt -eq 1 && $old =~ ^[0-9]+$ && $old != "$NATIVE" ]] && port_free "$old"; then
			HTTP=$old
		else
			HTTP=$(random_port "$NATIVE")
		fi
	fi
	[[ $NATIVE =~ ^[0-9]+$ && $HTTP =~ ^[0-9]+$ ]] || die "ports must be numbers (native=$NATIVE http=$HTTP)"
	[[ $NATIVE != "$HTTP" ]] || die "native and HTTP ports are the same ($NATIVE)"
	if [[ -n ${CH_NATIVE_PORT:-} ]] && ! port_free "$NATIVE"; then
		die "CH_NATIVE_PORT=$NATIVE is already in use"
	fi
	if [[ -n ${CH_HTTP_PORT:-} ]] && ! port_free "$HTTP"; then
		die "CH_HTTP_PORT=$HTTP is already in use"
	fi
}

# ---- config -----------------------------------------------------------------

# check_comments FILE: ClickHouse 18.16 fails to start when an XML comment
# contains a double hyphen; catch that here with a readable message.
check_comments() {
	local s c
	s=$(<"$1")
	while [[ $s == *'<!--'* ]]; do
		s=${s#*'<!--'}
		c=${s%%'-->'*}
		[[ $c != *'--'* ]] || die "$1: an XML comment contains a double hyphen; ClickHouse 18.16 will not start"
		s=${s#*'-->'}
	done
}

# render TEMPLATE OUT
render() {
	local s
	[[ -r $1 ]] || die "template $1 not found"
	check_comments "$1"
	s=$(<"$1")
	s=${s//@DIR@/"$DIR"}
	s=${s//@NATIVE_PORT@/"$NATIVE"}
	s=${s//@HTTP_PORT@/"$HTTP"}
	printf '%s\n' "$s" >"$2"
}

# ---- commands -------------------------------------------------------------

# Byte offsets of the logs when the current start attempt began, so that only
# this attempt's output is shown on failure.
OUT_OFFSET=0
ERR_OFFSET=0

print_logs() {
	local f off
	for f in stdout.log clickhouse-server.err.log; do
		off=$OUT_OFFSET
		[[ $f == stdout.log ]] || off=$ERR_OFFSET
		if [[ -s $DIR/log/$f ]] && (($(stat -c %s "$DIR/log/$f") > off)); then
			echo "----- $DIR/log/$f (this start attempt, last 30 lines) -----" >&2
			tail -c +"$((off + 1))" "$DIR/log/$f" | tail -n 30 >&2
		fi
	done
}

# launch: one start attempt with the current NATIVE/HTTP. Returns 0 when the
# server answers, 1 when it failed, 3 when it failed because a port was taken.
launch() {
	local server t0 deadline pid now
	server=$(find_server)
	render "$TEMPLATE_DIR/config.xml" "$DIR/etc/config.xml"
	render "$TEMPLATE_DIR/users.xml" "$DIR/etc/users.xml"
	local errlog=$DIR/log/clickhouse-server.err.log
	OUT_OFFSET=0 ERR_OFFSET=0
	[[ -f $DIR/log/stdout.log ]] && OUT_OFFSET=$(stat -c %s "$DIR/log/stdout.log")
	[[ -f $errlog ]] && ERR_OFFSET=$(stat -c %s "$errlog")
	printf '===== %s start native=%s http=%s =====\n' "$(date -u +%FT%TZ)" "$NATIVE" "$HTTP" >>"$DIR/log/stdout.log"

	t0=$(date +%s%N)
	# Run from DIR so that nothing is written to the caller's directory.
	# fd 9 holds the lock on DIR/.lock: the server must not inherit it.
	(exec 9>&- && cd "$DIR" && exec setsid nohup "$server" --config-file="$DIR/etc/config.xml" \
		</dev/null >>"$DIR/log/stdout.log" 2>&1) &
	pid=$!
	echo "$pid" >"$DIR/pid"
	echo "$NATIVE" >"$DIR/native.port"
	echo "$HTTP" >"$DIR/http.port"

	deadline=$((SECONDS + ${CH_START_TIMEOUT:-30}))
	while :; do
		if ping_http "$HTTP" && pid_alive "$pid"; then
			now=$(date +%s%N)
			log "ClickHouse$(server_version) ready in $(((now - t0) / 1000000)) ms (pid $pid, native $NATIVE, http $HTTP, dir $DIR)"
			return 0
		fi
		if ping_http "$HTTP" && ! pid_alive "$pid"; then
			# setsid forked (the launching shell had job control): find the
			# server by its command line and record that pid instead.
			local found
			if found=$(pid_by_config); then
				pid=$found
				echo "$pid" >"$DIR/pid"
				continue
			fi
		fi
		if ! kill -0 "$pid" 2>/dev/null; then
			wait "$pid" 2>/dev/null || true
			rm -f "$DIR/pid"
			if tail -c +"$((ERR_OFFSET + 1))" "$errlog" 2>/dev/null | grep -qi 'address already in use' ||
				tail -c +"$((OUT_OFFSET + 1))" "$DIR/log/stdout.log" | grep -qi 'address already in use'; then
				return 3
			fi
			log "clickhouse-server exited during start-up"
			return 1
		fi
		if ((SECONDS >= deadline)); then
			log "clickhouse-server did not answer /ping within ${CH_START_TIMEOUT:-30} s; stopping it"
			kill -KILL "$pid" 2>/dev/null || true
			wait "$pid" 2>/dev/null || true
			rm -f "$DIR/pid"
			return 1
		fi
		sleep 0.1
	done
}

cmd_start() {
	if running; then
		log "already running (pid $PID) in $DIR"
		dsn "$NATIVE"
		return 0
	fi
	ensure_installed
	# The process is alive but does not answer: give it a few seconds (it may
	# be starting), then stop it so that it releases the ports and the data.
	if [[ -n ${PID:-} ]] && pid_alive "$PID"; then
		for _ in $(seq 1 50); do
			if ping_http "$HTTP"; then
				log "already running (pid $PID) in $DIR"
				dsn "$NATIVE"
				return 0
			fi
			sleep 0.1
		done
		log "pid $PID does not answer /ping; stopping it first"
		cmd_stop
	fi
	mkdir -p "$DIR"/{etc,data,tmp,user_files,format_schemas,log}
	rm -f "$DIR/pid"

	local attempt rc
	for attempt in 1 2 3 4 5; do
		choose_ports "$attempt"
		rc=0
		launch || rc=$?
		case $rc in
		0)
			dsn "$NATIVE"
			return 0
			;;
		3)
			if [[ -n ${CH_NATIVE_PORT:-}${CH_HTTP_PORT:-} ]]; then
				print_logs
				die "port $NATIVE or $HTTP is already in use"
			fi
			log "port $NATIVE or $HTTP was taken meanwhile; retrying with other ports"
			;;
		*)
			print_logs
			die "clickhouse-server failed to start (logs in $DIR/log)"
			;;
		esac
	done
	print_logs
	die "clickhouse-server failed to start: ports kept being taken"
}

cmd_stop() {
	local pid waited
	pid=$(read_file "$DIR/pid" || true)
	if [[ -z $pid ]]; then
		log "not running (no pid file in $DIR)"
		return 0
	fi
	if ! pid_alive "$pid"; then
		log "not running (stale pid $pid)"
		rm -f "$DIR/pid"
		return 0
	fi
	kill -TERM "$pid" 2>/dev/null || true
	waited=0
	while kill -0 "$pid" 2>/dev/null; do
		if ((waited >= ${CH_STOP_TIMEOUT:-20} * 10)); then
			log "pid $pid still alive after ${CH_STOP_TIMEOUT:-20} s; sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
			sleep 0.2
			break
		fi
		sleep 0.1
		waited=$((waited + 1))
	done
	rm -f "$DIR/pid"
	log "stopped (pid $pid) in $DIR"
}

cmd_status() {
	if running; then
		dsn "$NATIVE"
		return 0
	fi
	log "not running in $DIR"
	return 1
}

cmd_client() {
	running || die "no running server in $DIR (run: $0 start $DIR)"
	exec clickhouse-client --host 127.0.0.1 --port "$NATIVE" "$@"
}

# ---- main -----------------------------------------------------------------

[[ $# -ge 2 ]] || usage
CMD=$1
DIR_ARG=$2
shift 2
[[ -n $DIR_ARG ]] || usage

case $CMD in
start)
	mkdir -p "$DIR_ARG"
	;;
stop | status | url | client)
	if [[ ! -d $DIR_ARG ]]; then
		case $CMD in
		stop)
			log "not running (no directory $DIR_ARG)"
			exit 0
			;;
		*) die "no running server in $DIR_ARG (directory does not exist)" ;;
		esac
	fi
	;;
*) usage ;;
esac

DIR=$(cd "$DIR_ARG" && pwd -P)
# The directory is written into XML; refuse characters that would need escaping.
case $DIR in
*['&<>"'\''']*) die "DIR must not contain & < > \" or ': $DIR" ;;
esac

# start and stop of one DIR are serialised (e.g. make demo and make bench
# started together).
if [[ $CMD == start || $CMD == stop ]] && command -v flock >/dev/null 2>&1; then
	exec 9>>"$DIR/.lock"
	flock 9
fi

PID=
NATIVE=
HTTP=
case $CMD in
start) [[ $# -eq 0 ]] || usage; cmd_start ;;
stop) [[ $# -eq 0 ]] || usage; cmd_stop ;;
status | url) [[ $# -eq 0 ]] || usage; cmd_status ;;
client) cmd_client "$@" ;;
esac
