#!/usr/bin/env bash
# `load` of a 200 MB, 5-layer archive: berth vs podman (and docker where a dockerd runs).
# Prints medians and ratios. Usage: bench/load.sh [RUNS]
source "$(dirname "$0")/lib.sh"
RUNS="${1:-5}"
command -v hyperfine >/dev/null || { echo "install hyperfine (apt-get install hyperfine)"; exit 1; }
build_berth
ARCHIVE="$WORK/big-200mb.tar"
[ -f "$ARCHIVE" ] || "$BIN/berth-fixture" big-archive "$ARCHIVE" 5 40 bench/big:1
start_berthd
hyperfine -N --runs "$RUNS" --warmup 1 \
  --prepare "sh -c '$BIN/berth -H unix://$BSOCK rmi -f bench/big:1 >/dev/null 2>&1; true'" \
  "$BIN/berth -H unix://$BSOCK load -q -i $ARCHIVE" --export-json "$WORK/load-berth.json" >/dev/null
B=$(median_ms "$WORK/load-berth.json")
echo "berth load   median ${B} ms"
if command -v podman >/dev/null; then
  hyperfine -N --runs "$RUNS" --warmup 1 --prepare "sh -c 'podman rmi -f localhost/bench/big:1 bench/big:1 >/dev/null 2>&1; true'" \
    "podman load -q -i $ARCHIVE" --export-json "$WORK/load-podman.json" >/dev/null 2>&1 || true
  if [ -s "$WORK/load-podman.json" ]; then
    P=$(median_ms "$WORK/load-podman.json")
    echo "podman load  median ${P} ms   berth/podman = $(ratio "$B" "$P") (target <= 0.5)"
    podman rmi -f localhost/bench/big:1 bench/big:1 >/dev/null 2>&1 || true
  fi
fi
if docker_daemon_up; then
  hyperfine -N --runs "$RUNS" --warmup 1 --prepare "sh -c 'docker rmi -f bench/big:1 >/dev/null 2>&1; true'" \
    "docker load -q -i $ARCHIVE" --export-json "$WORK/load-docker.json" >/dev/null 2>&1 || true
  D=$(median_ms "$WORK/load-docker.json")
  echo "docker load  median ${D} ms   berth/docker = $(ratio "$B" "$D")"
fi
