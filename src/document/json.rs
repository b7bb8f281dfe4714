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

/// JSON text straight to BSON, without a `serde_json::Value` tree in between.
///
/// The reference semantics are the `serde_json::Value` path: `serde_json` parses the text, then
/// the bson crate's reading converts it (top-level objects as `Document::try_from`, which
/// reads every key literally; nested objects as `Bson::try_from`, which reads Extended JSON
/// wrappers), done without that conversion's recursion by [`extjson`]. Text nested deeper
/// than [`MAX_QUERY_NESTING`](super::MAX_QUERY_NESTING) is refused (both paths) before it is
/// parsed. This module gives the same document for every text that path accepts, and
/// declines (an `Err`) otherwise:
///
/// * The same `serde_json::Deserializer` reads the text, so the grammar, string escapes, number
///   parsing (`float_roundtrip`) and the trailing-characters check are the ones the `Value`
///   path has.
/// * Numbers map as `Bson::try_from(Value::Number)` does: an integer that fits `i32` is
///   `Int32`, else `Int64` when it fits `i64`, else (a `u64` above `i64::MAX`) the `f64`
///   nearest it; a float is a `Double` (a non-finite one, which serde_json never produces,
///   would be `Null` as in `serde_json::Value`).
/// * Duplicate keys keep the first key's position and the last value, as `serde_json::Map`
///   (an `IndexMap`) and `bson::Document` both do on insert.
/// * A nested object whose first key is one that bson's conversion looks for
///   ([`direct::WRAPPER_KEYS`] or `$scope`) is collected into a small `serde_json::Map` and
///   read as the `Value` path reads it (bson's own conversion for a wrapper), so every
///   wrapper, relaxed or canonical, keeps bson's own semantics.
///   A nested object with any other first key is built directly; should one of its later
///   keys be a wrapper key, bson would refuse the object (each wrapper allows only its own
///   `$` keys, and `$scope` beside `$code`), so this module declines.
/// * Any error is only a signal to take the `Value` path, which then reports the error it
///   always did (or, when an earlier duplicate key's value was invalid but later replaced,
///   accepts the text exactly as before).
///
/// The byte writer ([`direct::elements`]) writes the same document as BSON bytes instead of
/// building it, with the same reading of every value. It declines (and the caller builds the
/// `bson::Document` instead) whenever the bytes might differ from that document's encoding
/// or the document would be refused later: a key repeated at any level (the document keeps
/// the first position and last value), a key holding NUL (BSON keys are C strings; the
/// encoder refuses it), nesting beyond `MAX_NESTING` (the depth check reports it), a
/// wrapper whose conversion gives a document or array (its depth is not tracked), or a
/// nested document beyond the size limit.
mod direct {
    use super::RawElements;
    use crate::document::body::index_key;
    use crate::document::{MAX_DOCUMENT_BYTES, MAX_NESTING, MAX_QUERY_NESTING};
    use bson::{Bson, Document as BsonDocument};
    use serde::de::{self, DeserializeSeed, Deserializer as _, MapAccess, SeqAccess, Visitor};
    use std::borrow::Cow;
    use std::fmt;

    /// The keys whose presence anywhere in an object makes bson's `TryFrom<Map> for Bson`
    /// read the object as an Extended JSON wrapper (the `contains_key` checks of bson 3.1).
    pub(super) const WRAPPER_KEYS: [&str; 16] = [
        "$oid",
        "$symbol",
        "$regularExpression",
        "$numberInt",
        "$numberLong",
        "$numberDouble",
        "$numberDecimal",
        "$binary",
        "$uuid",
        "$code",
        "$timestamp",
        "$date",
        "$minKey",
        "$maxKey",
        "$dbPointer",
        "$undefined",
    ];

    pub(super) fn is_wrapper_key(k: &str) -> bool {
        k.starts_with('$') && WRAPPER_KEYS.contains(&k)
    }

    /// Text nested deeper than [`MAX_QUERY_NESTING`] is declined before it is parsed (the
    /// caller's reference path then refuses it with the limit named).
    fn nesting_ok(text: &str) -> serde_json::Result<()> {
        if super::scan::nesting_within(text.as_bytes(), MAX_QUERY_NESTING) {
            Ok(())
        } else {
            Err(decline("nested too deep"))
        }
    }

