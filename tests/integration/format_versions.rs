//! Format versions: a new file is format version 6 (WASP; 2 with memlog) and stores each
//! document's metadata in the lean record (version 4); files of earlier format versions keep
//! their version and keep getting the records their builds read (version 3 in files of format
//! versions 2 to 5, version 2 in files of format version 1), through every kind of write, on
//! both storage engines. WASP collections of a version-3-or-later file are clustered
//! (insertion order); a version-2 or -1 file keeps creating key-ordered ones, which its builds
//! read.

use nexus::{Database, Document, DocumentId, OpenOptions, StorageEngine};
use std::path::Path;

fn open(path: &Path, engine: StorageEngine) -> Database {
    let options = OpenOptions {
        storage: Some(engine),
        ..OpenOptions::default()
    };
    Database::open(path, options).unwrap()
}

fn header_version(path: &Path) -> u32 {
    let b = std::fs::read(path).unwrap();
    u32::from_le_bytes(b[16..20].try_into().unwrap())
}

fn stat(db: &Database, key: &str) -> u64 {
    db.stats().unwrap()["storage"][key].as_u64().unwrap()
}

fn doc(json: &str) -> Document {
    Document::from_json(json).unwrap()
}

/// Every kind of write into `db`; returns the ids written.
fn write_everything(db: &Database) -> Vec<DocumentId> {
    let c = db.collection("c");
    let a = c.insert(doc(r#"{"_id":"a","n":1}"#)).unwrap();
    let b = c
        .insert_ttl(doc(r#"{"_id":"b","n":2}"#), 3_600_000)
        .unwrap();
    c.insert_many(vec![doc(r#"{"_id":"m1"}"#), doc(r#"{"_id":"m2"}"#)])
        .unwrap();
    c.replace(&a, doc(r#"{"n":10}"#)).unwrap();
    c.update(
        &bson::doc! {"_id": "b"},
        &bson::doc! {"$inc": {"n": 5}},
        Default::default(),
    )
    .unwrap();
    c.set_ttl(&a, 7_200_000).unwrap();
    vec![a, b]
}

fn varint_len(mut v: u64) -> u64 {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)).cast_unsigned()
}

/// The size of the metadata of the four documents `write_everything` leaves, in the record
/// version a file of format version `format` writes (`docs/FORMAT.md`). Version 2 (format
/// version 1): 99 bytes of BSON, 107 with an expiry. Version 3 (format versions 2 to 5):
/// the tag, expiry, flags and creation time (18 bytes), then the varints of the time since
/// creation (zigzag) and of the version. Version 4 (format version 6 and later): the tag and
/// flags, the expiry only when there is one, then the varints of the creation and update
/// times (as u64) and of the version.
fn metadata_bytes(db: &Database, format: u32) -> u64 {
    let c = db.collection("c");
    ["a", "b", "m1", "m2"]
        .iter()
        .map(|text| {
            let id = c.resolve_text_id(text).unwrap();
            let m = c.get_meta(&id).unwrap().unwrap();
            let since = varint_len(zigzag(m.updated_at - m.created_at)) + varint_len(m.version);
            match format {
                1 => 99 + 8 * u64::from(m.expires_at.is_some()),
                2..=5 => 18 + since,
                _ => {
                    2 + 8 * u64::from(m.expires_at.is_some())
                        + varint_len(m.created_at.cast_unsigned())
                        + varint_len(m.updated_at.cast_unsigned())
                        + varint_len(m.version)
                }
            }
        })
        .sum()
}

fn check_contents(db: &Database, ids: &[DocumentId]) {
    let c = db.collection("c");
    let a = c.get(&ids[0]).unwrap().unwrap();
    assert_eq!(a.as_bson().get_i32("n").unwrap(), 10);
    let b = c.get(&ids[1]).unwrap().unwrap();
    assert_eq!(b.as_bson().get_i32("n").unwrap(), 7);
    let meta = c.get_meta(&ids[0]).unwrap().unwrap();
    assert_eq!(meta.version, 3, "inserted, replaced, TTL set");
    assert!(meta.ephemeral && meta.expires_at.is_some());
    assert!(meta.updated_at >= meta.created_at);
    let meta = c.get_meta(&ids[1]).unwrap().unwrap();
    assert_eq!(meta.version, 2);
    assert_eq!(c.count(&bson::doc! {}).unwrap(), 4);
}

#[test]
fn new_files_are_format_6_and_older_files_stay_readable_by_their_builds() {
    for engine in [StorageEngine::Wasp, StorageEngine::MemLog] {
        let new_version = if engine == StorageEngine::Wasp { 6 } else { 2 };
        let versions: &[u32] = if engine == StorageEngine::Wasp {
            &[6, 3, 1]
        } else {
            &[2, 1]
        };
        let dir = tempfile::tempdir().unwrap();
        let mut without_metadata = Vec::new();
        for &version in versions {
            let path = dir.path().join(format!("f{version}.db"));
            open(&path, engine).close().unwrap();
            assert_eq!(header_version(&path), new_version, "a new file's version");
            if version != new_version {
                crate::common::set_format_version(&path, version);
            }
            let db = open(&path, engine);
            assert_eq!(stat(&db, "format_version"), u64::from(version));
            let ids = write_everything(&db);
            check_contents(&db, &ids);
            // The stored bytes of the formats differ by the metadata alone (four documents,
            // two with an expiry: "a", "b").
            without_metadata.push(stat(&db, "data_bytes") - metadata_bytes(&db, version));
            db.close().unwrap();
            assert_eq!(
                header_version(&path),
                version,
                "{engine:?}: the version stays"
            );
            let db = open(&path, engine);
            check_contents(&db, &ids);
            db.close().unwrap();
        }
        assert!(
            without_metadata.iter().all(|b| *b == without_metadata[0]),
            "{engine:?}: {versions:?} {without_metadata:?}"
        );
    }
}

/// The `_id`s of `coll` in the order a find without a sort returns them.
fn natural_order(db: &Database, coll: &str) -> Vec<String> {
    db.collection(coll)
        .find(&bson::doc! {}, Default::default())
        .unwrap()
        .map(|d| d.unwrap().as_bson().get_str("_id").unwrap().to_owned())
        .collect()
}

#[test]
fn version_3_collections_keep_insertion_order_and_version_2_files_keep_key_order() {
    let dir = tempfile::tempdir().unwrap();
    let ids = ["m", "b", "z", "a", "q"];
    for version in [6u32, 3, 2] {
        let path = dir.path().join(format!("v{version}.db"));
        open(&path, StorageEngine::Wasp).close().unwrap();
        if version != 6 {
            crate::common::set_format_version(&path, version);
        }
        let db = open(&path, StorageEngine::Wasp);
        let c = db.collection("c");
        for id in ids {
            c.insert(doc(&format!(r#"{{"_id":"{id}","n":1}}"#)))
                .unwrap();
        }
        // Replacing keeps a document's place; deleting and inserting again moves it last.
        c.update(
            &bson::doc! {"_id": "b"},
            &bson::doc! {"$set": {"n": 2, "pad": "x".repeat(3000)}},
            Default::default(),
        )
        .unwrap();
        c.delete(&bson::doc! {"_id": "m"}, false).unwrap();
        c.insert(doc(r#"{"_id":"m"}"#)).unwrap();
        let want: Vec<&str> = if version >= 3 {
            vec!["b", "z", "a", "q", "m"]
        } else {
            vec!["a", "b", "m", "q", "z"]
        };
        let check = |db: &Database| {
            assert_eq!(natural_order(db, "c"), want, "version {version}");
            assert_eq!(stat(db, "format_version"), u64::from(version));
            let report = db.check_report().unwrap();
            assert_eq!(report["ok"], serde_json::Value::Bool(true), "{report}");
            let b = db
                .collection("c")
                .get(&DocumentId::from_str_id("b").unwrap());
            assert_eq!(b.unwrap().unwrap().as_bson().get_i32("n").unwrap(), 2);
        };
        check(&db);
        db.close().unwrap();
        let db = open(&path, StorageEngine::Wasp);
        check(&db);
        db.close().unwrap();
        assert_eq!(header_version(&path), version, "the version stays");
    }
}

/// The `_id` of the document of `coll` that has the field `hit<round>`.
fn hit_by(db: &Database, round: i32) -> String {
    let mut found = db
        .collection("c")
        .find(
            &bson::doc! {format!("hit{round}"): true},
            Default::default(),
        )
        .unwrap()
        .map(|d| d.unwrap().as_bson().get_str("_id").unwrap().to_owned());
    let id = found.next().expect("one document updated");
    assert!(found.next().is_none(), "one document updated");
    id
}

#[test]
fn the_first_match_of_an_update_does_not_depend_on_the_plan() {
    for engine in [StorageEngine::Wasp, StorageEngine::MemLog] {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&dir.path().join("f.db"), engine);
        let c = db.collection("c");
        for id in ["z", "a", "m"] {
            c.insert(doc(&format!(r#"{{"_id":"{id}","k":1}}"#)))
                .unwrap();
        }
        let update_one = |round: i32| {
            let r = c
                .update(
                    &bson::doc! {"k": 1},
                    &bson::doc! {"$set": {format!("hit{round}"): true}},
                    Default::default(),
                )
                .unwrap();
            assert_eq!(r.modified, 1);
        };
        update_one(1);
        c.create_index(&bson::doc! {"k": 1}, &bson::doc! {})
            .unwrap();
        update_one(2);
        // The collection's order: insertion order (WASP), `_id` order (memlog).
        let first = if engine == StorageEngine::Wasp {
            "z"
        } else {
            "a"
        };
        assert_eq!(hit_by(&db, 1), first, "{engine:?}: collection scan");
        assert_eq!(hit_by(&db, 2), first, "{engine:?}: through the index");
        let deleted = c.delete(&bson::doc! {"k": 1}, false).unwrap();
        assert_eq!(deleted, 1);
        assert_eq!(
            natural_order(&db, "c").first().map(String::as_str),
            Some(if engine == StorageEngine::Wasp {
                "a"
            } else {
                "m"
            }),
            "{engine:?}: the delete took the first match through the index"
        );
    }
}
