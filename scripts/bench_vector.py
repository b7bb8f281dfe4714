"""benchmarks/vector.md: NexusLite's HNSW index (through the C ABI, bench/vector_bench.c)
beside hnswlib (PyPI; M=16, ef_construction=200) and a NumPy brute force, on the same seeded
clustered data, one thread each: build time, index size, recall@10 and queries/s at
numCandidates (hnswlib: ef) 50 / 100 / 200. Run by scripts/bench-vector.sh (not make test).

usage: bench_vector.py OUT.md BENCH_BINARY WORKDIR N:DIMS [N:DIMS ...]"""
import json
import os
import platform
import subprocess
import sys
import time

import hnswlib
import numpy as np

QUERIES = 500
EFS = (50, 100, 200)


def clustered(rng, n, dims, centers):
    which = rng.integers(0, len(centers), n)
    return (centers[which] + rng.normal(0, 0.5, (n, dims))).astype(np.float32)


def ground_truth(base, queries):
    """Exact top-10 by squared Euclidean distance, and the brute force's queries/s (one
    query at a time, as a search would run) by wall clock and by CPU time."""
    norms = (base * base).sum(axis=1)
    gt = np.empty((len(queries), 10), dtype=np.int32)
    t0, c0 = time.perf_counter(), time.process_time()
    for i, q in enumerate(queries):
        d = norms - 2.0 * (base @ q)
        top = np.argpartition(d, 10)[:10]
        gt[i] = top[np.argsort(d[top])]
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return gt, len(queries) / wall, len(queries) / cpu


def recall(found, gt):
    return float(np.mean([len(set(f) & set(g)) / 10 for f, g in zip(found, gt)]))


def run_hnswlib(base, queries, gt, work):
    index = hnswlib.Index(space="l2", dim=base.shape[1])
    index.set_num_threads(1)
    t0 = time.perf_counter()
    index.init_index(max_elements=len(base), M=16, ef_construction=200, random_seed=100)
    index.add_items(base, np.arange(len(base)), num_threads=1)
    build = time.perf_counter() - t0
    path = os.path.join(work, "hnswlib.bin")
    index.save_index(path)
    size = os.path.getsize(path)
    runs = []
    for ef in EFS:
        index.set_ef(ef)
        found = []
        t0, c0 = time.perf_counter(), time.process_time()
        for q in queries:
            labels, _ = index.knn_query(q, k=10, num_threads=1)
            found.append(labels[0])
        secs, cpu = time.perf_counter() - t0, time.process_time() - c0
        runs.append({"num_candidates": ef, "qps": len(queries) / secs,
                     "cpu_qps": len(queries) / cpu, "recall": recall(found, gt)})
    return {"build_s": build, "size": size, "runs": runs}


def run_nexus(binary, d, n, dims, scalar):
    args = [binary, d, str(n), str(dims), str(QUERIES), "euclidean"] + (["scalar"] if scalar else [])
    r = subprocess.run(args, check=True, capture_output=True, text=True)
    nx = json.loads(r.stdout)
    nx["size"] = nx["file_after"] - nx["file_before"]
    nx["cold"] = nx["runs"][0]
    nx["runs"] = nx["runs"][1:]
    return nx


