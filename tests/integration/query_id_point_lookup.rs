//! A filter that pins a string, ObjectId or numeric `_id` is answered by a point lookup
//! instead of a scan; the answers are the same as a scan's (extra conditions, skip, expiry,
//! `$and`, numbers of other types, Decimal128 `_id`s).

use bson::doc;
use nexus::{Database, Document, FindOptions, OpenOptions, UpdateOptions};

#[test]
fn id_point_lookups_answer_like_scans() {
    let db = Database::open(
        ":memory:",
        OpenOptions::from_json(Some(r#"{"sweeper_interval_ms": 0}"#)).unwrap(),
    )
    .unwrap();
    let c = db.collection("c");
    for i in 0..50 {
        c.insert(Document::from(doc! {"_id": format!("k{i}"), "a": i}))
            .unwrap();
    }
    c.insert_ttl(Document::from(doc! {"_id": "gone", "a": 1}), 1)
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    let count = |f: bson::Document| c.count(&f).unwrap();
    assert_eq!(count(doc! {"_id": "k7"}), 1);
    assert_eq!(count(doc! {"_id": {"$eq": "k7"}, "a": 7}), 1);
    assert_eq!(count(doc! {"_id": "k7", "a": 8}), 0);
    assert_eq!(count(doc! {"$and": [{"_id": "k7"}, {"a": {"$gt": 5}}]}), 1);
    assert_eq!(count(doc! {"_id": "missing"}), 0);
    assert_eq!(
        count(doc! {"_id": "gone"}),
        0,
        "expired documents stay hidden"
    );
    let skipped = FindOptions {
        skip: 1,
        ..FindOptions::default()
    };
    assert_eq!(c.find(&doc! {"_id": "k7"}, skipped).unwrap().count(), 0);
    let found: Vec<Document> = c
        .find(&doc! {"_id": "k9"}, FindOptions::default())
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(found.len(), 1);
    let r = c
        .update(
            &doc! {"_id": "k3"},
            &doc! {"$set": {"b": true}},
            UpdateOptions::default(),
        )
        .unwrap();
    assert_eq!((r.matched, r.modified), (1, 1));
    assert_eq!(c.delete(&doc! {"_id": "k4"}, false).unwrap(), 1);
    assert_eq!(c.delete(&doc! {"_id": "k4"}, false).unwrap(), 0);
    // An _id inside $or is not a point query; the scan still answers it.
    assert_eq!(count(doc! {"$or": [{"_id": "k1"}, {"_id": "k2"}]}), 2);
}

/// The winning plan's stage of `filter` (what `nexus explain` shows).
fn stage(c: &nexus::Collection, filter: bson::Document) -> String {
    let e = c.explain(&filter, FindOptions::default()).unwrap();
    e.get_document("queryPlanner")
        .and_then(|q| q.get_document("winningPlan"))
        .and_then(|w| w.get_str("stage"))
        .unwrap()
        .to_owned()
}

/// Integer and double `_id`s (the common ids of data moved from SQL) are point lookups too:
/// equal numbers of any type share one key, so `{_id: 2}` finds the document stored with
/// `2`, `2i64` or `2.0`. A Decimal128 `_id` has a key of its own, which an equal number does
/// not reach: while the collection holds one, numeric equalities scan (and find it).
#[test]
fn numeric_ids_are_point_lookups_unless_decimal_ids_exist() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("n.db"), OpenOptions::default()).unwrap();
    let c = db.collection("c");
    for i in 0..100i32 {
        let id = match i % 3 {
            0 => bson::Bson::Int32(i),
            1 => bson::Bson::Int64(i64::from(i)),
            _ => bson::Bson::Double(f64::from(i)),
        };
        c.insert(Document::from(doc! {"_id": id, "a": i})).unwrap();
    }
    c.insert(Document::from(doc! {"_id": 0.5, "a": -1}))
        .unwrap();
    c.insert(Document::from(doc! {"_id": "s", "a": -2}))
        .unwrap();
    for f in [
        doc! {"_id": 4},
        doc! {"_id": 4i64},
        doc! {"_id": 4.0},
        doc! {"_id": 0.5},
        doc! {"_id": {"$eq": 5}, "a": 5},
    ] {
        assert_eq!(stage(&c, f.clone()), "IDHACK", "{f}");
        assert_eq!(c.count(&f).unwrap(), 1, "{f}");
    }
    assert_eq!(c.count(&doc! {"_id": 4, "a": 5}).unwrap(), 0);
    assert_eq!(c.count(&doc! {"_id": 1000}).unwrap(), 0);
    assert_eq!(c.count(&doc! {"_id": f64::NAN}).unwrap(), 0);
    assert_eq!(stage(&c, doc! {"_id": f64::NAN}), "COLLSCAN");
    let r = c
        .update(
            &doc! {"_id": 7.0},
            &doc! {"$set": {"b": 1}},
            UpdateOptions::default(),
        )
        .unwrap();
    assert_eq!((r.matched, r.modified), (1, 1));
    assert_eq!(c.delete(&doc! {"_id": 8i64}, false).unwrap(), 1);
    // Inside a transaction: the transaction's own insert is found by the lookup.
    db.begin().unwrap();
    c.insert(Document::from(doc! {"_id": 500, "a": 500}))
        .unwrap();
    assert_eq!(stage(&c, doc! {"_id": 500.0}), "IDHACK");
    assert_eq!(c.count(&doc! {"_id": 500.0}).unwrap(), 1);
    db.rollback().unwrap();
    assert_eq!(c.count(&doc! {"_id": 500}).unwrap(), 0);
    // A Decimal128 `_id` equal to 9 (a distinct key): numeric equalities scan and find both.
    let nine: bson::Decimal128 = "9".parse().unwrap();
    c.insert(Document::from(doc! {"_id": nine, "a": -9}))
        .unwrap();
    assert_eq!(stage(&c, doc! {"_id": 9}), "COLLSCAN");
    assert_eq!(c.count(&doc! {"_id": 9}).unwrap(), 2);
    assert_eq!(c.count(&doc! {"_id": 10}).unwrap(), 1);
    // Strings are unaffected by Decimal128 keys.
    assert_eq!(stage(&c, doc! {"_id": "s"}), "IDHACK");
    assert_eq!(c.delete(&doc! {"a": -9}, false).unwrap(), 1);
    assert_eq!(stage(&c, doc! {"_id": 9}), "IDHACK");
    assert_eq!(c.count(&doc! {"_id": 9}).unwrap(), 1);
}

