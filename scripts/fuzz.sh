#!/usr/bin/env bash
# `make fuzz`: runs every fuzz target of fuzz/ (cargo-fuzz, libFuzzer) for FUZZ_SECONDS each
# (default 60), one after the other, and prints per target the executions and crashes. Not
# part of `make test` (the crashers it found are, as tests/integration/fuzz_regressions.rs).
#   FUZZ_SECONDS=N     time per target (default 60)
#   FUZZ_TARGETS="a b" only these targets (default: all, `cargo fuzz list`)
#   FUZZ_RSS_MB=N      libFuzzer's -rss_limit_mb (default 2048)
#   FUZZ_TIMEOUT=N     libFuzzer's -timeout per input in seconds (default 10)
#   FUZZ_TOOLCHAIN=T   the nightly toolchain to use (default nightly)
# Needs a nightly toolchain (the sanitizer flags); without one it says so and exits 0.
# cargo-fuzz is installed with `cargo install cargo-fuzz --locked` when missing. New corpus
# entries go to fuzz/target/corpus/<target> (starting from the committed seeds in
# fuzz/corpus/<target>, which stay untouched); crashers to fuzz/artifacts/<target>/.
# Exit status: non-zero when a target crashed (or failed to build).
set -uo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS="${FUZZ_SECONDS:-60}"
FUZZ_RSS_MB="${FUZZ_RSS_MB:-2048}"
FUZZ_TIMEOUT="${FUZZ_TIMEOUT:-10}"
tc="${FUZZ_TOOLCHAIN:-nightly}"

# Listed, not run: `rustup run` may install a missing toolchain by itself.
if ! rustup toolchain list 2>/dev/null | grep -q "^$tc"; then
  echo "fuzz: skipped: no Rust toolchain '$tc' (cargo-fuzz needs a nightly one for the"
  echo "      sanitizer flags); install it with: rustup toolchain install nightly"
  exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz"
  cargo install cargo-fuzz --locked || { echo "fuzz: cargo install cargo-fuzz failed"; exit 1; }
fi

cd fuzz
# Debug assertions on (-a): overflow checks and the library's debug_assert!s count as crashes.
echo "fuzz: building the targets (nightly, AddressSanitizer, debug assertions)"
cargo "+$tc" fuzz build -O -a || { echo "fuzz: build failed"; exit 1; }
targets="${FUZZ_TARGETS:-$(cargo "+$tc" fuzz list | grep -v '^make_seeds$')}"

declare -A max_len=([db_file]=262144 [page]=16385 [log_replay]=65536 [import]=65536)
declare -A dict=([json_document]=json [json_differential]=json [query]=json [update]=json
                 [aggregate]=json [import]=json [key_order]=json)

failed=()
summary=()
for t in $targets; do
  scratch="target/corpus/$t"
  mkdir -p "$scratch" "artifacts/$t"
  args=(-max_total_time="$FUZZ_SECONDS" -rss_limit_mb="$FUZZ_RSS_MB" -timeout="$FUZZ_TIMEOUT"
        -max_len="${max_len[$t]:-8192}" -print_final_stats=1 -artifact_prefix="artifacts/$t/")
  [[ -n "${dict[$t]:-}" ]] && args+=(-dict="dict/${dict[$t]}.dict")
  echo; echo "=== fuzz $t: ${FUZZ_SECONDS} s"
  log="target/fuzz-$t.log"
  start=$SECONDS
  cargo "+$tc" fuzz run -O -a "$t" "$scratch" "corpus/$t" -- "${args[@]}" >"$log" 2>&1
  rc=$?
  execs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)"
  crashes="$(ls "artifacts/$t" 2>/dev/null | grep -c '^\(crash\|leak\|timeout\|oom\)-' || true)"
  line="$t: ${execs:-?} executions in $((SECONDS - start)) s, exit $rc, artifacts in artifacts/$t: $crashes"
  echo "$line"; summary+=("$line")
  if ((rc != 0)); then
    failed+=("$t"); tail -40 "$log"
  fi
done

echo; echo "=== fuzz summary (FUZZ_SECONDS=$FUZZ_SECONDS)"
printf '%s\n' "${summary[@]}"
if ((${#failed[@]})); then
  echo "fuzz: crashed: ${failed[*]} (inputs in fuzz/artifacts/, logs in fuzz/target/fuzz-*.log)"
  exit 1
fi
echo "fuzz: no crashes"
