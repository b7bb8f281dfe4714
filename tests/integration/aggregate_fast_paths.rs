//! The aggregation's fast paths give the answers of the slow ones:
//! - a `$sort` + `$limit` served by the find cursor (sort keys read from the stored bytes,
//!   rows past the current k-th dropped undecoded) against the same sort done in memory
//!   after a stage that keeps it out of the find (keys from decoded documents), over values
//!   of every shape a sort meets (arrays, empty arrays, missing, null, mixed types, nested
//!   paths through arrays of documents);
//! - `$group` / `$count` reading only the fields the pipeline needs against the same
//!   pipeline over whole documents;
//! - `$lookup`'s equality form remembering what each local value found within one run
//!   (repeated, missing, null, array and document local values), with the foreign
//!   collection changed between runs, inside a transaction and outside.

use bson::{doc, Bson, Document as BsonDocument};
use nexus::{AggregateOptions, Database, Document, OpenOptions};

fn agg(db: &Database, coll: &str, pipeline: &[BsonDocument]) -> Vec<BsonDocument> {
    db.collection(coll)
        .aggregate(pipeline, AggregateOptions::default())
        .unwrap()
        .map(|d| d.unwrap().into_bson())
        .collect()
}

/// The value of document `i` for the sort tests: every shape a sort key can take.
fn shaped(i: i32) -> Option<Bson> {
    Some(match i % 13 {
        0 => return None,
        1 => Bson::Null,
        2 => Bson::Array(vec![]),
        3 => Bson::Array(vec![Bson::Int32(i % 7), Bson::Int32(50 - i % 11)]),
        4 => Bson::String(format!("s{}", i % 5)),
        5 => Bson::Double(f64::from(i % 17) / 2.0),
        6 => Bson::Int64(i64::from(i % 9)),
        7 => Bson::Document(doc! {"x": i % 3}),
        8 => Bson::Array(vec![Bson::String("a".into()), Bson::Int32(i % 4)]),
        9 => Bson::Boolean(i % 2 == 0),
        10 => Bson::Array(vec![Bson::Array(vec![Bson::Int32(i % 6)])]),
        _ => Bson::Int32(i % 10),
    })
}

