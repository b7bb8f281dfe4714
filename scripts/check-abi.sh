#!/usr/bin/env bash
# ABI stability of the C library: compares target/release/libnexus.so (after `make lib`) with
# the committed baseline abi/libnexus.so.abi, using abidiff from libabigail (abigail-tools).
#
#   scripts/check-abi.sh              fails when an exported function or variable of the
#                                     baseline is gone or changed (or the SONAME changed);
#                                     new exports pass, and are listed
#   scripts/check-abi.sh --update     rewrites the baseline from the built library: commit it
#                                     with the change that breaks the ABI (and a new major
#                                     version), or at a release to take in the new exports
#   scripts/check-abi.sh --self-test  shows that the check fails on a library missing one
#                                     exported function of the baseline (fabricated from C
#                                     stubs) or under another SONAME, and passes one with an
#                                     extra function
#
# The release library carries no DWARF (Cargo.toml's release profile), so the baseline holds
# the ELF symbols alone: the names and kinds of what libnexus.so exports, and its SONAME. The
# types behind them are the header's: include/nexus.h is committed and checked unchanged by
# the "header" suite of scripts/test.sh.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
lib=$root/target/release/libnexus.so
baseline=$root/abi/libnexus.so.abi

die() { echo "check-abi.sh: $*" >&2; exit 1; }
command -v abidw >/dev/null || die "abidw is missing: install Debian's abigail-tools (scripts/setup.sh does)"
[[ -f $lib ]] || die "$lib is missing: run 'make lib' first"

# The baseline is the same file for the same exports: no paths, no locations, no timestamps.
dump() { abidw --no-corpus-path --no-show-locs --no-comp-dir-path "$1"; }

# compare BASELINE LIB: 0 when LIB keeps every export of BASELINE.
compare() {
    local report rc=0
    report=$(abidiff --no-show-locs "$1" "$2") || rc=$?
    # abidiff's status is a bit field: 1 error, 2 usage error, 4 an ABI change,
    # 8 an incompatible ABI change (a removed or changed symbol).
    if ((rc & 3)); then
        echo "$report"; echo "check-abi.sh: abidiff failed (status $rc)" >&2; return 1
    elif ((rc & 8)); then
        echo "$report"
        echo "check-abi.sh: incompatible ABI change against $(basename "$1") (status $rc):" \
             "an exported symbol was removed or changed. If that is intended, bump the major" \
             "version and run scripts/check-abi.sh --update" >&2
        return 1
    elif ((rc & 4)); then
        echo "$report"
        echo "ABI compatible with the baseline, with additions (scripts/check-abi.sh --update takes them in at a release)"
    else
        echo "ABI identical to the baseline ($(grep -c '<elf-symbol ' "$1") exported symbols)"
    fi
}

case ${1:-} in
    --update)
        mkdir -p "$(dirname "$baseline")"
        dump "$lib" >"$baseline.tmp"
        mv "$baseline.tmp" "$baseline"
        echo "wrote $baseline ($(grep -c '<elf-symbol ' "$baseline") exported symbols)"
        ;;
    --self-test)
        [[ -f $baseline ]] || die "no baseline $baseline: run scripts/check-abi.sh --update"
        work=$(mktemp -d)
        trap 'rm -rf "$work"' EXIT
        # Fabricated libraries of C stubs, one per exported function of the baseline: one
        # without nexus_close, one with an extra function, one under another SONAME.
        sed -n "s/^ *<elf-symbol name='\([A-Za-z0-9_]*\)' type='func-type'.*/\1/p" "$baseline" >"$work/functions"
        grep -qx nexus_close "$work/functions" || die "the baseline exports no nexus_close?"
        stubs() { sed 's/.*/void &(void) {}/'; }
        soname=$(sed -n "s/.* soname='\([^']*\)'.*/\1/p" "$baseline" | head -n 1)
        grep -vx nexus_close "$work/functions" | stubs >"$work/removed.c"
        { cat "$work/functions"; echo nexus_selftest_added; } | stubs >"$work/added.c"
        for v in removed added; do
            cc -shared -fPIC -Wl,-soname,"$soname" -o "$work/lib$v.so" "$work/$v.c"
        done
        cc -shared -fPIC -Wl,-soname,"$soname.renamed" -o "$work/librenamed.so" "$work/added.c"
        if compare "$baseline" "$work/libremoved.so" >"$work/removed.log" 2>&1; then
            cat "$work/removed.log"; die "self-test: a removed exported function was not caught"
        fi
        grep -q '\[D\] nexus_close' "$work/removed.log" \
            || { cat "$work/removed.log"; die "self-test: the report does not name the removed nexus_close"; }
        echo "self-test: a library without nexus_close fails the check:"
        sed 's/^/  | /' "$work/removed.log"
        compare "$baseline" "$work/libadded.so" >"$work/added.log" 2>&1 \
            || { cat "$work/added.log"; die "self-test: a library with an added function failed the check"; }
        echo "self-test: a library with an extra exported function passes"
        if compare "$baseline" "$work/librenamed.so" >"$work/renamed.log" 2>&1; then
            cat "$work/renamed.log"; die "self-test: a changed SONAME was not caught"
        fi
        echo "self-test: a library under another SONAME fails the check"
        ;;
    "")
        [[ -f $baseline ]] || die "no baseline $baseline: run scripts/check-abi.sh --update"
        compare "$baseline" "$lib"
        ;;
    *) echo "usage: $0 [--update | --self-test]" >&2; exit 2 ;;
esac
