//! The real `nexus` binary's one-shot subcommands: import/export with their options, find
//! (NDJSON on stdout, mongosh-style filters), count (the number alone), insert, update,
//! delete, collections, stats, checkpoint, compact, check, backup (unsupported on `wal`)
//! and exit 1, the index commands (create-index, indexes, explain, drop-index), keygen / sign
//! / verify; errors are one line on stderr with exit 1, usage errors exit 2; regex literals
//! in filters, a CSV quote left open, counts with their noun in the singular for one.

use crate::common;
use common::{nexus, ok};
use std::path::Path;

fn fails(args: &[&str], cwd: &Path, code: i32) -> String {
    let o = nexus(args, cwd);
    assert_eq!(o.status.code(), Some(code), "nexus {args:?}: {o:?}");
    let err = String::from_utf8(o.stderr).unwrap();
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line on stderr: {err:?}"
    );
    err
}

#[test]
fn import_find_count_export_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("people.csv"),
        "_id,name,age,home.city\n1,ada,36,london\n2,alan,41,wilmslow\n3,grace,85,new york\n",
    )
    .unwrap();
    let o = nexus(
        &[
            "import",
            "t.db",
            "people",
            "people.csv",
            "--batch-size",
            "2",
        ],
        d,
    );
    assert!(o.status.success(), "{o:?}");
    let summary = String::from_utf8(o.stderr).unwrap();
    assert!(summary.contains("imported 3 of 3 rows"), "{summary}");

    assert_eq!(ok(&["count", "t.db", "people"], d), "3\n");
    assert_eq!(
        ok(&["count", "t.db", "people", "{age: {$gt: 40}}"], d),
        "2\n"
    );
    let found = ok(
        &[
            "find",
            "t.db",
            "people",
            "{age: {$gt: 40}}",
            "--sort",
            "{age: -1}",
            "--limit",
            "1",
        ],
        d,
    );
    assert_eq!(
        found,
        "{\"_id\":3,\"name\":\"grace\",\"age\":85,\"home\":{\"city\":\"new york\"}}\n"
    );

    ok(
        &[
            "export",
            "t.db",
            "people",
            "out.ndjson",
            "--filter",
            "{'home.city': 'london'}",
            "-q",
        ],
        d,
    );
    assert_eq!(
        std::fs::read_to_string(d.join("out.ndjson")).unwrap(),
        "{\"_id\":1,\"name\":\"ada\",\"age\":36,\"home\":{\"city\":\"london\"}}\n"
    );
    ok(
        &[
            "export",
            "t.db",
            "people",
            "out.csv",
            "--fields",
            "name,home.city",
            "-q",
        ],
        d,
    );
    assert_eq!(
        std::fs::read_to_string(d.join("out.csv")).unwrap(),
        "name,home.city\nada,london\nalan,wilmslow\ngrace,new york\n"
    );
    ok(&["export", "t.db", "people", "all.bson", "-q"], d);
    ok(&["import", "t.db", "copy", "all.bson", "-q"], d);
    assert_eq!(
        ok(&["find", "t.db", "copy"], d),
        ok(&["find", "t.db", "people"], d)
    );
    assert_eq!(ok(&["collections", "t.db"], d), "copy\npeople\n");
}

