#!/usr/bin/env bash
# CPU shares under contention: two busy containers pinned to one CPU, -c 1024 and -c 512,
# should split it about 2:1. Also the cost of a memory limit on start. Usage: bench/limits.sh [SECONDS]
source "$(dirname "$0")/lib.sh"
SECS="${1:-5}"
build_berth
start_berthd
TAR="$WORK/busybox-rootfs.tar"
[ -f "$TAR" ] || "$ROOT/scripts/make-busybox-rootfs.sh" "$TAR"
berth import "$TAR" busybox >/dev/null

usage_ns() { cat "/sys/fs/cgroup/cpuacct/berth-bench/$1/cpuacct.usage"; }
A=$(berth run -d --cpuset-cpus 0 -c 1024 busybox sh -c 'while :; do :; done')
B=$(berth run -d --cpuset-cpus 0 -c 512 busybox sh -c 'while :; do :; done')
a0=$(usage_ns "$A"); b0=$(usage_ns "$B")
sleep "$SECS"
a1=$(usage_ns "$A"); b1=$(usage_ns "$B")
berth rm -f "$A" "$B" >/dev/null
da=$((a1 - a0)); db=$((b1 - b0))
echo "cpu over ${SECS}s on one CPU: -c 1024 $((da / 1000000)) ms, -c 512 $((db / 1000000)) ms, ratio $(ratio "$da" "$db") (target about 2)"

if command -v hyperfine >/dev/null; then
  hyperfine -N --runs 20 --warmup 3 "$BIN/berth -H unix://$BSOCK run --rm busybox true" \
    "$BIN/berth -H unix://$BSOCK run --rm -m 64m --cpus 1 --pids-limit 100 busybox true" \
    --export-json "$WORK/limits-start.json" >/dev/null 2>&1
  python3 - "$WORK/limits-start.json" <<'PY'
import json, sys, statistics
r = json.load(open(sys.argv[1]))["results"]
m = [statistics.median(x["times"]) * 1000 for x in r]
print(f"run --rm true: plain {m[0]:.1f} ms, with -m/--cpus/--pids-limit {m[1]:.1f} ms")
PY
fi
