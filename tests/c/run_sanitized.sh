#!/usr/bin/env bash
# The C test programs of tests/c/run.sh (acceptance test, conformance runner, the regress_*.c
# but regress_storage) built with AddressSanitizer + UndefinedBehaviorSanitizer and run. Run
# from the repository root after `make lib`:
#
#   bash tests/c/run_sanitized.sh
#
# Flags and runtime options: tests/sanitizers/common.sh (-fno-sanitize-recover=all, so UB
# fails the run; LeakSanitizer on). Build outputs go to target/ctest-san/.
#
# Only the C side is instrumented; the library is the normal release libnexus. That is
# enough for what these runs are for, misuse at the boundary: ASan replaces malloc/free for
# the whole process, and the Rust code allocates through them (no custom global allocator),
# so a row pointer read after the cursor moved or closed, a string read after nexus_free, a
# double nexus_free, a write past a caller-visible buffer, or a leaked out-value is seen at
# the C access or at the free. An out-of-bounds access made inside the library itself would
# not be (Rust code would need -Zsanitizer=address, which is nightly-only and needs
# -Zbuild-std, neither on a stable toolchain); the valgrind runs of tests/c/run.sh, which
# check every instruction of the library too, cover that side, and safe Rust rules most of it
# out in the first place.
# Environment: CC (default gcc), NEXUSLITE_STORAGE as in tests/c/run.sh.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
# shellcheck source=../sanitizers/common.sh
source "$ROOT/tests/sanitizers/common.sh"

CC=${CC:-gcc}
REL=$ROOT/target/release
OUT=$ROOT/target/ctest-san
export PKG_CONFIG_PATH=$REL/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
WARN=(-Wall -Wextra -pedantic -Werror)

step() { printf '==> %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

for f in "$REL/libnexus.a" "$REL/libnexus.so" "$ROOT/include/nexus.h" "$REL/pkgconfig/nexus.pc"; do
    [[ -e $f ]] || fail "missing $f (run 'make lib' first)"
done
mkdir -p "$OUT/lib"
[[ -e $REL/libnexus.so.0 ]] || ln -sf "$REL/libnexus.so" "$OUT/lib/libnexus.so.0"
RPATH=(-Wl,-rpath,"$REL" -Wl,-rpath,"$OUT/lib")

read -r -a CFLAGS_NEXUS <<<"$(pkg-config --cflags nexus)"
read -r -a LIBS_SHARED <<<"$(pkg-config --libs nexus)"
LIBS_STATIC=()
for w in $(pkg-config --libs --static nexus); do
    if [[ $w == -lnexus ]]; then LIBS_STATIC+=("$REL/libnexus.a"); else LIBS_STATIC+=("$w"); fi
done

build() {  # build OUTPUT SOURCE LIBS...
    local out=$1 src=$2; shift 2
    "$CC" -std=c99 "${WARN[@]}" "${SAN_FLAGS[@]}" "${CFLAGS_NEXUS[@]}" "$src" -lpthread "$@" \
        -o "$out"
}

# Every program runs even when an earlier one failed, so one report shows everything. Each
# log keeps the sanitizer's report (stderr) next to the program's output.
failed=()
run() {  # run NAME COMMAND...
    local name=$1; shift
    step "run $name (log: target/ctest-san/$name.log)"
    if timeout 900 "$@" >"$OUT/$name.log" 2>&1; then
        tail -n 1 "$OUT/$name.log" | sed 's/^/    /'
    else
        failed+=("$name")
        grep -n -E -A40 '^(==[0-9]+==ERROR|SUMMARY|.*runtime error)' "$OUT/$name.log" | head -n 80 >&2 \
            || tail -n 30 "$OUT/$name.log" >&2
    fi
}

step "build the acceptance test, static and shared (${SAN_FLAGS[*]})"
build "$OUT/api_acceptance_static" tests/c/api_acceptance.c "${LIBS_STATIC[@]}"
build "$OUT/api_acceptance_shared" tests/c/api_acceptance.c "${LIBS_SHARED[@]}" "${RPATH[@]}"
run api_acceptance_static "$OUT/api_acceptance_static"
run api_acceptance_shared "$OUT/api_acceptance_shared"

step "build the conformance runner"
build "$OUT/conformance" tests/c/conformance.c "${LIBS_STATIC[@]}"
run conformance "$OUT/conformance" tests/conformance/*.json

# All regress_*.c but regress_storage: its crash and kill scenarios replay logs and copy
# files for minutes (as long as the rest of make test's C side together) with little
# traffic across the API's buffers; it runs unsanitized in tests/c/run.sh.
for src in tests/c/regress_*.c; do
    name=$(basename "$src" .c)
    [[ $name == regress_storage ]] && continue
    step "build $name"
    build "$OUT/$name" "$src" "${LIBS_STATIC[@]}" || { failed+=("$name"); continue; }
    run "$name" "$OUT/$name"
done

if ((${#failed[@]})); then
    fail "sanitizer runs failed: ${failed[*]} (logs in target/ctest-san/)"
fi
step "all C programs passed under AddressSanitizer + UndefinedBehaviorSanitizer"
