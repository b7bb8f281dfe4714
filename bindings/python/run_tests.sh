#!/usr/bin/env bash
# Runs the Python binding's pytest suite against the in-tree build (make lib first):
# DataFrame round trips, pandas reading and writing our NDJSON, and the streaming-memory test.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
export NEXUS_LIB="$root/target/release/libnexus.so" NEXUS_BIN="$root/target/release/nexus"
cd "$here"
exec python3 -m pytest -q -p no:cacheprovider tests
