#!/usr/bin/env bash
# NexusLite vs SQLite at the DEFAULT options (issues #18 and #19), `make bench` (never part of
# `make test`), after `make lib`. Writes benchmarks/defaults.md (BENCH_OUT overrides).
#
# Runs bench/defaults_bench.c (see its header for the phases and what each engine is opened
# with) once per phase and engine, each in a process of its own so the peak RSS of the row is
# that engine's in that phase; `nexus import` (the CLI) against `sqlite3 .import` of the
# same NDJSON lines (scripts/bench-import-data.sh makes them, without `_id`) under GNU time;
# the Rust API gets (benches/rust_gets.rs, `cargo bench`); the stripped size of libnexus.so
# in the release profile and the size-tuned `release-small` one. bench/defaults_report.py
# turns the results into the report, with each row's target from the issues.
#
# Sizes (environment, the issues' defaults): BENCH_DOCS 200000, BENCH_GETS 200000,
# BENCH_UPDATES_FULL 3000, BENCH_UPDATES_NORMAL 20000, BENCH_LOOKUPS 50000,
# BENCH_AGE_QUERIES 200, BENCH_LOAD_DOCS 1000000, BENCH_DISK_OPS 3000,
# BENCH_DURABLE_DOCS 10000, BENCH_COMMITS 1000 (per thread), BENCH_SWEEP_GETS 200000,
# BENCH_SWEEP_MAX 1000000 (the 100x-cache working set), BENCH_IMPORT_MB 200, RUST_GETS
# 1000000, RUST_GETS_CACHED_DOCS 5000, RUST_GETS_LARGE_DOCS 100000. BENCH_SCALE (default 1)
# multiplies every size not set explicitly (each with a floor): BENCH_SCALE=0.02 is the
# quick smoke run (about a minute once the builds are done). BENCH_SKIP_SMALL=1 reports the
# release-small library without building it (when target/release-small has one).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${BENCH_OUT:-benchmarks/defaults.md}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/nexus-defaults-bench-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p target/bench "$(dirname "$OUT")"
RES=$WORK/results.txt
NOTES=$WORK/notes.txt
: >"$RES"
: >"$NOTES"
. scripts/bench-build.sh
. scripts/bench-import-data.sh

SCALE=${BENCH_SCALE:-1}
# size NAME DEFAULT FLOOR: exports NAME, when unset, as DEFAULT x BENCH_SCALE (at least FLOOR).
size() {
    local v=${!1:-}
    [ -n "$v" ] || v=$(awk -v d="$2" -v s="$SCALE" -v f="$3" 'BEGIN { x = int(d * s); print (x < f ? f : x) }')
    export "$1=$v"
    echo "$1=$v" >>"$WORK/sizes.txt"
}
size BENCH_DOCS 200000 2000
size BENCH_GETS 200000 2000
size BENCH_UPDATES_FULL 3000 100
size BENCH_UPDATES_NORMAL 20000 500
size BENCH_LOOKUPS 50000 1000
size BENCH_AGE_QUERIES 200 20
size BENCH_LOAD_DOCS 1000000 10000
size BENCH_DISK_OPS 3000 150
size BENCH_DURABLE_DOCS 10000 1000
size BENCH_COMMITS 1000 50
size BENCH_SWEEP_GETS 200000 5000
size BENCH_SWEEP_MAX 1000000 20000
size BENCH_IMPORT_MB 200 2
size RUST_GETS 1000000 50000
size RUST_GETS_CACHED_DOCS 5000 5000
size RUST_GETS_LARGE_DOCS 100000 100000

# phase_done NAME START: notes how long a phase took.
phase_done() { echo "- $1: $(($(date +%s) - $2)) s" >>"$WORK/phases.txt"; }

echo "== build bench/defaults_bench.c against libnexus.a and libsqlite3"
build_bench "$PWD" bench/defaults_bench.c target/bench/defaults_bench -lpthread -lm

