#!/usr/bin/env bash
# Runs all of berth's tests: unit tests and integration tests against real berthd instances,
# driven through the berth CLI, the docker CLI, skopeo and podman. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
export CARGO_TERM_COLOR=never
# Build the binaries once; the integration tests run them from target/release.
cargo build --release --workspace --locked
cargo test --release --workspace --locked -- --test-threads "${BERTH_TEST_THREADS:-4}"
