//! Filters: [`Filter::parse`] (in [`parse`]) turns a MongoDB query document into a tree of
//! [`Filter`]s and [`Cond`]itions, checking every operator and operand first, and
//! [`Filter::matches`] (conditions in [`eval`]) evaluates it with MongoDB's semantics:
//! implicit array traversal, element matching, `null` matching missing fields, type
//! bracketing for range operators, numbers equal across types. Regexes are in [`pattern`].
//!
//! Evaluation runs over any [`Source`]: an owned document, or a stored document's BSON bytes
//! ([`bson::RawDocument`]), where only the values the filter's paths reach are decoded.

mod eval;
mod parse;
pub(crate) mod pattern;

pub use parse::MAX_FILTER_DEPTH;
pub(crate) use parse::{is_operator_doc, parse_operators};

use super::path::Source;
use crate::error::{Error, Result};
use bson::{Bson, Document, RawDocument};
use pattern::Pattern;
use std::cmp::Ordering;

/// A BSON type selector of `$type`: a type number, or every numeric type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum TypeSel {
    /// One BSON type number (1 double, 2 string, ..., -1 minKey, 127 maxKey).
    Code(i32),
    /// `"number"`: double, int, long or decimal.
    Number,
}

/// A condition applied to the values at one path.
#[derive(Debug, Clone)]
pub(crate) enum Cond {
    /// `$eq` and implicit equality.
    Eq(Bson),
    /// `$ne`.
    Ne(Bson),
    /// `$gt`/`$gte`/`$lt`/`$lte`: direction, or-equal, operand.
    Cmp(Ordering, bool, Bson),
    /// `$in`: plain values and regexes.
    In(Vec<Bson>, Vec<Pattern>),
    /// `$nin`: plain values and regexes.
    Nin(Vec<Bson>, Vec<Pattern>),
    /// `$exists`.
    Exists(bool),
    /// `$not`: the negation of all the conditions together.
    Not(Vec<Cond>),
    /// `$type`: any of the selectors.
    Type(Vec<TypeSel>),
    /// `$regex` (with `$options`) or a regex literal.
    Regex(Pattern),
    /// `$mod`: divisor, remainder.
    Mod(i64, i64),
    /// `$all`: every item condition holds (and there is at least one).
    All(Vec<Cond>),
    /// `$elemMatch` over values: some array element satisfies every condition.
    ElemMatchValue(Vec<Cond>),
    /// `$elemMatch` as a query: some document element matches the filter.
    ElemMatchDoc(Box<Filter>),
    /// `$size`.
    Size(u64),
}

/// A parsed filter.
#[derive(Debug, Clone)]
pub(crate) enum Filter {
    /// `$and` (and the implicit conjunction of a query document's fields).
    All(Vec<Filter>),
    /// `$or`.
    Any(Vec<Filter>),
    /// `$nor`.
    NoneOf(Vec<Filter>),
    /// Conditions on one dotted path.
    Field {
        /// The path as written.
        path: String,
        /// The path split at dots.
        parts: Vec<String>,
        /// Conditions that must all hold.
        conds: Vec<Cond>,
    },
}

impl Filter {
    /// A filter that matches every document.
    pub(crate) fn match_all() -> Self {
        Filter::All(Vec::new())
    }

    /// Whether `doc` satisfies the filter.
    pub(crate) fn matches<S: Source + ?Sized>(&self, doc: &S) -> bool {
        let mut broken = false;
        self.eval(doc, &mut broken)
    }

    /// Evaluates over a stored document's bytes. `None` when the bytes are malformed along
    /// a path the filter reads (the caller decodes the document to report the corruption).
    pub(crate) fn matches_raw(&self, doc: &RawDocument) -> Option<bool> {
        let mut broken = false;
        let m = self.eval(doc, &mut broken);
        (!broken).then_some(m)
    }

    /// Evaluates over the BSON bytes of a stored document body.
    ///
    /// Errors: [`Error::Corrupt`] when the bytes are not a well-formed document along the
    /// paths the filter reads.
    pub(crate) fn matches_bytes(&self, body: &[u8]) -> Result<bool> {
        if matches!(self, Filter::All(fs) if fs.is_empty()) {
            return Ok(true);
        }
        let corrupt = |e: String| Error::Corrupt(format!("stored document is malformed: {e}"));
        let raw = RawDocument::from_bytes(body).map_err(|e| corrupt(e.to_string()))?;
        match self.matches_raw(raw) {
            Some(m) => Ok(m),
            None => {
                let doc = crate::document::raw::bson_decode(body).map_err(corrupt)?;
                Ok(self.matches(&doc))
            }
        }
    }

