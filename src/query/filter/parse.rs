//! Parsing of query documents into [`Filter`] / [`Cond`] trees. Every operator and operand
//! is checked here, before any document is read; errors are [`Error::Parse`] naming the
//! operator and the path, in MongoDB's words where MongoDB has them
//! ("unknown operator: $foo", "$in needs an array", "malformed mod, ...").
//!
//! The limits come first and are [`Error::InvalidArgument`]: the query document's nesting
//! ([`MAX_QUERY_NESTING`], checked iteratively before parsing), each path's length
//! ([`check_limits`]), and the nesting of `$and`/`$or`/`$nor`/`$not`/`$elemMatch`
//! ([`MAX_FILTER_DEPTH`], counted as the parser descends). Parsing, evaluation and every
//! other walk of a [`Filter`] recurse once per operator level, so these bound their stack.

use super::pattern::Pattern;
use super::{truthy, Cond, Filter, TypeSel};
use crate::document::{check_nesting, MAX_QUERY_NESTING};
use crate::error::{Error, Result};
use crate::query::path::check_limits;
use bson::{Bson, Document};
use std::cmp::Ordering;

/// Query-level operators of the full language that this build does not have.
const UNSUPPORTED_TOP: &[&str] = &["$where", "$expr", "$text", "$jsonSchema"];
/// Field-level operators of the full language that this build does not have.
const UNSUPPORTED_FIELD: &[&str] = &[
    "$bitsAllSet",
    "$bitsAnySet",
    "$bitsAllClear",
    "$bitsAnyClear",
    "$geoWithin",
    "$geoIntersects",
    "$near",
    "$nearSphere",
];

/// The deepest nesting of the operators that hold other conditions (`$and`, `$or`, `$nor`,
/// `$not`, `$elemMatch`), MongoDB's limit (its parser's `kMaximumTreeDepth`). Parsing and
/// evaluation recurse once per level, so this bounds their stack.
pub const MAX_FILTER_DEPTH: usize = 100;

/// One level deeper into the filter tree (entering `op`), or the error when that is beyond
/// [`MAX_FILTER_DEPTH`]: checked before descending.
fn deeper(depth: usize, op: &str) -> Result<usize> {
    if depth >= MAX_FILTER_DEPTH {
        return Err(Error::invalid(format!(
            "filter: {op} is nested too deeply; $and, $or, $nor, $not and $elemMatch may nest \
             at most {MAX_FILTER_DEPTH} levels"
        )));
    }
    Ok(depth + 1)
}

impl Filter {
    /// Parses a query document. The document's nesting is checked first (iteratively,
    /// against [`MAX_QUERY_NESTING`]), then each operator level against
    /// [`MAX_FILTER_DEPTH`] as the parser descends.
    pub(crate) fn parse(query: &Document) -> Result<Self> {
        check_nesting(query, MAX_QUERY_NESTING, "filter")?;
        Self::parse_at(query, 0)
    }

    /// Parses a query document found `depth` operator levels down in a checked one.
    fn parse_at(query: &Document, depth: usize) -> Result<Self> {
        let mut parts = Vec::with_capacity(query.len());
        for (key, value) in query {
            if let Some(op) = key.strip_prefix('$') {
                match op {
                    "and" | "or" | "nor" => {
                        let subs = parse_clauses(key, value, deeper(depth, key)?)?;
                        parts.push(match op {
                            "and" => Filter::All(subs),
                            "or" => Filter::Any(subs),
                            _ => Filter::NoneOf(subs),
                        });
                    }
                    "comment" => {}
                    _ if UNSUPPORTED_TOP.contains(&key.as_str()) => {
                        return Err(Error::unsupported(format!(
                            "query operator {key} is not supported by this version"
                        )))
                    }
                    _ => return Err(Error::parse(format!("unknown top level operator: {key}"))),
                }
            } else {
                check_path(key)?;
                parts.push(Filter::Field {
                    path: key.clone(),
                    parts: super::super::path::split(key),
                    conds: parse_value(key, value, depth)?,
                });
            }
        }
        Ok(if parts.len() == 1 {
            parts.pop().unwrap_or_else(Filter::match_all)
        } else {
            Filter::All(parts)
        })
    }
}

fn check_path(path: &str) -> Result<()> {
    check_limits("filter", path)?;
    if path.is_empty() || path.split('.').any(str::is_empty) {
        return Err(Error::parse(format!(
            "invalid field path '{path}' in filter"
        )));
    }
    Ok(())
}

