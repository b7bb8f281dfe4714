//! Parsing and validation of update documents: every operator's operand is checked here,
//! before any document is touched, with MongoDB's messages where it has them
//! ("Cannot increment with non-numeric argument", "$pop expects 1 or -1", "Updating the path
//! 'a.b' would create a conflict at 'a'"). Errors are [`Error::Parse`], except the limits,
//! which come first and are [`Error::InvalidArgument`]: the update document's nesting
//! ([`MAX_QUERY_NESTING`], a replacement document's [`MAX_NESTING`]), checked iteratively
//! before anything else reads it, and every path's length ([`check_limits`]), checked before
//! the path is used. Applying an update recurses once per path component.

use super::{
    immutable_id, type_name, Action, ArrayFilters, FieldOp, PullCond, PushSort, PushSpec, Update,
};
use crate::document::{check_nesting, MAX_NESTING, MAX_QUERY_NESTING};
use crate::error::{Error, Result};
use crate::query::filter::Filter;
use crate::query::path::check_limits;
use crate::query::sort::SortSpec;
use bson::{Bson, Document};

/// Update operators of MongoDB that this build does not have.
const UNSUPPORTED_OPS: &[&str] = &["$bit"];

pub(super) fn parse(update: &Document, array_filters: &ArrayFilters) -> Result<Update> {
    check_nesting(update, MAX_QUERY_NESTING, "update")?;
    if update.is_empty() {
        return Err(Error::parse(
            "the update document is empty: give operators ({\"$set\": ...}) or a replacement document",
        ));
    }
    let dollar = update.keys().filter(|k| k.starts_with('$')).count();
    if dollar == 0 {
        check_nesting(update, MAX_NESTING, "the replacement document")?;
        check_replacement(update)?;
        array_filters.check_used(&[], update)?;
        return Ok(Update::Replace(update.clone()));
    }
    if dollar != update.len() {
        return Err(Error::parse(
            "an update document mixes operators ($set, ...) with plain fields",
        ));
    }
    let mut ops = Vec::new();
    for (name, operand) in update {
        let op: &'static str = match name.as_str() {
            "$set" => "$set",
            "$unset" => "$unset",
            "$inc" => "$inc",
            "$mul" => "$mul",
            "$min" => "$min",
            "$max" => "$max",
            "$rename" => "$rename",
            "$currentDate" => "$currentDate",
            "$setOnInsert" => "$setOnInsert",
            "$push" => "$push",
            "$addToSet" => "$addToSet",
            "$pop" => "$pop",
            "$pull" => "$pull",
            "$pullAll" => "$pullAll",
            n if UNSUPPORTED_OPS.contains(&n) => {
                return Err(Error::unsupported(format!(
                    "update operator {n} is not supported by this version"
                )))
            }
            n => return Err(Error::parse(format!("Unknown modifier: {n}"))),
        };
        let Bson::Document(fields) = operand else {
            return Err(Error::parse(format!(
                "Modifiers operate on fields but we found type {} instead. For example: {{$mod: {{<field>: ...}}}} not {{{op}: {}}}",
                type_name(operand),
                crate::document::json::bson_to_json_text(operand)
            )));
        };
        for (path, value) in fields {
            check_path(op, path)?;
            let action = parse_action(op, path, value)?;
            let touches_id = path == "_id" || path.starts_with("_id.");
            let id_ok = matches!(op, "$set" | "$setOnInsert");
            if touches_id && !id_ok {
                return Err(immutable_id());
            }
            if let Action::Rename(to) = &action {
                if to == "_id" || to.starts_with("_id.") {
                    return Err(immutable_id());
                }
            }
            ops.push(FieldOp {
                op,
                path: path.clone(),
                action,
            });
        }
    }
    check_conflicts(&ops)?;
    for op in &ops {
        for path in written_paths(op) {
            for part in path.split('.') {
                if let Some(id) = filtered_identifier(part) {
                    if !array_filters.has(id) {
                        return Err(Error::parse(format!(
                            "No array filter found for identifier '{id}' in path '{path}'"
                        )));
                    }
                }
            }
        }
    }
    let paths: Vec<&str> = ops.iter().map(|op| op.path.as_str()).collect();
    array_filters.check_used(&paths, update)?;
    Ok(Update::Ops(ops, array_filters.clone()))
}

/// The identifier of a filtered positional path component `$[<identifier>]` (`None` for
/// anything else, `$[]` included).
pub(super) fn filtered_identifier(part: &str) -> Option<&str> {
    part.strip_prefix("$[")
        .and_then(|p| p.strip_suffix(']'))
        .filter(|id| !id.is_empty())
}

fn check_replacement(doc: &Document) -> Result<()> {
    for k in doc.keys() {
        if k.contains('.') {
            return Err(Error::parse(format!(
                "the replacement document's field name '{k}' cannot contain '.'"
            )));
        }
    }
    Ok(())
}

