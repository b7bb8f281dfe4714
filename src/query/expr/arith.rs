//! Arithmetic operators with MongoDB's result types: int32 op int32 stays int32 unless it
//! overflows (then int64), int64 overflowing becomes double, any double makes a double;
//! `$divide` and the transcendental functions always give doubles. Null or missing
//! arguments give null. decimal128 arithmetic is not built (`NEXUS_UNSUPPORTED`).
//! Also the array-or-arguments forms of `$sum` / `$avg` / `$min` / `$max`.

use super::{cmp_values, fail, is_nullish, type_name};
use crate::error::{Error, Result};
use bson::Bson;

/// A number as arithmetic sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Num {
    I32(i32),
    I64(i64),
    F(f64),
}

impl Num {
    pub(crate) fn of(v: &Bson) -> Option<Num> {
        match v {
            Bson::Int32(i) => Some(Num::I32(*i)),
            Bson::Int64(i) => Some(Num::I64(*i)),
            Bson::Double(d) => Some(Num::F(*d)),
            _ => None,
        }
    }

    pub(crate) fn bson(self) -> Bson {
        match self {
            Num::I32(i) => Bson::Int32(i),
            Num::I64(i) => Bson::Int64(i),
            Num::F(d) => Bson::Double(d),
        }
    }

    #[allow(clippy::cast_precision_loss)] // MongoDB converts the same way
    pub(crate) fn f64(self) -> f64 {
        match self {
            Num::I32(i) => f64::from(i),
            Num::I64(i) => i as f64,
            Num::F(d) => d,
        }
    }

    fn i64(self) -> Option<i64> {
        match self {
            Num::I32(i) => Some(i64::from(i)),
            Num::I64(i) => Some(i),
            Num::F(_) => None,
        }
    }

    /// A 64-bit integer result as int32 when both inputs were int32 and it fits.
    fn narrow(wide: i64, both_i32: bool) -> Num {
        match i32::try_from(wide) {
            Ok(n) if both_i32 => Num::I32(n),
            _ => Num::I64(wide),
        }
    }
}

/// Adds (or multiplies, with `checked` / `float`) two numbers with MongoDB's promotion.
fn combine(
    a: Num,
    b: Num,
    checked: fn(i64, i64) -> Option<i64>,
    float: fn(f64, f64) -> f64,
) -> Num {
    match (a.i64(), b.i64()) {
        (Some(x), Some(y)) => {
            let both = matches!((a, b), (Num::I32(_), Num::I32(_)));
            match checked(x, y) {
                Some(r) => Num::narrow(r, both),
                None => Num::F(float(a.f64(), b.f64())),
            }
        }
        _ => Num::F(float(a.f64(), b.f64())),
    }
}

pub(crate) fn add(a: Num, b: Num) -> Num {
    combine(a, b, i64::checked_add, |x, y| x + y)
}

fn number(op: &str, v: &Bson) -> Result<Num> {
    if let Bson::Decimal128(_) = v {
        return Err(Error::unsupported(format!(
            "{op}: decimal128 arithmetic is not supported by NexusLite"
        )));
    }
    Num::of(v).ok_or_else(|| {
        fail(format!(
            "{op} only supports numeric types, not {}",
            type_name(v)
        ))
    })
}

/// The operators of this family; `None` for other names.
pub(crate) fn call(name: &str, a: &[Bson]) -> Option<Result<Bson>> {
    Some(match name {
        "$add" => add_all(a),
        "$multiply" => fold(name, a, Num::I32(1), |x, y| {
            combine(x, y, i64::checked_mul, |p, q| p * q)
        }),
        "$subtract" => subtract(&a[0], &a[1]),
        "$divide" => binary(name, a, |x, y| {
            if y.f64() == 0.0 {
                return Err(fail("can't $divide by zero"));
            }
            Ok(Num::F(x.f64() / y.f64()))
        }),
        "$mod" => binary(name, a, modulo),
        "$pow" => binary(name, a, pow),
        "$log" => binary(name, a, |x, b| {
            let (x, b) = (x.f64(), b.f64());
            if x <= 0.0 || x.is_nan() {
                return Err(fail(format!(
                    "$log's argument must be a positive number, but is {x}"
                )));
            }
            if b <= 0.0 || b == 1.0 {
                return Err(fail(format!(
                    "$log's base must be a positive number not equal to 1, but is {b}"
                )));
            }
            Ok(Num::F(x.ln() / b.ln()))
        }),
        "$abs" => unary(name, &a[0], |x| {
            Ok(match x {
                Num::I32(i) => match i.checked_abs() {
                    Some(v) => Num::I32(v),
                    None => Num::I64(-i64::from(i)),
                },
                Num::I64(i) => Num::I64(
                    i.checked_abs()
                        .ok_or_else(|| fail("can't take $abs of long long min"))?,
                ),
                Num::F(d) => Num::F(d.abs()),
            })
        }),
        "$ceil" => unary(name, &a[0], |x| Ok(float_only(x, f64::ceil))),
        "$floor" => unary(name, &a[0], |x| Ok(float_only(x, f64::floor))),
        "$round" | "$trunc" => round(name, a),
        "$sqrt" => unary(name, &a[0], |x| {
            let f = x.f64();
            if f < 0.0 {
                return Err(fail("$sqrt's argument must be greater than or equal to 0"));
            }
            Ok(Num::F(f.sqrt()))
        }),
        "$exp" => unary(name, &a[0], |x| Ok(Num::F(x.f64().exp()))),
        "$ln" | "$log10" => unary(name, &a[0], |x| {
            let f = x.f64();
            if f <= 0.0 || f.is_nan() {
                return Err(fail(format!(
                    "{name}'s argument must be a positive number, but is {}",
                    super::types::to_string_value(&x.bson())
                )));
            }
            Ok(Num::F(if name == "$ln" { f.ln() } else { f.log10() }))
        }),
        "$sum" | "$avg" | "$min" | "$max" => Ok(over_values(name, a)),
        _ => return None,
    })
}

