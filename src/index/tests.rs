//! The chunked index build against the build it replaced (one document at a time, each
//! entry put in `_id` order after an [`other_holder`] check): the same entries, the same
//! multikey flag, or the same error naming the same document, with the chunk size lowered
//! (`BUILD_CHUNK_BYTES` under `cfg(test)`) so that every build spans many chunks.
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // test arithmetic on small values

use super::build::{BUILD_BATCH, BUILD_CHUNK_BYTES};
use super::def::entry_table;
use super::key::KeyField;
use super::maintain::{body_of, duplicate, other_holder};
use super::*;
use crate::error::{Error, Result};
use crate::query::FindOptions;
use crate::storage::{Bytes, WriteTxn};
use crate::{Database, Document, OpenOptions, StorageEngine};
use bson::doc;
use bson::{Bson, Document as BsonDocument};
use std::time::Duration;

/// The build as it was before chunks: the reference.
fn build_one_at_a_time(t: &mut dyn WriteTxn, def: &mut IndexDef) -> Result<()> {
    let table = def.table().to_owned();
    t.create_table(&table, "{}")?;
    let mut after: Option<Bytes> = None;
    loop {
        let batch = t.scan(&def.coll, after.as_deref(), BUILD_BATCH);
        if batch.is_empty() {
            return Ok(());
        }
        for (id_key, rec) in &batch {
            let doc = body_of(rec)?;
            let (entries, multikey) = def.entries_of(&doc, id_key).map_err(|e| match e {
                Error::InvalidArgument(m) => {
                    Error::InvalidArgument(format!("cannot build index '{}': {m}", def.name))
                }
                other => other,
            })?;
            def.multikey |= multikey;
            let rid = t.record_id_for(&def.coll, id_key);
            for (k, v) in entries {
                if def.unique && other_holder(t.as_read(), &def.coll, &table, &k, id_key).is_some()
                {
                    return Err(duplicate(def, Some(&doc)));
                }
                let v = crate::index::with_record_id(v, rid);
                t.put(&table, Bytes::from(entry_key(&k, id_key)), Bytes::from(v))?;
            }
        }
        after = batch.last().map(|(k, _)| k.clone());
    }
}

type Outcome = std::result::Result<(Vec<(Bytes, Bytes)>, bool), String>;

/// Runs `how` for the index `keys`/`options` of `coll` in a transaction that is then rolled
/// back; returns the entries written and the multikey flag, or the error's message.
fn outcome(
    db: &Database,
    coll: &str,
    keys: &BsonDocument,
    options: &BsonDocument,
    how: fn(&mut dyn WriteTxn, &mut IndexDef) -> Result<()>,
) -> Outcome {
    let mut got = None;
    let r = db.write(|t| {
        let mut def = new_def(coll, keys, options)?;
        got = Some(match how(t, &mut def) {
            Ok(()) => Ok((t.scan(def.table(), None, usize::MAX), def.multikey)),
            Err(e) => Err(e.to_string()),
        });
        Err::<(), _>(Error::Internal("roll back".into()))
    });
    assert!(matches!(r, Err(Error::Internal(_))), "{r:?}");
    got.expect("the build ran")
}

/// The tables whose name starts with `_ix$`.
fn entry_tables(db: &Database) -> Vec<String> {
    db.write(|t| {
        Ok(t.tables()
            .into_iter()
            .map(|i| i.name)
            .filter(|n| n.starts_with("_ix$"))
            .collect())
    })
    .unwrap()
}

