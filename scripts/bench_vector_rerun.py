"""Reruns of benchmarks/vector.md's query passes, NexusLite and hnswlib in turn, round after
round, on the databases and saved hnswlib index a run of scripts/bench-vector.sh left in
target/bench/vector/NxDIMS (so that both are timed in the same minutes of a shared machine).
Each round: bench/vector_bench with VECTOR_BENCH_REUSE=1 VECTOR_BENCH_REPEAT=3 (the 500
queries three times per numCandidates), then hnswlib's saved index over the same queries
three times per ef; queries per CPU second. Prints one Markdown table row per round.

usage: bench_vector_rerun.py DIR N DIMS [ROUNDS (2)] [OPEN_OPTIONS_JSON]"""
import json
import os
import subprocess
import sys
import time

import hnswlib
import numpy as np

EFS = (50, 100, 200)
REPEAT = 3


def hnswlib_pass(index, queries):
    out = []
    for ef in EFS:
        index.set_ef(ef)
        c0 = time.process_time()
        for _ in range(REPEAT):
            for q in queries:
                index.knn_query(q, k=10, num_threads=1)
        out.append(REPEAT * len(queries) / (time.process_time() - c0))
    return out


def nexus_pass(binary, d, n, dims, nq, options):
    env = dict(os.environ, VECTOR_BENCH_REUSE="1", VECTOR_BENCH_REPEAT=str(REPEAT))
    if options:
        env["VECTOR_BENCH_OPEN"] = options
    r = subprocess.run([binary, d, str(n), str(dims), str(nq), "euclidean"], env=env,
                       check=True, capture_output=True, text=True)
    return [x["cpu_qps"] for x in json.loads(r.stdout)["runs"][1:]]


def main():
    d, n, dims = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 2
    options = sys.argv[5] if len(sys.argv) > 5 else None
    binary = os.path.join(os.path.dirname(__file__), "..", "target", "bench", "vector_bench")
    queries = np.fromfile(os.path.join(d, "queries.f32"), dtype=np.float32).reshape(-1, dims)
    index = hnswlib.Index(space="l2", dim=dims)
    index.load_index(os.path.join(d, "hnswlib.bin"), max_elements=n)
    index.set_num_threads(1)
    label = f"`{options}`" if options else "default"
    for _ in range(rounds):
        ours = nexus_pass(binary, d, n, dims, len(queries), options)
        theirs = hnswlib_pass(index, queries)
        cells = " | ".join(f"{a:.0f} ({a / b:.2f}x)" for a, b in zip(ours, theirs))
        print(f"| {n:,} x {dims} | {label} | {cells} | "
              + " / ".join(f"{b:.0f}" for b in theirs) + " |", flush=True)


if __name__ == "__main__":
    main()