    /// An object collected for bson's conversion (a possible wrapper), read as bson reads it
    /// but without its recursion ([`super::extjson`]); declined when it is a wrapper nested
    /// deeper than [`super::MAX_WRAPPER_NESTING`] (the reference path then says so).
    fn wrapper<E: de::Error>(obj: serde_json::Map<String, serde_json::Value>) -> Result<Bson, E> {
        match super::extjson::to_bson(serde_json::Value::Object(obj)) {
            Ok(v) => Ok(v),
            Err(super::extjson::Refused::Bson(e)) => Err(de::Error::custom(e)),
            Err(super::extjson::Refused::TooDeep) => Err(decline("a wrapper nested too deep")),
        }
    }

    /// One JSON object (the whole text) as a document, keys read literally.
    pub(super) fn document(text: &str) -> serde_json::Result<BsonDocument> {
        nesting_ok(text)?;
        let mut de = serde_json::Deserializer::from_str(text);
        let doc = TopDocument.deserialize(&mut de)?;
        de.end()?;
        Ok(doc)
    }

    /// A JSON array of objects (the whole text), each read as [`document`] reads one.
    pub(super) fn documents(text: &str) -> serde_json::Result<Vec<BsonDocument>> {
        nesting_ok(text)?;
        let mut de = serde_json::Deserializer::from_str(text);
        let docs = (&mut de).deserialize_seq(Documents)?;
        de.end()?;
        Ok(docs)
    }

    /// A top-level object: `Document::try_from(Map)`, no wrapper reading at this level.
    struct TopDocument;

    impl<'de> DeserializeSeed<'de> for TopDocument {
        type Value = BsonDocument;

        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<BsonDocument, D::Error> {
            d.deserialize_map(self)
        }
    }

    impl<'de> Visitor<'de> for TopDocument {
        type Value = BsonDocument;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<BsonDocument, A::Error> {
            let mut doc = BsonDocument::new();
            while let Some(key) = map.next_key::<String>()? {
                let value = map.next_value_seed(AnyValue)?;
                doc.insert(key, value);
            }
            Ok(doc)
        }
    }

    struct Documents;