fn open(dir: &tempfile::TempDir, engine: StorageEngine) -> Database {
    let mut o = OpenOptions::from_json(Some(r#"{"sweeper_interval_ms": 0}"#)).unwrap();
    o.storage = Some(engine);
    Database::open(dir.path().join(format!("{}.db", engine.as_str())), o).unwrap()
}

fn d(v: BsonDocument) -> Document {
    Document::from(v)
}

/// Expired documents take a moment to expire.
fn let_expire() {
    std::thread::sleep(Duration::from_millis(15));
}

/// Builds the index both ways (compared), then creates it for real: on success the
/// database checks clean, on failure nothing of the index is left. Returns the error's
/// message, if any.
fn create_and_check(
    db: &Database,
    coll: &str,
    keys: BsonDocument,
    options: BsonDocument,
) -> std::result::Result<(), String> {
    let c = db.collection(coll);
    let chunked = outcome(db, coll, &keys, &options, build);
    let reference = outcome(db, coll, &keys, &options, build_one_at_a_time);
    assert_eq!(chunked, reference, "{keys} {options}");
    let before = c.list_indexes().unwrap().len();
    match (c.create_index(&keys, &options), reference) {
        (Ok(name), Ok(_)) => {
            assert_eq!(c.list_indexes().unwrap().len(), before + 1);
            let report = db.check_report().unwrap();
            assert_eq!(report["ok"], serde_json::Value::Bool(true), "{report}");
            c.drop_index(&name).unwrap();
            Ok(())
        }
        (Err(e), Err(msg)) => {
            assert_eq!(e.to_string(), msg);
            assert_eq!(c.list_indexes().unwrap().len(), before);
            assert!(entry_tables(db).is_empty(), "{:?}", entry_tables(db));
            let report = db.check_report().unwrap();
            assert_eq!(report["ok"], serde_json::Value::Bool(true), "{report}");
            Err(msg)
        }
        (got, want) => panic!("{keys} {options}: created {got:?}, reference {want:?}"),
    }
}

/// Asserts a duplicate-key failure naming `index` and `key` (E11000 style).
fn refused(r: std::result::Result<(), String>, index: &str, key: &str) {
    let msg = r.expect_err("a duplicate");
    assert!(
        msg.starts_with("E11000 duplicate key error collection: ")
            && msg.contains(&format!("index: {index} dup key: {{ {key} }}")),
        "{msg}"
    );
}

#[test]
fn unique_build_across_chunks_matches_the_one_at_a_time_build() {
    for engine in [StorageEngine::Wasp, StorageEngine::MemLog] {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&dir, engine);
        let c = db.collection("c");
        let set = |c: &crate::Collection<'_>, id: i64, update: BsonDocument| {
            c.update(
                &doc! {"_id": id},
                &doc! {"$set": update},
                Default::default(),
            )
            .unwrap();
        };
        let n: i64 = 400;
        for i in 0..n {
            c.insert(d(
                doc! {"_id": i, "k": format!("k{i:04}"), "u": {"v": i % 7, "w": "x"}},
            ))
            .unwrap();
        }
        // An entry of the index on "k" is about 30 bytes: 400 of them are many chunks.
        assert!(n as usize * 30 > 8 * BUILD_CHUNK_BYTES);
        let unique = doc! {"unique": true};
        create_and_check(&db, "c", doc! {"k": 1}, unique.clone()).unwrap();
        create_and_check(&db, "c", doc! {"u.v": 1, "k": -1}, unique.clone()).unwrap();
        create_and_check(&db, "c", doc! {"u.v": 1}, doc! {}).unwrap();
        refused(
            create_and_check(&db, "c", doc! {"u.v": 1}, unique.clone()),
            "u.v_1",
            "u.v: 0",
        );

        // (a) A duplicate inside one chunk: neighbours by _id.
        set(&c, 101, doc! {"k": "k0100", "u.v": 11});
        refused(
            create_and_check(&db, "c", doc! {"k": 1}, unique.clone()),
            "k_1",
            "k: \"k0100\"",
        );
        set(&c, 101, doc! {"k": "k0101"});

        // (b) Across chunks: the first and the last documents.
        set(&c, n - 1, doc! {"k": "k0000"});
        refused(
            create_and_check(&db, "c", doc! {"k": 1}, unique.clone()),
            "k_1",
            "k: \"k0000\"",
        );
        // And a pair in one later chunk, before the last document: it is named.
        set(&c, 301, doc! {"k": "k0300", "u.v": 300 % 7});
        refused(
            create_and_check(
                &db,
                "c",
                doc! {"k": 1, "u.v": 1},
                doc! {"unique": true, "name": "ku"},
            ),
            "ku",
            "k: \"k0300\", u.v: 6",
        );
        refused(
            create_and_check(&db, "c", doc! {"k": 1}, unique.clone()),
            "k_1",
            "k: \"k0300\"",
        );
        set(&c, n - 1, doc! {"k": format!("k{:04}", n - 1)});
        refused(
            create_and_check(&db, "c", doc! {"k": 1}, unique.clone()),
            "k_1",
            "k: \"k0300\"",
        );
        // Across chunks again, the earlier holder far back.
        set(&c, 301, doc! {"k": "k0002"});
        refused(
            create_and_check(&db, "c", doc! {"k": 1}, unique.clone()),
            "k_1",
            "k: \"k0002\"",
        );
        set(&c, 301, doc! {"k": "k0301"});
        create_and_check(&db, "c", doc! {"k": 1}, unique.clone()).unwrap();

        // (c) Expired documents hold no key (they keep their entries until purged): an
        // expired earlier holder does not refuse a later live document, in the same chunk
        // or an earlier one; two expired documents may share a key.
        let e = db.collection("e");
        for i in 0..n {
            if ![5, 6, 350].contains(&i) {
                e.insert(d(doc! {"_id": i, "k": format!("k{i:04}")}))
                    .unwrap();
            }
        }
        // (Positive integer _ids are read in numeric order.)
        e.insert_ttl(d(doc! {"_id": 1000, "k": "x"}), 1).unwrap();
        e.insert(d(doc! {"_id": 1001, "k": "x"})).unwrap();
        e.insert_ttl(d(doc! {"_id": 5, "k": "y"}), 1).unwrap();
        e.insert(d(doc! {"_id": 350, "k": "y"})).unwrap();
        e.insert_ttl(d(doc! {"_id": 6, "k": "z"}), 1).unwrap();
        e.insert_ttl(d(doc! {"_id": 1600, "k": "z"}), 1).unwrap();
        let_expire();
        create_and_check(&db, "e", doc! {"k": 1}, unique.clone()).unwrap();
        // A live ephemeral document holds its key like any other.
        e.insert_ttl(d(doc! {"_id": 1700, "k": "k0003"}), 3_600_000)
            .unwrap();
        refused(
            create_and_check(&db, "e", doc! {"k": 1}, unique.clone()),
            "k_1",
            "k: \"k0003\"",
        );
        e.delete(&doc! {"_id": 1700}, false).unwrap();
        // An expired document after a live holder of its key is refused: the check asks
        // whether the earlier holder is live, whatever the later document is (across
        // chunks; then the first of two refused documents in the collection's order is
        // named: insertion order with WASP, `_id` order with memlog).
        e.insert_ttl(d(doc! {"_id": 1801, "k": "y"}), 1).unwrap();
        let_expire();
        refused(
            create_and_check(&db, "e", doc! {"k": 1}, unique.clone()),
            "k_1",
            "k: \"y\"",
        );
        e.insert_ttl(d(doc! {"_id": 1800, "k": "k0002"}), 1)
            .unwrap();
        let_expire();
        refused(
            create_and_check(&db, "e", doc! {"k": 1}, unique.clone()),
            "k_1",
            if engine == StorageEngine::Wasp {
                "k: \"y\""
            } else {
                "k: \"k0002\""
            },
        );
        // Expired documents are invisible to deletes; purging removes them.
        db.purge_expired().unwrap();
        create_and_check(&db, "e", doc! {"k": 1}, unique.clone()).unwrap();

        // (d) Multikey documents: one entry per element; a document repeating an element
        // holds it once, two documents sharing one are refused.
        let m = db.collection("m");
        for i in 0..n {
            let tags = vec![format!("t{i}"), format!("t{i}"), format!("s{i}")];
            m.insert(d(
                doc! {"_id": i, "tags": tags, "a": [{"b": i}, {"b": i + 10_000}]},
            ))
            .unwrap();
        }
        create_and_check(&db, "m", doc! {"tags": 1}, unique.clone()).unwrap();
        create_and_check(&db, "m", doc! {"a.b": 1}, unique.clone()).unwrap();
        set(&m, 390, doc! {"tags": ["q", "s7"]});
        refused(
            create_and_check(&db, "m", doc! {"tags": 1}, unique.clone()),
            "tags_1",
            "tags: [\"q\",\"s7\"]",
        );
        set(&m, 8, doc! {"a": [{"b": 10_200}]});
        refused(
            create_and_check(&db, "m", doc! {"a.b": 1}, unique.clone()),
            "a.b_1",
            "a.b: 200",
        );
        // Sparse and partial unique indexes leave out the documents they do not cover.
        create_and_check(
            &db,
            "m",
            doc! {"nope": 1},
            doc! {"unique": true, "sparse": true},
        )
        .unwrap();
        refused(
            create_and_check(&db, "m", doc! {"nope": 1}, unique.clone()),
            "nope_1",
            "nope: null",
        );
        create_and_check(
            &db,
            "m",
            doc! {"tags": 1},
            doc! {"unique": true, "partialFilterExpression": {"_id": {"$lt": 300}}},
        )
        .unwrap();
        db.check().unwrap();
    }
}