#[test]
fn write_commands_and_maintenance() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert_eq!(ok(&["insert", "w.db", "c", "{_id: 'a', n: 1}"], d), "a\n");
    assert_eq!(
        ok(
            &[
                "insert",
                "w.db",
                "c",
                "[{_id: 'b', n: 2}, {_id: 'c', n: 3}]"
            ],
            d
        ),
        "b\nc\n"
    );
    assert_eq!(
        ok(
            &[
                "update",
                "w.db",
                "c",
                "{n: {$gte: 2}}",
                "{$inc: {n: 10}}",
                "--multi"
            ],
            d
        ),
        "matched 2, modified 2\n"
    );
    assert_eq!(
        ok(
            &[
                "update",
                "w.db",
                "c",
                "{_id: 'z'}",
                "{$set: {n: 0}}",
                "--upsert"
            ],
            d
        ),
        "matched 0, modified 0, upserted z\n"
    );
    // --array-filters: the filtered positional operator $[<identifier>].
    ok(&["insert", "w.db", "t", "{_id: 1, tags: [1, 5, 9]}"], d);
    assert_eq!(
        ok(
            &[
                "update",
                "w.db",
                "t",
                "{_id: 1}",
                "{$inc: {'tags.$[t]': 100}}",
                "--array-filters",
                "[{t: {$gt: 4}}]"
            ],
            d
        ),
        "matched 1, modified 1\n"
    );
    assert_eq!(
        ok(&["count", "w.db", "t", "{tags: [1, 105, 109]}"], d),
        "1\n"
    );
    assert_eq!(
        ok(&["delete", "w.db", "c", "{n: {$gt: 5}}", "--multi"], d),
        "deleted 2\n"
    );
    assert_eq!(
        ok(&["find", "w.db", "c", "{}", "--projection", "{n: 0}"], d),
        "{\"_id\":\"a\"}\n{\"_id\":\"z\"}\n"
    );
    let stats: serde_json::Value = serde_json::from_str(&ok(&["stats", "w.db"], d)).unwrap();
    assert_eq!(stats["version"], nexus::VERSION);
    ok(&["checkpoint", "w.db"], d);
    ok(&["compact", "w.db"], d);
    let report = ok(&["check", "w.db"], d);
    assert!(report.contains("\"ok\":true"), "{report}");
    // --storage picks the engine of a new database; WASP has online backup.
    ok(&["--storage", "wasp", "insert", "p.db", "c", "{a: 1}"], d);
    assert!(ok(&["stats", "p.db"], d).contains("\"backend\": \"wasp\""));
    ok(&["backup", "p.db", "p-copy.db"], d);
    assert_eq!(ok(&["count", "p-copy.db", "c"], d).trim(), "1");
    assert!(
        fails(&["--storage", "lsm", "insert", "q.db", "c", "{}"], d, 1).contains("wasp or memlog")
    );
    // The memlog backend has no online backup: exit 1, and no file. (`wal`, its former
    // name, still selects it.)
    ok(&["--storage", "memlog", "insert", "l.db", "c", "{a: 1}"], d);
    assert!(ok(&["stats", "l.db"], d).contains("\"backend\": \"memlog\""));
    ok(&["--storage", "wal", "insert", "l2.db", "c", "{a: 1}"], d);
    assert!(ok(&["stats", "l2.db"], d).contains("\"backend\": \"memlog\""));
    let o = nexus(&["backup", "l.db", "l-copy.db"], d);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("backup"));
    assert!(
        !d.join("l-copy.db").exists(),
        "a failed backup leaves no file"
    );
    // w.db has the library's default engine, WASP, in both passes of the suite: the `nexus`
    // binary is a host program, and the library does not read the tests' NEXUSLITE_STORAGE.
    ok(&["backup", "w.db", "copy.db"], d);
    assert!(ok(&["check", "copy.db"], d).contains("\"ok\":true"));
}

#[test]
fn errors_are_one_line_with_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert!(fails(&["count", "missing.db", "c"], d, 1).contains("no such database"));
    assert!(
        !d.join("missing.db").exists(),
        "read commands do not create databases"
    );
    ok(&["insert", "e.db", "c", "{a: 1}"], d);
    assert!(fails(&["find", "e.db", "c", "{a: {$bogus: 1}}"], d, 1).starts_with("nexus: error: "));
    std::fs::write(d.join("bad.ndjson"), "{\"a\":1}\n{\"a\":\n{\"a\":3}\n").unwrap();
    let e = fails(&["import", "e.db", "c", "bad.ndjson"], d, 1);
    assert!(
        e.contains("row 2 (line 2") && e.contains("1 document was committed before it"),
        "{e}"
    );
    let o = nexus(&["import", "e.db", "c", "bad.ndjson", "--skip-errors"], d);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("1 failed"));
    assert!(d.join("bad.ndjson.errors.jsonl").exists());
    std::fs::write(d.join("ttl.ndjson"), "{\"exp\": \"soon\"}\n").unwrap();
    let e = fails(
        &["import", "e.db", "c", "ttl.ndjson", "--ttl-field", "exp"],
        d,
        1,
    );
    assert!(e.contains("ttl_field 'exp' must hold milliseconds"), "{e}");
    assert!(fails(&["export", "e.db", "c", "."], d, 1).contains("is a directory"));
    assert!(fails(&["bogus"], d, 2).contains("usage error"));
    assert!(fails(&["find", "e.db"], d, 2).contains("usage error"));
    assert!(fails(
        &["import", "e.db", "c", "bad.ndjson", "--batch-size", "x"],
        d,
        2
    )
    .contains("usage error"));
    let help = nexus(&["--help"], d);
    assert!(help.status.success() && String::from_utf8_lossy(&help.stdout).contains("shell"));
}