fn float_only(x: Num, f: fn(f64) -> f64) -> Num {
    match x {
        Num::F(d) => Num::F(f(d)),
        other => other,
    }
}

fn unary(op: &str, v: &Bson, f: impl Fn(Num) -> Result<Num>) -> Result<Bson> {
    if is_nullish(v) {
        return Ok(Bson::Null);
    }
    Ok(f(number(op, v)?)?.bson())
}

fn binary(op: &str, a: &[Bson], f: impl Fn(Num, Num) -> Result<Num>) -> Result<Bson> {
    if is_nullish(&a[0]) || is_nullish(&a[1]) {
        return Ok(Bson::Null);
    }
    Ok(f(number(op, &a[0])?, number(op, &a[1])?)?.bson())
}

fn fold(op: &str, a: &[Bson], start: Num, f: impl Fn(Num, Num) -> Num) -> Result<Bson> {
    let mut acc = start;
    for v in a {
        if is_nullish(v) {
            return Ok(Bson::Null);
        }
        acc = f(acc, number(op, v)?);
    }
    Ok(acc.bson())
}

/// `$add`: numbers, and at most one date (the sum is then a date).
fn add_all(a: &[Bson]) -> Result<Bson> {
    let mut acc = Num::I32(0);
    let mut date: Option<i64> = None;
    for v in a {
        match v {
            _ if is_nullish(v) => return Ok(Bson::Null),
            Bson::DateTime(d) => {
                if date.is_some() {
                    return Err(fail("only one date allowed in an $add expression"));
                }
                date = Some(d.timestamp_millis());
            }
            other => {
                let n = Num::of(other).ok_or_else(|| {
                    fail(format!(
                        "$add only supports numeric or date types, not {}",
                        type_name(other)
                    ))
                })?;
                acc = add(acc, n);
            }
        }
    }
    Ok(match date {
        Some(ms) => Bson::DateTime(bson::DateTime::from_millis(ms.saturating_add(millis(acc)))),
        None => acc.bson(),
    })
}

/// A number of milliseconds added to a date (doubles rounded to the nearest).
#[allow(clippy::cast_possible_truncation)] // saturating float-to-int, as intended
fn millis(n: Num) -> i64 {
    match n {
        Num::F(d) => d.round() as i64,
        other => other.i64().unwrap_or(0),
    }
}

fn subtract(a: &Bson, b: &Bson) -> Result<Bson> {
    if is_nullish(a) || is_nullish(b) {
        return Ok(Bson::Null);
    }
    match (a, b) {
        (Bson::DateTime(x), Bson::DateTime(y)) => Ok(Bson::Int64(
            x.timestamp_millis().saturating_sub(y.timestamp_millis()),
        )),
        (Bson::DateTime(x), n) => {
            let n = Num::of(n)
                .ok_or_else(|| fail(format!("can't $subtract {} from a date", type_name(n))))?;
            Ok(Bson::DateTime(bson::DateTime::from_millis(
                x.timestamp_millis().saturating_sub(millis(n)),
            )))
        }
        (x, y) => {
            if let Bson::DateTime(_) = y {
                return Err(fail(format!(
                    "can't $subtract a date from a {}",
                    type_name(x)
                )));
            }
            let (p, q) = (number("$subtract", x)?, number("$subtract", y)?);
            Ok(combine(p, q, i64::checked_sub, |s, t| s - t).bson())
        }
    }
}

fn modulo(x: Num, y: Num) -> Result<Num> {
    match (x.i64(), y.i64()) {
        (Some(p), Some(q)) => {
            if q == 0 {
                return Err(fail("can't $mod by zero"));
            }
            let both = matches!((x, y), (Num::I32(_), Num::I32(_)));
            Ok(Num::narrow(p.wrapping_rem(q), both))
        }
        _ => {
            if y.f64() == 0.0 {
                return Err(fail("can't $mod by zero"));
            }
            Ok(Num::F(x.f64() % y.f64()))
        }
    }
}

