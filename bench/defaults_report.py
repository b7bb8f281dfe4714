"""The tables of benchmarks/defaults.md from the results of scripts/bench-defaults.sh.

    python3 bench/defaults_report.py RESULTS NOTES

RESULTS has one `ENGINE PHASE KEY VALUE` line a figure (bench/defaults_bench.c's `key value`
lines, prefixed by the script); NOTES the engines' stats lines. Prints markdown: one table a
group with SQLite, NexusLite, the ratio (always oriented so that above 1 means NexusLite
is better: faster, or smaller for file sizes and RSS), the issue's target and whether it is
met, then a "Why (profile)" placeholder for the missed rows and the raw numbers.
"""
import json
import os
import sys
import statistics

res_path, notes_path = sys.argv[1], sys.argv[2]
R = {}
for line in open(res_path):
    parts = line.split()
    if len(parts) == 4:
        try:
            R[(parts[0], parts[1], parts[2])] = float(parts[3])
        except ValueError:
            R[(parts[0], parts[1], parts[2])] = parts[3]

# The durable phase runs twice an engine (alternating): keep each engine's pass in which the
# disk's overwrite + fdatasync rate, measured just before, was highest (the quietest disk).
for eng in ("sqlite", "nexus"):
    passes = sorted({k[1] for k in R if k[0] == eng and k[1].startswith("durable-")})
    if passes:
        best = max(passes, key=lambda p: R.get((eng, p, "disk_overwrite_per_s"), 0))
        for (e, p, k), v in list(R.items()):
            if e == eng and p == best:
                R[(e, "durable", k)] = v
        R[(eng, "durable", "pass")] = best

MISSED = []
GROUP = [""]  # the section being written, for the "Why" list


def val(engine, phase, key):
    return R.get((engine, phase, key))


def fmt(v, unit=""):
    if v is None:
        return "n/a"
    if isinstance(v, str):
        return v
    if unit in ("MB", "MiB", "s"):
        return f"{v:.2f}" if v < 10 else f"{v:.1f}"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.3g}"


def verdict(label, got, need, kind):
    """kind `min`: got >= need is met; `max`: got <= need is met. Returns the cell."""
    if got is None or need is None:
        return "n/a"
    ok = got >= need if kind == "min" else got <= need
    if ok:
        return "met"
    by = (1 - got / need) * 100 if kind == "min" else (got / need - 1) * 100
    by = f"{by:.1f}" if by < 1 else f"{by:.0f}"
    MISSED.append(f"{GROUP[0]}: {label} (missed by {by}%)")
    return f"**missed by {by}%**"


def ratio_row(label, unit, sq, nx, higher_better, target):
    """A row with both engines; `target` the minimum ratio (None: no target)."""
    if sq and nx:
        ratio = nx / sq if higher_better else sq / nx
    else:
        ratio = None
    tcell = f">= {target:g}x" if target is not None else "—"
    vcell = verdict(label, ratio, target, "min") if target is not None else "—"
    return f"| {label} | {unit} | {fmt(sq, unit)} | {fmt(nx, unit)} | {fmt(ratio) + 'x' if ratio else 'n/a'} | {tcell} | {vcell} |"


def one_row(label, unit, value, target_text, need, kind, sq="—"):
    """A row about NexusLite alone (or a disk rate): the target on its own value."""
    vcell = verdict(label, value, need, kind) if need is not None else "—"
    return f"| {label} | {unit} | {sq} | {fmt(value, unit)} | — | {target_text} | {vcell} |"


HEAD = "| row | unit | SQLite | NexusLite | NexusLite vs SQLite (>1: NexusLite better) | target | result |\n|---|---|---:|---:|---:|---|---|"


def mb(v):
    return v / 1e6 if isinstance(v, float) else None


def mib(kib):
    return kib / 1024 if isinstance(kib, float) else None


out = []
w = out.append


