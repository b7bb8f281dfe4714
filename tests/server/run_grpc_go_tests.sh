#!/usr/bin/env bash
# The gRPC front end of `nexus serve --grpc` from Go (tests/server/grpcgo): grpc-go with the
# messages of proto/nexus/v1/nexus.proto built at run time (protocompile + dynamicpb, no
# generated code), modules pinned in go.mod / go.sum and fetched from the Go module proxy on
# first run, against target/release/nexus (cargo build --release first).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
export GOTOOLCHAIN=local
export GOFLAGS="-mod=readonly -buildvcs=false"
export NEXUS_BIN="$root/target/release/nexus"
[[ -x "$NEXUS_BIN" ]] || { echo "run_grpc_go_tests.sh: $NEXUS_BIN is missing: cargo build --release first" >&2; exit 1; }
cd "$here/grpcgo"
exec go test -count=1 ./...
