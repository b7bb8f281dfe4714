//! MongoDB's ordering of BSON values: values of different types order by a fixed type rank
//! (MinKey < null < numbers < strings < objects < arrays < binary < ObjectId < booleans <
//! dates < timestamps < regexes < MaxKey), numbers compare by value across int32, int64,
//! double and decimal128, and equal numbers of different types are equal.

use bson::Bson;
use std::cmp::Ordering;

/// The type rank used for cross-type ordering and for type bracketing in comparisons.
pub(crate) fn type_rank(v: &Bson) -> u8 {
    match v {
        Bson::MinKey => 0,
        Bson::Null | Bson::Undefined => 1,
        Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_) => 2,
        Bson::String(_) | Bson::Symbol(_) => 3,
        Bson::Document(_) => 4,
        Bson::Array(_) => 5,
        Bson::Binary(_) => 6,
        Bson::ObjectId(_) => 7,
        Bson::Boolean(_) => 8,
        Bson::DateTime(_) => 9,
        Bson::Timestamp(_) => 10,
        Bson::RegularExpression(_) => 11,
        Bson::DbPointer(_) => 12,
        Bson::JavaScriptCode(_) | Bson::JavaScriptCodeWithScope(_) => 13,
        Bson::MaxKey => 14,
    }
}

/// A number as an exactly comparable value: integers stay integers, everything else is f64.
enum Num {
    Int(i64),
    Float(f64),
}

fn as_num(v: &Bson) -> Option<Num> {
    match v {
        Bson::Int32(i) => Some(Num::Int(i64::from(*i))),
        Bson::Int64(i) => Some(Num::Int(*i)),
        Bson::Double(d) => Some(Num::Float(*d)),
        Bson::Decimal128(d) => Some(Num::Float(d.to_string().parse::<f64>().unwrap_or(f64::NAN))),
        _ => None,
    }
}

/// Compares an integer with a float exactly (no rounding of large integers).
// `t as i64`: `t` is a whole number strictly inside i64's range (checked first).
#[allow(clippy::cast_possible_truncation)]
fn cmp_int_float(i: i64, f: f64) -> Ordering {
    if f.is_nan() {
        return Ordering::Greater; // NaN sorts below every number in MongoDB
    }
    // 2^63: every i64 is below it, and every double below it (and at least -2^63)
    // truncates to an i64 exactly. (A bound of 9.3e18 let 2^63 itself through, whose cast
    // saturates to i64::MAX: 2^63 compared equal to 2^63 - 1.)
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if f >= TWO_63 {
        return Ordering::Less;
    }
    if f < -TWO_63 {
        return Ordering::Greater;
    }
    let t = f.trunc();
    match i.cmp(&(t as i64)) {
        Ordering::Equal => {
            let frac = f - t;
            if frac > 0.0 {
                Ordering::Less
            } else if frac < 0.0 {
                Ordering::Greater
            } else {
                Ordering::Equal
            }
        }
        o => o,
    }
}