def disk_note(phase):
    """A warning when the disk's overwrite + fdatasync rate, measured by each engine's process
    just before its sync-full rows, was low or moved between the two processes."""
    a, b = val("sqlite", phase, "disk_overwrite_per_s"), val("nexus", phase, "disk_overwrite_per_s")
    if not a or not b:
        return
    line = (f"Disk overwrite + fdatasync rate just before the sync-full rows: {fmt(a)}/s in SQLite's "
            f"process, {fmt(b)}/s in NexusLite's.")
    if max(a, b) / min(a, b) > 1.5 or min(a, b) < 2000:
        line += (" **The disk's state moved between the two processes (or it was busy with other "
                 "jobs' I/O): the sync-full rows here compare the disk's states more than the engines.**")
    w(line)


# ---- 1. the issue table ----
t = "table"
GROUP[0] = '1 (issue table)'
w("## 1. The issues' table: string ids, ~200-byte documents\n")
w(HEAD)
rows1 = [
    ("bulk insert, 1,000 per transaction", "docs/s", "bulk_docs_per_s", 1.0),
    ("random `nexus_get` by `_id`", "gets/s", "get_per_s", 2.0),
    ("filtered count, 2 predicates (one nested)", "docs scanned/s", "count_docs_per_s", 2.0),
    ("single `nexus_update({_id}, {$inc})`, sync full", "updates/s", "update_full_per_s", 1.3),
    ("same, sync normal", "updates/s", "update_normal_per_s", 2.0),
    ("build indexes on `email` and `age`", "docs/s", "index_build_docs_per_s", 1.5),
    ("`nexus_find_one({email})` through the index", "queries/s", "find_one_email_per_s", 1.5),
    ("`nexus_find({age: N})` through the index", "rows returned/s", "find_age_rows_per_s", 1.5),
]
for label, unit, key, target in rows1:
    w(ratio_row(label, unit, val("sqlite", t, key), val("nexus", t, key), True, target))
w(ratio_row("file size after the updates, closed, before the indexes (all files)", "MB",
            mb(val("sqlite", t, "file_bytes_before_indexes")), mb(val("nexus", t, "file_bytes_before_indexes")), False, None))
w(ratio_row("file size after the table run, closed (all files)", "MB", mb(val("sqlite", t, "file_bytes")),
            mb(val("nexus", t, "file_bytes")), False, 1.0))
w(ratio_row("peak RSS of the phase", "MiB", mib(val("sqlite", t, "rss_kib")), mib(val("nexus", t, "rss_kib")), False, None))
w("")
disk_note(t)
for key in ("count_matches", "find_age_rows"):
    a, b = val("sqlite", t, key), val("nexus", t, key)
    if a != b:
        w(f"\n**Check failed: {key} differs (SQLite {a}, NexusLite {b}).**")
w("\nTargets: #19 (get >= 2x, update sync normal >= 2x, index build and indexed queries >= 1.5x, "
  "count stays >= 2x), #18 (durable update >= 1.3x; storage rows and file size at or ahead of SQLite). "
  "Index build: documents per second for both indexes together.\n")

# ---- 2/3. loads ----
for num, mode, title, target in (
    (2, "uuid", "Inserts without `_id` (NexusLite makes a UUID v4; SQLite a random UUID `TEXT PRIMARY KEY`)", 2.0),
    (3, "seq", "Bulk insert with given sequential ids", 1.5),
):
    p = f"load-{mode}"
    GROUP[0] = f"{num} ({mode} ids)"
    w(f"## {num}. {title}\n")
    w(HEAD)
    w(ratio_row("docs/s overall, 1,000 per transaction", "docs/s", val("sqlite", p, "docs_per_s"), val("nexus", p, "docs_per_s"), True, target))
    for key, label in (("first10_docs_per_s", "docs/s in the first 10%"), ("last10_docs_per_s", "docs/s in the last 10%")):
        w(ratio_row(label, "docs/s", val("sqlite", p, key), val("nexus", p, key), True, None))
    f, l = val("nexus", p, "first10_docs_per_s"), val("nexus", p, "last10_docs_per_s")
    sf, sl = val("sqlite", p, "first10_docs_per_s"), val("sqlite", p, "last10_docs_per_s")
    w(one_row("last 10% / first 10%", "ratio", l / f if f and l else None, ">= 0.8" if mode == "uuid" else "—",
              0.8 if mode == "uuid" else None, "min", fmt(sl / sf) if sf and sl else "n/a"))
    w(ratio_row("file size after the load (db + log/WAL files, open)", "MB", mb(val("sqlite", p, "bytes_after_load")),
                mb(val("nexus", p, "bytes_after_load")), False, None))
    w(ratio_row("file size after close", "MB", mb(val("sqlite", p, "bytes_after_close")),
                mb(val("nexus", p, "bytes_after_close")), False, 1.0))
    w(ratio_row("peak RSS of the load", "MiB", mib(val("sqlite", p, "rss_kib")), mib(val("nexus", p, "rss_kib")), False, None))
    w("")

