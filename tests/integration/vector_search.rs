//! Vector indexes and `$vectorSearch` through the Rust API: recall of the HNSW graph
//! against exact search and a brute force of the test's own on seeded clustered data (64
//! and 128 dimensions, every similarity), filters applied during the search, deletes and
//! updates seen at once, rollback, reopening, `check`, and the refusals of bad vectors,
//! options and specifications.
#![allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)] // test arithmetic

use crate::common;

use bson::{doc, Bson, Document as BsonDocument};
use nexus::{Database, Document, Error};
use std::collections::HashSet;

/// `n` vectors of `dims` numbers around 16 seeded centers.
fn clustered(n: usize, dims: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let centers: Vec<Vec<f32>> = (0..16)
        .map(|_| (0..dims).map(|_| rng.f32() * 2.0 - 1.0).collect())
        .collect();
    (0..n)
        .map(|_| {
            let c = &centers[rng.usize(..centers.len())];
            c.iter()
                .map(|x| x + (rng.f32() + rng.f32() + rng.f32() - 1.5) * 0.25)
                .collect()
        })
        .collect()
}

fn arr(v: &[f32]) -> Bson {
    Bson::Array(v.iter().map(|x| Bson::Double(f64::from(*x))).collect())
}

fn insert_all(db: &Database, coll: &str, vs: &[Vec<f32>]) {
    db.begin().unwrap();
    for (i, v) in vs.iter().enumerate() {
        let d = doc! {"_id": i as i64, "v": arr(v), "tag": (i % 10) as i64};
        db.collection(coll).insert(Document::from(d)).unwrap();
    }
    db.commit().unwrap();
}

fn search(db: &Database, coll: &str, spec: BsonDocument) -> Vec<(i64, f64)> {
    db.collection(coll)
        .vector_search(&spec)
        .unwrap()
        .map(|r| {
            let d = r.unwrap();
            (
                d.get("_id").and_then(Bson::as_i64).unwrap(),
                d.get("_score").and_then(Bson::as_f64).unwrap(),
            )
        })
        .collect()
}

/// The test's own brute force: the ids of the `k` nearest by `sim`.
fn brute(
    vs: &[Vec<f32>],
    q: &[f32],
    sim: &str,
    k: usize,
    keep: impl Fn(usize) -> bool,
) -> Vec<i64> {
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let mut scored: Vec<(f32, usize)> = vs
        .iter()
        .enumerate()
        .filter(|(i, _)| keep(*i))
        .map(|(i, v)| {
            let dot: f32 = v.iter().zip(q).map(|(a, b)| a * b).sum();
            let d = match sim {
                "euclidean" => v.iter().zip(q).map(|(a, b)| (a - b) * (a - b)).sum(),
                "cosine" => -dot / (norm(v) * norm(q)),
                _ => -dot,
            };
            (d, i)
        })
        .collect();
    scored.sort_by(|a, b| a.0.total_cmp(&b.0));
    scored.iter().take(k).map(|(_, i)| *i as i64).collect()
}

fn recall(got: &[(i64, f64)], want: &[i64]) -> f64 {
    let want: HashSet<i64> = want.iter().copied().collect();
    got.iter().filter(|(id, _)| want.contains(id)).count() as f64 / want.len().max(1) as f64
}

fn recall_case(dims: usize, sim: &str, n: usize, build_after: bool) {
    recall_case_with(dims, sim, n, build_after, false);
}

