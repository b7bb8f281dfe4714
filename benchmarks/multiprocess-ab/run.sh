#!/usr/bin/env bash
# Single-process A/B of the storage benchmark (bench/storage_bench.c) before and after the
# multi-process change: the same harness built against two libnexus.a, run alternately
# (old new new old old new new old) so that drift of a shared machine hits both sides.
#   OLD=/path/to/old/checkout NEW=/path/to/this/checkout bash benchmarks/multiprocess-ab/run.sh
# Each checkout must have run `make lib`. Writes t2-SIDE-N.md here; summarize.py prints the table.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
: "${OLD:?set OLD to the old checkout}" "${NEW:=$(cd "$here/../.." && pwd)}"
bin=$(mktemp -d); trap 'rm -rf "$bin"' EXIT
. "$NEW/scripts/bench-build.sh"
build_bench "$OLD" "$NEW/bench/storage_bench.c" "$bin/storage_bench_old" -lpthread
build_bench "$NEW" "$NEW/bench/storage_bench.c" "$bin/storage_bench_new" -lpthread
i=0
for side in old new new old old new new old; do
  i=$((i+1)); w=$(mktemp -d)
  BENCH_DOCS=100000 BENCH_RUNS=3 "$bin/storage_bench_$side" "$w" "$here/t2-$side-$i.md" /dev/null 2>/dev/null
  rm -rf "$w"; sync; sleep 3
done
python3 "$here/summarize.py"
