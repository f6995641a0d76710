#!/bin/sh
# proxy.sh builds the proxy benchmark and runs it from the repository root:
# the toy WireServer direct, through tandem and through HAProxy (when on PATH).
# Extra arguments go to proxybench, e.g. bench/proxy.sh -duration 5s -idle 5000
set -eu
cd "$(dirname "$0")/.."
tmp=$(mktemp -d "${TMPDIR:-/tmp}/proxybench-bin.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
go build -o "$tmp/proxybench" ./bench/proxybench
"$tmp/proxybench" "$@"