#[test]
fn log_config_file_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("log.yaml"),
        "appenders:\n  file:\n    kind: file\n    path: nexus.log\n    encoder:\n      pattern: \"{l} {m}{n}\"\nroot:\n  level: debug\n  appenders: [file]\n",
    )
    .unwrap();
    ok(
        &["--log-config", "log.yaml", "insert", "l.db", "c", "{a: 1}"],
        d,
    );
    let log = std::fs::read_to_string(d.join("nexus.log")).unwrap();
    assert!(log.contains("DEBUG"), "{log}");
    assert!(
        fails(&["--log-config", "nope.yaml", "count", "l.db", "c"], d, 1).contains("log config")
    );
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn index_commands_create_list_explain_drop() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(
        &[
            "insert",
            "i.db",
            "users",
            "[{_id: 1, user: {email: 'ada@x', age: 36}, score: 5},
              {_id: 2, user: {email: 'bob@x', age: 25}, score: 7},
              {_id: 3, user: {email: 'cy@x', age: 36}}]",
        ],
        d,
    );
    // The name printed is MongoDB's default, or the one given.
    assert_eq!(
        ok(
            &[
                "create-index",
                "i.db",
                "users",
                "{'user.email': 1}",
                "--unique"
            ],
            d
        ),
        "user.email_1\n"
    );
    assert_eq!(
        ok(
            &[
                "create-index",
                "i.db",
                "users",
                "{'user.age': 1, score: -1}"
            ],
            d
        ),
        "user.age_1_score_-1\n"
    );
    assert_eq!(
        ok(
            &[
                "create-index",
                "i.db",
                "users",
                "{score: 1}",
                "--name",
                "by_score",
                "--options",
                "{partialFilterExpression: {score: {$gt: 6}}}",
            ],
            d
        ),
        "by_score\n"
    );

    // indexes: one JSON array, the _id index first, options shown.
    let list = json(&ok(&["indexes", "i.db", "users"], d));
    let list = list.as_array().unwrap();
    let names: Vec<&str> = list.iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["_id_", "user.email_1", "user.age_1_score_-1", "by_score"]
    );
    assert_eq!(list[0]["key"], json(r#"{"_id": 1}"#));
    assert_eq!(list[1]["v"], 2);
    assert_eq!(list[1]["key"], json(r#"{"user.email": 1}"#));
    assert_eq!(list[1]["unique"], true);
    assert_eq!(list[2]["key"], json(r#"{"user.age": 1, "score": -1}"#));
    assert_eq!(
        list[3]["partialFilterExpression"],
        json(r#"{"score": {"$gt": 6}}"#)
    );

    // The unique index rejects a duplicate and the insert leaves nothing behind.
    let e = fails(
        &[
            "insert",
            "i.db",
            "users",
            "{_id: 4, user: {email: 'ada@x'}}",
        ],
        d,
        1,
    );
    assert!(e.contains("duplicate"), "{e}");
    assert_eq!(ok(&["count", "i.db", "users"], d), "3\n");

    // explain: an equality on the indexed field is an index scan, in MongoDB's shape.
    let plan = json(&ok(
        &["explain", "i.db", "users", "{'user.email': 'bob@x'}"],
        d,
    ));
    let winning = &plan["queryPlanner"]["winningPlan"];
    assert_eq!(winning["stage"], "FETCH", "{plan}");
    assert_eq!(winning["inputStage"]["stage"], "IXSCAN", "{plan}");
    assert_eq!(winning["inputStage"]["indexName"], "user.email_1", "{plan}");
    assert!(plan["queryPlanner"]["rejectedPlans"].is_array(), "{plan}");
    let stats = &plan["executionStats"];
    assert_eq!(stats["nReturned"], 1, "{plan}");
    assert_eq!(stats["totalKeysExamined"], 1, "{plan}");
    assert_eq!(stats["totalDocsExamined"], 1, "{plan}");
    // A field without an index is a collection scan; --sort and --limit are find's options.
    let plan = json(&ok(
        &[
            "explain",
            "i.db",
            "users",
            "{'user.name': 'x'}",
            "--sort",
            "{_id: -1}",
            "--limit",
            "1",
        ],
        d,
    ));
    assert!(plan.to_string().contains("COLLSCAN"), "{plan}");
    assert!(!plan.to_string().contains("IXSCAN"), "{plan}");
    assert_eq!(plan["executionStats"]["nReturned"], 0, "{plan}");

    // drop-index removes it from the list; dropping it again is an error.
    ok(&["drop-index", "i.db", "users", "user.email_1"], d);
    let list = ok(&["indexes", "i.db", "users"], d);
    assert!(!list.contains("user.email_1"), "{list}");
    assert!(list.contains("by_score"), "{list}");
    assert!(fails(&["drop-index", "i.db", "users", "user.email_1"], d, 1).contains("user.email_1"));
    // Without the unique index the duplicate email goes in.
    ok(
        &[
            "insert",
            "i.db",
            "users",
            "{_id: 4, user: {email: 'ada@x'}}",
        ],
        d,
    );

    // Bad input: malformed keys are one-line errors, missing arguments usage errors.
    assert!(
        fails(&["create-index", "i.db", "users", "{a: "], d, 1).contains("index keys"),
        "malformed keys"
    );
    assert!(fails(&["create-index", "i.db", "users"], d, 2).contains("usage error"));
    assert!(fails(&["indexes", "missing.db", "users"], d, 1).contains("no such database"));
}

#[test]
fn keygen_sign_and_verify_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&["keygen", "me.key", "me.pub"], d);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.join("me.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the private key is its owner's alone");
    }
    let err = fails(&["keygen", "me.key", "other.pub"], d, 1);
    assert!(err.contains("already exists"), "{err}");
    assert!(
        !d.join("other.pub").exists(),
        "nothing written when one name is taken"
    );
    std::fs::write(d.join("data.ndjson"), "{\"a\":1}\n").unwrap();
    ok(&["sign", "data.ndjson", "--key", "me.key"], d);
    assert!(d.join("data.ndjson.sig").exists());
    let o = ok(&["verify", "data.ndjson", "--key", "me.pub"], d);
    assert_eq!(o.trim(), "data.ndjson: signature verified");
    std::fs::write(d.join("data.ndjson"), "{\"a\":2}\n").unwrap();
    let err = fails(&["verify", "data.ndjson", "--key", "me.pub"], d, 1);
    assert!(err.contains("does not match"), "{err}");
    // A private key where the public one belongs: said so, the key not echoed.
    let err = fails(&["verify", "data.ndjson", "--key", "me.key"], d, 1);
    assert!(err.contains("this is a private key"), "{err}");
    let key = std::fs::read_to_string(d.join("me.key")).unwrap();
    let body = key.lines().nth(1).unwrap();
    assert!(!err.contains(body), "{err}");
    let err = fails(&["keygen", "a.key", "a.pub", "--algorithm", "rsa"], d, 1);
    assert!(err.contains("unknown key algorithm"), "{err}");
    // export --sign-key writes the signature that import --verify-key checks first.
    ok(&["insert", "t.db", "c", "[{_id: 1}, {_id: 2}]"], d);
    ok(
        &[
            "-q",
            "export",
            "t.db",
            "c",
            "c.ndjson",
            "--sign-key",
            "me.key",
        ],
        d,
    );
    ok(&["verify", "c.ndjson", "--key", "me.pub"], d);
    ok(
        &[
            "-q",
            "import",
            "u.db",
            "c",
            "c.ndjson",
            "--verify-key",
            "me.pub",
        ],
        d,
    );
    assert_eq!(ok(&["count", "u.db", "c"], d).trim(), "2");
    std::fs::write(d.join("c.ndjson"), "{\"_id\": 3}\n").unwrap();
    let err = fails(
        &[
            "-q",
            "import",
            "v.db",
            "c",
            "c.ndjson",
            "--verify-key",
            "me.pub",
        ],
        d,
        1,
    );
    assert!(err.contains("does not match"), "{err}");
}

#[test]
fn aggregate_prints_results_and_refuses_bad_pipelines() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(
        &[
            "insert",
            "a.db",
            "sales",
            "[{item: 'abc', q: 2}, {item: 'xyz', q: 10}, {item: 'abc', q: 5}]",
        ],
        d,
    );
    assert_eq!(
        ok(
            &[
                "aggregate",
                "a.db",
                "sales",
                "[{$group: {_id: '$item', total: {$sum: '$q'}}}, {$sort: {total: -1}}]",
            ],
            d
        ),
        "{\"_id\":\"xyz\",\"total\":10}\n{\"_id\":\"abc\",\"total\":7}\n"
    );
    assert_eq!(
        ok(
            &[
                "aggregate",
                "a.db",
                "sales",
                "[{$match: {$expr: {$gt: ['$q', '$$min']}}}, {$count: 'n'}]",
                "--options",
                "{let: {min: 3}}",
            ],
            d
        ),
        "{\"n\":2}\n"
    );
    let e = fails(&["aggregate", "a.db", "sales", "[{$densify: {}}]"], d, 1);
    assert!(e.contains("$densify"), "{e}");
    assert!(fails(&["aggregate", "missing.db", "c", "[]"], d, 1).contains("no such database"));
}

#[test]
fn vector_search_prints_nearest_first_and_refuses_bad_specs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(
        &[
            "create-index",
            "v.db",
            "docs",
            "{emb: 'hnsw'}",
            "--options",
            "{numDimensions: 2}",
        ],
        d,
    );
    ok(
        &[
            "insert",
            "v.db",
            "docs",
            "[{_id: 1, emb: [0, 0]}, {_id: 2, emb: [1, 1]}, {_id: 3, emb: [4, 4]}]",
        ],
        d,
    );
    let out = ok(
        &[
            "vector-search",
            "v.db",
            "docs",
            "{path: 'emb', queryVector: [1.1, 1.1], limit: 2, projection: {emb: 0}}",
        ],
        d,
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].starts_with("{\"_id\":2,\"_score\":"), "{out}");
    assert!(lines[1].starts_with("{\"_id\":1,\"_score\":"), "{out}");
    let e = fails(
        &[
            "vector-search",
            "v.db",
            "docs",
            "{path: 'emb', queryVector: [1], limit: 1}",
        ],
        d,
        1,
    );
    assert!(e.contains("dimensions"), "{e}");
}

