#!/usr/bin/env bash
# Every code block in README.md that follows an `<!-- include: PATH -->` marker must equal
# the file PATH, which the test suites compile and run; so the README cannot drift.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 - <<'PY'
import re, sys
text = open("README.md").read()
blocks = re.findall(r"<!-- include: (\S+) -->\n```[a-z+]*\n(.*?)```\n", text, re.S)
if not blocks:
    sys.exit("README.md has no included examples")
bad = 0
for path, body in blocks:
    want = open(path).read()
    if not want.endswith("\n"):
        want += "\n"
    if body != want:
        print(f"README.md block for {path} differs from the file"); bad += 1
    else:
        print(f"README.md block for {path}: matches")
sys.exit(1 if bad else 0)
PY
