#!/usr/bin/env bash
# Builds the C examples against target/release through pkg-config (shared library,
# rpath to target/release) into target/examples/, then runs the demo on DBPATH and the
# quick start on a scratch database in target/examples/.
#
#   cargo build --release && examples/c/run.sh demo.db
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 DBPATH" >&2
    exit 2
fi
DB=$1
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
REL=$ROOT/target/release
OUT=$ROOT/target/examples
CC=${CC:-cc}
export PKG_CONFIG_PATH=$REL/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}

[[ -e $REL/libnexus.so && -e $REL/pkgconfig/nexus.pc ]] \
    || { echo "missing target/release/libnexus.so or nexus.pc: run 'cargo build --release' first" >&2; exit 1; }
mkdir -p "$OUT/lib"
# Programs record NEEDED libnexus.so.0 (the SONAME); cargo writes only libnexus.so.
[[ -e $REL/libnexus.so.0 ]] || ln -sf "$REL/libnexus.so" "$OUT/lib/libnexus.so.0"

read -r -a NEXUS <<<"$(pkg-config --cflags --libs nexus)"
for prog in demo quickstart; do
    "$CC" -std=c99 -Wall -Wextra -pedantic -O2 "$ROOT/examples/c/$prog.c" "${NEXUS[@]}" \
        -Wl,-rpath,"$REL" -Wl,-rpath,"$OUT/lib" -o "$OUT/c_$prog"
done

"$OUT/c_demo" "$DB"

# The quick start appends to its database on every run; give it a fresh one.
rm -f "$OUT"/quickstart.*
"$OUT/c_quickstart" "$OUT/quickstart.db" | sed 's/^/c quickstart: /'
