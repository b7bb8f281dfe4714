#!/usr/bin/env python3
"""Reads /work/ab/res/<harness>/<old|new>-<round>/table.md, prints markdown tables of medians."""
import os, re, statistics, sys, glob
R = "/work/ab/res"
NEWH = sys.argv[1] if len(sys.argv) > 1 else "new"
ROUNDS = sys.argv[2].split(",") if len(sys.argv) > 2 else None

def rows(path):
    out = []
    for line in open(path):
        if not line.strip():
            if out: break
            continue
        c = [x.strip() for x in line.strip().strip("|").split("|")]
        if len(c) < 3 or c[0] in ("workload",) or c[0].startswith("---") or c[0].startswith("query"):
            continue
        out.append(c)
    return out

def num(s):
    try: return float(s.replace("x", ""))
    except ValueError: return None

def collect(h, v):
    runs = sorted(glob.glob(f"{R}/{h}/{v}-*"), key=lambda p: int(p.rsplit("-", 1)[1]))
    if ROUNDS: runs = [p for p in runs if p.rsplit("-", 1)[1] in ROUNDS]
    tabs = []
    for p in runs:
        f = f"{p}/table.md"
        meta = open(f"{p}/meta.txt").read() if os.path.exists(f"{p}/meta.txt") else ""
        if os.path.exists(f) and "rc=0" in meta: tabs.append(rows(f))
    return tabs

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None

def fmt(x):
    if x is None: return "–"
    return f"{x:.4g}" if abs(x) < 1e5 else f"{x:.0f}"

def verdict(ratio):
    if ratio is None: return ""
    return "within ±5%" if 0.95 <= ratio <= 1.05 else ("**faster**" if ratio > 1.05 else "**slower**")

# spec per harness: (name column idx, unit idx or None, nexus columns [(label, idx)], sqlite idx, higher_better fn)
def table(h, nexcols, sqcol, unit_of):
    old, new = collect(h, "old"), collect(h, "new")
    print(f"\n### {h}: {len(old)} old runs, {len(new)} new runs (medians)\n")
    print(f"| workload | unit | engine | old (d085eb1) | new ({NEWH}) | new/old | speed new vs old | verdict | SQLite old | SQLite new | SQLite new/old | NexusLite vs SQLite, new/old |")
    print("|---|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|")
    for i, r in enumerate(old[0]):
        name = r[0]
        unit = unit_of(r)
        hb = unit not in ("ms", "MB", "s")
        for label, col in nexcols:
            o = med([num(t[i][col]) for t in old]); n = med([num(t[i][col]) for t in new])
            so = med([num(t[i][sqcol]) for t in old]); sn = med([num(t[i][sqcol]) for t in new])
            ratio = n / o if o and n else None
            speed = (ratio if hb else (1 / ratio)) if ratio else None
            sr = sn / so if so and sn else None
            rel = lambda t: (num(t[i][col]) / num(t[i][sqcol])) if num(t[i][col]) and num(t[i][sqcol]) else None
            ro, rn = med([rel(t) for t in old]), med([rel(t) for t in new])
            norm = (rn / ro if hb else ro / rn) if ro and rn else None
            print(f"| {name} | {unit} | {label} | {fmt(o)} | {fmt(n)} | {fmt(ratio) if ratio else '–'} | {f'{speed:.3f}' if speed else '–'} | {verdict(speed) if unit != 'MB' else ('same' if ratio == 1 else 'differs')} | {fmt(so)} | {fmt(sn)} | {f'{sr:.3f}' if sr else '–'} | {f'{norm:.3f}' if norm else '–'} |")
    # per-run spread
    print("\nPer-run values (old runs / new runs), NexusLite then SQLite:\n")
    print("| workload | engine | old runs | new runs | SQLite old runs | SQLite new runs |\n|---|---|---|---|---|---|")
    for i, r in enumerate(old[0]):
        for label, col in nexcols:
            print(f"| {r[0]} | {label} | {', '.join(t[i][col] for t in old)} | {', '.join(t[i][col] for t in new)} | {', '.join(t[i][sqcol] for t in old)} | {', '.join(t[i][sqcol] for t in new)} |")

which = sys.argv[3].split(",") if len(sys.argv) > 3 else ["storage", "index", "scan"]
if "storage" in which and glob.glob(f"{R}/storage/old-*"):
    table("storage", [("WASP", 2), ("memlog (wal)", 3)], 4, lambda r: r[1])
if "index" in which and glob.glob(f"{R}/index/old-*"):
    table("index", [("NexusLite", 2)], 3, lambda r: r[1])
if "scan" in which and glob.glob(f"{R}/scan/old-*"):
    table("scan", [("NexusLite", 2)], 3, lambda r: "ms")
