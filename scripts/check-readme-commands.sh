#!/usr/bin/env bash
# Runs the shell blocks of README.md marked `<!-- run: sh -->` the way a reader pastes them:
# from the repository root, one bash per block (errors stop it), with none of the test
# suites' environment (NEXUS_LIB, PYTHONPATH, ...). So that nothing is written into the
# checkout, "the repository root" is a scratch directory holding links to its entries.
# Then checks that a program of its own compiles against the crate as README's Rust quick
# start says (examples/rust-dependency.toml + examples/quickstart.rs).
# Needs `make lib` first (as the README says).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

mkdir "$scratch/repo"
for entry in "$root"/* "$root"/.[!.]*; do
    [[ -e "$entry" ]] && ln -s "$entry" "$scratch/repo/$(basename "$entry")"
done

python3 - "$root/README.md" "$scratch/blocks" <<'PY'
import os, re, sys
text = open(sys.argv[1]).read()
blocks = re.findall(r"<!-- run: sh -->\n```sh\n(.*?)```\n", text, re.S)
if not blocks:
    sys.exit("README.md has no blocks marked <!-- run: sh -->")
os.mkdir(sys.argv[2])
for i, body in enumerate(blocks):
    open(os.path.join(sys.argv[2], f"{i:02d}.sh"), "w").write(body)
PY

failed=0
for block in "$scratch"/blocks/*.sh; do
    echo "--- README block $(basename "$block" .sh):"
    sed 's/^/    /' "$block"
    if (cd "$scratch/repo" && env -u NEXUS_LIB -u NEXUS_BIN -u PYTHONPATH \
            bash -euo pipefail "$block") > "$scratch/out" 2>&1; then
        sed 's/^/  | /' "$scratch/out"
    else
        sed 's/^/  | /' "$scratch/out"
        echo "--- FAILED: the block above"
        failed=$((failed + 1))
    fi
done

echo "--- Rust: a program of its own depending on the crate (examples/rust-dependency.toml)"
app="$scratch/hello-nexus"
mkdir -p "$app/src"
cp "$root/examples/quickstart.rs" "$app/src/main.rs"
{
    printf '[package]\nname = "hello-nexus"\nversion = "0.1.0"\nedition = "2021"\n\n'
    sed "s#path = \"../nexuslite\"#path = \"$root\"#" "$root/examples/rust-dependency.toml"
} > "$app/Cargo.toml"
grep -q "path = \"$root\"" "$app/Cargo.toml" || { echo "rust-dependency.toml: no path line to point at the checkout"; exit 1; }
# The checkout's lock file: the same dependency versions as the library's own build (and
# their artifacts in target/ reused), not whatever is newest today.
cp "$root/Cargo.lock" "$app/Cargo.lock"
# `cargo check --release` in the checkout's target/: with the same lock file, the
# dependencies' check artifacts of the clippy suite are reused (check mode links nothing, so
# the crate built with other features, no `cli`, sits beside the checkout's own build
# without mixing). The point is that the dependency lines and the program compile against
# the crate as a dependency (scripts/run-examples.sh runs the same program as an example of
# this repository).
if (cd "$app" && CARGO_TARGET_DIR="$root/target" cargo check --release -q) > "$scratch/out" 2>&1; then
    sed 's/^/  | /' "$scratch/out"
    echo "  | hello-nexus: compiles against the crate"
else
    sed 's/^/  | /' "$scratch/out"
    echo "--- FAILED: the Rust program"
    failed=$((failed + 1))
fi

if ((failed)); then
    echo "README commands: $failed failed"
    exit 1
fi
echo "README commands: all ran"