fn random_value(r: &mut fastrand::Rng) -> Bson {
    match r.u64(..8) {
        0 => Bson::Null,
        1 => Bson::Int32(r.u64(..30) as i32),
        2 => Bson::Double(r.u64(..30) as f64),
        3 => Bson::String(format!("s{}", r.u64(..30))),
        4 => Bson::Array(
            (0..r.u64(..3))
                .map(|_| Bson::Int64(r.u64(..30) as i64))
                .collect(),
        ),
        5 => Bson::Document(doc! {"b": r.u64(..30) as i32, "c": r.u64(..3) as i32}),
        6 => Bson::Array(vec![
            Bson::Document(doc! {"b": r.u64(..30) as i32}),
            Bson::Document(doc! {"c": 1}),
        ]),
        _ => Bson::Boolean(r.u64(..2) == 0),
    }
}

#[test]
fn random_builds_match_the_one_at_a_time_build() {
    let mut r = fastrand::Rng::with_seed(0x9E37_79B9_7F4A_7C15);
    let (mut built, mut refused) = (0, 0);
    for engine in [StorageEngine::Wasp, StorageEngine::MemLog] {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&dir, engine);
        for round in 0..6 {
            let coll = format!("r{round}");
            let c = db.collection(&coll);
            // Few distinct values, so that unique indexes meet duplicates at random places;
            // some documents expired, some ephemeral but live, some with parallel arrays.
            let n = 60 + r.u64(..300) as i64;
            for i in 0..n {
                let mut doc = doc! {"_id": i * 3 - 100};
                for f in ["a", "x", "y"] {
                    if r.u64(..5) != 0 {
                        doc.insert(f, random_value(&mut r));
                    }
                }
                doc.insert("pad", "p".repeat(r.u64(..40) as usize));
                match r.u64(..12) {
                    0 => c.insert_ttl(d(doc), 1).map(drop).unwrap(),
                    1 => c.insert_ttl(d(doc), 3_600_000).map(drop).unwrap(),
                    _ => c.insert(d(doc)).map(drop).unwrap(),
                }
            }
            let_expire();
            for keys in [
                doc! {"a": 1},
                doc! {"x": 1},
                doc! {"a.b": 1},
                doc! {"a.b": -1, "a.c": 1},
                doc! {"x": 1, "y": -1},
                doc! {"a": 1, "x": 1},
                doc! {"y.b": 1, "pad": 1},
            ] {
                for options in [
                    doc! {},
                    doc! {"unique": true},
                    doc! {"unique": true, "sparse": true},
                    doc! {"unique": true, "partialFilterExpression": {"pad": {"$gt": "ppppp"}}},
                ] {
                    match create_and_check(&db, &coll, keys.clone(), options) {
                        Ok(()) => built += 1,
                        Err(_) => refused += 1,
                    }
                }
            }
        }
    }
    // Both outcomes were exercised.
    assert!(
        built > 20 && refused > 20,
        "{built} built, {refused} refused"
    );
}