/// The clauses of `$and` / `$or` / `$nor` (named `key`), each at operator level `depth`.
fn parse_clauses(key: &str, value: &Bson, depth: usize) -> Result<Vec<Filter>> {
    let Bson::Array(items) = value else {
        return Err(Error::parse(format!("{key} must be an array")));
    };
    if items.is_empty() {
        return Err(Error::parse(format!("{key} must be a nonempty array")));
    }
    items
        .iter()
        .map(|item| match item {
            Bson::Document(d) => Filter::parse_at(d, depth),
            _ => Err(Error::parse(format!(
                "{key} argument's entries must be objects"
            ))),
        })
        .collect()
}

/// Whether a document value is an operator document (`{$gt: 1}`) rather than a literal.
pub(crate) fn is_operator_doc(d: &Document) -> bool {
    d.keys().next().is_some_and(|k| k.starts_with('$'))
}

/// The conditions of one `path: value` pair of a query document at operator level `depth`.
fn parse_value(path: &str, value: &Bson, depth: usize) -> Result<Vec<Cond>> {
    match value {
        Bson::Document(d) if is_operator_doc(d) => parse_operators_at(path, d, depth),
        Bson::RegularExpression(re) => Ok(vec![Cond::Regex(Pattern::new(
            re.pattern.as_str(),
            re.options.as_str(),
            path,
        )?)]),
        other => Ok(vec![Cond::Eq(other.clone())]),
    }
}

/// The conditions of an operator document such as `{$gte: 1, $lt: 5}` (`$pull`'s
/// conditions: inside an update document whose nesting is checked).
pub(crate) fn parse_operators(path: &str, ops: &Document) -> Result<Vec<Cond>> {
    parse_operators_at(path, ops, 0)
}

/// [`parse_operators`] at operator level `depth`.
fn parse_operators_at(path: &str, ops: &Document, depth: usize) -> Result<Vec<Cond>> {
    let mut conds = Vec::with_capacity(ops.len());
    let mut regex: Option<(String, String)> = None;
    let mut options: Option<String> = None;
    for (op, arg) in ops {
        let cond = match op.as_str() {
            "$eq" => Cond::Eq(arg.clone()),
            "$ne" => Cond::Ne(arg.clone()),
            "$gt" => Cond::Cmp(Ordering::Greater, false, arg.clone()),
            "$gte" => Cond::Cmp(Ordering::Greater, true, arg.clone()),
            "$lt" => Cond::Cmp(Ordering::Less, false, arg.clone()),
            "$lte" => Cond::Cmp(Ordering::Less, true, arg.clone()),
            "$in" | "$nin" => {
                let (values, patterns) = parse_in_list(op, path, arg)?;
                if op == "$in" {
                    Cond::In(values, patterns)
                } else {
                    Cond::Nin(values, patterns)
                }
            }
            "$exists" => Cond::Exists(truthy(arg)),
            "$not" => Cond::Not(parse_not(path, arg, deeper(depth, "$not")?)?),
            "$type" => Cond::Type(parse_type(path, arg)?),
            "$regex" => {
                regex = Some(match arg {
                    Bson::String(s) => (s.clone(), String::new()),
                    Bson::RegularExpression(re) => (
                        re.pattern.as_str().to_owned(),
                        re.options.as_str().to_owned(),
                    ),
                    _ => {
                        return Err(Error::parse(format!(
                            "$regex has to be a string (path '{path}')"
                        )))
                    }
                });
                continue;
            }
            "$options" => {
                let Bson::String(s) = arg else {
                    return Err(Error::parse(format!(
                        "$options has to be a string (path '{path}')"
                    )));
                };
                options = Some(s.clone());
                continue;
            }
            "$mod" => parse_mod(path, arg)?,
            "$all" => parse_all(path, arg, depth)?,
            "$elemMatch" => parse_elem_match(path, arg, deeper(depth, "$elemMatch")?)?,
            "$size" => Cond::Size(parse_size(path, arg)?),
            "$comment" => continue,
            other if UNSUPPORTED_FIELD.contains(&other) => {
                return Err(Error::unsupported(format!(
                    "query operator {other} (path '{path}') is not supported by this version"
                )))
            }
            other => {
                return Err(Error::parse(format!(
                    "unknown operator: {other} (path '{path}')"
                )))
            }
        };
        conds.push(cond);
    }
    match (regex, options) {
        (None, Some(_)) => {
            return Err(Error::parse(format!(
                "$options needs a $regex (path '{path}')"
            )))
        }
        (Some((src, inline)), opts) => {
            let opts = match opts {
                Some(o) if !inline.is_empty() && !o.is_empty() => {
                    return Err(Error::parse(format!(
                        "options set in both $regex and $options (path '{path}')"
                    )))
                }
                Some(o) if !o.is_empty() => o,
                _ => inline,
            };
            conds.push(Cond::Regex(Pattern::new(&src, &opts, path)?));
        }
        (None, None) => {}
    }
    Ok(conds)
}