    impl<'de> Visitor<'de> for Documents {
        type Value = Vec<BsonDocument>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON array of objects")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut docs = Vec::with_capacity(seq.size_hint().unwrap_or(0));
            while let Some(doc) = seq.next_element_seed(TopDocument)? {
                docs.push(doc);
            }
            Ok(docs)
        }
    }

    /// Any value below the top level: `Bson::try_from(serde_json::Value)`.
    struct AnyValue;

    impl<'de> DeserializeSeed<'de> for AnyValue {
        type Value = Bson;

        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Bson, D::Error> {
            d.deserialize_any(self)
        }
    }

    fn int(i: i64) -> Bson {
        match i32::try_from(i) {
            Ok(small) => Bson::Int32(small),
            Err(_) => Bson::Int64(i),
        }
    }

    impl<'de> Visitor<'de> for AnyValue {
        type Value = Bson;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON value")
        }

        fn visit_unit<E>(self) -> Result<Bson, E> {
            Ok(Bson::Null)
        }

        fn visit_bool<E>(self, b: bool) -> Result<Bson, E> {
            Ok(Bson::Boolean(b))
        }

        fn visit_i64<E>(self, i: i64) -> Result<Bson, E> {
            Ok(int(i))
        }

        fn visit_u64<E>(self, u: u64) -> Result<Bson, E> {
            Ok(match i64::try_from(u) {
                Ok(i) => int(i),
                Err(_) => Bson::Double(u as f64),
            })
        }

        fn visit_f64<E>(self, f: f64) -> Result<Bson, E> {
            Ok(if f.is_finite() {
                Bson::Double(f)
            } else {
                Bson::Null
            })
        }

        fn visit_str<E>(self, s: &str) -> Result<Bson, E> {
            Ok(Bson::String(s.to_owned()))
        }

        fn visit_string<E>(self, s: String) -> Result<Bson, E> {
            Ok(Bson::String(s))
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Bson, A::Error> {
            let mut items = Vec::new();
            while let Some(item) = seq.next_element_seed(AnyValue)? {
                items.push(item);
            }
            Ok(Bson::Array(items))
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Bson, A::Error> {
            let Some(first) = map.next_key::<String>()? else {
                return Ok(Bson::Document(BsonDocument::new()));
            };
            if is_wrapper_key(&first) || first == "$scope" {
                // A (possible) wrapper: bson's own conversion on this one small object.
                let mut obj = serde_json::Map::new();
                obj.insert(first, map.next_value()?);
                while let Some((k, v)) = map.next_entry()? {
                    obj.insert(k, v);
                }
                return wrapper(obj);
            }
            let mut doc = BsonDocument::new();
            doc.insert(first, map.next_value_seed(AnyValue)?);
            while let Some(key) = map.next_key::<String>()? {
                if is_wrapper_key(&key) {
                    return Err(de::Error::custom(format_args!(
                        "{key} after other keys: not a valid wrapper"
                    )));
                }
                let value = map.next_value_seed(AnyValue)?;
                doc.insert(key, value);
            }
            Ok(Bson::Document(doc))
        }
    }

    // ---- straight to BSON bytes -----------------------------------------------------------

    /// One JSON object (the whole text) as BSON elements, keys read literally: the bytes of
    /// [`document`]'s result. Declines as the module documentation says.
    pub(super) fn elements(text: &str) -> serde_json::Result<RawElements> {
        let mut de = serde_json::Deserializer::from_str(text);
        let mut w = Writer {
            out: Vec::with_capacity(text.len() + text.len() / 2 + 16),
            keys: Vec::new(),
        };
        let raw = TopElements { w: &mut w }.deserialize(&mut de)?;
        de.end()?;
        Ok(raw)
    }

    /// A JSON array of objects (the whole text), each written as [`elements`] writes one.
    pub(super) fn element_array(text: &str) -> serde_json::Result<Vec<RawElements>> {
        let mut de = serde_json::Deserializer::from_str(text);
        let mut w = Writer {
            out: Vec::new(),
            keys: Vec::new(),
        };
        let docs = (&mut de).deserialize_seq(ElementArray { w: &mut w })?;
        de.end()?;
        Ok(docs)
    }

    /// Up to this many keys an object's new key is compared with each earlier one; beyond
    /// it, with a set of their hashes (a collision only declines).
    const SMALL_OBJECT: usize = 16;

    /// The bytes being written and the keys of the objects being written.
    pub(super) struct Writer {
        pub(super) out: Vec<u8>,
        /// `(start, len)` in `out` of the keys written so far in each open object, the
        /// innermost object's last.
        pub(super) keys: Vec<(usize, usize)>,
    }

    /// The duplicate check of one open object: its first entry in `Writer::keys`, and the
    /// hashes of its keys once it has more than [`SMALL_OBJECT`].
    pub(super) struct Keys {
        pub(super) base: usize,
        hashes: Option<std::collections::HashSet<u64>>,
    }

    fn key_hash(key: &[u8]) -> u64 {
        use std::hash::{BuildHasher, BuildHasherDefault};
        BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(key)
    }

    fn decline<E: de::Error>(why: &str) -> E {
        E::custom(format_args!("declined: {why}"))
    }

    impl Writer {
        pub(super) fn open_keys(&self) -> Keys {
            Keys {
                base: self.keys.len(),
                hashes: None,
            }
        }

        /// Writes a placeholder type byte and the key; declines a key with a NUL or one
        /// already in the object. `may_hold_nul`: false when the caller knows the key has no
        /// NUL (read from JSON without escapes, where a control character is an error).
        pub(super) fn key<E: de::Error>(
            &mut self,
            key: &str,
            open: &mut Keys,
            may_hold_nul: bool,
        ) -> Result<(), E> {
            let k = key.as_bytes();
            if may_hold_nul && k.contains(&0) {
                return Err(decline("NUL in a key"));
            }
            let earlier = &self.keys[open.base..];
            match &mut open.hashes {
                Some(set) => {
                    if !set.insert(key_hash(k)) {
                        return Err(decline("repeated key"));
                    }
                }
                None => {
                    // Length and first byte first: most keys differ there, without a
                    // call to compare the rest.
                    let same = |&(s, l): &(usize, usize)| {
                        l == k.len() && (l == 0 || self.out[s] == k[0]) && &self.out[s..s + l] == k
                    };
                    if earlier.iter().any(same) {
                        return Err(decline("repeated key"));
                    }
                    if earlier.len() >= SMALL_OBJECT {
                        let mut set: std::collections::HashSet<u64> = earlier
                            .iter()
                            .map(|&(s, l)| key_hash(&self.out[s..s + l]))
                            .collect();
                        if !set.insert(key_hash(k)) {
                            return Err(decline("repeated key"));
                        }
                        open.hashes = Some(set);
                    }
                }
            }
            self.out.push(0);
            let start = self.out.len();
            self.out.extend_from_slice(k);
            self.out.push(0);
            if open.hashes.is_none() {
                self.keys.push((start, k.len()));
            }
            Ok(())
        }

        /// Writes one element of an object at nesting level `depth`; returns where it starts.
        fn element<'de, A: MapAccess<'de>>(
            &mut self,
            map: &mut A,
            key: &str,
            open: &mut Keys,
            depth: usize,
        ) -> Result<usize, A::Error> {
            let start = self.out.len();
            self.key(key, open, true)?;
            let kind = map.next_value_seed(Value { w: self, depth })?;
            self.out[start] = kind;
            Ok(start)
        }

        /// Starts a nested document or array: its length placeholder's position.
        pub(super) fn open(&mut self) -> usize {
            let at = self.out.len();
            self.out.extend_from_slice(&[0; 4]);
            at
        }

        /// Ends the nested document or array opened at `at`.
        pub(super) fn close<E: de::Error>(&mut self, at: usize) -> Result<(), E> {
            self.out.push(0);
            let len = self.out.len() - at;
            if len > MAX_DOCUMENT_BYTES {
                return Err(decline("over the size limit"));
            }
            let len = len as i32; // within 16 MiB
            self.out[at..at + 4].copy_from_slice(&len.to_le_bytes());
            Ok(())
        }

        pub(super) fn int(&mut self, i: i64) -> u8 {
            match i32::try_from(i) {
                Ok(small) => {
                    self.out.extend_from_slice(&small.to_le_bytes());
                    0x10
                }
                Err(_) => {
                    self.out.extend_from_slice(&i.to_le_bytes());
                    0x12
                }
            }
        }

        pub(super) fn double(&mut self, f: f64) -> u8 {
            self.out.extend_from_slice(&f.to_le_bytes());
            0x01
        }

        /// A value from bson's own conversion (a wrapper), encoded by bson.
        fn bson<E: de::Error>(&mut self, v: Bson) -> Result<u8, E> {
            if matches!(v, Bson::Document(_) | Bson::Array(_)) {
                return Err(decline("a wrapper gave a document or array"));
            }
            let mut one = BsonDocument::new();
            one.insert("", v);
            let bytes = one.to_vec().map_err(E::custom)?;
            // [length][type]["" NUL][value][NUL]
            let kind = bytes[4];
            self.out.extend_from_slice(&bytes[6..bytes.len() - 1]);
            Ok(kind)
        }
    }

    /// An object key, borrowed from the text when it has no escapes.
    struct Key;

    impl<'de> DeserializeSeed<'de> for Key {
        type Value = Cow<'de, str>;

        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_str(self)
        }
    }

    impl<'de> Visitor<'de> for Key {
        type Value = Cow<'de, str>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a key")
        }

        fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
            Ok(Cow::Borrowed(s))
        }

        fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
            Ok(Cow::Owned(s.to_owned()))
        }

        fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
            Ok(Cow::Owned(s))
        }
    }

    /// A top-level object: keys read literally, `_id`'s element located.
    struct TopElements<'w> {
        w: &'w mut Writer,
    }

    impl<'de> DeserializeSeed<'de> for TopElements<'_> {
        type Value = RawElements;

        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<RawElements, D::Error> {
            d.deserialize_map(self)
        }
    }

    impl<'de> Visitor<'de> for TopElements<'_> {
        type Value = RawElements;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawElements, A::Error> {
            let w = self.w;
            if w.out.capacity() == 0 {
                w.out.reserve(256);
            }
            w.out.extend_from_slice(&[0; 4]);
            let mut open = w.open_keys();
            let mut id = None;
            while let Some(key) = map.next_key_seed(Key)? {
                let start = w.element(&mut map, &key, &mut open, 1)?;
                if key == "_id" {
                    id = Some((start, w.out.len()));
                }
            }
            w.keys.truncate(open.base);
            Ok(RawElements {
                buf: std::mem::take(&mut w.out),
                id,
            })
        }
    }

    struct ElementArray<'w> {
        w: &'w mut Writer,
    }

    impl<'de> Visitor<'de> for ElementArray<'_> {
        type Value = Vec<RawElements>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON array of objects")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut docs = Vec::with_capacity(seq.size_hint().unwrap_or(0));
            while let Some(doc) = seq.next_element_seed(TopElements { w: &mut *self.w })? {
                docs.push(doc);
            }
            Ok(docs)
        }
    }

    /// A value inside a document or array at nesting level `depth` (the top level is 1):
    /// writes its bytes and returns its BSON type.
    struct Value<'w> {
        w: &'w mut Writer,
        depth: usize,
    }

    impl<'de> DeserializeSeed<'de> for Value<'_> {
        type Value = u8;

        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<u8, D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Value<'_> {
        type Value = u8;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON value")
        }

        fn visit_unit<E>(self) -> Result<u8, E> {
            Ok(0x0A)
        }

        fn visit_bool<E>(self, b: bool) -> Result<u8, E> {
            self.w.out.push(u8::from(b));
            Ok(0x08)
        }

        fn visit_i64<E>(self, i: i64) -> Result<u8, E> {
            Ok(self.w.int(i))
        }

        fn visit_u64<E>(self, u: u64) -> Result<u8, E> {
            Ok(match i64::try_from(u) {
                Ok(i) => self.w.int(i),
                Err(_) => self.w.double(u as f64),
            })
        }

        fn visit_f64<E>(self, f: f64) -> Result<u8, E> {
            Ok(if f.is_finite() {
                self.w.double(f)
            } else {
                0x0A
            })
        }

        fn visit_str<E: de::Error>(self, s: &str) -> Result<u8, E> {
            let len = i32::try_from(s.len() + 1).map_err(|_| decline("string too long"))?;
            let out = &mut self.w.out;
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(s.as_bytes());
            out.push(0);
            Ok(0x02)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<u8, A::Error> {
            if self.depth >= MAX_NESTING {
                return Err(decline("nested too deep"));
            }
            let w = self.w;
            let at = w.open();
            let mut digits = [0u8; 20];
            for i in 0.. {
                let start = w.out.len();
                w.out.push(0);
                w.out.extend_from_slice(index_key(i, &mut digits));
                w.out.push(0);
                let value = Value {
                    w: &mut *w,
                    depth: self.depth + 1,
                };
                match seq.next_element_seed(value)? {
                    Some(kind) => w.out[start] = kind,
                    None => {
                        w.out.truncate(start);
                        break;
                    }
                }
            }
            w.close(at)?;
            Ok(0x04)
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<u8, A::Error> {
            if self.depth >= MAX_NESTING {
                return Err(decline("nested too deep"));
            }
            let w = self.w;
            let Some(first) = map.next_key_seed(Key)? else {
                w.out.extend_from_slice(&[5, 0, 0, 0, 0]);
                return Ok(0x03);
            };
            if is_wrapper_key(&first) || first == "$scope" {
                // A (possible) wrapper: bson's own conversion on this one small object.
                let mut obj = serde_json::Map::new();
                obj.insert(first.into_owned(), map.next_value()?);
                while let Some((k, v)) = map.next_entry()? {
                    obj.insert(k, v);
                }
                let v = wrapper(obj)?;
                return w.bson(v);
            }
            let at = w.open();
            let mut open = w.open_keys();
            let depth = self.depth + 1;
            w.element(&mut map, &first, &mut open, depth)?;
            while let Some(key) = map.next_key_seed(Key)? {
                if is_wrapper_key(&key) {
                    return Err(de::Error::custom(format_args!(
                        "{key} after other keys: not a valid wrapper"
                    )));
                }
                w.element(&mut map, &key, &mut open, depth)?;
            }
            w.keys.truncate(open.base);
            w.close(at)?;
            Ok(0x03)
        }
    }
}

