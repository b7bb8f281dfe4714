//! Application of parsed update operators to one document: positional paths are resolved
//! first (`$` to the first array element the filter matched, `$[]` to every element), then
//! each operator runs on each concrete path. Errors are [`Error::Parse`] and leave the
//! caller's document untouched (work happens on a copy).

use super::fields::{arith, get_path, set_path, unset_path, zero_like};
use super::parse::filtered_identifier;
use super::{type_name, Action, ArrayFilters, FieldOp, PullCond, PushSort, PushSpec};
use crate::error::{Error, Result};
use crate::query::compare::{compare, equal};
use crate::query::filter::Filter;
use crate::query::path::Reached;
use bson::{Bson, Document};
use std::cmp::Ordering;

/// What an update is applied in view of.
pub(super) struct Ctx<'a> {
    /// The filter that matched (resolves `$`).
    pub filter: &'a Filter,
    /// The document is an upsert's seed.
    pub inserting: bool,
    /// The document as it was matched, before any operator ran.
    pub original: &'a Document,
    /// The conditions of the `$[<identifier>]` components.
    pub array_filters: &'a ArrayFilters,
}

fn id_text(doc: &Document) -> String {
    doc.get("_id")
        .map(crate::document::json::bson_to_json_text)
        .unwrap_or_else(|| "(none)".into())
}

/// Runs one operator on `doc`; returns the concrete paths it stood for (`$`, `$[]` and
/// `$[<identifier>]` resolved).
pub(super) fn apply_op(doc: &mut Document, op: &FieldOp, ctx: &Ctx<'_>) -> Result<Vec<String>> {
    let paths = expand(doc, op, ctx)?;
    for path in &paths {
        apply_action(doc, op, path, ctx).map_err(|e| match e {
            // Name the operator where the message does not already.
            Error::Parse(m) if !m.contains(op.op) => Error::Parse(format!("{}: {m}", op.op)),
            other => other,
        })?;
    }
    Ok(paths)
}

/// Two operators whose positional paths resolved to the same element (or one inside the
/// other), e.g. `a.$[x]` and `a.$[y]` when both filters match `a.0`: MongoDB refuses the
/// update. `written` holds each operator's concrete paths.
pub(super) fn check_resolved_conflicts(written: &[Vec<String>]) -> Result<()> {
    for (i, mine) in written.iter().enumerate() {
        for theirs in &written[i + 1..] {
            for a in mine {
                for b in theirs {
                    let clash = a == b
                        || b.starts_with(&format!("{a}."))
                        || a.starts_with(&format!("{b}."));
                    if clash {
                        let at = if a.len() <= b.len() { a } else { b };
                        return Err(Error::parse(format!("Update created a conflict at '{at}'")));
                    }
                }
            }
        }
    }
    Ok(())
}

/// The concrete paths `op.path` stands for in `doc`.
fn expand(doc: &Document, op: &FieldOp, ctx: &Ctx<'_>) -> Result<Vec<String>> {
    let parts: Vec<&str> = op.path.split('.').collect();
    if !parts.iter().any(|p| p.starts_with('$')) {
        return Ok(vec![op.path.clone()]);
    }
    let mut out = Vec::new();
    expand_from(doc, op, &parts, Vec::new(), ctx, &mut out)?;
    Ok(out)
}

