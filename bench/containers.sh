#!/usr/bin/env bash
# Container start/exec/memory: berth (its CLI and the docker CLI against berthd) vs crun,
# podman and docker where installed. Prints medians and ratios. Usage: bench/containers.sh [RUNS]
source "$(dirname "$0")/lib.sh"
RUNS="${1:-30}"
command -v hyperfine >/dev/null || { echo "install hyperfine (apt-get install hyperfine)"; exit 1; }
build_berth
start_berthd
TAR="$WORK/busybox-rootfs.tar"
[ -f "$TAR" ] || "$ROOT/scripts/make-busybox-rootfs.sh" "$TAR"
berth import "$TAR" busybox >/dev/null
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
pss() { awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup"; }
echo "idle berthd (an image, no containers): RSS $(rss "$BERTHD_PID") KiB (target <= 15360)"

measure() { # name json command...
  local name="$1" json="$2"; shift 2
  hyperfine -N --runs "$RUNS" --warmup 3 "$@" --export-json "$json" >/dev/null 2>&1 || { echo "$name: failed"; return 1; }
  printf '%-44s median %8s ms\n' "$name" "$(median_ms "$json")"
}

measure "berth run --rm busybox true" "$WORK/run-berth.json" "$BIN/berth -H unix://$BSOCK run --rm busybox true"
B=$(median_ms "$WORK/run-berth.json")
measure "docker CLI → berthd: run --rm busybox true" "$WORK/run-docker-berthd.json" \
  "env DOCKER_HOST=unix://$BSOCK docker run --rm busybox true"
CID=$(berth run -d busybox sleep 3600)
measure "berth exec CID true" "$WORK/exec-berth.json" "$BIN/berth -H unix://$BSOCK exec $CID true"

# 20 detached starts, one shell loop timed as a whole.
t0=$(date +%s%N)
for i in $(seq 20); do berth run -d --label bench=mem busybox sleep 3600 >/dev/null; done
t1=$(date +%s%N)
echo "20 detached starts (berth)                   $(( (t1 - t0) / 1000000 )) ms (target <= 400)"
sleep 2
echo "idle-ish berthd with 21 containers: RSS $(rss "$BERTHD_PID") KiB"
total_rss=0; total_pss=0; n=0
for f in "$BENCH_DIR"/exec/s/*/shim.pid; do
  p=$(cat "$f"); total_rss=$((total_rss + $(rss "$p"))); total_pss=$((total_pss + $(pss "$p"))); n=$((n + 1))
done
[ "$n" -gt 0 ] && echo "shim per container (n=$n): RSS $((total_rss / n)) KiB, PSS $((total_pss / n)) KiB (target RSS <= 1024)"
berth rm -f $(berth ps -aq) >/dev/null

if command -v crun >/dev/null; then
  BUNDLE="$WORK/crun-bundle"; rm -rf "$BUNDLE"; mkdir -p "$BUNDLE/rootfs"; tar -C "$BUNDLE/rootfs" -xf "$TAR"
  (cd "$BUNDLE" && crun spec && python3 - <<'PY'
import json; c=json.load(open("config.json")); c["process"]["terminal"]=False; c["process"]["args"]=["true"]; json.dump(c,open("config.json","w"))
PY
)
  # crun refuses hybrid cgroup hosts (cgroup2 mounted beside v1), as on these VMs.
  if measure "raw crun run (reference floor)" "$WORK/run-crun.json" "crun run -b $BUNDLE bench-crun"; then
    echo "berth run / crun = $(ratio "$B" "$(median_ms "$WORK/run-crun.json")")"
  fi
fi
if docker_daemon_up; then
  measure "docker run --rm busybox true" "$WORK/run-docker.json" "docker run --rm busybox true"
  echo "berth run / docker run = $(ratio "$B" "$(median_ms "$WORK/run-docker.json")")"
fi
echo "target: berth run --rm busybox true <= 30 ms median (docker 265 ms on this VM)"
