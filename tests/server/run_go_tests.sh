#!/usr/bin/env bash
# The `nexus serve` suite of the official Go driver (go.mongodb.org/mongo-driver/v2, pinned
# in tests/server/go/go.mod and go.sum, fetched from the Go module proxy on first run)
# against target/release/nexus (cargo build --release first).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
export GOTOOLCHAIN=local
export GOFLAGS="-mod=readonly -buildvcs=false"
export NEXUS_BIN="$root/target/release/nexus"
[[ -x "$NEXUS_BIN" ]] || { echo "run_go_tests.sh: $NEXUS_BIN is missing: cargo build --release first" >&2; exit 1; }
cd "$here/go"
exec go test -count=1 ./...