# run PHASE ENGINE [ARG]: one process; its results to $RES as "ENGINE PHASE[-ARG] key value"
# (the disk phase takes `before` or `after` for ENGINE).
run() { # PHASE ENGINE [ARG [PASS]]: PASS (a repeated run) goes into the tag only
    local tag=$2\ $1${3:+-$3}${4:+-pass$4}
    echo "== $tag"
    target/bench/defaults_bench "$1" "$2" "$WORK" ${3:+"$3"} >"$WORK/out.txt"
    grep -v '^#' "$WORK/out.txt" | sed "s/^/$tag /" >>"$RES"
    grep '^#' "$WORK/out.txt" | sed "s/^# /$tag: /" >>"$NOTES" || true
}
start_all=$(date +%s)

t=$(date +%s)
for e in sqlite nexus; do run table "$e"; done
phase_done "issue table" "$t"

for mode in uuid seq; do
    t=$(date +%s)
    for e in sqlite nexus; do
        run load "$e" "$mode"
        rm -f "$WORK"/load-*
    done
    phase_done "load of $BENCH_LOAD_DOCS documents ($mode ids)" "$t"
done

t=$(date +%s)
gen_import_data "$WORK" "$BENCH_IMPORT_MB" 0 0
rows=$(cat "$WORK/rows")
echo "nexus import rows $rows" >>"$RES"
echo "sqlite import rows $rows" >>"$RES"
echo "nexus import ndjson_bytes $(stat -c %s "$WORK/data.ndjson")" >>"$RES"
# record_import ENGINE NAME COUNT FILES...: the GNU time figures, the count check, the files' bytes.
record_import() {
    local engine=$1 name=$2 count=$3 secs kib
    shift 3
    [ "$count" = "$rows" ] || { echo "bench: $engine imported $count of $rows" >&2; exit 1; }
    read -r secs kib <"$WORK/$name.measured"
    echo "$engine import seconds $secs" >>"$RES"
    echo "$engine import rss_kib $kib" >>"$RES"
    echo "$engine import file_bytes $(cat "$@" 2>/dev/null | wc -c)" >>"$RES"
}
echo "== nexus import ($rows documents, $(($(stat -c %s "$WORK/data.ndjson") >> 20)) MiB NDJSON, no _id)"
measure "$WORK" nexus_import target/release/nexus -q import "$WORK/imp.db" c "$WORK/data.ndjson" >"$WORK/nexus_import.measured"
record_import nexus nexus_import "$(target/release/nexus count "$WORK/imp.db" c)" "$WORK"/imp.db "$WORK"/imp.wasp*
echo "== sqlite3 .import of the same lines"
measure "$WORK" sqlite_import sqlite3 "$WORK/imp.sqlite" "CREATE TABLE docs(body TEXT)" \
    '.separator "\037" "\n"' ".import $WORK/data.ndjson docs" >"$WORK/sqlite_import.measured"
record_import sqlite sqlite_import "$(sqlite3 "$WORK/imp.sqlite" "SELECT count(*) FROM docs")" "$WORK"/imp.sqlite*
rm -f "$WORK"/imp.* "$WORK"/data.*
phase_done "import of $BENCH_IMPORT_MB MiB NDJSON" "$t"

t=$(date +%s)
run disk before
# Two alternating passes an engine: the report takes each engine's pass whose disk was quietest.
for pass in 1 2; do
    for e in sqlite nexus; do
        run durable "$e" "$pass"
        rm -f "$WORK"/durable.*
    done
done
run disk after
phase_done "durable updates and commits, raw disk rates" "$t"

t=$(date +%s)
sweep_sets="1000 10000 100000 $BENCH_SWEEP_MAX"
# Three passes a working set, each cache off then cache on back to back (a process each):
# the report takes the medians, and each pass's on/off ratio pairs runs a few seconds apart.
for w in $sweep_sets; do
    run sweep-load nexus "$w"
    for pass in 1 2 3; do
        run sweep nexus-off "$w" "$pass"
        run sweep nexus "$w" "$pass"
    done
    rm -f "$WORK"/sweep-*