fn check_path(op: &str, path: &str) -> Result<()> {
    check_limits(op, path)?;
    if path.is_empty() || path.split('.').any(str::is_empty) {
        return Err(Error::parse(format!(
            "{op}: the update path '{path}' contains an empty field name, which is not allowed"
        )));
    }
    let mut positional = 0;
    for part in path.split('.') {
        match part {
            "$" => positional += 1,
            "$[]" => {}
            p if filtered_identifier(p).is_some() => {}
            p if p.starts_with('$') => {
                return Err(Error::parse(format!(
                    "{op}: the update path '{path}' contains a field name starting with '$': {p}"
                )))
            }
            _ => {}
        }
    }
    if positional > 1 {
        return Err(Error::parse(format!(
            "{op}: too many positional (i.e. '$') elements found in path '{path}'"
        )));
    }
    if path.starts_with('$') {
        return Err(Error::parse(format!(
            "{op}: the update path '{path}' cannot start with a positional operator"
        )));
    }
    Ok(())
}

fn is_number(v: &Bson) -> bool {
    matches!(
        v,
        Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_)
    )
}

// The double is whole and guarded inside i64's range before the cast.
#[allow(clippy::cast_possible_truncation)]
fn as_int(v: &Bson) -> Option<i64> {
    match v {
        Bson::Int32(i) => Some(i64::from(*i)),
        Bson::Int64(i) => Some(*i),
        Bson::Double(d) if d.fract() == 0.0 && d.abs() < 9.2e18 => Some(*d as i64),
        _ => None,
    }
}

fn show(path: &str, v: &Bson) -> String {
    format!(
        "{{{path}: {}}}",
        crate::document::json::bson_to_json_text(v)
    )
}

fn parse_action(op: &str, path: &str, v: &Bson) -> Result<Action> {
    Ok(match op {
        "$set" => Action::Set(v.clone()),
        "$setOnInsert" => Action::SetOnInsert(v.clone()),
        "$unset" => Action::Unset,
        "$inc" | "$mul" => {
            if !is_number(v) {
                let verb = if op == "$inc" {
                    "increment"
                } else {
                    "multiply"
                };
                return Err(Error::parse(format!(
                    "Cannot {verb} with non-numeric argument: {}",
                    show(path, v)
                )));
            }
            if matches!(v, Bson::Decimal128(_)) {
                return Err(Error::unsupported(format!(
                    "{op} with a decimal128 operand ('{path}') is not supported by this version"
                )));
            }
            if op == "$inc" {
                Action::Inc(v.clone())
            } else {
                Action::Mul(v.clone())
            }
        }
        "$min" => Action::Min(v.clone()),
        "$max" => Action::Max(v.clone()),
        "$rename" => parse_rename(path, v)?,
        "$currentDate" => parse_current_date(path, v)?,
        "$push" => Action::Push(parse_push(path, v)?),
        "$addToSet" => Action::AddToSet(parse_add_to_set(path, v)?),
        "$pop" => match as_int(v) {
            Some(1) => Action::Pop(false),
            Some(-1) => Action::Pop(true),
            _ => {
                return Err(Error::parse(format!(
                    "$pop expects 1 or -1, found: {} (path '{path}')",
                    crate::document::json::bson_to_json_text(v)
                )))
            }
        },
        "$pull" => Action::Pull(parse_pull(path, v)?),
        "$pullAll" => match v {
            Bson::Array(items) => Action::PullAll(items.clone()),
            other => {
                return Err(Error::parse(format!(
                    "$pullAll requires an array argument but was given a {} (path '{path}')",
                    type_name(other)
                )))
            }
        },
        _ => {
            return Err(Error::Internal(format!(
                "update operator {op} has no parser"
            )))
        }
    })
}

fn parse_rename(path: &str, v: &Bson) -> Result<Action> {
    let Bson::String(to) = v else {
        return Err(Error::parse(format!(
            "The 'to' field for $rename must be a string: {}",
            show(path, v)
        )));
    };
    check_path("$rename", to)?;
    if to == path {
        return Err(Error::parse(format!(
            "The source and target field for $rename must differ: {}",
            show(path, v)
        )));
    }
    if to.starts_with(&format!("{path}.")) || path.starts_with(&format!("{to}.")) {
        return Err(Error::parse(format!(
            "The source and target field for $rename must not be on the same path: {}",
            show(path, v)
        )));
    }
    if path
        .split('.')
        .chain(to.split('.'))
        .any(|p| p.starts_with('$'))
    {
        return Err(Error::parse(format!(
            "$rename: positional operators are not allowed in '{path}' or '{to}'"
        )));
    }
    Ok(Action::Rename(to.clone()))
}

fn parse_current_date(path: &str, v: &Bson) -> Result<Action> {
    let bad = || {
        Error::parse(format!(
            "{} is not valid type for $currentDate. Please use a boolean ('true') or a $type expression ({{$type: 'timestamp/date'}})",
            show(path, v)
        ))
    };
    match v {
        Bson::Boolean(_) => Ok(Action::CurrentDate(false)),
        Bson::Document(d) if d.len() == 1 => match d.get("$type") {
            Some(Bson::String(t)) if t == "date" => Ok(Action::CurrentDate(false)),
            Some(Bson::String(t)) if t == "timestamp" => Ok(Action::CurrentDate(true)),
            Some(_) => Err(Error::parse(format!(
                "$currentDate: the '$type' string field is required to be 'date' or 'timestamp' (path '{path}')"
            ))),
            None => Err(bad()),
        },
        _ => Err(bad()),
    }
}

