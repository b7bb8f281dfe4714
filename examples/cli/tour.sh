#!/usr/bin/env bash
# The nexus CLI in a minute: import a CSV, query it, export it, script the shell.
set -euo pipefail
nexus="${NEXUS:-nexus}"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT; cd "$work"
printf 'name,age,home.city\nada,36,london\nalan,41,wilmslow\n' > people.csv

"$nexus" import app.db people people.csv          # typed cells; home.city -> {"home": {"city": ..}}
"$nexus" find app.db people '{age: {$gt: 40}}'    # NDJSON on stdout; mongosh-style JSON accepted
"$nexus" count app.db people                      # the number alone
"$nexus" export app.db people people.bson         # mongodump's format, written atomically
"$nexus" shell app.db <<'SHELL'
update people {name: 'ada'} {$inc: {age: 1}}
find people {} {sort: {age: -1}, projection: {_id: 0}}
SHELL
