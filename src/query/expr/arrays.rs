//! Array and object operators: `$size`, `$in`, `$arrayElemAt`, `$first`, `$last`, `$slice`,
//! `$concatArrays`, `$isArray`, `$reverseArray`, `$range`, `$indexOfArray`,
//! `$mergeObjects`, `$objectToArray`, `$arrayToObject`, and the iterating `$map`,
//! `$filter`, `$reduce`.

use super::{
    cmp_values, fail, is_missing, is_nullish, or_null, truthy, type_name, Env, Expr, MISSING,
};
use crate::error::Result;
use bson::{Bson, Document};

/// The most elements `$range` builds (MongoDB bounds it by memory; a hostile range must
/// not allocate gigabytes).
const MAX_RANGE: usize = 1 << 24;

/// The operators of this family; `None` for other names.
pub(crate) fn call(name: &str, a: &[Bson]) -> Option<Result<Bson>> {
    Some(match name {
        "$size" => match &a[0] {
            Bson::Array(items) => Ok(Bson::Int32(i32::try_from(items.len()).unwrap_or(i32::MAX))),
            other => Err(fail(format!(
                "The argument to $size must be an array. Type of argument: {}",
                type_name(other)
            ))),
        },
        "$in" => match &a[1] {
            Bson::Array(items) => Ok(Bson::Boolean(
                items.iter().any(|x| cmp_values(x, &a[0]).is_eq()),
            )),
            other => Err(fail(format!(
                "$in requires an array as a second argument, found: {}",
                type_name(other)
            ))),
        },
        "$arrayElemAt" => elem_at(a),
        "$first" | "$last" => match &a[0] {
            v if is_nullish(v) => Ok(Bson::Null),
            Bson::Array(items) => Ok(if name == "$first" {
                items.first()
            } else {
                items.last()
            }
            .cloned()
            .unwrap_or(MISSING)),
            other => Err(fail(format!(
                "{name}'s argument must be an array, but is {}",
                type_name(other)
            ))),
        },
        "$slice" => slice(a),
        "$concatArrays" => {
            let mut out = Vec::new();
            for v in a {
                match v {
                    _ if is_nullish(v) => return Some(Ok(Bson::Null)),
                    Bson::Array(items) => out.extend(items.iter().cloned()),
                    other => {
                        return Some(Err(fail(format!(
                            "$concatArrays only supports arrays, not {}",
                            type_name(other)
                        ))))
                    }
                }
            }
            Ok(Bson::Array(out))
        }
        "$isArray" => Ok(Bson::Boolean(matches!(a[0], Bson::Array(_)))),
        "$reverseArray" => match &a[0] {
            v if is_nullish(v) => Ok(Bson::Null),
            Bson::Array(items) => Ok(Bson::Array(items.iter().rev().cloned().collect())),
            other => Err(fail(format!(
                "The argument to $reverseArray must be an array, but was of type: {}",
                type_name(other)
            ))),
        },
        "$range" => range(a),
        "$indexOfArray" => index_of_array(a),
        "$mergeObjects" => merge_objects(a),
        "$objectToArray" => match &a[0] {
            v if is_nullish(v) => Ok(Bson::Null),
            Bson::Document(d) => Ok(Bson::Array(
                d.iter()
                    .map(|(k, v)| {
                        let mut e = Document::new();
                        e.insert("k", k.clone());
                        e.insert("v", v.clone());
                        Bson::Document(e)
                    })
                    .collect(),
            )),
            other => Err(fail(format!(
                "$objectToArray requires a document input, found: {}",
                type_name(other)
            ))),
        },
        "$arrayToObject" => array_to_object(&a[0]),
        _ => return None,
    })
}

fn int_of(op: &str, v: &Bson, what: &str) -> Result<i64> {
    match v {
        Bson::Int32(i) => Ok(i64::from(*i)),
        Bson::Int64(i) => Ok(*i),
        #[allow(clippy::cast_possible_truncation)] // integral (checked)
        Bson::Double(d) if d.fract() == 0.0 && d.abs() < 9.2e18 => Ok(*d as i64),
        other => Err(fail(format!(
            "{op}'s {what} must be a numeric value representable as a 32-bit integral value, found {}",
            type_name(other)
        ))),
    }
}

