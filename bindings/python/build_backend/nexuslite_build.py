"""PEP 517 build backend of the nexuslite package (in-tree: pyproject.toml's backend-path).

build_wheel runs `cargo build --release --lib` on the repository's Cargo.toml (two levels
above this package) and writes a platform wheel (py3-none-<platform>: the binding is ctypes,
so any Python 3 of that platform loads it) holding the nexuslite package and the library
as nexuslite/_lib/libnexus.so. Cargo uses the repository's target directory (or
CARGO_TARGET_DIR), so a library that `make lib` already built is reused, not rebuilt.

The metadata comes from pyproject.toml's [project] table, the version from Cargo.toml: the
package and the library it carries always have the same version.

No sdist: the wheel needs the whole Rust crate, so the package is built from a checkout
(`pip install ./bindings/python`, `pip wheel ./bindings/python`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import zipfile

try:
    import tomllib
except ImportError:  # Python < 3.11: pyproject.toml's build requirements bring tomli
    import tomli as tomllib  # type: ignore[no-redef]

# realpath: from a tree of links to a checkout (scripts/check-readme-commands.sh), cargo must
# see the checkout itself, or it rebuilds the crate under another package path in target/.
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
REPO_ROOT = os.path.dirname(os.path.dirname(PACKAGE_DIR))
CARGO_TOML = os.path.join(REPO_ROOT, "Cargo.toml")
LIB_NAME = {"darwin": "libnexus.dylib", "win32": "nexus.dll"}.get(sys.platform, "libnexus.so")
# The library `make lib` builds (default features), so the wheel reuses that build as it is.
# --no-default-features would skip the `nexus` tool's crates, but cargo rebuilds the crate
# each time its features change (a minute or two), and every `make lib` would flip them back.
CARGO_ARGS = ["build", "--release", "--lib"]
# [project] keys this backend writes into METADATA; any other is refused, not dropped.
KNOWN_PROJECT_KEYS = {
    "name",
    "dynamic",
    "description",
    "license",
    "requires-python",
    "dependencies",
    "optional-dependencies",
    "classifiers",
}


class BuildError(Exception):
    pass


def _project() -> dict:
    with open(os.path.join(PACKAGE_DIR, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    unknown = set(project) - KNOWN_PROJECT_KEYS
    if unknown:
        raise BuildError(f"pyproject.toml [project] keys this backend does not write: {sorted(unknown)}")
    if project.get("dynamic") != ["version"]:
        raise BuildError("pyproject.toml: the version must be dynamic (it is read from Cargo.toml)")
    return project


def cargo_version() -> str:
    """The crate's version from Cargo.toml, in PEP 440 form (1.2.3-rc.1 -> 1.2.3rc1)."""
    if not os.path.isfile(CARGO_TOML):
        raise BuildError(
            f"{CARGO_TOML} not found: nexuslite is built from a NexusLite checkout "
            "(pip install ./bindings/python in its root)"
        )
    with open(CARGO_TOML, "rb") as f:
        version = tomllib.load(f)["package"]["version"]
    m = re.fullmatch(r"(\d+\.\d+\.\d+)(?:-(alpha|beta|rc)\.(\d+))?", version)
    if not m:
        raise BuildError(f"Cargo.toml version {version!r} has no PEP 440 equivalent here")
    pre = {"alpha": "a", "beta": "b", "rc": "rc"}.get(m.group(2) or "", "")
    return m.group(1) + (pre + m.group(3) if pre else "")


def _platform_tag() -> str:
    return re.sub(r"[-.]", "_", sysconfig.get_platform())


def _dist_name(project: dict) -> str:
    return re.sub(r"[-_.]+", "_", project["name"]).lower()


def _metadata(project: dict) -> str:
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {project['name']}",
        f"Version: {cargo_version()}",
    ]
    if "description" in project:
        lines.append(f"Summary: {project['description']}")
    if "license" in project:
        lines.append(f"License: {project['license']['text']}")
    if "requires-python" in project:
        lines.append(f"Requires-Python: {project['requires-python']}")
    lines += [f"Classifier: {c}" for c in project.get("classifiers", [])]
    lines += [f"Requires-Dist: {d}" for d in project.get("dependencies", [])]
    for extra, deps in project.get("optional-dependencies", {}).items():
        lines.append(f"Provides-Extra: {extra}")
        for dep in deps:
            # A requirement that has a marker of its own keeps it, joined to the extra's.
            req, _, marker = dep.partition(";")
            cond = f'extra == "{extra}"' + (f" and ({marker.strip()})" if marker.strip() else "")
            lines.append(f"Requires-Dist: {req.strip()}; {cond}")
    return "\n".join(lines) + "\n"


