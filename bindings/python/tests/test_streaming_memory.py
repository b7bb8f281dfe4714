"""Import streams: reading and converting a file many times larger than the memory the
process uses. The real `nexus` binary checks an ~80 MB NDJSON file (--dry-run: every row is
read, parsed and converted, nothing is stored, so the storage layer's own memory does not
count) while getrusage(RUSAGE_CHILDREN) measures its peak RSS in a fresh helper process."""
import json
import os
import subprocess
import sys

NEXUS = os.environ.get("NEXUS_BIN") or os.path.join(os.path.dirname(__file__), "..", "..", "..", "target", "release", "nexus")

MEASURE = "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)"


def test_dry_run_import_of_80mb_stays_small(tmp_path):
    src = tmp_path / "big.ndjson"
    with open(src, "w") as f:
        pad = "x" * 200
        for i in range(300_000):
            f.write(json.dumps({"_id": i, "name": f"user {i}", "nested": {"a": i, "pad": pad}, "tags": ["a", "b", i]}) + "\n")
    size = src.stat().st_size
    assert size > 75 * 2**20
    r = subprocess.run(
        [sys.executable, "-c", MEASURE, NEXUS, "-q", "import", "--dry-run", str(tmp_path / "never.db"), "c", str(src)],
        capture_output=True, text=True, check=True,
    )
    peak_kib = int(r.stdout.strip())
    assert peak_kib * 1024 < 40 * 2**20, f"peak RSS {peak_kib} KiB for a {size >> 20} MiB file"
    assert not (tmp_path / "never.db").exists()
