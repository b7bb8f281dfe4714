#!/usr/bin/env bash
# Installs what the build and the tests need beyond Rust and Go (which the machine has):
# a C/C++ toolchain, pkg-config, valgrind, GoogleTest and SQLite's headers (for `make bench`).
# Idempotent; quiet when all is there.
set -euo pipefail
need=()
for pkg in gcc g++ make pkg-config valgrind libgtest-dev libsqlite3-dev; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if ((${#need[@]})); then
  echo "setup: installing ${need[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
for tool in cargo go; do
  command -v "$tool" >/dev/null || { echo "setup: '$tool' is required but not installed" >&2; exit 1; }
done
rustup component list --installed 2>/dev/null | grep -q clippy || rustup component add clippy rustfmt >/dev/null 2>&1 || true