/// A document as relaxed Extended JSON text.
pub(crate) fn to_relaxed_json(doc: &BsonDocument) -> String {
    let mut out = Vec::with_capacity(256);
    write_document(&mut out, doc);
    finish(out)
}

/// Any BSON value as relaxed Extended JSON text.
pub(crate) fn bson_to_json_text(value: &Bson) -> String {
    let mut out = Vec::with_capacity(64);
    write_value(&mut out, value);
    finish(out)
}

/// The stored BSON bytes of a document as relaxed Extended JSON text, written straight from
/// the bytes (no owned document is built). Byte for byte the same text as
/// [`to_relaxed_json`] of the decoded document. `None` when the bytes are malformed.
pub(crate) fn raw_to_relaxed_json(body: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(body.len() + body.len() / 4);
    write_raw(&mut out, body, b'{', 0).ok()?;
    String::from_utf8(out).ok()
}

/// [`raw_to_relaxed_json`] appended to `out` (a buffer reused from row to row); false, with
/// `out` as it was, when the bytes are malformed or the text would not be UTF-8.
pub(crate) fn append_relaxed_json(out: &mut Vec<u8>, body: &[u8]) -> bool {
    let start = out.len();
    out.reserve(body.len() + body.len() / 4);
    let ok = write_raw(out, body, b'{', 0).is_ok() && std::str::from_utf8(&out[start..]).is_ok();
    if !ok {
        out.truncate(start);
    }
    ok
}