def _wheel_file() -> str:
    return (
        "Wheel-Version: 1.0\n"
        "Generator: nexuslite_build\n"
        "Root-Is-Purelib: false\n"
        f"Tag: py3-none-{_platform_tag()}\n"
    )


def _build_library() -> str:
    """Runs cargo; returns the path of the shared library it reports having built."""
    cargo = shutil.which("cargo")
    if cargo is None:
        raise BuildError("cargo not found on PATH: building nexuslite compiles libnexus, which needs Rust")
    cmd = [cargo, *CARGO_ARGS, "--manifest-path", CARGO_TOML, "--message-format=json-render-diagnostics"]
    print("nexuslite: " + " ".join(cmd), file=sys.stderr, flush=True)
    # Compiler messages go to stderr as cargo renders them; stdout carries the JSON artifacts.
    proc = subprocess.run(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise BuildError(f"cargo build failed (exit {proc.returncode}); its messages are above")
    for line in proc.stdout.splitlines():
        msg = json.loads(line) if line.startswith("{") else {}
        if msg.get("reason") == "compiler-artifact" and "cdylib" in msg["target"]["kind"]:
            for path in msg["filenames"]:
                if os.path.basename(path) == LIB_NAME:
                    return path
    raise BuildError(f"cargo build succeeded but reported no {LIB_NAME}")


def _package_files() -> list:
    """(path in the wheel, path on disk) of the package's Python files and py.typed."""
    src = os.path.join(PACKAGE_DIR, "nexuslite")
    out = []
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames[:] = [d for d in dirnames if d != "__pycache__" and d != "_lib"]
        for name in sorted(filenames):
            # _version.py is written into the wheel from Cargo.toml, not taken from the tree.
            if (name.endswith(".py") and name != "_version.py") or name == "py.typed":
                disk = os.path.join(dirpath, name)
                out.append((os.path.relpath(disk, PACKAGE_DIR).replace(os.sep, "/"), disk))
    return sorted(out)


def _record_line(arcname: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{arcname},sha256={digest},{len(data)}"


def _write_wheel(path: str, entries: list) -> None:
    """entries: (arcname, bytes, mode). Fixed timestamps, so the same inputs give the same wheel."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for arcname, data, mode in entries:
            info = zipfile.ZipInfo(arcname, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)


# ---- PEP 517 hooks ----


def get_requires_for_build_wheel(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    project = _project()
    dist_info = f"{_dist_name(project)}-{cargo_version()}.dist-info"
    os.makedirs(os.path.join(metadata_directory, dist_info), exist_ok=True)
    for name, text in (("METADATA", _metadata(project)), ("WHEEL", _wheel_file())):
        with open(os.path.join(metadata_directory, dist_info, name), "w", encoding="utf-8") as f:
            f.write(text)
    return dist_info


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    project = _project()
    name, version = _dist_name(project), cargo_version()
    lib_path = _build_library()
    with open(lib_path, "rb") as f:
        lib = f.read()
    entries = []
    for arcname, disk in _package_files():
        with open(disk, "rb") as f:
            entries.append((arcname, f.read(), 0o644))
    entries.append(("nexuslite/_version.py", f'VERSION = "{version}"\n'.encode(), 0o644))
    entries.append((f"nexuslite/_lib/{LIB_NAME}", lib, 0o755))
    dist_info = f"{name}-{version}.dist-info"
    entries.append((f"{dist_info}/METADATA", _metadata(project).encode(), 0o644))
    entries.append((f"{dist_info}/WHEEL", _wheel_file().encode(), 0o644))
    record = "".join(_record_line(a, d) + "\n" for a, d, _ in entries) + f"{dist_info}/RECORD,,\n"
    entries.append((f"{dist_info}/RECORD", record.encode(), 0o644))

    wheel_name = f"{name}-{version}-py3-none-{_platform_tag()}.whl"
    # Written beside the target and renamed, so a failed build leaves no partial wheel.
    fd, tmp = tempfile.mkstemp(suffix=".whl", dir=wheel_directory)
    os.close(fd)
    try:
        _write_wheel(tmp, entries)
        os.chmod(tmp, 0o644)  # mkstemp makes it private
        os.replace(tmp, os.path.join(wheel_directory, wheel_name))
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return wheel_name


def build_sdist(sdist_directory, config_settings=None):
    raise BuildError(
        "nexuslite has no source distribution: its wheel compiles the whole NexusLite crate. "
        "Build it from a checkout: pip install ./bindings/python (or pip wheel ./bindings/python)"
    )
