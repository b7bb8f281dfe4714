//! `Collection::aggregate` past its memory limit (MongoDB's `allowDiskUse`): with
//! `maxMemoryBytes` of a few KiB every blocking stage spills to temporary files in the
//! database's directory and returns what the default limit returns; `allowDiskUse: false`
//! fails instead; the files are gone when the cursor is dropped, read to the end or not.

use bson::{doc, Bson, Document as BsonDocument};
use nexus::{AggregateOptions, Database, Document, Error, OpenOptions};
use std::path::Path;

fn load(db: &Database, n: i32) {
    let docs = (0..n)
        .map(|i| {
            let k = match i % 7 {
                0 => Bson::Int32(i % 13),
                1 => Bson::Double(f64::from(i % 13)),
                2 => Bson::String(format!("s{}", i % 11)),
                3 => Bson::Null,
                4 => Bson::Array(vec![Bson::Int64(i64::from(i % 5))]),
                5 => Bson::Document(doc! {"x": i % 3}),
                _ => Bson::Boolean(i % 2 == 0),
            };
            let pad = "x".repeat(usize::try_from(i % 50).unwrap());
            Document::from(doc! {"_id": i, "k": k, "v": (i * 7919) % 1000, "g": i % 5, "pad": pad})
        })
        .collect();
    db.collection("c").insert_many(docs).unwrap();
}

fn opts(json: &str) -> AggregateOptions {
    AggregateOptions::from_json(Some(json)).unwrap()
}

fn run(db: &Database, pipeline: &[BsonDocument], o: &str) -> Result<Vec<BsonDocument>, Error> {
    db.collection("c")
        .aggregate(pipeline, opts(o))?
        .map(|d| d.map(Document::into_bson))
        .collect()
}

/// Descriptors this process holds on files in `dir` that are deleted (spill runs).
fn open_spills(dir: &Path) -> usize {
    if !cfg!(target_os = "linux") {
        return 0;
    }
    let dir = std::fs::canonicalize(dir).unwrap();
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|p| p.starts_with(&dir) && p.to_string_lossy().ends_with("(deleted)"))
        .count()
}

fn pipelines() -> Vec<Vec<BsonDocument>> {
    vec![
        vec![doc! {"$sort": {"k": 1}}],
        vec![
            doc! {"$match": {"g": {"$gte": 1}}},
            doc! {"$sort": {"v": -1, "k": 1}},
            doc! {"$skip": 3},
        ],
        vec![
            doc! {"$group": {"_id": "$k", "n": {"$sum": 1}, "ids": {"$push": "$_id"}, "vs": {"$addToSet": "$g"}, "f": {"$first": "$v"}, "l": {"$last": "$v"}, "lo": {"$min": "$v"}, "hi": {"$max": "$v"}, "avg": {"$avg": "$g"}}},
        ],
        vec![doc! {"$sortByCount": "$v"}],
        vec![
            doc! {"$bucket": {"groupBy": "$v", "boundaries": [0, 250, 500, 1000], "output": {"ids": {"$push": "$_id"}}}},
        ],
        vec![doc! {"$facet": {"a": [{"$sort": {"v": 1}}, {"$limit": 5}], "b": [{"$count": "n"}]}}],
        vec![doc! {"$project": {"pad": 1, "v": 1}}],
    ]
}

#[test]
fn every_blocking_stage_spills_and_agrees_with_memory() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("spill.db"), OpenOptions::default()).unwrap();
    load(&db, 3000);
    let before: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    for p in pipelines() {
        let want = run(&db, &p, "{}").unwrap();
        let got = run(&db, &p, r#"{"maxMemoryBytes": 4096}"#).unwrap();
        assert_eq!(got, want, "{p:?}");
        // The same limit without allowDiskUse fails: the limit was crossed.
        let e = run(
            &db,
            &p,
            r#"{"maxMemoryBytes": 4096, "allowDiskUse": false}"#,
        )
        .unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{p:?}: {e:?}");
        assert!(e.to_string().contains("allowDiskUse:true"), "{e}");
        assert_eq!(e.code(), 3);
    }
    let after: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before, after, "no file left in the database's directory");
    assert_eq!(open_spills(dir.path()), 0);
}