/// `quantized`: the index keeps 8-bit codes (`"quantization": "scalar"`), its searches
/// re-rank their candidates with the documents' vectors.
fn recall_case_with(dims: usize, sim: &str, n: usize, build_after: bool, quantized: bool) {
    let db = Database::open_in_memory().unwrap();
    let mut vs = clustered(n, dims, dims as u64 * 31 + sim.len() as u64);
    let mut queries = clustered(40, dims, 999);
    if sim == "dotProduct" {
        // dotProduct is meant for unit vectors (as in MongoDB Atlas): on others the inner
        // product is no distance and no graph search (hnswlib's neither) keeps its recall.
        for v in vs.iter_mut().chain(queries.iter_mut()) {
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter_mut().for_each(|x| *x /= n);
        }
    }
    let mut opts = doc! {"numDimensions": dims as i64, "similarity": sim};
    if quantized {
        opts.insert("quantization", "scalar");
    }
    if build_after {
        insert_all(&db, "c", &vs);
    }
    db.collection("c")
        .create_index(&doc! {"v": "hnsw"}, &opts)
        .unwrap();
    if !build_after {
        insert_all(&db, "c", &vs);
    }
    let (mut ann, mut ex) = (0.0, 0.0);
    for q in &queries {
        let want = brute(&vs, q, sim, 10, |_| true);
        let a = search(
            &db,
            "c",
            doc! {"path": "v", "queryVector": arr(q), "limit": 10, "numCandidates": 100},
        );
        let e = search(
            &db,
            "c",
            doc! {"path": "v", "queryVector": arr(q), "limit": 10, "exact": true},
        );
        assert_eq!(a.len(), 10);
        assert!(a.windows(2).all(|w| w[0].1 >= w[1].1), "best first: {a:?}");
        ann += recall(&a, &want);
        ex += recall(&e, &want);
    }
    let (ann, ex) = (ann / queries.len() as f64, ex / queries.len() as f64);
    assert!(ex >= 0.99, "{dims} {sim}: exact search recall {ex}");
    assert!(
        ann >= 0.95,
        "{dims} {sim}: HNSW recall@10 {ann} at numCandidates 100"
    );
    db.check().unwrap();
    if quantized {
        let listed = db.collection("c").list_indexes().unwrap();
        assert!(listed
            .iter()
            .any(|d| d.get_str("quantization").ok() == Some("scalar")));
    }
}

#[test]
fn recall_64_dimensions_every_similarity() {
    recall_case(64, "euclidean", 1500, false);
    recall_case(64, "cosine", 1500, true);
    recall_case(64, "dotProduct", 1500, false);
}

/// Scalar quantization: recall against the brute force as for float32 indexes, built over
/// stored documents (range from all of them) and filled after an empty create (range from
/// the first vector, widened as later ones fall outside it).
#[test]
fn recall_with_scalar_quantization_every_similarity() {
    recall_case_with(64, "euclidean", 1500, true, true);
    recall_case_with(64, "euclidean", 1500, false, true);
    recall_case_with(64, "cosine", 1500, false, true);
    recall_case_with(128, "dotProduct", 1000, true, true);
}

/// A quantized index is a quarter of the float index's vectors: the database with it is
/// smaller by about three quarters of the vectors' bytes.
#[test]
fn scalar_quantization_makes_the_index_smaller() {
    if common::engine() != nexus::StorageEngine::Wasp {
        return;
    }
    let vs = clustered(3000, 128, 5);
    let size = |quantized: bool| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let db = Database::open(&path, common::open_options()).unwrap();
        insert_all(&db, "c", &vs);
        db.close().unwrap();
        let before = std::fs::metadata(&path).unwrap().len();
        let db = Database::open(&path, common::open_options()).unwrap();
        let mut opts = doc! {"numDimensions": 128i64};
        if quantized {
            opts.insert("quantization", "scalar");
        }
        db.collection("c")
            .create_index(&doc! {"v": "hnsw"}, &opts)
            .unwrap();
        db.check().unwrap();
        db.close().unwrap();
        std::fs::metadata(&path).unwrap().len() - before
    };
    let (float, codes) = (size(false), size(true));
    // float32 vectors: 3000 x 512 bytes of the float index; codes take 128 bytes each.
    assert!(
        codes + 3000 * 300 < float,
        "quantized index {codes} bytes, float32 {float}"
    );
}

#[test]
fn recall_128_dimensions_every_similarity() {
    recall_case(128, "euclidean", 1000, true);
    recall_case(128, "cosine", 1000, false);
    recall_case(128, "dotProduct", 1000, true);
}

fn open_file(dir: &std::path::Path) -> Database {
    Database::open(dir.join("v.db"), common::open_options()).unwrap()
}

fn ids_of(rows: &[(i64, f64)]) -> Vec<i64> {
    rows.iter().map(|r| r.0).collect()
}

