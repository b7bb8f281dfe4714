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
