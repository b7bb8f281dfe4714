//! Projections: inclusion (`{a: 1, "b.c": 1}`) or exclusion (`{a: 0}`), never mixed except
//! for `_id`, which is included unless excluded explicitly (MongoDB's rule). Dotted paths and
//! nested projection documents reach into documents and into arrays of documents. Two
//! operators shape arrays: `$slice` (`n`, `-n`, `[skip, limit]`), which keeps the other
//! fields when used alone, and `$elemMatch`, which returns the first matching element only.

use super::filter::{truthy, Cond, Filter};
use super::path::{check_limits, Reached};
use crate::document::{check_nesting, MAX_QUERY_NESTING};
use crate::error::{Error, Result};
use bson::{Bson, Document};
use std::collections::HashMap;

/// An array-shaping projection operator.
#[derive(Debug, Clone)]
enum ArrayOp {
    /// `$slice`: elements to skip (negative: from the end), then how many to keep
    /// (`None`: the single-number form, whose sign says which end).
    Slice(i64, Option<i64>),
    /// `$elemMatch`: the condition (an `ElemMatchDoc` or `ElemMatchValue`).
    ElemMatch(Cond),
}

#[derive(Debug, Clone, Default)]
struct Node {
    leaf: bool,
    op: Option<ArrayOp>,
    children: HashMap<String, Node>,
}

/// A parsed projection.
#[derive(Debug, Clone)]
pub(crate) struct Projection {
    include: bool,
    keep_id: bool,
    tree: Node,
}

/// Flattens nested projection documents (`{a: {b: 1}}` is `{"a.b": 1}`), keeping operator
/// documents (`{a: {$slice: 2}}`) whole. Each path is checked against the path limits
/// before it is descended into, so the recursion is at most one level per component.
fn flatten(prefix: &str, spec: &Document, out: &mut Vec<(String, Bson)>) -> Result<()> {
    for (k, v) in spec {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        check_limits("projection", &path)?;
        match v {
            Bson::Document(d) if d.is_empty() => {
                return Err(Error::parse(format!(
                    "projection: an empty object is not a valid value for '{path}'"
                )))
            }
            Bson::Document(d) if !d.keys().next().is_some_and(|k| k.starts_with('$')) => {
                flatten(&path, d, out)?
            }
            other => out.push((path, other.clone())),
        }
    }
    Ok(())
}

fn parse_slice(path: &str, arg: &Bson) -> Result<ArrayOp> {
    // The double is whole and guarded inside i64's range before the cast.
    #[allow(clippy::cast_possible_truncation)]
    let int = |v: &Bson| match v {
        Bson::Int32(i) => Some(i64::from(*i)),
        Bson::Int64(i) => Some(*i),
        Bson::Double(d) if d.fract() == 0.0 && d.abs() < 9.2e18 => Some(*d as i64),
        _ => None,
    };
    match arg {
        Bson::Array(items) if items.len() == 2 => {
            let (Some(skip), Some(limit)) = (int(&items[0]), int(&items[1])) else {
                return Err(Error::parse(format!(
                    "$slice only supports numbers and [skip, limit] arrays (path '{path}')"
                )));
            };
            if limit <= 0 {
                return Err(Error::parse(format!(
                    "$slice limit must be positive (path '{path}')"
                )));
            }
            Ok(ArrayOp::Slice(skip, Some(limit)))
        }
        other => match int(other) {
            Some(n) => Ok(ArrayOp::Slice(n, None)),
            None => Err(Error::parse(format!(
                "$slice only supports numbers and [skip, limit] arrays (path '{path}')"
            ))),
        },
    }
}

