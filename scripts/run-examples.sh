#!/usr/bin/env bash
# Runs the README demo twice on a fresh database and checks that each language's second run
# reads back what the first one wrote (persistence across processes); then runs the Rust
# quick start, the aggregation, bulk-writes and encryption examples and the CLI tour. Assumes `make lib`
# has run.
set -euo pipefail
cd "$(dirname "$0")/.."
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
db="$work/demo.db"

run_demo() {
  bash examples/c/run.sh "$db"
  bash examples/cpp/run.sh "$db"
  bash examples/go/run.sh "$db"
}

run_demo > "$work/first.txt"
run_demo > "$work/second.txt"
cat "$work/second.txt"

check() {
  local file="$1" pattern="$2"
  if grep -Eq "$pattern" "$file"; then
    echo "ok: $(basename "$file") has /$pattern/"
  else
    echo "FAILED: $(basename "$file") lacks /$pattern/"; return 1
  fi
}
status=0
check "$work/first.txt"  "has seen 1 C demo run$"                || status=1
check "$work/second.txt" "has seen 2 C demo runs"                || status=1
check "$work/first.txt"  "has seen 1 C\+\+ demo run$"            || status=1
check "$work/second.txt" "has seen 2 C\+\+ demo runs"            || status=1
check "$work/first.txt"  "Go demo runs seen by this database: 1" || status=1
check "$work/second.txt" "Go demo runs seen by this database: 2" || status=1
check "$work/first.txt"  "c: index kind_1_age_1; the query now scans that index" || status=1

cargo build --release --quiet --example quickstart
(cd "$work" && "$OLDPWD/target/release/examples/quickstart" rust.db) > "$work/rust.txt"
cat "$work/rust.txt"
check "$work/rust.txt" '"name":"ada","age":37' || status=1

cargo build --release --quiet --example aggregate
"$PWD/target/release/examples/aggregate" > "$work/aggregate.txt"
cat "$work/aggregate.txt"
check "$work/aggregate.txt" '^\{"_id":"abc","total":60,"sales":1\}$' || status=1
cargo build --release --quiet --example vector_search
"$PWD/target/release/examples/vector_search" > "$work/vector.txt"
cat "$work/vector.txt"
check "$work/vector.txt" '^"apple" 0\.99' || status=1
check "$work/vector.txt" '^"pear" 0\.9' || status=1
cargo build --release --quiet --example bulk_writes
"$PWD/target/release/examples/bulk_writes" > "$work/bulk.txt"
cat "$work/bulk.txt"
check "$work/bulk.txt" '"insertedIds":\{"0":1,"2":2\},"writeErrors":\[\{"index":1,"code":11000' || status=1
check "$work/bulk.txt" '^update_one: .*"upsertedCount":1,"upsertedId":3\}$' || status=1

cargo build --release --quiet --example encryption
"$PWD/target/release/examples/encryption" "$work/secret.db" > "$work/enc.txt"
cat "$work/enc.txt"
check "$work/enc.txt" '^without a key: .*database is encrypted' || status=1
check "$work/enc.txt" "^with Bob's key: 1 note\(s\)$" || status=1
if grep -a -q "meet at noon" "$work/secret.db" "$work/secret.wasp"; then
    echo "the encryption example's note is readable in its files"; status=1
fi

NEXUS="$PWD/target/release/nexus" bash examples/cli/tour.sh > "$work/cli.txt"
cat "$work/cli.txt"
check "$work/cli.txt" '^\{"name":"ada","age":37,"home":\{"city":"london"\}\}$' || status=1
check "$work/cli.txt" '^2$' || status=1
exit $status
