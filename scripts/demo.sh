#!/usr/bin/env bash
# weft's main job in one command: build, bring up a 3-node cluster simulated in network
# namespaces (one weftd per node, pods wired by the real weft plugin), prove pod-to-pod
# connectivity across nodes without NAT, and tear everything down. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --release --bins
exec target/release/weftctl lab demo "$@"
