#!/usr/bin/env bash
# A/B rounds: for each round, each harness runs old then new, back to back.
set -uo pipefail
B=/work/ab/bin; R=/work/ab/res; T=/work/ab/tmp
ROUNDS=${ROUNDS:-3}
HARNESSES=${HARNESSES:-"storage index scan"}
for r in $(seq 1 $ROUNDS); do
  for h in $HARNESSES; do
    for v in old new; do
      d=$R/$h/$v-$r; mkdir -p $d; w=$(mktemp -d $T/$h-XXXX)
      s=$(date +%s)
      echo "$(date -u +%T) round $r $h $v start; load: $(cut -d' ' -f1-3 /proc/loadavg)"
      case $h in
        storage) $B/storage_$v $w $d/table.md $d/raw.txt 2>$d/stderr.txt ;;
        index)   $B/index_$v $w $d/table.md $d/raw.txt >$d/stdout.txt 2>$d/stderr.txt ;;
        scan)    $B/scan_$v ${SCAN_DOCS:-1000000} ${SCAN_RUNS:-5} $w >$d/table.md 2>$d/stderr.txt; cp $w/scan_raw.txt $d/raw.txt ;;
      esac
      echo "rc=$? secs=$(( $(date +%s) - s )) load_end=$(cut -d' ' -f1-3 /proc/loadavg)" | tee $d/meta.txt
      rm -rf $w
    done
  done
done
echo ALL-DONE