done
echo "nexus sweep sets $(echo "$sweep_sets" | tr ' ' ,)" >>"$RES"
phase_done "cache sweep" "$t"

t=$(date +%s)
echo "== Rust API gets (cargo bench --bench rust_gets)"
cargo bench --quiet --bench rust_gets >"$WORK/rust.txt"
cat "$WORK/rust.txt"
sed -n 's/^rust_gets docs=\([0-9]*\) gets=[0-9]* gets_per_s=\([0-9.]*\)$/nexus rust gets_\1_per_s \2/p' "$WORK/rust.txt" >>"$RES"
phase_done "Rust API gets" "$t"

t=$(date +%s)
echo "== library sizes"
cp target/release/libnexus.so "$WORK/libnexus.so"
strip "$WORK/libnexus.so"
echo "nexus size release_stripped_bytes $(stat -c %s "$WORK/libnexus.so")" >>"$RES"
if [ "${BENCH_SKIP_SMALL:-0}" != 1 ]; then
    bash scripts/build-small.sh --quiet
fi
if [ -f target/release-small/libnexus.so ]; then
    echo "nexus size small_stripped_bytes $(stat -c %s target/release-small/libnexus.so)" >>"$RES"
fi
sqlite_so=$(ldconfig -p | awk '/libsqlite3\.so\.0 / {print $NF; exit}')
if [ -n "$sqlite_so" ]; then
    cp "$(readlink -f "$sqlite_so")" "$WORK/libsqlite3.so"
    strip "$WORK/libsqlite3.so"
    echo "sqlite size stripped_bytes $(stat -c %s "$WORK/libsqlite3.so")" >>"$RES"
fi
phase_done "library sizes (incl. the release-small build)" "$t"
elapsed=$(($(date +%s) - start_all))

{
    echo "# NexusLite vs SQLite at the default options"
    echo
    echo "Produced by \`make bench\` (scripts/bench-defaults.sh, bench/defaults_bench.c,"
    echo "benches/rust_gets.rs, bench/defaults_report.py) on $(date -u '+%Y-%m-%d %H:%M UTC'),"
    echo "commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src Cargo.toml || echo ' plus uncommitted changes'); alone:"
    echo "\`bash scripts/bench-defaults.sh\` after \`make lib\`. Scale: BENCH_SCALE=$SCALE"
    if [ "$SCALE" = 1 ]; then
        echo "(the issues' sizes). The whole run took ${elapsed} s."
    else
        echo "(**reduced sizes, a smoke run: not the issues' sizes**). The whole run took ${elapsed} s."
    fi
    echo
    bench_machine "$WORK"
    echo
    echo "NexusLite $(target/release/nexus --version 2>/dev/null | awk '{print $NF}') is opened with only what the row says: \`{}\` (all defaults: WASP, sync"
    echo "full, the document cache of 10,000 documents, the 32 MiB page cache) or \`{\"sync\":\"normal\"}\`;"
    echo "only the cache-off column of the sweep sets \`{\"cache_capacity\":0}\`. SQLite: WAL mode,"
    echo "prepared statements, synchronous FULL or NORMAL as the NexusLite row, its default cache"
    echo "size, \`docs(id TEXT PRIMARY KEY, body TEXT)\` (a rowid table) holding the documents as JSON."
    echo "Each engine runs each phase in a process of its own; peak RSS is that process's."
    echo
    echo "Sizes used:"
    echo
    echo '```'
    cat "$WORK/sizes.txt"
    echo '```'
    echo
    echo "Time per phase:"
    echo
    cat "$WORK/phases.txt"
    echo
    python3 bench/defaults_report.py "$RES" "$NOTES"
} >"$OUT"
echo "== wrote $OUT (${elapsed} s)"
