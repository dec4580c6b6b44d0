#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit, property, golden and real-namespace tests.
# Run as root (tests create their own network namespaces; the root namespace is never touched).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
[ "$(id -u)" = 0 ] || { echo "the test suite needs root (network namespaces)" >&2; exit 1; }
cargo fmt --all --check
scripts/validate-manifests.sh   # deploy/*.yaml against the Kubernetes 1.37 schemas, offline
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace --no-fail-fast
leaked=$(ip netns list | grep -E '^weft-' || true)
if [ -n "$leaked" ]; then echo "tests leaked network namespaces:"; echo "$leaked"; exit 1; fi
echo "network namespaces after the suite: none left"
