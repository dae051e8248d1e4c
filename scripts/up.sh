#!/usr/bin/env bash
# berth's main job on a fresh machine: install what is needed, build, start berthd on the
# default socket, make the default `busybox` image from Debian's busybox-static, use it, and
# build and run the example app image (examples/hello).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cargo build --release --workspace --locked
BIN="$PWD/target/release"
SOCK=/run/berth/berth.sock
if ! "$BIN/berth" version >/dev/null 2>&1; then
  mkdir -p /var/log
  setsid "$BIN/berthd" >>/var/log/berthd.log 2>&1 < /dev/null &
  for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.05; done
  echo "berthd started (pid $(cat /run/berth/berthd.pid)), log in /var/log/berthd.log"
fi
if ! "$BIN/berth" image inspect busybox >/dev/null 2>&1; then
  tar="$(mktemp -d)/busybox-rootfs.tar"
  ./scripts/make-busybox-rootfs.sh "$tar"
  "$BIN/berth" import -c 'CMD ["sh"]' "$tar" busybox:latest
  rm -rf "$(dirname "$tar")"
fi
"$BIN/berth" images
echo
# Run a container, and a detached one whose logs we read.
"$BIN/berth" run --rm busybox echo hello from a berth container
CID=$("$BIN/berth" run -d busybox sh -c 'for i in 1 2 3; do echo "tick $i"; sleep 0.2; done')
"$BIN/berth" logs -f "$CID"
"$BIN/berth" rm "$CID" >/dev/null
echo
# Build the example app from its Dockerfile (two stages, on the busybox image) and run it.
"$BIN/berth" build -t hello examples/hello
"$BIN/berth" run --rm hello
"$BIN/berth" run --rm -e GREETING_NAME=you hello again
echo
echo "berth is up. Try: $BIN/berth images   or   DOCKER_HOST=unix://$SOCK docker images"
