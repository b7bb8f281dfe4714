#!/usr/bin/env bash
# NexusLite's aggregation pipeline vs SQLite's GROUP BY / ORDER BY / JOIN over json_extract
# (issue #21), after `make lib`; bench/run.sh calls it. Writes benchmarks/aggregate.md
# (BENCH_OUT overrides).
#
# Runs bench/aggregate_bench.c (see its header for the steps and what each engine is opened
# with) once per engine, each in a process of its own, checks that both engines returned the
# same groups, sums, top-k prices and join rows, and turns the results into the report with
# bench/aggregate_report.py, then appends bench/aggregate_notes.md (where the time goes).
#
# Sizes (environment, the issue's defaults): BENCH_AGG_DOCS 1000000, BENCH_AGG_GROUP_REPS 3,
# BENCH_AGG_TOPK_SCANS 5, BENCH_AGG_TOPK_QUERIES 50, BENCH_AGG_LOOKUP_REPS 5. BENCH_SCALE
# (default 1) multiplies the document count when it is not set explicitly (floor 10,000):
# BENCH_SCALE=0.02 is the quick smoke run.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${BENCH_OUT:-benchmarks/aggregate.md}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/nexus-aggregate-bench-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p target/bench "$(dirname "$OUT")"
RES=$WORK/results.txt
: >"$RES"
. scripts/bench-build.sh

SCALE=${BENCH_SCALE:-1}
# size NAME DEFAULT FLOOR: exports NAME, when unset, as DEFAULT x BENCH_SCALE (at least FLOOR).
size() {
    local v=${!1:-}
    [ -n "$v" ] || v=$(awk -v d="$2" -v s="$SCALE" -v f="$3" 'BEGIN { x = int(d * s); print (x < f ? f : x) }')
    export "$1=$v"
    echo "$1=$v" >>"$WORK/sizes.txt"
}
size BENCH_AGG_DOCS 1000000 10000
size BENCH_AGG_GROUP_REPS 3 3
size BENCH_AGG_TOPK_SCANS 5 5
size BENCH_AGG_TOPK_QUERIES 50 50
size BENCH_AGG_LOOKUP_REPS 5 5

echo "== build bench/aggregate_bench.c against libnexus.a and libsqlite3"
build_bench "$PWD" bench/aggregate_bench.c target/bench/aggregate_bench -lpthread -lm

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
start_all=$(date +%s)
for e in sqlite nexus; do
    echo "== $e"
    t=$(date +%s)
    target/bench/aggregate_bench "$e" "$WORK" | sed "s/^/$e /" >>"$RES"
    echo "$e run_seconds $(($(date +%s) - t))" >>"$RES"
    rm -f "$WORK"/agg.*
done
elapsed=$(($(date +%s) - start_all))
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

{
    echo "# Aggregation: NexusLite vs SQLite"
    echo
    echo "Produced by \`bash scripts/bench-aggregate.sh\` (bench/aggregate_bench.c,"
    echo "bench/aggregate_report.py; part of bench/run.sh) on $(date -u '+%Y-%m-%d %H:%M UTC'),"
    echo "commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src Cargo.toml || echo ' plus uncommitted changes'), after \`make lib\`."
    if [ "$SCALE" = 1 ]; then
        echo "Scale: BENCH_SCALE=1 (the issue's sizes). Both engines took ${elapsed} s."
    else
        echo "Scale: BENCH_SCALE=$SCALE (**reduced sizes: not the issue's 1M documents**). Both engines took ${elapsed} s."
    fi
    echo
    bench_machine "$WORK"
    echo "During this run the machine was loaded by other jobs: load average (1, 5, 15 min)"
    echo "$load_start at the start and $load_end at the end, on $(nproc) cores."
    echo
    echo "NexusLite $(target/release/nexus --version 2>/dev/null | awk '{print $NF}') is opened with its defaults (\`{}\`: WASP, sync full, the default"
    echo "caches), queries through \`nexus_aggregate\` with results read as JSON by \`nexus_cursor_next\`."
    echo "SQLite: the system library, WAL, synchronous FULL, its default cache size, prepared"
    echo "statements, \`docs(id TEXT PRIMARY KEY, body TEXT)\` holding the documents as JSON text,"
    echo "queries through json_extract, the index an expression index on"
    echo "\`json_extract(body,'\$.region')\`. Each engine runs in a process of its own, one after the"
    echo "other, on the same pseudo-random documents \`{_id, cat (100 values), price (double),"
    echo "qty (int 1..100), region (10 values)}\`, ~80 bytes each."
    echo
    echo "Sizes used:"
    echo
    echo '```'
    cat "$WORK/sizes.txt"
    echo '```'
    echo
    python3 bench/aggregate_report.py "$RES"
    echo
    cat bench/aggregate_notes.md
} >"$OUT"
echo "== wrote $OUT (${elapsed} s)"
