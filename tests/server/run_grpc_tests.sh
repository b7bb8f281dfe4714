#!/usr/bin/env bash
# The gRPC front end of `nexus serve --grpc` (tests/server/test_grpc.py): a grpcio client
# generated at test time from proto/nexus/v1/nexus.proto by grpc_tools, against
# target/release/nexus (cargo build --release first). grpcio, grpcio-tools, protobuf and
# pymongo (for BSON), pinned, in the repository's .venv (scripts/setup.sh makes it; this
# script installs them into it when missing, from PyPI).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
python="$root/.venv/bin/python"
GRPCIO_VERSION=1.85.4
PROTOBUF_VERSION=7.36.2
PYMONGO_VERSION=4.20.1
if [[ ! -x "$python" ]]; then
    echo "run_grpc_tests.sh: $python is missing: run scripts/setup.sh (make setup) first" >&2
    exit 1
fi
if ! "$python" -c "
import sys, grpc, grpc_tools, google.protobuf, pymongo
from importlib.metadata import version
sys.exit(version('grpcio') != '$GRPCIO_VERSION' or version('grpcio-tools') != '$GRPCIO_VERSION'
         or version('protobuf') != '$PROTOBUF_VERSION' or pymongo.__version__ != '$PYMONGO_VERSION')" 2>/dev/null; then
    "$python" -m pip install -q --disable-pip-version-check "grpcio==$GRPCIO_VERSION" \
        "grpcio-tools==$GRPCIO_VERSION" "protobuf==$PROTOBUF_VERSION" "pymongo==$PYMONGO_VERSION"
fi
export NEXUS_BIN="$root/target/release/nexus"
[[ -x "$NEXUS_BIN" ]] || { echo "run_grpc_tests.sh: $NEXUS_BIN is missing: cargo build --release first" >&2; exit 1; }
cd "$here"
exec "$python" -m pytest -q -p no:cacheprovider test_grpc.py
