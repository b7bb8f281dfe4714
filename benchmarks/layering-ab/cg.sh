#!/usr/bin/env bash
# Instruction counts (callgrind, deterministic, unaffected by machine load) of the C ABI entry points.
set -uo pipefail
B=/work/ab/bin; O=/work/ab/cg; mkdir -p $O
one() { # harness version
  local h=$1 v=$2 w; w=$(mktemp -d /work/ab/tmp/cg-$h-XXXX)
  case $h in
    scan) valgrind --tool=callgrind --callgrind-out-file=$O/$h-$v.out $B/scan_$v ${CG_SCAN_DOCS:-100000} 1 $w >$O/$h-$v.stdout 2>$O/$h-$v.stderr ;;
    index) BENCH_DOCS=${CG_INDEX_DOCS:-20000} BENCH_RUNS=1 BENCH_LOOKUPS=2000 BENCH_SCAN_LOOKUPS=2 BENCH_RANGES=5 BENCH_SCAN_RANGES=1 \
           valgrind --tool=callgrind --callgrind-out-file=$O/$h-$v.out $B/index_$v $w $w/t.md $w/r.txt >$O/$h-$v.stdout 2>$O/$h-$v.stderr ;;
  esac
  echo "$h $v rc=$?"
  callgrind_annotate --inclusive=yes $O/$h-$v.out 2>/dev/null | grep -E '^ *[0-9,]+ .*[^_a-z]nexus_[a-z_]+( |$|\[)' | head -20 > $O/$h-$v.nexus.txt
  rm -rf $w
}
for h in ${CG_H:-scan index}; do one $h old & one $h new & wait; done
