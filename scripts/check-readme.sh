#!/usr/bin/env bash
# Every code block in README.md that follows an `<!-- include: PATH -->` marker must equal
# the file PATH, which the test suites compile and run; so the README cannot drift.
# `scripts/check-readme.sh --update` rewrites those blocks from the files.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 - "$@" <<'PY'
import re, sys
text = open("README.md").read()
if sys.argv[1:] == ["--update"]:
    def fill(m):
        body = open(m.group(1)).read()
        return f"<!-- include: {m.group(1)} -->\n```{m.group(2)}\n{body if body.endswith(chr(10)) else body + chr(10)}```\n"
    text = re.sub(r"<!-- include: (\S+) -->\n```([a-z+]*)\n(.*?)```\n", fill, text, flags=re.S)
    open("README.md", "w").write(text)
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
