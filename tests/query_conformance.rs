//! The query-language conformance suite: every case of every `tests/conformance/*.json`
//! file, run through the Rust API on a fresh in-memory database. The same files are run
//! through the C ABI (`tests/c/conformance.c`) and the Go binding
//! (`bindings/go/conformance_test.go`); `tests/conformance/README.md` describes the format.
//!
//! Results are compared exactly: BSON types (int32 / int64 / double), field order and
//! document order all count.

use bson::{Bson, Document as BsonDocument};
use nexus::{Database, Document, FindOneAndOptions, FindOptions, UpdateOptions};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The suite must not shrink below the issue's acceptance threshold unnoticed.
const MIN_CASES: usize = 300;

fn conformance_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance")
}

fn to_doc(v: &Value, what: &str) -> BsonDocument {
    match v {
        Value::Object(m) => BsonDocument::try_from(m.clone())
            .unwrap_or_else(|e| panic!("{what}: invalid Extended JSON: {e}")),
        other => panic!("{what}: expected an object, found {other}"),
    }
}

fn to_bson(v: &Value) -> Bson {
    Bson::try_from(v.clone()).unwrap_or_else(|e| panic!("invalid Extended JSON {v}: {e}"))
}

fn opt_doc(case: &Value, key: &str) -> BsonDocument {
    case.get(key).map(|v| to_doc(v, key)).unwrap_or_default()
}

fn code_name(code: i32) -> &'static str {
    match code {
        1 => "NEXUS_ERROR",
        2 => "NEXUS_NOT_FOUND",
        3 => "NEXUS_INVALID_ARGUMENT",
        4 => "NEXUS_PARSE",
        5 => "NEXUS_DUPLICATE_KEY",
        6 => "NEXUS_NO_COLLECTION",
        13 => "NEXUS_UNSUPPORTED",
        _ => "other",
    }
}

/// What an operation produced: a comparable value.
fn run_op(db: &Database, case: &Value) -> nexus::Result<Bson> {
    let c = db.collection("c");
    let filter = opt_doc(case, "filter");
    let flag = |k: &str| case.get(k).and_then(Value::as_bool).unwrap_or(false);
    let options_text = case.get("options").map(Value::to_string);
    let op = case["op"].as_str().unwrap_or("find");
    Ok(match op {
        "find" => {
            let opts = match &options_text {
                Some(t) => FindOptions::from_json(t)?,
                None => FindOptions::default(),
            };
            let docs = c
                .find(&filter, opts)?
                .map(|d| d.map(|d| Bson::Document(d.into_bson())))
                .collect::<nexus::Result<Vec<_>>>()?;
            Bson::Array(docs)
        }
        "count" => Bson::Int64(c.count(&filter)? as i64),
        "distinct" => Bson::Array(c.distinct(case["field"].as_str().expect("field"), &filter)?),
        "update" => {
            let r = c.update(
                &filter,
                &opt_doc(case, "update"),
                UpdateOptions {
                    multi: flag("multi"),
                    upsert: flag("upsert"),
                },
            )?;
            let mut d = bson::doc! {"matched": r.matched as i64, "modified": r.modified as i64};
            if r.upserted_id.is_some() {
                d.insert("upserted", true);
            }
            Bson::Document(d)
        }
        "delete" => Bson::Int64(c.delete(&filter, flag("multi"))? as i64),
        "find_one_and_update" | "find_one_and_delete" => {
            let opts = FindOneAndOptions::from_json(options_text.as_deref())?;
            let got = if op == "find_one_and_update" {
                c.find_one_and_update(&filter, &opt_doc(case, "update"), opts)?
            } else {
                c.find_one_and_delete(&filter, opts)?
            };
            got.map_or(Bson::Null, |d| Bson::Document(d.into_bson()))
        }
        other => panic!("unknown op {other}"),
    })
}

/// Normalizes integers for number-only results (counts, update counters).
fn expected_value(case: &Value) -> Bson {
    let e = &case["expect"];
    match case["op"].as_str().or(Some("find")) {
        Some("count") | Some("delete") => Bson::Int64(e.as_i64().expect("expect is a number")),
        Some("update") => {
            let mut d = bson::doc! {
                "matched": e["matched"].as_i64().expect("matched"),
                "modified": e["modified"].as_i64().expect("modified"),
            };
            if e.get("upserted").and_then(Value::as_bool) == Some(true) {
                d.insert("upserted", true);
            }
            Bson::Document(d)
        }
        _ => to_bson(e),
    }
}

