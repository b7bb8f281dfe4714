use super::*;
use bson::{bson, doc};

fn run(docs: Vec<Document>, stages: Vec<Document>) -> Result<Vec<Document>> {
    let (p, out) = Pipeline::parse(&stages)?;
    assert!(out.is_none());
    p.run(docs, &[], &NoForeign)
}

#[test]
fn group_sums_by_key_in_first_seen_order() {
    let docs = vec![
        doc! {"_id": 1, "k": "a", "n": 1},
        doc! {"_id": 2, "k": "b", "n": 2.5},
        doc! {"_id": 3, "k": "a", "n": 3},
    ];
    let r = run(
        docs,
        vec![doc! {"$group": {"_id": "$k", "total": {"$sum": "$n"}, "c": {"$count": {}}}}],
    )
    .unwrap();
    assert_eq!(
        r,
        vec![
            doc! {"_id": "a", "total": 4, "c": 2},
            doc! {"_id": "b", "total": 2.5, "c": 1}
        ]
    );
}

#[test]
fn project_inclusion_exclusion_and_errors() {
    let docs = vec![doc! {"_id": 1, "a": 1, "b": {"c": 2, "d": 3}}];
    let r = run(docs.clone(), vec![doc! {"$project": {"b.c": 1}}]).unwrap();
    assert_eq!(r, vec![doc! {"_id": 1, "b": {"c": 2}}]);
    let r = run(docs.clone(), vec![doc! {"$project": {"_id": 0, "b": 0}}]).unwrap();
    assert_eq!(r, vec![doc! {"a": 1}]);
    let r = run(
        docs.clone(),
        vec![doc! {"$project": {"x": {"$add": ["$a", 1]}}}],
    )
    .unwrap();
    assert_eq!(r, vec![doc! {"_id": 1, "x": 2}]);
    let e = run(docs, vec![doc! {"$project": {"a": 1, "b": 0}}]).unwrap_err();
    assert!(e.to_string().contains("Cannot do exclusion"), "{e}");
}

#[test]
fn unwind_and_unknown_stage() {
    let docs = vec![doc! {"_id": 1, "xs": [1, 2]}, doc! {"_id": 2, "xs": []}];
    let r = run(
        docs,
        vec![doc! {"$unwind": {"path": "$xs", "includeArrayIndex": "i", "preserveNullAndEmptyArrays": true}}],
    )
    .unwrap();
    assert_eq!(
        r,
        vec![
            doc! {"_id": 1, "xs": 1, "i": 0_i64},
            doc! {"_id": 1, "xs": 2, "i": 1_i64},
            doc! {"_id": 2, "i": null}
        ]
    );
    let e = run(vec![], vec![doc! {"$frob": {}}]).unwrap_err();
    assert!(matches!(e, Error::Unsupported(_)) && e.to_string().contains("$frob"));
}

#[test]
fn update_pipeline_sets_and_unsets() {
    let d = doc! {"_id": 1, "a": 2, "b": 3};
    let r = apply_update_pipeline(
        &d,
        &[
            doc! {"$set": {"c": {"$add": ["$a", "$b"]}}},
            doc! {"$unset": "b"},
        ],
    )
    .unwrap();
    assert_eq!(r, doc! {"_id": 1, "a": 2, "c": 5});
    let r =
        apply_update_pipeline(&d, &[doc! {"$replaceWith": {"_id": "$_id", "z": true}}]).unwrap();
    assert_eq!(r, doc! {"_id": 1, "z": true});
    let e = apply_update_pipeline(&d, &[doc! {"$group": {"_id": null}}]).unwrap_err();
    assert!(e.to_string().contains("not allowed"), "{e}");
    let e = apply_update_pipeline(&d, &[doc! {"$set": {"x": {"$nope": 1}}}]).unwrap_err();
    assert!(matches!(e, Error::Unsupported(_)));
}

#[test]
fn lookup_budget_refuses_past_the_limit() {
    let mut b = Budget::new();
    assert!(b.charge(MAX_BUFFERED_BYTES).is_ok());
    let e = b.charge(1).unwrap_err();
    assert!(matches!(e, Error::Unsupported(_)) && e.to_string().contains("$lookup"));
    let _ = bson!(1);
}

#[test]
fn long_pipelines_stream_without_deep_calls() {
    // 3,000 per-document stages, $skip and $limit on a 256 KiB stack: one loop, not an
    // iterator nested per stage.
    let r = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(|| {
            let mut stages = Vec::new();
            for i in 0..1000 {
                stages.push(doc! {"$addFields": {"n": {"$add": [{"$ifNull": ["$n", 0]}, 1]}}});
                stages.push(doc! {"$skip": i64::from(i % 2)});
                stages.push(doc! {"$limit": 1000 - i});
            }
            let docs = (0..2000).map(|i| doc! {"_id": i}).collect();
            run(docs, stages)
        })
        .unwrap()
        .join()
        .unwrap()
        .unwrap();
    // 500 skips of one document, and the last limit lets one through.
    assert_eq!(r, vec![doc! {"_id": 500, "n": 1000}]);
}

#[test]
fn unwind_then_limit_keeps_order_and_stops() {
    let docs = vec![
        doc! {"_id": 1, "xs": [1, 2, 3]},
        doc! {"_id": 2, "xs": [4, 5]},
        doc! {"_id": 3, "xs": [6]},
    ];
    let r = run(
        docs.clone(),
        vec![
            doc! {"$unwind": "$xs"},
            doc! {"$unwind": {"path": "$xs", "includeArrayIndex": "i"}},
            doc! {"$skip": 1},
            doc! {"$limit": 3},
            doc! {"$project": {"_id": 0, "xs": 1}},
        ],
    )
    .unwrap();
    assert_eq!(r, vec![doc! {"xs": 2}, doc! {"xs": 3}, doc! {"xs": 4}]);
}
