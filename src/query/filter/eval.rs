//! Evaluation of one [`Cond`] over the values a path [`Reached`]: MongoDB's array rule (a
//! condition holds when it holds for the value or, for an array, for one of its elements;
//! `$size`, `$all` and `$elemMatch` look at the array itself), `null` matching missing,
//! type bracketing for ranges, and the negations (`$ne`, `$nin`, `$not`) as the complement
//! of their positive forms over the whole field.

use super::{Cond, TypeSel};
use crate::query::compare::{compare, equal, type_rank};
use crate::query::path::Reached;
use bson::Bson;
use std::cmp::Ordering;

/// Whether `pred` holds for one of the values or for one element of an array value.
fn any_value_or_element(r: &Reached<'_>, pred: impl Fn(&Bson) -> bool) -> bool {
    r.values.iter().any(|v| {
        let v: &Bson = v;
        pred(v) || matches!(v, Bson::Array(items) if items.iter().any(&pred))
    })
}

fn is_nullish(v: &Bson) -> bool {
    matches!(v, Bson::Null | Bson::Undefined)
}

fn eq_test(r: &Reached<'_>, wanted: &Bson) -> bool {
    if matches!(wanted, Bson::Null) {
        return r.missing || r.values.is_empty() || any_value_or_element(r, is_nullish);
    }
    any_value_or_element(r, |v| equal(v, wanted))
}

fn cmp_ok(stored: &Bson, dir: Ordering, or_equal: bool, wanted: &Bson) -> bool {
    // MinKey and MaxKey bound every type.
    let bracket_free = matches!(wanted, Bson::MinKey | Bson::MaxKey);
    if !bracket_free && type_rank(stored) != type_rank(wanted) {
        return false;
    }
    let o = compare(stored, wanted);
    o == dir || (or_equal && o == Ordering::Equal)
}

/// The BSON type number of a value, as `$type` reads it.
fn type_code(v: &Bson) -> i32 {
    match v {
        Bson::Double(_) => 1,
        Bson::String(_) => 2,
        Bson::Document(_) => 3,
        Bson::Array(_) => 4,
        Bson::Binary(_) => 5,
        Bson::Undefined => 6,
        Bson::ObjectId(_) => 7,
        Bson::Boolean(_) => 8,
        Bson::DateTime(_) => 9,
        Bson::Null => 10,
        Bson::RegularExpression(_) => 11,
        Bson::DbPointer(_) => 12,
        Bson::JavaScriptCode(_) => 13,
        Bson::Symbol(_) => 14,
        Bson::JavaScriptCodeWithScope(_) => 15,
        Bson::Int32(_) => 16,
        Bson::Timestamp(_) => 17,
        Bson::Int64(_) => 18,
        Bson::Decimal128(_) => 19,
        Bson::MinKey => -1,
        Bson::MaxKey => 127,
    }
}

fn type_matches(v: &Bson, sel: TypeSel) -> bool {
    match sel {
        TypeSel::Number => type_rank(v) == 2,
        TypeSel::Code(c) => type_code(v) == c,
    }
}

fn mod_matches(v: &Bson, divisor: i64, remainder: i64) -> bool {
    // The doubles are truncated and guarded inside i64's range before the cast.
    #[allow(clippy::cast_possible_truncation)]
    let n = match v {
        Bson::Int32(i) => i64::from(*i),
        Bson::Int64(i) => *i,
        Bson::Double(d) if d.is_finite() && d.abs() < 9.2e18 => d.trunc() as i64,
        Bson::Decimal128(d) => match d.to_string().parse::<f64>() {
            Ok(f) if f.is_finite() && f.abs() < 9.2e18 => f.trunc() as i64,
            _ => return false,
        },
        _ => return false,
    };
    n.wrapping_rem(divisor) == remainder
}

fn text_of(v: &Bson) -> Option<&str> {
    match v {
        Bson::String(s) | Bson::Symbol(s) => Some(s),
        _ => None,
    }
}

impl Cond {
    /// Whether one array element satisfies the condition, as the positional `$` reads a
    /// condition on the array: `$elemMatch` tests the element itself.
    pub(crate) fn test_element(&self, e: &Bson) -> bool {
        match self {
            Cond::ElemMatchDoc(f) => matches!(e, Bson::Document(d) if f.matches(d)),
            Cond::ElemMatchValue(conds) => {
                let one = Reached::single(e);
                conds.iter().all(|c| c.test(&one))
            }
            other => other.test(&Reached::single(e)),
        }
    }

    /// Whether the condition holds for what the path reached.
    pub(crate) fn test(&self, r: &Reached<'_>) -> bool {
        match self {
            Cond::Eq(w) => eq_test(r, w),
            Cond::Ne(w) => !eq_test(r, w),
            Cond::Cmp(dir, or_equal, w) => {
                if matches!(w, Bson::Null) {
                    return *or_equal && eq_test(r, w);
                }
                any_value_or_element(r, |v| cmp_ok(v, *dir, *or_equal, w))
            }
            Cond::In(ws, pats) => in_test(r, ws, pats),
            Cond::Nin(ws, pats) => !in_test(r, ws, pats),
            Cond::Exists(want) => r.values.is_empty() != *want,
            Cond::Not(conds) => !conds.iter().all(|c| c.test(r)),
            Cond::Type(sels) => {
                any_value_or_element(r, |v| sels.iter().any(|s| type_matches(v, *s)))
            }
            Cond::Regex(p) => {
                any_value_or_element(r, |v| text_of(v).is_some_and(|s| p.is_match(s)))
            }
            Cond::Mod(d, m) => any_value_or_element(r, |v| mod_matches(v, *d, *m)),
            Cond::All(items) => !items.is_empty() && items.iter().all(|c| c.test(r)),
            Cond::Size(n) => r
                .values
                .iter()
                .any(|v| matches!(&**v, Bson::Array(items) if items.len() as u64 == *n)),
            Cond::ElemMatchValue(conds) => r.values.iter().any(|v| match &**v {
                Bson::Array(items) => items.iter().any(|e| {
                    let one = Reached::single(e);
                    conds.iter().all(|c| c.test(&one))
                }),
                _ => false,
            }),
            Cond::ElemMatchDoc(f) => r.values.iter().any(|v| match &**v {
                Bson::Array(items) => items
                    .iter()
                    .any(|e| matches!(e, Bson::Document(d) if f.matches(d))),
                _ => false,
            }),
        }
    }
}

fn in_test(r: &Reached<'_>, ws: &[Bson], pats: &[super::Pattern]) -> bool {
    ws.iter().any(|w| eq_test(r, w))
        || pats
            .iter()
            .any(|p| any_value_or_element(r, |v| text_of(v).is_some_and(|s| p.is_match(s))))
}
