#!/usr/bin/env bash
# Networking costs: `run --rm busybox true` with no network, on the default bridge and on a user
# network (the network's share of start-up), the embedded DNS server's query latency, and TCP
# throughput container→container with busybox nc. Docker where its daemon runs; podman is left
# out because netavark turns on the host's ip_forward. Usage: bench/network.sh [RUNS]
source "$(dirname "$0")/lib.sh"
RUNS="${1:-30}"
command -v hyperfine >/dev/null || { echo "install hyperfine (apt-get install hyperfine)"; exit 1; }
build_berth
start_berthd
TAR="$WORK/busybox-rootfs.tar"
[ -f "$TAR" ] || "$ROOT/scripts/make-busybox-rootfs.sh" "$TAR"
berth import "$TAR" busybox >/dev/null
berth network create -o "com.docker.network.bridge.name=${BNET_BRIDGE}u" benchnet >/dev/null

measure() { # name json command...
  local name="$1" json="$2"; shift 2
  hyperfine -N --runs "$RUNS" --warmup 3 "$@" --export-json "$json" >/dev/null 2>&1 || { echo "$name: failed"; return 1; }
  printf '%-52s median %8s ms\n' "$name" "$(median_ms "$json")"
}

B="$BIN/berth -H unix://$BSOCK"
# The variants run interleaved (one of each per round), so load from elsewhere on the machine
# falls on all of them alike; medians of wall time per run.
VARIANTS=(
  "none|--network none"
  "bridge|"
  "user|--network benchnet"
  "port-lo|-p 127.0.0.1::80"
  "port-dnat|-p $BNET_GW::80"
)
LABELS=(
  "berth run --rm --network none busybox true"
  "berth run --rm busybox true (default bridge)"
  "berth run --rm --network benchnet busybox true"
  "berth run --rm -p 127.0.0.1::80 busybox true"
  "berth run --rm -p BRIDGE-IP::80 busybox true (DNAT)"
)
for v in "${VARIANTS[@]}"; do : > "$WORK/net-${v%%|*}.ms"; done
for v in "${VARIANTS[@]}"; do $B run --rm ${v#*|} busybox true >/dev/null; done   # warm-up
for _ in $(seq "$RUNS"); do
  for v in "${VARIANTS[@]}"; do
    t0=$(date +%s%N); $B run --rm ${v#*|} busybox true >/dev/null; t1=$(date +%s%N)
    echo $(( (t1 - t0) / 1000 )) >> "$WORK/net-${v%%|*}.ms"
  done
done
med() { python3 -c 'import statistics,sys; print("%.1f" % (statistics.median(float(l) for l in open(sys.argv[1])) / 1000))' "$1"; }
i=0
for v in "${VARIANTS[@]}"; do
  printf '%-52s median %8s ms\n' "${LABELS[$i]}" "$(med "$WORK/net-${v%%|*}.ms")"; i=$((i + 1))
done
NONE=$(med "$WORK/net-none.ms"); BR=$(med "$WORK/net-bridge.ms"); USR=$(med "$WORK/net-user.ms")
PORT=$(med "$WORK/net-port-lo.ms"); DNAT=$(med "$WORK/net-port-dnat.ms")
delta() { python3 -c 'import sys; print("%+.1f" % (float(sys.argv[1]) - float(sys.argv[2])))' "$1" "$2"; }
echo "network cost: default bridge $(delta "$BR" "$NONE") ms, user network $(delta "$USR" "$NONE") ms, -p loopback $(delta "$PORT" "$NONE") ms, -p with a DNAT rule $(delta "$DNAT" "$NONE") ms (target <= +5 ms; docker +40 ms)"

# DNS: 200 lookups of a container name through 127.0.0.11, against 200 starts of a process that
# does nothing (the lookups' own process start-up), in one exec each.
berth run -d --name srv --network benchnet busybox sleep 3600 >/dev/null
berth run -d --name cli --network benchnet busybox sleep 3600 >/dev/null
loop_ms() { # script -> wall ms of one exec running it
  local t0 t1; t0=$(date +%s%N); berth exec cli sh -c "$1" >/dev/null 2>&1; t1=$(date +%s%N)
  echo $(( (t1 - t0) / 1000000 ))
}
Q=999999; Z=999999   # the best of 5 alternating rounds of each
for _ in 1 2 3 4 5; do
  q=$(loop_ms 'for i in $(seq 200); do nslookup srv 127.0.0.11; done'); [ "$q" -lt "$Q" ] && Q=$q
  z=$(loop_ms 'for i in $(seq 200); do busybox true; done'); [ "$z" -lt "$Z" ] && Z=$z
done
echo "embedded DNS: 200 lookups ${Q} ms, 200 empty processes ${Z} ms → $(python3 -c "print('%.2f' % (($Q - $Z) / 200))") ms per query"

# TCP throughput: 256 MiB through busybox nc, container→container over the user network, and
# over loopback inside one container (what nc itself allows). The receiver's stdin never ends
# (busybox nc quits when its peer half-closes); one exec's wall time, less an empty exec's.
MIB=256
xfer_ms() { # receiver-container port sender's-target-host
  berth exec -d "$1" sh -c "sleep 3600 | nc -l -p $2 > /dev/null" >/dev/null
  sleep 0.3
  local t0 t1; t0=$(date +%s%N)
  berth exec cli sh -c "dd if=/dev/zero bs=1M count=$MIB 2>/dev/null | nc $3 $2" >/dev/null
  t1=$(date +%s%N); echo $(( (t1 - t0) / 1000000 ))
}
E=$(loop_ms 'true')
T=$(xfer_ms srv 5001 srv)
L=$(xfer_ms cli 5002 127.0.0.1)
mbps() { python3 -c "import sys; print('%.0f' % ($MIB / max(int(sys.argv[1]) - $E, 1) * 1000))" "$1"; }
echo "TCP with busybox nc, $MIB MiB: container→container $(mbps "$T") MiB/s (${T} ms), loopback in one container $(mbps "$L") MiB/s (${L} ms)"
berth rm -f srv cli >/dev/null
berth network rm benchnet >/dev/null

if docker_daemon_up; then
  measure "docker run --rm --network none busybox true" "$WORK/dnet-none.json" "env DOCKER_HOST= docker run --rm --network none busybox true"
  measure "docker run --rm busybox true (docker0)" "$WORK/dnet-bridge.json" "env DOCKER_HOST= docker run --rm busybox true"
  echo "docker's network cost: $(delta "$(median_ms "$WORK/dnet-bridge.json")" "$(median_ms "$WORK/dnet-none.json")") ms"
else
  echo "docker: no daemon running here (its figure in the issue: +40 ms for the default bridge)"
fi
