#!/usr/bin/env bash
# Runs the Python binding's pytest suite against the in-tree build (make lib first), with the
# interpreter of the virtual environment scripts/setup.sh makes (.venv: pinned pandas, pytest):
# DataFrame round trips, pandas reading and writing our NDJSON, the streaming-memory test, the
# library lookup and the README quick start (examples/python/quickstart.py).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
python="$root/.venv/bin/python"
if [[ ! -x "$python" ]]; then
    echo "run_tests.sh: $python is missing: run scripts/setup.sh (make setup) first" >&2
    exit 1
fi
export NEXUS_LIB="$root/target/release/libnexus.so" NEXUS_BIN="$root/target/release/nexus"
cd "$here"
exec "$python" -m pytest -q -p no:cacheprovider tests
