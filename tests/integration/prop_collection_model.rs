//! Model-based property test of a collection through the public API: generated inserts
//! (one and many, duplicates included), replaces, updates and deletes by `_id` and by
//! filter, with documents small, large and past a page (overflow), in transactions that
//! commit or roll back and outside them, with checkpoints and close/reopen; after every step
//! the writer's view (its transaction's when one is open) and a second connection's view (the
//! committed state: snapshot isolation, the shared document cache) must equal a model map.
//! Runs on the harness's engine (`NEXUSLITE_STORAGE`, see tests/common).

use crate::common;

use bson::{doc, Bson, Document as BsonDocument};
use nexus::{Database, Document, DocumentId, Error, FindOptions, OpenOptions, UpdateOptions};
use proptest::prelude::*;
use proptest::test_runner::{TestError, TestRunner};
use std::collections::BTreeMap;
use std::path::Path;

/// A document's body besides its `_id`: a number and a padding string of `pad` copies of
/// `fill` (past 8 KiB it no longer fits a page).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Body {
    n: i32,
    pad: usize,
    fill: char,
}

impl Body {
    fn to_doc(self, id: i32) -> BsonDocument {
        doc! {"_id": id, "n": self.n, "pad": self.fill.to_string().repeat(self.pad)}
    }
}

type Model = BTreeMap<i32, Body>;

#[derive(Debug, Clone)]
enum Op {
    Insert(i32, Body),
    /// Ordered: stops at the first duplicate, keeping those inserted before it.
    InsertMany(Vec<(i32, Body)>),
    /// `replace` by `_id` (NotFound when absent).
    Replace(i32, Body),
    /// `update_one({_id}, {$inc: {n}})`.
    Inc(i32, i32),
    /// `update_many({n: {$lt: below}}, {$set: {pad}})`.
    SetPadBelow {
        below: i32,
        pad: usize,
        fill: char,
    },
    Delete(i32),
    /// `delete({n: {$gt: above}}, multi)`.
    DeleteAbove(i32),
    Begin,
    Commit,
    Rollback,
    Checkpoint,
    /// Closes both connections (the writer's open transaction rolls back) and reopens.
    Reopen,
}

fn body() -> impl Strategy<Value = Body> {
    let pad = prop_oneof![10 => 0usize..200, 3 => 500usize..3_000, 1 => 9_000usize..30_000];
    (-20i32..20, pad, prop::sample::select(vec!['a', 'b', 'z'])).prop_map(|(n, pad, fill)| Body {
        n,
        pad,
        fill,
    })
}

fn op() -> impl Strategy<Value = Op> {
    let id = || 0i32..40;
    prop_oneof![
        10 => (id(), body()).prop_map(|(i, b)| Op::Insert(i, b)),
        2 => prop::collection::vec((id(), body()), 1..5).prop_map(Op::InsertMany),
        4 => (id(), body()).prop_map(|(i, b)| Op::Replace(i, b)),
        4 => (id(), -3i32..4).prop_map(|(i, by)| Op::Inc(i, by)),
        1 => (-20i32..20, 0usize..2_000, prop::sample::select(vec!['p', 'q']))
            .prop_map(|(below, pad, fill)| Op::SetPadBelow { below, pad, fill }),
        5 => id().prop_map(Op::Delete),
        1 => (0i32..25).prop_map(Op::DeleteAbove),
        3 => Just(Op::Begin),
        2 => Just(Op::Commit),
        2 => Just(Op::Rollback),
        1 => Just(Op::Checkpoint),
        1 => Just(Op::Reopen),
    ]
}

fn open(path: &Path) -> Database {
    // Small automatic checkpoints: commits also fold the log now and then.
    let options = OpenOptions {
        checkpoint_log_bytes: Some(256 * 1024),
        page_cache_bytes: Some(512 * 1024),
        ..common::open_options()
    };
    Database::open(path, options).expect("open")
}

fn id(i: i32) -> DocumentId {
    DocumentId::new(Bson::Int32(i)).expect("an id")
}

/// A document in a failure message: `_id:n:pad length x pad character`.
fn brief(d: &BsonDocument) -> String {
    let pad = d.get_str("pad").unwrap_or("");
    let first = pad.chars().next().unwrap_or('-');
    format!(
        "{}:{}:{}x{first}",
        d.get("_id").unwrap(),
        d.get("n").unwrap(),
        pad.len()
    )
}

