#!/usr/bin/env bash
# Runs the benchmarks (not part of `make test`) and writes their reports to benchmarks/.
# Assumes `make lib` has run.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p target/bench benchmarks
export PKG_CONFIG_PATH=$PWD/target/release/pkgconfig
read -r -a NEXUS_CFLAGS <<<"$(pkg-config --cflags nexus)"

echo "== cache: hit vs miss, cache on vs off, beside SQLite (C ABI)"
cc -O2 -std=c11 "${NEXUS_CFLAGS[@]}" bench/cache_bench.c target/release/libnexus.a \
   -lsqlite3 -lpthread -ldl -lm -o target/bench/cache_bench
target/bench/cache_bench benchmarks/cache_c_abi.md "${NEXUS_BENCH_DOCS:-200000}"

echo "== cache: sampled LRU vs exact LRU on Zipf traces"
cargo test --release --quiet --lib cache::sim::zipf_report -- --ignored --nocapture

echo "== import: 200 MB NDJSON and CSV beside SQLite's .import"
bash scripts/bench-import.sh

echo "== query: filtered full scans of 1M documents beside SQLite json_extract"
bash scripts/bench-scan.sh

echo "== storage: WASP vs memlog vs SQLite, and WASP bounded memory (RSS)"
bash scripts/bench-storage.sh

echo "== indexes: secondary indexes beside SQLite expression indexes (C ABI)"
bash scripts/bench-index.sh

echo "== multi-process: readers beside a writer, and two writers, beside SQLite WAL (C ABI)"
bash scripts/bench-multiprocess.sh
BENCH_NEXUS_OPTIONS='{"sync":"normal"}' BENCH_SQLITE_SYNCHRONOUS=NORMAL \
    BENCH_OUT=benchmarks/multiprocess-sync-normal.md bash scripts/bench-multiprocess.sh

echo "== defaults: NexusLite vs SQLite at the default options, every workload of issues #18 and #19"
bash scripts/bench-defaults.sh

echo "== encryption: encrypted NexusLite vs plain NexusLite vs SQLCipher (issue #20)"
bash scripts/bench-encryption.sh

echo "== aggregation: \$group, top-k and \$lookup beside SQLite GROUP BY / ORDER BY / JOIN (issue #21, C ABI)"
bash scripts/bench-aggregate.sh

echo "== vector search: NexusLite HNSW beside hnswlib and a NumPy brute force (issue #24, C ABI)"
bash scripts/bench-vector.sh
