#!/usr/bin/env bash
# Encrypted NexusLite vs plain NexusLite vs SQLCipher (issue #20), `make bench` (never part of
# `make test`), after `make lib`. Writes benchmarks/encryption.md (BENCH_OUT overrides).
#
# Runs the `table` phase of bench/defaults_bench.c (its header says what each row does) for
# three engines, each in a process of its own, in BENCH_TABLE_ROUNDS [5] rounds of the three
# in turn (about 30 s a round at full size; the report gives medians): NexusLite on the defaults,
# NexusLite on the defaults plus `encryption_key` (a P-256 key made here), and SQLCipher
# (Debian's libsqlcipher-dev, installed here when missing: the same harness compiled against
# it, `PRAGMA key` with a passphrase, its defaults otherwise; WAL and synchronous as for
# SQLite). Sizes as the defaults benchmark (BENCH_DOCS 200000, ...; BENCH_SCALE multiplies).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${BENCH_OUT:-benchmarks/encryption.md}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/nexus-enc-bench-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p target/bench "$(dirname "$OUT")"
. scripts/bench-build.sh

if ! [ -e /usr/include/sqlcipher/sqlite3.h ]; then
    SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libsqlcipher-dev >/dev/null
fi

SCALE=${BENCH_SCALE:-1}
size() {
    local v=${!1:-}
    [ -n "$v" ] || v=$(awk -v d="$2" -v s="$SCALE" -v f="$3" 'BEGIN { x = int(d * s); print (x < f ? f : x) }')
    export "$1=$v"
}
size BENCH_DOCS 200000 2000
size BENCH_GETS 200000 2000
size BENCH_UPDATES_FULL 3000 100
size BENCH_UPDATES_NORMAL 20000 200
size BENCH_LOOKUPS 50000 500
size BENCH_AGE_QUERIES 200 20

build_bench "$PWD" bench/defaults_bench.c target/bench/defaults_bench -lpthread -lm
# The SQLCipher build: its header and library instead of the system SQLite's.
export PKG_CONFIG_PATH=$PWD/target/release/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
read -r -a NEXUS_STATIC <<<"$(pkg-config --libs --static nexus | sed "s#-lnexus#$PWD/target/release/libnexus.a#")"
read -r -a CFLAGS <<<"$(pkg-config --cflags nexus)"
gcc -std=c11 -O2 -Wall -Wextra -Werror -DBENCH_SQLCIPHER -I/usr/include/sqlcipher "${CFLAGS[@]}" \
    bench/defaults_bench.c "${NEXUS_STATIC[@]}" -lsqlcipher -lpthread -lm -o target/bench/defaults_bench_sqlcipher

target/release/nexus keygen "$WORK/bench.key" "$WORK/bench.pub" >/dev/null
RES=$WORK/results.txt
: >"$RES"
run() { # LABEL ROUND BINARY ENGINE [env...]
    local label=$1 round=$2 bin=$3 engine=$4
    shift 4
    local dir=$WORK/$label
    mkdir -p "$dir"
    env "$@" "$bin" table "$engine" "$dir" | grep -v '^#' | sed "s/^/$label $round /" >>"$RES"
    rm -rf "$dir"
}
# The whole table BENCH_TABLE_ROUNDS [5] times, the three engines in turn each round: on a
# shared machine one pass moves a row by 20-30% either way, so the table gives each engine's
# median and the median of the per-round ratios (an engine is compared with the others of
# its own round, run minutes apart, not with another round's).
TABLE_ROUNDS=${BENCH_TABLE_ROUNDS:-5}
for round in $(seq "$TABLE_ROUNDS"); do
    echo "== round $round: plain NexusLite, encrypted NexusLite, SQLCipher" >&2
    run plain "$round" target/bench/defaults_bench nexus
    run encrypted "$round" target/bench/defaults_bench nexus BENCH_KEY_FILE="$WORK/bench.key"
    run sqlcipher "$round" target/bench/defaults_bench_sqlcipher sqlite
done

