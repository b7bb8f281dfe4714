#!/usr/bin/env bash
# Tests of the Go binding against the library built by `cargo build --release`.
# Run from anywhere (e.g. the repository root): bash bindings/go/run_tests.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

# No downloads, no toolchain switching, no VCS stamping; the module has no
# dependencies.
export GOTOOLCHAIN=local
export GOFLAGS="-mod=mod -buildvcs=false"
export GOPROXY=off
export GOSUMDB=off
export CGO_ENABLED=1

for f in target/release/libnexus.a target/release/libnexus.so include/nexus.h; do
    if [[ ! -e "$root/$f" ]]; then
        echo "run_tests.sh: $root/$f is missing; run 'cargo build --release' in $root first" >&2
        exit 1
    fi
done

# Go's build cache does not look inside a library named in #cgo LDFLAGS: after the library
# is rebuilt it would link (and run) binaries cached against the old one. The library's size
# and time in the cgo flags make a rebuilt library a new build input.
lib="$root/target/release/libnexus.a"
export CGO_CPPFLAGS="${CGO_CPPFLAGS:-} -DNEXUS_LIBRARY_STAMP=$(stat -c '%s_%Y' "$lib")"

cd "$here"
echo "== go vet (static, dynamic)"
go vet ./...
go vet -tags nexus_dynamic ./...

echo "== go test -race (static link)"
go test -race -count=1 ./...

echo "== go test (dynamic link, -tags nexus_dynamic)"
# The binary records the library's SONAME (libnexus.so.0). Should the build
# not have left that name in target/release, point the loader at a symlink.
rel="$root/target/release"
soname="$(objdump -p "$rel/libnexus.so" 2>/dev/null | awk '/SONAME/ {print $2}')" || true
if [[ -n "$soname" && ! -e "$rel/$soname" ]]; then
    libdir="$(mktemp -d)"
    trap 'rm -rf "$libdir"' EXIT
    ln -s "$rel/libnexus.so" "$libdir/$soname"
    export LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
go test -tags nexus_dynamic -count=1 ./...

echo "== examples/go (vet + build)"
if [[ -f "$root/examples/go/go.mod" ]]; then
    (cd "$root/examples/go" && go vet ./... && go build ./...)
fi
echo "Go binding: all tests passed"