impl Projection {
    /// Parses a projection document; `None` when it projects nothing away.
    ///
    /// The projection's nesting is checked first ([`MAX_QUERY_NESTING`], iteratively), its
    /// paths as they are read ([`check_limits`]); both are [`Error::InvalidArgument`].
    pub(crate) fn parse(spec: &Document) -> Result<Option<Self>> {
        check_nesting(spec, MAX_QUERY_NESTING, "projection")?;
        let mut keep_id = true;
        let mut mode: Option<bool> = None;
        let mut tree = Node::default();
        let mut entries = Vec::new();
        flatten("", spec, &mut entries)?;
        let mut has_ops = false;
        // `{_id: 1}` alone is an inclusion projection of `_id` only.
        let mut id_named = false;
        for (path, v) in &entries {
            if path.starts_with('$') || path.split('.').any(|p| p.is_empty() || p.starts_with('$'))
            {
                return Err(Error::parse(format!(
                    "invalid projection path '{path}' (positional and $-prefixed paths are not supported)"
                )));
            }
            let (on, op) = match v {
                Bson::Document(d) => {
                    let (name, arg) = d
                        .iter()
                        .next()
                        .map(|(k, v)| (k.as_str(), v))
                        .unwrap_or(("", &Bson::Null));
                    if d.len() != 1 {
                        return Err(Error::parse(format!(
                            "projection: an operator object on '{path}' must have exactly one operator"
                        )));
                    }
                    match name {
                        "$slice" => (None, Some(parse_slice(path, arg)?)),
                        "$elemMatch" => {
                            if path.contains('.') {
                                return Err(Error::parse(format!(
                                    "Cannot use $elemMatch projection on a nested field ('{path}')"
                                )));
                            }
                            let mut q = Document::new();
                            q.insert(path.clone(), d.clone());
                            let cond =
                                match Filter::parse(&q)? {
                                    Filter::Field { mut conds, .. } if conds.len() == 1 => {
                                        conds.remove(0)
                                    }
                                    _ => return Err(Error::Internal(
                                        "a one-operator projection did not parse to one condition"
                                            .into(),
                                    )),
                                };
                            (Some(true), Some(ArrayOp::ElemMatch(cond)))
                        }
                        other => {
                            return Err(Error::parse(format!(
                                "Unsupported projection option: {path}: {{ {other}: ... }}"
                            )))
                        }
                    }
                }
                other => (Some(truthy(other)), None),
            };
            if path == "_id" && op.is_none() {
                keep_id = on.unwrap_or(true);
                id_named = keep_id;
                continue;
            }
            if let Some(on) = on {
                match mode {
                    Some(m) if m != on => {
                        return Err(Error::parse(format!(
                            "Cannot do {} on field {path} in {} projection",
                            if on { "inclusion" } else { "exclusion" },
                            if m { "inclusion" } else { "exclusion" }
                        )))
                    }
                    _ => mode = Some(on),
                }
            }
            has_ops |= op.is_some();
            let mut node = &mut tree;
            for part in path.split('.') {
                if node.leaf || node.op.is_some() {
                    return Err(Error::parse(format!("Path collision at {path}")));
                }
                node = node.children.entry(part.to_owned()).or_default();
            }
            if node.leaf || node.op.is_some() || !node.children.is_empty() {
                return Err(Error::parse(format!("Path collision at {path}")));
            }
            match op {
                Some(op) => node.op = Some(op),
                None => node.leaf = true,
            }
        }
        if mode.is_none() && !has_ops && keep_id && !id_named {
            return Ok(None);
        }
        let only_id = mode.is_none() && !has_ops && id_named;
        Ok(Some(Self {
            include: mode.unwrap_or(only_id),
            keep_id,
            tree,
        }))
    }

    /// Applies the projection to a stored document.
    pub(crate) fn apply(&self, doc: &Document) -> Document {
        let mut out = if self.include {
            include(doc, &self.tree)
        } else {
            exclude(doc, &self.tree)
        };
        match (self.keep_id, doc.get("_id")) {
            (true, Some(id)) if self.include => {
                let mut with_id = Document::new();
                with_id.insert("_id", id.clone());
                with_id.extend(out);
                with_id
            }
            (false, _) => {
                out.remove("_id");
                out
            }
            _ => out,
        }
    }
}

