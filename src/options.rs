//! Reading option objects (`{"sync": "full", ...}`) strictly: every key must be known, every
//! value of the right type, and the message names the offending key.

use crate::document::json::parse_json;
use crate::error::{Error, Result};
use serde_json::{Map, Value};

/// A JSON options object being consumed key by key; [`OptionReader::finish`] rejects leftovers.
pub(crate) struct OptionReader {
    map: Map<String, Value>,
    what: &'static str,
}

impl OptionReader {
    /// Parses `text` (None or empty means no options) as a JSON object.
    pub(crate) fn parse(text: Option<&str>, what: &'static str) -> Result<Self> {
        let map = match text.map(str::trim) {
            None | Some("") => Map::new(),
            Some(t) => match parse_json(t, what)? {
                Value::Object(m) => m,
                Value::Null => Map::new(),
                other => {
                    return Err(Error::invalid(format!(
                        "{what} must be a JSON object, found {}",
                        crate::document::json::json_kind(&other)
                    )))
                }
            },
        };
        Ok(Self { map, what })
    }

    fn wrong(&self, key: &str, wanted: &str) -> Error {
        Error::invalid(format!("{}: option '{key}' must be {wanted}", self.what))
    }

    /// Removes and returns a raw value.
    pub(crate) fn take(&mut self, key: &str) -> Option<Value> {
        self.map.remove(key).filter(|v| !v.is_null())
    }

    pub(crate) fn bool(&mut self, key: &str) -> Result<Option<bool>> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(_) => Err(self.wrong(key, "true or false")),
        }
    }

    // The float-to-int casts below are guarded to whole numbers inside the target's range.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    pub(crate) fn u64(&mut self, key: &str) -> Result<Option<u64>> {
        match self.take(key) {
            None => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) => Ok(Some(n)),
                None => match v.as_f64() {
                    Some(f) if f >= 0.0 && f.fract() == 0.0 && f < 1.8e19 => Ok(Some(f as u64)),
                    _ => Err(self.wrong(key, "a non-negative integer")),
                },
            },
        }
    }

    // The float-to-int cast below is guarded to a whole number inside i64's range.
    #[allow(clippy::cast_possible_truncation)]
    pub(crate) fn i64(&mut self, key: &str) -> Result<Option<i64>> {
        match self.take(key) {
            None => Ok(None),
            Some(v) => match v.as_i64() {
                Some(n) => Ok(Some(n)),
                None => match v.as_f64() {
                    Some(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Ok(Some(f as i64)),
                    _ => Err(self.wrong(key, "an integer")),
                },
            },
        }
    }

    pub(crate) fn string(&mut self, key: &str) -> Result<Option<String>> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.wrong(key, "a string")),
        }
    }

    /// A value that must be a JSON object, converted to BSON.
    pub(crate) fn document(&mut self, key: &str) -> Result<Option<bson::Document>> {
        match self.take(key) {
            None => Ok(None),
            Some(v @ Value::Object(_)) => crate::document::json::json_to_document(v, key).map(Some),
            Some(_) => Err(self.wrong(key, "a JSON object")),
        }
    }

    /// Fails on the first key nobody consumed.
    pub(crate) fn finish(self) -> Result<()> {
        match self.map.keys().next() {
            None => Ok(()),
            Some(k) => Err(Error::invalid(format!(
                "{}: unknown option '{k}'",
                self.what
            ))),
        }
    }
}