#[test]
fn encrypted_databases_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&["keygen", "a.key", "a.pub"], d);
    ok(&["keygen", "b.key", "b.pub"], d);
    // --key on a command that creates a database: it is created encrypted.
    ok(
        &[
            "insert",
            "s.db",
            "notes",
            r#"{"_id": 1, "text": "plainly secret"}"#,
            "--key",
            "a.key",
        ],
        d,
    );
    let found = ok(&["find", "s.db", "notes", "{}", "--key", "a.key"], d);
    assert!(found.contains("plainly secret"), "{found}");
    let err = fails(&["find", "s.db", "notes", "{}"], d, 1);
    assert!(err.contains("database is encrypted"), "{err}");
    let err = fails(&["count", "s.db", "notes", "--key", "b.key"], d, 1);
    assert!(err.contains("no key slot for this key"), "{err}");
    ok(&["add-key", "s.db", "b.pub", "--key", "a.key"], d);
    ok(&["remove-key", "s.db", "a.pub", "--key", "b.key"], d);
    let err = fails(&["remove-key", "s.db", "b.pub", "--key", "b.key"], d, 1);
    assert!(err.contains("last key"), "{err}");
    ok(&["rekey", "s.db", "--key", "b.key"], d);
    let err = fails(&["rekey", "s.db"], d, 1);
    assert!(err.contains("database is encrypted"), "{err}");
    assert_eq!(
        ok(&["count", "s.db", "notes", "--key", "b.key"], d).trim(),
        "1"
    );
    let err = fails(&["count", "s.db", "notes", "--key", "a.key"], d, 1);
    assert!(err.contains("no key slot"), "{err}");
    let stats = ok(&["stats", "s.db", "--key", "b.key"], d);
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(stats["storage"]["encrypted"], true, "{stats}");
    for f in ["s.db", "s.wasp"] {
        let bytes = std::fs::read(d.join(f)).unwrap_or_default();
        assert!(
            !bytes.windows(14).any(|w| w == b"plainly secret"),
            "{f} holds the text in the clear"
        );
    }
    // A signed backup: encrypted under the same keys, its signature checks.
    ok(
        &[
            "backup",
            "s.db",
            "copy.db",
            "--key",
            "b.key",
            "--sign-key",
            "b.key",
        ],
        d,
    );
    let v = ok(&["verify", "copy.db", "--key", "b.pub"], d);
    assert!(v.contains("signature verified"), "{v}");
    assert_eq!(
        ok(&["count", "copy.db", "notes", "--key", "b.key"], d).trim(),
        "1"
    );
    let err = fails(&["count", "copy.db", "notes"], d, 1);
    assert!(err.contains("database is encrypted"), "{err}");
    // A plain copy, and one encrypted to A again.
    ok(
        &["backup", "s.db", "plain.db", "--key", "b.key", "--decrypt"],
        d,
    );
    assert_eq!(ok(&["count", "plain.db", "notes"], d).trim(), "1");
    ok(
        &[
            "backup",
            "s.db",
            "to-a.db",
            "--key",
            "b.key",
            "--encrypt-to",
            "a.pub",
        ],
        d,
    );
    assert_eq!(
        ok(&["count", "to-a.db", "notes", "--key", "a.key"], d).trim(),
        "1"
    );
    // sign / verify read the same --key.
    let err = fails(&["sign", "a.pub"], d, 1);
    assert!(err.contains("--key"), "{err}");
}

