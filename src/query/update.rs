//! Updates: [`Update::parse`] reads an update document (operators such as `$set`, or a
//! replacement document), checks it completely (unknown operators, wrong operand types,
//! conflicting paths, `_id` changes) before anything is applied, and [`Update::apply`]
//! produces the new document.

use super::compare::equal;
use crate::error::{Error, Result};
use bson::{Bson, Document};

/// Update operators of the full language that this build does not have yet.
const LATER_OPS: &[&str] = &[
    "$mul",
    "$min",
    "$max",
    "$rename",
    "$currentDate",
    "$setOnInsert",
    "$push",
    "$addToSet",
    "$pop",
    "$pull",
    "$pullAll",
    "$bit",
];

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Op {
    Set,
    Unset,
    Inc,
}

/// A parsed update.
#[derive(Debug, Clone)]
pub(crate) enum Update {
    /// A whole new body (the `_id` is kept).
    Replace(Document),
    /// Field operators, in the order given.
    Ops(Vec<(Op, String, Bson)>),
}

impl Update {
    /// Parses and validates an update document.
    pub(crate) fn parse(update: &Document) -> Result<Self> {
        if update.is_empty() {
            return Err(Error::parse(
                "the update document is empty: give operators ({\"$set\": ...}) or a replacement document",
            ));
        }
        let dollar = update.keys().filter(|k| k.starts_with('$')).count();
        if dollar == 0 {
            return Ok(Update::Replace(update.clone()));
        }
        if dollar != update.len() {
            return Err(Error::parse(
                "an update document mixes operators ($set, ...) with plain fields",
            ));
        }
        let mut ops = Vec::new();
        for (name, operand) in update {
            let op = match name.as_str() {
                "$set" => Op::Set,
                "$unset" => Op::Unset,
                "$inc" => Op::Inc,
                n if LATER_OPS.contains(&n) => {
                    return Err(Error::unsupported(format!(
                        "update operator {n} is not supported by this version"
                    )))
                }
                n => return Err(Error::parse(format!("unknown update operator: {n}"))),
            };
            let Bson::Document(fields) = operand else {
                return Err(Error::parse(format!(
                    "{name} needs a document of fields, found {}",
                    type_name(operand)
                )));
            };
            for (path, value) in fields {
                if path.is_empty() || path.split('.').any(str::is_empty) {
                    return Err(Error::parse(format!("{name}: invalid field path '{path}'")));
                }
                if op == Op::Inc && !is_number(value) {
                    return Err(Error::parse(format!(
                        "$inc needs a number for '{path}', found {}",
                        type_name(value)
                    )));
                }
                if matches!(value, Bson::Decimal128(_)) && op == Op::Inc {
                    return Err(Error::unsupported(
                        "$inc with decimal128 operands is not supported by this version",
                    ));
                }
                ops.push((op, path.clone(), value.clone()));
            }
        }
        check_conflicts(&ops)?;
        Ok(Update::Ops(ops))
    }

    /// Whether this is a replacement document.
    pub(crate) fn is_replacement(&self) -> bool {
        matches!(self, Update::Replace(_))
    }

    /// Applies the update to `doc` (which has its `_id`), returning the new body.
    pub(crate) fn apply(&self, doc: &Document) -> Result<Document> {
        let id = doc.get("_id").cloned();
        match self {
            Update::Replace(body) => {
                if let (Some(new_id), Some(old_id)) = (body.get("_id"), &id) {
                    if !equal(new_id, old_id) {
                        return Err(immutable_id());
                    }
                }
                let mut out = Document::new();
                if let Some(id) = id {
                    out.insert("_id", id);
                }
                for (k, v) in body {
                    if k != "_id" {
                        out.insert(k.clone(), v.clone());
                    }
                }
                Ok(out)
            }
            Update::Ops(ops) => {
                let mut out = doc.clone();
                for (op, path, value) in ops {
                    if path == "_id" || path.starts_with("_id.") {
                        let same = *op == Op::Set && id.as_ref().is_some_and(|i| equal(i, value));
                        if !same {
                            return Err(immutable_id());
                        }
                        continue;
                    }
                    match op {
                        Op::Set => set_path(&mut out, path, value.clone())?,
                        Op::Unset => unset_path(&mut out, path),
                        Op::Inc => {
                            let current = super::path::get_exact(&out, path).cloned();
                            let sum = match current {
                                None => value.clone(),
                                Some(cur) => add(&cur, value, path)?,
                            };
                            set_path(&mut out, path, sum)?;
                        }
                    }
                }
                Ok(out)
            }
        }
    }
}

