# Shared by the benchmarks: builds berth, starts a private berthd, and reads hyperfine results.
# Benchmarks are not tests: they print figures and ratios; nothing here asserts.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${BERTH_BIN:-$ROOT/target/release}"   # BERTH_BIN=target/debug for a quick look
case "$BIN" in /*) ;; *) BIN="$ROOT/$BIN" ;; esac
WORK="${BENCH_WORK:-/var/tmp/berth-bench}"
mkdir -p "$WORK"

build_berth() {
  [ -n "${BERTH_BIN:-}" ] && return 0
  (cd "$ROOT" && cargo build --release --workspace --locked -q)
}

# Starts berthd on its own data root and socket; stopped by the EXIT trap.
start_berthd() {
  BENCH_DIR="$(mktemp -d "$WORK/d.XXXX")"
  BSOCK="$BENCH_DIR/berth.sock"
  # Its own bridge, subnet and nftables table (free 10.210.N.0/24, N in 240..254), and hands
  # off the host's ip_forward: benchmarks never change host settings or collide with a daemon.
  BNET_BRIDGE="bt-q$$"; BNET_TABLE="berth_q$$"
  local n; for n in $(seq 240 254); do ip -4 route | grep "^10\.210\.$n\." >/dev/null || break; done
  BNET_GW="10.210.$n.1"   # the default bridge's address: a host address only this bench uses
  "$BIN/berthd" --data-root "$BENCH_DIR/data" --exec-root "$BENCH_DIR/exec" -H "unix://$BSOCK" \
    --config-file /dev/null --log-level warn --cgroup-parent berth-bench \
    --bridge "$BNET_BRIDGE" --bip "10.210.$n.1/25" --default-address-pool "base=10.210.$n.128/25,size=28" \
    --nft-table "$BNET_TABLE" --ip-forward=false --ip-forward-no-drop 2>"$BENCH_DIR/berthd.log" &
  BERTHD_PID=$!
  trap stop_berthd EXIT
  for _ in $(seq 200); do [ -S "$BSOCK" ] && return 0; sleep 0.05; done
  echo "berthd did not start; log:" >&2; cat "$BENCH_DIR/berthd.log" >&2; exit 1
}

# Removes the benchmark's containers (they outlive berthd by design), then berthd and its files.
stop_berthd() {
  if [ -n "${BERTHD_PID:-}" ]; then
    local ids; ids=$("$BIN/berth" -H "unix://$BSOCK" ps -aq 2>/dev/null || true)
    [ -n "$ids" ] && "$BIN/berth" -H "unix://$BSOCK" rm -f $ids >/dev/null 2>&1
    kill "$BERTHD_PID" 2>/dev/null || true; wait "$BERTHD_PID" 2>/dev/null || true
  fi
  if [ -n "${BNET_BRIDGE:-}" ]; then   # what a berthd killed mid-way left
    nft delete table ip "$BNET_TABLE" 2>/dev/null || true; ip link del "$BNET_BRIDGE" 2>/dev/null || true
  fi
  [ -n "${BENCH_DIR:-}" ] && rm -rf "$BENCH_DIR"
  for d in /sys/fs/cgroup/*/berth-bench /sys/fs/cgroup/berth-bench; do [ -d "$d" ] && rmdir "$d" 2>/dev/null; done
  return 0
}

berth() { "$BIN/berth" -H "unix://$BSOCK" "$@"; }

# median_ms FILE.json -> median of the first command in milliseconds
median_ms() {
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"][0]; print("%.1f" % (r["median"]*1000))' "$1"
}

ratio() { python3 -c 'import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print("%.2f" % (a/b) if b else "n/a")' "$1" "$2"; }

docker_daemon_up() { command -v docker >/dev/null && DOCKER_HOST= docker info >/dev/null 2>&1; }
