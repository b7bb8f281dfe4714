//! Read transactions (`Database::begin_read`, `nexus_begin_read`): one snapshot for every
//! read of a connection until commit or rollback, no lock taken, writes refused.

use crate::common;

use bson::doc;
use nexus::{Database, Document, Error, FindOptions, OpenOptions};

fn open(path: &std::path::Path, busy_timeout_ms: u64) -> Database {
    Database::open(
        path,
        OpenOptions {
            busy_timeout_ms,
            ..common::open_options()
        },
    )
    .unwrap()
}

fn doc(json: &str) -> Document {
    Document::from_json(json).unwrap()
}

#[test]
fn a_read_transaction_sees_one_snapshot_and_never_blocks_writers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let reader = open(&path, 5_000);
    // A writer that would fail at once if anything held the write lock.
    let writer = open(&path, 1);
    let w = writer.collection("acct");
    w.insert(doc(r#"{"_id": "a", "balance": 60}"#)).unwrap();
    w.insert(doc(r#"{"_id": "b", "balance": 40}"#)).unwrap();
    let r = reader.collection("acct");
    assert_eq!(
        r.get_by_text("a").unwrap().unwrap().get("balance"),
        Some(&60.into())
    );

    reader.begin_read().unwrap();
    assert!(reader.in_transaction());
    // Transfers commit on the other connection while the read transaction is open.
    for _ in 0..5 {
        writer.begin().unwrap();
        w.update(
            &doc! {"_id": "a"},
            &doc! {"$inc": {"balance": -10}},
            Default::default(),
        )
        .unwrap();
        w.update(
            &doc! {"_id": "b"},
            &doc! {"$inc": {"balance": 10}},
            Default::default(),
        )
        .unwrap();
        writer.commit().unwrap();
        // Every read of the reader agrees with the snapshot: find, count, get, distinct.
        let sum: i32 = r
            .find(&doc! {}, FindOptions::default())
            .unwrap()
            .map(|d| d.unwrap().as_bson().get_i32("balance").unwrap())
            .sum();
        assert_eq!(sum, 100);
        assert_eq!(r.count(&doc! {"balance": 60}).unwrap(), 1);
        let a = r.get_by_text("a").unwrap().unwrap();
        assert_eq!(
            a.as_bson().get_i32("balance").unwrap(),
            60,
            "not the cache's newer copy"
        );
    }
    w.insert(doc(r#"{"_id": "c", "balance": 0}"#)).unwrap();
    assert_eq!(
        r.count(&doc! {}).unwrap(),
        2,
        "a document committed later is not seen"
    );

    // Writes on the reading connection are refused and change nothing; no second begin.
    let e = r.insert(doc(r#"{"_id": "x"}"#)).unwrap_err();
    assert!(matches!(e, Error::ReadOnly(_)), "{e}");
    assert!(matches!(reader.begin(), Err(Error::Txn(_))));
    assert!(matches!(reader.begin_read(), Err(Error::Txn(_))));

    // Commit ends it: the latest state from now on.
    reader.commit().unwrap();
    assert!(!reader.in_transaction());
    assert_eq!(r.count(&doc! {}).unwrap(), 3);
    assert_eq!(
        r.get_by_text("a").unwrap().unwrap().get("balance"),
        Some(&10.into())
    );

    // Rollback ends one too, and then writes work again.
    reader.begin_read().unwrap();
    reader.rollback().unwrap();
    r.insert(doc(r#"{"_id": "d", "balance": 0}"#)).unwrap();
    assert_eq!(w.count(&doc! {}).unwrap(), 4);
    assert!(matches!(reader.commit(), Err(Error::Txn(_))));
}

#[test]
fn begin_on_a_read_only_connection_starts_a_read_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    {
        let db = open(&path, 1_000);
        db.collection("c").insert(doc(r#"{"_id": 1}"#)).unwrap();
        db.close().unwrap();
    }
    let ro = Database::open(
        &path,
        OpenOptions {
            read_only: true,
            ..common::open_options()
        },
    )
    .unwrap();
    ro.begin().unwrap();
    assert!(ro.in_transaction());
    assert_eq!(ro.collection("c").count(&doc! {}).unwrap(), 1);
    let e = ro.collection("c").insert(doc(r#"{"_id": 2}"#)).unwrap_err();
    assert!(matches!(e, Error::ReadOnly(_)), "{e}");
    ro.rollback().unwrap();
}
