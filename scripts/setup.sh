#!/usr/bin/env bash
# Installs what the build and the tests need beyond Rust and Go (which the machine has):
# a C/C++ toolchain, pkg-config, valgrind, GoogleTest, sqlite3 and GNU time (the import
# benchmark), the openssl command line (the signature tests check against it), cmake (the
# install test builds a find_package(nexus) project), abigail-tools (abidw / abidiff of the ABI
# check), curl (README's HTTP example, run by scripts/check-readme-commands.sh), python3 with venv, and pinned pandas + pytest for the Python binding's tests in the
# virtual environment .venv (never the system interpreter, which Debian keeps for its own
# packages: pip refuses it as "externally managed"). Idempotent; quiet when all is there.
set -euo pipefail
need=()
for pkg in gcc g++ make pkg-config valgrind libgtest-dev libsqlite3-dev sqlite3 time openssl cmake abigail-tools curl python3 python3-venv; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if ((${#need[@]})); then
  echo "setup: installing ${need[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
for tool in cargo go; do
  command -v "$tool" >/dev/null || { echo "setup: '$tool' is required but not installed" >&2; exit 1; }
done
rustup component list --installed 2>/dev/null | grep -q clippy || rustup component add clippy rustfmt >/dev/null 2>&1 || true
# The tests' interpreter (bindings/python/run_tests.sh runs .venv/bin/python). A venv whose
# interpreter no longer starts (its base Python was removed or upgraded) is made anew.
PANDAS_VERSION=2.2.3 PYTEST_VERSION=8.3.4 PYMONGO_VERSION=4.20.1 REQUESTS_VERSION=2.32.5
GRPCIO_VERSION=1.85.4 PROTOBUF_VERSION=7.36.2
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.venv"
if [[ ! -e "$venv" || -L "$venv" ]]; then
  # A checkout without a .venv of its own gets one from the user's cache, one venv per Python
  # version and set of pins (it holds only those third-party packages, nothing of the
  # checkout), linked as .venv: a fresh clone on a machine that ran the tests before does not
  # install them again (about 35 s of every CI run). NEXUS_CACHE_DIR moves the cache.
  cache="${NEXUS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/nexuslite}"
  key="$(printf '%s|%s' "$(python3 -c 'import sys; print(sys.version)')" \
    "$PANDAS_VERSION $PYTEST_VERSION $PYMONGO_VERSION $REQUESTS_VERSION $GRPCIO_VERSION $PROTOBUF_VERSION" |
    sha256sum | cut -c1-16)"
  mkdir -p "$cache"
  ln -sfn "$cache/venv-$key" "$venv"
  # Runs of this script in two checkouts at once take turns on the shared venv.
  exec 9>"$cache/venv-$key.lock"
  flock 9
fi
if ! "$venv/bin/python" -c "import sys" >/dev/null 2>&1; then
  echo "setup: creating the Python virtual environment $venv"
  python3 -m venv --clear "$(readlink -f "$venv")"
fi
if ! "$venv/bin/python" -c "import pandas, pytest, sys; sys.exit(pandas.__version__ != '$PANDAS_VERSION' or pytest.__version__ != '$PYTEST_VERSION')" 2>/dev/null; then
  echo "setup: installing pandas $PANDAS_VERSION and pytest $PYTEST_VERSION into $venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "pandas==$PANDAS_VERSION" "pytest==$PYTEST_VERSION"
fi
# pymongo for the `nexus serve` suite (tests/server/run_tests.sh), pinned like the others.
if ! "$venv/bin/python" -c "import pymongo, sys; sys.exit(pymongo.__version__ != '$PYMONGO_VERSION')" 2>/dev/null; then
  echo "setup: installing pymongo $PYMONGO_VERSION into $venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "pymongo==$PYMONGO_VERSION"
fi
# requests for the HTTP front end's suite (tests/server/run_rest_tests.sh), pinned like the others.
if ! "$venv/bin/python" -c "import requests, sys; sys.exit(requests.__version__ != '$REQUESTS_VERSION')" 2>/dev/null; then
  echo "setup: installing requests $REQUESTS_VERSION into $venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "requests==$REQUESTS_VERSION"
fi
# grpcio, grpcio-tools (generates the client from proto/ at test time) and protobuf for the gRPC
# front end's suite (tests/server/run_grpc_tests.sh), pinned like the others.
if ! "$venv/bin/python" -c "
import sys; from importlib.metadata import version
sys.exit(version('grpcio') != '$GRPCIO_VERSION' or version('grpcio-tools') != '$GRPCIO_VERSION' or version('protobuf') != '$PROTOBUF_VERSION')" 2>/dev/null; then
  echo "setup: installing grpcio $GRPCIO_VERSION, grpcio-tools $GRPCIO_VERSION and protobuf $PROTOBUF_VERSION into $venv"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "grpcio==$GRPCIO_VERSION" \
    "grpcio-tools==$GRPCIO_VERSION" "protobuf==$PROTOBUF_VERSION"
fi
