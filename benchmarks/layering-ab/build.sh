#!/usr/bin/env bash
# Compile each C harness against the OLD and NEW libnexus.a (each with its own worktree's header).
# storage_bench.c: the OLD worktree's source for both libs (the new lib still accepts "wal"),
# so the harness code is identical; index/scan: unchanged between the commits.
set -euo pipefail
B=/work/ab/bin
for v in old new; do
  W=/work/wt-$v
  L="$W/target/release/libnexus.a -lpthread -ldl -lm"
  gcc -std=c11 -O2 -Wall -Wextra -Werror -I$W/include /work/wt-old/bench/storage_bench.c $L -lsqlite3 -lpthread -o $B/storage_$v
  gcc -std=c11 -O2 -Wall -Wextra -Werror -I$W/include /work/wt-new/bench/index_bench.c $L -lsqlite3 -o $B/index_$v
  gcc -std=c99 -O2 -Wall -Wextra -Werror -I$W/include /work/wt-new/bench/scan_bench.c $L -lsqlite3 -o $B/scan_$v
done
ls -la $B
