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
#   4. runs it again under valgrind (memcheck: leaks, use-after-free, nexus_free misuse), where
#      every leak kind but "still reachable" fails the run, "possibly lost" included; the
#      policy and its one suppression are in tests/sanitizers/ (shared with tests/c/run.sh).
# With NEXUS_CPPTEST_CHECKER=asan (the suite "c++ (asan+ubsan)" of make test), or without
# valgrind installed, steps 2-4 instead build target/cpptest/nexus_test_asan with
# AddressSanitizer + UndefinedBehaviorSanitizer (-fno-sanitize-recover=all, LeakSanitizer on;
# tests/sanitizers/common.sh) and run it. Only the test code and nexus.hpp are instrumented,
# against the normal libnexus.a: why that suffices is in tests/c/run_sanitized.sh. Debian's
# libgtest is not instrumented either, which ASan and UBSan allow.
#
# Extra arguments are passed to the test binary (e.g. --gtest_filter='Threads.*').
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT="$(pwd)"
# shellcheck source=../../tests/sanitizers/common.sh
source "$ROOT/tests/sanitizers/common.sh"
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

checker="${NEXUS_CPPTEST_CHECKER:-valgrind}"
if [[ "$checker" == valgrind ]] && ! command -v valgrind >/dev/null; then
    echo "valgrind not found; using AddressSanitizer instead"
    checker=asan
fi
[[ "$checker" == valgrind || "$checker" == asan ]] ||
    die "NEXUS_CPPTEST_CHECKER must be valgrind or asan, not '$checker'"

# Tests create their databases under $TMPDIR; keep them inside target/ and start clean.
export TMPDIR="$OUT/tmp"
rm -rf "$TMPDIR"
mkdir -p "$TMPDIR"

if [[ "$checker" == valgrind ]]; then
    echo "== 2. build target/cpptest/nexus_test (static libnexus.a)"
    build "$OUT/nexus_test" -O0  # the test code only (see tests/sanitizers/common.sh on -O0)
    echo "== 3. run"
    "$OUT/nexus_test" "$@"
    echo "== 4. run under valgrind (memcheck; log: target/cpptest/valgrind.log)"
    # The log goes to a file, so a passing run prints only its summary.
    if ! "${VALGRIND[@]}" --log-file="$OUT/valgrind.log" "$OUT/nexus_test" "$@" \
        >"$OUT/valgrind.out" 2>&1; then
        tail -n 40 "$OUT/valgrind.out" >&2
        grep -E -A30 'lost in loss record|Invalid|uninitialised|Mismatched' "$OUT/valgrind.log" \
            | head -n 150 >&2 || true
        grep -E 'lost:|ERROR SUMMARY' "$OUT/valgrind.log" >&2 || true
        die "the tests failed under valgrind (log: target/cpptest/valgrind.log)"
    fi
    grep -E '^\[  PASSED  \]' "$OUT/valgrind.out" | sed 's/^/    /'
    grep -E 'definitely lost|possibly lost|ERROR SUMMARY' "$OUT/valgrind.log" | sed 's/^==[0-9]*== */    /'
else
    echo "== 2. build target/cpptest/nexus_test_asan (${SAN_FLAGS[*]}, static libnexus.a)"
    build "$OUT/nexus_test_asan" "${SAN_FLAGS[@]}"
    echo "== 3. run with AddressSanitizer + UndefinedBehaviorSanitizer"
    "$OUT/nexus_test_asan" "$@"
fi
rm -rf "$TMPDIR"
echo "== C++ binding tests passed"
