//! A sort with a limit keeps only the first `skip + limit` rows while it reads (the cursor's
//! top-k): the answers must equal sorting every match, ties included, for many shapes.

use bson::{doc, Bson};
use nexus::{Database, Document, FindOptions};

#[test]
fn sort_with_limit_equals_sorting_everything() {
    let db = Database::open_in_memory().unwrap();
    let c = db.collection("t");
    let n = 1500i32;
    for i in 0..n {
        // Many ties on v (97 values), a second field w for an index-driven filter.
        let json = format!(
            r#"{{"_id": {i}, "v": {}, "w": {}}}"#,
            (i * 7919) % 97,
            i % 3
        );
        c.insert(Document::from_json(&json).unwrap()).unwrap();
    }
    let run = |filter: bson::Document, sort: bson::Document, skip: u64, limit: u64| -> Vec<i32> {
        let opts = FindOptions {
            sort: Some(sort),
            skip,
            limit,
            ..FindOptions::default()
        };
        c.find(&filter, opts)
            .unwrap()
            .map(|d| match d.unwrap().get("_id") {
                Some(Bson::Int32(i)) => *i,
                other => panic!("{other:?}"),
            })
            .collect()
    };
    // The expected order: v ascending (or descending), ties by _id ascending.
    let expect = |w: Option<i32>, desc: bool, skip: usize, limit: usize| -> Vec<i32> {
        let mut all: Vec<(i32, i32)> = (0..n)
            .filter(|i| w.is_none_or(|w| i % 3 == w))
            .map(|i| ((i * 7919) % 97, i))
            .collect();
        all.sort_by(|a, b| {
            let by_v = if desc { b.0.cmp(&a.0) } else { a.0.cmp(&b.0) };
            by_v.then(a.1.cmp(&b.1))
        });
        all.into_iter()
            .skip(skip)
            .take(limit)
            .map(|(_, i)| i)
            .collect()
    };
    for pass in 0..2 {
        if pass == 1 {
            // Now the filter on w is served by an index (rows come in index order).
            c.create_index_json(r#"{"w": 1}"#, None).unwrap();
        }
        for (skip, limit) in [
            (0, 1),
            (0, 10),
            (5, 10),
            (0, 64),
            (3, 200),
            (0, 700),
            (100, 1),
        ] {
            for desc in [false, true] {
                let sort = doc! {"v": if desc { -1 } else { 1 }};
                assert_eq!(
                    run(doc! {}, sort.clone(), skip as u64, limit as u64),
                    expect(None, desc, skip, limit),
                    "all, skip {skip} limit {limit} desc {desc} pass {pass}"
                );
                assert_eq!(
                    run(doc! {"w": 1}, sort, skip as u64, limit as u64),
                    expect(Some(1), desc, skip, limit),
                    "w=1, skip {skip} limit {limit} desc {desc} pass {pass}"
                );
            }
        }
    }
}