/// Entries in the first value layout (`_id` key repeated in the value, covered values as
/// BSON) keep working: queries (covered or not) read them, `nexus_check` finds them
/// consistent, and writes replace them; a damaged covered section is a check problem, not a
/// failure of the check.
#[test]
fn entries_of_the_first_layout_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir, StorageEngine::Wasp);
    let c = db.collection("c");
    c.insert_many(
        (0..50)
            .map(|i| d(doc! {"_id": i, "a": i % 10, "s": format!("s{i}")}))
            .collect(),
    )
    .unwrap();
    let name = c.create_index(&doc! {"a": 1}, &doc! {}).unwrap();
    let table = entry_table("c", &name);
    let fields = vec![KeyField {
        path: "a".into(),
        descending: false,
    }];
    let first_layout = |key: &[u8], value: &[u8]| {
        let id = entry_id(key, value).to_vec();
        let covered = covered_values(&fields, key, value)
            .unwrap()
            .unwrap()
            .into_owned();
        let mut v = (id.len() as u16).to_le_bytes().to_vec();
        v.extend_from_slice(&id);
        v.extend_from_slice(&covered);
        v
    };
    db.write(|t| {
        for (k, v) in t.scan(&table, None, usize::MAX) {
            // Length, record id (a clustered collection), types.
            assert_eq!(v.len(), 12, "a compact entry: {v:?}");
            let old = first_layout(&k, &v);
            t.put(&table, k, Bytes::from(old))?;
        }
        Ok(())
    })
    .unwrap();
    let report = db.check_report().unwrap();
    assert_eq!(report["ok"], serde_json::Value::Bool(true), "{report}");
    let rows = |projection: Option<BsonDocument>| {
        let options = FindOptions {
            projection,
            sort: Some(doc! {"a": 1}),
            ..FindOptions::default()
        };
        let mut cur = c.find(&doc! {"a": {"$gte": 8}}, options).unwrap();
        let mut out = Vec::new();
        while let Some(doc) = cur.next_document().unwrap() {
            out.push(doc.into_bson());
        }
        out
    };
    let covered = rows(Some(doc! {"a": 1, "_id": 0}));
    assert_eq!(covered.len(), 10);
    assert!(covered
        .iter()
        .all(|d| d.len() == 1 && d.get_i32("a").unwrap() >= 8));
    let whole = rows(None);
    assert_eq!(whole.len(), 10);
    assert!(whole.iter().all(|d| d.get_str("s").is_ok()));
    // A write replaces the entry of the document it changes (new key, so a new entry).
    c.update(
        &doc! {"_id": 3},
        &doc! {"$set": {"a": 99}},
        Default::default(),
    )
    .unwrap();
    let report = db.check_report().unwrap();
    assert_eq!(report["ok"], serde_json::Value::Bool(true), "{report}");
    // A damaged covered section: reported by the check.
    db.write(|t| {
        let (k, v) = t.scan(&table, None, 1).remove(0);
        let mut v = v.to_vec();
        let last = v.len() - 2;
        v[last] ^= 0x01;
        t.put(&table, k, Bytes::from(v))
    })
    .unwrap();
    let report = db.check_report().unwrap();
    assert_eq!(report["ok"], serde_json::Value::Bool(false), "{report}");
}

