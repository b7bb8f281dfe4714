#!/usr/bin/env bash
# Writes benchmarks/server.md: `nexus serve` through the official Go driver, its HTTP (Data
# API) and gRPC front ends, next to the embedded C ABI (the Go binding), 1, 8 and 32 clients. Needs `cargo build --release`
# (target/release/nexus and libnexus.a). Not part of `make test` (a benchmark, ~1 minute).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
export GOTOOLCHAIN=local GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=1
duration="${DURATION:-2s}"
out="$root/benchmarks/server.md"
cd "$here"
go build -o "$here/.bench-server" .
trap 'rm -f "$here/.bench-server"' EXIT
table="$("$here/.bench-server" -nexus "$root/target/release/nexus" -root "$root" -duration "$duration")"
{
    echo "# nexus serve: the MongoDB wire protocol, HTTP and gRPC next to the embedded C ABI"
    echo
    echo "Made by \`bash bench/server/run.sh\` (bench/server/main.go) on $(date -u +%Y-%m-%d):"
    echo "$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), shared with other"
    echo "work; $(go version | cut -d' ' -f3), nexus $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')."
    echo "Each case runs $duration from N goroutines. Server: one \`nexus serve\` on loopback serving all"
    echo "three front ends over one data directory: the official Go driver (go.mongodb.org/mongo-driver/v2"
    echo "v2.10.0, one client, pool of 64); HTTP: the Data API actions insertOne / findOne / find with"
    echo "net/http (keep-alive, 64 idle connections), JSON bodies decoded into maps; gRPC: grpc-go v1.85.0,"
    echo "one HTTP/2 connection, nexus.v1.Nexus InsertOne / FindOne / streamed Find, BSON decoded into"
    echo "bson.M. Embedded: the Go"
    echo "binding (cgo over the C ABI, libnexus.a), one connection per goroutine to one file. Both sides hold"
    echo "the same 10,000 documents {_id, grp: _id % 1000, name} with an index on grp, at the default"
    echo "settings (sync \"full\": every insert commit is fsynced). insert_one adds documents with grp"
    echo "1000-1999, so \"find 10 by index\" (grp 0-999) returns exactly the 10 documents of one grp on"
    echo "every path (the program checks the count). Latencies are per operation as the client sees it."
    echo
    echo "First, the floor under the one-client rows, each from one goroutine for $duration: the loopback"
    echo "TCP round trip (a Go echo server in the load generator's process), \`nexus serve\` answering"
    echo "hand-built OP_MSG frames on a bare socket (no driver), and the Go driver's own share"
    echo "(decoding a reply, \`ping\`, the find of 10 with and without its cursor and decoding)."
    echo
    echo "$table"
} > "$out"
cat "$out"