# ---- 4. import ----
GROUP[0] = '4 (import)'
w("## 4. `nexus import` vs `sqlite3 .import` of the same NDJSON lines (no `_id`)\n")
rows = val("nexus", "import", "rows")
nd = val("nexus", "import", "ndjson_bytes")
if rows and nd:
    w(f"{rows:,.0f} documents, {nd / 2**20:.0f} MiB of NDJSON (scripts/bench-import-data.sh, without `_id`). "
      "`target/release/nexus -q import DB c FILE` (defaults: WASP) and `sqlite3 DB 'CREATE TABLE docs(body TEXT)' "
      "'.separator \"\\037\" \"\\n\"' '.import FILE docs'` (one text column a line, stored unparsed; the CLI's "
      "defaults: rollback journal). Times and peak RSS from GNU time.\n")
w(HEAD)
w(ratio_row("import time", "s", val("sqlite", "import", "seconds"), val("nexus", "import", "seconds"), False, 0.5))
nrss = mib(val("nexus", "import", "rss_kib"))
w(f"| peak RSS | MiB | {fmt(mib(val('sqlite', 'import', 'rss_kib')), 'MiB')} | {fmt(nrss, 'MiB')} | "
  f"{fmt(val('sqlite', 'import', 'rss_kib') / val('nexus', 'import', 'rss_kib')) + 'x' if nrss else 'n/a'} | "
  f"< 100 MiB | {verdict('import peak RSS', nrss, 100, 'max')} |")
w(ratio_row("file size after the import", "MB", mb(val("sqlite", "import", "file_bytes")), mb(val("nexus", "import", "file_bytes")), False, 1.0))
w("")

# ---- 5. durable commits ----
GROUP[0] = '5 (durable commits)'
over = [val(e, "disk", "overwrite_fdatasync_per_s") for e in ("before", "after")]
app = [val(e, "disk", "append_fdatasync_per_s") for e in ("before", "after")]
over_m = sum(over) / 2 if all(over) else None
app_m = sum(app) / 2 if all(app) else None
w("## 5. Durable commits and the raw disk rates of the same run\n")
w("Raw rates of the work directory's disk, 300-byte records each followed by `fdatasync`, measured in "
  "a pass before and a pass after the engines: overwrite of blocks "
  "written and synced beforehand (offsets advancing through a 4 MiB file, wrapping) "
  f"**{fmt(over_m)}/s** ({' / '.join(fmt(v) for v in over)}); append "
  f"**{fmt(app_m)}/s** ({' / '.join(fmt(v) for v in app)}).\n")
if over_m and over_m < 2000:
    w("**The disk was busy during this phase** (other jobs' I/O on the shared machine): a few hundred "
      "fdatasync calls a second where a quiet run of this disk does 10-20k. The durable rows then "
      "measure the device queue more than the engines; compare them with a run on a quiet disk.\n")
w("Two alternating passes an engine (SQLite, NexusLite, SQLite, NexusLite, each in its own process); "
  "each engine's figures are from its pass with the quietest disk (the highest overwrite + fdatasync "
  f"rate measured just before its updates): SQLite {val('sqlite', 'durable', 'pass')}, NexusLite "
  f"{val('nexus', 'durable', 'pass')}. The update/overwrite fraction uses that rate of NexusLite's pass.\n")