fn pow(base: Num, exp: Num) -> Result<Num> {
    if let (Some(b), Some(e)) = (base.i64(), exp.i64()) {
        let both = matches!((base, exp), (Num::I32(_), Num::I32(_)));
        if e < 0 {
            return match b {
                0 => Err(fail("$pow cannot take a base of 0 and a negative exponent")),
                1 => Ok(Num::narrow(1, both)),
                -1 => Ok(Num::narrow(if e % 2 == 0 { 1 } else { -1 }, both)),
                _ => Ok(Num::F(base.f64().powf(exp.f64()))),
            };
        }
        if let Some(r) = u32::try_from(e).ok().and_then(|e| b.checked_pow(e)) {
            return Ok(Num::narrow(r, both));
        }
        return Ok(Num::F(base.f64().powf(exp.f64())));
    }
    if base.f64() == 0.0 && exp.f64() < 0.0 {
        return Err(fail("$pow cannot take a base of 0 and a negative exponent"));
    }
    Ok(Num::F(base.f64().powf(exp.f64())))
}

/// Rounds half to even at `place` decimal places (`$round`), or truncates (`$trunc`).
fn round(name: &str, a: &[Bson]) -> Result<Bson> {
    let place = match a.get(1) {
        None => 0,
        Some(p) if is_nullish(p) => return Ok(Bson::Null),
        Some(p) => match Num::of(p) {
            Some(Num::I32(i)) => i64::from(i),
            Some(Num::I64(i)) => i,
            #[allow(clippy::cast_possible_truncation)] // whole numbers in range, checked
            Some(Num::F(d)) if d.fract() == 0.0 && d.abs() < 1e3 => d as i64,
            _ => {
                return Err(fail(format!(
                    "{name} requires \"place\" argument to be an integral value, found {}",
                    type_name(p)
                )))
            }
        },
    };
    if !(-20..100).contains(&place) {
        return Err(fail(format!(
            "{name} requires \"place\" argument to be greater than -20 and less than 100"
        )));
    }
    let trunc = name == "$trunc";
    unary(name, &a[0], |x| {
        Ok(match x {
            Num::F(d) => Num::F(round_f64(d, place, trunc)),
            int if place >= 0 => int,
            int => {
                let v = int.i64().unwrap_or(0);
                let scale = 10i64.checked_pow(u32::try_from(-place).unwrap_or(u32::MAX));
                let Some(scale) = scale else {
                    return Ok(Num::narrow(0, matches!(int, Num::I32(_))));
                };
                let q = v / scale;
                let r = v % scale;
                let mut q = q;
                if !trunc {
                    let twice = r.unsigned_abs().saturating_mul(2);
                    let half = scale.unsigned_abs();
                    if twice > half || (twice == half && q % 2 != 0) {
                        q += v.signum();
                    }
                }
                let out = q
                    .checked_mul(scale)
                    .ok_or_else(|| fail(format!("{name} overflowed")))?;
                Num::narrow(out, matches!(int, Num::I32(_)))
            }
        })
    })
}

#[allow(clippy::cast_possible_truncation)] // place is within -20..100 (checked)
fn round_f64(d: f64, place: i64, trunc: bool) -> f64 {
    if !d.is_finite() {
        return d;
    }
    let scale = 10f64.powi(place as i32);
    let x = d * scale;
    let r = if trunc {
        x.trunc()
    } else {
        let f = x.floor();
        let diff = x - f;
        if diff > 0.5 || (diff == 0.5 && f % 2.0 != 0.0) {
            f + 1.0
        } else {
            f
        }
    };
    let out = r / scale;
    if out.is_finite() {
        out
    } else {
        d
    }
}

/// `$sum` / `$avg` / `$min` / `$max` as expressions: one argument that is an array works
/// over its elements, several arguments over themselves. Non-numbers are ignored by
/// `$sum` / `$avg`; null and missing by `$min` / `$max`.
fn over_values(name: &str, a: &[Bson]) -> Bson {
    let items: Vec<&Bson> = match a {
        [Bson::Array(items)] => items.iter().collect(),
        other => other.iter().collect(),
    };
    match name {
        "$sum" | "$avg" => {
            let mut acc = Num::I32(0);
            let mut n = 0u32;
            for v in items {
                if let Some(x) = Num::of(v) {
                    acc = add(acc, x);
                    n += 1;
                }
            }
            if name == "$sum" {
                acc.bson()
            } else if n == 0 {
                Bson::Null
            } else {
                Bson::Double(acc.f64() / f64::from(n))
            }
        }
        _ => {
            let want = if name == "$min" {
                std::cmp::Ordering::Less
            } else {
                std::cmp::Ordering::Greater
            };
            items
                .into_iter()
                .filter(|v| !is_nullish(v))
                .fold(None::<&Bson>, |best, v| match best {
                    Some(b) if cmp_values(v, b) != want => Some(b),
                    _ => Some(v),
                })
                .cloned()
                .unwrap_or(Bson::Null)
        }
    }
}
