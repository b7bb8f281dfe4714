//! Unit tests of update parsing and application.

use super::*;
use bson::doc;

fn run(update: Document, d: Document) -> Result<Document> {
    let f = Filter::match_all();
    Update::parse(&update)?.apply(&d, &f, false)
}

#[test]
fn set_unset_inc() {
    let out = run(
        doc! {"$set": {"a.b": 1, "c.1": "x"}, "$inc": {"n": 2}, "$unset": {"z": ""}},
        doc! {"_id": 1, "n": 1, "c": [0], "z": 3},
    )
    .unwrap();
    assert_eq!(out, doc! {"_id": 1, "n": 3, "c": [0, "x"], "a": {"b": 1}});
}

#[test]
fn validation_happens_before_apply() {
    assert!(matches!(
        Update::parse(&doc! {"$foo": {"a": 1}}),
        Err(Error::Parse(_))
    ));
    assert!(Update::parse(&doc! {"$inc": {"a": "x"}}).is_err());
    assert!(Update::parse(&doc! {"$set": {"a": 1}, "$inc": {"a.b": 1}}).is_err());
    assert!(Update::parse(&doc! {"$set": {"a": 1}, "b": 2}).is_err());
    assert!(matches!(Update::parse(&doc! {}), Err(Error::Parse(_))));
    assert!(Update::parse(&doc! {"$unset": {"_id": 1}}).is_err());
    assert!(run(doc! {"$set": {"_id": 2}}, doc! {"_id": 1}).is_err());
}

#[test]
fn inc_promotes_on_overflow() {
    let out = run(doc! {"$inc": {"n": 1}}, doc! {"_id": 1, "n": i32::MAX}).unwrap();
    assert_eq!(out.get("n"), Some(&Bson::Int64(i64::from(i32::MAX) + 1)));
    assert!(run(doc! {"$inc": {"n": 1_i64}}, doc! {"_id": 1, "n": i64::MAX}).is_err());
}

#[test]
fn positional_operators() {
    let f = Filter::parse(&doc! {"g.s": {"$gt": 5}}).unwrap();
    let u = Update::parse(&doc! {"$set": {"g.$.ok": true}}).unwrap();
    let out = u
        .apply(&doc! {"_id": 1, "g": [{"s": 1}, {"s": 6}]}, &f, false)
        .unwrap();
    assert_eq!(out, doc! {"_id": 1, "g": [{"s": 1}, {"s": 6, "ok": true}]});
    let out = run(doc! {"$inc": {"v.$[]": 1}}, doc! {"_id": 1, "v": [1, 2]}).unwrap();
    assert_eq!(out, doc! {"_id": 1, "v": [2, 3]});
}

fn run_af(update: Document, filters: Vec<Document>, d: Document) -> Result<Document> {
    let f = Filter::match_all();
    let u = Update::parse_with(&UpdateModifications::Document(update), Some(&filters))?;
    u.apply(&d, &f, false)
}

#[test]
fn filtered_positional_updates_the_elements_that_match() {
    let out = run_af(
        doc! {"$set": {"grades.$[element]": 100}},
        vec![doc! {"element": {"$gte": 100}}],
        doc! {"_id": 1, "grades": [95, 102, 90, 150]},
    )
    .unwrap();
    assert_eq!(out, doc! {"_id": 1, "grades": [95, 100, 90, 100]});
    // Fields of document elements, several conditions in one filter.
    let out = run_af(
        doc! {"$set": {"grades.$[e].mean": 0}},
        vec![doc! {"e.grade": {"$gte": 85}, "e.std": {"$lt": 8}}],
        doc! {"_id": 1, "grades": [{"grade": 80, "mean": 75, "std": 6}, {"grade": 85, "mean": 90, "std": 4}, {"grade": 90, "mean": 85, "std": 9}]},
    )
    .unwrap();
    assert_eq!(
        out.get_array("grades").unwrap()[1],
        Bson::Document(doc! {"grade": 85, "mean": 0, "std": 4})
    );
}

#[test]
fn nested_identifiers_and_combinations() {
    let d = doc! {"_id": 1, "a": [{"b": [1, 5, 9]}, {"b": [7]}, {"c": 1}]};
    // $[] outside, $[x] inside: an element without `b` is an error as for $[] (MongoDB).
    assert!(run_af(
        doc! {"$inc": {"a.$[].b.$[x]": 1}},
        vec![doc! {"x": {"$gt": 4}}],
        d.clone()
    )
    .is_err());
    let out = run_af(
        doc! {"$inc": {"a.$[i].b.$[x]": 10}},
        vec![doc! {"i.b": {"$exists": true}}, doc! {"x": {"$gt": 4}}],
        d,
    )
    .unwrap();
    assert_eq!(
        out,
        doc! {"_id": 1, "a": [{"b": [1, 15, 19]}, {"b": [17]}, {"c": 1}]}
    );
}

#[test]
fn array_filters_are_checked_against_the_update() {
    let err = |u: Document, f: Vec<Document>| {
        Update::parse_with(&UpdateModifications::Document(u), Some(&f))
            .unwrap_err()
            .to_string()
    };
    assert!(err(doc! {"$set": {"a.$[x]": 1}}, vec![])
        .contains("No array filter found for identifier 'x' in path 'a.$[x]'"));
    assert!(err(
        doc! {"$set": {"a.$[x]": 1}},
        vec![doc! {"x": 1}, doc! {"y": 2}]
    )
    .contains("The array filter for identifier 'y' was not used in the update"));
    assert!(err(doc! {"a": 1}, vec![doc! {"y": 2}]).contains("was not used"));
    // A pipeline runs (its stages are checked at parse); arrayFilters are refused with one.
    let pipeline = UpdateModifications::Pipeline(vec![doc! {"$set": {"a": 1}}]);
    assert!(Update::parse_with(&pipeline, None).is_ok());
    assert!(matches!(
        Update::parse_with(&pipeline, Some(&[doc! {"x": 1}])),
        Err(Error::Parse(_))
    ));
    assert!(matches!(
        Update::parse_with(
            &UpdateModifications::Pipeline(vec![doc! {"$limit": 1}]),
            None
        ),
        Err(Error::Parse(_))
    ));
}

#[test]
fn identifiers_resolving_to_one_element_conflict() {
    let e = run_af(
        doc! {"$set": {"a.$[x]": 0, "a.$[y]": 9}},
        vec![doc! {"x": {"$gte": 2}}, doc! {"y": 3}],
        doc! {"_id": 1, "a": [1, 2, 3]},
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("Update created a conflict at 'a.2'"),
        "{e}"
    );
}
