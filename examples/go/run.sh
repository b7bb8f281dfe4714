#!/usr/bin/env bash
# Runs the Go demo (and the quickstart) against the library built by
# `cargo build --release`:  bash examples/go/run.sh DBPATH
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 DBPATH" >&2
    exit 2
fi
db="$1"
case "$db" in /*) ;; *) db="$PWD/$db" ;; esac

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
if [[ ! -e "$root/target/release/libnexus.a" || ! -e "$root/include/nexus.h" ]]; then
    echo "run.sh: build the library first: (cd $root && cargo build --release)" >&2
    exit 1
fi

export GOTOOLCHAIN=local GOFLAGS="-mod=mod -buildvcs=false" GOPROXY=off GOSUMDB=off CGO_ENABLED=1
# Go's build cache does not look inside a library named in #cgo LDFLAGS: after the library
# is rebuilt it would link (and run) binaries cached against the old one. The library's size
# and time in the cgo flags make a rebuilt library a new build input.
lib="$root/target/release/libnexus.a"
export CGO_CPPFLAGS="${CGO_CPPFLAGS:-} -DNEXUS_LIBRARY_STAMP=$(stat -c '%s_%Y' "$lib")"

cd "$here"
go run . "$db"

# The quickstart shown in the README writes quickstart.db in its working
# directory: run it in a scratch directory.
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/quickstart" ./quickstart
echo "--- quickstart"
(cd "$tmp" && ./quickstart)