/// An index from the front (non-negative) or the back (negative) into `len` elements.
fn position(i: i64, len: usize) -> Option<usize> {
    if i >= 0 {
        usize::try_from(i).ok().filter(|&p| p < len)
    } else {
        len.checked_sub(usize::try_from(i.unsigned_abs()).ok()?)
    }
}

fn elem_at(a: &[Bson]) -> Result<Bson> {
    if is_nullish(&a[0]) || is_nullish(&a[1]) {
        return Ok(Bson::Null);
    }
    let Bson::Array(items) = &a[0] else {
        return Err(fail(format!(
            "$arrayElemAt's first argument must be an array, but is {}",
            type_name(&a[0])
        )));
    };
    let i = int_of("$arrayElemAt", &a[1], "second argument")?;
    Ok(position(i, items.len()).map_or(MISSING, |p| items[p].clone()))
}

fn slice(a: &[Bson]) -> Result<Bson> {
    if a.iter().any(is_nullish) {
        return Ok(Bson::Null);
    }
    let Bson::Array(items) = &a[0] else {
        return Err(fail(format!(
            "First argument to $slice must be an array, but is of type: {}",
            type_name(&a[0])
        )));
    };
    let len = items.len();
    let (start, n) = if a.len() == 2 {
        let n = int_of("$slice", &a[1], "second argument")?;
        if n >= 0 {
            (0, usize::try_from(n).unwrap_or(usize::MAX))
        } else {
            let k = usize::try_from(n.unsigned_abs())
                .unwrap_or(usize::MAX)
                .min(len);
            (len - k, k)
        }
    } else {
        let p = int_of("$slice", &a[1], "second argument")?;
        let n = int_of("$slice", &a[2], "third argument")?;
        if n <= 0 {
            return Err(fail(format!(
                "Third argument to $slice must be positive: {n}"
            )));
        }
        let start = if p >= 0 {
            usize::try_from(p).unwrap_or(usize::MAX).min(len)
        } else {
            len.saturating_sub(usize::try_from(p.unsigned_abs()).unwrap_or(usize::MAX))
        };
        (start, usize::try_from(n).unwrap_or(usize::MAX))
    };
    Ok(Bson::Array(
        items.iter().skip(start).take(n).cloned().collect(),
    ))
}

fn range(a: &[Bson]) -> Result<Bson> {
    let start = int_of("$range", &a[0], "starting value")?;
    let end = int_of("$range", &a[1], "ending value")?;
    let step = match a.get(2) {
        Some(s) => int_of("$range", s, "step value")?,
        None => 1,
    };
    if step == 0 {
        return Err(fail("$range requires a non-zero step value"));
    }
    let mut out = Vec::new();
    let mut i = start;
    while (step > 0 && i < end) || (step < 0 && i > end) {
        if out.len() >= MAX_RANGE {
            return Err(fail(format!(
                "$range would produce more than {MAX_RANGE} elements"
            )));
        }
        out.push(match i32::try_from(i) {
            Ok(v) => Bson::Int32(v),
            Err(_) => Bson::Int64(i),
        });
        match i.checked_add(step) {
            Some(n) => i = n,
            None => break,
        }
    }
    Ok(Bson::Array(out))
}

fn index_of_array(a: &[Bson]) -> Result<Bson> {
    if is_nullish(&a[0]) {
        return Ok(Bson::Null);
    }
    let Bson::Array(items) = &a[0] else {
        return Err(fail(format!(
            "$indexOfArray requires an array as a first argument, found: {}",
            type_name(&a[0])
        )));
    };
    let bound = |i: usize| -> Result<Option<usize>> {
        match a.get(i) {
            None => Ok(None),
            Some(v) => {
                let n = int_of("$indexOfArray", v, "index")?;
                usize::try_from(n).map(Some).map_err(|_| {
                    fail(format!(
                        "$indexOfArray requires a nonnegative index, found: {n}"
                    ))
                })
            }
        }
    };
    let start = bound(2)?.unwrap_or(0);
    let end = bound(3)?.unwrap_or(items.len()).min(items.len());
    for (i, x) in items.iter().enumerate().take(end).skip(start) {
        if cmp_values(x, &a[1]).is_eq() {
            return Ok(Bson::Int32(i32::try_from(i).unwrap_or(i32::MAX)));
        }
    }
    Ok(Bson::Int32(-1))
}