w(HEAD)
nu = val("nexus", "durable", "durable_update_per_s")
ndisk = val("nexus", "durable", "disk_overwrite_per_s")
w(ratio_row("single `nexus_update({_id}, {$inc})`, sync full", "updates/s", val("sqlite", "durable", "durable_update_per_s"), nu, True, 1.3))
w(one_row(f"NexusLite durable update rate / overwrite + fdatasync rate just before ({fmt(ndisk)}/s)", "fraction",
          nu / ndisk if nu and ndisk else None, ">= 0.9", 0.9, "min"))
w(one_row("NexusLite durable update rate / append + fdatasync rate (mean of the passes)", "fraction",
          nu / app_m if nu and app_m else None, "—", None, "min"))
w(ratio_row("durable single-document insert commits, 1 thread", "commits/s", val("sqlite", "durable", "commits1_per_s"),
            val("nexus", "durable", "commits1_per_s"), True, None))
w(ratio_row("durable single-document insert commits, 4 threads (a connection each)", "commits/s",
            val("sqlite", "durable", "commits4_per_s"), val("nexus", "durable", "commits4_per_s"), True, 2.0))
w(ratio_row("peak RSS of the phase", "MiB", mib(val("sqlite", "durable", "rss_kib")), mib(val("nexus", "durable", "rss_kib")), False, None))
w("")
disk_note("durable")
w("")

# ---- 6. cache sweep ----
sets = val("nexus", "sweep", "sets")
sets = sorted(int(x) for x in sets.split(",")) if isinstance(sets, str) else []
cap = 10000
passes = []
GROUP[0] = '6 (cache sweep)'
w("## 6. Cache sweep: random gets, cache on (defaults) vs off (`{\"cache_capacity\":0}`)\n")
w("| working set | x cache | keys | cache off gets/s | cache on gets/s | on / off | target | result |")
w("|---:|---:|---|---:|---:|---:|---|---|")
for ws in sets:
    for dist in ("uniform", "zipf"):
        key = f"sweep_{ws}_{dist}_per_s"
        offs = [val("nexus-off", f"sweep-{ws}-pass{p}", key) for p in (1, 2, 3)]
        ons = [val("nexus", f"sweep-{ws}-pass{p}", key) for p in (1, 2, 3)]
        if all(isinstance(x, float) for x in offs + ons):
            # Medians of the passes; the ratio is the median of each pass's on / off.
            off, on = statistics.median(offs), statistics.median(ons)
            r = statistics.median(b / a for a, b in zip(offs, ons))
            passes.append((ws, dist, offs, ons))
        else:  # results of the single-pass harness (before 2026-12-07 evening)
            off, on = val("nexus-off", f"sweep-{ws}", key), val("nexus", f"sweep-{ws}", key)
            r = on / off if on and off else None
        fits = ws <= cap
        need = 1.5 if fits else 0.95
        label = f"cache sweep {ws:,} docs {dist}"
        w(f"| {ws:,} | {ws / cap:g} | {'Zipf(0.99)' if dist == 'zipf' else 'uniform'} | {fmt(off)} | {fmt(on)} | "
          f"{fmt(r) + 'x' if r else 'n/a'} | >= {need:g}x | {verdict(label, r, need, 'min')} |")
rss_tag = "-pass1" if passes else ""
w("\nTarget (#19): cache on never below 0.95x of off, above 1.5x where the working set fits the "
  f"cache ({cap:,} documents by default). Peak RSS per process (on / off), MiB: "
  + ", ".join(f"{ws:,}: {fmt(mib(val('nexus', f'sweep-{ws}{rss_tag}', 'rss_kib')))} / {fmt(mib(val('nexus-off', f'sweep-{ws}{rss_tag}', 'rss_kib')))}"
              for ws in sets) + ".\n")
if passes:
    w("Three passes a working set, each cache off then cache on, a process each: the columns are "
      "the medians, on / off the median of the passes' own ratios. Every pass (off / on, gets/s):\n")
    for ws, dist, offs, ons in passes:
        w(f"- {ws:,} {dist}: " + ", ".join(f"{fmt(a)} / {fmt(b)}" for a, b in zip(offs, ons)))
    w("")