fn parse_in_list(op: &str, path: &str, arg: &Bson) -> Result<(Vec<Bson>, Vec<Pattern>)> {
    let Bson::Array(items) = arg else {
        return Err(Error::parse(format!("{op} needs an array (path '{path}')")));
    };
    let mut values = Vec::with_capacity(items.len());
    let mut patterns = Vec::new();
    for item in items {
        match item {
            Bson::RegularExpression(re) => patterns.push(Pattern::new(
                re.pattern.as_str(),
                re.options.as_str(),
                path,
            )?),
            Bson::Document(d) if is_operator_doc(d) => {
                return Err(Error::parse(format!(
                    "cannot nest $ under {op} (path '{path}')"
                )))
            }
            other => values.push(other.clone()),
        }
    }
    Ok((values, patterns))
}

/// `$not`'s operand, whose conditions are at operator level `depth`.
fn parse_not(path: &str, arg: &Bson, depth: usize) -> Result<Vec<Cond>> {
    match arg {
        Bson::Document(d) if d.is_empty() => Err(Error::parse(format!(
            "$not cannot be empty (path '{path}')"
        ))),
        Bson::Document(d) if is_operator_doc(d) => parse_operators_at(path, d, depth),
        Bson::RegularExpression(re) => Ok(vec![Cond::Regex(Pattern::new(
            re.pattern.as_str(),
            re.options.as_str(),
            path,
        )?)]),
        _ => Err(Error::parse(format!(
            "$not needs a regex or a document (path '{path}')"
        ))),
    }
}

/// `$type`'s type names and numbers.
const TYPE_NAMES: &[(&str, i32)] = &[
    ("double", 1),
    ("string", 2),
    ("object", 3),
    ("array", 4),
    ("binData", 5),
    ("undefined", 6),
    ("objectId", 7),
    ("bool", 8),
    ("date", 9),
    ("null", 10),
    ("regex", 11),
    ("dbPointer", 12),
    ("javascript", 13),
    ("symbol", 14),
    ("javascriptWithScope", 15),
    ("int", 16),
    ("timestamp", 17),
    ("long", 18),
    ("decimal", 19),
    ("minKey", -1),
    ("maxKey", 127),
];

fn parse_type(path: &str, arg: &Bson) -> Result<Vec<TypeSel>> {
    let one = |v: &Bson| -> Result<TypeSel> {
        match v {
            Bson::String(s) if s == "number" => Ok(TypeSel::Number),
            Bson::String(s) => TYPE_NAMES
                .iter()
                .find(|(n, _)| n == s)
                .map(|(_, c)| TypeSel::Code(*c))
                .ok_or_else(|| {
                    Error::parse(format!("$type: unknown type name alias: {s} (path '{path}')"))
                }),
            Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) => {
                let code = whole_number(v).filter(|c| TYPE_NAMES.iter().any(|(_, t)| i64::from(*t) == *c));
                code.and_then(|c| i32::try_from(c).ok()).map(TypeSel::Code).ok_or_else(|| {
                    Error::parse(format!(
                        "$type: invalid numerical type code: {} (path '{path}')",
                        crate::document::json::bson_to_json_text(v)
                    ))
                })
            }
            _ => Err(Error::parse(format!(
                "$type: argument must be a type name, a type number or an array of them (path '{path}')"
            ))),
        }
    };
    match arg {
        Bson::Array(items) if items.is_empty() => Err(Error::parse(format!(
            "$type must match at least one type (path '{path}')"
        ))),
        Bson::Array(items) => items.iter().map(one).collect(),
        other => Ok(vec![one(other)?]),
    }
}