/// `nexus_find_one` with a filter that is exactly `{_id: "..."}` (read by key, without a plan)
/// answers as any other filter does: the document's JSON, `NEXUS_NOT_FOUND` for a missing
/// document, a missing collection or an expired one, the transaction's own uncommitted
/// insert inside it and not after its rollback, and the same answer as the planned filter
/// `{_id: {$eq: ...}}`.
#[test]
fn find_one_by_a_plain_id_answers_like_the_planned_filter() {
    use nexus::ffi::db::{nexus_close, nexus_db, nexus_open};
    use nexus::ffi::document::{nexus_find_one, nexus_insert, nexus_insert_ttl};
    use nexus::ffi::maintenance::nexus_free;
    use nexus::ffi::status::{NEXUS_NOT_FOUND, NEXUS_OK};
    use nexus::ffi::txn::{nexus_begin, nexus_rollback};
    use std::ffi::{CStr, CString};
    use std::os::raw::c_char;

    let c = |s: &str| CString::new(s).unwrap();
    let mut db: *mut nexus_db = std::ptr::null_mut();
    // SAFETY: every pointer below is a live CString, a NULL-initialized out-value or the
    // handle nexus_open gave; every string the library gives is freed with nexus_free.
    unsafe {
        assert_eq!(
            nexus_open(c(":memory:").as_ptr(), std::ptr::null(), &mut db),
            NEXUS_OK
        );
        let find = |coll: &str, filter: &str| -> (i32, Option<String>) {
            let mut out: *mut c_char = std::ptr::null_mut();
            let rc = nexus_find_one(db, c(coll).as_ptr(), c(filter).as_ptr(), &mut out);
            let text = (!out.is_null()).then(|| CStr::from_ptr(out).to_str().unwrap().to_owned());
            nexus_free(out.cast());
            (rc, text)
        };
        let insert = |json: &str| {
            let rc = nexus_insert(db, c("c").as_ptr(), c(json).as_ptr(), std::ptr::null_mut());
            assert_eq!(rc, NEXUS_OK, "{json}");
        };
        assert_eq!(
            find("c", r#"{"_id": "a"}"#).0,
            NEXUS_NOT_FOUND,
            "no collection"
        );
        insert(r#"{"_id": "a", "n": 1, "s": "x\"y"}"#);
        insert(r#"{"_id": 7, "n": 2}"#);
        let fast = find("c", r#"{"_id": "a"}"#);
        assert_eq!(fast.0, NEXUS_OK);
        assert_eq!(fast.1.as_deref(), Some(r#"{"_id":"a","n":1,"s":"x\"y"}"#));
        assert_eq!(fast, find("c", r#"{"_id": {"$eq": "a"}}"#));
        assert_eq!(find("c", r#"{"_id": "b"}"#).0, NEXUS_NOT_FOUND);
        assert_eq!(
            find("c", r#"{"_id": 7}"#).1.as_deref(),
            Some(r#"{"_id":7,"n":2}"#)
        );
        assert_eq!(find("c", r#"{"_id": "a", "n": 2}"#).0, NEXUS_NOT_FOUND);

        let rc = nexus_insert_ttl(
            db,
            c("c").as_ptr(),
            c(r#"{"_id": "brief"}"#).as_ptr(),
            1,
            std::ptr::null_mut(),
        );
        assert_eq!(rc, NEXUS_OK);
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert_eq!(
            find("c", r#"{"_id": "brief"}"#).0,
            NEXUS_NOT_FOUND,
            "expired"
        );

        assert_eq!(nexus_begin(db), NEXUS_OK);
        insert(r#"{"_id": "t", "n": 3}"#);
        assert_eq!(
            find("c", r#"{"_id": "t"}"#).1.as_deref(),
            Some(r#"{"_id":"t","n":3}"#)
        );
        assert_eq!(nexus_rollback(db), NEXUS_OK);
        assert_eq!(
            find("c", r#"{"_id": "t"}"#).0,
            NEXUS_NOT_FOUND,
            "rolled back"
        );
        nexus_close(db);
    }
}