def main():
    out, binary, work, *configs = sys.argv[1:]
    os.makedirs(work, exist_ok=True)
    lines = [
        "# Vector search: NexusLite HNSW vs hnswlib vs brute force",
        "",
        "Written by `scripts/bench-vector.sh` (not part of `make test`); issue #24's acceptance",
        "table. Same seeded clustered data for all three (100 Gaussian clusters, sigma 0.5 around",
        "centers uniform in [-1, 1]^d; queries drawn the same way), Euclidean distance, one",
        "thread, 500 queries, limit / k = 10. NexusLite runs through the C ABI",
        "(`bench/vector_bench.c`: `nexus_vector_search` with the vector projected out, JSON",
        "in and out, the index read from the database file through the page cache; the",
        "specifications are written before the timed passes), once with a float32 index and",
        "once with `\"quantization\": \"scalar\"` (its own database file); hnswlib",
        f"{hnswlib.__version__ if hasattr(hnswlib, '__version__') else '0.8.0'} from PyPI with M=16,",
        "ef_construction=200 and ef = numCandidates; the brute force is NumPy (one query at a",
        "time, BLAS limited to one thread). Index size: NexusLite, the growth of the database",
        "files when the index was built (graph nodes with the document's record id, float32",
        "vectors or 8-bit codes, links both ways as 4-byte ids, and B+tree pages); hnswlib,",
        "its saved index (about its memory).",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores shared with other jobs, "
        f"{platform.platform()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
    ]
    for cfg in configs:
        n, dims = (int(x) for x in cfg.split(":"))
        rng = np.random.default_rng(n * 1000 + dims)
        centers = rng.uniform(-1, 1, (100, dims)).astype(np.float32)
        base = clustered(rng, n, dims, centers)
        queries = clustered(rng, QUERIES, dims, centers)
        gt, brute_qps, brute_cpu_qps = ground_truth(base, queries)
        d = os.path.join(work, f"{n}x{dims}")
        os.makedirs(d, exist_ok=True)
        base.tofile(os.path.join(d, "base.f32"))
        queries.tofile(os.path.join(d, "queries.f32"))
        gt.tofile(os.path.join(d, "gt.i32"))
        print(f"== {n} x {dims}: hnswlib", flush=True)
        h = run_hnswlib(base, queries, gt, d)
        print(f"== {n} x {dims}: NexusLite", flush=True)
        nx = run_nexus(binary, d, n, dims, False)
        print(f"== {n} x {dims}: NexusLite, scalar quantization", flush=True)
        sq = run_nexus(binary, d, n, dims, True)
        lines += [
            f"## {n:,} x {dims}",
            "",
            f"Build: NexusLite {nx['build_s']:.1f} s (create_index over the stored documents; "
            f"inserting them took {nx['insert_s']:.1f} s), with scalar quantization "
            f"{sq['build_s']:.1f} s, hnswlib {h['build_s']:.1f} s. "
            f"Index size: NexusLite {nx['size'] / 2**20:.1f} MiB ({nx['size'] / h['size']:.2f}x hnswlib's), "
            f"scalar-quantized {sq['size'] / 2**20:.1f} MiB ({sq['size'] / h['size']:.2f}x; "
            f"{sq['size'] / nx['size']:.2f}x the float32 index), hnswlib {h['size'] / 2**20:.1f} MiB "
            f"(target <= 1.5x). Brute force: {brute_qps:.0f} queries/s ({brute_cpu_qps:.0f} per CPU second), recall 1. "
            f"NexusLite's first (cold) pass at numCandidates 100, reading the nodes from the "
            f"database's pages (then copying level 0 into the version's flat arena): "
            f"{nx['cold']['qps']:.0f} queries/s ({sq['cold']['qps']:.0f} quantized); the rows below "
            f"are later passes.",
            "",
            "Queries per CPU second (the process's CPU time, so that time spent waiting for a "
            "core on the shared machine is not counted; the wall-clock table follows):",
            "",
            "| numCandidates / ef | recall@10 NexusLite | recall@10 NexusLite scalar | recall@10 hnswlib | q/CPU-s NexusLite | q/CPU-s NexusLite scalar | q/CPU-s hnswlib | NexusLite / hnswlib | scalar / hnswlib | NexusLite / brute force |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for a, s_, b in zip(nx["runs"], sq["runs"], h["runs"]):
            lines.append(
                f"| {a['num_candidates']} | {a['recall']:.3f} | {s_['recall']:.3f} | {b['recall']:.3f} | "
                f"{a['cpu_qps']:.0f} | {s_['cpu_qps']:.0f} | {b['cpu_qps']:.0f} | "
                f"{a['cpu_qps'] / b['cpu_qps']:.2f}x | {s_['cpu_qps'] / b['cpu_qps']:.2f}x | "
                f"{a['cpu_qps'] / brute_cpu_qps:.1f}x |"
            )
        lines += [
            "",
            "| numCandidates / ef | q/s NexusLite (wall) | q/s NexusLite scalar (wall) | q/s hnswlib (wall) | NexusLite / hnswlib | scalar / hnswlib |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for a, s_, b in zip(nx["runs"], sq["runs"], h["runs"]):
            lines.append(
                f"| {a['num_candidates']} | {a['qps']:.0f} | {s_['qps']:.0f} | {b['qps']:.0f} | "
                f"{a['qps'] / b['qps']:.2f}x | {s_['qps'] / b['qps']:.2f}x |"
            )
        met = lambda ok: "met" if ok else "**missed**"  # noqa: E731
        summary = []
        for name, r in (("NexusLite", nx), ("NexusLite scalar", sq)):
            worst_recall = max(b["recall"] - a["recall"] for a, b in zip(r["runs"], h["runs"]))
            cpu_ratio = min(a["cpu_qps"] / b["cpu_qps"] for a, b in zip(r["runs"], h["runs"]))
            wall_ratio = min(a["qps"] / b["qps"] for a, b in zip(r["runs"], h["runs"]))
            brute_ratio = min(a["cpu_qps"] / brute_cpu_qps for a in r["runs"])
            summary.append(
                f"{name}: recall@10 within 0.01 of hnswlib: {met(worst_recall <= 0.01)} "
                f"(largest shortfall {worst_recall:+.3f}); queries/s >= 0.5x hnswlib's: "
                f"{met(cpu_ratio >= 0.5)} by CPU time (lowest {cpu_ratio:.2f}x; wall clock lowest "
                f"{wall_ratio:.2f}x); >= 10x brute force (CPU time): {met(brute_ratio >= 10)} "
                f"(lowest {brute_ratio:.1f}x); index <= 1.5x hnswlib's: "
                f"{met(r['size'] <= 1.5 * h['size'])} ({r['size'] / h['size']:.2f}x)."
            )
        lines += ["", "Targets:", ""] + [f"- {x}" for x in summary] + [""]
        print("\n".join(lines[-30:]), flush=True)
    with open(out + ".tmp", "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(out + ".tmp", out)


if __name__ == "__main__":
    main()