#[test]
fn sort_limit_in_the_cursor_equals_the_sort_in_memory() {
    let db = Database::open_in_memory().unwrap();
    let c = db.collection("t");
    let docs: Vec<Document> = (0..900)
        .map(|i| {
            let mut d = doc! {"_id": i, "g": i % 4};
            if let Some(v) = shaped(i) {
                d.insert("v", v);
            }
            // A nested path: a document, an array of documents, or nothing.
            match i % 5 {
                0 => d.insert("n", doc! {"k": i % 8}),
                1 => d.insert("n", vec![doc! {"k": i % 6}, doc! {"k": 20 - i % 6}]),
                2 => d.insert("n", vec![doc! {"z": 1}]),
                3 => d.insert("n", i % 3),
                _ => None,
            };
            Document::from(d)
        })
        .collect();
    c.insert_many(docs).unwrap();
    for pass in 0..2 {
        if pass == 1 {
            c.create_index_json(r#"{"g": 1}"#, None).unwrap();
        }
        for sort in [
            doc! {"v": 1},
            doc! {"v": -1},
            doc! {"n.k": 1},
            doc! {"n.k": -1, "v": 1},
            doc! {"v": -1, "n.k": -1},
        ] {
            // Equal keys: the find orders them by `_id` when it reads through an index, the
            // in-memory sort keeps the order it was given (the index's): `_id` decides both.
            let mut sort = sort;
            if pass == 1 {
                sort.insert("_id", 1);
            }
            for (filter, skip, limit) in [
                (doc! {}, 0, 1),
                (doc! {}, 0, 10),
                (doc! {"g": 2}, 3, 10),
                (doc! {"g": {"$in": [1, 3]}}, 0, 70),
                (doc! {}, 40, 150),
                (doc! {"g": 0}, 0, 500),
            ] {
                let fast = vec![
                    doc! {"$match": filter.clone()},
                    doc! {"$sort": sort.clone()},
                    doc! {"$skip": skip},
                    doc! {"$limit": limit},
                ];
                // `$addFields` first keeps the sort out of the find: sorted in memory.
                let slow = vec![
                    doc! {"$match": filter.clone()},
                    doc! {"$addFields": {"zz": 1}},
                    doc! {"$sort": sort.clone()},
                    doc! {"$skip": skip},
                    doc! {"$limit": limit},
                    doc! {"$unset": "zz"},
                ];
                let ids = |docs: Vec<BsonDocument>| -> Vec<Bson> {
                    docs.into_iter()
                        .map(|d| d.get("_id").cloned().unwrap())
                        .collect()
                };
                let got = agg(&db, "t", &fast);
                let want = agg(&db, "t", &slow);
                assert_eq!(got.len(), want.len(), "{sort:?} {filter:?} {skip} {limit}");
                // The documents are whole, not only their sort fields.
                assert_eq!(got, want, "{sort:?} {filter:?} {skip} {limit} pass {pass}");
                assert!(!ids(got).is_empty());
            }
        }
    }
}

fn group_pipelines() -> Vec<Vec<BsonDocument>> {
    vec![
        vec![doc! {"$group": {"_id": "$k", "s": {"$sum": "$v"}, "a": {"$avg": "$w.x"}}}],
        vec![
            doc! {"$match": {"$expr": {"$gt": ["$v", 10]}}},
            doc! {"$group": {"_id": {"k": "$k", "t": {"$type": "$w"}}, "n": {"$sum": 1},
            "f": {"$first": "$$CURRENT.s"}, "m": {"$max": {"$cond": ["$w", "$w.x", -1]}}}},
            doc! {"$sort": {"_id.k": 1, "_id.t": 1}},
        ],
        vec![
            doc! {"$match": {"k": {"$ne": 3}}},
            doc! {"$group": {"_id": null, "all": {"$push": "$$ROOT"}}},
        ],
        vec![
            doc! {"$match": {"w.x": {"$exists": true}}},
            doc! {"$count": "n"},
        ],
        vec![
            doc! {"$sort": {"v": -1}},
            doc! {"$group": {"_id": "$k", "top": {"$first": "$s"}, "ids": {"$push": "$_id"}}},
            doc! {"$sort": {"_id": 1}},
        ],
        vec![
            doc! {"$group": {"_id": "$missing", "n": {"$sum": {"$size": {"$ifNull": ["$arr", []]}}}}},
        ],
    ]
}

#[test]
fn group_over_the_fields_it_reads_equals_group_over_whole_documents() {
    let db = Database::open_in_memory().unwrap();
    let docs: Vec<Document> = (0..400)
        .map(|i| {
            let mut d =
                doc! {"_id": i, "k": i % 7, "v": i, "s": format!("s{i}"), "arr": [i, i + 1]};
            if i % 3 != 0 {
                d.insert("w", doc! {"x": i % 11, "y": "unused"});
            }
            Document::from(d)
        })
        .collect();
    db.collection("c").insert_many(docs).unwrap();
    for p in group_pipelines() {
        // `$addFields` first: the stage needs whole documents, so nothing is left out.
        let mut whole = vec![doc! {"$addFields": {"zz": 1}}];
        whole.extend(p.iter().cloned());
        let got = agg(&db, "c", &p);
        let want: Vec<BsonDocument> = agg(&db, "c", &whole)
            .into_iter()
            .map(|mut d| {
                // `$push: "$$ROOT"` holds the extra field: take it out again.
                if let Some(Bson::Array(all)) = d.get_mut("all") {
                    for x in all.iter_mut() {
                        if let Bson::Document(x) = x {
                            x.remove("zz");
                        }
                    }
                }
                d
            })
            .collect();
        assert!(!got.is_empty(), "{p:?}");
        assert_eq!(got, want, "{p:?}");
    }
}

fn lookup_pipeline() -> Vec<BsonDocument> {
    vec![
        doc! {"$lookup": {"from": "f", "localField": "l", "foreignField": "k", "as": "j"}},
        doc! {"$project": {"_id": 1, "ids": "$j._id"}},
        doc! {"$sort": {"_id": 1}},
    ]
}

/// The `_id`s of `f`'s documents whose `k` equals `local` the way `$lookup` matches (a
/// missing or null local value matches null and missing; an array matches any element).
fn expected(foreign: &[(i32, Option<Bson>)], local: Option<&Bson>) -> Vec<Bson> {
    let locals: Vec<Bson> = match local {
        None | Some(Bson::Null) => vec![Bson::Null],
        Some(Bson::Array(items)) if items.is_empty() => vec![Bson::Null],
        Some(Bson::Array(items)) => items.clone(),
        Some(v) => vec![v.clone()],
    };
    foreign
        .iter()
        .filter(|(_, k)| {
            let k = k.clone().unwrap_or(Bson::Null);
            locals.iter().any(|l| match &k {
                Bson::Array(items) => items.iter().any(|x| same(l, x)),
                k => same(l, k),
            })
        })
        .map(|(id, _)| Bson::Int32(*id))
        .collect()
}

/// Equality as a query compares: numbers by value whatever their type.
fn same(a: &Bson, b: &Bson) -> bool {
    let num = |v: &Bson| match v {
        Bson::Int32(i) => Some(f64::from(*i)),
        #[allow(clippy::cast_precision_loss)]
        Bson::Int64(i) => Some(*i as f64),
        Bson::Double(d) => Some(*d),
        _ => None,
    };
    match (num(a), num(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

#[test]
fn lookup_remembers_each_value_within_a_run_only() {
    let db = Database::open_in_memory().unwrap();
    let mut foreign: Vec<(i32, Option<Bson>)> = vec![
        (1, Some(Bson::Int32(1))),
        (2, Some(Bson::Int32(1))),
        (3, Some(Bson::Double(2.0))),
        (4, None),
        (5, Some(Bson::Null)),
        (6, Some(Bson::String("x".into()))),
        (7, Some(Bson::Array(vec![Bson::Int32(3), Bson::Int32(1)]))),
        (8, Some(Bson::Document(doc! {"a": 1}))),
    ];
    db.create_collection("f", None).unwrap();
    let put = |foreign: &[(i32, Option<Bson>)]| {
        let f = db.collection("f");
        f.delete(&doc! {}, true).unwrap();
        let docs: Vec<Document> = foreign
            .iter()
            .map(|(id, k)| {
                let mut d = doc! {"_id": *id};
                if let Some(k) = k {
                    d.insert("k", k.clone());
                }
                Document::from(d)
            })
            .collect();
        f.insert_many(docs).unwrap();
    };
    put(&foreign);
    // Local values, each repeated many times: the memo answers all but the first.
    let locals: Vec<Option<Bson>> = vec![
        Some(Bson::Int32(1)),
        Some(Bson::Int64(2)),
        Some(Bson::Double(1.0)),
        None,
        Some(Bson::Null),
        Some(Bson::String("x".into())),
        Some(Bson::Array(vec![Bson::Int32(2), Bson::String("x".into())])),
        Some(Bson::Array(vec![])),
        Some(Bson::Document(doc! {"a": 1})),
        Some(Bson::Int32(3)),
        Some(Bson::Int32(99)),
    ];
    let docs: Vec<Document> = (0..330)
        .map(|i| {
            let mut d = doc! {"_id": i};
            let local = &locals[usize::try_from(i).unwrap() % locals.len()];
            if let Some(l) = local {
                d.insert("l", l.clone());
            }
            if i % 4 == 0 {
                // `as` names a field the document has: replaced where it is.
                d.insert("j", "old");
            }
            // The same local value one level down, for a dotted localField.
            d.insert(
                "m",
                doc! {"l": local.clone().unwrap_or(Bson::Null), "other": i},
            );
            d.insert("z", i);
            Document::from(d)
        })
        .collect();
    db.collection("c").insert_many(docs).unwrap();
    let check = |foreign: &[(i32, Option<Bson>)], what: &str| {
        let got = agg(&db, "c", &lookup_pipeline());
        assert_eq!(got.len(), 330, "{what}");
        for (i, d) in got.iter().enumerate() {
            let local = locals[i % locals.len()].as_ref();
            let ids: Vec<Bson> = d.get_array("ids").cloned().unwrap_or_default();
            assert_eq!(
                ids,
                expected(foreign, local),
                "{what}: doc {i}, local {local:?}"
            );
        }
        // `$lookup`s alone run over the stored bytes; after `$addFields` over decoded
        // documents: the same documents, fields in the same order.
        let lookups = vec![
            doc! {"$lookup": {"from": "f", "localField": "l", "foreignField": "k", "as": "j"}},
            doc! {"$lookup": {"from": "f", "localField": "m.l", "foreignField": "k", "as": "m2"}},
            doc! {"$lookup": {"from": "missing", "localField": "z", "foreignField": "k", "as": "none"}},
        ];
        let mut decoded = vec![doc! {"$addFields": {"zz": 1}}];
        decoded.extend(lookups.iter().cloned());
        decoded.push(doc! {"$unset": "zz"});
        let over_bytes = agg(&db, "c", &lookups);
        assert_eq!(over_bytes, agg(&db, "c", &decoded), "{what}");
        for (i, d) in over_bytes.iter().enumerate() {
            let local = locals[i % locals.len()].as_ref();
            let ids = |field: &str| -> Vec<Bson> {
                d.get_array(field)
                    .unwrap()
                    .iter()
                    .map(|x| x.as_document().unwrap().get("_id").cloned().unwrap())
                    .collect()
            };
            assert_eq!(ids("j"), expected(foreign, local), "{what}: doc {i}");
            // A null local value one level down is null, as a missing one is.
            assert_eq!(ids("m2"), expected(foreign, local), "{what}: doc {i}");
            assert!(ids("none").is_empty());
            let keys: Vec<&String> = d.keys().collect();
            let j_at = keys.iter().position(|k| *k == "j").unwrap();
            if i % 4 == 0 {
                assert_eq!(j_at, 1 + usize::from(local.is_some()), "{what}: {keys:?}");
            } else {
                assert_eq!(j_at, keys.len() - 3, "{what}: {keys:?}");
            }
        }
    };
    check(&foreign, "first run");
    // Changed between runs: the next run sees the change (nothing kept across runs).
    foreign.push((9, Some(Bson::Int32(1))));
    foreign.retain(|(id, _)| *id != 3);
    put(&foreign);
    check(&foreign, "after a change");
    // Inside a transaction: a change made in it is seen by the next run in it.
    db.begin().unwrap();
    check(&foreign, "in a transaction");
    db.collection("f")
        .insert(Document::from(doc! {"_id": 10, "k": "x"}))
        .unwrap();
    foreign.push((10, Some(Bson::String("x".into()))));
    check(&foreign, "in a transaction, after an insert in it");
    db.rollback().unwrap();
    foreign.retain(|(id, _)| *id != 10);
    check(&foreign, "after the rollback");
}

#[test]
fn lookup_sees_another_connections_commit_in_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.db");
    let db = Database::open(&path, OpenOptions::default()).unwrap();
    db.collection("f")
        .insert(Document::from(doc! {"_id": 1, "k": 1}))
        .unwrap();
    let docs: Vec<Document> = (0..50)
        .map(|i| Document::from(doc! {"_id": i, "l": 1}))
        .collect();
    db.collection("c").insert_many(docs).unwrap();
    let got = agg(&db, "c", &lookup_pipeline());
    assert!(got
        .iter()
        .all(|d| d.get_array("ids").unwrap() == &vec![Bson::Int32(1)]));
    let other = Database::open(&path, OpenOptions::default()).unwrap();
    other
        .collection("f")
        .insert(Document::from(doc! {"_id": 2, "k": 1}))
        .unwrap();
    let got = agg(&db, "c", &lookup_pipeline());
    assert!(got
        .iter()
        .all(|d| d.get_array("ids").unwrap() == &vec![Bson::Int32(1), Bson::Int32(2)]));
}

#[test]
fn string_equality_through_an_index_is_not_tested_again_and_finds_the_same() {
    // Values near "r3": prefixes, extensions, an embedded NUL, other types, a symbol,
    // missing; the index's entries alone must decide which documents match.
    let values: Vec<Option<Bson>> = vec![
        Some(Bson::String("r3".into())),
        Some(Bson::String("r30".into())),
        Some(Bson::String("r".into())),
        Some(Bson::String("r3\0".into())),
        Some(Bson::String("r3\0x".into())),
        Some(Bson::String("R3".into())),
        Some(Bson::Symbol("r3".into())),
        Some(Bson::Int32(3)),
        Some(Bson::Document(doc! {"r3": "r3"})),
        Some(Bson::Null),
        None,
    ];
    let db = Database::open_in_memory().unwrap();
    let c = db.collection("t");
    let docs: Vec<Document> = (0..220)
        .map(|i| {
            let mut d = doc! {"_id": i, "g": i % 3};
            if let Some(v) = &values[usize::try_from(i).unwrap() % values.len()] {
                d.insert("f", v.clone());
            }
            Document::from(d)
        })
        .collect();
    c.insert_many(docs).unwrap();
    let ids = |pipeline: &[BsonDocument]| -> Vec<Bson> {
        agg(&db, "t", pipeline)
            .into_iter()
            .map(|d| d.get("_id").cloned().unwrap())
            .collect()
    };
    let queries = ["r3", "r30", "r", "r3\0", "R3", "r3\0x", "x"];
    let scanned: Vec<Vec<Bson>> = queries
        .iter()
        .map(|q| ids(&[doc! {"$match": {"f": *q}}, doc! {"$sort": {"_id": 1}}]))
        .collect();
    assert!(!scanned[0].is_empty());
    for index in [r#"{"f": 1}"#, r#"{"f": -1, "g": 1}"#] {
        let name = c.create_index_json(index, None).unwrap();
        for (q, want) in queries.iter().zip(&scanned) {
            let pipeline = [doc! {"$match": {"f": *q}}, doc! {"$sort": {"_id": 1}}];
            let explain = db
                .collection("t")
                .aggregate(
                    &pipeline,
                    AggregateOptions {
                        explain: true,
                        ..AggregateOptions::default()
                    },
                )
                .unwrap()
                .map(|d| d.unwrap().into_bson())
                .collect::<Vec<_>>();
            assert!(format!("{explain:?}").contains("IXSCAN"), "{explain:?}");
            assert_eq!(&ids(&pipeline), want, "{index} {q:?}");
            // The same through the lookup over bytes and the top-k.
            let limited = [
                doc! {"$match": {"f": *q}},
                doc! {"$sort": {"g": -1, "_id": 1}},
                doc! {"$limit": 5},
            ];
            let mut slow = vec![doc! {"$match": {"f": *q}}, doc! {"$addFields": {"zz": 1}}];
            slow.extend([
                doc! {"$sort": {"g": -1, "_id": 1}},
                doc! {"$limit": 5},
                doc! {"$unset": "zz"},
            ]);
            assert_eq!(
                agg(&db, "t", &limited),
                agg(&db, "t", &slow),
                "{index} {q:?}"
            );
        }
        c.drop_index(&name).unwrap();
    }
}