#[test]
fn regex_literals_filter_as_regex_values() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(
        &[
            "insert",
            "r.db",
            "people",
            "[{_id: 1, name: 'ada'}, {_id: 2, name: 'Alan'}, {_id: 3, name: 'grace'}, {_id: 4, name: 'a/b'}]",
        ],
        d,
    );
    let ids = |filter: &str| -> Vec<i64> {
        ok(&["find", "r.db", "people", filter, "--sort", "{_id: 1}"], d)
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["_id"]
                    .as_i64()
                    .unwrap()
            })
            .collect()
    };
    assert_eq!(ids("{name: /^a/}"), [1, 4]);
    assert_eq!(ids("{name: /^a/i}"), [1, 2, 4]);
    assert_eq!(ids(r"{name: /a\/b/}"), [4], "an escaped slash");
    assert_eq!(ids("{name: {$in: [/^g/, /^A/]}}"), [2, 3]);
    // The same as the $regex operator it stands for.
    assert_eq!(ids("{name: {$regex: '^a', $options: 'i'}}"), [1, 2, 4]);
    assert_eq!(
        ok(&["count", "r.db", "people", "{name: {$not: /a/}}"], d).trim(),
        "0"
    );
    let e = fails(&["find", "r.db", "people", "{name: /^a/g}"], d, 1);
    assert!(
        e.contains("filter: invalid regex flag 'g'") && e.contains("i, m, s, u and x"),
        "{e}"
    );
}

