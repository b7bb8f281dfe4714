//! Filters: [`Filter::parse`] turns a MongoDB query document into a tree, and
//! [`Filter::matches`] evaluates it against a document with MongoDB's semantics: implicit
//! array traversal, element matching, `null` matching missing fields, type bracketing for
//! range operators, numbers equal across types.

use super::compare::{compare, equal, type_rank};
use super::path::lookup;
use crate::error::{Error, Result};
use bson::{Bson, Document};
use std::cmp::Ordering;

/// Operators that belong to the full query language and are not in this build yet.
const LATER_FIELD_OPS: &[&str] = &[
    "$type",
    "$regex",
    "$options",
    "$mod",
    "$all",
    "$elemMatch",
    "$size",
    "$bitsAllSet",
    "$bitsAnySet",
    "$bitsAllClear",
    "$bitsAnyClear",
    "$geoWithin",
    "$geoIntersects",
    "$near",
    "$nearSphere",
];
const LATER_TOP_OPS: &[&str] = &["$where", "$expr", "$text", "$jsonSchema"];

/// A comparison applied to the values at one path.
#[derive(Debug, Clone)]
pub(crate) enum Cond {
    Eq(Bson),
    Ne(Bson),
    Cmp(Ordering, bool, Bson),
    In(Vec<Bson>),
    Nin(Vec<Bson>),
    Exists(bool),
    Not(Vec<Cond>),
}

/// A parsed filter.
#[derive(Debug, Clone)]
pub(crate) enum Filter {
    All(Vec<Filter>),
    Any(Vec<Filter>),
    NoneOf(Vec<Filter>),
    Field { path: String, conds: Vec<Cond> },
}

impl Filter {
    /// A filter that matches every document.
    pub(crate) fn match_all() -> Self {
        Filter::All(Vec::new())
    }

    /// Parses a query document.
    pub(crate) fn parse(query: &Document) -> Result<Self> {
        let mut parts = Vec::with_capacity(query.len());
        for (key, value) in query {
            if let Some(op) = key.strip_prefix('$') {
                match op {
                    "and" | "or" | "nor" => {
                        let subs = parse_clauses(key, value)?;
                        parts.push(match op {
                            "and" => Filter::All(subs),
                            "or" => Filter::Any(subs),
                            _ => Filter::NoneOf(subs),
                        });
                    }
                    "comment" => {}
                    _ if LATER_TOP_OPS.contains(&key.as_str()) => {
                        return Err(Error::unsupported(format!(
                            "query operator {key} is not supported by this version"
                        )))
                    }
                    _ => return Err(Error::parse(format!("unknown top level operator: {key}"))),
                }
            } else {
                if key.is_empty() || key.split('.').any(str::is_empty) {
                    return Err(Error::parse(format!(
                        "invalid field path '{key}' in filter"
                    )));
                }
                parts.push(Filter::Field {
                    path: key.clone(),
                    conds: parse_value(key, value)?,
                });
            }
        }
        Ok(if parts.len() == 1 {
            parts.pop().unwrap_or_else(Filter::match_all)
        } else {
            Filter::All(parts)
        })
    }

    /// Whether `doc` satisfies the filter.
    pub(crate) fn matches(&self, doc: &Document) -> bool {
        match self {
            Filter::All(fs) => fs.iter().all(|f| f.matches(doc)),
            Filter::Any(fs) => fs.iter().any(|f| f.matches(doc)),
            Filter::NoneOf(fs) => !fs.iter().any(|f| f.matches(doc)),
            Filter::Field { path, conds } => {
                let mut values = Vec::new();
                lookup(doc, path, &mut values);
                conds.iter().all(|c| c.test(&values))
            }
        }
    }

    /// The equality parts of the filter (`{a: 1}`, `{a: {$eq: 1}}`, inside `$and`), used to
    /// seed an upserted document.
    pub(crate) fn equalities(&self, out: &mut Vec<(String, Bson)>) {
        match self {
            Filter::All(fs) => fs.iter().for_each(|f| f.equalities(out)),
            Filter::Field { path, conds } => {
                for c in conds {
                    if let Cond::Eq(v) = c {
                        out.push((path.clone(), v.clone()));
                    }
                }
            }
            Filter::Any(fs) if fs.len() == 1 => fs[0].equalities(out),
            _ => {}
        }
    }
}

fn parse_clauses(key: &str, value: &Bson) -> Result<Vec<Filter>> {
    let Bson::Array(items) = value else {
        return Err(Error::parse(format!("{key} must be an array")));
    };
    if items.is_empty() {
        return Err(Error::parse(format!(
            "{key} argument must be a non-empty array"
        )));
    }
    items
        .iter()
        .map(|item| match item {
            Bson::Document(d) => Filter::parse(d),
            _ => Err(Error::parse(format!(
                "{key} argument's entries must be objects"
            ))),
        })
        .collect()
}

/// Whether a document value is an operator document (`{$gt: 1}`) rather than a literal.
fn is_operator_doc(d: &Document) -> bool {
    d.keys().next().is_some_and(|k| k.starts_with('$'))
}

fn parse_value(path: &str, value: &Bson) -> Result<Vec<Cond>> {
    match value {
        Bson::Document(d) if is_operator_doc(d) => parse_operators(path, d),
        Bson::RegularExpression(_) => Err(Error::unsupported(format!(
            "regular expression match on '{path}' is not supported by this version"
        ))),
        other => Ok(vec![Cond::Eq(other.clone())]),
    }
}

