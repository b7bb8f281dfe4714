#!/usr/bin/env bash
# The `nexus serve` suite: real MongoDB drivers against target/release/nexus (make lib or
# cargo build --release first). pymongo, pinned, in the repository's .venv (scripts/setup.sh
# makes it; this script installs pymongo into it when missing, from PyPI).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
python="$root/.venv/bin/python"
PYMONGO_VERSION=4.20.1
if [[ ! -x "$python" ]]; then
    echo "run_tests.sh: $python is missing: run scripts/setup.sh (make setup) first" >&2
    exit 1
fi
if ! "$python" -c "import pymongo, sys; sys.exit(pymongo.__version__ != '$PYMONGO_VERSION')" 2>/dev/null; then
    "$python" -m pip install -q --disable-pip-version-check "pymongo==$PYMONGO_VERSION"
fi
export NEXUS_BIN="$root/target/release/nexus"
[[ -x "$NEXUS_BIN" ]] || { echo "run_tests.sh: $NEXUS_BIN is missing: cargo build --release first" >&2; exit 1; }
cd "$here"
exec "$python" -m pytest -q -p no:cacheprovider test_pymongo.py
