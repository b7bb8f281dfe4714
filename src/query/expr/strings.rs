//! String operators: `$concat`, `$toLower` / `$toUpper`, `$substrCP` / `$substrBytes`,
//! `$strLenCP` / `$strLenBytes`, `$split`, `$indexOfCP` / `$indexOfBytes`, `$strcasecmp`,
//! `$trim` / `$ltrim` / `$rtrim` and `$regexMatch` (through the size-limited, linear-time
//! [`crate::query::filter::pattern::Pattern`]).

use super::{arg, fail, is_nullish, type_name, MISSING};
use crate::error::Result;
use crate::query::filter::pattern::Pattern;
use bson::Bson;

/// The operators of this family; `None` for other names.
pub(crate) fn call(name: &str, a: &[Bson]) -> Option<Result<Bson>> {
    Some(match name {
        "$concat" => concat(a),
        "$toLower" | "$toUpper" => coerce(name, &a[0]).map(|s| {
            Bson::String(if name == "$toLower" {
                s.to_lowercase()
            } else {
                s.to_uppercase()
            })
        }),
        "$substrCP" => substr(name, a, true),
        "$substrBytes" | "$substr" => substr(name, a, false),
        "$strLenCP" | "$strLenBytes" => match &a[0] {
            Bson::String(s) => Ok(Bson::Int32(count(if name == "$strLenCP" {
                s.chars().count()
            } else {
                s.len()
            }))),
            other => Err(fail(format!(
                "{name} requires a string argument, found: {}",
                type_name(other)
            ))),
        },
        "$split" => split(a),
        "$indexOfCP" | "$indexOfBytes" => index_of(name, a),
        "$strcasecmp" => {
            let (x, y) = match (coerce(name, &a[0]), coerce(name, &a[1])) {
                (Ok(x), Ok(y)) => (x.to_uppercase(), y.to_uppercase()),
                (Err(e), _) | (_, Err(e)) => return Some(Err(e)),
            };
            Ok(Bson::Int32(match x.cmp(&y) {
                std::cmp::Ordering::Less => -1,
                std::cmp::Ordering::Equal => 0,
                std::cmp::Ordering::Greater => 1,
            }))
        }
        _ => return None,
    })
}

#[allow(clippy::cast_possible_truncation)] // string lengths are below the 16 MiB document limit
fn count(n: usize) -> i32 {
    n.min(i32::MAX as usize) as i32
}

fn concat(a: &[Bson]) -> Result<Bson> {
    let mut out = String::new();
    for v in a {
        match v {
            _ if is_nullish(v) => return Ok(Bson::Null),
            Bson::String(s) => out.push_str(s),
            other => {
                return Err(fail(format!(
                    "$concat only supports strings, not {}",
                    type_name(other)
                )))
            }
        }
    }
    Ok(Bson::String(out))
}

/// A value as a string for the case and comparison operators: null and missing are "",
/// numbers, dates and other scalars their text.
fn coerce(op: &str, v: &Bson) -> Result<String> {
    match v {
        _ if is_nullish(v) => Ok(String::new()),
        Bson::String(s) => Ok(s.clone()),
        Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::DateTime(_) => {
            Ok(super::types::to_string_value(v))
        }
        other => Err(fail(format!(
            "can't convert from BSON type {} to String in {op}",
            type_name(other)
        ))),
    }
}

fn int_arg(op: &str, v: &Bson, what: &str) -> Result<i64> {
    match v {
        Bson::Int32(i) => Ok(i64::from(*i)),
        Bson::Int64(i) => Ok(*i),
        #[allow(clippy::cast_possible_truncation)] // integral (checked)
        Bson::Double(d) if d.fract() == 0.0 => Ok(*d as i64),
        other => Err(fail(format!(
            "{op}: {what} must be a numeric integral value, found {}",
            type_name(other)
        ))),
    }
}

fn substr(op: &str, a: &[Bson], code_points: bool) -> Result<Bson> {
    let s = coerce(op, &a[0])?;
    let start = int_arg(op, &a[1], "starting index")?;
    let len = int_arg(op, &a[2], "length")?;
    if code_points {
        if start < 0 {
            return Err(fail("$substrCP: starting index must be non-negative"));
        }
        if len < 0 {
            return Err(fail("$substrCP: length must be a nonnegative integer."));
        }
        let start = usize::try_from(start).unwrap_or(usize::MAX);
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        return Ok(Bson::String(s.chars().skip(start).take(len).collect()));
    }
    // Bytes: a negative start gives ""; a negative length means "to the end".
    let bytes = s.as_bytes();
    let Ok(start) = usize::try_from(start) else {
        return Ok(Bson::String(String::new()));
    };
    let start = start.min(bytes.len());
    let end = match usize::try_from(len) {
        Ok(l) => start.saturating_add(l).min(bytes.len()),
        Err(_) => bytes.len(),
    };
    if !s.is_char_boundary(start) {
        return Err(fail(format!(
            "{op}:  Invalid range, starting index is a UTF-8 continuation byte."
        )));
    }
    if !s.is_char_boundary(end) {
        return Err(fail(format!(
            "{op}:  Invalid range, ending index is in the middle of a UTF-8 character."
        )));
    }
    Ok(Bson::String(s[start..end].to_owned()))
}

fn split(a: &[Bson]) -> Result<Bson> {
    if is_nullish(&a[0]) {
        return Ok(Bson::Null);
    }
    let Bson::String(s) = &a[0] else {
        return Err(fail(format!(
            "$split requires an expression that evaluates to a string as a first argument, found: {}",
            type_name(&a[0])
        )));
    };
    let Bson::String(sep) = &a[1] else {
        return Err(fail(format!(
            "$split requires an expression that evaluates to a string as a second argument, found: {}",
            type_name(&a[1])
        )));
    };
    if sep.is_empty() {
        return Err(fail("$split requires a non-empty separator"));
    }
    Ok(Bson::Array(
        s.split(sep.as_str())
            .map(|p| Bson::String(p.to_owned()))
            .collect(),
    ))
}

