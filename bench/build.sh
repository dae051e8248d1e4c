#!/usr/bin/env bash
# The reference Dockerfile build (issue 4; shared/reference/anchor-baseline.md (c)) recreated on
# the busybox base: two stages, a RUN writing 2000 small files, a RUN writing a script,
# COPY --from, a COPY of 1000 small context files, a RUN adding a user and chown -R over the
# 3000 files (Debian's busybox has no adduser: /etc/passwd is appended to), ENV/WORKDIR/USER/CMD. Each builder is measured cold (--no-cache, its cache
# cleared first), with no change, and with one copied file's content changed. Builders: berth
# (`berth build`, and the docker CLI's classic builder against berthd), buildah (own storage
# under the bench directory) and docker's own daemon (classic builder) when one is running.
# Prints hyperfine medians, the ratios to the anchor's BuildKit figures (target <= 0.80) and
# berth's ratio to each other builder.
# Usage: bench/build.sh [RUNS]
#   NETWORK=none (default) for RUN steps; BERTH_BIN=target/debug to skip the release build.
# Nothing is fetched from a network: the base image is made from Debian's busybox-static.
source "$(dirname "$0")/lib.sh"
RUNS="${1:-10}"
NETWORK="${NETWORK:-none}"
command -v hyperfine >/dev/null || { echo "install hyperfine (apt-get install hyperfine)"; exit 1; }
build_berth
start_berthd
TAR="$WORK/busybox-rootfs.tar"
[ -f "$TAR" ] || "$ROOT/scripts/make-busybox-rootfs.sh" "$TAR"
berth import -c 'CMD ["sh"]' "$TAR" busybox >/dev/null

CTX="$BENCH_DIR/build-ctx"
rm -rf "$CTX"; mkdir -p "$CTX/files"
for i in $(seq -w 0 999); do echo "file $i of the reference context" > "$CTX/files/f0$i.txt"; done
cat > "$CTX/Dockerfile" <<'DF'
ARG BASE=busybox
FROM $BASE AS gen
RUN mkdir -p /gen && cd /gen && i=0; while [ $i -lt 2000 ]; do echo "generated $i" > g$i.txt; i=$((i+1)); done
RUN printf '#!/bin/sh\necho "app up: $(ls /app/data | wc -l) files"\n' > /gen/run.sh && chmod 755 /gen/run.sh

FROM $BASE
ENV APP_HOME=/app APP_MODE=bench
WORKDIR /app
COPY --from=gen /gen /app/gen
COPY files/ /app/data/
RUN echo 'app:x:2000:2000:app:/app:/bin/sh' >> /etc/passwd && chown -R app /app
USER app
CMD ["/app/gen/run.sh"]
DF
CHANGE="sh -c 'date +%s%N > $CTX/files/f0500.txt'"

# measure NAME KEY PREPARE COMMAND: runs hyperfine, prints the median, stores it as M_<KEY>.
measure() {
  local name="$1" key="$2" prep="$3" cmd="$4" json="$BENCH_DIR/$2.json"
  if hyperfine -N --runs "$RUNS" --warmup 1 --prepare "$prep" "$cmd" --export-json "$json" \
       >"$BENCH_DIR/$key.log" 2>&1; then
    printf -v "M_$key" '%s' "$(median_ms "$json")"
    local v="M_$key"
    printf '  %-44s median %9s ms\n' "$name" "${!v}"
  else
    printf '  %-44s failed (log: %s)\n' "$name" "$BENCH_DIR/$key.log"; tail -5 "$BENCH_DIR/$key.log" | sed 's/^/    /'
    printf -v "M_$key" '%s' ""
  fi
}
# three KEY "BUILD-COMMAND" "COLD-PREPARE": cold (--no-cache), no change, one file changed.
# The context directory goes last (buildah takes no flags after it).
three() {
  local key="$1" cmd="$2" coldprep="$3"
  measure "cold (cache cleared, --no-cache)" "${key}_cold" "$coldprep" "$cmd --no-cache $CTX"
  eval "$cmd $CTX" >/dev/null 2>&1 || true
  measure "no change" "${key}_none" "true" "$cmd $CTX"
  measure "one copied file changed" "${key}_one" "$CHANGE" "$cmd $CTX"
}

