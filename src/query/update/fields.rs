//! Field helpers of the update operators: setting a dotted path (creating documents on the
//! way, indexing and null-padding arrays), unsetting one (array elements become `null`), and
//! the arithmetic of `$inc` / `$mul` with MongoDB's type promotion.

use super::type_name;
use crate::error::{Error, Result};
use crate::query::path::index_of;
use bson::{Bson, Document};

/// Largest array index an update may create (MongoDB pads with nulls up to it).
const MAX_PAD_INDEX: usize = 1_500_000;

/// Sets `path`, creating missing intermediate documents; numeric components index arrays
/// (padding with nulls, as MongoDB does).
pub(crate) fn set_path(doc: &mut Document, path: &str, value: Bson) -> Result<()> {
    let parts: Vec<&str> = path.split('.').collect();
    set_in_doc(doc, &parts, value, path)
}

fn set_in_doc(doc: &mut Document, parts: &[&str], value: Bson, path: &str) -> Result<()> {
    let Some((head, rest)) = parts.split_first() else {
        return Err(Error::Internal("an update path has no components".into()));
    };
    if rest.is_empty() {
        doc.insert(*head, value);
        return Ok(());
    }
    if !doc.contains_key(*head) {
        doc.insert(*head, Document::new());
    }
    match doc.get_mut(*head) {
        Some(child) => set_in_value(child, rest, value, path),
        None => Err(Error::Internal(
            "a field inserted a moment ago is gone".into(),
        )),
    }
}

fn set_in_value(target: &mut Bson, parts: &[&str], value: Bson, path: &str) -> Result<()> {
    match target {
        Bson::Document(d) => set_in_doc(d, parts, value, path),
        Bson::Array(items) => {
            let Some((head, rest)) = parts.split_first() else {
                return Err(Error::Internal("an update path has no components".into()));
            };
            let Some(i) = index_of(head) else {
                return Err(Error::parse(format!(
                    "Cannot create field '{head}' in element {{{}: [...]}} (path '{path}')",
                    parent_name(path, parts)
                )));
            };
            if i > MAX_PAD_INDEX {
                return Err(Error::parse(format!(
                    "can't backfill array to larger than {MAX_PAD_INDEX} elements (path '{path}')"
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
        other => Err(Error::parse(format!(
            "Cannot create field '{}' in element {{{}: {}}} (path '{path}')",
            parts[0],
            parent_name(path, parts),
            crate::document::json::bson_to_json_text(other)
        ))),
    }
}

/// The name of the component just before `rest` in `path`, for messages.
fn parent_name<'a>(path: &'a str, rest: &[&str]) -> &'a str {
    let all: Vec<&str> = path.split('.').collect();
    let at = all.len().saturating_sub(rest.len() + 1);
    all.get(at).copied().unwrap_or(path)
}

/// Removes `path` if present; an array element is set to null instead (MongoDB's rule).
pub(crate) fn unset_path(doc: &mut Document, path: &str) {
    let parts: Vec<&str> = path.split('.').collect();
    unset_in_doc(doc, &parts);
}

fn unset_in_doc(doc: &mut Document, parts: &[&str]) {
    let Some((head, rest)) = parts.split_first() else {
        return;
    };
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
    let Some((head, rest)) = parts.split_first() else {
        return;
    };
    let Some(item) = index_of(head).and_then(|i| items.get_mut(i)) else {
        return;
    };
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

/// The value at `path` for writing: documents and numeric array indexes only.
pub(crate) fn get_path<'a>(doc: &'a Document, path: &str) -> Option<&'a Bson> {
    crate::query::path::get_exact(doc, path)
}

fn to_f64(v: &Bson) -> Option<f64> {
    match v {
        Bson::Int32(i) => Some(f64::from(*i)),
        Bson::Int64(i) => Some(*i as f64),
        Bson::Double(d) => Some(*d),
        _ => None,
    }
}

/// `cur (+ or *) by` with MongoDB's promotion: int32 widens to int64 on overflow, any double
/// makes a double, int64 overflow is an error.
pub(crate) fn arith(op: &str, cur: &Bson, by: &Bson, path: &str, id: &str) -> Result<Bson> {
    let add = op == "$inc";
    let overflow = || {
        Error::parse(format!(
            "Failed to apply {op} operations to current value ({}) for document {{_id: {id}}}: integer overflow (path '{path}')",
            crate::document::json::bson_to_json_text(cur)
        ))
    };
    let i64_op = |x: i64, y: i64| {
        if add {
            x.checked_add(y)
        } else {
            x.checked_mul(y)
        }
    };
    Ok(match (cur, by) {
        (Bson::Int32(x), Bson::Int32(y)) => {
            let wide = i64_op(i64::from(*x), i64::from(*y)).ok_or_else(overflow)?;
            i32::try_from(wide).map_or(Bson::Int64(wide), Bson::Int32)
        }
        (Bson::Int32(_) | Bson::Int64(_), Bson::Int32(_) | Bson::Int64(_)) => {
            let (Some(x), Some(y)) = (int_of(cur), int_of(by)) else {
                return Err(overflow());
            };
            Bson::Int64(i64_op(x, y).ok_or_else(overflow)?)
        }
        _ => match (to_f64(cur), to_f64(by)) {
            (Some(x), Some(y)) => Bson::Double(if add { x + y } else { x * y }),
            _ if matches!(cur, Bson::Decimal128(_)) => {
                return Err(Error::unsupported(format!(
                    "{op} on the decimal128 field '{path}' is not supported by this version"
                )))
            }
            _ => {
                return Err(Error::parse(format!(
                    "Cannot apply {op} to a value of non-numeric type. {{_id: {id}}} has the field '{path}' of non-numeric type {}",
                    type_name(cur)
                )))
            }
        },
    })
}

fn int_of(v: &Bson) -> Option<i64> {
    match v {
        Bson::Int32(i) => Some(i64::from(*i)),
        Bson::Int64(i) => Some(*i),
        _ => None,
    }
}

/// Zero of the operand's numeric type (what `$mul` stores in a missing field).
pub(crate) fn zero_like(v: &Bson) -> Bson {
    match v {
        Bson::Int64(_) => Bson::Int64(0),
        Bson::Double(_) => Bson::Double(0.0),
        _ => Bson::Int32(0),
    }
}
