"""The table of benchmarks/aggregate.md from the results of scripts/bench-aggregate.sh.

    python3 bench/aggregate_report.py RESULTS

RESULTS has one `ENGINE KEY VALUE` line a figure (bench/aggregate_bench.c's `key value`
lines, prefixed by the script). Checks that both engines returned the same answers (exits
non-zero otherwise) and prints markdown: a row a workload with SQLite, NexusLite, the ratio
NexusLite/SQLite (above 1: NexusLite faster), the target (>= 1.0x) and whether it is met,
then the raw numbers.
"""
import sys

R = {}
for line in open(sys.argv[1]):
    parts = line.split()
    if len(parts) == 3:
        R[(parts[0], parts[1])] = float(parts[2])


def v(engine, key):
    return R[(engine, key)]


# The answers must agree: the same groups and sums, the same top-k prices, the same join rows.
checks = [
    ("group_groups", "groups of $group"),
    ("group_qty_sum", "sum of the $sum of qty over the groups"),
    ("topk_scan_rows", "top-k rows (no index)"),
    ("topk_scan_price_sum", "sum of the top-k prices (no index)"),
    ("topk_index_rows", "top-k rows (index)"),
    ("topk_index_price_sum", "sum of the top-k prices (index)"),
    ("lookup_rows", "rows of the $lookup / join"),
]
bad = []
for key, what in checks:
    a, b = v("sqlite", key), v("nexus", key)
    if abs(a - b) > 1e-6 * max(1.0, abs(a)):
        bad.append(f"{what}: SQLite {a:g}, NexusLite {b:g}")
if v("nexus", "group_groups") != 100:
    bad.append(f"$group returned {v('nexus', 'group_groups'):g} groups, not 100")
if bad:
    print("aggregate_report: the engines disagree: " + "; ".join(bad), file=sys.stderr)
    sys.exit(1)

n = int(v("nexus", "docs"))
ROWS = [
    ("Load %s documents, 1,000 per transaction (informative)" % f"{n:,}", "load_docs_per_s", "docs/s", False),
    ("`$group` by cat, `$sum` qty + `$avg` price, all documents", "group_docs_per_s", "docs/s", True),
    ("Top-k: `$match` region + `$sort` price -1 + `$limit` 10, no index", "topk_scan_per_s", "queries/s", True),
    ("Top-k, with an index on region", "topk_index_per_s", "queries/s", True),
    ("`$match` region + `$limit` 10,000 + `$lookup` cats (a join), with the index", "lookup_rows_per_s", "rows/s", True),
]


def fmt(x):
    return f"{x:,.0f}" if x >= 100 else f"{x:,.2f}"


print("Target (issue #21): NexusLite at or ahead of SQLite on every aggregation row (ratio >= 1.0x).")
print("Ratio = NexusLite / SQLite of the rate: above 1 means NexusLite is faster.")
print()
print("| Workload | Unit | SQLite | NexusLite | Ratio | Target | Met |")
print("|---|---|---:|---:|---:|---|---|")
for label, key, unit, targeted in ROWS:
    s, x = v("sqlite", key), v("nexus", key)
    ratio = x / s
    target = ">= 1.0x" if targeted else "(informative)"
    met = ("yes" if ratio >= 1.0 else "**no**") if targeted else ""
    print(f"| {label} | {unit} | {fmt(s)} | {fmt(x)} | {ratio:.2f}x | {target} | {met} |")
print()
print("Both engines returned the same answers: 100 groups with the same total of `qty` sums "
      f"({v('nexus', 'group_qty_sum'):,.0f}), the same 10 top prices (sum "
      f"{v('nexus', 'topk_index_price_sum'):,.2f}), {v('nexus', 'lookup_rows'):,.0f} joined rows.")
print()
print("Raw numbers:")
print()
print("| Figure | SQLite | NexusLite |")
print("|---|---:|---:|")
for key in ["load_seconds", "group_seconds", "index_seconds", "run_seconds", "rss_kib"]:
    print(f"| {key} | {v('sqlite', key):,.3f} | {v('nexus', key):,.3f} |" if v("nexus", key) < 1000
          else f"| {key} | {v('sqlite', key):,.0f} | {v('nexus', key):,.0f} |")