fn parse_push(path: &str, v: &Bson) -> Result<PushSpec> {
    let plain = PushSpec {
        each: vec![v.clone()],
        slice: None,
        sort: None,
        position: None,
    };
    let Bson::Document(d) = v else {
        return Ok(plain);
    };
    if !d.keys().any(|k| k.starts_with('$')) {
        return Ok(plain);
    }
    let Some(each) = d.get("$each") else {
        return Err(Error::parse(format!(
            "$push: modifiers such as $slice, $sort and $position need $each (path '{path}')"
        )));
    };
    let Bson::Array(each) = each else {
        return Err(Error::parse(format!(
            "The argument to $each in $push must be an array but it was of type: {} (path '{path}')",
            type_name(each)
        )));
    };
    let mut spec = PushSpec {
        each: each.clone(),
        slice: None,
        sort: None,
        position: None,
    };
    for (k, m) in d {
        match k.as_str() {
            "$each" => {}
            "$slice" => {
                spec.slice = Some(as_int(m).ok_or_else(|| {
                    Error::parse(format!(
                        "The value for $slice must be an integer value but was given type: {} (path '{path}')",
                        type_name(m)
                    ))
                })?)
            }
            "$position" => {
                spec.position = Some(as_int(m).ok_or_else(|| {
                    Error::parse(format!(
                        "The value for $position must be an integer value, not of type: {} (path '{path}')",
                        type_name(m)
                    ))
                })?)
            }
            "$sort" => spec.sort = Some(parse_push_sort(path, m)?),
            other => {
                return Err(Error::parse(format!(
                    "Unrecognized clause in $push: {other} (path '{path}')"
                )))
            }
        }
    }
    Ok(spec)
}

fn parse_push_sort(path: &str, m: &Bson) -> Result<PushSort> {
    let bad = || {
        Error::parse(format!(
            "The $sort is invalid: use 1/-1 to sort the whole element, or {{field:1/-1}} to sort embedded fields (path '{path}')"
        ))
    };
    match m {
        Bson::Document(d) if d.is_empty() => Err(bad()),
        Bson::Document(d) => Ok(PushSort::Fields(SortSpec::parse(d).map_err(
            |e| match e {
                // The path limits keep their own message.
                Error::InvalidArgument(_) => e,
                _ => bad(),
            },
        )?)),
        other => match as_int(other) {
            Some(1) => Ok(PushSort::Whole(true)),
            Some(-1) => Ok(PushSort::Whole(false)),
            _ => Err(bad()),
        },
    }
}

fn parse_add_to_set(path: &str, v: &Bson) -> Result<Vec<Bson>> {
    let Bson::Document(d) = v else {
        return Ok(vec![v.clone()]);
    };
    let Some(each) = d.get("$each") else {
        return Ok(vec![v.clone()]);
    };
    if d.len() != 1 {
        return Err(Error::parse(format!(
            "Found unexpected fields after $each in $addToSet (path '{path}')"
        )));
    }
    match each {
        Bson::Array(items) => Ok(items.clone()),
        other => Err(Error::parse(format!(
            "The argument to $each in $addToSet must be an array but it was of type {} (path '{path}')",
            type_name(other)
        ))),
    }
}

fn parse_pull(path: &str, v: &Bson) -> Result<PullCond> {
    match v {
        Bson::Document(d) if crate::query::filter::is_operator_doc(d) => Ok(PullCond::Conds(
            crate::query::filter::parse_operators(path, d)?,
        )),
        Bson::Document(d) => Ok(PullCond::Query(Filter::parse(d)?)),
        Bson::RegularExpression(_) => {
            let mut q = Document::new();
            q.insert("v", v.clone());
            match Filter::parse(&q)? {
                Filter::Field { conds, .. } => Ok(PullCond::Conds(conds)),
                _ => Err(Error::Internal(
                    "a one-field query did not parse to a field".into(),
                )),
            }
        }
        other => Ok(PullCond::Value(other.clone())),
    }
}

/// The paths an operator writes (for `$rename`: both the source and the target).
fn written_paths(op: &FieldOp) -> Vec<&str> {
    match &op.action {
        Action::Rename(to) => vec![op.path.as_str(), to.as_str()],
        _ => vec![op.path.as_str()],
    }
}

fn check_conflicts(ops: &[FieldOp]) -> Result<()> {
    let all: Vec<&str> = ops.iter().flat_map(written_paths).collect();
    for (i, a) in all.iter().enumerate() {
        for b in &all[i + 1..] {
            let clash =
                a == b || b.starts_with(&format!("{a}.")) || a.starts_with(&format!("{b}."));
            if clash {
                return Err(Error::parse(format!(
                    "Updating the path '{b}' would create a conflict at '{a}'"
                )));
            }
        }
    }
    Ok(())
}
