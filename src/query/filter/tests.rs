//! Unit tests of filter parsing and evaluation over owned and raw documents.

use super::*;
use crate::error::Error;
use bson::{doc, RawDocumentBuf};

/// Evaluates over the owned document and over its raw bytes, and insists they agree.
fn m(filter: Document, d: Document) -> bool {
    let f = Filter::parse(&filter).unwrap();
    let owned = f.matches(&d);
    let raw = RawDocumentBuf::from_bytes(d.to_vec().unwrap()).unwrap();
    assert_eq!(
        f.matches_raw(&raw),
        Some(owned),
        "raw and owned differ for {filter}"
    );
    owned
}

#[test]
fn implicit_equality_reaches_into_arrays() {
    let d = doc! {"tags": ["a", "b"], "items": [{"sku": 1}, {"sku": 2}]};
    assert!(m(doc! {"tags": "b"}, d.clone()));
    assert!(m(doc! {"tags": ["a", "b"]}, d.clone()));
    assert!(m(doc! {"items.sku": 2}, d.clone()));
    assert!(m(doc! {"items.1.sku": 2}, d.clone()));
    assert!(!m(doc! {"items.0.sku": 2}, d));
}

#[test]
fn null_matches_missing_and_null() {
    assert!(m(doc! {"a": Bson::Null}, doc! {"b": 1}));
    assert!(m(doc! {"a": Bson::Null}, doc! {"a": Bson::Null}));
    assert!(!m(doc! {"a": Bson::Null}, doc! {"a": 0}));
    assert!(m(
        doc! {"a.b": Bson::Null},
        doc! {"a": [{"b": 1}, {"c": 1}]}
    ));
}

#[test]
fn ranges_bracket_types() {
    assert!(m(doc! {"a": {"$gt": 1}}, doc! {"a": 1.5}));
    assert!(!m(doc! {"a": {"$gt": 1}}, doc! {"a": "zzz"}));
    assert!(m(doc! {"a": {"$gte": 2, "$lt": 3}}, doc! {"a": [1, 2]}));
    assert!(m(doc! {"a": {"$ne": 5}}, doc! {"b": 1}));
}

#[test]
fn element_operators() {
    let d = doc! {"a": [{"x": 1, "y": 2}, {"x": 2, "y": 1}], "n": [1, 5, 9]};
    assert!(m(doc! {"a": {"$elemMatch": {"x": 1, "y": 2}}}, d.clone()));
    assert!(!m(doc! {"a": {"$elemMatch": {"x": 1, "y": 1}}}, d.clone()));
    assert!(m(
        doc! {"n": {"$elemMatch": {"$gt": 4, "$lt": 6}}},
        d.clone()
    ));
    assert!(m(doc! {"n": {"$all": [9, 1]}}, d.clone()));
    assert!(m(doc! {"n": {"$size": 3}}, d.clone()));
    assert!(m(doc! {"n": {"$mod": [4, 1]}}, d.clone()));
    assert!(m(doc! {"n": {"$type": "int"}}, d.clone()));
    assert!(m(doc! {"n": {"$type": "array"}}, d));
}

#[test]
fn unknown_operators_are_named() {
    let e = Filter::parse(&doc! {"a": {"$foo": 1}}).unwrap_err();
    assert!(matches!(e, Error::Parse(_)));
    assert!(e.to_string().contains("unknown operator: $foo"));
    let e = Filter::parse(&doc! {"$bar": []}).unwrap_err();
    assert!(e.to_string().contains("$bar"));
}

#[test]
fn positional_index_finds_the_first_matching_element() {
    let d = doc! {"g": [{"s": 1}, {"s": 8}, {"s": 9}], "v": [3, 7, 7]};
    let f = Filter::parse(&doc! {"g.s": {"$gt": 5}}).unwrap();
    assert_eq!(f.positional_index(&d, &["g".into()]), Some(1));
    let f = Filter::parse(&doc! {"v": 7}).unwrap();
    assert_eq!(f.positional_index(&d, &["v".into()]), Some(1));
    let f = Filter::parse(&doc! {"x": 7}).unwrap();
    assert_eq!(f.positional_index(&d, &["v".into()]), None);
}