fn parse_operators(path: &str, ops: &Document) -> Result<Vec<Cond>> {
    let mut conds = Vec::with_capacity(ops.len());
    for (op, arg) in ops {
        let cond = match op.as_str() {
            "$eq" => Cond::Eq(arg.clone()),
            "$ne" => Cond::Ne(arg.clone()),
            "$gt" => Cond::Cmp(Ordering::Greater, false, arg.clone()),
            "$gte" => Cond::Cmp(Ordering::Greater, true, arg.clone()),
            "$lt" => Cond::Cmp(Ordering::Less, false, arg.clone()),
            "$lte" => Cond::Cmp(Ordering::Less, true, arg.clone()),
            "$in" | "$nin" => {
                let Bson::Array(items) = arg else {
                    return Err(Error::parse(format!(
                        "{op} needs an array (path '{path}')"
                    )));
                };
                if items.iter().any(|v| matches!(v, Bson::RegularExpression(_))) {
                    return Err(Error::unsupported(format!(
                        "regular expressions inside {op} (path '{path}') are not supported by this version"
                    )));
                }
                if op == "$in" {
                    Cond::In(items.clone())
                } else {
                    Cond::Nin(items.clone())
                }
            }
            "$exists" => Cond::Exists(truthy(arg)),
            "$not" => match arg {
                Bson::Document(d) if is_operator_doc(d) => Cond::Not(parse_operators(path, d)?),
                Bson::RegularExpression(_) => {
                    return Err(Error::unsupported(format!(
                        "$not with a regular expression (path '{path}') is not supported by this version"
                    )))
                }
                _ => {
                    return Err(Error::parse(format!(
                        "$not needs a regex or a document (path '{path}')"
                    )))
                }
            },
            "$comment" => continue,
            other if LATER_FIELD_OPS.contains(&other) => {
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
    Ok(conds)
}

/// MongoDB's truthiness for flags like `$exists: 1`.
pub(crate) fn truthy(v: &Bson) -> bool {
    match v {
        Bson::Boolean(b) => *b,
        Bson::Int32(i) => *i != 0,
        Bson::Int64(i) => *i != 0,
        Bson::Double(d) => *d != 0.0,
        Bson::Null | Bson::Undefined => false,
        _ => true,
    }
}

/// Equality of one stored value with a query value, array elements included.
fn eq_one(stored: &Bson, wanted: &Bson) -> bool {
    if equal(stored, wanted) {
        return true;
    }
    match stored {
        Bson::Array(items) => items.iter().any(|e| equal(e, wanted)),
        _ => false,
    }
}

fn eq_values(values: &[&Bson], wanted: &Bson) -> bool {
    if matches!(wanted, Bson::Null) {
        return values.is_empty()
            || values.iter().any(|v| match v {
                Bson::Null | Bson::Undefined => true,
                Bson::Array(items) => items.iter().any(|e| matches!(e, Bson::Null)),
                _ => false,
            });
    }
    values.iter().any(|v| eq_one(v, wanted))
}

fn cmp_ok(stored: &Bson, dir: Ordering, or_equal: bool, wanted: &Bson) -> bool {
    if type_rank(stored) != type_rank(wanted) {
        return false;
    }
    let o = compare(stored, wanted);
    o == dir || (or_equal && o == Ordering::Equal)
}

impl Cond {
    fn test(&self, values: &[&Bson]) -> bool {
        match self {
            Cond::Eq(w) => eq_values(values, w),
            Cond::Ne(w) => !eq_values(values, w),
            Cond::Cmp(dir, or_equal, w) => {
                if *or_equal && matches!(w, Bson::Null) {
                    return eq_values(values, w);
                }
                values.iter().any(|v| {
                    cmp_ok(v, *dir, *or_equal, w)
                        || matches!(v, Bson::Array(items)
                            if items.iter().any(|e| cmp_ok(e, *dir, *or_equal, w)))
                })
            }
            Cond::In(ws) => ws.iter().any(|w| eq_values(values, w)),
            Cond::Nin(ws) => !ws.iter().any(|w| eq_values(values, w)),
            Cond::Exists(want) => values.is_empty() != *want,
            Cond::Not(conds) => !conds.iter().all(|c| c.test(values)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    fn m(filter: Document, d: Document) -> bool {
        Filter::parse(&filter).unwrap().matches(&d)
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
    }

    #[test]
    fn ranges_bracket_types() {
        assert!(m(doc! {"a": {"$gt": 1}}, doc! {"a": 1.5}));
        assert!(!m(doc! {"a": {"$gt": 1}}, doc! {"a": "zzz"}));
        assert!(m(doc! {"a": {"$gte": 2, "$lt": 3}}, doc! {"a": [1, 2]}));
        assert!(m(doc! {"a": {"$ne": 5}}, doc! {"b": 1}));
    }

    #[test]
    fn unknown_operators_are_named() {
        let e = Filter::parse(&doc! {"a": {"$foo": 1}}).unwrap_err();
        assert!(matches!(e, Error::Parse(_)));
        assert!(e.to_string().contains("$foo"));
        let e = Filter::parse(&doc! {"$bar": []}).unwrap_err();
        assert!(e.to_string().contains("$bar"));
    }
}
