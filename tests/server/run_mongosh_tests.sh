#!/usr/bin/env bash
# mongosh (pinned, installed from the npm registry on first run into the user's cache,
# about 150 MB, shared by every checkout: NEXUS_CACHE_DIR, else ~/.cache/nexuslite, as
# scripts/setup.sh keeps the Python venv) against target/release/nexus: a few
# `mongosh --eval` scripts that assert what they read; each must exit 0. Needs node and npm.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
MONGOSH_VERSION=2.12.0
cache="${NEXUS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/nexuslite}"
prefix="$cache/mongosh-$MONGOSH_VERSION"
mongosh="$prefix/node_modules/.bin/mongosh"
mkdir -p "$cache"
# Two checkouts running this at once take turns on the shared install.
exec 9>"$prefix.lock"
flock 9
nexus="$root/target/release/nexus"
[[ -x "$nexus" ]] || { echo "run_mongosh_tests.sh: $nexus is missing: cargo build --release first" >&2; exit 1; }
if [[ ! -x "$mongosh" ]] || [[ "$("$mongosh" --version 2>/dev/null)" != "$MONGOSH_VERSION" ]]; then
    command -v npm >/dev/null || { echo "run_mongosh_tests.sh: npm is required" >&2; exit 1; }
    mkdir -p "$prefix"
    npm install --prefix "$prefix" --no-audit --no-fund --silent "mongosh@$MONGOSH_VERSION" >/dev/null
fi
exec 9>&-
work="$(mktemp -d)"
"$nexus" serve --data-dir "$work/data" --mongo 127.0.0.1:0 > "$work/serve.log" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT
until grep -q "MongoDB protocol on" "$work/serve.log"; do
    kill -0 $server 2>/dev/null || { cat "$work/serve.log"; exit 1; }
    sleep 0.1
done
addr="$(grep -o '127\.0\.0\.1:[0-9]*' "$work/serve.log" | head -n 1)"
passed=0; failed=0
check() {
    local name="$1" script="$2"
    if "$mongosh" --quiet --norc "mongodb://$addr/shop" --eval "$script" > "$work/out" 2>&1; then
        passed=$((passed + 1)); echo "ok: $name"
    else
        failed=$((failed + 1)); echo "FAILED: $name"; sed 's/^/  | /' "$work/out"
    fi
}
check "insert, find, sort, count" '
  db.orders.insertMany([{item: "tea", qty: 2}, {item: "jam", qty: 5}, {item: "oil", qty: 1}]);
  const items = db.orders.find({qty: {$gt: 1}}, {_id: 0, item: 1}).sort({qty: -1}).toArray().map(d => d.item);
  if (JSON.stringify(items) !== JSON.stringify(["jam", "tea"])) throw new Error("find: " + JSON.stringify(items));
  if (db.orders.countDocuments({}) !== 3) throw new Error("count");'
check "update, aggregate" '
  const r = db.orders.updateMany({qty: {$lt: 3}}, {$inc: {qty: 10}});
  if (r.modifiedCount !== 2) throw new Error("update: " + JSON.stringify(r));
  const t = db.orders.aggregate([{$group: {_id: null, total: {$sum: "$qty"}}}]).toArray()[0].total;
  if (t !== 28) throw new Error("aggregate: " + t);'
check "unique index and duplicate key" '
  db.orders.createIndex({item: 1}, {unique: true});
  let code = 0;
  try { db.orders.insertOne({item: "tea"}); } catch (e) { code = e.code; }
  if (code !== 11000) throw new Error("duplicate: code " + code);
  if (!db.orders.getIndexes().some(i => i.name === "item_1")) throw new Error("indexes");'
check "databases and collections" '
  if (!db.getMongo().getDBNames().includes("shop")) throw new Error("dbs");
  if (JSON.stringify(db.getCollectionNames()) !== JSON.stringify(["orders"])) throw new Error("collections");
  db.orders.drop();
  if (db.getCollectionNames().length !== 0) throw new Error("drop");'
echo "mongosh: $passed passed, $failed failed"
((failed == 0))
