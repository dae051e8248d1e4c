#!/usr/bin/env bash
# Installs the Debian packages berth's build, tests and interop peers need (idempotent).
set -euo pipefail
need=(busybox-static skopeo podman nftables libseccomp-dev pkg-config curl iproute2 docker-registry apache2-utils)
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Python's docker SDK: an interop client for the tests.
python3 -c 'import docker' 2>/dev/null || python3 -m pip install -q docker
command -v cargo >/dev/null || { echo "cargo not found: install a Rust toolchain (rustup)" >&2; exit 1; }
command -v docker >/dev/null || echo "note: the docker CLI is not installed; docker interop tests will fail" >&2
