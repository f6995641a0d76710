#!/bin/sh
# pgbench.sh builds the pgbench benchmark and runs it from the repository root: pgbench TPC-B
# on one database, with a synchronous standby, and through the txshim in dual mode.
# Extra arguments go to bench/pgbench, e.g. bench/pgbench.sh -T 30 -c 16 -rounds 2
set -eu
cd "$(dirname "$0")/.."
tmp=$(mktemp -d "${TMPDIR:-/tmp}/pgbench-bin.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
go build -o "$tmp/pgbench-bench" ./bench/pgbench
"$tmp/pgbench-bench" "$@"
