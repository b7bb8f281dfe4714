//! Updates applied to a document's stored bytes, without decoding the document: the common
//! single-field changes (`$set` of a number, boolean or date over a value of the same type,
//! `$inc` of a number that keeps its type) overwrite the value's bytes in a copy of the body.
//! [`patch`] answers `None` whenever the update is anything else (another operator, a dotted
//! or positional path, a missing field, a change of type or width, a value that needs an
//! error message): the caller then takes the general path ([`super::Update::apply`] on the
//! decoded document), so results and errors are the general path's by construction. The
//! values are computed by the same functions ([`super::fields::arith`]) and compared with
//! the same equality as there (an update that leaves every value equal changes nothing).

use super::fields::arith;
use super::{Action, FieldOp, Update};
use crate::document::raw;
use bson::Bson;

/// What a byte-level update gives.
#[derive(Debug, PartialEq)]
pub(crate) enum Patched {
    /// Every value the update sets equals the one it replaces: nothing to write.
    Unchanged,
    /// The new body's bytes.
    Body(Vec<u8>),
}

/// Whether [`patch`] may apply to some document: only field operators that it handles, on
/// top-level fields other than `_id`. Lets a caller skip the byte path without looking at
/// any document.
pub(crate) fn may_patch(u: &Update) -> bool {
    match u {
        Update::Replace(_) | Update::Pipeline(_) => false,
        Update::Ops(ops, _) => ops.iter().all(|op| {
            plain_field(&op.path) && matches!(op.action, Action::Set(_) | Action::Inc(_))
        }),
    }
}

fn plain_field(path: &str) -> bool {
    path != "_id" && !path.is_empty() && !path.contains('.') && !path.starts_with('$')
}

/// The body `update` gives when applied to the document whose BSON bytes are `body`, when it
/// can be written into the bytes in place; `None` otherwise (take the general path).
pub(crate) fn patch(update: &Update, body: &[u8]) -> Option<Patched> {
    let Update::Ops(ops, _) = update else {
        return None;
    };
    let mut out: Option<Vec<u8>> = None;
    let mut changed = false;
    for op in ops {
        if !plain_field(&op.path) {
            return None;
        }
        // Later operators see the earlier ones' results (paths never conflict, so each
        // operator has its own field; reading the copy keeps that true regardless).
        let current = out.as_deref().unwrap_or(body);
        let elem = raw::find(current, &op.path).ok()??;
        let old = raw::to_bson(elem).ok()?;
        let new = new_value(op, &old)?;
        let bytes = fixed_bytes(&new)?;
        if new.element_type() as u8 != elem.kind || bytes.len() != elem.bytes.len() {
            return None;
        }
        if new == old {
            continue;
        }
        changed = true;
        let at = (elem.bytes.as_ptr() as usize).checked_sub(current.as_ptr() as usize)?;
        let buf = out.get_or_insert_with(|| body.to_vec());
        buf.get_mut(at..at + bytes.len())?.copy_from_slice(&bytes);
    }
    Some(match (changed, out) {
        (true, Some(b)) => Patched::Body(b),
        _ => Patched::Unchanged,
    })
}

/// The value `op` gives over `old`; `None` for what the byte path leaves to the general one
/// (including every error: the general path reports it).
fn new_value(op: &FieldOp, old: &Bson) -> Option<Bson> {
    match &op.action {
        Action::Set(v) => Some(v.clone()),
        Action::Inc(by) => arith(op.op, old, by, &op.path, "").ok(),
        _ => None,
    }
}