/// What `db` shows must be `model`: every document in `_id` order, the count, a get by `_id`
/// of each (the cache's path) and of a few absent ids.
fn compare(db: &Database, model: &Model, ctx: &str) -> Result<(), TestCaseError> {
    let c = db.collection("m");
    let opts = FindOptions {
        sort: Some(doc! {"_id": 1}),
        ..FindOptions::default()
    };
    let got: Vec<BsonDocument> = match c.find(&doc! {}, opts) {
        Ok(cursor) => cursor.map(|d| d.expect("next").into_bson()).collect(),
        // The collection exists from the first insert on.
        Err(Error::NoCollection(_)) => Vec::new(),
        Err(e) => panic!("{ctx}: find: {e}"),
    };
    let want: Vec<BsonDocument> = model.iter().map(|(i, b)| b.to_doc(*i)).collect();
    let summary = |docs: &[BsonDocument]| -> Vec<String> { docs.iter().map(brief).collect() };
    prop_assert!(
        got == want,
        "{}: documents differ\n got  {:?}\n want {:?}",
        ctx,
        summary(&got),
        summary(&want)
    );
    let count = c.count(&doc! {}).or_else(|e| match e {
        Error::NoCollection(_) => Ok(0),
        e => Err(e),
    });
    prop_assert_eq!(count.expect("count"), model.len() as u64, "{}: count", ctx);
    for i in (0..40).step_by(3).chain(model.keys().copied()) {
        let got = match c.get(&id(i)) {
            Ok(d) => d.map(Document::into_bson),
            Err(Error::NoCollection(_)) => None,
            Err(e) => panic!("{ctx}: get {i}: {e}"),
        };
        let want = model.get(&i).map(|b| b.to_doc(i));
        prop_assert!(
            got == want,
            "{}: get {}: got {:?}, want {:?}",
            ctx,
            i,
            got.as_ref().map(brief),
            want.as_ref().map(brief)
        );
    }
    Ok(())
}

fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.db");
    let mut db = open(&path);
    let mut reader = open(&path);
    let mut committed = Model::new();
    // The writer's open transaction: what it has staged.
    let mut staged: Option<Model> = None;
    for (step, op) in ops.iter().enumerate() {
        let ctx = format!("step {step} ({op:?})");
        let c = db.collection("m");
        // The state this step changes: the transaction's, or the committed one (autocommit).
        let in_txn = staged.is_some();
        let model = staged.as_mut().unwrap_or(&mut committed);
        match op {
            Op::Insert(i, b) => {
                let r = c.insert(Document::from(b.to_doc(*i)));
                if model.contains_key(i) {
                    prop_assert!(matches!(r, Err(Error::DuplicateKey(_))), "{}: {:?}", ctx, r);
                } else {
                    r.expect("insert");
                    model.insert(*i, *b);
                }
            }
            Op::InsertMany(docs) => {
                let r = c
                    .insert_many_with(
                        docs.iter()
                            .map(|(i, b)| Document::from(b.to_doc(*i)))
                            .collect(),
                        Default::default(),
                    )
                    .expect("insert_many");
                let mut inserted = 0;
                for (i, b) in docs {
                    if model.contains_key(i) {
                        break;
                    }
                    model.insert(*i, *b);
                    inserted += 1;
                }
                prop_assert_eq!(r.inserted_ids.len(), inserted, "{}", ctx);
                prop_assert_eq!(
                    r.write_errors.len(),
                    usize::from(inserted < docs.len()),
                    "{}",
                    ctx
                );
            }
            Op::Replace(i, b) => {
                let r = c.replace(&id(*i), Document::from(b.to_doc(*i)));
                match model.get_mut(i) {
                    Some(old) => {
                        r.expect("replace");
                        *old = *b;
                    }
                    None => prop_assert!(
                        matches!(r, Err(Error::NotFound(_) | Error::NoCollection(_))),
                        "{}: {:?}",
                        ctx,
                        r
                    ),
                }
            }
            Op::Inc(i, by) => {
                let r = c.update(
                    &doc! {"_id": *i},
                    &doc! {"$inc": {"n": *by}},
                    UpdateOptions::default(),
                );
                let matched = match r {
                    Ok(r) => r.matched,
                    Err(Error::NoCollection(_)) => 0,
                    Err(e) => panic!("{ctx}: {e}"),
                };
                prop_assert_eq!(matched, u64::from(model.contains_key(i)), "{}", ctx);
                if let Some(b) = model.get_mut(i) {
                    b.n += by;
                }
            }
            Op::SetPadBelow { below, pad, fill } => {
                let update = doc! {"$set": {"pad": fill.to_string().repeat(*pad)}};
                let r = c.update(
                    &doc! {"n": {"$lt": *below}},
                    &update,
                    UpdateOptions {
                        multi: true,
                        ..Default::default()
                    },
                );
                let matched = match r {
                    Ok(r) => r.matched,
                    Err(Error::NoCollection(_)) => 0,
                    Err(e) => panic!("{ctx}: {e}"),
                };
                let mut want = 0;
                for b in model.values_mut().filter(|b| b.n < *below) {
                    (b.pad, b.fill) = (*pad, *fill);
                    want += 1;
                }
                prop_assert_eq!(matched, want, "{}", ctx);
            }
            Op::Delete(i) => {
                let existed = match c.delete_by_id(&id(*i)) {
                    Ok(e) => e,
                    Err(Error::NoCollection(_)) => false,
                    Err(e) => panic!("{ctx}: {e}"),
                };
                prop_assert_eq!(existed, model.remove(i).is_some(), "{}", ctx);
            }
            Op::DeleteAbove(above) => {
                let n = match c.delete(&doc! {"n": {"$gt": *above}}, true) {
                    Ok(n) => n,
                    Err(Error::NoCollection(_)) => 0,
                    Err(e) => panic!("{ctx}: {e}"),
                };
                let before = model.len();
                model.retain(|_, b| b.n <= *above);
                prop_assert_eq!(n, (before - model.len()) as u64, "{}", ctx);
            }
            Op::Begin => {
                let r = db.begin();
                if in_txn {
                    prop_assert!(matches!(r, Err(Error::Txn(_))), "{}: {:?}", ctx, r);
                } else {
                    r.expect("begin");
                    staged = Some(committed.clone());
                }
            }
            Op::Commit | Op::Rollback => {
                let r = if matches!(op, Op::Commit) {
                    db.commit()
                } else {
                    db.rollback()
                };
                match staged.take() {
                    Some(s) => {
                        r.expect("commit/rollback");
                        if matches!(op, Op::Commit) {
                            committed = s;
                        }
                    }
                    None => prop_assert!(matches!(r, Err(Error::Txn(_))), "{}: {:?}", ctx, r),
                }
            }
            Op::Checkpoint => {
                let r = db.checkpoint();
                if in_txn {
                    prop_assert!(matches!(r, Err(Error::Txn(_))), "{}: {:?}", ctx, r);
                } else {
                    r.expect("checkpoint");
                }
            }
            Op::Reopen => {
                staged = None;
                reader.close().expect("close the reader");
                db.close().expect("close");
                db = open(&path);
                reader = open(&path);
            }
        }
        compare(&db, staged.as_ref().unwrap_or(&committed), &ctx)?;
        compare(&reader, &committed, &format!("{ctx}, second connection"))?;
    }
    if let Some(s) = staged.take() {
        db.commit().expect("commit");
        committed = s;
    }
    let report = db.check().expect("integrity check");
    prop_assert_eq!(&report["ok"], &serde_json::json!(true));
    reader.close().expect("close the reader");
    db.close().expect("close");
    compare(&open(&path), &committed, "reopened at the end")
}

#[test]
fn prop_collection_agrees_with_a_model() {
    let mut runner = TestRunner::new(common::prop_config(64, 5));
    let result = runner.run(&prop::collection::vec(op(), 1..120), |ops| run(&ops));
    match result {
        Ok(()) => {}
        Err(TestError::Fail(why, ops)) => panic!("{why}\nminimal failing operations: {ops:#?}"),
        Err(TestError::Abort(why)) => panic!("aborted: {why}"),
    }
}
