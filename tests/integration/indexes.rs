//! Secondary indexes through the Rust API: creation, listing, dropping, uniqueness, the
//! planner's choices (explain), sort served by an index, TTL indexes, transactions and
//! reopening, and a randomized comparison of indexed and unindexed answers.
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // test arithmetic on small values

use crate::common;

use bson::{doc, Bson, Document as BsonDocument};
use nexus::{Database, Document, Error, FindOptions, OpenOptions};

fn d(json: &str) -> Document {
    Document::from_json(json).unwrap()
}

fn ids(db: &Database, coll: &str, filter: &BsonDocument, opts: &str) -> Vec<Bson> {
    db.collection(coll)
        .find(filter, FindOptions::from_json(opts).unwrap())
        .unwrap()
        .map(|r| r.unwrap().get("_id").cloned().unwrap())
        .collect()
}

fn winning_stage(plan: &BsonDocument) -> String {
    format!(
        "{}",
        plan.get_document("queryPlanner")
            .unwrap()
            .get("winningPlan")
            .unwrap()
    )
}

#[test]
fn create_list_drop_and_names() {
    let db = Database::open_in_memory().unwrap();
    let c = db.collection("users");
    c.insert(d(r#"{"_id": 1, "user": {"email": "a@x"}, "age": 3}"#))
        .unwrap();
    assert_eq!(
        c.create_index_json(r#"{"user.email": 1}"#, None).unwrap(),
        "user.email_1"
    );
    assert_eq!(
        c.create_index_json(
            r#"{"age": -1, "user.email": 1}"#,
            Some(r#"{"name": "by_age"}"#)
        )
        .unwrap(),
        "by_age"
    );
    // The same index again: its name, nothing changes.
    assert_eq!(
        c.create_index_json(r#"{"user.email": 1}"#, None).unwrap(),
        "user.email_1"
    );
    // The same name with other keys, or the same keys under another name: refused.
    let e = c
        .create_index_json(r#"{"age": 1}"#, Some(r#"{"name": "by_age"}"#))
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    let e = c
        .create_index_json(r#"{"user.email": 1}"#, Some(r#"{"name": "other"}"#))
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    let list = c.list_indexes().unwrap();
    let names: Vec<&str> = list.iter().map(|i| i.get_str("name").unwrap()).collect();
    assert_eq!(names, ["_id_", "user.email_1", "by_age"]);
    assert_eq!(list[0].get_document("key").unwrap(), &doc! {"_id": 1});
    assert_eq!(list[0].get_i32("v").unwrap(), 2);
    // The _id index is the primary key: asking for it is a no-op.
    assert_eq!(c.create_index(&doc! {"_id": 1}, &doc! {}).unwrap(), "_id_");
    assert_eq!(c.list_indexes().unwrap().len(), 3);
    c.drop_index("by_age").unwrap();
    assert!(matches!(
        c.drop_index("by_age").unwrap_err(),
        Error::NotFound(_)
    ));
    assert!(matches!(
        c.drop_index("_id_").unwrap_err(),
        Error::InvalidArgument(_)
    ));
    c.drop_index("*").unwrap();
    assert_eq!(c.list_indexes().unwrap().len(), 1);
    // Bad patterns and options.
    for (keys, opts) in [
        ("{}", ""),
        (r#"{"a": 2}"#, ""),
        (r#"{"a": "text"}"#, ""),
        (r#"{"a": 1}"#, r#"{"colour": "red"}"#),
        (r#"{"a": 1}"#, r#"{"unique": "yes"}"#),
        (r#"{"a": 1, "b": 1}"#, r#"{"expireAfterSeconds": 5}"#),
        (r#"{"a": 1}"#, r#"{"expireAfterSeconds": -5}"#),
        (r#"{"a": 1}"#, r#"{"name": "x$y"}"#),
        (r#"{"a": 1"#, ""),
    ] {
        assert!(
            c.create_index_json(keys, Some(opts)).is_err(),
            "{keys} {opts} accepted"
        );
    }
    assert!(matches!(
        db.collection("nope").list_indexes().unwrap_err(),
        Error::NoCollection(_)
    ));
    db.check().unwrap();
}

#[test]
fn unique_index_refuses_duplicates_and_writes_nothing() {
    let db = Database::open_in_memory().unwrap();
    let c = db.collection("u");
    c.create_index(&doc! {"email": 1}, &doc! {"unique": true})
        .unwrap();
    c.insert(d(r#"{"_id": 1, "email": "ada@x"}"#)).unwrap();
    c.insert(d(r#"{"_id": 2, "email": "bob@x"}"#)).unwrap();
    let e = c.insert(d(r#"{"_id": 3, "email": "ada@x"}"#)).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::DuplicateKey(_)), "{msg}");
    assert!(msg.contains("email_1") && msg.contains("ada@x"), "{msg}");
    assert_eq!(c.count(&doc! {}).unwrap(), 2);
    // An update that would collide changes nothing; one that keeps its own key is fine.
    let e = c
        .update(
            &doc! {"_id": 2},
            &doc! {"$set": {"email": "ada@x"}},
            Default::default(),
        )
        .unwrap_err();
    assert!(matches!(e, Error::DuplicateKey(_)), "{e}");
    assert_eq!(
        c.find_one(&doc! {"_id": 2}).unwrap().unwrap().get("email"),
        Some(&Bson::from("bob@x"))
    );
    c.update(
        &doc! {"_id": 2},
        &doc! {"$set": {"n": 1}},
        Default::default(),
    )
    .unwrap();
    // insert_many with a duplicate inside: nothing of it is stored.
    let e = c
        .insert_many(vec![
            d(r#"{"_id": 4, "email": "c@x"}"#),
            d(r#"{"_id": 5, "email": "c@x"}"#),
        ])
        .unwrap_err();
    assert!(matches!(e, Error::DuplicateKey(_)), "{e}");
    assert_eq!(c.count(&doc! {}).unwrap(), 2);
    // Missing fields count as null: only one document may lack the field (MongoDB's rule).
    c.insert(d(r#"{"_id": 6}"#)).unwrap();
    assert!(c.insert(d(r#"{"_id": 7}"#)).is_err());
    // A sparse unique index lets any number of documents lack it.
    let s = db.collection("s");
    s.create_index(&doc! {"k": 1}, &doc! {"unique": true, "sparse": true})
        .unwrap();
    s.insert(d(r#"{"_id": 1}"#)).unwrap();
    s.insert(d(r#"{"_id": 2}"#)).unwrap();
    // An expired ephemeral document no longer holds its unique key.
    let e = db.collection("eph");
    e.create_index(&doc! {"k": 1}, &doc! {"unique": true})
        .unwrap();
    e.insert_ttl(d(r#"{"_id": 1, "k": "x"}"#), 1).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    e.insert(d(r#"{"_id": 2, "k": "x"}"#)).unwrap();
    assert!(e.insert(d(r#"{"_id": 3, "k": "x"}"#)).is_err());
    // An insert under an expired document's own `_id` replaces it and its entries (the
    // check below finds no entry left of the old key).
    e.insert_ttl(d(r#"{"_id": 4, "k": "old"}"#), 1).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    e.insert(d(r#"{"_id": 4, "k": "new"}"#)).unwrap();
    assert!(e.insert(d(r#"{"_id": 5, "k": "old"}"#)).is_ok());
    assert!(e.insert(d(r#"{"_id": 6, "k": "new"}"#)).is_err());
    // Building a unique index over duplicates fails and leaves no index behind.
    let e = db
        .collection("s")
        .create_index(&doc! {"x": 1}, &doc! {"unique": true})
        .unwrap_err();
    assert!(matches!(e, Error::DuplicateKey(_)), "{e}");
    assert_eq!(s.list_indexes().unwrap().len(), 2);
    db.check().unwrap();
}

#[test]
fn explain_shows_the_index_and_what_was_examined() {
    let db = Database::open_in_memory().unwrap();
    let c = db.collection("p");
    let docs: Vec<Document> = (0..500)
        .map(|i| {
            d(&format!(
                r#"{{"_id": {i}, "user": {{"email": "u{i}@x", "age": {}}}, "score": {}}}"#,
                i % 50,
                i % 7
            ))
        })
        .collect();
    c.insert_many(docs).unwrap();
    let before = c
        .explain(&doc! {"user.email": "u42@x"}, FindOptions::default())
        .unwrap();
    assert!(winning_stage(&before).contains("COLLSCAN"), "{before}");
    let stats = before.get_document("executionStats").unwrap();
    assert_eq!(stats.get_i64("totalDocsExamined").unwrap(), 500);

    c.create_index(&doc! {"user.email": 1}, &doc! {"unique": true})
        .unwrap();
    c.create_index(&doc! {"user.age": 1, "score": -1}, &doc! {})
        .unwrap();
    let plan = c
        .explain(&doc! {"user.email": "u42@x"}, FindOptions::default())
        .unwrap();
    let w = winning_stage(&plan);
    assert!(w.contains("IXSCAN") && w.contains("user.email_1"), "{plan}");
    let stats = plan.get_document("executionStats").unwrap();
    assert_eq!(stats.get_i64("nReturned").unwrap(), 1);
    assert_eq!(stats.get_i64("totalKeysExamined").unwrap(), 1);
    assert_eq!(stats.get_i64("totalDocsExamined").unwrap(), 1);

    // A range on the compound index's prefix; $in; a sort the index yields.
    let plan = c
        .explain(
            &doc! {"user.age": {"$gte": 10, "$lt": 12}},
            FindOptions::default(),
        )
        .unwrap();
    assert!(
        winning_stage(&plan).contains("user.age_1_score_-1"),
        "{plan}"
    );
    let stats = plan.get_document("executionStats").unwrap();
    assert_eq!(stats.get_i64("nReturned").unwrap(), 20);
    assert_eq!(stats.get_i64("totalDocsExamined").unwrap(), 20);
    // The bounds in words, per key field (MongoDB's indexBounds).
    let ixscan = plan
        .get_document("queryPlanner")
        .and_then(|q| q.get_document("winningPlan"))
        .and_then(|w| w.get_document("inputStage"))
        .unwrap();
    assert_eq!(
        ixscan.get_document("indexBounds").unwrap(),
        &doc! {"user.age": "[10, end of type] AND [start of type, 12)", "score": "[MinKey, MaxKey]"},
        "{plan}"
    );
    let opts =
        FindOptions::from_json(r#"{"sort": {"user.age": 1, "score": -1}, "limit": 5}"#).unwrap();
    let plan = c.explain(&doc! {"user.age": {"$in": [3]}}, opts).unwrap();
    let w = winning_stage(&plan);
    assert!(w.contains("IXSCAN") && !w.contains("SORT"), "{plan}");
    // The results agree with the collection scan (hint $natural).
    let with = ids(
        &db,
        "p",
        &doc! {"user.age": 3},
        r#"{"sort": {"user.age": 1, "score": -1}, "limit": 5}"#,
    );
    let without = ids(
        &db,
        "p",
        &doc! {"user.age": 3},
        r#"{"sort": {"user.age": 1, "score": -1}, "limit": 5, "hint": {"$natural": 1}}"#,
    );
    assert_eq!(with, without);
    assert_eq!(with.len(), 5);
    // Two candidates: the narrower wins, the other is listed as rejected.
    let plan = c
        .explain(
            &doc! {"user.email": "u7@x", "user.age": 7},
            FindOptions::default(),
        )
        .unwrap();
    assert!(winning_stage(&plan).contains("user.email_1"), "{plan}");
    let rejected = plan
        .get_document("queryPlanner")
        .unwrap()
        .get_array("rejectedPlans")
        .unwrap();
    assert_eq!(rejected.len(), 1, "{plan}");
    // hint by name and by pattern; an unknown hint is an error.
    let opts = FindOptions::from_json(r#"{"hint": "user.age_1_score_-1"}"#).unwrap();
    let plan = c.explain(&doc! {"user.email": "u7@x"}, opts).unwrap();
    assert!(
        winning_stage(&plan).contains("user.age_1_score_-1"),
        "{plan}"
    );
    assert_eq!(
        plan.get_document("executionStats")
            .unwrap()
            .get_i64("nReturned")
            .unwrap(),
        1
    );
    let opts = FindOptions::from_json(r#"{"hint": {"nope": 1}}"#).unwrap();
    assert!(c.find(&doc! {}, opts).is_err());
}

/// Candidates whose bounded fields are the same paths and that hold one entry per document
/// are counted once for the lot, and the choice among them is the one full counts gave; a
/// sparse candidate (counted on its own) changes no answer.
/// Regression (found by `prop_indexed_answers_equal_a_collection_scan`): a sort on the
/// leading field of a compound index was taken as served by the index, whose entries with
/// equal sort keys are in the order of its next field; ties must come in `_id` order, as a
/// collection scan gives them.
#[test]
fn a_sort_on_an_index_prefix_keeps_ties_in_id_order() {
    let db = Database::open_in_memory().unwrap();
    let c = db.collection("t");
    c.create_index(&doc! {"c.d": -1, "b": 1}, &doc! {}).unwrap();
    c.insert(Document::from(doc! {"_id": 0, "b": 0})).unwrap();
    c.insert(Document::from(doc! {"_id": 1})).unwrap();
    c.insert(Document::from(doc! {"_id": 2, "c": {"d": 5}, "b": 9}))
        .unwrap();
    c.insert(Document::from(doc! {"_id": 3, "c": {"d": 5}, "b": 1}))
        .unwrap();
    let want = [
        Bson::Int32(2),
        Bson::Int32(3),
        Bson::Int32(0),
        Bson::Int32(1),
    ];
    for (opts, n) in [
        (r#"{"sort": {"c.d": -1}}"#, 4),
        (r#"{"sort": {"c.d": -1}, "hint": "c.d_-1_b_1"}"#, 4),
        (r#"{"sort": {"c.d": -1}, "limit": 3}"#, 3),
        (r#"{"sort": {"c.d": -1}, "hint": {"$natural": 1}}"#, 4),
    ] {
        assert_eq!(ids(&db, "t", &doc! {}, opts), want[..n], "{opts}");
    }
    // The whole index's order still serves a sort without one in memory.
    let opts =
        FindOptions::from_json(r#"{"sort": {"c.d": -1, "b": 1}, "hint": "c.d_-1_b_1"}"#).unwrap();
    let w = winning_stage(&c.explain(&doc! {}, opts).unwrap());
    assert!(w.contains("IXSCAN") && !w.contains("SORT"), "{w}");
    assert_eq!(
        ids(&db, "t", &doc! {}, r#"{"sort": {"c.d": -1, "b": 1}}"#),
        vec![
            Bson::Int32(3),
            Bson::Int32(2),
            Bson::Int32(1),
            Bson::Int32(0)
        ]
    );
}

#[test]
fn candidates_with_the_same_bounded_paths_share_a_count() {
    let db = Database::open_in_memory().unwrap();
    let c = db.collection("g");
    let docs = (0..300)
        .map(|i| {
            let d = if i % 3 == 0 {
                doc! {"_id": i, "a": i % 50, "b": i}
            } else {
                doc! {"_id": i, "b": i}
            };
            Document::from(d)
        })
        .collect();
    c.insert_many(docs).unwrap();
    c.create_index(&doc! {"a": 1, "b": -1}, &doc! {}).unwrap();
    c.create_index(&doc! {"a": 1}, &doc! {}).unwrap();
    let filter = doc! {"a": {"$gte": 10}};
    let plan = c.explain(&filter, FindOptions::default()).unwrap();
    // Equal counts: the tie goes by name, as when each was counted.
    assert!(winning_stage(&plan).contains("\"a_1\""), "{plan}");
    let all = ids(&db, "g", &filter, r#"{"hint": {"$natural": 1}}"#);
    assert_eq!(ids(&db, "g", &filter, "{}").len(), all.len());
    // A sparse index over `a` and `c` (entries only for the documents with either).
    c.create_index(&doc! {"a": 1, "c": 1}, &doc! {"sparse": true})
        .unwrap();
    let plan = c.explain(&filter, FindOptions::default()).unwrap();
    let mut got = ids(&db, "g", &filter, "{}");
    let mut want = all;
    got.sort_by_key(|b| b.as_i32());
    want.sort_by_key(|b| b.as_i32());
    assert_eq!(got, want, "{plan}");
}

#[test]
fn ttl_index_expires_documents_by_date() {
    let db = Database::open_in_memory().unwrap();
    let c = db.collection("sessions");
    let now = bson::DateTime::now().timestamp_millis();
    c.insert(Document::from(
        doc! {"_id": 1, "at": bson::DateTime::from_millis(now - 120_000)},
    ))
    .unwrap();
    c.insert(Document::from(
        doc! {"_id": 2, "at": bson::DateTime::from_millis(now)},
    ))
    .unwrap();
    c.insert(Document::from(doc! {"_id": 3, "at": "not a date"}))
        .unwrap();
    c.insert(Document::from(doc! {"_id": 4, "at": [bson::DateTime::from_millis(now + 900_000), bson::DateTime::from_millis(now - 900_000)]}))
        .unwrap();
    c.create_index(&doc! {"at": 1}, &doc! {"expireAfterSeconds": 60})
        .unwrap();
    let list = c.list_indexes().unwrap();
    assert_eq!(list[1].get_i64("expireAfterSeconds").unwrap(), 60);
    let purged = db.purge_expired().unwrap();
    assert_eq!(purged, 2);
    let left = ids(&db, "sessions", &doc! {}, "{}");
    assert_eq!(left, vec![Bson::Int32(2), Bson::Int32(3)]);
    db.check().unwrap();
}

#[test]
fn indexes_persist_and_roll_back_with_their_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ix.db");
    {
        let db = Database::open(&path, common::open_options()).unwrap();
        let c = db.collection("c");
        c.create_index(&doc! {"k": 1}, &doc! {"unique": true})
            .unwrap();
        for i in 0..100 {
            c.insert(Document::from(doc! {"_id": i, "k": i * 10}))
                .unwrap();
        }
        // A rolled-back transaction leaves neither documents nor entries.
        db.begin().unwrap();
        c.insert(Document::from(doc! {"_id": 1000, "k": 5}))
            .unwrap();
        c.delete(&doc! {"k": 30}, false).unwrap();
        c.create_index(&doc! {"z": 1}, &doc! {}).unwrap();
        db.rollback().unwrap();
        assert_eq!(c.count(&doc! {"k": 5}).unwrap(), 0);
        assert_eq!(c.count(&doc! {"k": 30}).unwrap(), 1);
        assert_eq!(c.list_indexes().unwrap().len(), 2);
        // A failed statement inside a transaction: the transaction goes on without it.
        db.begin().unwrap();
        c.insert(Document::from(doc! {"_id": 2000, "k": 7}))
            .unwrap();
        assert!(c
            .insert(Document::from(doc! {"_id": 2001, "k": 7}))
            .is_err());
        db.commit().unwrap();
        db.close().unwrap();
    }
    let db = Database::open(&path, common::open_options()).unwrap();
    let c = db.collection("c");
    assert_eq!(c.list_indexes().unwrap().len(), 2);
    let plan = c.explain(&doc! {"k": 7}, FindOptions::default()).unwrap();
    assert!(winning_stage(&plan).contains("IXSCAN"), "{plan}");
    assert_eq!(ids(&db, "c", &doc! {"k": 7}, "{}"), vec![Bson::Int32(2000)]);
    let report = db.check().unwrap();
    assert_eq!(report["indexes"][0]["entries"], 101, "{report}");
    // Renaming and dropping the collection carry the indexes along / away.
    db.rename_collection("c", "d").unwrap();
    assert_eq!(db.collection("d").list_indexes().unwrap().len(), 2);
    assert_eq!(ids(&db, "d", &doc! {"k": 7}, "{}"), vec![Bson::Int32(2000)]);
    db.drop_collection("d").unwrap();
    db.collection("d")
        .insert(Document::from(doc! {"_id": 1, "k": 1}))
        .unwrap();
    assert_eq!(db.collection("d").list_indexes().unwrap().len(), 1);
    db.check().unwrap();
}

/// A small deterministic generator (xorshift).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn random_value(r: &mut Rng, depth: u32) -> Bson {
    match r.below(if depth > 0 { 9 } else { 11 }) {
        0 => Bson::Int32(r.below(10) as i32 - 3),
        1 => Bson::Int64(r.below(10) as i64 - 3),
        2 => Bson::Double(r.below(20) as f64 / 2.0 - 3.0),
        3 => Bson::String(["a", "b", "ab", "", "B"][r.below(5) as usize].into()),
        4 => Bson::Null,
        5 => Bson::Boolean(r.below(2) == 0),
        6 => Bson::DateTime(bson::DateTime::from_millis(r.below(5) as i64 * 1000)),
        7 => Bson::Int32(r.below(4) as i32),
        8 => Bson::String(["x", "y"][r.below(2) as usize].into()),
        9 => Bson::Array(
            (0..r.below(4))
                .map(|_| random_value(r, depth + 1))
                .collect(),
        ),
        _ => Bson::Document(doc! {"d": random_value(r, depth + 1)}),
    }
}

fn random_doc(r: &mut Rng, id: i32) -> BsonDocument {
    let mut doc = doc! {"_id": id};
    for f in ["a", "b", "c"] {
        if r.below(6) != 0 {
            doc.insert(f, random_value(r, 0));
        }
    }
    doc
}

fn random_cond(r: &mut Rng) -> Bson {
    let v = random_value(r, 1);
    match r.below(8) {
        0 => v,
        1 => Bson::Document(doc! {"$gt": v}),
        2 => Bson::Document(doc! {"$lte": v}),
        3 => Bson::Document(doc! {"$gte": random_value(r, 1), "$lt": v}),
        4 => Bson::Document(doc! {"$in": [v, random_value(r, 1)]}),
        5 => Bson::Document(doc! {"$ne": v}),
        6 => Bson::Document(doc! {"$exists": r.below(2) == 0}),
        _ => Bson::Document(doc! {"$eq": v}),
    }
}

fn random_filter(r: &mut Rng) -> BsonDocument {
    let mut f = BsonDocument::new();
    for field in ["a", "b", "c", "c.d"] {
        if r.below(3) == 0 {
            f.insert(field, random_cond(r));
        }
    }
    if r.below(5) == 0 {
        f.insert(
            "$or",
            vec![
                Bson::Document(doc! {"a": random_cond(r)}),
                Bson::Document(doc! {"b": random_cond(r)}),
            ],
        );
    }
    f
}

/// Acceptance: a randomized comparison of indexed and unindexed answers (as sets; with a
/// sort and limit, exactly), over documents whose fields take every type, arrays included.
#[test]
fn randomized_indexed_and_unindexed_answers_agree() {
    let mut r = Rng(0x2545_f491_4f6c_dd1d);
    let plain = Database::open_in_memory().unwrap();
    let indexed = Database::open_in_memory().unwrap();
    let ic = indexed.collection("r");
    ic.create_index(&doc! {"a": 1}, &doc! {}).unwrap();
    ic.create_index(&doc! {"b": -1}, &doc! {}).unwrap();
    ic.create_index(&doc! {"c.d": 1}, &doc! {}).unwrap();
    ic.create_index(&doc! {"b": 1, "a": -1}, &doc! {}).unwrap();
    ic.create_index(&doc! {"c": 1}, &doc! {"sparse": true})
        .unwrap();
    let mut n = 0;
    for id in 0..400 {
        let doc = random_doc(&mut r, id);
        let p = plain.collection("r").insert(Document::from(doc.clone()));
        let i = ic.insert(Document::from(doc.clone()));
        match (p, i) {
            (Ok(_), Ok(_)) => n += 1,
            // Parallel arrays in the compound index: refused with indexes, and then the
            // unindexed side drops the document too.
            (Ok(_), Err(e)) if e.to_string().contains("parallel arrays") => {
                plain
                    .collection("r")
                    .delete(&doc! {"_id": id}, false)
                    .unwrap();
            }
            (p, i) => panic!("insert {doc}: {p:?} / {i:?}"),
        }
    }
    assert!(n > 300, "only {n} documents stored");
    let mut used = 0;
    for round in 0..1500 {
        let f = random_filter(&mut r);
        let mut a = ids(&plain, "r", &f, "{}");
        let mut b = ids(&indexed, "r", &f, "{}");
        let key = |v: &Bson| format!("{v:?}");
        a.sort_by_key(key);
        b.sort_by_key(key);
        assert_eq!(a, b, "round {round}: filter {f}");
        let opts = r#"{"sort": {"b": 1, "a": -1}, "limit": 7}"#;
        assert_eq!(
            ids(&plain, "r", &f, opts),
            ids(&indexed, "r", &f, opts),
            "round {round}: sorted {f}"
        );
        assert_eq!(
            plain.collection("r").count(&f).unwrap(),
            indexed.collection("r").count(&f).unwrap(),
            "round {round}: count {f}"
        );
        let plan = ic.explain(&f, FindOptions::default()).unwrap();
        used += usize::from(winning_stage(&plan).contains("IXSCAN"));
        // Now and then, a random update through both.
        if round % 10 == 0 {
            let upd = doc! {"$set": {"a": random_value(&mut r, 1)}};
            let x = plain.collection("r").update(
                &f,
                &upd,
                nexus::UpdateOptions {
                    multi: true,
                    ..Default::default()
                },
            );
            let y = ic.update(
                &f,
                &upd,
                nexus::UpdateOptions {
                    multi: true,
                    ..Default::default()
                },
            );
            if let (Ok(x), Ok(y)) = (&x, &y) {
                assert_eq!(x.matched, y.matched, "round {round}: update {f}");
            } else if y.is_err() && x.is_ok() {
                // Refused with indexes (parallel arrays): undo the unindexed side by
                // rebuilding it from the indexed one.
                plain.drop_collection("r").unwrap();
                let all: Vec<Document> = ic
                    .find(&doc! {}, FindOptions::default())
                    .unwrap()
                    .map(Result::unwrap)
                    .collect();
                plain.collection("r").insert_many(all).unwrap();
            }
        }
    }
    assert!(
        used > 300,
        "only {used} of the random filters used an index"
    );
    indexed.check().unwrap();
}

fn find_docs(db: &Database, coll: &str, filter: &BsonDocument, opts: &str) -> Vec<BsonDocument> {
    db.collection(coll)
        .find(filter, FindOptions::from_json(opts).unwrap())
        .unwrap()
        .map(|r| r.unwrap().into_bson())
        .collect()
}

/// Covered queries: the projection and filter read only index fields, so the entries answer
/// alone (no document read), with the same documents, types and field order as the scan.
#[test]
fn covered_queries_read_no_document_and_answer_the_same() {
    let db = Database::open_in_memory().unwrap();
    let c = db.collection("cov");
    c.create_index(&doc! {"a": 1, "u.b": -1}, &doc! {}).unwrap();
    for i in 0..50 {
        let a: Bson = if i % 3 == 0 {
            Bson::Double(f64::from(i % 5))
        } else {
            Bson::Int32(i % 5)
        };
        c.insert(Document::from(
            doc! {"_id": i, "z": "other", "u": {"c": 1, "b": i % 7}, "a": a},
        ))
        .unwrap();
    }
    c.insert(Document::from(doc! {"_id": 100, "z": 1})).unwrap(); // no indexed field
                                                                  // 1 becomes 1.0 without its key changing: the covered values follow.
    c.update(
        &doc! {"_id": 1},
        &doc! {"$set": {"a": 1.0}},
        Default::default(),
    )
    .unwrap();
    let cases = [
        (doc! {"a": 1}, r#"{"projection": {"a": 1, "_id": 0}}"#),
        (
            doc! {"a": {"$gte": 2}},
            r#"{"projection": {"u.b": 1, "a": 1, "_id": 0}, "sort": {"a": 1, "u.b": -1}}"#,
        ),
        (
            doc! {"a": {"$in": [0, 4]}, "u.b": {"$lt": 3}},
            r#"{"projection": {"a": true, "_id": false}, "limit": 3, "sort": {"u.b": 1}}"#,
        ),
        (
            doc! {"a": {"$lt": 3}},
            r#"{"projection": {"u.b": 1, "_id": 0}, "skip": 2, "sort": {"a": 1, "u.b": -1}}"#,
        ),
    ];
    for (filter, opts) in &cases {
        let plan = c
            .explain(filter, FindOptions::from_json(opts).unwrap())
            .unwrap();
        let w = winning_stage(&plan);
        assert!(
            w.contains("PROJECTION_COVERED") && !w.contains("FETCH"),
            "{filter} {opts}: {plan}"
        );
        let stats = plan.get_document("executionStats").unwrap();
        assert_eq!(stats.get_i64("totalDocsExamined").unwrap(), 0, "{plan}");
        let natural = opts.replacen('{', r#"{"hint": {"$natural": 1}, "#, 1);
        let mut want = find_docs(&db, "cov", filter, &natural);
        let mut got = find_docs(&db, "cov", filter, opts);
        assert!(!want.is_empty(), "{filter}");
        if !opts.contains("sort") {
            // Without a sort the index order may differ from `_id` order.
            want.sort_by_key(|d| format!("{d:?}"));
            got.sort_by_key(|d| format!("{d:?}"));
        }
        assert_eq!(got, want, "{filter} {opts}");
    }
    // Not covered: _id kept, a field outside the index, a filter on another field.
    for (filter, opts) in [
        (doc! {"a": 1}, r#"{"projection": {"a": 1}}"#),
        (
            doc! {"a": 1},
            r#"{"projection": {"a": 1, "z": 1, "_id": 0}}"#,
        ),
        (
            doc! {"a": 1, "z": "other"},
            r#"{"projection": {"a": 1, "_id": 0}}"#,
        ),
    ] {
        let plan = c
            .explain(&filter, FindOptions::from_json(opts).unwrap())
            .unwrap();
        assert!(
            winning_stage(&plan).contains("FETCH"),
            "{filter} {opts}: {plan}"
        );
    }
    // A document that can expire anywhere in the database turns covering off.
    db.collection("tmp")
        .insert_ttl(d(r#"{"x": 1}"#), 60_000)
        .unwrap();
    let opts = r#"{"projection": {"a": 1, "_id": 0}}"#;
    let plan = c
        .explain(&doc! {"a": 1}, FindOptions::from_json(opts).unwrap())
        .unwrap();
    assert!(winning_stage(&plan).contains("FETCH"), "{plan}");
    db.check().unwrap();
}

/// Index definitions are kept per committed snapshot for the planner: creating, dropping and
/// (in a transaction) adding an index is seen by the very next query, and two databases
/// whose commits happen to be numbered alike never see each other's definitions.
#[test]
fn the_planner_sees_every_index_change_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let open = |name: &str| {
        let o = OpenOptions::from_json(Some(r#"{"storage":"wasp"}"#)).unwrap();
        Database::open(dir.path().join(name), o).unwrap()
    };
    let (a, b) = (open("a.db"), open("b.db"));
    for db in [&a, &b] {
        db.collection("c")
            .insert(d(r#"{"_id": 1, "k": 1, "j": 1}"#))
            .unwrap();
    }
    let stage = |db: &Database, filter: BsonDocument| {
        winning_stage(
            &db.collection("c")
                .explain(&filter, FindOptions::default())
                .unwrap(),
        )
    };
    assert!(stage(&a, doc! {"k": 1}).contains("COLLSCAN"));
    a.collection("c")
        .create_index(&doc! {"k": 1}, &doc! {})
        .unwrap();
    assert!(stage(&a, doc! {"k": 1}).contains("IXSCAN"));
    // b's commits are numbered as a's were; b has no index.
    b.collection("c")
        .insert(d(r#"{"_id": 2, "k": 1}"#))
        .unwrap();
    assert!(stage(&b, doc! {"k": 1}).contains("COLLSCAN"));
    // Inside a transaction, the transaction's own index is used before it commits.
    a.begin().unwrap();
    a.collection("c")
        .create_index(&doc! {"j": 1}, &doc! {})
        .unwrap();
    assert!(stage(&a, doc! {"j": 1}).contains("IXSCAN"));
    a.rollback().unwrap();
    assert!(stage(&a, doc! {"j": 1}).contains("COLLSCAN"));
    a.collection("c").drop_index("k_1").unwrap();
    assert!(stage(&a, doc! {"k": 1}).contains("COLLSCAN"));
    assert_eq!(ids(&a, "c", &doc! {"k": 1}, "{}"), vec![Bson::Int32(1)]);
}

/// Single-field updates are written into the stored bytes without decoding the document
/// (`$inc` keeping the type, `$set` of a same-typed number); the indexes, the metadata and
/// the unique check see them exactly as they see decoded updates.
#[test]
fn updates_written_into_the_stored_bytes_keep_indexes_and_metadata() {
    let db = Database::open_in_memory().unwrap();
    let c = db.collection("u");
    c.create_index(&doc! {"age": 1}, &doc! {}).unwrap();
    c.create_index(&doc! {"rank": 1}, &doc! {"unique": true})
        .unwrap();
    c.insert(d(r#"{"_id": "a", "age": 30, "rank": 1, "w": 1.5}"#))
        .unwrap();
    c.insert(d(r#"{"_id": "b", "age": 40, "rank": 2, "w": 2.5}"#))
        .unwrap();
    let id = nexus::DocumentId::new(Bson::from("a")).unwrap();
    let before = c.get_meta(&id).unwrap().unwrap();
    let r = c
        .update(
            &doc! {"_id": "a"},
            &doc! {"$inc": {"age": 5, "w": 0.5}},
            Default::default(),
        )
        .unwrap();
    assert_eq!((r.matched, r.modified), (1, 1));
    assert!(ids(&db, "u", &doc! {"age": 30}, "{}").is_empty());
    assert_eq!(
        ids(&db, "u", &doc! {"age": 35}, "{}"),
        vec![Bson::from("a")]
    );
    let a = c.get(&id).unwrap().unwrap();
    assert_eq!(a.get("w"), Some(&Bson::Double(2.0)));
    let after = c.get_meta(&id).unwrap().unwrap();
    assert_eq!(after.version, before.version + 1);
    // Setting the value it has: matched, not modified, version unchanged.
    let r = c
        .update(
            &doc! {"_id": "a"},
            &doc! {"$set": {"age": 35}},
            Default::default(),
        )
        .unwrap();
    assert_eq!((r.matched, r.modified), (1, 0));
    assert_eq!(c.get_meta(&id).unwrap().unwrap().version, after.version);
    // A unique key taken by another document: refused, nothing changes.
    let e = c
        .update(
            &doc! {"_id": "a"},
            &doc! {"$set": {"rank": 2}},
            Default::default(),
        )
        .unwrap_err();
    assert!(matches!(e, Error::DuplicateKey(_)), "{e}");
    assert_eq!(
        ids(&db, "u", &doc! {"rank": 1}, "{}"),
        vec![Bson::from("a")]
    );
    // Every match of a multi-update.
    let r = c
        .update(
            &doc! {},
            &doc! {"$inc": {"age": 1}},
            nexus::UpdateOptions {
                multi: true,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!((r.matched, r.modified), (2, 2));
    assert_eq!(
        ids(&db, "u", &doc! {"age": 41}, "{}"),
        vec![Bson::from("b")]
    );
}

/// An index scan reads its documents a batch at a time (each page of the collection once for
/// the batch): over a file whose pages are on disk and far larger than the page cache, with
/// ids in random and in insertion order, documents deleted, grown past a page (overflow) and
/// rewritten, the indexed answers are the unindexed ones, in the index's order; inside a
/// transaction too (pages changed in memory).
#[test]
fn index_scans_read_documents_in_batches_over_disk_pages() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("batches.db");
    let options = || {
        common::with_storage(
            OpenOptions::from_json(Some(r#"{"page_cache_bytes": 65536}"#)).unwrap(),
        )
    };
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    {
        let db = Database::open(&path, options()).unwrap();
        db.collection("ix")
            .create_index(&doc! {"g": 1}, &doc! {})
            .unwrap();
        db.begin().unwrap();
        for i in 0..6_000u64 {
            // Half the ids in insertion order, half at random.
            let id = if i % 2 == 0 {
                format!("s{i:08}")
            } else {
                format!("r{:016x}", r.next())
            };
            let body = doc! {"_id": id, "g": (r.next() % 7) as i64, "n": i as i64, "pad": "x".repeat((r.next() % 300) as usize)};
            db.collection("ix")
                .insert(Document::from(body.clone()))
                .unwrap();
            db.collection("plain").insert(Document::from(body)).unwrap();
        }
        db.commit().unwrap();
        for c in ["ix", "plain"] {
            let coll = db.collection(c);
            coll.delete(&doc! {"n": {"$mod": [5, 1]}}, true).unwrap();
            coll.update(
                &doc! {"n": {"$mod": [97, 3]}},
                &doc! {"$set": {"pad": "y".repeat(20_000)}},
                nexus::UpdateOptions {
                    multi: true,
                    ..Default::default()
                },
            )
            .unwrap();
        }
        db.checkpoint().unwrap();
    }
    let db = Database::open(&path, options()).unwrap();
    let compare = |db: &Database, context: &str| {
        for g in 0..8i64 {
            let f = doc! {"g": g};
            let plan = db
                .collection("ix")
                .explain(&f, FindOptions::default())
                .unwrap();
            assert!(winning_stage(&plan).contains("IXSCAN"), "{context}: {plan}");
            let got = find_docs(db, "ix", &f, "{}");
            let mut want = find_docs(db, "plain", &f, "{}");
            // The index's order: by g, then _id (strings, in byte order).
            want.sort_by(|a, b| a.get_str("_id").unwrap().cmp(b.get_str("_id").unwrap()));
            assert_eq!(got, want, "{context}: g = {g}");
            if g < 7 {
                assert!(
                    got.len() > 300,
                    "{context}: g = {g}: {} documents",
                    got.len()
                );
            }
        }
    };
    compare(&db, "reopened");
    db.begin().unwrap();
    for c in ["ix", "plain"] {
        let coll = db.collection(c);
        coll.update(
            &doc! {"n": {"$mod": [11, 0]}},
            &doc! {"$inc": {"g": 1}},
            nexus::UpdateOptions {
                multi: true,
                ..Default::default()
            },
        )
        .unwrap();
        coll.delete(&doc! {"n": {"$mod": [13, 2]}}, true).unwrap();
    }
    compare(&db, "in a transaction");
    db.rollback().unwrap();
    compare(&db, "after the rollback");
    db.check().unwrap();
}

/// Generators of [`prop_indexed_answers_equal_a_collection_scan`].
mod gen {
    use bson::{doc, Bson, Document as BsonDocument};
    use proptest::prelude::*;
    use std::fmt;

    /// A regex value (bson keeps its parts as C strings).
    pub fn re(pattern: &str, options: &str) -> Bson {
        Bson::RegularExpression(bson::Regex {
            pattern: pattern.try_into().unwrap(),
            options: options.try_into().unwrap(),
        })
    }

    /// A document or filter shown as extended JSON in a failure.
    #[derive(Clone)]
    pub struct Shown(pub BsonDocument);

    impl fmt::Debug for Shown {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{}", self.0)
        }
    }

    /// Few distinct values, so that filters hit; equal numbers of different types (1, 1L,
    /// 1.0, decimal 1) that an index must key alike; and the types that bracket.
    pub fn scalar() -> BoxedStrategy<Bson> {
        prop_oneof![
            4 => (-2i32..3).prop_map(Bson::Int32),
            2 => (-2i64..3).prop_map(Bson::Int64),
            2 => (-4i32..5).prop_map(|x| Bson::Double(f64::from(x) / 2.0)),
            1 => prop::sample::select(vec!["1", "-0", "0.5"])
                .prop_map(|d| Bson::Decimal128(d.parse().unwrap())),
            3 => prop::sample::select(vec!["", "a", "ab", "b", "B"]).prop_map(|s| Bson::String(s.into())),
            1 => Just(Bson::Null),
            1 => any::<bool>().prop_map(Bson::Boolean),
            1 => (0i64..3).prop_map(|s| Bson::DateTime(bson::DateTime::from_millis(s * 1000))),
            1 => prop::sample::select(vec![Bson::MinKey, Bson::MaxKey]),
        ]
        .boxed()
    }

    /// `a`: a scalar or an array (multikey); `b`: a scalar (never an array: the compound
    /// indexes on `b` and `a`, `c.d` refuse parallel arrays); `c`: `{d: ...}` or an array of
    /// them (multikey through a subdocument path); each field missing now and then. The
    /// `_id` is given by position.
    pub fn document() -> impl Strategy<Value = BsonDocument> {
        let a = prop_oneof![
            3 => scalar(),
            2 => prop::collection::vec(scalar(), 0..4).prop_map(Bson::Array),
        ];
        let cd = || scalar().prop_map(|v| Bson::Document(doc! {"d": v}));
        let c = prop_oneof![
            3 => cd(),
            2 => prop::collection::vec(cd(), 0..3).prop_map(Bson::Array),
            1 => Just(Bson::Document(doc! {})),
        ];
        (
            prop::option::weighted(0.85, a),
            prop::option::weighted(0.85, scalar()),
            prop::option::weighted(0.85, c),
        )
            .prop_map(|(a, b, c)| {
                let mut d = doc! {};
                for (k, v) in [("a", a), ("b", b), ("c", c)] {
                    if let Some(v) = v {
                        d.insert(k, v);
                    }
                }
                d
            })
    }

    pub const PATHS: [&str; 5] = ["a", "b", "c.d", "c", "a.0"];

    fn cond() -> BoxedStrategy<Bson> {
        let v = scalar;
        let cmp = prop::sample::select(vec!["$gt", "$gte", "$lt", "$lte", "$eq", "$ne"]);
        prop_oneof![
            3 => v(),
            4 => (cmp, v()).prop_map(|(op, v)| Bson::Document(doc! {op: v})),
            2 => (v(), v()).prop_map(|(lo, hi)| Bson::Document(doc! {"$gte": lo, "$lt": hi})),
            2 => (prop::sample::select(vec!["$in", "$nin"]), prop::collection::vec(v(), 0..4))
                .prop_map(|(op, vs)| Bson::Document(doc! {op: vs})),
            1 => any::<bool>().prop_map(|b| Bson::Document(doc! {"$exists": b})),
            1 => prop::sample::select(vec!["number", "string", "array", "null", "object"])
                .prop_map(|t| Bson::Document(doc! {"$type": t})),
            1 => (0i32..3).prop_map(|n| Bson::Document(doc! {"$size": n})),
            1 => prop::collection::vec(v(), 1..3).prop_map(|vs| Bson::Document(doc! {"$all": vs})),
            1 => (v(), v()).prop_map(|(lo, hi)| Bson::Document(doc! {"$elemMatch": {"$gt": lo, "$lte": hi}})),
            1 => v().prop_map(|x| Bson::Document(doc! {"$elemMatch": {"d": x}})),
            1 => v().prop_map(|x| Bson::Document(doc! {"$not": {"$gt": x}})),
            1 => Just(re("^a", "")),
        ]
        .boxed()
    }

    /// Conditions on one to three paths (implicitly and-ed), and `$or`, `$and`, `$nor` of
    /// such filters.
    pub fn filter() -> impl Strategy<Value = Shown> {
        let path = prop_oneof![4 => prop::sample::select(&PATHS[..3]), 1 => prop::sample::select(&PATHS[3..])];
        let leaf = prop::collection::vec((path, cond()), 0..3).prop_map(|cs| {
            cs.into_iter()
                .map(|(p, c)| (p.to_owned(), c))
                .collect::<BsonDocument>()
        });
        leaf.prop_recursive(2, 6, 3, |inner| {
            (
                prop::sample::select(vec!["$or", "$and", "$nor"]),
                prop::collection::vec(inner, 1..3),
            )
                .prop_map(|(op, fs)| doc! {op: fs})
        })
        .prop_map(Shown)
    }

    /// A sort on one or two of the paths (never a total order on its own: ties are common).
    pub fn sort() -> impl Strategy<Value = Option<Shown>> {
        let key = (
            prop::sample::select(vec!["a", "b", "c.d", "_id"]),
            prop::bool::ANY,
        );
        prop::option::weighted(
            0.7,
            prop::collection::vec(key, 1..3).prop_map(|keys| {
                Shown(
                    keys.into_iter()
                        .map(|(k, up)| (k.to_owned(), Bson::Int32(if up { 1 } else { -1 })))
                        .collect(),
                )
            }),
        )
    }

    /// A step: a query, or a write applied to both collections.
    #[derive(Debug, Clone)]
    pub enum Step {
        Find {
            filter: Shown,
            sort: Option<Shown>,
            skip: u64,
            limit: u64,
        },
        /// `update_many(filter, {$set: {field: value}})`.
        Set {
            filter: Shown,
            field: &'static str,
            value: Bson,
        },
        Delete {
            filter: Shown,
        },
    }

    pub fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            8 => (filter(), sort(), prop_oneof![3 => Just(0u64), 1 => 1u64..5], prop_oneof![2 => Just(0u64), 3 => 1u64..8])
                .prop_map(|(filter, sort, skip, limit)| Step::Find { filter, sort, skip, limit }),
            // `b` stays a scalar (see `document`).
            1 => (filter(), prop::sample::select(vec!["a", "b", "c"]), scalar(), 0..3)
                .prop_map(|(filter, field, s, shape)| {
                    let value = match (field, shape) {
                        ("b", _) | (_, 0) => s,
                        (_, 1) => Bson::Array(vec![s, Bson::Int32(1)]),
                        _ => Bson::Document(doc! {"d": s}),
                    };
                    Step::Set { filter, field, value }
                }),
            1 => filter().prop_map(|filter| Step::Delete { filter }),
        ]
    }
}

/// A generated collection and steps (finds with filters, sorts, skips and limits; multi
/// updates and deletes that move documents in and out of index entries), run on a collection
/// without secondary indexes and on one with single-field, compound and multikey indexes:
/// the answers must be the same, in the same order when there is a sort (ties go in `_id`
/// order, whatever the access path: src/exec/cursor.rs), as the same set otherwise. Each find
/// also runs with every index forced by `hint`. Extends
/// [`randomized_indexed_and_unindexed_answers_agree`] with generated sorts, skips, limits,
/// `$elemMatch`/`$all`/`$size`/`$not`, and shrinking to a small failing case.
#[test]
fn prop_indexed_answers_equal_a_collection_scan() {
    use gen::Step;
    use proptest::prelude::*;
    use proptest::test_runner::{TestError, TestRunner};
    use std::cell::Cell;

    let mut runner = TestRunner::new(common::prop_config(250, 4));
    let patterns = [
        doc! {"a": 1},
        doc! {"b": -1},
        doc! {"c.d": 1},
        doc! {"b": 1, "a": -1},
        doc! {"c.d": -1, "b": 1},
    ];
    let (used, finds) = (Cell::new(0u32), Cell::new(0u32));
    let docs = prop::collection::vec(gen::document(), 0..60).prop_map(|docs| {
        let with_id = |(id, mut d): (usize, BsonDocument)| {
            d.insert("_id", id as i32);
            gen::Shown(d)
        };
        docs.into_iter()
            .enumerate()
            .map(with_id)
            .collect::<Vec<_>>()
    });
    let case = (docs, prop::collection::vec(gen::step(), 1..10));
    let result = runner.run(&case, |(docs, steps)| {
        let plain = Database::open_in_memory().unwrap();
        let indexed = Database::open_in_memory().unwrap();
        let (pc, ic) = (plain.collection("r"), indexed.collection("r"));
        pc.insert_many(docs.iter().map(|d| Document::from(d.0.clone())).collect())
            .unwrap();
        for p in &patterns {
            ic.create_index(p, &doc! {}).unwrap();
        }
        ic.insert_many(docs.iter().map(|d| Document::from(d.0.clone())).collect())
            .unwrap();
        let all =
            |c: &nexus::Collection<'_>, f: &BsonDocument, opts: FindOptions| -> Vec<BsonDocument> {
                c.find(f, opts)
                    .unwrap_or_else(|e| panic!("find {f}: {e}"))
                    .map(|d| d.unwrap().into_bson())
                    .collect()
            };
        for (i, step) in steps.iter().enumerate() {
            match step {
                Step::Find {
                    filter,
                    sort,
                    skip,
                    limit,
                } => {
                    let f = &filter.0;
                    let opts = |hint: Option<Bson>| FindOptions {
                        sort: sort.as_ref().map(|s| s.0.clone()),
                        skip: *skip,
                        limit: *limit,
                        hint,
                        ..FindOptions::default()
                    };
                    let mut everything = all(&pc, f, FindOptions::default());
                    everything.sort_by_key(|d| d.get_i32("_id").unwrap());
                    let want = all(&pc, f, opts(None));
                    let mut hints = vec![None, Some(Bson::Document(doc! {"$natural": 1}))];
                    hints.extend(patterns.iter().map(|p| Some(Bson::Document(p.clone()))));
                    for hint in hints {
                        let got = all(&ic, f, opts(hint.clone()));
                        let ctx = format!("step {i}, hint {hint:?}");
                        if sort.is_some() {
                            prop_assert_eq!(&got, &want, "{}", ctx);
                        } else {
                            // No order is defined: the same set, or with a skip or limit as
                            // many documents, all of them answers.
                            let mut got = got;
                            got.sort_by_key(|d| d.get_i32("_id").unwrap());
                            if *skip == 0 && *limit == 0 {
                                prop_assert_eq!(&got, &everything, "{}", ctx);
                            } else {
                                let n = everything.len().saturating_sub(*skip as usize);
                                let n = if *limit == 0 {
                                    n
                                } else {
                                    n.min(*limit as usize)
                                };
                                prop_assert_eq!(got.len(), n, "{}: how many", ctx);
                                prop_assert!(
                                    got.iter().all(|d| everything.contains(d)),
                                    "{}: not an answer",
                                    ctx
                                );
                            }
                        }
                    }
                    prop_assert_eq!(
                        pc.count(f).unwrap(),
                        ic.count(f).unwrap(),
                        "step {}: count",
                        i
                    );
                    let plan = ic.explain(f, opts(None)).unwrap();
                    used.set(used.get() + u32::from(winning_stage(&plan).contains("IXSCAN")));
                    finds.set(finds.get() + 1);
                }
                Step::Set {
                    filter,
                    field,
                    value,
                } => {
                    let u = doc! {"$set": {*field: value.clone()}};
                    let multi = nexus::UpdateOptions {
                        multi: true,
                        ..Default::default()
                    };
                    let a = pc.update(&filter.0, &u, multi).unwrap();
                    let b = ic.update(&filter.0, &u, multi).unwrap();
                    prop_assert_eq!(a.matched, b.matched, "step {}: matched", i);
                    prop_assert_eq!(a.modified, b.modified, "step {}: modified", i);
                }
                Step::Delete { filter } => {
                    let a = pc.delete(&filter.0, true).unwrap();
                    let b = ic.delete(&filter.0, true).unwrap();
                    prop_assert_eq!(a, b, "step {}: deleted", i);
                }
            }
        }
        let report = indexed.check().unwrap();
        prop_assert_eq!(&report["ok"], &serde_json::json!(true), "check: {}", report);
        Ok(())
    });
    match result {
        Ok(()) => {}
        Err(TestError::Fail(why, (docs, steps))) => {
            panic!("{why}\nminimal failing steps: {steps:#?}\ndocuments: {docs:#?}")
        }
        Err(TestError::Abort(why)) => panic!("aborted: {why}"),
    }
    // The planner must pick an index for some of the generated filters by itself (each
    // find also runs with every index forced, so index scans are tested either way; small
    // collections and `$or`, `$ne`, `$not` filters make a collection scan the usual choice).
    assert!(
        finds.get() < 200 || used.get() * 10 > finds.get(),
        "only {} of {} finds used an index",
        used.get(),
        finds.get()
    );
}

/// An equality to a number through an index is answered from the index alone (the documents
/// are not tested again): it must find what a collection scan finds, for numbers that are
/// equal across types (30, NumberLong 30, 30.0, NumberDecimal 30), that differ only past a
/// double's precision (2^53 + 1 against 2^53), NaN, -0 and 0, infinities, and never a value
/// of another type (the string "30", null, a missing field).
#[test]
fn numeric_equality_through_an_index_finds_what_a_scan_finds() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::open(dir.path().join("n.db"));
    let values: Vec<Bson> = vec![
        Bson::Int32(30),
        Bson::Int64(30),
        Bson::Double(30.0),
        Bson::Double(30.5),
        Bson::Decimal128("30".parse().unwrap()),
        Bson::Decimal128("30.50".parse().unwrap()),
        Bson::Double(f64::NAN),
        Bson::Double(-0.0),
        Bson::Int32(0),
        Bson::Double(f64::INFINITY),
        Bson::Double(f64::NEG_INFINITY),
        Bson::Int64(9_007_199_254_740_993),
        Bson::Int64(9_007_199_254_740_992),
        Bson::Double(9_007_199_254_740_992.0),
        Bson::Int64(i64::MAX),
        Bson::Double(9.223_372_036_854_776e18),
        Bson::Int32(-7),
        Bson::Double(-7.0),
        Bson::String("30".into()),
        Bson::Null,
        Bson::Boolean(true),
    ];
    for name in ["plain", "indexed"] {
        let c = db.collection(name);
        for (i, v) in values.iter().enumerate() {
            c.insert(Document::from_bson(doc! {"_id": i as i32, "n": v.clone()}))
                .unwrap();
        }
        c.insert(Document::from_bson(doc! {"_id": 100, "other": 1}))
            .unwrap();
    }
    let ix = db.collection("indexed");
    ix.create_index(&doc! {"n": 1}, &doc! {}).unwrap();
    let sorted = |mut v: Vec<Bson>| {
        v.sort_by_key(|b| b.as_i32().unwrap());
        v
    };
    for v in values.iter().filter(|v| {
        matches!(
            v,
            Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_)
        )
    }) {
        let filter = doc! {"n": v.clone()};
        let want = sorted(ids(&db, "plain", &filter, "{}"));
        assert!(!want.is_empty(), "{v:?} matches itself");
        let got = sorted(ids(&db, "indexed", &filter, "{}"));
        assert_eq!(got, want, "find {filter}");
        let plan = ix.explain(&filter, FindOptions::default()).unwrap();
        assert!(winning_stage(&plan).contains("IXSCAN"), "{plan}");
        let one = ix
            .find_one(&filter)
            .unwrap()
            .map(|d| d.get("_id").cloned().unwrap());
        assert!(
            one.is_some_and(|id| want.contains(&id)),
            "find_one {filter}"
        );
    }
    // The same through a descending index.
    ix.drop_index("n_1").unwrap();
    ix.create_index(&doc! {"n": -1}, &doc! {}).unwrap();
    for v in &values[..16] {
        let filter = doc! {"n": v.clone()};
        assert_eq!(
            sorted(ids(&db, "indexed", &filter, "{}")),
            sorted(ids(&db, "plain", &filter, "{}")),
            "descending: find {filter}"
        );
    }
}