fn index_of(op: &str, a: &[Bson]) -> Result<Bson> {
    if is_nullish(&a[0]) {
        return Ok(Bson::Null);
    }
    let Bson::String(s) = &a[0] else {
        return Err(fail(format!(
            "{op} requires a string as the first argument, found: {}",
            type_name(&a[0])
        )));
    };
    let Bson::String(needle) = &a[1] else {
        return Err(fail(format!(
            "{op} requires a string as the second argument, found: {}",
            type_name(&a[1])
        )));
    };
    let bound = |i: usize, what: &str| -> Result<Option<usize>> {
        match a.get(i) {
            None => Ok(None),
            Some(v) => {
                let n = int_arg(op, v, what)?;
                usize::try_from(n)
                    .map(Some)
                    .map_err(|_| fail(format!("{op} requires a nonnegative {what}, found: {n}")))
            }
        }
    };
    let start = bound(2, "start index")?.unwrap_or(0);
    let units: Vec<&str> = if op == "$indexOfCP" {
        s.char_indices()
            .map(|(i, c)| &s[i..i + c.len_utf8()])
            .collect()
    } else {
        // Bytes compared one by one; a needle is matched on byte offsets.
        return Ok(Bson::Int32(byte_index(
            s.as_bytes(),
            needle.as_bytes(),
            start,
            bound(3, "end index")?,
        )));
    };
    let end = bound(3, "end index")?
        .unwrap_or(units.len())
        .min(units.len());
    let needle_units: Vec<&str> = needle
        .char_indices()
        .map(|(i, c)| &needle[i..i + c.len_utf8()])
        .collect();
    let mut i = start;
    while i <= end && i + needle_units.len() <= end {
        if units[i..i + needle_units.len()] == needle_units[..] {
            return Ok(Bson::Int32(count(i)));
        }
        i += 1;
    }
    Ok(Bson::Int32(-1))
}

fn byte_index(s: &[u8], needle: &[u8], start: usize, end: Option<usize>) -> i32 {
    let end = end.unwrap_or(s.len()).min(s.len());
    let mut i = start;
    while i + needle.len() <= end {
        if &s[i..i + needle.len()] == needle {
            return count(i);
        }
        i += 1;
    }
    -1
}

/// `$trim` / `$ltrim` / `$rtrim`: whitespace (or the characters of `chars`) off the ends.
pub(crate) fn trim(name: &str, args: &[(&str, Bson)]) -> Result<Bson> {
    let input = arg(args, "input").unwrap_or(&MISSING);
    if is_nullish(input) {
        return Ok(Bson::Null);
    }
    let Bson::String(s) = input else {
        return Err(fail(format!(
            "{name} requires its input to be a string, got {} instead.",
            type_name(input)
        )));
    };
    let chars: Vec<char> = match arg(args, "chars") {
        None => vec![
            '\0', ' ', '\t', '\n', '\u{0B}', '\u{0C}', '\r', '\u{A0}', '\u{1680}', '\u{2000}',
            '\u{2001}', '\u{2002}', '\u{2003}', '\u{2004}', '\u{2005}', '\u{2006}', '\u{2007}',
            '\u{2008}', '\u{2009}', '\u{200A}',
        ],
        Some(v) if is_nullish(v) => return Ok(Bson::Null),
        Some(Bson::String(c)) => c.chars().collect(),
        Some(other) => {
            return Err(fail(format!(
                "{name} requires 'chars' to be a string, got {} instead.",
                type_name(other)
            )))
        }
    };
    let out = match name {
        "$ltrim" => s.trim_start_matches(chars.as_slice()),
        "$rtrim" => s.trim_end_matches(chars.as_slice()),
        _ => s.trim_matches(chars.as_slice()),
    };
    Ok(Bson::String(out.to_owned()))
}

/// `$regexMatch`.
pub(crate) fn regex_match(args: &[(&str, Bson)]) -> Result<Bson> {
    let input = arg(args, "input").unwrap_or(&MISSING);
    let (source, mut options) = match arg(args, "regex").unwrap_or(&MISSING) {
        v if is_nullish(v) => return Ok(Bson::Boolean(false)),
        Bson::String(s) => (s.clone(), String::new()),
        Bson::RegularExpression(r) => (r.pattern.to_string(), r.options.to_string()),
        other => {
            return Err(fail(format!(
                "$regexMatch needs 'regex' to be of type string or regex, found {}",
                type_name(other)
            )))
        }
    };
    match arg(args, "options") {
        None => {}
        Some(v) if is_nullish(v) => {}
        Some(Bson::String(o)) => {
            if !options.is_empty() && !o.is_empty() {
                return Err(fail(
                    "$regexMatch: found regex option(s) specified in both 'regex' and 'option' fields",
                ));
            }
            options.push_str(o);
        }
        Some(other) => {
            return Err(fail(format!(
                "$regexMatch needs 'options' to be of type string, found {}",
                type_name(other)
            )))
        }
    }
    let s = match input {
        v if is_nullish(v) => return Ok(Bson::Boolean(false)),
        Bson::String(s) => s,
        other => {
            return Err(fail(format!(
                "$regexMatch needs 'input' to be of type string, found {}",
                type_name(other)
            )))
        }
    };
    let p = Pattern::new(&source, &options, "$regexMatch")?;
    Ok(Bson::Boolean(p.is_match(s)))
}