/// Writes `s` as a JSON string escaped as `serde_json` escapes it (`\"`, `\\`, the five
/// short control escapes, other control characters as `\u00XX`), runs that need no escape
/// copied whole. Bytes are copied as they are: the callers check the finished text is UTF-8.
fn write_json_str(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    let mut from = 0;
    loop {
        let at = scan::plain_run(s, from);
        out.extend_from_slice(&s[from..at]);
        let Some(&b) = s.get(at) else { break };
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.extend_from_slice(&[HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
            }
        }
        from = at + 1;
    }
    out.push(b'"');
}

fn write_raw(
    out: &mut Vec<u8>,
    bytes: &[u8],
    open: u8,
    depth: usize,
) -> std::result::Result<(), crate::document::raw::Malformed> {
    use crate::document::raw::{self, Malformed};
    if depth > raw::MAX_DEPTH {
        return Err(Malformed);
    }
    out.push(open);
    for (i, item) in raw::elements(bytes)?.enumerate() {
        let (k, e) = item?;
        if i > 0 {
            out.push(b',');
        }
        if open == b'{' {
            write_json_str(out, k);
            out.push(b':');
        }
        match e.kind {
            0x03 => write_raw(out, e.bytes, b'{', depth + 1)?,
            0x04 => write_raw(out, e.bytes, b'[', depth + 1)?,
            // The common scalars straight from their bytes, as `write_value` writes them.
            0x02 => write_json_str(out, raw::str_bytes(e.bytes)?),
            0x10 => {
                let v = i32::from_le_bytes(raw::fixed(e.bytes)?);
                serde_json::to_writer(&mut *out, &v).map_err(|_| Malformed)?;
            }
            0x12 => {
                let v = i64::from_le_bytes(raw::fixed(e.bytes)?);
                serde_json::to_writer(&mut *out, &v).map_err(|_| Malformed)?;
            }
            0x08 => {
                let b = *e.bytes.first().ok_or(Malformed)? != 0;
                out.extend_from_slice(if b { b"true" } else { b"false" });
            }
            0x0A => out.extend_from_slice(b"null"),
            _ => write_value(out, &raw::to_bson(e)?),
        }
    }
    out.push(if open == b'{' { b'}' } else { b']' });
    Ok(())
}

