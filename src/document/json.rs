//! Relaxed MongoDB Extended JSON in and out. Input understands both relaxed and canonical
//! forms (`$oid`, `$date`, `$numberLong`, `$numberDecimal`, `$binary`, ...); output is
//! relaxed Extended JSON v2 with field order preserved.

use super::body::RawElements;
use super::{MAX_NESTING, MAX_QUERY_NESTING};
use crate::error::{Error, Result};
use bson::{Bson, Document as BsonDocument};

pub(crate) use extjson::MAX_WRAPPER_NESTING;

/// Refuses JSON text (named `what`) that nests objects and arrays deeper than
/// [`MAX_QUERY_NESTING`], before any parser sees it: every parser here recurses once per
/// level (at `serde_json`'s own limit, 128 levels, its stack use is already large).
fn check_text_nesting(text: &str, what: &str) -> Result<()> {
    if scan::nesting_within(text.as_bytes(), MAX_QUERY_NESTING) {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "JSON in {what} nests deeper than {MAX_QUERY_NESTING} levels of objects and arrays"
        )))
    }
}

/// Whether JSON text nests objects and arrays no deeper than `max` levels (strings skipped;
/// the text need not be valid). Iterative: run before a parser that recurses per level.
pub(crate) fn text_nesting_within(text: &[u8], max: usize) -> bool {
    scan::nesting_within(text, max)
}

/// JSON text (any value) as BSON, Extended JSON wrappers read: `None` when the text is not
/// JSON, nests deeper than [`MAX_QUERY_NESTING`], or holds a bad wrapper. Parsing is
/// `serde_json`'s, the conversion the bson crate's reading without its recursion.
pub(crate) fn json_text_to_bson(text: &str) -> Option<Bson> {
    json_to_bson(parse_json(text, "value").ok()?).ok()
}

/// Whether the JSON text of a document to store (of `extra` documents nested in arrays:
/// `insert_many`'s array is 1) can be within [`MAX_NESTING`]: a wrapper such as
/// `{"$dbPointer": {"$ref": .., "$id": {"$oid": ..}}}` is up to [`WRAPPER_SLACK`] levels of
/// JSON but none of BSON, so deeper text is surely refused and need not be parsed; the
/// exact check is made on the BSON.
pub(crate) fn document_text_may_fit(text: &str, extra: usize) -> bool {
    scan::nesting_within(text.as_bytes(), MAX_NESTING + WRAPPER_SLACK + extra)
}

/// The most levels of JSON an Extended JSON wrapper adds to a value that is no level of BSON.
const WRAPPER_SLACK: usize = 3;

/// Parses JSON text into a `serde_json::Value`, with a message that gives line and column.
/// Text nested deeper than [`MAX_QUERY_NESTING`] is refused first
/// ([`Error::InvalidArgument`]).
pub(crate) fn parse_json(text: &str, what: &str) -> Result<serde_json::Value> {
    check_text_nesting(text, what)?;
    serde_json::from_str(text).map_err(|e| Error::parse(format!("malformed JSON in {what}: {e}")))
}

/// Parses text that must hold one JSON object into a BSON document.
pub(crate) fn parse_document(text: &str) -> Result<BsonDocument> {
    parse_json_document(text, "document")
}

/// Parses text that must hold one JSON object into a BSON document, reading the text straight
/// into BSON (see [`direct`]). The result is exactly `json_to_document(parse_json(text, what)?,
/// what)`: on any error the text is parsed again that way, so messages (and which of several
/// problems is reported) are unchanged.
pub(crate) fn parse_json_document(text: &str, what: &str) -> Result<BsonDocument> {
    match direct::document(text) {
        Ok(doc) => Ok(doc),
        Err(_) => json_to_document(parse_json(text, what)?, what),
    }
}

/// Parses text that must hold a JSON array of objects into BSON documents, straight from the
/// text. `None` when the text is not that (or holds anything [`direct`] declines); callers
/// then take the `serde_json::Value` path for its exact message.
pub(crate) fn parse_document_array(text: &str) -> Option<Vec<BsonDocument>> {
    direct::documents(text).ok()
}

/// The top-level elements of the text's one JSON object written straight as BSON bytes: the
/// same bytes `parse_json_document` then `to_vec` would give. The byte scanner ([`scan`])
/// reads plain JSON; what it declines goes to the `serde_json`-driven writer
/// ([`direct::elements`]). `None` when the text is not that, or holds anything the byte
/// writer declines; callers then take the `bson::Document` path.
pub(crate) fn raw_elements(text: &str) -> Option<RawElements> {
    scan::elements(text)
        .or_else(|| document_text_may_fit(text, 0).then(|| direct::elements(text).ok())?)
}

/// [`raw_elements`] for each object of a JSON array of objects; `None` when any is declined.
pub(crate) fn raw_element_array(text: &str) -> Option<Vec<RawElements>> {
    scan::element_array(text)
        .or_else(|| document_text_may_fit(text, 1).then(|| direct::element_array(text).ok())?)
}