/// Filters are evaluated on stored bytes by scans and on owned documents elsewhere (the
/// positional `$`, `$pull`, `$elemMatch` inside arrays): both must agree on every document.
fn check_both_evaluations(docs: &[Value], case: &Value) -> Result<(), String> {
    let Some(filter) = case.get("filter").filter(|_| case.get("error").is_none()) else {
        return Ok(());
    };
    let f = nexus::bench_hooks::CompiledFilter::new(&to_doc(filter, "filter"))
        .map_err(|e| format!("filter does not compile: {e}"))?;
    for d in docs {
        let bytes = to_doc(d, "docs").to_vec().map_err(|e| e.to_string())?;
        if f.matches_bytes(&bytes) != f.matches_decoded(&bytes) {
            return Err(format!("on-bytes and decoded evaluation disagree on {d}"));
        }
    }
    Ok(())
}

/// Runs one case on a fresh database; `Err` describes a failure.
fn run_case(docs: &[Value], case: &Value) -> Result<(), String> {
    check_both_evaluations(docs, case)?;
    let db = Database::open_in_memory().map_err(|e| e.to_string())?;
    if !docs.is_empty() {
        let ds = docs
            .iter()
            .map(|d| Document::from(to_doc(d, "docs")))
            .collect();
        db.collection("c")
            .insert_many(ds)
            .map_err(|e| format!("loading docs: {e}"))?;
    }
    let result = run_op(&db, case);
    if let Some(want) = case.get("error") {
        let want = want.as_str().expect("error is a code name");
        return match result {
            Ok(v) => Err(format!("expected {want}, got success: {v}")),
            Err(e) => {
                if code_name(e.code()) != want {
                    return Err(format!("expected {want}, got {}: {e}", code_name(e.code())));
                }
                if let Some(m) = case.get("message").and_then(Value::as_str) {
                    if !e.to_string().contains(m) {
                        return Err(format!("message {:?} lacks {m:?}", e.to_string()));
                    }
                }
                check_after(&db, case)
            }
        };
    }
    let got = result.map_err(|e| format!("failed: {e} (code {})", code_name(e.code())))?;
    if let Some(ids) = case.get("expect_ids") {
        let Bson::Array(docs) = &got else {
            return Err(format!("expect_ids needs a find, got {got}"));
        };
        let got_ids: Vec<Bson> = docs
            .iter()
            .map(|d| match d {
                Bson::Document(d) => d.get("_id").cloned().unwrap_or(Bson::Null),
                other => other.clone(),
            })
            .collect();
        let want = to_bson(ids);
        if Bson::Array(got_ids.clone()) != want {
            return Err(format!(
                "expected ids {want}\n          got          {}",
                Bson::Array(got_ids)
            ));
        }
    }
    if case.get("expect").is_some() {
        let want = expected_value(case);
        if got != want {
            return Err(format!("expected {want}\n          got      {got}"));
        }
    }
    check_after(&db, case)
}

/// Compares the collection's contents (in `_id` order) with `after`, and runs `check`.
fn check_after(db: &Database, case: &Value) -> Result<(), String> {
    let c = db.collection("c");
    if let Some(after) = case.get("after") {
        let projection = if case.get("after_ignores_id").and_then(Value::as_bool) == Some(true) {
            r#"{"projection": {"_id": 0}}"#
        } else {
            "{}"
        };
        let got: Vec<Bson> = c
            .find(
                &BsonDocument::new(),
                FindOptions::from_json(projection).unwrap(),
            )
            .map_err(|e| e.to_string())?
            .map(|d| Bson::Document(d.unwrap().into_bson()))
            .collect();
        let want = to_bson(after);
        if Bson::Array(got.clone()) != want {
            return Err(format!(
                "collection afterwards: expected {want}\n          got      {}",
                Bson::Array(got)
            ));
        }
    }
    if let Some(check) = case.get("check") {
        let n = c
            .count(&to_doc(&check["filter"], "check.filter"))
            .map_err(|e| e.to_string())?;
        let want = check["count"].as_u64().expect("check.count");
        if n != want {
            return Err(format!(
                "check {}: expected count {want}, got {n}",
                check["filter"]
            ));
        }
    }
    Ok(())
}

#[test]
fn conformance_suite() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(conformance_dir())
        .expect("tests/conformance exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no conformance files");
    let mut total = 0;
    let mut failures = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let groups: Vec<Value> = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: malformed JSON: {e}", file.display()));
        let fname = file.file_name().unwrap().to_string_lossy().into_owned();
        for g in &groups {
            let docs = g["docs"].as_array().cloned().unwrap_or_default();
            let gname = g["group"].as_str().unwrap_or("?");
            for case in g["cases"].as_array().expect("cases is an array") {
                total += 1;
                let name = case["name"].as_str().unwrap_or("?");
                if let Err(why) = run_case(&docs, case) {
                    failures.push(format!("{fname} / {gname} / {name}:\n          {why}"));
                }
            }
        }
    }
    for f in &failures {
        eprintln!("FAIL {f}");
    }
    eprintln!(
        "conformance: {total} cases in {} files, {} failed",
        files.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} conformance cases failed",
        failures.len()
    );
    assert!(
        total >= MIN_CASES,
        "the conformance suite has {total} cases, fewer than {MIN_CASES}"
    );
}
