# Sourced by the import benchmarks (scripts/bench-import.sh, scripts/bench-defaults.sh).
#
# gen_import_data DIR SIZE_MB [IDS [CSV]]: writes DIR/data.ndjson, ~SIZE_MB MiB of one
# document a line (`_id` 0, 1, ... when IDS is 1, the default; no `_id` when 0, so the
# importer makes one), DIR/data.csv with the same rows when CSV is 1 (the default), and the
# row count to DIR/rows.
#
# measure DIR NAME CMD...: runs CMD under GNU time (stdout dropped, stderr to DIR/NAME.err);
# prints "seconds peak_kib" (wall time, maximum resident set size); exits on failure.
gen_import_data() {
    python3 - "$1" "$2" "${3:-1}" "${4:-1}" <<'PY'
import json, sys
work, size_mb, ids, csv = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4] == "1"
target = size_mb * 2**20
rows = 0
with open(f"{work}/data.ndjson", "w") as nd, open(f"{work}/data.csv" if csv else "/dev/null", "w") as cs:
    cs.write("_id,name,age,city.name,city.zip,score,active,note\n")
    written = 0
    while written < target:
        i = rows
        doc = {"_id": i, "name": f"user {i} ü", "age": i % 97, "city": {"name": f"city {i % 1000}", "zip": 10000 + i % 90000},
               "score": i / 7, "active": i % 2 == 0, "note": "lorem ipsum dolor sit amet " * 4}
        if not ids:
            del doc["_id"]
        line = json.dumps(doc, ensure_ascii=False) + "\n"
        nd.write(line)
        written += len(line.encode())
        if csv:
            cs.write(f'{i},user {i} ü,{i % 97},city {i % 1000},{10000 + i % 90000},{i / 7!r},{str(i % 2 == 0).lower()},{doc["note"]}\n')
        rows += 1
open(f"{work}/rows", "w").write(str(rows))
PY
}

measure() {
    local dir="$1" name="$2"
    shift 2
    /usr/bin/time -v -o "$dir/$name.time" "$@" >/dev/null 2>"$dir/$name.err" || {
        cat "$dir/$name.err" >&2; echo "bench: $name failed" >&2; exit 1; }
    local secs kib
    secs="$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$dir/$name.time" | awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; print s }')"
    kib="$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$dir/$name.time")"
    echo "$secs $kib"
}
