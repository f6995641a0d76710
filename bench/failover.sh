#!/bin/sh
# failover.sh builds the failover benchmark and runs it from the repository
# root: faults on site1 of a tandem pair, and on the primary behind HAProxy
# (when on PATH), timed until the first new connection served by site2.
# Extra arguments go to the benchmark, e.g. bench/failover.sh -rounds 3 -profiles fast
set -eu
cd "$(dirname "$0")/.."
tmp=$(mktemp -d "${TMPDIR:-/tmp}/failover-bin.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
go build -o "$tmp/failover" ./bench/failover
"$tmp/failover" "$@"
