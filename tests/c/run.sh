#!/usr/bin/env bash
# C ABI checks for NexusLite. Run from the repository root after `cargo build --release`
# (which produces target/release/libnexus.{a,so}, include/nexus.h and
# target/release/pkgconfig/nexus.pc):
#
#   bash tests/c/run.sh
#
# Checks: the header compiles alone as C99, C11 and C++17 without warnings; a C++
# program links (extern "C"); libnexus.so has SONAME libnexus.so.0 and exports only
# nexus_* symbols; the acceptance test (tests/c/api_acceptance.c) builds through
# pkg-config both against libnexus.a and against libnexus.so, passes both ways, and
# passes under valgrind with no errors and no leaks, "possibly lost" included (policy and
# suppression file: tests/sanitizers/); the query-language conformance suite
# (tests/conformance/*.json, runner tests/c/conformance.c) passes through the C ABI, also
# under valgrind. Build outputs go to target/ctest/.
# The same programs built with AddressSanitizer + UndefinedBehaviorSanitizer:
# tests/c/run_sanitized.sh.
# Environment: CC, CXX (default gcc, g++), NEXUS_SKIP_VALGRIND=1 to skip valgrind.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
# shellcheck source=../sanitizers/common.sh
source "$ROOT/tests/sanitizers/common.sh"

CC=${CC:-gcc}
CXX=${CXX:-g++}
REL=$ROOT/target/release
OUT=$ROOT/target/ctest
export PKG_CONFIG_PATH=$REL/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
WARN=(-Wall -Wextra -pedantic -Werror)

