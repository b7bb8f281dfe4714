//! JSON text straight to BSON, without a `serde_json::Value` tree in between.
//!
//! The reference semantics are the `serde_json::Value` path: `serde_json` parses the text, then
//! the bson crate's reading converts it (top-level objects as `Document::try_from`, which
//! reads every key literally; nested objects as `Bson::try_from`, which reads Extended JSON
//! wrappers), done without that conversion's recursion by [`extjson`]. Text nested deeper
//! than [`MAX_QUERY_NESTING`](super::MAX_QUERY_NESTING) is refused (both paths) before it is
//! parsed. This module gives the same document for every text that path accepts, and
//! declines (an `Err`) otherwise:
//!
//! * The same `serde_json::Deserializer` reads the text, so the grammar, string escapes, number
//!   parsing (`float_roundtrip`) and the trailing-characters check are the ones the `Value`
//!   path has.
//! * Numbers map as `Bson::try_from(Value::Number)` does: an integer that fits `i32` is
//!   `Int32`, else `Int64` when it fits `i64`, else (a `u64` above `i64::MAX`) the `f64`
//!   nearest it; a float is a `Double` (a non-finite one, which serde_json never produces,
//!   would be `Null` as in `serde_json::Value`).
//! * Duplicate keys keep the first key's position and the last value, as `serde_json::Map`
//!   (an `IndexMap`) and `bson::Document` both do on insert.
//! * A nested object whose first key is one that bson's conversion looks for
//!   ([`direct::WRAPPER_KEYS`] or `$scope`) is collected into a small `serde_json::Map` and
//!   read as the `Value` path reads it (bson's own conversion for a wrapper), so every
//!   wrapper, relaxed or canonical, keeps bson's own semantics.
//!   A nested object with any other first key is built directly; should one of its later
//!   keys be a wrapper key, bson would refuse the object (each wrapper allows only its own
//!   `$` keys, and `$scope` beside `$code`), so this module declines.
//! * Any error is only a signal to take the `Value` path, which then reports the error it
//!   always did (or, when an earlier duplicate key's value was invalid but later replaced,
//!   accepts the text exactly as before).
//!
//! The byte writer ([`direct::elements`]) writes the same document as BSON bytes instead of
//! building it, with the same reading of every value. It declines (and the caller builds the
//! `bson::Document` instead) whenever the bytes might differ from that document's encoding
//! or the document would be refused later: a key repeated at any level (the document keeps
//! the first position and last value), a key holding NUL (BSON keys are C strings; the
//! encoder refuses it), nesting beyond `MAX_NESTING` (the depth check reports it), a
//! wrapper whose conversion gives a document or array (its depth is not tracked), or a
//! nested document beyond the size limit.

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
        let len = i32::try_from(len).map_err(|_| decline("over the size limit"))?;
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
