#!/usr/bin/env bash
# Runs the benchmarks (`make bench`; never part of `make test`) after `make lib`, and writes
# benchmarks/scan_1m.md: the filtered full-scan comparison with SQLite (bench/scan_bench.c)
# and the on-bytes versus decoded filter evaluation (benches/filter_eval.rs), with the
# machine they ran on. Environment: BENCH_DOCS (default 1000000), BENCH_RUNS (default 5).
set -euo pipefail
cd "$(dirname "$0")/.."
DOCS=${BENCH_DOCS:-1000000}
RUNS=${BENCH_RUNS:-5}
OUT=benchmarks
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT" target/bench

echo "== build bench/scan_bench.c against libnexus.a and libsqlite3"
. scripts/bench-build.sh
build_bench "$PWD" bench/scan_bench.c target/bench/scan_bench -std=c99

echo "== scan benchmark: $DOCS documents, median of $RUNS runs"
target/bench/scan_bench "$DOCS" "$RUNS" "$WORK" | tee "$WORK/scan.md"

echo "== filter evaluation: on stored bytes versus decoded"
cargo bench --quiet --bench filter_eval | tee "$WORK/eval.md"

cpu=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n 1)
{
    echo "# Filtered full scan: NexusLite versus SQLite json_extract"
    echo
    echo "Produced by \`make bench\` (scripts/bench-scan.sh) on $(date -u +%Y-%m-%d)."
    echo
    echo "Machine: ${cpu:-unknown CPU}, $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB memory,"
    echo "$(uname -sr), $(gcc --version | head -n 1), $(rustc --version)."
    echo "The machine is shared, so absolute numbers move between runs; the ratios are the point."
    echo
    echo "## Scan ($DOCS documents, no index)"
    echo
    echo "Each engine holds the same $DOCS JSON documents (bench/scan_bench.c says how they are"
    echo "generated); every query is a full scan evaluating the predicate on each document."
    echo "\"count\" rows count the matches (nexus_count / SELECT count(*)); \"find\" rows also"
    echo "return every matching document as JSON text (nexus_find + nexus_cursor_next /"
    echo "SELECT body). Times in milliseconds, median of $RUNS runs after a warm-up run."
    echo
    cat "$WORK/scan.md"
    echo
    echo "## Filter evaluation on stored bytes versus on decoded documents"
    echo
    echo "benches/filter_eval.rs: one pass of a compiled filter over BSON-encoded documents,"
    echo "evaluated on the bytes (what scans do) or after decoding each document fully (what"
    echo "scans did before this change). Best of 5 passes."
    echo
    cat "$WORK/eval.md"
    echo
    echo "## Raw timings"
    echo
    echo '```'
    cat "$WORK/scan_raw.txt"
    echo '```'
} >"$OUT/scan_1m.md"
echo "== wrote $OUT/scan_1m.md"