fn merge_objects(a: &[Bson]) -> Result<Bson> {
    let inputs: Vec<&Bson> = match a {
        [Bson::Array(items)] => items.iter().collect(),
        other => other.iter().collect(),
    };
    let mut out = Document::new();
    for (i, v) in inputs.into_iter().enumerate() {
        match v {
            _ if is_nullish(v) => {}
            Bson::Document(d) => {
                for (k, x) in d {
                    out.insert(k.clone(), x.clone());
                }
            }
            other => {
                return Err(fail(format!(
                    "$mergeObjects requires object inputs, but input {} is of type {}",
                    i + 1,
                    type_name(other)
                )))
            }
        }
    }
    Ok(Bson::Document(out))
}

fn array_to_object(v: &Bson) -> Result<Bson> {
    let items = match v {
        _ if is_nullish(v) => return Ok(Bson::Null),
        Bson::Array(items) => items,
        other => {
            return Err(fail(format!(
                "$arrayToObject requires an array input, found: {}",
                type_name(other)
            )))
        }
    };
    let mut out = Document::new();
    for item in items {
        let (k, v) = match item {
            Bson::Array(pair) if pair.len() == 2 => (&pair[0], &pair[1]),
            Bson::Array(pair) => {
                return Err(fail(format!(
                    "$arrayToObject requires an array of size 2 arrays,found array of size: {}",
                    pair.len()
                )))
            }
            Bson::Document(d) if d.len() == 2 && d.contains_key("k") && d.contains_key("v") => {
                (&d["k"], &d["v"])
            }
            Bson::Document(_) => {
                return Err(fail(
                    "$arrayToObject requires an object with keys 'k' and 'v'.",
                ))
            }
            other => {
                return Err(fail(format!(
                    "$arrayToObject requires an array of key-value pairs, where the key must be of type string. Found {}",
                    type_name(other)
                )))
            }
        };
        let Bson::String(k) = k else {
            return Err(fail(format!(
                "$arrayToObject requires an array of key-value pairs, where the key must be of type string. Found key type: {}",
                type_name(k)
            )));
        };
        if k.contains('\0') {
            return Err(fail("$arrayToObject: a key must not contain a null byte"));
        }
        out.insert(k.clone(), v.clone());
    }
    Ok(Bson::Document(out))
}

/// `$map`, `$filter` and `$reduce`.
pub(crate) fn iterate(e: &Expr, env: &Env) -> Result<Bson> {
    let (input, op) = match e {
        Expr::Map { input, .. } => (input, "$map"),
        Expr::Filter { input, .. } => (input, "$filter"),
        Expr::Reduce { input, .. } => (input, "$reduce"),
        _ => unreachable!("iterate is called for $map, $filter and $reduce"),
    };
    let items = match input.eval(env)? {
        v if is_nullish(&v) => return Ok(Bson::Null),
        Bson::Array(items) => items,
        other => {
            return Err(fail(format!(
                "input to {op} must be an array not {}",
                type_name(&other)
            )))
        }
    };
    match e {
        Expr::Map { name, body, .. } => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                let frame = [(name.clone(), item)];
                out.push(or_null(body.eval(&env.with(&frame))?));
            }
            Ok(Bson::Array(out))
        }
        Expr::Filter {
            name, cond, limit, ..
        } => {
            let limit = match limit {
                None => usize::MAX,
                Some(l) => match l.eval(env)? {
                    v if is_nullish(&v) => usize::MAX,
                    v => {
                        let n = int_of("$filter", &v, "limit")?;
                        usize::try_from(n).ok().filter(|&n| n > 0).ok_or_else(|| {
                            fail(format!("$filter: limit must be greater than 0, got: {n}"))
                        })?
                    }
                },
            };
            let mut out = Vec::new();
            for item in items {
                if out.len() >= limit {
                    break;
                }
                let frame = [(name.clone(), item)];
                if truthy(&cond.eval(&env.with(&frame))?) {
                    let [(_, item)] = frame;
                    out.push(item);
                }
            }
            Ok(Bson::Array(out))
        }
        Expr::Reduce { initial, body, .. } => {
            let mut acc = initial.eval(env)?;
            for item in items {
                let frame = [("value".to_owned(), acc), ("this".to_owned(), item)];
                acc = body.eval(&env.with(&frame))?;
                if is_missing(&acc) {
                    acc = MISSING;
                }
            }
            Ok(acc)
        }
        _ => unreachable!("checked above"),
    }
}