/// Converts a parsed JSON value that must be an object into a BSON document: the bson
/// crate's reading (`Document::try_from`), without its recursion ([`extjson`]).
pub(crate) fn json_to_document(value: serde_json::Value, what: &str) -> Result<BsonDocument> {
    match value {
        serde_json::Value::Object(map) => {
            extjson::to_document(map).map_err(|e| refused(e, &format!(" in {what}")))
        }
        other => Err(Error::parse(format!(
            "{what} must be a JSON object, found {}",
            json_kind(&other)
        ))),
    }
}

/// Converts any JSON value to BSON (Extended JSON wrappers understood), as
/// `Bson::try_from` does, without its recursion ([`extjson`]).
pub(crate) fn json_to_bson(value: serde_json::Value) -> Result<Bson> {
    extjson::to_bson(value).map_err(|e| refused(e, ""))
}

fn refused(e: extjson::Refused, place: &str) -> Error {
    match e {
        extjson::Refused::Bson(e) => Error::parse(format!("invalid Extended JSON{place}: {e}")),
        extjson::Refused::TooDeep => Error::invalid(format!(
            "invalid Extended JSON{place}: a wrapper object ($code with its $scope) nests deeper \
             than {MAX_WRAPPER_NESTING} levels"
        )),
    }
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

mod direct;

mod extjson;
mod scan;
#[cfg(test)]
mod tests;
mod write;

pub(crate) use write::{
    append_relaxed_json, bson_to_json_text, raw_to_relaxed_json, to_relaxed_json,
};

#[cfg(test)]
pub(super) mod differential_tests;

/// The fuzz target `json_differential` (`crate::fuzzing`): every reader of JSON text held to
/// the reference (`serde_json`, then the Extended JSON conversion), as the differential tests
/// do on hand-written texts. Panics on a disagreement.
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_differential(text: &str) {
    let want = parse_json(text, "document").and_then(|v| json_to_document(v, "document"));
    // The public reader: same document, or an error with the same message.
    match (&want, &parse_document(text)) {
        (Ok(w), Ok(g)) => assert_eq!(w.to_vec().ok(), g.to_vec().ok(), "{text:?}"),
        (Err(w), Err(g)) => assert_eq!(w.to_string(), g.to_string(), "{text:?}"),
        (w, g) => panic!("{text:?}: reference {w:?}, parse_document {g:?}"),
    }
    // The faster readers may decline valid text (the caller falls back), but never accept
    // what the reference refuses, and never read a different value.
    let same_bytes = |reader: &str, raw: RawElements| {
        let w = want
            .as_ref()
            .unwrap_or_else(|e| panic!("{reader} accepted {text:?}; reference: {e}"));
        let mut got = raw.buf;
        got.push(0);
        let len = u32::try_from(got.len()).expect("a document under 4 GiB");
        got[0..4].copy_from_slice(&len.to_le_bytes());
        assert_eq!(
            w.to_vec().ok(),
            Some(got),
            "{reader} read {text:?} differently"
        );
    };
    if let Ok(d) = direct::document(text) {
        let w = want
            .as_ref()
            .unwrap_or_else(|e| panic!("direct::document accepted {text:?}; reference: {e}"));
        assert_eq!(
            w.to_vec().ok(),
            d.to_vec().ok(),
            "direct::document on {text:?}"
        );
    }
    if let Some(raw) = scan::elements(text) {
        same_bytes("the byte scanner", raw);
    }
    if let Ok(raw) = direct::elements(text) {
        same_bytes("direct::elements", raw);
    }
    if let Some(raw) = raw_elements(text) {
        same_bytes("raw_elements", raw);
    }
    // Arrays of documents (insert_many's text), against the reference reading of each item.
    let want_array = match parse_json(text, "json_array") {
        Ok(serde_json::Value::Array(items)) => items
            .into_iter()
            .map(|v| json_to_document(v, "json_array element").ok())
            .collect::<Option<Vec<_>>>(),
        _ => None,
    };
    let array_bytes =
        |docs: &[BsonDocument]| docs.iter().map(|d| d.to_vec().ok()).collect::<Vec<_>>();
    if let Some(got) = parse_document_array(text) {
        let w = want_array
            .as_ref()
            .unwrap_or_else(|| panic!("parse_document_array accepted {text:?}"));
        assert_eq!(array_bytes(w), array_bytes(&got), "array {text:?}");
    }
    if let Some(got) = scan::element_array(text) {
        let w = want_array
            .as_ref()
            .unwrap_or_else(|| panic!("scan::element_array accepted {text:?}"));
        assert_eq!(w.len(), got.len(), "array {text:?}");
        for (w, raw) in w.iter().zip(got) {
            let mut b = raw.buf;
            b.push(0);
            let len = u32::try_from(b.len()).expect("a document under 4 GiB");
            b[0..4].copy_from_slice(&len.to_le_bytes());
            assert_eq!(w.to_vec().ok(), Some(b), "scan::element_array on {text:?}");
        }
    }
}
