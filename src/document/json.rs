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
    let mut out = String::with_capacity(128);
    write_document(doc, &mut out);
    out
}

/// Any BSON value as relaxed Extended JSON text.
pub(crate) fn bson_to_json_text(value: &Bson) -> String {
    let mut out = String::with_capacity(32);
    write_value(value, &mut out);
    out
}

/// Appends a JSON string literal with serde_json's escaping: `"` and `\\`, the short forms
/// `\b \f \n \r \t`, other control characters as `\u00xx`, everything else as is.
fn write_str(s: &str, out: &mut String) {
    out.reserve(s.len() + 2);
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 0xf) as usize] as char);
        } else {
            out.push_str(esc);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

fn write_document(doc: &BsonDocument, out: &mut String) {
    out.push('{');
    for (i, (k, v)) in doc.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(k, out);
        out.push(':');
        write_value(v, out);
    }
    out.push('}');
}

/// Writes the relaxed Extended JSON of `v` directly for the common types (documents, arrays,
/// strings, integers, finite doubles, booleans, null) and through `bson`'s own conversion
/// for every other type, so the output equals `Bson::into_relaxed_extjson` (tested).
fn write_value(v: &Bson, out: &mut String) {
    use std::fmt::Write;
    match v {
        Bson::Document(d) => write_document(d, out),
        Bson::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, out);
            }
            out.push(']');
        }
        Bson::String(s) => write_str(s, out),
        Bson::Int32(i) => {
            let _ = write!(out, "{i}");
        }
        Bson::Int64(i) => {
            let _ = write!(out, "{i}");
        }
        Bson::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
        Bson::Null => out.push_str("null"),
        Bson::Double(d) if d.is_finite() => {
            out.push_str(&serde_json::Value::from(*d).to_string());
        }
        // Relaxed Extended JSON writes dates from 1970 to 9999 as ISO-8601 text and every
        // other date in the canonical `$numberLong` form (the bson crate clamps those).
        Bson::DateTime(dt) if !(0..=253_402_300_799_999).contains(&dt.timestamp_millis()) => {
            let _ = write!(
                out,
                "{{\"$date\":{{\"$numberLong\":\"{}\"}}}}",
                dt.timestamp_millis()
            );
        }
        other => out.push_str(&other.clone().into_relaxed_extjson().to_string()),
    }
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
    fn direct_writer_equals_bsons_relaxed_conversion() {
        let text = r#"{"_id":{"$oid":"507f1f77bcf86cd799439011"},"s":"a\"b\u0001é","i":-7,
            "l":{"$numberLong":"9007199254740993"},"d":1.0,"e":2.5e-300,"big":1e300,
            "nan":{"$numberDouble":"NaN"},"inf":{"$numberDouble":"-Infinity"},"t":true,"n":null,
            "dt":{"$date":"2024-01-02T03:04:05.123Z"},"old":{"$date":{"$numberLong":"-100"}},
            "dec":{"$numberDecimal":"1.50"},"bin":{"$binary":{"base64":"AQI=","subType":"04"}},
            "nested":{"a":[1,{"b":[[],{}]},"x"],"":0},"re":{"$regularExpression":{"pattern":"^a","options":"i"}},
            "ts":{"$timestamp":{"t":1,"i":2}},"min":{"$minKey":1},"max":{"$maxKey":1}}"#;
        let doc = parse_document(text).unwrap();
        let expected = Bson::Document(doc.clone())
            .into_relaxed_extjson()
            .to_string();
        assert_eq!(to_relaxed_json(&doc), expected);
    }

    #[test]
    fn dates_outside_1970_to_9999_keep_their_value() {
        for ms in [-100i64, 253_402_300_800_000, 300_000_000_000_000] {
            let doc = bson::doc! {"d": bson::DateTime::from_millis(ms)};
            let text = to_relaxed_json(&doc);
            assert_eq!(
                text,
                format!(r#"{{"d":{{"$date":{{"$numberLong":"{ms}"}}}}}}"#)
            );
            assert_eq!(parse_document(&text).unwrap(), doc);
        }
    }

    #[test]
    fn strings_are_escaped_as_serde_json_does() {
        let all: String = (0u8..0x80).map(char::from).chain("é€😀".chars()).collect();
        let mut out = String::new();
        write_str(&all, &mut out);
        assert_eq!(out, serde_json::Value::from(all.as_str()).to_string());
    }

    #[test]
    fn non_objects_are_refused_by_kind() {
        let e = parse_document("[1,2]").unwrap_err();
        assert!(e.to_string().contains("an array"), "{e}");
        assert!(parse_document("{\"a\":").is_err());
    }
}
