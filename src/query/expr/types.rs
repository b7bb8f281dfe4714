//! Type operators: `$type`, `$isNumber`, and the conversions `$convert` (with `onError` /
//! `onNull`) and its shorthands `$toString`, `$toInt`, `$toLong`, `$toDouble`, `$toBool`,
//! `$toDate`, `$toObjectId`, with MongoDB's conversion table and messages.

use super::{arg, dates, fail, is_nullish, type_name, MISSING};
use crate::error::{Error, Result};
use bson::Bson;

/// The operators of this family; `None` for other names.
pub(crate) fn call(name: &str, a: &[Bson]) -> Option<Result<Bson>> {
    Some(match name {
        "$type" => Ok(Bson::String(type_name(&a[0]).to_owned())),
        "$isNumber" => Ok(Bson::Boolean(matches!(
            a[0],
            Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_)
        ))),
        "$toString" => to(&a[0], Target::String),
        "$toInt" => to(&a[0], Target::Int),
        "$toLong" => to(&a[0], Target::Long),
        "$toDouble" => to(&a[0], Target::Double),
        "$toBool" => to(&a[0], Target::Bool),
        "$toDate" => to(&a[0], Target::Date),
        "$toObjectId" => to(&a[0], Target::ObjectId),
        _ => return None,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Double,
    String,
    ObjectId,
    Bool,
    Date,
    Int,
    Long,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Double => "double",
            Target::String => "string",
            Target::ObjectId => "objectId",
            Target::Bool => "bool",
            Target::Date => "date",
            Target::Int => "int",
            Target::Long => "long",
        }
    }

    fn of(v: &Bson) -> Result<Self> {
        let by_code = |c: i64| match c {
            1 => Ok(Target::Double),
            2 => Ok(Target::String),
            7 => Ok(Target::ObjectId),
            8 => Ok(Target::Bool),
            9 => Ok(Target::Date),
            16 => Ok(Target::Int),
            18 => Ok(Target::Long),
            19 => Err(Error::unsupported(
                "$convert to decimal is not supported by NexusLite",
            )),
            _ => Err(fail(format!(
                "In $convert, numeric 'to' argument is not a valid type: {c}"
            ))),
        };
        match v {
            Bson::String(s) => match s.as_str() {
                "double" => Ok(Target::Double),
                "string" => Ok(Target::String),
                "objectId" => Ok(Target::ObjectId),
                "bool" => Ok(Target::Bool),
                "date" => Ok(Target::Date),
                "int" => Ok(Target::Int),
                "long" => Ok(Target::Long),
                "decimal" => Err(Error::unsupported(
                    "$convert to decimal is not supported by NexusLite",
                )),
                other => Err(fail(format!("Unknown type name: {other}"))),
            },
            Bson::Int32(i) => by_code(i64::from(*i)),
            Bson::Int64(i) => by_code(*i),
            #[allow(clippy::cast_possible_truncation)] // integral (checked)
            Bson::Double(d) if d.fract() == 0.0 => by_code(*d as i64),
            other => Err(fail(format!(
                "$convert's 'to' argument must be a string or number, but is {}",
                type_name(other)
            ))),
        }
    }
}

/// A double as MongoDB's `$toString` writes it.
fn double_text(d: f64) -> String {
    if d.is_nan() {
        "NaN".to_owned()
    } else if d.is_infinite() {
        if d > 0.0 { "Infinity" } else { "-Infinity" }.to_owned()
    } else if d.fract() == 0.0 && d.abs() < 1e15 {
        format!("{d:.0}")
    } else {
        let s = format!("{d}");
        if d.abs() >= 1e21 || (d != 0.0 && d.abs() < 1e-6) {
            format!("{d:e}").replace('e', "e+").replace("e+-", "e-")
        } else {
            s
        }
    }
}

/// A scalar's text as `$toString` and `$concat`-style coercions give it.
pub(crate) fn to_string_value(v: &Bson) -> String {
    match v {
        Bson::String(s) => s.clone(),
        Bson::Int32(i) => i.to_string(),
        Bson::Int64(i) => i.to_string(),
        Bson::Double(d) => double_text(*d),
        Bson::Boolean(b) => b.to_string(),
        Bson::ObjectId(o) => o.to_hex(),
        Bson::DateTime(d) => {
            dates::format_date(d.timestamp_millis(), "%Y-%m-%dT%H:%M:%S.%LZ").unwrap_or_default()
        }
        other => crate::document::json::bson_to_json_text(other),
    }
}

fn unsupported_conversion(v: &Bson, t: Target) -> Error {
    fail(format!(
        "Unsupported conversion from {} to {} in $convert with no onError value",
        type_name(v),
        t.name()
    ))
}

fn overflow(v: &Bson) -> Error {
    fail(format!(
        "Conversion would overflow target type in $convert with no onError value: {}",
        to_string_value(v)
    ))
}

fn parse_failure(s: &str, why: &str) -> Error {
    fail(format!(
        "Failed to parse number '{s}' in $convert with no onError value: {why}"
    ))
}

fn parse_int(s: &str) -> Result<i64> {
    let t = s.strip_prefix('+').unwrap_or(s);
    if t.is_empty() {
        return Err(parse_failure(s, "No digits"));
    }
    let digits = t.strip_prefix('-').unwrap_or(t);
    if !digits.bytes().all(|b| b.is_ascii_digit()) || digits.is_empty() {
        return Err(parse_failure(s, "Did not consume whole string."));
    }
    t.parse::<i64>()
        .map_err(|_| parse_failure(s, "Out of range"))
}