/// An index build is committed by a checkpoint, not logged entry by entry: the log stays at
/// its header, and the index is there and consistent after reopening.
#[test]
fn an_index_build_is_not_logged() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir, StorageEngine::Wasp);
    let c = db.collection("c");
    c.insert_many(
        (0..3000)
            .map(|i| d(doc! {"_id": i, "email": format!("user{i}@example.com")}))
            .collect(),
    )
    .unwrap();
    db.checkpoint().unwrap();
    let log = dir.path().join("wasp.wasp");
    let before = std::fs::metadata(&log).unwrap().len();
    c.create_index(&doc! {"email": 1}, &doc! {"unique": true})
        .unwrap();
    let after = std::fs::metadata(&log).unwrap().len();
    assert!(
        after <= before,
        "the log grew from {before} to {after} bytes"
    );
    db.close().unwrap();
    let db = open(&dir, StorageEngine::Wasp);
    let report = db.check_report().unwrap();
    assert_eq!(report["ok"], serde_json::Value::Bool(true), "{report}");
    let found = db
        .collection("c")
        .find_one(&doc! {"email": "user2999@example.com"})
        .unwrap()
        .unwrap();
    assert_eq!(found.into_bson().get_i32("_id").unwrap(), 2999);
}

/// A document whose `_id` is too long to index is refused with an error naming it, and
/// nothing is written.
#[test]
fn an_id_too_long_to_index_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir, StorageEngine::Wasp);
    let c = db.collection("c");
    c.create_index(&doc! {"a": 1}, &doc! {}).unwrap();
    for len in [3_000, 40_000] {
        let r = c.insert(d(doc! {"_id": "x".repeat(len), "a": 1}));
        let e = r.expect_err("refused");
        assert!(
            e.to_string().contains("too long") || e.to_string().contains("longer than"),
            "{e}"
        );
        assert_eq!(c.count(&doc! {}).unwrap(), 0);
    }
    let report = db.check_report().unwrap();
    assert_eq!(report["ok"], serde_json::Value::Bool(true), "{report}");
}