fn immutable_id() -> Error {
    Error::parse("performing an update on the path '_id' would modify the immutable field '_id'")
}

fn check_conflicts(ops: &[(Op, String, Bson)]) -> Result<()> {
    for (i, (_, a, _)) in ops.iter().enumerate() {
        for (_, b, _) in &ops[i + 1..] {
            let clash =
                a == b || b.starts_with(&format!("{a}.")) || a.starts_with(&format!("{b}."));
            if clash {
                return Err(Error::parse(format!(
                    "updating the path '{b}' would create a conflict at '{a}'"
                )));
            }
        }
    }
    Ok(())
}

pub(crate) fn type_name(v: &Bson) -> &'static str {
    match v {
        Bson::Double(_) => "double",
        Bson::String(_) => "string",
        Bson::Array(_) => "array",
        Bson::Document(_) => "object",
        Bson::Boolean(_) => "bool",
        Bson::Null => "null",
        Bson::Int32(_) => "int",
        Bson::Int64(_) => "long",
        Bson::Decimal128(_) => "decimal",
        Bson::DateTime(_) => "date",
        Bson::ObjectId(_) => "objectId",
        Bson::Binary(_) => "binData",
        Bson::Timestamp(_) => "timestamp",
        Bson::RegularExpression(_) => "regex",
        _ => "other",
    }
}

fn is_number(v: &Bson) -> bool {
    matches!(
        v,
        Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_)
    )
}

/// `a + b` with MongoDB's type promotion (int32 -> int64 on overflow, any double -> double).
fn add(a: &Bson, b: &Bson, path: &str) -> Result<Bson> {
    let overflow = || Error::invalid(format!("$inc on '{path}' overflows a 64-bit integer"));
    Ok(match (a, b) {
        (Bson::Int32(x), Bson::Int32(y)) => match x.checked_add(*y) {
            Some(s) => Bson::Int32(s),
            None => Bson::Int64(i64::from(*x) + i64::from(*y)),
        },
        (Bson::Int32(x), Bson::Int64(y)) | (Bson::Int64(y), Bson::Int32(x)) => {
            Bson::Int64(y.checked_add(i64::from(*x)).ok_or_else(overflow)?)
        }
        (Bson::Int64(x), Bson::Int64(y)) => Bson::Int64(x.checked_add(*y).ok_or_else(overflow)?),
        (x, y) => match (to_f64(x), to_f64(y)) {
            (Some(x), Some(y)) => Bson::Double(x + y),
            _ if matches!(a, Bson::Decimal128(_)) => {
                return Err(Error::unsupported(
                    "$inc on a decimal128 field is not supported by this version",
                ))
            }
            _ => {
                return Err(Error::invalid(format!(
                    "cannot apply $inc to a value of non-numeric type: '{path}' holds {}",
                    type_name(a)
                )))
            }
        },
    })
}

fn to_f64(v: &Bson) -> Option<f64> {
    match v {
        Bson::Int32(i) => Some(f64::from(*i)),
        Bson::Int64(i) => Some(*i as f64),
        Bson::Double(d) => Some(*d),
        _ => None,
    }
}

/// Sets `path`, creating missing intermediate documents; numeric components index arrays
/// (padding with nulls, as MongoDB does).
pub(crate) fn set_path(doc: &mut Document, path: &str, value: Bson) -> Result<()> {
    let parts: Vec<&str> = path.split('.').collect();
    set_in_doc(doc, &parts, value, path)
}

fn set_in_doc(doc: &mut Document, parts: &[&str], value: Bson, path: &str) -> Result<()> {
    let (head, rest) = parts.split_first().expect("paths are never empty");
    if rest.is_empty() {
        doc.insert(*head, value);
        return Ok(());
    }
    if !doc.contains_key(*head) {
        doc.insert(*head, Document::new());
    }
    let child = doc.get_mut(*head).expect("inserted above");
    set_in_value(child, rest, value, path)
}