fn cmp_float(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        _ => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

fn cmp_num(a: &Num, b: &Num) -> Ordering {
    match (a, b) {
        (Num::Int(x), Num::Int(y)) => x.cmp(y),
        (Num::Int(x), Num::Float(y)) => cmp_int_float(*x, *y),
        (Num::Float(x), Num::Int(y)) => cmp_int_float(*y, *x).reverse(),
        (Num::Float(x), Num::Float(y)) => cmp_float(*x, *y),
    }
}

/// Total order over BSON values, MongoDB's.
pub(crate) fn compare(a: &Bson, b: &Bson) -> Ordering {
    let (ra, rb) = (type_rank(a), type_rank(b));
    if ra != rb {
        return ra.cmp(&rb);
    }
    match (a, b) {
        _ if ra == 2 => match (as_num(a), as_num(b)) {
            (Some(x), Some(y)) => cmp_num(&x, &y),
            _ => Ordering::Equal,
        },
        (Bson::String(x) | Bson::Symbol(x), Bson::String(y) | Bson::Symbol(y)) => {
            x.as_bytes().cmp(y.as_bytes())
        }
        (Bson::Document(x), Bson::Document(y)) => {
            let mut ix = x.iter();
            let mut iy = y.iter();
            loop {
                match (ix.next(), iy.next()) {
                    (None, None) => return Ordering::Equal,
                    (None, Some(_)) => return Ordering::Less,
                    (Some(_), None) => return Ordering::Greater,
                    (Some((kx, vx)), Some((ky, vy))) => {
                        let o = type_rank(vx)
                            .cmp(&type_rank(vy))
                            .then_with(|| kx.as_bytes().cmp(ky.as_bytes()))
                            .then_with(|| compare(vx, vy));
                        if o != Ordering::Equal {
                            return o;
                        }
                    }
                }
            }
        }
        (Bson::Array(x), Bson::Array(y)) => {
            for (vx, vy) in x.iter().zip(y.iter()) {
                let o = compare(vx, vy);
                if o != Ordering::Equal {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
        (Bson::Binary(x), Bson::Binary(y)) => x
            .bytes
            .len()
            .cmp(&y.bytes.len())
            .then_with(|| u8::from(x.subtype).cmp(&u8::from(y.subtype)))
            .then_with(|| x.bytes.cmp(&y.bytes)),
        (Bson::ObjectId(x), Bson::ObjectId(y)) => x.bytes().cmp(&y.bytes()),
        (Bson::Boolean(x), Bson::Boolean(y)) => x.cmp(y),
        (Bson::DateTime(x), Bson::DateTime(y)) => x.timestamp_millis().cmp(&y.timestamp_millis()),
        (Bson::Timestamp(x), Bson::Timestamp(y)) => {
            (x.time, x.increment).cmp(&(y.time, y.increment))
        }
        (Bson::RegularExpression(x), Bson::RegularExpression(y)) => x
            .pattern
            .cmp(&y.pattern)
            .then_with(|| x.options.cmp(&y.options)),
        (Bson::JavaScriptCode(x), Bson::JavaScriptCode(y)) => x.cmp(y),
        _ => Ordering::Equal,
    }
}

/// Equality as MongoDB's `$eq` sees it (`1 == 1.0 == NumberLong(1)`).
pub(crate) fn equal(a: &Bson, b: &Bson) -> bool {
    compare(a, b) == Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::bson;

    #[test]
    fn numbers_compare_across_types() {
        assert!(equal(&Bson::Int32(1), &Bson::Double(1.0)));
        assert!(equal(&Bson::Int64(1), &Bson::Int32(1)));
        assert_eq!(
            compare(&Bson::Int64(i64::MAX), &Bson::Double(1e18)),
            Ordering::Greater
        );
        assert_eq!(compare(&Bson::Int32(2), &Bson::Double(2.5)), Ordering::Less);
        // At the ends of i64: 2^63 is above i64::MAX, -2^63 is i64::MIN.
        let two_63 = 9_223_372_036_854_775_808.0;
        assert_eq!(
            compare(&Bson::Int64(i64::MAX), &Bson::Double(two_63)),
            Ordering::Less
        );
        assert!(equal(&Bson::Int64(i64::MIN), &Bson::Double(-two_63)));
        assert_eq!(
            compare(&Bson::Int64(i64::MIN), &Bson::Double(-two_63 * 2.0)),
            Ordering::Greater
        );
        assert_eq!(
            compare(
                &Bson::Int64(i64::MAX - 1),
                &Bson::Double(9_223_372_036_854_774_784.0)
            ),
            Ordering::Greater
        );
    }

    #[test]
    fn types_order_by_rank() {
        assert_eq!(compare(&Bson::Null, &Bson::Int32(0)), Ordering::Less);
        assert_eq!(compare(&bson!("a"), &Bson::Int32(100)), Ordering::Greater);
        assert_eq!(compare(&bson!({"a": 1}), &bson!([1])), Ordering::Less);
    }
}
