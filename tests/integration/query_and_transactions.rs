//! The Rust API end to end: query v1 semantics (filters, sort/skip/limit/projection),
//! updates and upserts, atomic insert_many, snapshot cursors, transactions, several
//! connections on several threads, and reopen.

use crate::common;

use bson::{doc, Bson};
use nexus::{
    Database, Document, Error, FindOneAndOptions, FindOptions, OpenOptions, UpdateOptions,
};

fn people(db: &Database) {
    let c = db.collection("people");
    for (id, name, age, city) in [
        ("1", "ada", 36, "london"),
        ("2", "alan", 41, "london"),
        ("3", "grace", 85, "new york"),
        ("4", "edsger", 72, "austin"),
    ] {
        c.insert(Document::from(doc! {"_id": id, "name": name, "age": age, "home": {"city": city}, "tags": [name, city]}))
            .unwrap();
    }
}

fn names(c: nexus::Cursor) -> Vec<String> {
    c.map(|d| {
        d.unwrap()
            .get("name")
            .and_then(Bson::as_str)
            .unwrap()
            .to_owned()
    })
    .collect()
}

#[test]
fn filters_sort_skip_limit_projection() {
    let db = Database::open_in_memory().unwrap();
    people(&db);
    let c = db.collection("people");
    let opts = FindOptions::from_json(r#"{"sort": {"age": -1}, "skip": 1, "limit": 2}"#).unwrap();
    assert_eq!(names(c.find(&doc! {}, opts).unwrap()), ["edsger", "alan"]);
    let q = doc! {"$or": [{"home.city": "austin"}, {"age": {"$lt": 40}}]};
    assert_eq!(
        names(c.find(&q, FindOptions::default()).unwrap()),
        ["ada", "edsger"]
    );
    assert_eq!(c.count(&doc! {"tags": "london"}).unwrap(), 2);
    assert_eq!(c.count(&doc! {"age": {"$in": [36, 85.0]}}).unwrap(), 2);
    assert_eq!(c.count(&doc! {"nick": {"$exists": false}}).unwrap(), 4);
    let opts =
        FindOptions::from_json(r#"{"projection": {"name": 1, "_id": 0}, "limit": 1}"#).unwrap();
    let first: Vec<Document> = c
        .find(&doc! {}, opts)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(first[0].to_json(), r#"{"name":"ada"}"#);
    let e = c
        .find(&doc! {"age": {"$foo": 1}}, FindOptions::default())
        .err()
        .unwrap();
    assert!(matches!(e, Error::Parse(_)) && e.to_string().contains("$foo"));
}

#[test]
fn updates_upserts_and_find_one_and_modify() {
    let db = Database::open_in_memory().unwrap();
    people(&db);
    let c = db.collection("people");
    let multi = UpdateOptions {
        multi: true,
        upsert: false,
    };
    let r = c
        .update(
            &doc! {"home.city": "london"},
            &doc! {"$inc": {"age": 1}},
            multi,
        )
        .unwrap();
    assert_eq!((r.matched, r.modified), (2, 2));
    let r = c
        .update(
            &doc! {"_id": "1"},
            &doc! {"$set": {"age": 37}},
            UpdateOptions::default(),
        )
        .unwrap();
    assert_eq!(
        (r.matched, r.modified),
        (1, 0),
        "setting the same value modifies nothing"
    );
    let upsert = UpdateOptions {
        multi: false,
        upsert: true,
    };
    let r = c
        .update(
            &doc! {"name": "barbara", "home.city": "boston"},
            &doc! {"$set": {"age": 80}},
            upsert,
        )
        .unwrap();
    let id = r.upserted_id.expect("upserted");
    let b = c.get(&id).unwrap().unwrap();
    assert_eq!(
        b.get("home"),
        Some(&Bson::Document(doc! {"city": "boston"}))
    );
    assert_eq!(b.get("age"), Some(&Bson::Int32(80)));
    let meta = c
        .get_meta(&nexus::DocumentId::from_str_id("1").unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(meta.version, 2);

    let opts =
        FindOneAndOptions::from_json(Some(r#"{"sort": {"age": 1}, "return": "after"}"#)).unwrap();
    let d = c
        .find_one_and_update(&doc! {}, &doc! {"$set": {"youngest": true}}, opts)
        .unwrap()
        .unwrap();
    assert_eq!(d.get("name").and_then(Bson::as_str), Some("ada"));
    assert_eq!(d.get("youngest"), Some(&Bson::Boolean(true)));
    let opts = FindOneAndOptions::from_json(Some(r#"{"sort": {"age": -1}}"#)).unwrap();
    let d = c.find_one_and_delete(&doc! {}, opts).unwrap().unwrap();
    assert_eq!(d.get("name").and_then(Bson::as_str), Some("grace"));
    assert_eq!(c.count(&doc! {}).unwrap(), 4);
    assert_eq!(
        c.distinct("home.city", &doc! {}).unwrap(),
        vec![
            Bson::from("austin"),
            Bson::from("boston"),
            Bson::from("london")
        ]
    );
    // Errors are found before anything is written.
    let e = c
        .update(&doc! {}, &doc! {"$set": {"_id": "x"}}, multi)
        .unwrap_err();
    assert!(matches!(e, Error::Parse(_)), "{e:?}");
    assert_eq!(c.count(&doc! {"youngest": true}).unwrap(), 1);
}

#[test]
fn insert_many_is_all_or_nothing() {
    let db = Database::open_in_memory().unwrap();
    let c = db.collection("c");
    c.insert(Document::from(doc! {"_id": 3})).unwrap();
    let batch = vec![
        Document::from(doc! {"_id": 1}),
        Document::from(doc! {"_id": 2}),
        Document::from(doc! {"_id": 3.0}),
    ];
    assert!(matches!(c.insert_many(batch), Err(Error::DuplicateKey(_))));
    assert_eq!(c.count(&doc! {}).unwrap(), 1);
    let batch = vec![
        Document::from(doc! {"_id": 1}),
        Document::from(doc! {"_id": 1}),
    ];
    assert!(matches!(c.insert_many(batch), Err(Error::DuplicateKey(_))));
    assert_eq!(
        c.insert_many(vec![Document::new(), Document::new()])
            .unwrap()
            .len(),
        2
    );
    assert_eq!(c.count(&doc! {}).unwrap(), 3);
}

#[test]
fn oversized_documents_are_refused() {
    let db = Database::open_in_memory().unwrap();
    let big = "x".repeat(17 * 1024 * 1024);
    let e = db
        .collection("c")
        .insert(Document::from(doc! {"big": big}))
        .unwrap_err();
    assert!(
        matches!(e, Error::InvalidArgument(_)) && e.to_string().contains("16 MiB"),
        "{e}"
    );
}

#[test]
fn cursors_read_their_snapshot() {
    let db = Database::open_in_memory().unwrap();
    let c = db.collection("c");
    for i in 0..1000 {
        c.insert(Document::from(doc! {"i": i})).unwrap();
    }
    let mut cur = c.find(&doc! {}, FindOptions::default()).unwrap();
    let first = cur.next().unwrap().unwrap();
    c.delete(&doc! {}, true).unwrap();
    c.insert(Document::from(doc! {"i": -1})).unwrap();
    assert_eq!(1 + cur.count(), 1000);
    assert!(first.get("i").is_some());
}

#[test]
fn transactions_commit_roll_back_and_isolate() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let a = Database::open(&path, common::open_options()).unwrap();
    let b = Database::open(
        &path,
        OpenOptions {
            busy_timeout_ms: 50,
            ..common::open_options()
        },
    )
    .unwrap();
    a.begin().unwrap();
    a.collection("c")
        .insert(Document::from(doc! {"_id": "x"}))
        .unwrap();
    assert_eq!(
        a.collection("c").count(&doc! {}).unwrap(),
        1,
        "a sees its own write"
    );
    assert_eq!(
        b.collection("c").count(&doc! {}).unwrap(),
        0,
        "b does not see it yet"
    );
    let e = b.collection("c").insert(Document::new()).unwrap_err();
    assert!(matches!(e, Error::Busy(_)), "{e:?}");
    assert!(matches!(a.begin(), Err(Error::Txn(_))));
    a.rollback().unwrap();
    assert_eq!(a.collection("c").count(&doc! {}).unwrap(), 0);
    assert!(matches!(a.commit(), Err(Error::Txn(_))));
    a.transaction(|db| db.collection("c").insert(Document::from(doc! {"_id": "y"})))
        .unwrap();
    assert_eq!(b.collection("c").count(&doc! {}).unwrap(), 1);
    drop(a);
    drop(b);
    let db = Database::open(&path, common::open_options()).unwrap();
    assert_eq!(db.collection("c").count(&doc! {}).unwrap(), 1);
}

#[test]
fn connections_on_threads_share_one_engine() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mt.db");
    std::thread::scope(|s| {
        for t in 0..4 {
            let path = path.clone();
            s.spawn(move || {
                let db = Database::open(&path, common::open_options()).unwrap();
                for i in 0..100 {
                    db.collection("c")
                        .insert(Document::from(doc! {"t": t, "i": i}))
                        .unwrap();
                }
            });
        }
    });
    let db = Database::open(&path, common::open_options()).unwrap();
    assert_eq!(db.collection("c").count(&doc! {}).unwrap(), 400);
    let stats = db.stats().unwrap();
    let syncs = stats["storage"]["syncs"].as_u64().unwrap();
    eprintln!(
        "group commit: {syncs} syncs after reopen; {}",
        stats["storage"]
    );
}

#[test]
fn collections_create_drop_rename_and_reserved_names() {
    let db = Database::open_in_memory().unwrap();
    db.create_collection("a", None).unwrap();
    assert!(matches!(
        db.create_collection("a", None),
        Err(Error::DuplicateKey(_))
    ));
    assert!(matches!(
        db.create_collection("_x", None),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        db.create_collection("b", Some(r#"{"bogus": 1}"#)),
        Err(Error::InvalidArgument(_))
    ));
    db.rename_collection("a", "b").unwrap();
    assert_eq!(db.list_collections().unwrap(), ["b"]);
    assert!(matches!(
        db.drop_collection("a"),
        Err(Error::NoCollection(_))
    ));
    db.drop_collection("b").unwrap();
    assert!(db.list_collections().unwrap().is_empty());
}

#[test]
fn text_ids_from_insert_find_their_documents() {
    let db = Database::open_in_memory().unwrap();
    let c = db.collection("c");
    let num = c
        .insert(Document::from(doc! {"_id": 5, "k": "number"}))
        .unwrap();
    let oid = c
        .insert(
            Document::from_json(r#"{"_id": {"$oid": "507f1f77bcf86cd799439011"}, "k": "oid"}"#)
                .unwrap(),
        )
        .unwrap();
    let s = c
        .insert(Document::from(doc! {"_id": "5", "k": "string"}))
        .unwrap();
    for (id, k) in [(num, "number"), (oid, "oid"), (s, "string")] {
        let resolved = c.resolve_text_id(&id.to_text()).unwrap();
        let got = c.get(&resolved).unwrap().unwrap();
        let want = if k == "number" { "string" } else { k }; // "5" reads as the string first
        assert_eq!(
            got.get("k").and_then(Bson::as_str),
            Some(want),
            "{}",
            id.to_text()
        );
    }
}
