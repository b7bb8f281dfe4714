//! Relaxed MongoDB Extended JSON in and out. Input understands both relaxed and canonical
//! forms (`$oid`, `$date`, `$numberLong`, `$numberDecimal`, `$binary`, ...); output is
//! relaxed Extended JSON v2 with field order preserved.

use crate::error::{Error, Result};
use bson::{Bson, Document as BsonDocument};

/// Parses JSON text into a `serde_json::Value`, with a message that gives line and column.
pub(crate) fn parse_json(text: &str, what: &str) -> Result<serde_json::Value> {
    serde_json::from_str(text).map_err(|e| Error::parse(format!("malformed JSON in {what}: {e}")))
}

/// Parses text that must hold one JSON object into a BSON document.
pub(crate) fn parse_document(text: &str) -> Result<BsonDocument> {
    json_to_document(parse_json(text, "document")?, "document")
}

/// Converts a parsed JSON value that must be an object into a BSON document.
pub(crate) fn json_to_document(value: serde_json::Value, what: &str) -> Result<BsonDocument> {
    match value {
        serde_json::Value::Object(map) => BsonDocument::try_from(map)
            .map_err(|e| Error::parse(format!("invalid Extended JSON in {what}: {e}"))),
        other => Err(Error::parse(format!(
            "{what} must be a JSON object, found {}",
            json_kind(&other)
        ))),
    }
}

/// Converts any JSON value to BSON (Extended JSON wrappers understood).
pub(crate) fn json_to_bson(value: serde_json::Value) -> Result<Bson> {
    Bson::try_from(value).map_err(|e| Error::parse(format!("invalid Extended JSON: {e}")))
}

/// The name of a JSON value's kind, for messages.
pub(crate) fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// A document as relaxed Extended JSON text.
pub(crate) fn to_relaxed_json(doc: &BsonDocument) -> String {
    Bson::Document(doc.clone())
        .into_relaxed_extjson()
        .to_string()
}

/// Any BSON value as relaxed Extended JSON text.
pub(crate) fn bson_to_json_text(value: &Bson) -> String {
    value.clone().into_relaxed_extjson().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extended_json_wrappers_round_trip() {
        let text = r#"{"_id":{"$oid":"507f1f77bcf86cd799439011"},"n":{"$numberLong":"5"},"d":{"$date":"2024-01-02T03:04:05Z"},"x":{"$numberDecimal":"1.5"},"b":{"$binary":{"base64":"AQI=","subType":"00"}}}"#;
        let doc = parse_document(text).unwrap();
        assert!(matches!(doc.get("_id"), Some(Bson::ObjectId(_))));
        assert_eq!(doc.get("n"), Some(&Bson::Int64(5)));
        assert!(matches!(doc.get("d"), Some(Bson::DateTime(_))));
        assert!(matches!(doc.get("x"), Some(Bson::Decimal128(_))));
        assert!(matches!(doc.get("b"), Some(Bson::Binary(_))));
        // Relaxed output writes a small int64 as a plain number (MongoDB's relaxed format),
        // so it comes back as int32; every other wrapper round-trips exactly.
        let back = parse_document(&to_relaxed_json(&doc)).unwrap();
        assert_eq!(back.get("n"), Some(&Bson::Int32(5)));
        for k in ["_id", "d", "x", "b"] {
            assert_eq!(back.get(k), doc.get(k), "{k}");
        }
    }

    #[test]
    fn non_objects_are_refused_by_kind() {
        let e = parse_document("[1,2]").unwrap_err();
        assert!(e.to_string().contains("an array"), "{e}");
        assert!(parse_document("{\"a\":").is_err());
    }
}