/// In a clustered collection every entry carries its document's record id, and an index
/// read fetches the document by it; an entry whose record id names another document (damage)
/// still reads its own document (through the `_id` map) and is reported by the check.
#[test]
fn entries_carry_the_record_id_and_a_wrong_one_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir, StorageEngine::Wasp);
    let c = db.collection("c");
    for i in [7, 3, 9, 1] {
        c.insert(d(doc! {"_id": i, "a": i * 10, "s": format!("s{i}")}))
            .unwrap();
    }
    let name = c.create_index(&doc! {"a": 1}, &doc! {}).unwrap();
    let table = entry_table("c", &name);
    // Record ids follow insertion order: 7 got 1, 3 got 2, 9 got 3, 1 got 4.
    let rids = |db: &Database| {
        db.write(|t| {
            Ok(t.scan(&table, None, usize::MAX)
                .into_iter()
                .map(|(k, v)| entry_record_id(&k, &v))
                .collect::<Vec<_>>())
        })
        .unwrap()
    };
    // Entries in key order: a = 10, 30, 70, 90.
    assert_eq!(rids(&db), vec![Some(4), Some(2), Some(1), Some(3)]);
    c.insert(d(doc! {"_id": 5, "a": 50})).unwrap();
    assert_eq!(rids(&db), vec![Some(4), Some(2), Some(5), Some(1), Some(3)]);
    // Point the entry of a = 30 (document 3) at document 9's record id.
    db.write(|t| {
        let (k, v) = t.scan(&table, None, usize::MAX).remove(1);
        let mut v = v.to_vec();
        v[2..10].copy_from_slice(&3u64.to_be_bytes());
        t.put(&table, k, Bytes::from(v))
    })
    .unwrap();
    let found = c
        .find(&doc! {"a": 30}, FindOptions::default())
        .unwrap()
        .next_document()
        .unwrap()
        .unwrap()
        .into_bson();
    assert_eq!(found.get_i32("_id").unwrap(), 3, "{found}");
    let report = db.check_report().unwrap();
    assert_eq!(report["ok"], serde_json::Value::Bool(false), "{report}");
    assert!(report.to_string().contains("another record id"), "{report}");
}
