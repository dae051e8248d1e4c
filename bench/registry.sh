#!/usr/bin/env bash
# Registry server throughput: manifest GETs/s with wrk against `berth-registry serve` and,
# where installed, Debian's docker-registry (distribution 2.8), with the ratio; then push and
# pull times of a 200 MB image for berth, skopeo and podman.
source "$(dirname "$0")/lib.sh"
command -v wrk >/dev/null || { echo "install wrk (apt-get install wrk)"; exit 1; }
command -v skopeo >/dev/null || { echo "install skopeo (apt-get install skopeo)"; exit 1; }
build_berth
D="$(mktemp -d "$WORK/reg.XXXX")"
cleanup() {
  stop_berthd
  [ -n "${RP:-}" ] && kill "$RP" 2>/dev/null; [ -n "${DP:-}" ] && kill "$DP" 2>/dev/null; wait 2>/dev/null; rm -rf "$D"
}
trap cleanup EXIT
# A small OCI image to serve: the busybox rootfs as one layer.
TAR="$WORK/busybox-rootfs.tar"
[ -f "$TAR" ] || "$ROOT/scripts/make-busybox-rootfs.sh" "$TAR"
mkdir -p "$D/oci/blobs/sha256"
L=$(sha256sum "$TAR" | cut -d' ' -f1); cp "$TAR" "$D/oci/blobs/sha256/$L"; LS=$(stat -c %s "$TAR")
printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"config":{}}' "$L" > "$D/cfg"
C=$(sha256sum "$D/cfg" | cut -d' ' -f1); cp "$D/cfg" "$D/oci/blobs/sha256/$C"; CS=$(stat -c %s "$D/cfg")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' "$C" "$CS" "$L" "$LS" > "$D/man"
M=$(sha256sum "$D/man" | cut -d' ' -f1); cp "$D/man" "$D/oci/blobs/sha256/$M"; MS=$(stat -c %s "$D/man")
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"1"}}]}' "$M" "$MS" > "$D/oci/index.json"
echo '{"imageLayoutVersion":"1.0.0"}' > "$D/oci/oci-layout"

ACCEPT='Accept: application/vnd.oci.image.manifest.v1+json'
wrk_rps() { wrk -t2 -c32 -d10s -H "$ACCEPT" "$1" | awk '/Requests\/sec/ {print $2}'; }

"$BIN/berth-registry" serve --addr 127.0.0.1:0 --root "$D/berth" > "$D/berth.addr" 2>"$D/berth.log" & RP=$!
for _ in $(seq 100); do grep -q listening "$D/berth.addr" && break; sleep 0.05; done
BADDR=$(awk '/listening/ {print $NF}' "$D/berth.addr")
skopeo copy -q --dest-tls-verify=false "oci:$D/oci:1" "docker://$BADDR/bench:1"
B=$(wrk_rps "http://$BADDR/v2/bench/manifests/1")
echo "berth-registry        manifest GET: $B req/s"
if command -v docker-registry >/dev/null; then
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  cat > "$D/config.yml" <<YAML
version: 0.1
storage: {filesystem: {rootdirectory: $D/dist}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$PORT}
log: {level: error}
YAML
  docker-registry serve "$D/config.yml" >"$D/dist.log" 2>&1 & DP=$!
  for _ in $(seq 100); do curl -s "http://127.0.0.1:$PORT/v2/" >/dev/null && break; sleep 0.05; done
  skopeo copy -q --dest-tls-verify=false "oci:$D/oci:1" "docker://127.0.0.1:$PORT/bench:1"
  R=$(wrk_rps "http://127.0.0.1:$PORT/v2/bench/manifests/1")
  echo "distribution 2.8      manifest GET: $R req/s   berth/distribution = $(ratio "$B" "$R") (target >= 10)"
fi

# Push and pull of a 200 MB, 5-layer image (random bytes: nothing to compress) through
# docker-registry and through berth-registry; skopeo and podman through docker-registry.
# Pull includes unpacking for berth and podman (skopeo copies to a dir: no unpack).
command -v docker-registry >/dev/null || exit 0
ms() { echo $(( ($2 - $1) / 1000000 )); }
now() { date +%s%N; }
start_berthd; trap cleanup EXIT
BIG="$D/big.tar"
python3 "$ROOT/bench/make-big-archive.py" "$BIG" bench/big:1 5 40
for reg in "127.0.0.1:$PORT" "$BADDR"; do
  ref="$reg/big:1"
  berth load -i "$BIG" >/dev/null && berth tag bench/big:1 "$ref" && berth rmi bench/big:1 >/dev/null
  t0=$(now); berth push "$ref" >/dev/null; t1=$(now)
  berth rmi "$ref" >/dev/null
  t2=$(now); berth pull "$ref" >/dev/null; t3=$(now)
  berth rmi "$ref" >/dev/null
  echo "berth via $reg: push $(ms "$t0" "$t1") ms (target <= 800), pull $(ms "$t2" "$t3") ms (target <= 600)"
done
REG="127.0.0.1:$PORT"
t0=$(now); skopeo copy -q --dest-tls-verify=false "docker-archive:$BIG" "docker://$REG/skopeo:1"; t1=$(now)
t2=$(now); skopeo copy -q --src-tls-verify=false "docker://$REG/skopeo:1" "dir:$D/skopeo-dir"; t3=$(now)
echo "skopeo via $REG: push $(ms "$t0" "$t1") ms (gzip), pull $(ms "$t2" "$t3") ms (to a dir)"
if command -v podman >/dev/null; then
  # A registry without skopeo's blobs (podman would find the same gzip layers there).
  rm -rf "$D/dist/docker/registry/v2/blobs" "$D/dist/docker/registry/v2/repositories"
  P=(podman --root "$D/podman" --runroot "$D/podman-run" --storage-driver vfs)
  "${P[@]}" load -q -i "$BIG" >/dev/null && "${P[@]}" tag bench/big:1 "$REG/podman:1"
  t0=$(now); "${P[@]}" push -q --tls-verify=false "$REG/podman:1"; t1=$(now)
  "${P[@]}" rmi -a -f >/dev/null
  t2=$(now); "${P[@]}" pull -q --tls-verify=false "$REG/podman:1" >/dev/null; t3=$(now)
  "${P[@]}" rmi -a -f >/dev/null 2>&1 || true
  echo "podman via $REG: push $(ms "$t0" "$t1") ms (gzip), pull $(ms "$t2" "$t3") ms"
fi
echo "anchor (docker on this VM, ../shared/reference/anchor-baseline.md): push 2970 ms, pull 1440 ms"