# The sync-full commit row again, in alternation: the disk's fsync rate moves a lot on a
# shared machine (a tenfold swing within minutes), so one pass per engine can land on a slow
# or a fast spell. BENCH_ALT_ROUNDS [3] rounds of plain, encrypted, SQLCipher, each the
# `durable` phase (single-document updates sync full over BENCH_DURABLE_DOCS documents,
# after the disk's overwrite rate right then); the medians go into the table.
ALT=$WORK/alternated.txt
: >"$ALT"
export BENCH_DURABLE_DOCS=${BENCH_DURABLE_DOCS:-10000} BENCH_COMMITS=${BENCH_COMMITS:-200}
for round in $(seq "${BENCH_ALT_ROUNDS:-3}"); do
    echo "== sync-full commits, round $round: plain, encrypted, SQLCipher" >&2
    for label in plain encrypted sqlcipher; do
        dir=$WORK/alt-$label
        mkdir -p "$dir"
        case $label in
        plain) target/bench/defaults_bench durable nexus "$dir" ;;
        encrypted) BENCH_KEY_FILE="$WORK/bench.key" target/bench/defaults_bench durable nexus "$dir" ;;
        sqlcipher) target/bench/defaults_bench_sqlcipher durable sqlite "$dir" ;;
        esac | grep -E '^(durable_update_per_s|disk_overwrite_per_s) ' | sed "s/^/$label /" >>"$ALT"
        rm -rf "$dir"
    done
done

# The cipher a new encrypted file gets here (crypto::seal::Cipher::preferred).
if grep -qw aes /proc/cpuinfo && grep -qw pclmulqdq /proc/cpuinfo; then
    CIPHER="AES-256-GCM, format version 8: this processor has AES and carry-less multiply instructions"
else
    CIPHER="XChaCha20-Poly1305, format version 7: this processor lacks AES or carry-less multiply instructions"
fi
export CIPHER
RUN_DATE=$(date -u '+%Y-%m-%d %H:%M UTC') RUN_COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown) RUN_SCALE=$SCALE
export RUN_DATE RUN_COMMIT RUN_SCALE TABLE_ROUNDS
python3 - "$RES" "$OUT" "$(bench_machine "$WORK")" "$ALT" <<'PY'
import os, statistics, sys
res, out, machine, alt = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
per_round = {}  # (label, key) -> {round: value}
for line in open(res):
    label, rnd, key, val = line.split()
    per_round.setdefault((label, key), {})[int(rnd)] = float(val)
v = {k: statistics.median(xs.values()) for k, xs in per_round.items()}
def ratios(a, b, key):
    """The per-round ratios a/b of `key` (rounds where both ran)."""
    xa, xb = per_round.get((a, key), {}), per_round.get((b, key), {})
    return [xa[r] / xb[r] for r in sorted(xa) if r in xb and xb[r]]
runs = {}
for line in open(alt):
    label, key, val = line.split()
    runs.setdefault((label, key), []).append(float(val))
for (label, key), xs in runs.items():
    v[(label, "alt_" + key)] = statistics.median(xs)
rows = [
    ("bulk insert, 1,000 per transaction (docs/s)", "bulk_docs_per_s"),
    ("random get by _id (/s)", "get_per_s"),
    ("filtered count, 2 predicates, full scan (docs/s)", "count_docs_per_s"),
    ("single update commits, sync full (/s)", "update_full_per_s"),
    ("single update commits, sync full, median of the alternated runs (/s)", "alt_durable_update_per_s"),
    ("disk overwrite + fdatasync before the alternated runs, median (/s; the disk, not the engine)", "alt_disk_overwrite_per_s"),
    ("single update commits, sync normal (/s)", "update_normal_per_s"),
    ("build 2 indexes (docs/s)", "index_build_docs_per_s"),
    ("find_one through an index (/s)", "find_one_email_per_s"),
    ("find by age through an index (rows/s)", "find_age_rows_per_s"),
    ("files after close, before any index (bytes; lower is better)", "file_bytes_before_indexes"),
    ("files after close, with the 2 indexes (bytes; lower is better)", "file_bytes"),
]
def f(x):
    return f"{x/1e6:.2f}M" if x >= 1e6 else (f"{x/1e3:.1f}k" if x >= 1e3 else f"{x:.0f}")