step() { printf '==> %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

for f in "$REL/libnexus.a" "$REL/libnexus.so" "$ROOT/include/nexus.h" "$REL/pkgconfig/nexus.pc"; do
    [[ -e $f ]] || fail "missing $f (run 'cargo build --release' first)"
done
command -v pkg-config >/dev/null || fail "pkg-config not installed"
mkdir -p "$OUT/lib"

# The executables record NEEDED libnexus.so.0 (the SONAME). Cargo only writes
# libnexus.so, so give the loader a libnexus.so.0 next to our outputs.
if [[ ! -e $REL/libnexus.so.0 ]]; then
    ln -sf "$REL/libnexus.so" "$OUT/lib/libnexus.so.0"
fi
RPATH=(-Wl,-rpath,"$REL" -Wl,-rpath,"$OUT/lib")

read -r -a CFLAGS_NEXUS <<<"$(pkg-config --cflags nexus)"
read -r -a LIBS_SHARED <<<"$(pkg-config --libs nexus)"
read -r -a LIBS_STATIC_PC <<<"$(pkg-config --libs --static nexus)"
# Force the static archive: name libnexus.a instead of -lnexus (which would pick the .so).
LIBS_STATIC=()
for w in "${LIBS_STATIC_PC[@]}"; do
    if [[ $w == -lnexus ]]; then LIBS_STATIC+=("$REL/libnexus.a"); else LIBS_STATIC+=("$w"); fi
done

# --- header hygiene -------------------------------------------------------------------
for std in c99 c11; do
    step "nexus.h compiles alone as ${std^^} (${WARN[*]} -Wstrict-prototypes)"
    "$CC" -std="$std" "${WARN[@]}" -Wstrict-prototypes "${CFLAGS_NEXUS[@]}" \
        -c tests/c/header_only.c -o "$OUT/header_$std.o"
done
step "nexus.h compiles alone as C++17 (${WARN[*]})"
"$CXX" -std=c++17 "${WARN[@]}" "${CFLAGS_NEXUS[@]}" -x c++ \
    -c tests/c/header_only.c -o "$OUT/header_cxx17.o"
step "a C++17 program links and runs (extern \"C\" guard)"
"$CXX" -std=c++17 "${WARN[@]}" "${CFLAGS_NEXUS[@]}" tests/c/header_cxx_link.cpp \
    "${LIBS_SHARED[@]}" "${RPATH[@]}" -o "$OUT/header_cxx_link"
"$OUT/header_cxx_link"

# --- shared library shape ---------------------------------------------------------------
step "SONAME of libnexus.so is libnexus.so.0"
# (Captured first: grep -q closing the pipe early would trip pipefail.)
dyn=$(readelf -d "$REL/libnexus.so")
grep -E 'SONAME.*\[libnexus\.so\.0\]' <<<"$dyn" | sed 's/^ */    /' \
    || fail "SONAME is not libnexus.so.0: $(grep SONAME <<<"$dyn" || echo none)"

step "libnexus.so exports only nexus_* symbols"
nm -D --defined-only "$REL/libnexus.so" | awk '{print $NF}' | sort -u >"$OUT/exports.txt"
grep -v '^nexus_' "$OUT/exports.txt" >"$OUT/exports_foreign.txt" || true
if [[ -s $OUT/exports_foreign.txt ]]; then
    cat "$OUT/exports_foreign.txt" >&2
    fail "libnexus.so exports symbols other than nexus_* (listed above)"
fi
echo "    $(wc -l <"$OUT/exports.txt") symbols, all nexus_*"

# --- acceptance test, both link modes -------------------------------------------------
step "build acceptance test, static (libnexus.a via pkg-config --static)"
"$CC" -std=c99 "${WARN[@]}" -g -O1 "${CFLAGS_NEXUS[@]}" tests/c/api_acceptance.c \
    "${LIBS_STATIC[@]}" -o "$OUT/api_acceptance_static"
dyn=$(readelf -d "$OUT/api_acceptance_static")
if grep -q 'NEEDED.*libnexus' <<<"$dyn"; then
    fail "static build still depends on libnexus.so"
fi

step "build acceptance test, shared (libnexus.so via pkg-config)"
"$CC" -std=c99 "${WARN[@]}" -g -O1 "${CFLAGS_NEXUS[@]}" tests/c/api_acceptance.c \
    "${LIBS_SHARED[@]}" "${RPATH[@]}" -o "$OUT/api_acceptance_shared"
dyn=$(readelf -d "$OUT/api_acceptance_shared")
grep -q 'NEEDED.*libnexus\.so\.0' <<<"$dyn" || fail "shared build does not depend on libnexus.so.0"
echo "    resolves to: $(ldd "$OUT/api_acceptance_shared" | awk '/libnexus/ {print $3}')"

# The three runs below all happen even if one fails, so one report shows everything.
failed=()
step "run acceptance test (shared)"
timeout 600 "$OUT/api_acceptance_shared" | tee "$OUT/shared.log" || failed+=(shared)

step "run acceptance test (static)"
timeout 600 "$OUT/api_acceptance_static" | tee "$OUT/static.log" || failed+=(static)

if [[ ${NEXUS_SKIP_VALGRIND:-0} != 1 ]]; then
    command -v valgrind >/dev/null || fail "valgrind not installed (or set NEXUS_SKIP_VALGRIND=1)"
    step "run acceptance test (static) under valgrind (log: target/ctest/valgrind.log)"
    if timeout 1800 "${VALGRIND[@]}" --log-file="$OUT/valgrind.log" \
        "$OUT/api_acceptance_static" >"$OUT/valgrind.out" 2>&1; then
        grep -E 'definitely lost|possibly lost|ERROR SUMMARY' "$OUT/valgrind.log" | sed 's/^==[0-9]*== */    /'
        tail -n 1 "$OUT/valgrind.out" | sed 's/^/    /'
    else
        failed+=(valgrind)
        grep -v '^-- ' "$OUT/valgrind.out" | tail -n 40 >&2
        grep -E -A30 'lost in loss record|Invalid|uninitialised|Mismatched' "$OUT/valgrind.log" \
            | head -n 120 >&2 || true
        grep -E 'lost:|ERROR SUMMARY' "$OUT/valgrind.log" >&2 || true
    fi
fi

# --- query-language conformance suite through the C ABI -------------------------------
step "build the conformance runner (tests/c/conformance.c), static"
"$CC" -std=c99 "${WARN[@]}" -g -O1 "${CFLAGS_NEXUS[@]}" tests/c/conformance.c \
    "${LIBS_STATIC[@]}" -o "$OUT/conformance"
step "run every tests/conformance/*.json case through the C ABI"
timeout 600 "$OUT/conformance" tests/conformance/*.json | tee "$OUT/conformance.log" | tail -n 20 \
    || failed+=(conformance)
if [[ ${NEXUS_SKIP_VALGRIND:-0} != 1 ]]; then
    step "run the conformance runner under valgrind (log: target/ctest/valgrind-conformance.log)"
    if ! timeout 1800 "${VALGRIND[@]}" --log-file="$OUT/valgrind-conformance.log" \
        "$OUT/conformance" tests/conformance/*.json >"$OUT/valgrind-conformance.out" 2>&1; then
        failed+=(valgrind-conformance)
        tail -n 20 "$OUT/valgrind-conformance.out" >&2
        grep -E -A30 'lost in loss record|Invalid|uninitialised' "$OUT/valgrind-conformance.log" \
            | head -n 80 >&2 || true
    else
        grep -E 'definitely lost|possibly lost|ERROR SUMMARY' "$OUT/valgrind-conformance.log" | sed 's/^==[0-9]*== */    /'
    fi
fi

# --- regression programs: one per class of defect found by adversarial testing ----------
# (tests/c/regress_*.c on tests/c/regress.h; each takes no arguments, exits 0 when all of
# its checks pass, and may exec itself as a child process; all but regress_storage run
# under valgrind as well.)
for src in tests/c/regress_*.c; do
    [[ -e $src ]] || continue
    name=$(basename "$src" .c)
    step "build and run $name (static)"
    "$CC" -std=c99 "${WARN[@]}" -g -O1 "${CFLAGS_NEXUS[@]}" "$src" -lpthread \
        "${LIBS_STATIC[@]}" -o "$OUT/$name" || { failed+=("$name"); continue; }
    timeout 600 "$OUT/$name" | tee "$OUT/$name.log" | tail -n 40 || failed+=("$name")
    # Under valgrind too, but for regress_storage, whose checks SIGKILL child processes at
    # measured moments (valgrind's slowdown would only move them).
    if [[ ${NEXUS_SKIP_VALGRIND:-0} != 1 && $name != regress_storage ]]; then
        step "run $name under valgrind (log: target/ctest/valgrind-$name.log)"
        if timeout 1800 "${VALGRIND[@]}" --log-file="$OUT/valgrind-$name.log" \
            "$OUT/$name" >"$OUT/valgrind-$name.out" 2>&1; then
            grep -E 'definitely lost|possibly lost|ERROR SUMMARY' "$OUT/valgrind-$name.log" | sed 's/^==[0-9]*== */    /'
        else
            failed+=("valgrind-$name")
            tail -n 20 "$OUT/valgrind-$name.out" >&2
            grep -E -A30 'lost in loss record|Invalid|uninitialised' "$OUT/valgrind-$name.log" \
                | head -n 80 >&2 || true
        fi
    fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
    printf 'FAIL: acceptance test failed in: %s\n' "${failed[*]}" >&2
    tail -n 1 "$OUT/static.log"
    exit 1
fi
step "all C ABI checks passed"
tail -n 1 "$OUT/static.log"