/// The value bytes of a fixed-width scalar; `None` for every other type.
fn fixed_bytes(v: &Bson) -> Option<Vec<u8>> {
    Some(match v {
        Bson::Int32(i) => i.to_le_bytes().to_vec(),
        Bson::Int64(i) => i.to_le_bytes().to_vec(),
        Bson::Double(f) => f.to_le_bytes().to_vec(),
        Bson::Boolean(b) => vec![u8::from(*b)],
        Bson::DateTime(d) => d.timestamp_millis().to_le_bytes().to_vec(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::filter::Filter;
    use bson::{doc, Document};

    fn bytes(d: &Document) -> Vec<u8> {
        let mut b = Vec::new();
        d.to_writer(&mut b).unwrap();
        b
    }

    /// The byte path, when it applies, gives exactly the general path's document.
    fn agrees(d: Document, u: Document) -> Option<Patched> {
        let u = Update::parse(&u).unwrap();
        let got = patch(&u, &bytes(&d));
        let general = u.apply(&d, &Filter::parse(&doc! {}).unwrap(), false);
        match &got {
            Some(Patched::Body(b)) => {
                let general = general.expect("the general path succeeds where bytes did");
                assert_eq!(*b, bytes(&general), "same bytes as the general path");
                assert_ne!(general, d);
            }
            Some(Patched::Unchanged) => assert_eq!(general.unwrap(), d),
            None => {}
        }
        got
    }

    #[test]
    fn same_type_numbers_dates_and_booleans_are_patched() {
        let d = doc! {"_id": "a", "n": 1, "l": 5_i64, "f": 1.5, "b": false,
        "t": bson::DateTime::from_millis(7), "s": "x"};
        for u in [
            doc! {"$inc": {"n": 2}},
            doc! {"$inc": {"l": 2_i64}},
            doc! {"$inc": {"l": 2}},
            doc! {"$inc": {"f": 0.25}},
            doc! {"$set": {"b": true}},
            doc! {"$set": {"t": bson::DateTime::from_millis(9)}},
            doc! {"$set": {"n": 9}, "$inc": {"f": 1}},
            // NaN never equals itself, for the general path too: always a change.
            doc! {"$set": {"f": f64::NAN}},
        ] {
            assert!(
                matches!(agrees(d.clone(), u.clone()), Some(Patched::Body(_))),
                "{u}"
            );
        }
    }

    #[test]
    fn a_nan_is_replaced_even_by_a_nan() {
        let d = doc! {"_id": "a", "f": f64::NAN};
        for u in [doc! {"$set": {"f": 1.0}}, doc! {"$set": {"f": f64::NAN}}] {
            assert!(matches!(agrees(d.clone(), u), Some(Patched::Body(_))));
        }
    }

    #[test]
    fn updates_that_change_nothing_say_so() {
        let d = doc! {"_id": "a", "n": 1, "f": 0.0};
        assert_eq!(
            agrees(d.clone(), doc! {"$inc": {"n": 0}}),
            Some(Patched::Unchanged)
        );
        assert_eq!(
            agrees(d.clone(), doc! {"$set": {"n": 1}}),
            Some(Patched::Unchanged)
        );
        // -0.0 equals 0.0 for the general path too: unchanged, nothing written.
        assert_eq!(
            agrees(d, doc! {"$set": {"f": -0.0}}),
            Some(Patched::Unchanged)
        );
    }

    #[test]
    fn everything_else_takes_the_general_path() {
        let d = doc! {"_id": "a", "n": 1, "big": i32::MAX, "s": "x", "o": {"k": 1}, "arr": [1]};
        for u in [
            doc! {"$inc": {"n": 1_i64}},     // int becomes long
            doc! {"$inc": {"big": 1}},       // overflows into a long
            doc! {"$inc": {"n": 0.5}},       // int becomes double
            doc! {"$inc": {"s": 1}},         // an error, reported by the general path
            doc! {"$inc": {"missing": 1}},   // a new field
            doc! {"$set": {"s": "y"}},       // a string
            doc! {"$set": {"n": "y"}},       // a change of type
            doc! {"$set": {"o.k": 2}},       // a dotted path
            doc! {"$unset": {"n": ""}},      // another operator
            doc! {"$set": {"arr.0": 2}},     // an array element
            doc! {"x": 1},                   // a replacement
            doc! {"$set": {"n": 2, "s": 1}}, // one field of several cannot
        ] {
            assert_eq!(agrees(d.clone(), u.clone()), None, "{u}");
        }
    }

    #[test]
    fn may_patch_looks_at_the_update_only() {
        let p = |u: Document| may_patch(&Update::parse(&u).unwrap());
        assert!(p(doc! {"$inc": {"n": 1}, "$set": {"b": true}}));
        assert!(!p(doc! {"$set": {"a.b": 1}}));
        assert!(!p(doc! {"$push": {"a": 1}}));
        assert!(!p(doc! {"a": 1}));
    }
}