# ---- 7. Rust API ----
rust = sorted((int(k[2].split("_")[1]), v) for k, v in R.items() if k[1] == "rust")
GROUP[0] = '7 (Rust API)'
w("## 7. Rust API, one thread: random gets by `_id` (`Collection::get`, defaults)\n")
w("| working set | gets/s | target | result |\n|---|---:|---|---|")
for i, (ws, v) in enumerate(rust):
    need = 1e6 if i == 0 else 4e5
    what = "cached" if ws <= cap else f"{ws / cap:g}x the cache"
    w(f"| {ws:,} docs ({what}) | {fmt(v)} | >= {need:,.0f}/s | {verdict(f'Rust API gets, {ws:,} docs', v, need, 'min')} |")
w("")

# ---- 8. library size ----
GROUP[0] = '8 (library size)'
w("## 8. Library size (stripped `libnexus.so`)\n")
w("| library | MB | target | result |\n|---|---:|---|---|")
rel, small, sql = (val("nexus", "size", "release_stripped_bytes"), val("nexus", "size", "small_stripped_bytes"),
                   val("sqlite", "size", "stripped_bytes"))
w(f"| release profile (default), stripped copy | {fmt(mb(rel), 'MB')} | — | — |")
w(f"| `make lib-small`: `release-small` profile (opt-level z, LTO, 1 codegen unit, panic unwind, strip), "
  f"library features only (no `regex-fast`, no `regex-unicode`), packed relocations | {fmt(mb(small), 'MB')} | <= 2.5 MB | "
  f"{verdict('release-small library size', mb(small), 2.5, 'max') if small else 'not built'} |")
w(f"| SQLite's system libsqlite3.so, stripped (reference) | {fmt(mb(sql), 'MB')} | — | — |")
w("")

# ---- why ----
w("## Why (profile)\n")
if MISSED:
    w("Rows that missed their target in this run:\n")
    for m in MISSED:
        w(f"- {m}")
    w("")
else:
    w("Every target was met in this run.\n")
# The causes, with the profiles that show them: written by hand beside the harness, since they
# come from profiling the library rather than from this run's numbers.
NOTES_MD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "defaults_notes.md")
if os.path.exists(NOTES_MD):
    w(open(NOTES_MD).read().rstrip() + "\n")

# ---- NexusLite internals ----
w("## NexusLite internals at points of the run (`nexus_stats`)\n")
w("| process | when | commits | syncs | checkpoints | page cache hit ratio | doc cache hits / misses / LRU evictions | data MB | db file MB | log MB |")
w("|---|---|---:|---:|---:|---:|---|---:|---:|---:|")
for line in open(notes_path):
    tag, _, rest = line.partition(": stats ")
    when, _, js = rest.partition(": ")
    try:
        d = json.loads(js)
    except ValueError:
        continue
    st, ca = d.get("storage", {}), d.get("cache", {})
    pc = st.get("page_cache", {})
    ratio = pc.get("hit_ratio")
    w(f"| {tag} | {when} | {st.get('commits')} | {st.get('syncs')} | {st.get('checkpoints')} | "
      f"{f'{ratio:.3f}' if isinstance(ratio, float) else 'n/a'} | {ca.get('hits')} / {ca.get('misses')} / "
      f"{ca.get('evictions', {}).get('lru')} | {fmt(mb(float(st.get('data_bytes', 0))), 'MB')} | "
      f"{fmt(mb(float(st.get('db_file_bytes', 0))), 'MB')} | {fmt(mb(float(st.get('log_file_bytes', 0))), 'MB')} |")
w("\nCounters are per process since open (commits include the load's). The full stats JSON is in the raw numbers.\n")

# ---- raw ----
w("## Raw numbers\n")
w("`ENGINE PHASE KEY VALUE`, as the harness printed them (rates per second, sizes in bytes, RSS in KiB):\n")
w("```")
w(open(res_path).read().rstrip())
w("```\n")
w("NexusLite's stats at points of the run:\n")
w("```")
w(open(notes_path).read().rstrip())
w("```")
print("\n".join(out))
