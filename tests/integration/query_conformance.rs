//! The query-language conformance suite: every case of every `tests/conformance/*.json`
//! file, run through the Rust API on a fresh in-memory database. The same files are run
//! through the C ABI (`tests/c/conformance.c`) and the Go binding
//! (`bindings/go/conformance_test.go`); `tests/conformance/README.md` describes the format.
//!
//! Results are compared exactly: BSON types (int32 / int64 / double), field order and
//! document order all count.
//!
//! `conformance_suite_encrypted_file` runs every case again on a fresh encrypted database
//! file (#20): the documents are loaded, the database closed (a checkpoint: its pages are
//! written sealed) and reopened with the key, so the operation reads through decryption, and
//! a case's collection afterwards (`after`, `check`) is compared after another close and
//! reopen. A file's collection order is insertion order, not `_id` order: `after` is read
//! sorted by `_id` there.
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // test arithmetic on small values

use crate::common;

use bson::{Bson, Document as BsonDocument};
use nexus::{
    AggregateOptions, Database, Document, FindOneAndOptions, FindOptions, InsertManyOptions,
    ModifyOptions, OpenOptions, StorageEngine, UpdateModifications, UpdateOptions, WriteModel,
};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The suite must not shrink below the acceptance threshold unnoticed.
const MIN_CASES: usize = 300;

fn conformance_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance")
}

/// The suite's files, sorted (at least one).
fn conformance_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(conformance_dir())
        .expect("tests/conformance exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no conformance files");
    files
}

/// Every case of the suite: "file / group / case" for messages, the group's documents, the
/// case.
fn all_cases() -> Vec<(String, Vec<Value>, Value)> {
    let mut out = Vec::new();
    for file in conformance_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let groups: Vec<Value> = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: malformed JSON: {e}", file.display()));
        let fname = file.file_name().unwrap().to_string_lossy().into_owned();
        for g in &groups {
            let docs = g["docs"].as_array().cloned().unwrap_or_default();
            let gname = g["group"].as_str().unwrap_or("?");
            for case in g["cases"].as_array().expect("cases is an array") {
                let name = case["name"].as_str().unwrap_or("?");
                // The group's other collections travel with each case.
                let mut case = case.clone();
                if let Some(colls) = g.get("collections") {
                    case["collections"] = colls.clone();
                }
                out.push((format!("{fname} / {gname} / {name}"), docs.clone(), case));
            }
        }
    }
    out
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

/// An update argument: an object, or an array of stages (a pipeline).
fn update_arg(case: &Value) -> UpdateModifications {
    match &case["update"] {
        Value::Array(stages) => {
            UpdateModifications::Pipeline(stages.iter().map(|s| to_doc(s, "stage")).collect())
        }
        other => UpdateModifications::Document(to_doc(other, "update")),
    }
}

/// A result's JSON text as a comparable value, without the `errmsg` of its `writeErrors`
/// (the suite compares their `index` and `code`; messages are this library's own).
fn result_value(json: &str) -> Bson {
    let mut v: Value = serde_json::from_str(json).expect("results are JSON");
    if let Some(Value::Array(errors)) = v.get_mut("writeErrors") {
        for e in errors {
            if let Some(m) = e.as_object_mut() {
                m.remove("errmsg");
            }
        }
    }
    to_bson(&v)
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
        "update_one" | "update_many" | "replace_one" => {
            let opts = ModifyOptions::from_json(options_text.as_deref())?;
            let r = match op {
                "update_one" => c.update_one(&filter, update_arg(case), opts)?,
                "update_many" => c.update_many(&filter, update_arg(case), opts)?,
                _ => c.replace_one(&filter, &opt_doc(case, "replacement"), opts)?,
            };
            result_value(&r.to_json())
        }
        "insert_many" => {
            let opts = InsertManyOptions::from_json(options_text.as_deref())?;
            let docs = case["documents"]
                .as_array()
                .expect("documents is an array")
                .iter()
                .map(|d| Document::from(to_doc(d, "documents")))
                .collect();
            result_value(&c.insert_many_with(docs, opts)?.to_json())
        }
        "bulk_write" => {
            let opts = InsertManyOptions::from_json(options_text.as_deref())?;
            let models = WriteModel::list_from_json(&case["operations"].to_string())?;
            result_value(&c.bulk_write(models, opts)?.to_json())
        }
        "find_one_and_update" | "find_one_and_delete" => {
            let opts = FindOneAndOptions::from_json(options_text.as_deref())?;
            let got = if op == "find_one_and_update" {
                c.find_one_and_update_with(&filter, update_arg(case), opts)?
            } else {
                c.find_one_and_delete(&filter, opts)?
            };
            got.map_or(Bson::Null, |d| Bson::Document(d.into_bson()))
        }
        "aggregate" => {
            let opts = AggregateOptions::from_json(options_text.as_deref())?;
            let docs = c
                .aggregate_json(&case["pipeline"].to_string(), opts)?
                .map(|d| d.map(|d| Bson::Document(d.into_bson())))
                .collect::<nexus::Result<Vec<_>>>()?;
            Bson::Array(docs)
        }
        other => panic!("unknown op {other}"),
    })
}