fn expand_from(
    doc: &Document,
    op: &FieldOp,
    parts: &[&str],
    prefix: Vec<String>,
    ctx: &Ctx<'_>,
    out: &mut Vec<String>,
) -> Result<()> {
    let Some((head, rest)) = parts.split_first() else {
        out.push(prefix.join("."));
        return Ok(());
    };
    let with = |p: String| {
        let mut v = prefix.clone();
        v.push(p);
        v
    };
    match *head {
        "$" => {
            let found = if ctx.inserting {
                None
            } else {
                ctx.filter.positional_index(ctx.original, &prefix)
            };
            let Some(i) = found else {
                return Err(Error::parse(format!(
                    "{}: the positional operator did not find the match needed from the query (path '{}')",
                    op.op, op.path
                )));
            };
            expand_from(doc, op, rest, with(i.to_string()), ctx, out)
        }
        "$[]" => {
            let at = prefix.join(".");
            for i in 0..elements_at(doc, op, &at)?.len() {
                expand_from(doc, op, rest, with(i.to_string()), ctx, out)?;
            }
            Ok(())
        }
        p => match filtered_identifier(p) {
            Some(id) => {
                let at = prefix.join(".");
                // Filters see the elements as the document was matched (as MongoDB
                // resolves every operator's positions before applying any), unless an
                // earlier operator made the array.
                let before = match get_path(ctx.original, &at) {
                    Some(Bson::Array(items)) => Some(items),
                    _ => None,
                };
                for (i, e) in elements_at(doc, op, &at)?.iter().enumerate() {
                    let e = before.and_then(|b| b.get(i)).unwrap_or(e);
                    if ctx.array_filters.element_matches(id, e) {
                        expand_from(doc, op, rest, with(i.to_string()), ctx, out)?;
                    }
                }
                Ok(())
            }
            None => expand_from(doc, op, rest, with(p.to_owned()), ctx, out),
        },
    }
}

/// The elements of the array at `at` that `$[]` or `$[<identifier>]` walk.
fn elements_at<'d>(doc: &'d Document, op: &FieldOp, at: &str) -> Result<&'d [Bson]> {
    match get_path(doc, at) {
        Some(Bson::Array(items)) => Ok(items),
        None => Err(Error::parse(format!(
            "{}: The path '{at}' must exist in the document in order to apply array updates (path '{}')",
            op.op, op.path
        ))),
        Some(other) => Err(Error::parse(format!(
            "{}: Cannot apply array updates to non-array element {at}: {} (path '{}')",
            op.op,
            crate::document::json::bson_to_json_text(other),
            op.path
        ))),
    }
}

/// The array at `path` for an array operator: `Ok(None)` when missing.
fn array_at(doc: &Document, op: &str, path: &str) -> Result<Option<Vec<Bson>>> {
    match get_path(doc, path) {
        None => Ok(None),
        Some(Bson::Array(items)) => Ok(Some(items.clone())),
        Some(other) => Err(Error::parse(format!(
            "{op}: the field '{path}' must be an array but is of type {} in document {{_id: {}}}",
            type_name(other),
            id_text(doc)
        ))),
    }
}

fn apply_action(doc: &mut Document, op: &FieldOp, path: &str, ctx: &Ctx<'_>) -> Result<()> {
    match &op.action {
        Action::Set(v) => set_path(doc, path, v.clone()),
        Action::SetOnInsert(v) if ctx.inserting => set_path(doc, path, v.clone()),
        Action::SetOnInsert(_) => Ok(()),
        Action::Unset => {
            unset_path(doc, path);
            Ok(())
        }
        Action::Inc(by) | Action::Mul(by) => {
            let new = match get_path(doc, path) {
                None if matches!(op.action, Action::Inc(_)) => by.clone(),
                None => zero_like(by),
                Some(cur) => arith(op.op, cur, by, path, &id_text(doc))?,
            };
            set_path(doc, path, new)
        }
        Action::Min(v) | Action::Max(v) => {
            let want = if matches!(op.action, Action::Min(_)) {
                Ordering::Less
            } else {
                Ordering::Greater
            };
            let replace = match get_path(doc, path) {
                None => true,
                Some(cur) => compare(v, cur) == want,
            };
            if replace {
                set_path(doc, path, v.clone())?;
            }
            Ok(())
        }
        Action::Rename(to) => rename(doc, path, to),
        Action::CurrentDate(timestamp) => {
            let now = bson::DateTime::now();
            let v = if *timestamp {
                let secs = u32::try_from(now.timestamp_millis() / 1000).unwrap_or(u32::MAX);
                Bson::Timestamp(bson::Timestamp {
                    time: secs,
                    increment: 1,
                })
            } else {
                Bson::DateTime(now)
            };
            set_path(doc, path, v)
        }
        Action::Push(spec) => {
            let items = array_at(doc, "$push", path)?.unwrap_or_default();
            set_path(doc, path, Bson::Array(push(items, spec)))
        }
        Action::AddToSet(values) => {
            let mut items = array_at(doc, "$addToSet", path)?.unwrap_or_default();
            for v in values {
                if !items.iter().any(|e| same(e, v)) {
                    items.push(v.clone());
                }
            }
            set_path(doc, path, Bson::Array(items))
        }
        Action::Pop(first) => {
            let Some(mut items) = array_at(doc, "$pop", path)? else {
                return Ok(());
            };
            if items.is_empty() {
                return Ok(());
            }
            if *first {
                items.remove(0);
            } else {
                items.pop();
            }
            set_path(doc, path, Bson::Array(items))
        }
        Action::Pull(cond) => {
            let Some(mut items) = array_at(doc, "$pull", path)? else {
                return Ok(());
            };
            items.retain(|e| !pull_matches(cond, e));
            set_path(doc, path, Bson::Array(items))
        }
        Action::PullAll(values) => {
            let Some(mut items) = array_at(doc, "$pullAll", path)? else {
                return Ok(());
            };
            items.retain(|e| !values.iter().any(|v| same(e, v)));
            set_path(doc, path, Bson::Array(items))
        }
    }
}

