#!/usr/bin/env bash
# The HTTP front end of `nexus serve --http` (tests/server/test_rest.py): `requests` against
# target/release/nexus (make lib or cargo build --release first). requests and pymongo,
# pinned, in the repository's .venv (scripts/setup.sh makes it; this script installs them
# into it when missing, from PyPI).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
python="$root/.venv/bin/python"
REQUESTS_VERSION=2.32.5
PYMONGO_VERSION=4.20.1
if [[ ! -x "$python" ]]; then
    echo "run_rest_tests.sh: $python is missing: run scripts/setup.sh (make setup) first" >&2
    exit 1
fi
if ! "$python" -c "import requests, pymongo, sys; sys.exit(requests.__version__ != '$REQUESTS_VERSION' or pymongo.__version__ != '$PYMONGO_VERSION')" 2>/dev/null; then
    "$python" -m pip install -q --disable-pip-version-check "requests==$REQUESTS_VERSION" "pymongo==$PYMONGO_VERSION"
fi
export NEXUS_BIN="$root/target/release/nexus"
[[ -x "$NEXUS_BIN" ]] || { echo "run_rest_tests.sh: $NEXUS_BIN is missing: cargo build --release first" >&2; exit 1; }
cd "$here"
exec "$python" -m pytest -q -p no:cacheprovider test_rest.py