lines = ["# Encryption at rest: encrypted NexusLite vs plain NexusLite vs SQLCipher", "",
         "Written by `scripts/bench-encryption.sh` (`make bench`), all three in one run, each engine in",
         "a process of its own, through the C ABI (`bench/defaults_bench.c`, phase `table`: 200,000",
         "documents of ~200 bytes with string ids unless scaled), in "
         f"{os.environ['TABLE_ROUNDS']} rounds of the three in turn: each engine's column is its",
         "median, each ratio the median of the rounds' own ratios (every round's ratios are listed",
         "under the table). NexusLite runs on its defaults; the",
         "encrypted row adds only the open option `encryption_key` (a P-256 key; pages and log records",
         f"sealed with {os.environ['CIPHER']}). SQLCipher is Debian's libsqlcipher 3.4.1 (`PRAGMA key` with a",
         "passphrase, its defaults otherwise: AES-256-CBC + HMAC-SHA1 per 1 KiB page) in WAL mode with",
         "synchronous FULL / NORMAL as the row says, prepared statements, documents as JSON text.",
         "Debian's SQLCipher is built without JSON1: its update rewrites the row unchanged (the same",
         "page writes and commit), its filtered count matches the city as text (`LIKE`, still a scan",
         "of every row), and it has no index rows (`-`).",
         "Targets (#20): encrypted within 15% of plain (ratio >= 0.85; file size <= 1.15) and ahead of",
         "SQLCipher on every row (the last column: `met`, or `missed` and which).", "", machine,
         f"Run {os.environ['RUN_DATE']}, commit {os.environ['RUN_COMMIT']}, BENCH_SCALE {os.environ['RUN_SCALE']}.", "",
         "| workload | plain | encrypted | SQLCipher | encrypted / plain | encrypted / SQLCipher | targets |",
         "|---|---|---|---|---|---|---|"]
def verdict(key, ep, es):
    """`met` or what missed, from the ratios encrypted / plain and encrypted / SQLCipher."""
    if key.startswith("alt_disk"):
        return "(the disk)"
    lower = key.startswith("file_bytes")
    miss = []
    if (ep > 1.15) if lower else (ep < 0.85):
        miss.append("vs plain")
    if es is not None and ((es > 1) if lower else (es <= 1)):
        miss.append("vs SQLCipher")
    return "met" if not miss else "missed (" + ", ".join(miss) + ")"
round_lines = ["", "Every round's ratios (encrypted / plain; encrypted / SQLCipher), in the order run:", ""]
for name, key in rows:
    p, e, s = (v.get((l, key)) for l in ("plain", "encrypted", "sqlcipher"))
    if None in (p, e) or p == 0:
        continue
    ep, es = ratios("encrypted", "plain", key), ratios("encrypted", "sqlcipher", key)
    rp = statistics.median(ep) if ep else e / p
    if per_round.get(("plain", key)):
        round_lines.append(f"- {name}: " + ", ".join(f"{x:.2f}" for x in ep)
                           + ("; " + ", ".join(f"{x:.2f}" for x in es) if es else ""))
    if s is None or s == 0:
        lines.append(f"| {name} | {f(p)} | {f(e)} | - | {rp:.2f}x | - | {verdict(key, rp, None)} |")
    else:
        rs = statistics.median(es) if es else e / s
        lines.append(f"| {name} | {f(p)} | {f(e)} | {f(s)} | {rp:.2f}x | {rs:.2f}x | {verdict(key, rp, rs)} |")
lines += round_lines
alt_lines = ["", "Alternated sync-full runs (`durable` phase, one line per run, in the order run):", ""]
for (label, key), xs in sorted(runs.items()):
    alt_lines.append(f"- {label} {key}: " + ", ".join(f(x) for x in xs))
lines += alt_lines
lines += ["", open("bench/encryption_notes.md").read().rstrip("\n")]
open(out, "w").write("\n".join(lines) + "\n")
print(open(out).read())
PY