/// Equality for `$addToSet` / `$pullAll` / `$pull` of a value: BSON equality, with
/// documents equal only with the same fields in the same order.
fn same(a: &Bson, b: &Bson) -> bool {
    equal(a, b)
}

fn pull_matches(cond: &PullCond, e: &Bson) -> bool {
    match cond {
        PullCond::Value(v) => same(e, v),
        PullCond::Conds(conds) => {
            let one = Reached::single(e);
            conds.iter().all(|c| c.test(&one))
        }
        PullCond::Query(f) => matches!(e, Bson::Document(d) if f.matches(d)),
    }
}

fn push(mut items: Vec<Bson>, spec: &PushSpec) -> Vec<Bson> {
    let len = items.len();
    let pos = match spec.position {
        None => len,
        Some(p) if p >= 0 => usize::try_from(p).unwrap_or(usize::MAX).min(len),
        Some(p) => len.saturating_sub(usize::try_from(p.unsigned_abs()).unwrap_or(usize::MAX)),
    };
    items.splice(pos..pos, spec.each.iter().cloned());
    match &spec.sort {
        Some(PushSort::Whole(asc)) => items.sort_by(|a, b| {
            let o = compare(a, b);
            if *asc {
                o
            } else {
                o.reverse()
            }
        }),
        Some(PushSort::Fields(sort)) => {
            let empty = Document::new();
            let mut keyed: Vec<_> = items
                .into_iter()
                .map(|e| {
                    let k = sort.key_of(match &e {
                        Bson::Document(d) => d,
                        _ => &empty,
                    });
                    (k, e)
                })
                .collect();
            keyed.sort_by(|a, b| sort.compare_keys(&a.0, &b.0));
            items = keyed.into_iter().map(|(_, e)| e).collect();
        }
        None => {}
    }
    if let Some(n) = spec.slice {
        let keep = usize::try_from(n.unsigned_abs()).unwrap_or(usize::MAX);
        if n >= 0 {
            items.truncate(keep);
        } else if items.len() > keep {
            items.drain(..items.len() - keep);
        }
    }
    items
}

/// `$rename`: moves the value at `from` to `to`; neither may go through an array.
fn rename(doc: &mut Document, from: &str, to: &str) -> Result<()> {
    for (which, path) in [("source", from), ("destination", to)] {
        let parts: Vec<&str> = path.split('.').collect();
        for i in 1..parts.len() {
            let prefix = parts[..i].join(".");
            if let Some(Bson::Array(_)) = get_path(doc, &prefix) {
                return Err(Error::parse(format!(
                    "$rename: the {which} field cannot be an array element, '{path}' in doc with _id: {} has an array field called '{prefix}'",
                    id_text(doc)
                )));
            }
        }
    }
    let Some(v) = get_path(doc, from).cloned() else {
        return Ok(());
    };
    unset_path(doc, from);
    set_path(doc, to, v)
}