/// Normalizes integers for number-only results (counts, update counters).
fn expected_value(case: &Value) -> Bson {
    let e = &case["expect"];
    match case["op"].as_str().or(Some("find")) {
        Some("count") | Some("delete") => Bson::Int64(e.as_i64().expect("expect is a number")),
        Some("update_one" | "update_many" | "replace_one" | "insert_many" | "bulk_write") => {
            result_value(&e.to_string())
        }
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

/// Loads a group's other collections (`collections`: `[{"name", "docs"}]`).
fn load_collections(db: &Database, case: &Value) -> Result<(), String> {
    for coll in case["collections"].as_array().into_iter().flatten() {
        let name = coll["name"].as_str().expect("collections[].name");
        let ds: Vec<Document> = coll["docs"]
            .as_array()
            .expect("collections[].docs")
            .iter()
            .map(|d| Document::from(to_doc(d, "collections[].docs")))
            .collect();
        if !ds.is_empty() {
            db.collection(name)
                .insert_many(ds)
                .map_err(|e| format!("loading collection {name}: {e}"))?;
        }
    }
    Ok(())
}

/// Where a case's fresh database lives.
enum Store {
    /// In memory.
    Memory,
    /// A new file in `dir` per case, encrypted to `key`; `cases` counts the files made.
    EncryptedFile {
        dir: tempfile::TempDir,
        key: nexus::crypto::PrivatePem,
        cases: usize,
    },
}

impl Store {
    fn encrypted_file() -> Store {
        Store::EncryptedFile {
            dir: tempfile::tempdir().expect("a temporary directory"),
            key: common::new_key(),
            cases: 0,
        }
    }

    /// The options of an encrypted file (`sync: off`: the suite is about answers, the crash
    /// tests about durability; closing still checkpoints every page to the file).
    fn options(key: &nexus::crypto::PrivatePem) -> OpenOptions {
        OpenOptions {
            storage: Some(StorageEngine::Wasp),
            encryption_key: Some(key.clone()),
            sync: nexus::SyncMode::Off,
            ..OpenOptions::default()
        }
    }

    /// A fresh, empty database.
    fn fresh(&mut self) -> Result<Database, String> {
        match self {
            Store::Memory => Database::open_in_memory().map_err(|e| e.to_string()),
            Store::EncryptedFile { dir, key, cases } => {
                // The last case's files go (the directory would hold hundreds otherwise).
                let last = dir.path().join(format!("case{cases}.db"));
                let _ = std::fs::remove_file(last.with_extension("wasp"));
                let _ = std::fs::remove_file(&last);
                *cases += 1;
                let path = dir.path().join(format!("case{cases}.db"));
                let db = Database::open(&path, Self::options(key))
                    .map_err(|e| format!("create the encrypted file: {e}"))?;
                let st = db.stats().map_err(|e| e.to_string())?;
                if st["storage"]["encrypted"] != true {
                    return Err(format!("the case's file is not encrypted: {st}"));
                }
                Ok(db)
            }
        }
    }

    /// A file database closed (checkpointed) and opened again with the key; in memory the
    /// same database.
    fn reopen(&self, db: Database) -> Result<Database, String> {
        match self {
            Store::Memory => Ok(db),
            Store::EncryptedFile { dir, key, cases } => {
                db.close().map_err(|e| format!("close: {e}"))?;
                let path = dir.path().join(format!("case{cases}.db"));
                Database::open(&path, Self::options(key)).map_err(|e| format!("reopen: {e}"))
            }
        }
    }
}

/// Runs one case on a fresh database; `Err` describes a failure.
fn run_case(docs: &[Value], case: &Value) -> Result<(), String> {
    run_case_in(&mut Store::Memory, docs, case)
}

/// Runs one case on a fresh database of `store`; `Err` describes a failure.
fn run_case_in(store: &mut Store, docs: &[Value], case: &Value) -> Result<(), String> {
    check_both_evaluations(docs, case)?;
    let db = store.fresh()?;
    load_collections(&db, case)?;
    if !docs.is_empty() {
        let ds = docs
            .iter()
            .map(|d| Document::from(to_doc(d, "docs")))
            .collect();
        db.collection("c")
            .insert_many(ds)
            .map_err(|e| format!("loading docs: {e}"))?;
    }
    let db = store.reopen(db)?;
    let result = run_op(&db, case);
    // What the operation wrote, read back from the file.
    let db = if case.get("after").is_some() || case.get("check").is_some() {
        store.reopen(db)?
    } else {
        db
    };
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
                check_after_in(store, &db, case)
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
    check_after_in(store, &db, case)
}

/// Compares the collection's contents (in `_id` order) with `after`, and runs `check`. A
/// file's collection order is the order the documents were inserted (README: an in-memory
/// database's is `_id` order), so on a file of `store` the contents are read sorted by `_id`.
fn check_after_in(store: &Store, db: &Database, case: &Value) -> Result<(), String> {
    let c = db.collection(
        case.get("after_collection")
            .and_then(Value::as_str)
            .unwrap_or("c"),
    );
    if let Some(after) = case.get("after") {
        let mut options = serde_json::Map::new();
        if case.get("after_ignores_id").and_then(Value::as_bool) == Some(true) {
            options.insert("projection".into(), serde_json::json!({"_id": 0}));
        }
        if matches!(store, Store::EncryptedFile { .. }) {
            options.insert("sort".into(), serde_json::json!({"_id": 1}));
        }
        let projection = Value::Object(options).to_string();
        let got: Vec<Bson> = c
            .find(
                &BsonDocument::new(),
                FindOptions::from_json(&projection).unwrap(),
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
    let cases = all_cases();
    let total = cases.len();
    let mut failures = Vec::new();
    for (label, docs, case) in &cases {
        if let Err(why) = run_case(docs, case) {
            failures.push(format!("{label}:\n          {why}"));
        }
    }
    for f in &failures {
        eprintln!("FAIL {f}");
    }
    eprintln!(
        "conformance: {total} cases in {} files, {} failed",
        conformance_files().len(),
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

/// #20: every case on a fresh encrypted database file gives exactly the expected result.
#[test]
fn conformance_suite_encrypted_file() {
    if !common::encrypted_tests_run("conformance_suite_encrypted_file") {
        return;
    }
    let started = std::time::Instant::now();
    let cases = all_cases();
    let total = cases.len();
    let mut store = Store::encrypted_file();
    let mut failures = Vec::new();
    for (label, docs, case) in &cases {
        if let Err(why) = run_case_in(&mut store, docs, case) {
            failures.push(format!("{label}:\n          {why}"));
        }
    }
    for f in &failures {
        eprintln!("FAIL {f}");
    }
    eprintln!(
        "conformance on encrypted files: {total} cases, {} failed, {:?}",
        failures.len(),
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} conformance cases failed on an encrypted file",
        failures.len()
    );
    assert!(total >= MIN_CASES, "only {total} cases");
}

/// The field paths a filter (or sort) names, in order of appearance, without operators.
fn paths_of(v: &Value, out: &mut Vec<String>) {
    let Value::Object(m) = v else { return };
    for (k, sub) in m {
        if let Some(op) = k.strip_prefix('$') {
            if matches!(op, "and" | "or" | "nor") {
                for clause in sub.as_array().into_iter().flatten() {
                    paths_of(clause, out);
                }
            }
        } else if !out.contains(k) {
            out.push(k.clone());
        }
    }
}

/// Creates the indexes a case's filter and sort could use: one per path, ascending, and one
/// compound index over the filter's paths and one over the sort (with its directions).
/// Indexes the documents cannot have (parallel arrays) are skipped.
fn create_indexes_for(db: &Database, case: &Value) -> usize {
    let c = db.collection("c");
    let mut paths = Vec::new();
    if let Some(f) = case.get("filter") {
        paths_of(f, &mut paths);
    }
    let mut sort = case.get("options").and_then(|o| o.get("sort")).cloned();
    // An aggregation's leading $match and the $sort right after it: what find serves.
    if let Some(stages) = case.get("pipeline").and_then(Value::as_array) {
        let mut rest = stages.iter();
        let mut next = rest.next();
        if let Some(m) = next.and_then(|s| s.get("$match")) {
            paths_of(m, &mut paths);
            next = rest.next();
        }
        if let Some(s) = next.and_then(|s| s.get("$sort")) {
            sort = Some(s.clone());
        }
    }
    let mut patterns: Vec<BsonDocument> = paths
        .iter()
        .filter(|p| p.as_str() != "_id")
        .map(|p| bson::doc! { p.clone(): 1 })
        .collect();
    let non_id: Vec<&String> = paths.iter().filter(|p| p.as_str() != "_id").collect();
    if non_id.len() > 1 {
        patterns.push(
            non_id
                .iter()
                .map(|p| ((*p).clone(), Bson::Int32(1)))
                .collect(),
        );
    }
    if let Some(Value::Object(s)) = &sort {
        let pat: BsonDocument = s
            .iter()
            .map(|(k, v)| (k.clone(), Bson::Int32(v.as_i64().unwrap_or(1) as i32)))
            .collect();
        if !pat.contains_key("_id") {
            patterns.push(pat);
        }
    }
    let mut made = 0;
    for p in patterns {
        // Paths an erroneous case names may not be valid index keys either; documents may
        // hold parallel arrays; a sort may repeat the filter's pattern: those are skipped.
        if c.create_index(&p, &BsonDocument::new()).is_ok() {
            made += 1;
        }
    }
    made
}

/// Every document as text, sorted.
fn ids_sorted(v: &Bson) -> Vec<String> {
    let Bson::Array(items) = v else {
        return Vec::new();
    };
    let mut all: Vec<String> = items.iter().map(|d| format!("{d:?}")).collect();
    all.sort();
    all
}

/// Replaces every date and timestamp with a fixed one of the same type.
fn without_clock(v: Bson) -> Bson {
    match v {
        Bson::DateTime(_) => Bson::DateTime(bson::DateTime::from_millis(0)),
        Bson::Timestamp(_) => Bson::Timestamp(bson::Timestamp {
            time: 0,
            increment: 0,
        }),
        Bson::Array(items) => Bson::Array(items.into_iter().map(without_clock).collect()),
        Bson::Document(d) => {
            Bson::Document(d.into_iter().map(|(k, v)| (k, without_clock(v))).collect())
        }
        other => other,
    }
}

fn ids_of(v: &Bson) -> Vec<String> {
    let Bson::Array(items) = v else {
        return Vec::new();
    };
    items
        .iter()
        .map(|d| match d {
            Bson::Document(d) => format!("{:?}", d.get("_id")),
            other => format!("{other:?}"),
        })
        .collect()
}

/// One case with indexes on everything it filters and sorts by (made before the documents
/// are loaded when `before` is set, else built over them), compared with the same case
/// without indexes. A `find` without a sort may return its documents in another order (the
/// index's), so those compare as sets, and with a skip or limit the indexed answer must be
/// as many documents drawn from the unindexed full answer. Everything else compares exactly.
/// Returns whether the indexed run used an index.
fn run_case_both_ways(docs: &[Value], case: &Value, before: bool) -> Result<bool, String> {
    let load = |db: &Database| -> Result<(), String> {
        load_collections(db, case)?;
        if docs.is_empty() {
            return Ok(());
        }
        let ds = docs
            .iter()
            .map(|d| Document::from(to_doc(d, "docs")))
            .collect();
        db.collection("c")
            .insert_many(ds)
            .map(|_| ())
            .map_err(|e| format!("loading docs: {e}"))
    };
    let plain = Database::open_in_memory().map_err(|e| e.to_string())?;
    load(&plain)?;
    let indexed = Database::open_in_memory().map_err(|e| e.to_string())?;
    if before {
        create_indexes_for(&indexed, case);
        load(&indexed)?;
    } else {
        load(&indexed)?;
        create_indexes_for(&indexed, case);
    }
    let op = case["op"].as_str().unwrap_or("find");
    let mut used = false;
    if case.get("error").is_none() {
        let opts = case
            .get("options")
            .filter(|_| op == "find")
            .map(|o| FindOptions::from_json(&o.to_string()).unwrap())
            .unwrap_or_default();
        if let Ok(plan) = indexed
            .collection("c")
            .explain(&opt_doc(case, "filter"), opts)
        {
            used = format!("{plan}").contains("IXSCAN");
        }
        if op == "aggregate" {
            let explain = AggregateOptions {
                explain: true,
                ..AggregateOptions::default()
            };
            used = indexed
                .collection("c")
                .aggregate_json(&case["pipeline"].to_string(), explain)
                .ok()
                .and_then(|mut cur| cur.next())
                .and_then(Result::ok)
                .is_some_and(|plan| plan.to_json().contains("IXSCAN"));
        }
    }
    let a = run_op(&plain, case);
    let b = run_op(&indexed, case);
    match (&a, &b) {
        (Err(x), Err(y)) if x.code() == y.code() => {}
        // A pipeline without a $sort may see its input in index order.
        (Ok(x), Ok(y))
            if op == "aggregate"
                && !case["pipeline"].to_string().contains("\"$sort")
                && ids_sorted(x) == ids_sorted(y) => {}
        (Ok(x), Ok(y)) => {
            let options = case.get("options");
            let sorted = options.and_then(|o| o.get("sort")).is_some();
            let windowed =
                options.is_some_and(|o| o.get("skip").is_some() || o.get("limit").is_some());
            if op != "find" || sorted {
                if x != y {
                    return Err(format!("without index {x}\n          with index   {y}"));
                }
            } else if !windowed {
                let (mut xi, mut yi) = (ids_of(x), ids_of(y));
                xi.sort();
                yi.sort();
                if xi != yi {
                    return Err(format!("without index {x}\n          with index   {y}"));
                }
            } else {
                let mut full_case = case.clone();
                if let Some(o) = full_case.get_mut("options").and_then(Value::as_object_mut) {
                    o.remove("skip");
                    o.remove("limit");
                }
                let full = ids_of(&run_op(&plain, &full_case).map_err(|e| e.to_string())?);
                let yi = ids_of(y);
                if ids_of(x).len() != yi.len() || yi.iter().any(|id| !full.contains(id)) {
                    return Err(format!("without index {x}\n          with index   {y}"));
                }
            }
        }
        _ => return Err(format!("without index {a:?}\n          with index   {b:?}")),
    }
    if case.get("error").is_none() {
        // Upserts generate their `_id`s: then compare without them.
        let flag = |v: Option<&Value>| v.and_then(Value::as_bool) == Some(true);
        let upsert = flag(case.get("upsert"))
            || flag(case.get("options").and_then(|o| o.get("upsert")))
            || flag(case.get("after_ignores_id"));
        let all = if upsert {
            serde_json::json!({"filter": {}, "options": {"projection": {"_id": 0}}})
        } else {
            serde_json::json!({"filter": {}})
        };
        // `$currentDate` writes each collection's own clock reading, which may differ by a
        // tick between the two runs: compare those fields by type, not value.
        let clocked = case
            .get("update")
            .is_some_and(|u| u.to_string().contains("$currentDate"));
        let after = |db: &Database| {
            run_op(db, &all).map(|v| ids_sorted(&if clocked { without_clock(v) } else { v }))
        };
        let (plain_after, indexed_after) = (after(&plain), after(&indexed));
        if plain_after.as_ref().ok() != indexed_after.as_ref().ok() {
            return Err("the collections differ afterwards".into());
        }
    }
    indexed
        .check()
        .map_err(|e| format!("check after the case: {e}"))?;
    Ok(used)
}

/// Acceptance of the indexes issue: every conformance case gives the same answer with
/// indexes on the fields it uses as without, and the indexes stay consistent.
#[test]
fn conformance_suite_with_indexes() {
    let (mut used, mut failures) = (0, Vec::new());
    let cases = all_cases();
    let total = cases.len();
    for (n, (label, docs, case)) in cases.iter().enumerate() {
        match run_case_both_ways(docs, case, n % 2 == 1) {
            Ok(u) => used += usize::from(u),
            Err(why) => failures.push(format!("{label}:\n          {why}")),
        }
    }
    for f in &failures {
        eprintln!("FAIL {f}");
    }
    eprintln!(
        "conformance with indexes: {total} cases, {used} planned on an index, {} failed",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} cases differ with indexes",
        failures.len()
    );
    assert!(used >= 100, "only {used} cases used an index");
}