fn finish(out: Vec<u8>) -> String {
    // The writer emits only serde_json's (UTF-8) output; the fallback is never expected.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Writes relaxed Extended JSON v2 directly, byte for byte what
/// `Bson::into_relaxed_extjson().to_string()` gives, without building a `serde_json::Value`
/// for the common types (the rare ones still go through it). Documents, arrays and a code's
/// scope are written on a heap stack ([`write_nested`]), so any nesting is fine.
fn write_value(out: &mut Vec<u8>, v: &Bson) {
    match v {
        Bson::Document(d) => write_document(out, d),
        Bson::Array(items) => write_nested(out, Level::array(items)),
        Bson::JavaScriptCodeWithScope(c) => {
            let top = Level::scope(out, c);
            write_nested(out, top);
        }
        other => write_scalar(out, other),
    }
}

fn write_document(out: &mut Vec<u8>, doc: &BsonDocument) {
    write_nested(out, Level::document(doc));
}

/// A document or array (or a code's scope) being written: what is left of it, whether an
/// item was written, and the bytes that close it.
struct Level<'a> {
    items: Items<'a>,
    first: bool,
    close: &'static [u8],
}

enum Items<'a> {
    Doc(bson::document::Iter<'a>),
    Arr(std::slice::Iter<'a, Bson>),
}

impl<'a> Level<'a> {
    fn document(d: &'a BsonDocument) -> Self {
        Self {
            items: Items::Doc(d.iter()),
            first: true,
            close: b"}",
        }
    }

    fn array(items: &'a [Bson]) -> Self {
        Self {
            items: Items::Arr(items.iter()),
            first: true,
            close: b"]",
        }
    }

    /// `{"$code":"...","$scope":` written, the scope's fields to come (bson's relaxed form).
    fn scope(out: &mut Vec<u8>, c: &'a bson::JavaScriptCodeWithScope) -> Self {
        out.extend_from_slice(b"{\"$code\":");
        let ok = serde_json::to_writer(&mut *out, &c.code).is_ok();
        debug_assert!(ok, "writing JSON to a Vec cannot fail");
        out.extend_from_slice(b",\"$scope\":");
        Self {
            items: Items::Doc(c.scope.iter()),
            first: true,
            close: b"}}",
        }
    }
}

/// Writes `top` and everything in it, depth first.
fn write_nested(out: &mut Vec<u8>, top: Level<'_>) {
    out.push(if top.close == b"]" { b'[' } else { b'{' });
    let mut stack = vec![top];
    while let Some(level) = stack.last_mut() {
        let value = match &mut level.items {
            Items::Doc(it) => it.next().map(|(k, v)| (Some(k), v)),
            Items::Arr(it) => it.next().map(|v| (None, v)),
        };
        let Some((key, value)) = value else {
            out.extend_from_slice(level.close);
            stack.pop();
            continue;
        };
        if !level.first {
            out.push(b',');
        }
        level.first = false;
        if let Some(k) = key {
            let ok = serde_json::to_writer(&mut *out, k).is_ok();
            debug_assert!(ok, "writing JSON to a Vec cannot fail");
            out.push(b':');
        }
        let inner = match value {
            Bson::Document(d) => Level::document(d),
            Bson::Array(items) => Level::array(items),
            Bson::JavaScriptCodeWithScope(c) => Level::scope(out, c),
            other => {
                write_scalar(out, other);
                continue;
            }
        };
        out.push(if inner.close == b"]" { b'[' } else { b'{' });
        stack.push(inner);
    }
}

/// A value that holds no other values.
fn write_scalar(out: &mut Vec<u8>, v: &Bson) {
    use std::io::Write;
    let ok = match v {
        Bson::Double(f) if f.is_finite() => serde_json::to_writer(&mut *out, f).is_ok(),
        Bson::String(s) => serde_json::to_writer(&mut *out, s).is_ok(),
        Bson::Int32(i) => write!(out, "{i}").is_ok(),
        Bson::Int64(i) => write!(out, "{i}").is_ok(),
        Bson::Boolean(b) => {
            out.extend_from_slice(if *b { b"true" } else { b"false" });
            true
        }
        Bson::Null => {
            out.extend_from_slice(b"null");
            true
        }
        // Relaxed Extended JSON writes dates from 1970 to 9999 as ISO-8601 text and every
        // other date in the canonical `$numberLong` form (the bson crate clamps those).
        Bson::DateTime(dt) if !(0..=253_402_300_799_999).contains(&dt.timestamp_millis()) => {
            write!(
                out,
                "{{\"$date\":{{\"$numberLong\":\"{}\"}}}}",
                dt.timestamp_millis()
            )
            .is_ok()
        }
        other => serde_json::to_writer(&mut *out, &other.clone().into_relaxed_extjson()).is_ok(),
    };
    debug_assert!(ok, "writing JSON to a Vec cannot fail");
}

#[cfg(test)]
mod tests {
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
            let bytes = doc.to_vec().unwrap();
            assert_eq!(raw_to_relaxed_json(&bytes).unwrap(), text);
        }
    }

    use super::*;

    #[test]
    fn the_direct_writer_matches_serde_json_output() {
        let text = r#"{"_id":{"$oid":"507f1f77bcf86cd799439011"},"n":{"$numberLong":"5"},"i":-7,"big":{"$numberLong":"9007199254740993"},
            "d":{"$date":"2024-01-02T03:04:05Z"},"old":{"$date":{"$numberLong":"-5"}},"x":{"$numberDecimal":"1.5"},
            "b":{"$binary":{"base64":"AQI=","subType":"00"}},"f":[1.0,0.1,-0.0,1e300,2.5e-8,{"$numberDouble":"NaN"},{"$numberDouble":"-Infinity"}],
            "s":"a\"b\\c\n\u0001é😀</","t":true,"u":false,"z":null,"re":{"$regularExpression":{"pattern":"a+","options":"mi"}},
            "ts":{"$timestamp":{"t":1,"i":2}},"mn":{"$minKey":1},"mx":{"$maxKey":1},"nested":{"a":[{"b":[]},{}],"k\"ey":1},
            "cws":[{"$code":"f()","$scope":{"x":[1,{"y":{"$code":"g","$scope":{}}}]}},{"$code":"h"}]}"#;
        let doc = parse_document(text).unwrap();
        let old = Bson::Document(doc.clone())
            .into_relaxed_extjson()
            .to_string();
        assert_eq!(to_relaxed_json(&doc), old);
        assert_eq!(raw_to_relaxed_json(&doc.to_vec().unwrap()).unwrap(), old);
        for v in doc.values() {
            assert_eq!(
                bson_to_json_text(v),
                v.clone().into_relaxed_extjson().to_string()
            );
        }
    }

    #[test]
    fn any_nesting_is_written_without_recursion() {
        let levels = 50_000;
        let mut v = Bson::Int32(1);
        for i in 0..levels {
            v = if i % 2 == 0 {
                Bson::Array(vec![v])
            } else {
                Bson::Document(bson::doc! {"a": v})
            };
        }
        let text = bson_to_json_text(&v);
        let want = format!(
            "{}1{}",
            r#"{"a":["#.repeat(levels / 2),
            "]}".repeat(levels / 2)
        );
        // Not assert_eq: a failure would drop `v` recursively; it is taken apart iteratively.
        let same = text == want;
        crate::document::dispose_value(v);
        assert!(same, "{}...", &text[..100]);
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        // Every ASCII byte, alone and inside runs of every length around the eight-byte
        // steps, in values and in keys; multi-byte characters pass through.
        let mut texts: Vec<String> = (0u8..0x80).map(|b| char::from(b).to_string()).collect();
        for len in 0..20 {
            for stop in ['"', '\\', '\n', '\u{1}', '\u{1f}', 'é', '😀'] {
                texts.push(format!("{}{stop}{}", "a".repeat(len), "b".repeat(len % 9)));
            }
        }
        for t in &texts {
            let mut doc = bson::doc! {"s": t.as_str()};
            if !t.contains('\0') {
                doc.insert(t.as_str(), 1); // a key cannot hold a NUL
            }
            let want = Bson::Document(doc.clone())
                .into_relaxed_extjson()
                .to_string();
            let bytes = doc.to_vec().unwrap();
            assert_eq!(raw_to_relaxed_json(&bytes).unwrap(), want, "{t:?}");
            let mut out = b"kept".to_vec();
            assert!(append_relaxed_json(&mut out, &bytes));
            assert_eq!(&out[4..], want.as_bytes());
        }
        // A string that is not UTF-8 is refused, and the buffer left as it was.
        let mut bytes = bson::doc! {"s": "abc"}.to_vec().unwrap();
        let at = bytes.windows(3).position(|w| w == b"abc").unwrap();
        bytes[at + 1] = 0xff;
        assert!(raw_to_relaxed_json(&bytes).is_none());
        let mut out = b"kept".to_vec();
        assert!(!append_relaxed_json(&mut out, &bytes));
        assert_eq!(out, b"kept");
    }

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

mod extjson;
mod scan;

#[cfg(test)]
pub(super) mod differential_tests;
