#!/usr/bin/env bash
# Installs what weft's build, tests, demo and benchmarks need on a Debian machine (run as root).
# Rust itself (cargo >= 1.95) must already be installed.
set -euo pipefail
pkgs=(nftables iproute2 iputils-ping containernetworking-plugins iperf3 protobuf-compiler etcd-server conntrack)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "cargo not found: install Rust >= 1.95 first" >&2; exit 1; }
