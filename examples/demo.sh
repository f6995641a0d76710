#!/usr/bin/env bash
# A local two-site demo on 127.0.0.1, in two parts.
# 1. Two toy WireServers (in-memory), two tandem sidecars and a witness: an
#    operator reaching site1 through either proxy, failover to site2 when
#    site1's server dies, and failback when it returns.
# 2. examples/dbdemo: each site with its own PostgreSQL cluster, the servers
#    storing through the txshim; the whole master site killed with nothing
#    acknowledged lost, and its return. PostgreSQL is installed from Debian's
#    packages when missing (as root); without it this part is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d -t tandem-demo-bin.XXXXXX)
# The processes' output; TANDEM_DEMO_LOG names another file for it (the demo's test keeps it).
log=${TANDEM_DEMO_LOG:-$work/log}
pids=()
stop_all() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pids=()
}
cleanup() {
  stop_all
  rm -rf "$work" /tmp/tandem-demo
}
trap cleanup EXIT
# A trap that returns would let the script go on after Ctrl-C: end it, and the EXIT trap cleans up.
trap 'exit 130' INT
trap 'exit 143' TERM

echo "== building tandem and the toy wireserver"
go build -o "$work/tandem" ./cmd/tandem
go build -o "$work/wireserver" ./examples/wireserver
go build -o "$work/dbdemo" ./examples/dbdemo

start() { "$@" >>"$log" 2>&1 & pids+=($!); }
server() { start "$work/wireserver" -listen "127.0.0.1:700$1" -name "site$1"; }

# ask PROXY_PORT CMD: one operator request through a tandem proxy.
ask() {
  exec 3<>"/dev/tcp/127.0.0.1/$1"
  printf '%s\n' "$2" >&3
  local reply; IFS= read -r -t 5 reply <&3 || reply="(no reply)"
  exec 3>&-
  echo "$reply"
}
wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local limit=$1 what=$2; shift 2
  for _ in $(seq 1 $((limit * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "timed out waiting for $what" >&2; tail -40 "$log" >&2; exit 1
}
served_by() { [ "$(ask "$1" PING)" = "PONG $2" ]; }
# get PORT PATH: the body of an admin API answer on 127.0.0.1; fails unless it is 200 OK. Plain
# bash, so that a fresh machine without curl runs the demo too.
get() {
  exec 4<>"/dev/tcp/127.0.0.1/$1" || return 1
  printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$2" >&4
  local status body
  IFS= read -r -t 5 status <&4 || status=
  body=$(timeout 5 sed '1,/^\r$/d' <&4) || true
  exec 4>&-
  [[ $status == *" 200 "* ]] || return 1
  printf '%s\n' "$body"
}

echo "== starting two toy servers, two sidecars and a witness"
server 1; s1=${pids[-1]} # not $(server 1): a subshell would keep the pid from cleanup
server 2
start "$work/tandem" witness -config examples/witness.toml
start "$work/tandem" run -config examples/site1.toml
start "$work/tandem" run -config examples/site2.toml
wait_for 20 "site1 to be master" get 7181 /master
"$work/tandem" status -config examples/site1.toml | head -8

echo "== an operator through site1's proxy (7101) and site2's proxy (7102)"
echo "   7101: $(ask 7101 'SET greeting hello')  $(ask 7101 PING)"
echo "   7102: $(ask 7102 PING)"

echo "== kill -9 site1's server"
t0=$(date +%s%N)
# Reaped at once, quietly: else bash reports "line N: PID Killed" as if the demo failed.
{ kill -9 "$s1" && wait "$s1"; } 2>/dev/null || true
wait_for 10 "site2 to serve" served_by 7102 site2
echo "   served by site2 after $(( ($(date +%s%N) - t0) / 1000000 )) ms: $(ask 7101 PING)"

echo "== site1's server comes back; control returns after failback_delay (10s)"
server 1
wait_for 30 "site1 to serve again" served_by 7102 site1
echo "   7102: $(ask 7102 PING)"
get 7181 /metrics | grep -E '^tandem_(term|role_changes_total|proxy_connections_total) '
echo "== part 1 done"
stop_all

echo
echo "==== part 2: with PostgreSQL at each site"
if bash .ci/install-postgres; then
  # In the background so that the trap above stops it (it then stops what it started).
  "$work/dbdemo" -tandem "$work/tandem" -wireserver "$work/wireserver" & pids+=($!)
  wait $!
else
  echo "skipped: PostgreSQL's server binaries are missing and could not be installed (run as root, or install postgresql)"
fi