#[test]
fn out_writes_spilled_results() {
    let db = Database::open_in_memory().unwrap();
    load(&db, 2000);
    let p = [doc! {"$sort": {"v": 1, "_id": 1}}, doc! {"$out": "sorted"}];
    run(&db, &p, r#"{"maxMemoryBytes": 2048}"#).unwrap();
    let got: Vec<BsonDocument> = db
        .collection("sorted")
        .aggregate(
            &[doc! {"$sort": {"v": 1, "_id": 1}}],
            AggregateOptions::default(),
        )
        .unwrap()
        .map(|d| d.unwrap().into_bson())
        .collect();
    let want = run(&db, &[doc! {"$sort": {"v": 1, "_id": 1}}], "{}").unwrap();
    assert_eq!(got, want);
}

#[test]
fn a_cursor_dropped_half_way_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("spill.db"), OpenOptions::default()).unwrap();
    load(&db, 3000);
    let mut cur = db
        .collection("c")
        .aggregate(
            &[doc! {"$sort": {"v": 1}}],
            opts(r#"{"maxMemoryBytes": 4096}"#),
        )
        .unwrap();
    for _ in 0..100 {
        cur.next().unwrap().unwrap();
    }
    if cfg!(target_os = "linux") {
        assert_eq!(
            open_spills(dir.path()),
            1,
            "the results are read from a run in the database's directory"
        );
    }
    drop(cur);
    assert_eq!(open_spills(dir.path()), 0);
    // The whole result, read to the end, is in order.
    let all = run(
        &db,
        &[doc! {"$sort": {"v": 1}}],
        r#"{"maxMemoryBytes": 4096}"#,
    )
    .unwrap();
    assert_eq!(all.len(), 3000);
    assert!(all
        .windows(2)
        .all(|w| w[0].get_i32("v").unwrap() <= w[1].get_i32("v").unwrap()));
    assert_eq!(open_spills(dir.path()), 0);
}

#[test]
fn a_leading_sort_goes_to_find_only_with_an_index_or_a_limit() {
    let db = Database::open_in_memory().unwrap();
    load(&db, 100);
    let stages = |o: &str, p: &[BsonDocument]| -> Vec<Bson> {
        run(&db, p, o).unwrap()[0]
            .get_array("stages")
            .unwrap()
            .clone()
    };
    let sort = [doc! {"$sort": {"v": 1}}];
    assert_eq!(
        stages(r#"{"explain": true}"#, &sort),
        vec![Bson::from("$sort")]
    );
    let top = [doc! {"$sort": {"v": 1}}, doc! {"$limit": 3}];
    assert!(stages(r#"{"explain": true}"#, &top).is_empty());
    db.collection("c")
        .create_index(&doc! {"v": 1}, &doc! {})
        .unwrap();
    let ranged = [
        doc! {"$match": {"v": {"$gte": 10}}},
        doc! {"$sort": {"v": 1}},
    ];
    assert!(stages(r#"{"explain": true}"#, &ranged).is_empty());
    // The planner reads a whole collection in its order and sorts: the pipeline's $sort.
    assert_eq!(
        stages(r#"{"explain": true}"#, &sort),
        vec![Bson::from("$sort")]
    );
    // Both ways give the same order (ties of v in _id order).
    let a = run(&db, &[doc! {"$sort": {"v": 1, "_id": 1}}], "{}").unwrap();
    let b = run(
        &db,
        &[doc! {"$sort": {"v": 1, "_id": 1}}],
        r#"{"maxMemoryBytes": 1024}"#,
    )
    .unwrap();
    assert_eq!(a, b);
}

#[test]
fn options_are_checked() {
    for bad in [
        r#"{"maxMemoryBytes": 0}"#,
        r#"{"maxMemoryBytes": -1}"#,
        r#"{"allowDiskUse": "yes"}"#,
    ] {
        let e = AggregateOptions::from_json(Some(bad)).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{bad}: {e:?}");
    }
    let o = opts(r#"{"allowDiskUse": false, "maxMemoryBytes": 5000}"#);
    assert!(!o.allow_disk_use);
    assert_eq!(o.max_memory_bytes, Some(5000));
    assert!(AggregateOptions::default().allow_disk_use);
}