/// The value of an operator node, or `None` when the field is left out.
fn apply_op(op: &ArrayOp, v: &Bson) -> Option<Bson> {
    let Bson::Array(items) = v else {
        return match op {
            ArrayOp::Slice(..) => Some(v.clone()),
            ArrayOp::ElemMatch(_) => None,
        };
    };
    match op {
        ArrayOp::Slice(n, None) => {
            let keep = usize::try_from(n.unsigned_abs()).unwrap_or(usize::MAX);
            Some(Bson::Array(if *n >= 0 {
                items.iter().take(keep).cloned().collect()
            } else {
                items[items.len().saturating_sub(keep)..].to_vec()
            }))
        }
        ArrayOp::Slice(skip, Some(limit)) => {
            let len = items.len();
            let start = if *skip >= 0 {
                usize::try_from(*skip).unwrap_or(usize::MAX).min(len)
            } else {
                len.saturating_sub(usize::try_from(skip.unsigned_abs()).unwrap_or(usize::MAX))
            };
            let take = usize::try_from(*limit).unwrap_or(usize::MAX);
            Some(Bson::Array(
                items.iter().skip(start).take(take).cloned().collect(),
            ))
        }
        ArrayOp::ElemMatch(cond) => items
            .iter()
            .find(|e| {
                let one = Bson::Array(vec![(*e).clone()]);
                cond.test(&Reached::single(&one))
            })
            .map(|e| Bson::Array(vec![e.clone()])),
    }
}

fn include(doc: &Document, node: &Node) -> Document {
    let mut out = Document::new();
    for (k, v) in doc {
        if let Some(child) = node.children.get(k) {
            if child.leaf {
                out.insert(k.clone(), v.clone());
            } else if let Some(op) = &child.op {
                if let Some(x) = apply_op(op, v) {
                    out.insert(k.clone(), x);
                }
            } else if let Some(sub) = include_value(v, child) {
                out.insert(k.clone(), sub);
            }
        }
    }
    out
}

fn include_value(v: &Bson, node: &Node) -> Option<Bson> {
    match v {
        Bson::Document(d) => Some(Bson::Document(include(d, node))),
        Bson::Array(items) => Some(Bson::Array(
            items
                .iter()
                .filter_map(|i| include_value(i, node))
                .collect(),
        )),
        _ => None,
    }
}

fn exclude(doc: &Document, node: &Node) -> Document {
    let mut out = Document::new();
    for (k, v) in doc {
        match node.children.get(k) {
            Some(child) if child.leaf => {}
            Some(Node { op: Some(op), .. }) => {
                if let Some(x) = apply_op(op, v) {
                    out.insert(k.clone(), x);
                }
            }
            Some(child) => {
                out.insert(k.clone(), exclude_value(v, child));
            }
            None => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    out
}

fn exclude_value(v: &Bson, node: &Node) -> Bson {
    match v {
        Bson::Document(d) => Bson::Document(exclude(d, node)),
        Bson::Array(items) => Bson::Array(items.iter().map(|i| exclude_value(i, node)).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    #[test]
    fn inclusion_keeps_id_first_and_nested_paths() {
        let p = Projection::parse(&doc! {"a.b": 1, "c": 1})
            .unwrap()
            .unwrap();
        let out = p.apply(&doc! {"c": 3, "_id": 1, "a": {"b": 2, "x": 0}, "z": 9});
        assert_eq!(out, doc! {"_id": 1, "c": 3, "a": {"b": 2}});
    }

    #[test]
    fn exclusion_and_id_rule() {
        let p = Projection::parse(&doc! {"_id": 0, "a.x": 0})
            .unwrap()
            .unwrap();
        let out = p.apply(&doc! {"_id": 1, "a": [{"b": 2, "x": 0}], "z": 9});
        assert_eq!(out, doc! {"a": [{"b": 2}], "z": 9});
        assert!(Projection::parse(&doc! {"a": 1, "b": 0}).is_err());
    }

    #[test]
    fn slice_and_elem_match() {
        let d = doc! {"_id": 1, "a": [1, 2, 3, 4], "g": [{"s": 1}, {"s": 7}, {"s": 9}], "z": 0};
        let p = Projection::parse(&doc! {"a": {"$slice": -2}})
            .unwrap()
            .unwrap();
        assert_eq!(
            p.apply(&d),
            doc! {"_id": 1, "a": [3, 4], "g": [{"s": 1}, {"s": 7}, {"s": 9}], "z": 0}
        );
        let p = Projection::parse(&doc! {"a": {"$slice": [1, 2]}, "z": 1})
            .unwrap()
            .unwrap();
        assert_eq!(p.apply(&d), doc! {"_id": 1, "a": [2, 3], "z": 0});
        let p = Projection::parse(&doc! {"g": {"$elemMatch": {"s": {"$gt": 5}}}})
            .unwrap()
            .unwrap();
        assert_eq!(p.apply(&d), doc! {"_id": 1, "g": [{"s": 7}]});
    }
}
