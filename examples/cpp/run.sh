#!/usr/bin/env bash
# Builds the C++ examples against the shared library and runs them.
#
#   cargo build --release && bash examples/cpp/run.sh DBPATH
#
# demo.cpp works in collection "cpp_demo" of DBPATH (run it twice: the run count grows);
# quickstart.cpp runs on a scratch database that is removed afterwards.
# Binaries go to target/examples/ and find libnexus.so through an rpath to target/release.
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 DBPATH" >&2
    exit 2
fi
DBPATH="$1"

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT="$(pwd)"
OUT="$ROOT/target/examples"
LIBDIR="$ROOT/target/release"
CXX="${CXX:-g++}"

die() { echo "run.sh: $*" >&2; exit 1; }

[[ -f "$LIBDIR/libnexus.so" ]] || die "$LIBDIR/libnexus.so is missing: run 'cargo build --release' first"
export PKG_CONFIG_PATH="$LIBDIR/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
pkg-config --exists nexus || die "pkg-config cannot find nexus.pc (expected $LIBDIR/pkgconfig/nexus.pc)"
read -r -a CFLAGS <<<"$(pkg-config --cflags nexus)"
read -r -a LIBS <<<"$(pkg-config --libs nexus)"

RPATH=(-Wl,-rpath,"$LIBDIR")
# The library's SONAME carries the major version (libnexus.so.0). Cargo only writes
# libnexus.so, so when target/release has no file of the SONAME's name, provide it as a
# symlink in target/examples/lib and search there too.
soname="$(readelf -d "$LIBDIR/libnexus.so" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')"
if [[ -n "$soname" && ! -e "$LIBDIR/$soname" ]]; then
    mkdir -p "$OUT/lib"
    ln -sfn "$LIBDIR/libnexus.so" "$OUT/lib/$soname"
    RPATH+=(-Wl,-rpath,"$OUT/lib")
fi

mkdir -p "$OUT"
for prog in quickstart demo; do
    "$CXX" -std=c++17 -O2 -Wall -Wextra -I"$ROOT/bindings/cpp" "${CFLAGS[@]}" \
        "$ROOT/examples/cpp/$prog.cpp" -o "$OUT/cpp_$prog" "${LIBS[@]}" "${RPATH[@]}"
done

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

echo "== examples/cpp/quickstart.cpp"
"$OUT/cpp_quickstart" "$scratch/quickstart.db"
echo
echo "== examples/cpp/demo.cpp $DBPATH"
"$OUT/cpp_demo" "$DBPATH"
