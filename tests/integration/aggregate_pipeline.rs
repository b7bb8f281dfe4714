//! `Collection::aggregate` end to end, beyond the data-driven conformance suite: the leading
//! `$match` / `$sort` / `$limit` served by an index (seen in `explain`), results seen
//! inside a transaction, `$out` rolled back with its transaction, streaming `$group` over a
//! collection larger than any one batch, `$lookup` across collections of a file database,
//! and the cursor's life after the connection closes.

use crate::common;

use bson::{doc, Bson, Document as BsonDocument};
use nexus::{AggregateOptions, Database, Document, Error};

fn load(db: &Database, n: i32) {
    let docs = (0..n)
        .map(|i| Document::from(doc! {"_id": i, "k": i % 10, "v": i, "s": format!("s{i}")}))
        .collect();
    db.collection("c").insert_many(docs).unwrap();
}

fn run(db: &Database, pipeline: Vec<BsonDocument>, opts: AggregateOptions) -> Vec<BsonDocument> {
    db.collection("c")
        .aggregate(&pipeline, opts)
        .unwrap()
        .map(|d| d.unwrap().into_bson())
        .collect()
}

#[test]
fn leading_match_sort_limit_use_an_index() {
    let db = Database::open_in_memory().unwrap();
    load(&db, 500);
    db.collection("c")
        .create_index(&doc! {"v": 1}, &doc! {})
        .unwrap();
    let pipeline = vec![
        doc! {"$match": {"v": {"$gte": 100}}},
        doc! {"$sort": {"v": -1}},
        doc! {"$limit": 3},
        doc! {"$project": {"_id": 0, "v": 1}},
    ];
    let explain = run(
        &db,
        pipeline.clone(),
        AggregateOptions {
            explain: true,
            ..AggregateOptions::default()
        },
    );
    let text = format!("{explain:?}");
    assert!(text.contains("IXSCAN"), "{text}");
    assert_eq!(
        explain[0].get_array("stages").unwrap(),
        &vec![Bson::from("$project")]
    );
    let got = run(&db, pipeline, AggregateOptions::default());
    assert_eq!(got, vec![doc! {"v": 499}, doc! {"v": 498}, doc! {"v": 497}]);
    // Without the index the answer is the same.
    db.collection("c").drop_index("v_1").unwrap();
    let again = run(
        &db,
        vec![
            doc! {"$match": {"v": {"$gte": 100}}},
            doc! {"$sort": {"v": -1}},
            doc! {"$limit": 3},
            doc! {"$project": {"_id": 0, "v": 1}},
        ],
        AggregateOptions::default(),
    );
    assert_eq!(again, got);
}

#[test]
fn group_streams_over_many_documents() {
    let db = Database::open_in_memory().unwrap();
    load(&db, 5000);
    let got = run(
        &db,
        vec![
            doc! {"$match": {"k": {"$lt": 3}}},
            doc! {"$group": {"_id": "$k", "n": {"$sum": 1}, "total": {"$sum": "$v"}}},
            doc! {"$sort": {"_id": 1}},
        ],
        AggregateOptions::default(),
    );
    // k = 0: 0, 10, ..., 4990 (500 values, sum 1_247_500); k = 1, 2: 500 more each.
    assert_eq!(
        got,
        vec![
            doc! {"_id": 0, "n": 500, "total": 1_247_500},
            doc! {"_id": 1, "n": 500, "total": 1_248_000},
            doc! {"_id": 2, "n": 500, "total": 1_248_500},
        ]
    );
    let count = run(&db, vec![doc! {"$count": "n"}], AggregateOptions::default());
    assert_eq!(count, vec![doc! {"n": 5000}]);
}

