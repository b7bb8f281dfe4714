#!/usr/bin/env bash
# benchmarks/vector.md: NexusLite's vector index (C ABI) beside hnswlib and a NumPy brute
# force on the same seeded data (scripts/bench_vector.py). Not part of make test. Needs
# `make lib` and the .venv of scripts/setup.sh; installs hnswlib into it from PyPI.
# BENCH_VECTOR_SIZES overrides the data sets (default "50000:64 200000:128").
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p target/bench benchmarks
export PKG_CONFIG_PATH=$PWD/target/release/pkgconfig
read -r -a NEXUS_CFLAGS <<<"$(pkg-config --cflags nexus)"
cc -O2 -std=c11 "${NEXUS_CFLAGS[@]}" bench/vector_bench.c target/release/libnexus.a \
   -lpthread -ldl -lm -o target/bench/vector_bench
py=.venv/bin/python
"$py" -c "import hnswlib" 2>/dev/null || "$py" -m pip install -q --disable-pip-version-check "hnswlib==0.8.0"
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
# shellcheck disable=SC2086
"$py" scripts/bench_vector.py benchmarks/vector.md target/bench/vector_bench target/bench/vector \
    ${BENCH_VECTOR_SIZES:-50000:64 200000:128}
