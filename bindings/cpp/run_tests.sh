#!/usr/bin/env bash
# Builds and runs the C++ binding tests (bindings/cpp/tests) against the real library.
#
#   cargo build --release && bash bindings/cpp/run_tests.sh
#
# Steps:
#   1. compiles nexus.hpp on its own (C++17 and C++20, -Wall -Wextra -pedantic -Werror);
#   2. builds target/cpptest/nexus_test, linked statically against target/release/libnexus.a
#      (flags from target/release/pkgconfig/nexus.pc), plus a second translation unit that
#      includes nexus.hpp, so a non-inline definition in the header would fail to link;
#   3. runs it;
#   4. runs it again under valgrind (memcheck: leaks, use-after-free, nexus_free misuse);
#      without valgrind installed, or with NEXUS_CPPTEST_CHECKER=asan, it builds
#      target/cpptest/nexus_test_asan with -fsanitize=address,undefined and runs that instead.
#
# Extra arguments are passed to the test binary (e.g. --gtest_filter='Threads.*').
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT="$(pwd)"
OUT="$ROOT/target/cpptest"
LIB_A="$ROOT/target/release/libnexus.a"
CXX="${CXX:-g++}"
WARN=(-Wall -Wextra -pedantic -Werror)

die() { echo "run_tests.sh: $*" >&2; exit 1; }

[[ -f "$LIB_A" ]] || die "$LIB_A is missing: run 'cargo build --release' first"
[[ -f "$ROOT/include/nexus.h" ]] || die "include/nexus.h is missing: run 'cargo build --release' first"
export PKG_CONFIG_PATH="$ROOT/target/release/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
pkg-config --exists nexus || die "pkg-config cannot find nexus.pc (expected target/release/pkgconfig/nexus.pc)"

read -r -a CFLAGS <<<"$(pkg-config --cflags nexus)"
# Static link: the archive itself instead of -lnexus (which would pick libnexus.so),
# followed by the system libraries the archive needs (Libs.private).
LIBS=()
for flag in $(pkg-config --static --libs nexus); do
    case "$flag" in
        -lnexus) LIBS+=("$LIB_A") ;;
        *) LIBS+=("$flag") ;;
    esac
done
INCLUDES=("${CFLAGS[@]}" -I"$ROOT/bindings/cpp")
GTEST_LIBS=(-lgtest_main -lgtest -pthread)

mkdir -p "$OUT"

echo "== 1. nexus.hpp compiles on its own"
for std in c++17 c++20; do
    printf '#include "nexus.hpp"\n' |
        "$CXX" -std="$std" "${WARN[@]}" "${INCLUDES[@]}" -x c++ - -fsyntax-only
    echo "   $std: ok"
done
# A second translation unit including the header, linked into the test binary below.
cat >"$OUT/second_tu.cpp" <<'EOF'
#include "nexus.hpp"
// Links only if every function defined in nexus.hpp is inline.
std::string_view nexus_cpptest_second_tu_version() { return nexus::version(); }
EOF

build() {  # build OUTPUT_BINARY EXTRA_FLAGS...
    local bin="$1"; shift
    "$CXX" -std=c++17 "${WARN[@]}" -g "$@" "${INCLUDES[@]}" -pthread \
        -c "$ROOT/bindings/cpp/tests/nexus_test.cpp" -o "$bin.o"
    "$CXX" -std=c++17 "${WARN[@]}" -g "$@" "${INCLUDES[@]}" \
        -c "$OUT/second_tu.cpp" -o "$bin.second_tu.o"
    "$CXX" "$@" -o "$bin" "$bin.o" "$bin.second_tu.o" "${GTEST_LIBS[@]}" "${LIBS[@]}"
    if readelf -d "$bin" | grep -q 'NEEDED.*libnexus'; then
        die "$bin links libnexus dynamically; expected the static archive"
    fi
}

echo "== 2. build target/cpptest/nexus_test (static libnexus.a)"
build "$OUT/nexus_test" -O1

# Tests create their databases under $TMPDIR; keep them inside target/ and start clean.
export TMPDIR="$OUT/tmp"
rm -rf "$TMPDIR"
mkdir -p "$TMPDIR"

echo "== 3. run"
"$OUT/nexus_test" "$@"

checker="${NEXUS_CPPTEST_CHECKER:-valgrind}"
if [[ "$checker" == valgrind ]] && ! command -v valgrind >/dev/null; then
    echo "valgrind not found; using AddressSanitizer instead"
    checker=asan
fi
case "$checker" in
    valgrind)
        echo "== 4. run under valgrind (memcheck)"
        valgrind --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=1 \
            "$OUT/nexus_test" "$@"
        ;;
    asan)
        echo "== 4. build and run with -fsanitize=address,undefined"
        build "$OUT/nexus_test_asan" -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
            -fno-sanitize-recover=undefined
        ASAN_OPTIONS="detect_leaks=1:${ASAN_OPTIONS:-}" "$OUT/nexus_test_asan" "$@"
        ;;
    *) die "NEXUS_CPPTEST_CHECKER must be valgrind or asan, not '$checker'" ;;
esac
rm -rf "$TMPDIR"
echo "== C++ binding tests passed"
