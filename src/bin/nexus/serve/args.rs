//! Reading a command document's fields with MongoDB's leniency (numbers of any numeric
//! type, booleans given as numbers) and its errors (a wrong type is 14 TypeMismatch /
//! 2 BadValue, naming the field).

use super::error::{CmdError, CmdResult};
use bson::{Bson, Document as BsonDocument};

/// The string value of `key` (the collection name of most commands).
pub fn string(body: &BsonDocument, key: &str) -> CmdResult<String> {
    match body.get(key) {
        Some(Bson::String(s)) => Ok(s.clone()),
        Some(_) => Err(CmdError::new(
            73,
            "InvalidNamespace",
            format!("'{key}' must be a string (a collection name)"),
        )),
        None => Err(CmdError::parse(format!("missing field '{key}'"))),
    }
}

/// An optional sub-document (`null` counts as absent).
pub fn doc(body: &BsonDocument, key: &str) -> CmdResult<Option<BsonDocument>> {
    match body.get(key) {
        None | Some(Bson::Null) => Ok(None),
        Some(Bson::Document(d)) => Ok(Some(d.clone())),
        Some(_) => Err(CmdError::new(
            14,
            "TypeMismatch",
            format!("'{key}' must be a document"),
        )),
    }
}

/// An optional boolean (numbers: non-zero is true).
pub fn boolean(body: &BsonDocument, key: &str) -> CmdResult<Option<bool>> {
    match body.get(key) {
        None | Some(Bson::Null) => Ok(None),
        Some(Bson::Boolean(b)) => Ok(Some(*b)),
        Some(Bson::Int32(n)) => Ok(Some(*n != 0)),
        Some(Bson::Int64(n)) => Ok(Some(*n != 0)),
        Some(Bson::Double(n)) => Ok(Some(*n != 0.0)),
        Some(_) => Err(CmdError::new(
            14,
            "TypeMismatch",
            format!("'{key}' must be a boolean"),
        )),
    }
}

/// An optional integer (int32, int64 or an integral double).
pub fn int(body: &BsonDocument, key: &str) -> CmdResult<Option<i64>> {
    match body.get(key) {
        None | Some(Bson::Null) => Ok(None),
        Some(v) => number(v)
            .map(Some)
            .ok_or_else(|| CmdError::new(14, "TypeMismatch", format!("'{key}' must be a number"))),
    }
}

/// A BSON number as an integer.
pub fn number(v: &Bson) -> Option<i64> {
    match v {
        Bson::Int32(n) => Some(i64::from(*n)),
        Bson::Int64(n) => Some(*n),
        #[expect(
            clippy::cast_possible_truncation,
            reason = "integral doubles within the i64 range only"
        )]
        Bson::Double(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Some(*f as i64),
        _ => None,
    }
}

/// A non-negative count option (`skip`, `limit` of count, `batchSize`).
pub fn count(body: &BsonDocument, key: &str) -> CmdResult<Option<u64>> {
    match int(body, key)? {
        None => Ok(None),
        Some(n) => u64::try_from(n)
            .map(Some)
            .map_err(|_| CmdError::bad_value(format!("'{key}' must not be negative"))),
    }
}

/// An array of documents (`documents`, `updates`, `deletes`, `pipeline`, `indexes`).
pub fn docs(body: &BsonDocument, key: &str) -> CmdResult<Vec<BsonDocument>> {
    match body.get(key) {
        Some(Bson::Array(items)) => items
            .iter()
            .map(|v| match v {
                Bson::Document(d) => Ok(d.clone()),
                _ => Err(CmdError::new(
                    14,
                    "TypeMismatch",
                    format!("every element of '{key}' must be a document"),
                )),
            })
            .collect(),
        Some(_) => Err(CmdError::new(
            14,
            "TypeMismatch",
            format!("'{key}' must be an array"),
        )),
        None => Err(CmdError::parse(format!("missing field '{key}'"))),
    }
}
