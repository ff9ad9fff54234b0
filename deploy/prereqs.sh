#!/usr/bin/env bash
# Install the system packages that `make demo` or `make test` needs and this
# machine lacks (Debian or Ubuntu, as root or with sudo). Prints what it
# installs; does nothing, quickly, when everything is there.
#
#   deploy/prereqs.sh demo   ClickHouse server and client
#   deploy/prereqs.sh cluster  + zookeeper (deploy/cluster.sh)
#   deploy/prereqs.sh test   + kcat (librdkafka interop test), chromium (the
#                            report page test), promtool (package prometheus:
#                            the deploy files' PromQL), npm (the SQL check on
#                            a current ClickHouse engine), make, curl,
#                            zookeeper (make test-cluster: deploy/cluster.sh)
#
# npm is installed only when no `npm` is on PATH: a Node.js that bundles npm
# conflicts with Debian's npm package.
set -euo pipefail

die() { printf 'prereqs.sh: error: %s\n' "$*" >&2; exit 1; }
say() { printf 'prereqs.sh: %s\n' "$*" >&2; }

profile=${1:-test}
# clickhouse-server lives in /usr/sbin, which a non-root PATH may lack.
have() { PATH=$PATH:/usr/sbin:/sbin command -v "$1" >/dev/null 2>&1; }

want=()
need() { have "$1" || want+=("${2:-$1}"); }
# No command on PATH: deploy/cluster.sh runs ZooKeeper's jar with java.
need_zookeeper() { [[ -r /usr/share/java/zookeeper.jar ]] && have java || want+=(zookeeper); }
need clickhouse-server
need clickhouse-client
case $profile in
demo) ;;
cluster) need_zookeeper ;;
test)
	need kcat
	need promtool prometheus
	need chromium
	need make
	need curl
	need_zookeeper
	if ! have npm; then
		have node || want+=(nodejs)
		want+=(npm)
	fi
	dpkg-query -W -f='${Status}' ca-certificates 2>/dev/null | grep -q 'ok installed' || want+=(ca-certificates)
	;;
*) die "unknown profile $profile (want demo, cluster or test)" ;;
esac

((${#want[@]})) || exit 0

command -v apt-get >/dev/null 2>&1 || die "missing ${want[*]} and apt-get is not available: install them by hand"
if [[ $(id -u) -eq 0 ]]; then
	sudo=()
elif command -v sudo >/dev/null 2>&1; then
	sudo=(sudo)
else
	die "missing ${want[*]}: run as root, or install sudo, or install them by hand (apt-get install ${want[*]})"
fi
say "installing ${want[*]} with apt-get"
install() { "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "${want[@]}" >&2; }
if ! install; then
	say "install failed; running apt-get update and retrying"
	"${sudo[@]}" apt-get update >&2 || say "apt-get update failed (continuing)"
	install || die "could not install ${want[*]}: see apt-get's message above"
fi
say "installed ${want[*]}"
