#!/usr/bin/env bash
# `make soak`: the long runs of the durability tests, then benchmarks/reliability-soak.md.
#  1. tests/integration/wasp_crash_sigkill.rs in its long mode: SOAK_ROUNDS (default 1000) rounds of the
#     SIGKILL loop (mixed workload, a reader process throughout, every acknowledged commit
#     and the integrity check after every recovery);
#  2. tests/integration/wasp_resource_faults.rs: writes past RLIMIT_FSIZE and into a full tmpfs;
#  3. the fsync failure tests of tests/recovery_fault_injection.rs (feature fault-injection).
# The report is written whatever happens; it says which step failed, and so does the exit
# status. SOAK_REPORT names another report file.
set -uo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
rounds="${SOAK_ROUNDS:-1000}"
report="${SOAK_REPORT:-benchmarks/reliability-soak.md}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

soak_cmd=(cargo test --release --test integration --
          --exact wasp_crash_sigkill::wasp_every_acknowledged_write_survives_sigkill --nocapture)
resource_cmd=(cargo test --release --test integration wasp_resource_faults:: -- --nocapture --test-threads=1)
fsync_cmd=(cargo test --features fault-injection --test recovery_fault_injection -- --test-threads=1)

status=0
echo "== SIGKILL soak: $rounds rounds"
cargo test --release --test integration --no-run || exit 1
started="$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
t0=$SECONDS
if NEXUS_CRASH_ROUNDS="$rounds" NEXUS_SOAK_SUMMARY="$work/summary" "${soak_cmd[@]}" 2>&1 | tee "$work/soak.log"; then
  soak_result="passed"
else
  soak_result="FAILED"; status=1
fi
soak_wall=$((SECONDS - t0))
echo "== resource faults"
if "${resource_cmd[@]}" 2>&1 | tee "$work/resource.log"; then resource_result="passed"; else resource_result="FAILED"; status=1; fi
echo "== fsync failures (fault injection)"
if "${fsync_cmd[@]}" 2>&1 | tee "$work/fsync.log"; then fsync_result="passed"; else fsync_result="FAILED"; status=1; fi