#[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)] // range-checked first
fn convert_value(v: &Bson, t: Target) -> Result<Bson> {
    if is_nullish(v) {
        return Ok(Bson::Null);
    }
    match t {
        Target::Double => Ok(Bson::Double(match v {
            Bson::Double(d) => *d,
            Bson::Int32(i) => f64::from(*i),
            Bson::Int64(i) => *i as f64,
            Bson::Boolean(b) => f64::from(u8::from(*b)),
            Bson::DateTime(d) => d.timestamp_millis() as f64,
            Bson::String(s) => {
                let t = s.trim();
                if t != s || s.is_empty() {
                    return Err(parse_failure(s, "Did not consume whole string."));
                }
                match s.as_str() {
                    "Infinity" | "inf" => f64::INFINITY,
                    "-Infinity" | "-inf" => f64::NEG_INFINITY,
                    "NaN" | "nan" => f64::NAN,
                    _ if s.bytes().any(|b| b.is_ascii_alphabetic() && b != b'e' && b != b'E') => {
                        return Err(parse_failure(s, "Did not consume whole string."))
                    }
                    _ => s
                        .parse::<f64>()
                        .map_err(|_| parse_failure(s, "Did not consume whole string."))?,
                }
            }
            other => return Err(unsupported_conversion(other, t)),
        })),
        Target::Int | Target::Long => {
            let wide: i64 = match v {
                Bson::Int32(i) => i64::from(*i),
                Bson::Int64(i) => *i,
                Bson::Boolean(b) => i64::from(*b),
                Bson::Double(d) => {
                    if d.is_nan() || d.is_infinite() {
                        return Err(fail(format!(
                            "Attempt to convert {} value to integer type in $convert with no onError value",
                            double_text(*d)
                        )));
                    }
                    let tr = d.trunc();
                    if !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&tr) {
                        return Err(overflow(v));
                    }
                    tr as i64
                }
                Bson::DateTime(d) if t == Target::Long => d.timestamp_millis(),
                Bson::String(s) => parse_int(s)?,
                other => return Err(unsupported_conversion(other, t)),
            };
            if t == Target::Long {
                return Ok(Bson::Int64(wide));
            }
            i32::try_from(wide)
                .map(Bson::Int32)
                .map_err(|_| overflow(v))
        }
        Target::Bool => Ok(Bson::Boolean(match v {
            Bson::Boolean(b) => *b,
            Bson::Int32(i) => *i != 0,
            Bson::Int64(i) => *i != 0,
            Bson::Double(d) => *d != 0.0,
            _ => true,
        })),
        Target::String => match v {
            Bson::String(_)
            | Bson::Int32(_)
            | Bson::Int64(_)
            | Bson::Double(_)
            | Bson::Boolean(_)
            | Bson::ObjectId(_)
            | Bson::DateTime(_) => Ok(Bson::String(to_string_value(v))),
            other => Err(unsupported_conversion(other, t)),
        },
        Target::Date => match v {
            Bson::DateTime(_) => Ok(v.clone()),
            Bson::Int64(i) => Ok(Bson::DateTime(bson::DateTime::from_millis(*i))),
            Bson::Double(d) if d.is_finite() => {
                Ok(Bson::DateTime(bson::DateTime::from_millis(d.trunc() as i64)))
            }
            Bson::Timestamp(ts) => Ok(Bson::DateTime(bson::DateTime::from_millis(
                i64::from(ts.time) * 1000,
            ))),
            Bson::ObjectId(o) => Ok(Bson::DateTime(o.timestamp())),
            Bson::String(s) => dates::parse_iso(s)
                .map(|ms| Bson::DateTime(bson::DateTime::from_millis(ms)))
                .ok_or_else(|| {
                    fail(format!(
                        "Error parsing date string '{s}' in $convert with no onError value"
                    ))
                }),
            other => Err(unsupported_conversion(other, t)),
        },
        Target::ObjectId => match v {
            Bson::ObjectId(_) => Ok(v.clone()),
            Bson::String(s) => bson::oid::ObjectId::parse_str(s)
                .map(Bson::ObjectId)
                .map_err(|_| {
                    fail(format!(
                        "Failed to parse objectId '{s}' in $convert with no onError value: Invalid string length for parsing to OID, expected 24 but found {}",
                        s.len()
                    ))
                }),
            other => Err(unsupported_conversion(other, t)),
        },
    }
}

fn to(v: &Bson, t: Target) -> Result<Bson> {
    if let Bson::Decimal128(_) = v {
        return Err(Error::unsupported(
            "conversions of decimal128 values are not supported by NexusLite",
        ));
    }
    convert_value(v, t)
}

/// `$convert`: `onNull` for a null or missing input, `onError` for a failed conversion.
pub(crate) fn convert(args: &[(&str, Bson)]) -> Result<Bson> {
    let input = arg(args, "input").unwrap_or(&MISSING);
    let to_arg = arg(args, "to").unwrap_or(&MISSING);
    if is_nullish(to_arg) {
        return Ok(Bson::Null);
    }
    let target = Target::of(to_arg)?;
    if is_nullish(input) {
        return Ok(arg(args, "onNull").cloned().unwrap_or(Bson::Null));
    }
    match to(input, target) {
        Err(Error::InvalidArgument(_)) if arg(args, "onError").is_some() => {
            Ok(arg(args, "onError").cloned().unwrap_or(Bson::Null))
        }
        other => other,
    }
}