    fn eval<S: Source + ?Sized>(&self, doc: &S, broken: &mut bool) -> bool {
        match self {
            Filter::All(fs) => fs.iter().all(|f| f.eval(doc, broken)),
            Filter::Any(fs) => fs.iter().any(|f| f.eval(doc, broken)),
            Filter::NoneOf(fs) => !fs.iter().any(|f| f.eval(doc, broken)),
            Filter::Field { parts, conds, .. } => {
                let r = doc.reach(parts);
                *broken |= r.broken;
                conds.iter().all(|c| c.test(&r))
            }
        }
    }

    /// The equality parts of the filter (`{a: 1}`, `{a: {$eq: 1}}`, inside `$and`, a
    /// one-clause `$or`), used to seed an upserted document.
    pub(crate) fn equalities(&self, out: &mut Vec<(String, Bson)>) {
        match self {
            Filter::All(fs) => fs.iter().for_each(|f| f.equalities(out)),
            Filter::Field { path, conds, .. } => {
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

    /// The `_id` the filter pins by equality (`{_id: v}` or `{_id: {$eq: v}}`, at the top level
    /// or inside `$and`), when `v` is a string or an ObjectId: then at most one document can
    /// match and a point lookup may replace the scan. (Other types are left to the scan:
    /// equal numbers or documents of different BSON types share no storage key.)
    pub(crate) fn id_equality(&self) -> Option<&Bson> {
        match self {
            Filter::All(fs) => fs.iter().find_map(Filter::id_equality),
            Filter::Field { path, conds, .. } if path == "_id" => {
                conds.iter().find_map(|c| match c {
                    Cond::Eq(
                        v @ (Bson::String(_) | Bson::ObjectId(_) | Bson::Int32(_) | Bson::Int64(_)),
                    ) => Some(v),
                    // NaN equals NaN in a filter, but NaNs differ in their bits (the key).
                    Cond::Eq(v @ Bson::Double(d)) if !d.is_nan() => Some(v),
                    _ => None,
                })
            }
            _ => None,
        }
    }

    /// For the positional `$` update operator: the index of the first element of the array
    /// at `array_path` that satisfies the filter's conditions on that array (conditions on
    /// `array_path` itself and on paths below it, at the top level or inside `$and`).
    /// `None` when the filter has no such condition or no element satisfies them.
    pub(crate) fn positional_index(&self, doc: &Document, array_path: &[String]) -> Option<usize> {
        let mut relevant: Vec<(&[String], &Cond)> = Vec::new();
        self.conditions_under(array_path, &mut relevant);
        if relevant.is_empty() {
            return None;
        }
        let Some(Bson::Array(items)) = super::path::get_exact(doc, &array_path.join(".")) else {
            return None;
        };
        items.iter().position(|e| {
            relevant.iter().all(|(rest, c)| {
                if rest.is_empty() {
                    return c.test_element(e);
                }
                match e {
                    Bson::Document(d) => c.test(&d.reach(rest)),
                    _ => false,
                }
            })
        })
    }

    fn conditions_under<'a>(&'a self, prefix: &[String], out: &mut Vec<(&'a [String], &'a Cond)>) {
        match self {
            Filter::All(fs) => fs.iter().for_each(|f| f.conditions_under(prefix, out)),
            Filter::Field { parts, conds, .. } if parts.starts_with(prefix) => {
                let rest = &parts[prefix.len()..];
                // A numeric component right under the array selects one element itself.
                if rest
                    .first()
                    .is_some_and(|p| super::path::index_of(p).is_some())
                {
                    return;
                }
                // $size and $all constrain the array as a whole, not one element.
                out.extend(
                    conds
                        .iter()
                        .filter(|c| !(rest.is_empty() && matches!(c, Cond::Size(_) | Cond::All(_))))
                        .map(|c| (rest, c)),
                );
            }
            _ => {}
        }
    }
}

/// MongoDB's truthiness for flags like `$exists: 1` and projection values.
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

#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod tests;
