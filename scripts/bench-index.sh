#!/usr/bin/env bash
# Secondary index benchmark (`make bench`; never part of `make test`), after `make lib`:
# NexusLite vs SQLite (expression indexes on json_extract) through the C ABI
# (bench/index_bench.c): insert throughput with 0, 1 and 3 indexes, point lookups and range
# queries with and without an index. Writes benchmarks/indexes.md.
#
#   bash scripts/bench-index.sh                       # 200,000 documents
#   BENCH_DOCS=1000000 bash scripts/bench-index.sh    # the issue's size
#   BENCH_INDEX_SKIP_CREATE=1 BENCH_DOCS=20000 bash scripts/bench-index.sh
#                       # no index on either side: the unindexed rows only, to check the
#                       # harness while nexus_create_index is unsupported (report not kept:
#                       # it goes to target/bench/indexes-skip-create.md)
#
# Environment: BENCH_DOCS (200000), BENCH_RUNS (3), BENCH_SYNC (normal | full, both sides),
# BENCH_LOOKUPS (10000), BENCH_SCAN_LOOKUPS (20), BENCH_RANGES (20), BENCH_SCAN_RANGES (5),
# BENCH_INDEX_SKIP_CREATE; see bench/index_bench.c.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=benchmarks/indexes.md
if [[ "${BENCH_INDEX_SKIP_CREATE:-0}" != 0 ]]; then
    OUT=target/bench/indexes-skip-create.md
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/nexus-index-bench-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p benchmarks target/bench

echo "== build bench/index_bench.c against libnexus.a and libsqlite3"
. scripts/bench-build.sh
build_bench "$PWD" bench/index_bench.c target/bench/index_bench

echo "== index benchmark: NexusLite vs SQLite"
start=$(date +%s)
target/bench/index_bench "$WORK" "$WORK/table.md" "$WORK/raw.txt"
elapsed=$(( $(date +%s) - start ))

cpu=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n 1)
sqlite_version=$(pkg-config --modversion sqlite3 2>/dev/null || echo unknown)
sync=${BENCH_SYNC:-normal}
{
    echo "# Secondary indexes: NexusLite vs SQLite expression indexes"
    echo
    if [[ "${BENCH_INDEX_SKIP_CREATE:-0}" != 0 ]]; then
        echo "**BENCH_INDEX_SKIP_CREATE: no index was created on either side; only the unindexed"
        echo "rows ran and no plan was checked.**"
        echo
    fi
    echo "Produced by \`make bench\` (scripts/bench-index.sh, bench/index_bench.c) on $(date -u +%Y-%m-%d)."
    echo "The whole comparison took ${elapsed} s."
    echo
    echo "Machine: ${cpu:-unknown CPU}, $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB memory,"
    echo "$(uname -sr), $(gcc --version | head -n 1), $(rustc --version), SQLite $sqlite_version"
    echo "(system library). Filesystem of the work directory: $(df -T "$WORK" | awk 'NR==2 {print $2}')."
    echo "The machine is shared with other jobs, so absolute numbers move between runs."
    echo
    echo "Data: ${BENCH_DOCS:-200000} documents of about 200 bytes (BENCH_DOCS; the issue's figure is"
    echo "1,000,000: run \`BENCH_DOCS=1000000 bash scripts/bench-index.sh\`) with a nested"
    echo "\`user.email\` (unique) and \`user.age\` (0..99), inserted in 1,000-document transactions."
    echo "Indexes: \`{\"user.email\":1}\`, \`{\"user.age\":1}\` and \`{\"user.age\":1,\"score\":-1}\`; on"
    echo "SQLite \`CREATE INDEX ... ON docs(json_extract(body, '\$.user.email'))\` and so on, over"
    echo "\`docs(id TEXT PRIMARY KEY, body TEXT) WITHOUT ROWID\` holding the JSON text."
    echo "Durability: sync=${sync} on NexusLite, synchronous=$(tr '[:lower:]' '[:upper:]' <<<"$sync") on SQLite"
    echo "(journal_mode=WAL) — the same on both sides (BENCH_SYNC). NexusLite runs on its default"
    echo "storage engine with the document cache off (cache_capacity 0); SQLite cache_size = 32 MiB."
    echo "Memory maps: both engines read pages with \`pread\` by default (NexusLite's open option"
    echo "\`mmap\` is false, SQLite's \`PRAGMA mmap_size\` 0: under a map, a file shortened by"
    echo "another process or a media error is a SIGBUS). The first rows compare the defaults; the"
    echo "rows marked \"both memory-mapped\" (NexusLite \`{\"mmap\":true}\`, SQLite"
    echo "\`PRAGMA mmap_size=2147418112\`) run the same indexed queries with the maps on, and"
    echo "\"neither memory-mapped\" (both explicit) repeats the defaults, each engine reopened on the"
    echo "same file."
    echo
    echo "Every lookup must return exactly one document and every range query the count the"
    echo "generator implies, on both sides; the harness also checks that the plans use the"
    echo "indexes (nexus_explain shows IXSCAN, SQLite's EXPLAIN QUERY PLAN says USING INDEX)."
    echo "Query figures are the median of ${BENCH_RUNS:-3} passes after a warm-up: ${BENCH_LOOKUPS:-10000}"
    echo "indexed lookups, ${BENCH_SCAN_LOOKUPS:-20} unindexed lookups, ${BENCH_RANGES:-20} indexed and"
    echo "${BENCH_SCAN_RANGES:-5} unindexed range queries (\`{\"user.age\":{\"\$gte\":x,\"\$lt\":x+1}}\`, 1% of"
    echo "the documents, every result read) per pass. Inserts: a fresh file per pass."
    echo
    cat "$WORK/table.md"
    echo
    echo "\"better\"/\"worse\": how many times faster than SQLite."
    echo
    cat bench/index_notes.md
    echo "## Raw numbers and plans"
    echo
    echo '```'
    cat "$WORK/raw.txt"
    echo '```'
} >"$OUT"
echo "== wrote $OUT"
