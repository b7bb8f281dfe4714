#!/usr/bin/env bash
# The size-tuned library for firmware and game hosts (`make lib-small`, and the size row of
# `make bench`): target/release-small/libnexus.so (and .a), profile `release-small`
# (Cargo.toml: opt-level z, LTO, one codegen unit, stripped, panic unwind), the library's
# features only (no CLI, no `regex-fast`, no `regex-unicode`), and on Linux packed relative
# relocations (`-z pack-relative-relocs`, DT_RELR: 0.4 MB less; the .so then needs glibc 2.36+
# or musl 1.2.4+ to load). Arguments go to cargo (e.g. --quiet, --features regex-fast).
set -euo pipefail
cd "$(dirname "$0")/.."
flags=""
if [ "$(uname -s)" = Linux ]; then
    flags="-C link-arg=-Wl,-z,pack-relative-relocs"
fi
RUSTFLAGS="${RUSTFLAGS:-} $flags" cargo build "$@" --profile release-small --no-default-features --lib
# The SONAME the library carries (build.rs), as `make lib` links it for the release build.
ln -sf libnexus.so "${CARGO_TARGET_DIR:-target}/release-small/libnexus.so.0"
