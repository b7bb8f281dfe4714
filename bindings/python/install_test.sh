#!/usr/bin/env bash
# Acceptance test of the Python package, as a user installs it: a fresh virtual environment,
# `pip install ./bindings/python` from the repository root (the wheel's build runs cargo and
# bundles libnexus), then the README quick start (examples/python/quickstart.py) run from a
# directory outside the tree with no NEXUS_LIB or PYTHONPATH. Checks its output, that the
# library loaded is the one inside the venv's site-packages, the wheel's metadata (version of
# Cargo.toml, the `pandas` extra, a platform tag, py.typed), and the error a DataFrame call
# gives without pandas.
#   bash bindings/python/install_test.sh [DIR]   (scratch space under DIR, default $TMPDIR)
# Cargo builds into the repository's target/ (or CARGO_TARGET_DIR): after `make lib` it reuses
# that build (the wheel carries the library `make lib` made).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
base="${1:-${TMPDIR:-/tmp}}"
mkdir -p "$base"
work="$(mktemp -d "$base/nexuslite-python.XXXXXX")"
trap 'rm -rf "$work"' EXIT
unset NEXUS_LIB NEXUS_BIN PYTHONPATH PYTHONHOME

python3 -m venv "$work/venv"
py="$work/venv/bin/python"
echo "install_test: pip install ./bindings/python into $work/venv"
(cd "$root" && "$py" -m pip install -q --disable-pip-version-check ./bindings/python)

mkdir "$work/run"
cp "$root/examples/python/quickstart.py" "$work/run/"
(cd "$work/run" && "$py" quickstart.py) > "$work/out.txt"
cat "$work/out.txt"
cat > "$work/want.txt" <<'EOF'
updated: 1
{"name": "grace", "age": 45, "langs": ["cobol"]}
{"name": "ada", "age": 37, "langs": ["analytical engine", "python"]}
people: 3
EOF
if ! diff -u "$work/want.txt" "$work/out.txt"; then
    echo "install_test: FAILED: the quick start printed something else (diff above)"; exit 1
fi
[[ -f "$work/run/quickstart.db" ]] || { echo "install_test: FAILED: no quickstart.db written"; exit 1; }

cargo_version="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -n 1)"
# -I: only the venv's own site-packages, nothing from the environment or the working directory.
(cd "$work/run" && "$py" -I - "$cargo_version") <<'PY'
import importlib.metadata as md
import os
import sys
import sysconfig

import nexuslite

want_version = sys.argv[1]
failures = []


def check(ok, what):
    print(("ok: " if ok else "FAILED: ") + what)
    if not ok:
        failures.append(what)


site = os.path.realpath(sysconfig.get_paths()["platlib"])
lib = os.path.realpath(nexuslite.library_path())
check(lib == os.path.join(site, "nexuslite", "_lib", "libnexus.so"), f"bundled library loaded: {lib}")
check(os.path.realpath(nexuslite.__file__).startswith(site + os.sep), f"package from site-packages: {nexuslite.__file__}")
check(nexuslite.__version__ == want_version, f"nexuslite.__version__ {nexuslite.__version__} is Cargo.toml's {want_version}")

meta = md.metadata("nexuslite")
check(meta["Version"] == want_version, f"wheel version {meta['Version']}")
check("pandas" in (meta.get_all("Provides-Extra") or []), "Provides-Extra: pandas")
reqs = meta.get_all("Requires-Dist") or []
check(any(r.startswith("pandas") and 'extra == "pandas"' in r for r in reqs), f"pandas only with the extra: {reqs}")
dist = md.distribution("nexuslite")
wheel = dist.read_text("WHEEL") or ""
tags = [line.split(": ", 1)[1] for line in wheel.splitlines() if line.startswith("Tag: ")]
check(len(tags) == 1 and tags[0].startswith("py3-none-") and not tags[0].endswith("-any"), f"platform wheel: {tags}")
check("Root-Is-Purelib: false" in wheel, "Root-Is-Purelib: false")
files = {str(f) for f in dist.files or []}
check("nexuslite/py.typed" in files, "py.typed shipped")

# pandas is not installed here: documents work, a DataFrame call names the extra.
with nexuslite.open(":memory:") as db:
    c = db.collection("c")
    c.insert_many([{"a": 1}])
    try:
        c.find_dataframe()
        check(False, "find_dataframe without pandas raises")
    except ImportError as e:
        check("pip install nexuslite[pandas]" in str(e), f"without pandas: {e}")
sys.exit(1 if failures else 0)
PY
echo "install_test: the installed package works with no NEXUS_LIB or PYTHONPATH"