fn set_in_value(target: &mut Bson, parts: &[&str], value: Bson, path: &str) -> Result<()> {
    match target {
        Bson::Document(d) => set_in_doc(d, parts, value, path),
        Bson::Array(items) => {
            let (head, rest) = parts.split_first().expect("paths are never empty");
            let Ok(i) = head.parse::<usize>() else {
                return Err(Error::invalid(format!(
                    "cannot create field '{head}' in an array (path '{path}')"
                )));
            };
            if i > 1_000_000 {
                return Err(Error::invalid(format!(
                    "array index {i} in '{path}' is too large"
                )));
            }
            while items.len() <= i {
                items.push(Bson::Null);
            }
            if rest.is_empty() {
                items[i] = value;
                Ok(())
            } else {
                if matches!(items[i], Bson::Null) {
                    items[i] = Bson::Document(Document::new());
                }
                set_in_value(&mut items[i], rest, value, path)
            }
        }
        other => Err(Error::invalid(format!(
            "cannot create field '{}' in element of type {} (path '{path}')",
            parts[0],
            type_name(other)
        ))),
    }
}

/// Removes `path` if present; an array element is set to null instead (MongoDB's rule).
pub(crate) fn unset_path(doc: &mut Document, path: &str) {
    let parts: Vec<&str> = path.split('.').collect();
    unset_in_doc(doc, &parts);
}

fn unset_in_doc(doc: &mut Document, parts: &[&str]) {
    let (head, rest) = parts.split_first().expect("paths are never empty");
    if rest.is_empty() {
        doc.remove(*head);
        return;
    }
    match doc.get_mut(*head) {
        Some(Bson::Document(d)) => unset_in_doc(d, rest),
        Some(Bson::Array(items)) => unset_in_array(items, rest),
        _ => {}
    }
}

fn unset_in_array(items: &mut [Bson], parts: &[&str]) {
    let (head, rest) = parts.split_first().expect("paths are never empty");
    let Ok(i) = head.parse::<usize>() else { return };
    let Some(item) = items.get_mut(i) else { return };
    if rest.is_empty() {
        *item = Bson::Null;
        return;
    }
    match item {
        Bson::Document(d) => unset_in_doc(d, rest),
        Bson::Array(a) => unset_in_array(a, rest),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    #[test]
    fn set_unset_inc() {
        let u = Update::parse(
            &doc! {"$set": {"a.b": 1, "c.1": "x"}, "$inc": {"n": 2}, "$unset": {"z": ""}},
        )
        .unwrap();
        let out = u.apply(&doc! {"_id": 1, "n": 1, "c": [0], "z": 3}).unwrap();
        assert_eq!(out, doc! {"_id": 1, "n": 3, "c": [0, "x"], "a": {"b": 1}});
    }

    #[test]
    fn validation_happens_before_apply() {
        assert!(matches!(
            Update::parse(&doc! {"$foo": {"a": 1}}),
            Err(Error::Parse(_))
        ));
        assert!(Update::parse(&doc! {"$inc": {"a": "x"}}).is_err());
        assert!(Update::parse(&doc! {"$set": {"a": 1}, "$inc": {"a.b": 1}}).is_err());
        assert!(Update::parse(&doc! {"$set": {"a": 1}, "b": 2}).is_err());
        assert!(matches!(Update::parse(&doc! {}), Err(Error::Parse(_))));
        let u = Update::parse(&doc! {"$set": {"_id": 2}}).unwrap();
        assert!(u.apply(&doc! {"_id": 1}).is_err());
    }

    #[test]
    fn inc_promotes_on_overflow() {
        let u = Update::parse(&doc! {"$inc": {"n": 1}}).unwrap();
        let out = u.apply(&doc! {"_id": 1, "n": i32::MAX}).unwrap();
        assert_eq!(out.get("n"), Some(&Bson::Int64(i64::from(i32::MAX) + 1)));
    }
}