val() { sed -n "s/^$1=//p" "$work/summary" 2>/dev/null; }
cpu="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
mem="$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
tmpfs_kind="$(df -T "${TMPDIR:-/tmp}" | awk 'NR == 2 {print $2}')"
mkdir -p "$(dirname "$report")"
{
  echo "# Reliability soak"
  echo
  echo "Written by \`make soak\` (scripts/soak.sh); started $started, commit" \
       "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- src tests 2>/dev/null || echo ' with local changes')."
  echo
  echo "Machine: $(uname -srm), $cpu, $(nproc) cores, $mem, temporary files on $tmpfs_kind;" \
       "$(rustc --version). Other builds may run beside it: the durations are not benchmarks."
  echo
  echo "## SIGKILL loop: $soak_result"
  echo
  echo "Command: \`SOAK_ROUNDS=$rounds make soak\`, which runs"
  echo "\`NEXUS_CRASH_ROUNDS=$rounds ${soak_cmd[*]}\` (tests/integration/wasp_crash_sigkill.rs)."
  echo
  echo "Each round starts a read_only reader process, which checks every snapshot while the"
  echo "writer process runs (items without a gap, the counter never ahead, \`users\` exactly what"
  echo "the stored step makes, the newest user found through the unique index, no session"
  echo "before its step), and a writer process, SIGKILLed 30-280 ms later. The writer's"
  echo "workload: single inserts into \`items\` (a unique index on \`n\`), \`\$inc\` updates"
  echo "of a counter, one transaction per step on \`users\` (a unique index on \`email\`, one"
  echo "on \`group\`: insert, update moving both index keys, every third step a delete, and the"
  echo "step number), an insert with a TTL per step (40-100 ms; every 5th one hour) that its"
  echo "sweeper (every 10 ms) deletes once expired, a duplicate email every 8th step (must be"
  echo "refused), an explicit checkpoint every 25th, and automatic checkpoints every 8 KiB of"
  echo "log (\`sync=full\`). After every kill the parent reopens and checks every acknowledged"
  echo "commit (and at most one unacknowledged one per stream), \`users\` against its model"
  echo "document by document and through both indexes, the long TTL documents, the expiry"
  echo "registry after a purge, and runs the integrity check."
  echo
  if [[ -s "$work/summary" ]]; then
    echo "| | |"
    echo "|---|---|"
    echo "| rounds (writer SIGKILLed, database recovered and checked) | $(val rounds) |"
    echo "| failures | $(val failures) |"
    echo "| duration | $(val seconds) s (wall clock of the step: $soak_wall s) |"
    echo "| commits acknowledged | $(val acked_commits): $(val acked_inserts) inserts, $(val acked_updates) updates, $(val acked_steps) multi-document transactions, $(val acked_ttl_inserts) inserts with a TTL |"
    echo "| acknowledged commits verified, summed over the rounds (each round checks all earlier ones again; the TTL inserts of 40-100 ms not counted) | $(val commits_verified) |"
    echo "| integrity checks (all clean) | $(val checks) |"
    echo "| expired documents deleted by the writers' sweepers | $(val swept) |"
    echo "| log laps (checkpoints) made by the writers | $(val laps) |"
    echo "| rounds in which the writer opened beside the reader | $(val writer_opened) |"
    echo "| the database at the end | $(val items) items, $(val steps) steps, $(val long_sessions) long TTL documents acknowledged |"
  else
    echo "Failures: 1 (no summary was written). The end of the output:"
    echo
    echo '```'
    grep -v '^\s*[0-9]*: \|^\s*at ' "$work/soak.log" | tail -40
    echo '```'
  fi
  echo
  echo "## Resource faults: $resource_result"
  echo
  echo "Command: \`${resource_cmd[*]}\` (tests/integration/wasp_resource_faults.rs; also in \`make test\`,"
  echo "in both engine passes). A child process inserts 2 KiB documents until the OS refuses a"
  echo "write: past its \`RLIMIT_FSIZE\` (set with setrlimit to 300 KiB above its largest file,"
  echo "\`SIGXFSZ\` ignored so that write returns \`EFBIG\`), or into a 2 MiB tmpfs (\`ENOSPC\`;"
  echo "mounting needs root, elsewhere the test says why and skips). Each case requires: the"
  echo "failed insert returns \`NEXUS_IO\` naming the cause, the next write (which needs no new"
  echo "space) is refused by the sticky rule, reads are answered and do not show the failed"
  echo "insert, and a process without the limit (or after the tmpfs is enlarged) reopens with"
  echo "every acknowledged insert, a clean check, and working writes. Outcomes:"
  echo
  grep -o 'RESULT .*' "$work/resource.log" | sed 's/^RESULT /- /' | sed 's/ \.\.\. *$//;s/ ok$//'
  echo
  echo "## fsync failures (fault injection): $fsync_result"
  echo
  echo "Command: \`${fsync_cmd[*]}\` (feature \`fault-injection\`, never in a shipped build)."
  echo "A failed \`fdatasync\` fails its commit (\`NEXUS_IO\`), and every committer queued behind"
  echo "the same group fsync; later writes are refused until reopen; after a simulated power loss"
  echo "(every write no sync covered is undone) the reopened database has every acknowledged"
  echo "commit, none of the failed ones, and a clean check; a checkpoint whose fsync fails loses"
  echo "nothing acknowledged. Tests:"
  echo
  sed -n 's/^test \(.*\) \.\.\. ok$/- \1: ok/p' "$work/fsync.log"
  sed -n 's/^test \(.*\) \.\.\. FAILED$/- \1: FAILED/p' "$work/fsync.log"
  echo
  echo "Observed: until the reopen, a commit whose fsync failed may be visible to readers"
  echo "(whole, never in part): WASP publishes a commit once its log record is written and"
  echo "releases the writer gate before the group fsync, so commits are visible before they are"
  echo "durable. Nothing acknowledged is ever lost, but a reader can see a commit that a power"
  echo "loss then takes away."
} > "$report"
echo "== wrote $report (SIGKILL loop $soak_result, resource faults $resource_result, fsync $fsync_result)"
exit $status