#[test]
fn transactions_see_their_writes_and_roll_back_out() {
    let db = Database::open_in_memory().unwrap();
    load(&db, 10);
    db.begin().unwrap();
    db.collection("c")
        .insert(Document::from(doc! {"_id": 100, "k": 0, "v": 100}))
        .unwrap();
    let got = run(
        &db,
        vec![doc! {"$match": {"k": 0}}, doc! {"$count": "n"}],
        AggregateOptions::default(),
    );
    assert_eq!(got, vec![doc! {"n": 2}]);
    let out = run(
        &db,
        vec![doc! {"$match": {"k": 0}}, doc! {"$out": "zeros"}],
        AggregateOptions::default(),
    );
    assert!(out.is_empty());
    assert_eq!(db.collection("zeros").count(&doc! {}).unwrap(), 2);
    db.rollback().unwrap();
    assert_eq!(db.collection("c").count(&doc! {}).unwrap(), 10);
    assert!(!db.list_collections().unwrap().contains(&"zeros".to_owned()));
}

#[test]
fn lookup_and_merge_on_a_file_database() {
    let dir = tempfile_dir();
    let path = dir.join("agg.db");
    let db = Database::open(&path, common::open_options()).unwrap();
    load(&db, 20);
    let names = (0..10)
        .map(|k| Document::from(doc! {"_id": k, "name": format!("key{k}")}))
        .collect();
    db.collection("names").insert_many(names).unwrap();
    db.collection("names")
        .create_index(&doc! {"name": 1}, &doc! {})
        .unwrap();
    let got = run(
        &db,
        vec![
            doc! {"$match": {"_id": {"$in": [3, 13]}}},
            doc! {"$lookup": {"from": "names", "localField": "k", "foreignField": "_id", "as": "n"}},
            doc! {"$project": {"name": {"$first": "$n.name"}}},
        ],
        AggregateOptions::default(),
    );
    assert_eq!(
        got,
        vec![
            doc! {"_id": 3, "name": "key3"},
            doc! {"_id": 13, "name": "key3"}
        ]
    );
    run(
        &db,
        vec![
            doc! {"$group": {"_id": "$k", "n": {"$sum": 1}}},
            doc! {"$merge": {"into": "names", "whenMatched": "merge"}},
        ],
        AggregateOptions::default(),
    );
    db.close().unwrap();
    let db = Database::open(&path, common::open_options()).unwrap();
    let d = db
        .collection("names")
        .find_one(&doc! {"_id": 4})
        .unwrap()
        .unwrap();
    assert_eq!(d.into_bson(), doc! {"_id": 4, "name": "key4", "n": 2});
    db.close().unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn cursor_stops_after_close_and_errors_are_typed() {
    let db = Database::open_in_memory().unwrap();
    load(&db, 3);
    let c = db.collection("c");
    let mut cur = c
        .aggregate(&[doc! {"$match": {}}], AggregateOptions::default())
        .unwrap();
    assert!(cur.next_document().unwrap().is_some());
    db.close().unwrap();
    assert!(matches!(cur.next_document(), Err(Error::Closed(_))));

    let db = Database::open_in_memory().unwrap();
    load(&db, 3);
    let c = db.collection("c");
    let fails = |p: &[BsonDocument]| match c.aggregate(p, AggregateOptions::default()) {
        Ok(_) => panic!("{p:?} succeeded"),
        Err(e) => e,
    };
    let e = fails(&[doc! {"$densify": {}}]);
    assert!(matches!(e, Error::Unsupported(_)) && e.to_string().contains("$densify"));
    let e = fails(&[doc! {"$project": {"r": {"$divide": [1, 0]}}}]);
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    let e = AggregateOptions::from_json(Some(r#"{"maxTimeMS": 5}"#)).unwrap_err();
    assert!(e.to_string().contains("maxTimeMS"), "{e}");
    // A deeply nested pipeline is refused before anything recurses over it.
    let mut deep = Bson::Int32(1);
    for _ in 0..200 {
        deep = Bson::Array(vec![deep]);
    }
    let e = fails(&[doc! {"$project": {"x": {"$literal": deep}}}]);
    assert!(e.to_string().contains("nests deeper"), "{e}");
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "nexus-agg-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}