B="$BIN/berth -H unix://$BSOCK"
echo "== berth build (the anchor's BuildKit: cold 1980 ms, no change 98 ms, one file 1160 ms)"
$B build -q --network "$NETWORK" -t ref:berth "$CTX" >/dev/null
echo -n "  the image runs: "; $B run --rm --network none ref:berth
three berth "$B build -q --network $NETWORK -t ref:berth" \
  "sh -c '$B rmi -f ref:berth >/dev/null 2>&1; $B builder prune -af >/dev/null 2>&1; true'"
echo "  ratio to BuildKit (target <= 0.80): cold $(ratio "$M_berth_cold" 1980)  no change $(ratio "$M_berth_none" 98)  one file $(ratio "$M_berth_one" 1160)"

if command -v docker >/dev/null; then
  echo "== docker CLI (DOCKER_BUILDKIT=0) against berthd"
  D="env DOCKER_HOST=unix://$BSOCK DOCKER_BUILDKIT=0 docker build -q --network $NETWORK -t ref:docker $CTX"
  $D >/dev/null 2>&1 || true
  measure "no change" dcli_none "true" "$D"
  measure "one copied file changed" dcli_one "$CHANGE" "$D"
fi

if command -v buildah >/dev/null; then
  # crun refuses this machine's hybrid cgroups; runc works. chroot isolation can't do --network none.
  RT=$(command -v runc || command -v crun)
  echo "== buildah $(buildah --version | awk '{print $3}') (--layers, runtime $(basename "$RT"), own storage)"
  BH_DIR="$BENCH_DIR/buildah"; mkdir -p "$BH_DIR/base"
  BH="buildah --root $BH_DIR/root --runroot $BH_DIR/run --storage-driver overlay"
  cp "$TAR" "$BH_DIR/base/rootfs.tar"
  printf 'FROM scratch\nADD rootfs.tar /\nCMD ["sh"]\n' > "$BH_DIR/base/Dockerfile"
  stop_buildah() { $BH rm -a >/dev/null 2>&1; $BH rmi -a -f >/dev/null 2>&1;
    awk -v d="$BH_DIR" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r | xargs -r -n1 umount -l
    rm -rf "$BH_DIR"; true; }
  trap 'stop_buildah; stop_berthd' EXIT
  if $BH bud -q --isolation chroot -t localhost/bench-busybox "$BH_DIR/base" >/dev/null 2>"$BH_DIR/base.log"; then
    BB="$BH bud -q --layers --pull=never --runtime $RT --network $NETWORK --build-arg BASE=localhost/bench-busybox -t localhost/ref:buildah"
    three buildah "$BB" "sh -c '$BH rmi -a -f >/dev/null 2>&1; $BH bud -q --isolation chroot -t localhost/bench-busybox $BH_DIR/base >/dev/null 2>&1'"
  else
    echo "  buildah could not make the base image: $(tail -1 "$BH_DIR/base.log")"
  fi
fi

if docker_daemon_up; then
  echo "== docker's own daemon, classic builder"
  DK="env DOCKER_HOST= DOCKER_BUILDKIT=0 docker"
  $DK import -c 'CMD ["sh"]' "$TAR" berth-bench-busybox >/dev/null
  DB="$DK build -q --network $NETWORK --build-arg BASE=berth-bench-busybox -t berth-bench-ref"
  three docker "$DB" "sh -c '$DK rmi -f berth-bench-ref >/dev/null 2>&1; $DK builder prune -af >/dev/null 2>&1; true'"
  $DK rmi -f berth-bench-ref berth-bench-busybox >/dev/null 2>&1 || true
else
  echo "== docker's own daemon: none running here, skipped"
fi

echo "== summary (median ms; ratio = berth / other)"
printf '  %-10s %10s %10s %10s\n' builder cold "no change" "one file"
row() { printf '  %-10s %10s %10s %10s\n' "$1" "${2:--}" "${3:--}" "${4:--}"; }
row berth "$M_berth_cold" "$M_berth_none" "$M_berth_one"
row BuildKit 1980 98 1160
for o in buildah docker; do
  c="M_${o}_cold"; n="M_${o}_none"; f="M_${o}_one"
  [ -n "${!c:-}${!n:-}${!f:-}" ] || continue
  row "$o" "${!c:-}" "${!n:-}" "${!f:-}"
  r() { [ -n "$2" ] && [ -n "$1" ] && ratio "$1" "$2" || echo -; }
  row "  ratio" "$(r "$M_berth_cold" "${!c:-}")" "$(r "$M_berth_none" "${!n:-}")" "$(r "$M_berth_one" "${!f:-}")"
done