#[test]
fn an_unterminated_csv_quote_is_named_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Line 3 opens a quote that is never closed: the rest of the file would be one cell
    // with as many fields as the header, so no field-count check could notice.
    std::fs::write(
        d.join("q.csv"),
        "name,note\nada,\"fine, quoted\"\nalan,\"open\nbob,x\n",
    )
    .unwrap();
    let e = fails(&["import", "q.db", "c", "q.csv"], d, 1);
    assert!(
        e.contains("unterminated quoted field") && e.contains("starts on line 3"),
        "{e}"
    );
    assert!(!e.contains("fields but the header"), "{e}");
    assert!(e.contains("1 document was committed before it"), "{e}");
    assert_eq!(ok(&["count", "q.db", "c"], d).trim(), "1");
}

#[test]
fn counts_of_one_take_the_singular() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("one.ndjson"), "{\"_id\": 1}\n").unwrap();
    let o = nexus(&["import", "n.db", "c", "one.ndjson"], d);
    assert!(o.status.success(), "{o:?}");
    let summary = String::from_utf8(o.stderr).unwrap();
    assert!(summary.starts_with("imported 1 of 1 row from"), "{summary}");
    let o = nexus(&["export", "n.db", "c", "out.ndjson"], d);
    assert!(o.status.success(), "{o:?}");
    let summary = String::from_utf8(o.stderr).unwrap();
    assert!(summary.starts_with("exported 1 document to"), "{summary}");
    ok(&["insert", "n.db", "c", "{_id: 2}"], d);
    let o = nexus(&["export", "n.db", "c", "two.ndjson"], d);
    let summary = String::from_utf8(o.stderr).unwrap();
    assert!(summary.starts_with("exported 2 documents to"), "{summary}");
    // A CSV row with one field where the header has two.
    std::fs::write(d.join("short.csv"), "a,b\n1\n").unwrap();
    let e = fails(&["import", "n.db", "s", "short.csv"], d, 1);
    assert!(
        e.contains("has 1 field but the header has 2") && e.contains("0 documents were committed"),
        "{e}"
    );
}