#[test]
fn a_filter_applies_during_the_search() {
    let db = Database::open_in_memory().unwrap();
    let vs = clustered(2000, 64, 5);
    insert_all(&db, "c", &vs);
    db.collection("c")
        .create_index_json(r#"{"v": "hnsw"}"#, Some(r#"{"numDimensions": 64}"#))
        .unwrap();
    let queries = clustered(30, 64, 6);
    let mut total = 0.0;
    for q in &queries {
        // tag 3: a 10% filter.
        let want = brute(&vs, q, "euclidean", 10, |i| i % 10 == 3);
        let got = search(
            &db,
            "c",
            doc! {"path": "v", "queryVector": arr(q), "limit": 10, "numCandidates": 100, "filter": {"tag": 3}},
        );
        assert_eq!(
            got.len(),
            10,
            "limit results come back when enough documents match"
        );
        assert!(
            got.iter().all(|(id, _)| id % 10 == 3),
            "only matching documents: {got:?}"
        );
        total += recall(&got, &want);
        let exact = search(
            &db,
            "c",
            doc! {"path": "v", "queryVector": arr(q), "limit": 10, "exact": true, "filter": {"tag": 3}},
        );
        assert_eq!(ids_of(&exact), want);
    }
    let r = total / queries.len() as f64;
    assert!(r >= 0.9, "filtered recall {r}");
    // A filter nothing matches: nothing, not an error.
    let none = search(
        &db,
        "c",
        doc! {"path": "v", "queryVector": arr(&queries[0]), "limit": 5, "filter": {"tag": 99}},
    );
    assert!(none.is_empty());
}

#[test]
fn deletes_and_updates_are_seen_at_once_and_keep_recall() {
    let db = Database::open_in_memory().unwrap();
    let vs = clustered(1500, 64, 11);
    db.collection("c")
        .create_index_json(r#"{"v": "hnsw"}"#, Some(r#"{"numDimensions": 64, "m": 8}"#))
        .unwrap();
    insert_all(&db, "c", &vs);
    let c = db.collection("c");
    // The nearest document to its own vector is itself; deleted, it is gone at once.
    let q = vs[7].clone();
    let first = search(
        &db,
        "c",
        doc! {"path": "v", "queryVector": arr(&q), "limit": 1},
    );
    assert_eq!(first[0].0, 7);
    assert!(
        (first[0].1 - 1.0).abs() < 1e-9,
        "distance 0 scores 1: {first:?}"
    );
    assert!(c.delete(&doc! {"_id": 7i64}, false).unwrap() == 1);
    let after = search(
        &db,
        "c",
        doc! {"path": "v", "queryVector": arr(&q), "limit": 5},
    );
    assert!(!ids_of(&after).contains(&7));
    // An update moving a vector far away: found there, not at its old place.
    let far = vec![50.0f32; 64];
    c.update(
        &doc! {"_id": 8i64},
        &doc! {"$set": {"v": arr(&far)}},
        Default::default(),
    )
    .unwrap();
    assert_eq!(
        search(
            &db,
            "c",
            doc! {"path": "v", "queryVector": arr(&far), "limit": 1}
        )[0]
        .0,
        8
    );
    assert!(!ids_of(&search(
        &db,
        "c",
        doc! {"path": "v", "queryVector": arr(&vs[8]), "limit": 3}
    ))
    .contains(&8));
    // Removing the field drops the node; an update of another field keeps it.
    c.update(
        &doc! {"_id": 9i64},
        &doc! {"$unset": {"v": 1}},
        Default::default(),
    )
    .unwrap();
    c.update(
        &doc! {"_id": 10i64},
        &doc! {"$set": {"tag": 42}},
        Default::default(),
    )
    .unwrap();
    assert!(!ids_of(&search(
        &db,
        "c",
        doc! {"path": "v", "queryVector": arr(&vs[9]), "limit": 3}
    ))
    .contains(&9));
    assert_eq!(
        search(
            &db,
            "c",
            doc! {"path": "v", "queryVector": arr(&vs[10]), "limit": 1}
        )[0]
        .0,
        10
    );
    db.check().unwrap();
    // Delete half of them (the graph repaired at each delete), then recall holds.
    db.begin().unwrap();
    for i in (0..1500i64).filter(|i| i % 2 == 0) {
        c.delete(&doc! {"_id": i}, false).unwrap();
    }
    db.commit().unwrap();
    db.check().unwrap();
    let mut total = 0.0;
    let queries = clustered(30, 64, 12);
    for q in &queries {
        let live = |i: usize| i % 2 == 1 && i != 7 && i != 9 && i != 8;
        let mut cur = vs.clone();
        cur[8] = far.clone();
        let want = brute(&cur, q, "euclidean", 10, live);
        let got = search(
            &db,
            "c",
            doc! {"path": "v", "queryVector": arr(q), "limit": 10, "numCandidates": 100},
        );
        total += recall(&got, &want);
    }
    let r = total / queries.len() as f64;
    assert!(r >= 0.95, "recall after deleting half: {r}");
    // Everything deleted: an empty graph answers nothing.
    c.delete(&doc! {}, true).unwrap();
    db.check().unwrap();
    assert!(search(
        &db,
        "c",
        doc! {"path": "v", "queryVector": arr(&q), "limit": 3}
    )
    .is_empty());
    insert_all(&db, "c", &vs[..50]);
    assert_eq!(
        search(
            &db,
            "c",
            doc! {"path": "v", "queryVector": arr(&vs[3]), "limit": 1}
        )[0]
        .0,
        3
    );
    db.check().unwrap();
}

#[test]
fn rollback_leaves_the_graph_as_it_was_and_reopen_answers_at_once() {
    rollback_case(r#"{"numDimensions": 64, "name": "vec"}"#);
}

#[test]
fn rollback_and_reopen_of_a_quantized_index() {
    rollback_case(r#"{"numDimensions": 64, "name": "vec", "quantization": "scalar"}"#);
}

fn rollback_case(options: &str) {
    let dir = tempfile::tempdir().unwrap();
    let vs = clustered(600, 64, 21);
    let q = clustered(1, 64, 22).remove(0);
    let spec = || doc! {"path": "v", "queryVector": arr(&q), "limit": 10, "numCandidates": 50};
    let before;
    {
        let db = open_file(dir.path());
        db.collection("c")
            .create_index_json(r#"{"v": "hnsw"}"#, Some(options))
            .unwrap();
        insert_all(&db, "c", &vs);
        before = search(&db, "c", spec());
        // The nearest ten by the test's own brute force.
        let want = brute(&vs, &q, "euclidean", 10, |_| true);
        assert!(recall(&before, &want) >= 0.9, "{before:?} vs {want:?}");
        db.begin().unwrap();
        let c = db.collection("c");
        for r in &before {
            c.delete(&doc! {"_id": r.0}, false).unwrap();
        }
        c.insert(Document::from(doc! {"_id": -1i64, "v": arr(&q)}))
            .unwrap();
        // The transaction sees its own writes.
        let inside = search(&db, "c", spec());
        assert_eq!(inside[0].0, -1);
        db.rollback().unwrap();
        assert_eq!(search(&db, "c", spec()), before);
        db.check().unwrap();
        db.close().unwrap();
    }
    let db = open_file(dir.path());
    // The first query after the open reads the stored graph (nothing is rebuilt at open).
    assert_eq!(search(&db, "c", spec()), before);
    let listed = db.collection("c").list_indexes().unwrap();
    let v = listed
        .iter()
        .find(|d| d.get_str("name").ok() == Some("vec"))
        .unwrap();
    assert_eq!(v.get_document("key").unwrap(), &doc! {"v": "hnsw"});
    assert_eq!(v.get_i64("numDimensions").unwrap(), 64);
    assert_eq!(v.get_str("similarity").unwrap(), "euclidean");
    db.compact().unwrap();
    assert_eq!(search(&db, "c", spec()), before);
    db.check().unwrap();
    // A backup carries the graph: its first query answers the same.
    if common::engine() == nexus::StorageEngine::Wasp {
        let copy = dir.path().join("copy.db");
        db.backup(&copy).unwrap();
        let b = Database::open(&copy, common::open_options()).unwrap();
        assert_eq!(search(&b, "c", spec()), before);
        b.check().unwrap();
    }
}

#[test]
fn projection_score_field_index_name_and_binary_vectors() {
    let db = Database::open_in_memory().unwrap();
    let c = db.collection("c");
    c.create_index_json(
        r#"{"e.v": "hnsw"}"#,
        Some(r#"{"numDimensions": 3, "similarity": "cosine", "name": "ev"}"#),
    )
    .unwrap();
    let f32s = |v: &[f32]| {
        let mut b = vec![0x27u8, 0];
        v.iter().for_each(|x| b.extend_from_slice(&x.to_le_bytes()));
        Bson::Binary(bson::Binary {
            subtype: bson::spec::BinarySubtype::Vector,
            bytes: b,
        })
    };
    c.insert(Document::from(
        doc! {"_id": 1, "name": "a", "e": {"v": [1.0, 0.0, 0.0]}},
    ))
    .unwrap();
    c.insert(Document::from(
        doc! {"_id": 2, "name": "b", "e": {"v": f32s(&[0.0, 1.0, 0.0])}},
    ))
    .unwrap();
    // int8 binary vector.
    c.insert(Document::from(
        doc! {"_id": 3, "name": "c", "e": {"v": Bson::Binary(bson::Binary {
        subtype: bson::spec::BinarySubtype::Vector, bytes: vec![0x03, 0, 1, 1, 0] })}},
    ))
    .unwrap();
    c.insert(Document::from(doc! {"_id": 4, "name": "no vector"}))
        .unwrap();
    let rows: Vec<BsonDocument> = c
        .vector_search(
            &doc! {"path": "e.v", "queryVector": f32s(&[1.0, 0.0, 0.0]), "limit": 5,
            "index": "ev", "projection": {"name": 1, "_id": 0}, "scoreField": "sim"},
        )
        .unwrap()
        .map(|r| r.unwrap().into_bson())
        .collect();
    assert_eq!(
        rows.len(),
        3,
        "the document without a vector is not indexed: {rows:?}"
    );
    assert_eq!(rows[0], doc! {"name": "a", "sim": 1.0});
    assert_eq!(rows[1].get_str("name").unwrap(), "c");
    let s = rows[1].get_f64("sim").unwrap();
    assert!(
        (s - (1.0 + 0.5f64.sqrt()) / 2.0).abs() < 1e-6,
        "cosine score {s}"
    );
    assert!((rows[2].get_f64("sim").unwrap() - 0.5).abs() < 1e-6);
    // Exclusion projections (top-level fields dropped before their values are decoded; a
    // dotted path or an inclusion through the general projection): each row is the stored
    // document with those fields left out, fields in their stored order, then the score.
    c.insert(Document::from(
        doc! {"_id": 5, "name": "d", "e": {"v": [1.0, 0.1, 0.0], "w": 7}, "z": [1, {"y": 2}]},
    ))
    .unwrap();
    let q = f32s(&[1.0, 0.1, 0.0]);
    let first = |projection: BsonDocument| -> BsonDocument {
        let mut rows = c
            .vector_search(&doc! {"path": "e.v", "queryVector": q.clone(), "limit": 1,
            "projection": projection})
            .unwrap();
        let mut d = rows.next().unwrap().unwrap().into_bson();
        assert!((d.get_f64("_score").unwrap() - 1.0).abs() < 1e-6, "{d:?}");
        d.remove("_score");
        d
    };
    assert_eq!(
        first(doc! {"e": 0}),
        doc! {"_id": 5, "name": "d", "z": [1, {"y": 2}]}
    );
    assert_eq!(
        first(doc! {"_id": false, "e": 0.0, "name": 0i64}),
        doc! {"z": [1, {"y": 2}]}
    );
    assert_eq!(
        first(doc! {"e.v": 0}),
        doc! {"_id": 5, "name": "d", "e": {"w": 7}, "z": [1, {"y": 2}]}
    );
    assert_eq!(first(doc! {"name": 1}), doc! {"_id": 5, "name": "d"});
    c.delete(&doc! {"_id": 5}, false).unwrap();
    // A missing collection: empty. An unknown index name: refused.
    assert_eq!(
        db.collection("none")
            .vector_search_json(r#"{"path":"v","queryVector":[1],"limit":1}"#)
            .unwrap()
            .count(),
        0
    );
    invalid(
        c.vector_search_json(r#"{"path":"e.v","queryVector":[1,0,0],"limit":1,"index":"nope"}"#)
            .map(|c| c.count()),
        "no vector index",
    );
    // Regular queries never pick the vector index.
    assert_eq!(
        c.find_json(r#"{"e.v": [1.0, 0.0, 0.0]}"#, Default::default())
            .unwrap()
            .count(),
        1
    );
    db.check().unwrap();
}

fn invalid(r: nexus::Result<impl std::fmt::Debug>, words: &str) {
    match r {
        Err(Error::InvalidArgument(m)) => assert!(m.contains(words), "'{m}' lacks '{words}'"),
        other => panic!("expected InvalidArgument ({words}), got {other:?}"),
    }
}

#[test]
fn bad_vectors_options_and_specs_are_refused_clearly() {
    let db = Database::open_in_memory().unwrap();
    let c = db.collection("c");
    invalid(
        c.create_index_json(r#"{"v": "hnsw"}"#, None),
        "numDimensions",
    );
    invalid(
        c.create_index_json(r#"{"v": "hnsw"}"#, Some(r#"{"numDimensions": 0}"#)),
        "from 1 to 4096",
    );
    invalid(
        c.create_index_json(r#"{"v": "hnsw"}"#, Some(r#"{"numDimensions": 4097}"#)),
        "from 1 to 4096",
    );
    invalid(
        c.create_index_json(
            r#"{"v": "hnsw"}"#,
            Some(r#"{"numDimensions": 3, "similarity": "l1"}"#),
        ),
        "similarity",
    );
    invalid(
        c.create_index_json(r#"{"v": "hnsw", "w": 1}"#, Some(r#"{"numDimensions": 3}"#)),
        "exactly one field",
    );
    invalid(
        c.create_index_json(
            r#"{"v": "hnsw"}"#,
            Some(r#"{"numDimensions": 3, "unique": true}"#),
        ),
        "unique",
    );
    invalid(
        c.create_index_json(
            r#"{"v": "hnsw"}"#,
            Some(r#"{"numDimensions": 3, "quantization": "product"}"#),
        ),
        "quantization",
    );
    invalid(
        c.create_index_json(
            r#"{"v": "hnsw"}"#,
            Some(r#"{"numDimensions": 3, "quantization": true}"#),
        ),
        "quantization",
    );
    // A document already holding a bad vector stops the build, naming it.
    c.insert(Document::from_json(r#"{"_id": 1, "v": [1, 2]}"#).unwrap())
        .unwrap();
    invalid(
        c.create_index_json(r#"{"v": "hnsw"}"#, Some(r#"{"numDimensions": 3}"#)),
        "2 dimensions",
    );
    c.delete(&doc! {}, true).unwrap();
    c.create_index_json(r#"{"v": "hnsw"}"#, Some(r#"{"numDimensions": 3}"#))
        .unwrap();
    let ins = |json: &str| c.insert(Document::from_json(json).unwrap());
    invalid(ins(r#"{"v": [1, 2]}"#), "2 dimensions, the index 3");
    invalid(ins(r#"{"v": [1, 2, {"$numberDouble": "NaN"}]}"#), "NaN");
    invalid(
        ins(r#"{"v": [1, 2, {"$numberDouble": "Infinity"}]}"#),
        "NaN and infinities",
    );
    invalid(ins(r#"{"v": [1, "two", 3]}"#), "element 1 is a string");
    invalid(ins(r#"{"v": "1,2,3"}"#), "not a string");
    invalid(ins(r#"{"v": [1, 2, 1e300]}"#), "float32");
    // An update to a bad vector is refused and changes nothing.
    ins(r#"{"_id": 5, "v": [1, 2, 3]}"#).unwrap();
    invalid(
        c.update(
            &doc! {"_id": 5},
            &doc! {"$set": {"v": [1, 2]}},
            Default::default(),
        ),
        "2 dimensions",
    );
    // Inside a transaction, a refused write leaves the graph untouched too.
    db.begin().unwrap();
    invalid(ins(r#"{"_id": 6, "v": [1]}"#), "1 dimensions");
    db.commit().unwrap();
    // An _id too long for a graph node: refused with the vector, accepted without one.
    let long = "x".repeat(70_000);
    invalid(
        c.insert(Document::from(
            doc! {"_id": long.clone(), "v": [1.0, 2.0, 3.0]},
        )),
        "65535 bytes",
    );
    c.insert(Document::from(doc! {"_id": long.clone(), "w": 1}))
        .unwrap();
    c.delete(&doc! {"_id": long}, false).unwrap();
    // Missing field: simply not indexed.
    ins(r#"{"_id": 7, "w": 1}"#).unwrap();
    assert_eq!(c.count(&doc! {}).unwrap(), 2);
    db.check().unwrap();
    let s = |json: &str| c.vector_search_json(json).map(|c| c.count());
    invalid(
        s(r#"{"path": "v", "queryVector": [1, 2], "limit": 1}"#),
        "2 dimensions",
    );
    invalid(s(r#"{"path": "v", "queryVector": [1, 2, 3]}"#), "limit");
    invalid(s(r#"{"queryVector": [1, 2, 3], "limit": 1}"#), "path");
    invalid(s(r#"{"path": "v", "limit": 1}"#), "queryVector");
    invalid(
        s(r#"{"path": "v", "queryVector": [1, 2, 3], "limit": 0}"#),
        "limit",
    );
    invalid(
        s(r#"{"path": "v", "queryVector": [1, 2, 3], "limit": 5, "numCandidates": 2}"#),
        "at least",
    );
    invalid(
        s(r#"{"path": "v", "queryVector": [1, 2, 3], "limit": 1, "bogus": 1}"#),
        "unknown",
    );
    invalid(
        s(r#"{"path": "w", "queryVector": [1, 2, 3], "limit": 1}"#),
        "no vector index",
    );
    // A score field no document could hold as a key.
    for field in ["", "$s", "a.b", "a\\u0000b"] {
        invalid(
            s(&format!(
                r#"{{"path": "v", "queryVector": [1, 2, 3], "limit": 1, "scoreField": "{field}"}}"#
            )),
            "scoreField",
        );
    }
    assert_eq!(
        s(r#"{"path": "v", "queryVector": [1, 2, 3], "limit": 3}"#).unwrap(),
        1
    );
}

#[test]
fn vector_search_as_the_first_stage_of_an_aggregation() {
    let db = Database::open_in_memory().unwrap();
    let c = db.collection("c");
    c.create_index_json(r#"{"v": "hnsw"}"#, Some(r#"{"numDimensions": 2}"#))
        .unwrap();
    for (i, v) in [[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [9.0, 9.0]]
        .iter()
        .enumerate()
    {
        let d = doc! {"_id": i as i64, "v": [v[0], v[1]], "g": (i % 2) as i64};
        c.insert(Document::from(d)).unwrap();
    }
    let pipeline = r#"[
        {"$vectorSearch": {"path": "v", "queryVector": [1.0, 1.0], "limit": 3, "numCandidates": 10}},
        {"$project": {"_id": 1, "score": {"$meta": "vectorSearchScore"}}},
        {"$match": {"_id": {"$ne": 2}}}
    ]"#;
    let rows: Vec<BsonDocument> = c
        .aggregate_json(pipeline, Default::default())
        .unwrap()
        .map(|r| r.unwrap().into_bson())
        .collect();
    assert_eq!(
        rows,
        vec![
            doc! {"_id": 1i64, "score": 1.0},
            doc! {"_id": 0i64, "score": 1.0 / 3.0}
        ]
    );
    // Later stages see the search's documents only; the hidden score field never leaks.
    let grouped: Vec<BsonDocument> = c
        .aggregate_json(
            r#"[{"$vectorSearch": {"path": "v", "queryVector": [0, 0], "limit": 3, "filter": {"g": 0}}},
                {"$group": {"_id": null, "n": {"$sum": 1}, "best": {"$max": {"$meta": "vectorSearchScore"}}}}]"#,
            Default::default(),
        )
        .unwrap()
        .map(|r| r.unwrap().into_bson())
        .collect();
    assert_eq!(grouped, vec![doc! {"_id": Bson::Null, "n": 2, "best": 1.0}]);
    let plain: Vec<BsonDocument> = c
        .aggregate_json(
            r#"[{"$vectorSearch": {"path": "v", "queryVector": [9, 9], "limit": 1}}]"#,
            Default::default(),
        )
        .unwrap()
        .map(|r| r.unwrap().into_bson())
        .collect();
    assert_eq!(plain, vec![doc! {"_id": 3i64, "v": [9.0, 9.0], "g": 1i64}]);
    invalid(
        c.aggregate_json(
            r#"[{"$vectorSearch": {"path": "v", "queryVector": [1], "limit": 1}}]"#,
            Default::default(),
        )
        .map(|c| c.count()),
        "dimensions",
    );
}