/// A number with no fractional part, as `i64`.
// The double is whole and guarded inside i64's range before the cast.
#[allow(clippy::cast_possible_truncation)]
fn whole_number(v: &Bson) -> Option<i64> {
    match v {
        Bson::Int32(i) => Some(i64::from(*i)),
        Bson::Int64(i) => Some(*i),
        Bson::Double(d) if d.fract() == 0.0 && d.abs() < 9.2e18 => Some(*d as i64),
        _ => None,
    }
}

/// A number truncated toward zero, as `$mod` reads its operands.
// The doubles are truncated and guarded inside i64's range before the cast.
#[allow(clippy::cast_possible_truncation)]
fn truncated(v: &Bson) -> Option<i64> {
    match v {
        Bson::Int32(i) => Some(i64::from(*i)),
        Bson::Int64(i) => Some(*i),
        Bson::Double(d) if d.is_finite() && d.abs() < 9.2e18 => Some(d.trunc() as i64),
        Bson::Decimal128(d) => d
            .to_string()
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite() && f.abs() < 9.2e18)
            .map(|f| f.trunc() as i64),
        _ => None,
    }
}

fn parse_mod(path: &str, arg: &Bson) -> Result<Cond> {
    let err = |why: &str| Error::parse(format!("malformed mod, {why} (path '{path}')"));
    let Bson::Array(items) = arg else {
        return Err(err("needs to be an array"));
    };
    match items.len() {
        0 | 1 => return Err(err("not enough elements")),
        2 => {}
        _ => return Err(err("too many elements")),
    }
    let divisor = truncated(&items[0]).ok_or_else(|| err("divisor not a number"))?;
    let remainder = truncated(&items[1]).ok_or_else(|| err("remainder not a number"))?;
    if divisor == 0 {
        return Err(Error::parse(format!(
            "$mod: divisor cannot be 0 (path '{path}')"
        )));
    }
    Ok(Cond::Mod(divisor, remainder))
}

/// `$all` at operator level `depth` (its `$elemMatch` items are one level down).
fn parse_all(path: &str, arg: &Bson, depth: usize) -> Result<Cond> {
    let Bson::Array(items) = arg else {
        return Err(Error::parse(format!("$all needs an array (path '{path}')")));
    };
    let mut conds = Vec::with_capacity(items.len());
    for item in items {
        conds.push(match item {
            Bson::Document(d) if d.keys().next().map(String::as_str) == Some("$elemMatch") => {
                if d.len() != 1 {
                    return Err(Error::parse(format!(
                        "$all: an $elemMatch item must be alone in its object (path '{path}')"
                    )));
                }
                parse_elem_match(
                    path,
                    d.get("$elemMatch").unwrap_or(&Bson::Null),
                    deeper(depth, "$elemMatch")?,
                )?
            }
            Bson::Document(d) if is_operator_doc(d) => {
                return Err(Error::parse(format!(
                    "$all: no $ expressions allowed except $elemMatch (path '{path}')"
                )))
            }
            Bson::RegularExpression(re) => Cond::Regex(Pattern::new(
                re.pattern.as_str(),
                re.options.as_str(),
                path,
            )?),
            other => Cond::Eq(other.clone()),
        });
    }
    Ok(Cond::All(conds))
}

/// `$elemMatch`'s operand, whose conditions are at operator level `depth`.
fn parse_elem_match(path: &str, arg: &Bson, depth: usize) -> Result<Cond> {
    let Bson::Document(d) = arg else {
        return Err(Error::parse(format!(
            "$elemMatch needs an Object (path '{path}')"
        )));
    };
    let first = d.keys().next().map(String::as_str).unwrap_or("");
    let query_form = !first.starts_with('$') || matches!(first, "$and" | "$or" | "$nor");
    if query_form {
        Ok(Cond::ElemMatchDoc(Box::new(Filter::parse_at(d, depth)?)))
    } else {
        Ok(Cond::ElemMatchValue(parse_operators_at(path, d, depth)?))
    }
}

fn parse_size(path: &str, arg: &Bson) -> Result<u64> {
    let n = match arg {
        Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) => whole_number(arg)
            .ok_or_else(|| Error::parse(format!("$size must be a whole number (path '{path}')")))?,
        _ => {
            return Err(Error::parse(format!(
                "$size needs a number (path '{path}')"
            )))
        }
    };
    u64::try_from(n).map_err(|_| Error::parse(format!("$size may not be negative (path '{path}')")))
}
