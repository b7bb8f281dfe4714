//! The value of an index entry: where the document's `_id` key is, and the covered values
//! (`docs/FORMAT.md`, "Catalog and entry tables").
//!
//! An entry's key already holds the indexed values (encoded) followed by the `_id` key, so
//! the value repeats neither when it can help it: it gives the `_id` key's length, then
//! either nothing (no covered values: a multikey document), one BSON element type per key
//! field (the values are decoded from the key and rebuilt into the document the projection
//! `{paths: 1, _id: 0}` makes: "compact"), or that document's BSON itself when the key cannot
//! give it back exactly (a decimal, a `-0.0`, a sub-document, a field missing, fields in
//! another order than the key's, ...). Whether the compact form rebuilds the projection's
//! bytes exactly is checked when the entry is made, so readers can trust it.
//!
//! Entries written before this layout (the `_id` key repeated in the value, then the BSON)
//! are still read: their length field has its top bit clear.
//!
//! In a clustered collection an entry also carries the document's record id (bit 14 of the
//! length field set, the id as u64 big-endian right after it): an index read then fetches
//! the document by record id, without the `_id` map ([`ReadView::get_at`]).
//!
//! [`ReadView::get_at`]: crate::storage::ReadView::get_at

use super::key::KeyField;
use crate::document::raw::elements;
use crate::error::{Error, Result};
use std::borrow::Cow;

/// Set in the length field of the current layout (clear: the `_id` key follows it).
const LAYOUT_2: u16 = 0x8000;
/// Set (with [`LAYOUT_2`]) when the document's record id follows the length field.
const WITH_RID: u16 = 0x4000;
/// Covered values as a BSON document.
const AS_BSON: u8 = 0x01;
/// Covered values as one BSON element type per key field, the values in the key.
const AS_TYPES: u8 = 0x02;

/// An entry's value for a document with `_id` key `id_key`, whose key values are
/// `key_values` (the entry key without the `_id` key); `covered` is the BSON document of the
/// indexed fields (`None`: the entry carries no covered values). `types`: the caller knows
/// that these element types and the key rebuild `covered` exactly (else it is checked).
pub(crate) fn entry_value(
    fields: &[KeyField],
    key_values: &[u8],
    id_key: &[u8],
    covered: Option<&[u8]>,
    types: Option<&[u8]>,
) -> Result<Vec<u8>> {
    // Far above any key the trees accept (a quarter of a page), which refuse it anyway.
    let id_len = u16::try_from(id_key.len())
        .ok()
        .filter(|n| n & (LAYOUT_2 | WITH_RID) == 0)
        .ok_or_else(|| {
            Error::invalid(format!(
                "an _id of {} bytes is too long to be indexed",
                id_key.len()
            ))
        })?;
    let mut v = Vec::with_capacity(3 + fields.len());
    v.extend_from_slice(&(id_len | LAYOUT_2).to_le_bytes());
    let Some(covered) = covered else {
        return Ok(v);
    };
    if let Some(types) = types {
        debug_assert_eq!(rebuild(fields, key_values, types).as_deref(), Some(covered));
        v.push(AS_TYPES);
        v.extend_from_slice(types);
    } else if let Some(types) = compact_types(fields, key_values, covered) {
        v.push(AS_TYPES);
        v.extend_from_slice(&types);
    } else {
        v.push(AS_BSON);
        v.extend_from_slice(covered);
    }
    Ok(v)
}

/// An entry value read against its key: the `_id` key, what follows the length field (after
/// the `_id` key, in the first layout), and whether it is the current layout. `None` when
/// the value is malformed.
struct Parts<'a> {
    id: &'a [u8],
    rest: &'a [u8],
    current: bool,
    rid: Option<u64>,
}

fn parts<'a>(key: &'a [u8], value: &'a [u8]) -> Option<Parts<'a>> {
    let (&[a, b], rest) = value.split_first_chunk::<2>()?;
    let n = u16::from_le_bytes([a, b]);
    if n & LAYOUT_2 != 0 {
        let start = key
            .len()
            .checked_sub(usize::from(n & !(LAYOUT_2 | WITH_RID)))?;
        let (rid, rest) = if n & WITH_RID != 0 {
            let (rid, rest) = rest.split_first_chunk::<8>()?;
            (Some(u64::from_be_bytes(*rid)), rest)
        } else {
            (None, rest)
        };
        Some(Parts {
            id: &key[start..],
            rest,
            current: true,
            rid,
        })
    } else {
        let (id, rest) = rest.split_at_checked(usize::from(n))?;
        Some(Parts {
            id,
            rest,
            current: false,
            rid: None,
        })
    }
}

/// The `_id` key of the entry `(key, value)` (empty when the value is malformed).
pub(crate) fn entry_id<'a>(key: &'a [u8], value: &'a [u8]) -> &'a [u8] {
    parts(key, value).map_or(&[], |p| p.id)
}

/// The record id of the document the entry `(key, value)` indexes, when the entry carries
/// one.
pub(crate) fn entry_record_id(key: &[u8], value: &[u8]) -> Option<u64> {
    parts(key, value).and_then(|p| p.rid)
}

/// `value` (made by [`entry_value`]) carrying the document's record id `rid` (unchanged when
/// `None`: a key-ordered collection).
pub(crate) fn with_record_id(mut value: Vec<u8>, rid: Option<u64>) -> Vec<u8> {
    let Some(rid) = rid else {
        return value;
    };
    if let Some(len) = value.first_chunk_mut::<2>() {
        let n = u16::from_le_bytes(*len) | WITH_RID;
        *len = n.to_le_bytes();
        value.splice(2..2, rid.to_be_bytes());
    }
    value
}

/// The covered values of the entry `(key, value)` of an index on `fields` as a BSON
/// document, or `None` when the entry has none.
pub(crate) fn covered_values<'a>(
    fields: &[KeyField],
    key: &'a [u8],
    value: &'a [u8],
) -> Result<Option<Cow<'a, [u8]>>> {
    let bad = || Error::Corrupt("an index entry's value is malformed".into());
    let p = parts(key, value).ok_or_else(bad)?;
    if !p.current {
        return Ok((!p.rest.is_empty()).then_some(Cow::Borrowed(p.rest)));
    }
    let key_values = &key[..key.len() - p.id.len()];
    match p.rest.split_first() {
        None => Ok(None),
        Some((&AS_BSON, bson)) => Ok(Some(Cow::Borrowed(bson))),
        Some((&AS_TYPES, types)) => rebuild(fields, key_values, types)
            .map(|d| Some(Cow::Owned(d)))
            .ok_or_else(bad),
        Some(_) => Err(bad()),
    }
}

/// Whether a value of element type `kind` (its BSON bytes `bytes`) comes back from its key
/// encoding byte for byte, so that the compact form can carry it: the types
/// [`KeyReader::value`] decodes, except a `-0.0` (its key is zero) and a NaN other than the
/// canonical one (NaNs share one key).
pub(crate) fn decodes_exactly(kind: u8, bytes: &[u8]) -> bool {
    match kind {
        0x02 | 0x07 | 0x08 | 0x09 | 0x0A | 0x10 | 0x12 => true,
        0x01 => {
            let Ok(bits) = <[u8; 8]>::try_from(bytes).map(u64::from_le_bytes) else {
                return false;
            };
            if f64::from_bits(bits).is_nan() {
                bits == f64::NAN.to_bits()
            } else {
                bits != (-0.0f64).to_bits()
            }
        }
        _ => false,
    }
}

/// The element types of `covered`'s values at the key paths, when decoding them from
/// `key_values` rebuilds `covered` byte for byte.
fn compact_types(fields: &[KeyField], key_values: &[u8], covered: &[u8]) -> Option<Vec<u8>> {
    thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let types = fields
        .iter()
        .map(|f| type_at(covered, &f.path))
        .collect::<Option<Vec<u8>>>()?;
    let same = SCRATCH.with(|cell| {
        let mut out = cell.try_borrow_mut().ok()?;
        out.clear();
        rebuild_into(fields, key_values, &types, &mut out)?;
        Some(out[..] == *covered)
    });
    same?.then_some(types)
}

/// The BSON element type at dotted `path` in the document `doc`, through sub-documents only.
fn type_at(doc: &[u8], path: &str) -> Option<u8> {
    let mut doc = doc;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        let (_, e) = elements(doc)
            .ok()?
            .map_while(|item| item.ok())
            .find(|(name, _)| *name == part.as_bytes())?;
        if parts.peek().is_none() {
            return Some(e.kind);
        }
        if e.kind != 0x03 {
            return None;
        }
        doc = e.bytes;
    }
    None
}

/// The document holding, at each field's path, the value decoded from `key_values` as a
/// value of BSON type `types[i]`; paths sharing a parent with the previous field go into the
/// same sub-document. `None` when the key does not hold values of those types.
fn rebuild(fields: &[KeyField], key_values: &[u8], types: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(64 + 2 * key_values.len());
    rebuild_into(fields, key_values, types, &mut out)?;
    Some(out)
}

/// [`rebuild`] into `out` (empty).
fn rebuild_into(
    fields: &[KeyField],
    key_values: &[u8],
    types: &[u8],
    out: &mut Vec<u8>,
) -> Option<()> {
    if types.len() != fields.len() || fields.len() > 64 {
        return None;
    }
    out.extend_from_slice(&[0; 4]);
    // The path of the innermost open sub-document ("" at the top) and where the length of
    // each open sub-document goes.
    let mut open_path = "";
    let mut open_at: Vec<usize> = Vec::new();
    let mut reader = KeyReader {
        bytes: key_values,
        at: 0,
        flip: 0,
    };
    for (f, &kind) in fields.iter().zip(types) {
        let (parent, leaf) = f.path.rsplit_once('.').unwrap_or(("", &f.path));
        // Close sub-documents down to the longest open one `parent` is inside of.
        while !open_path.is_empty() && !is_within(parent, open_path) {
            close(out, open_at.pop()?)?;
            open_path = open_path.rsplit_once('.').map_or("", |(p, _)| p);
        }
        let rest = parent[open_path.len()..].trim_start_matches('.');
        if !rest.is_empty() {
            for name in rest.split('.') {
                out.push(0x03);
                out.extend_from_slice(name.as_bytes());
                out.push(0);
                open_at.push(out.len());
                out.extend_from_slice(&[0; 4]);
            }
            open_path = parent;
        }
        out.push(kind);
        out.extend_from_slice(leaf.as_bytes());
        out.push(0);
        reader.flip = if f.descending { 0xFF } else { 0 };
        reader.value(kind, out)?;
    }
    while let Some(at) = open_at.pop() {
        close(out, at)?;
    }
    close(out, 0)?;
    (reader.at == key_values.len()).then_some(())
}

/// Whether the dotted path `inner` is `outer` or lies under it.
fn is_within(inner: &str, outer: &str) -> bool {
    inner
        .strip_prefix(outer)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

/// Ends the document whose length field is at `at`.
fn close(out: &mut Vec<u8>, at: usize) -> Option<()> {
    out.push(0);
    let len = i32::try_from(out.len() - at).ok()?;
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
    Some(())
}

/// Reads encoded key values (`key::encode_value`) back, one field at a time; a descending
/// field's bytes are complemented (`flip`).
struct KeyReader<'a> {
    bytes: &'a [u8],
    at: usize,
    flip: u8,
}

impl KeyReader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.at)? ^ self.flip;
        self.at += 1;
        Some(b)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let mut a = [0u8; N];
        for b in &mut a {
            *b = self.byte()?;
        }
        Some(a)
    }

    /// Appends the BSON bytes of the next key value as a value of element type `kind`.
    fn value(&mut self, kind: u8, out: &mut Vec<u8>) -> Option<()> {
        let tag = self.byte()?;
        match (kind, tag) {
            (0x0A, 0x20) => {}
            (0x02, 0x40) => {
                let at = out.len();
                out.extend_from_slice(&[0; 4]);
                loop {
                    if self.flip == 0 {
                        // Ascending: copy up to the next 00 at once.
                        let rest = self.bytes.get(self.at..)?;
                        let n = rest.iter().position(|&b| b == 0)?;
                        out.extend_from_slice(&rest[..n]);
                        self.at += n;
                    }
                    match self.byte()? {
                        0 => match self.byte()? {
                            0 => break,
                            0xFF => out.push(0),
                            _ => return None,
                        },
                        b => out.push(b),
                    }
                }
                out.push(0);
                let len = i32::try_from(out.len() - at - 4).ok()?;
                out[at..at + 4].copy_from_slice(&len.to_le_bytes());
            }
            (0x08, 0x90) => match self.byte()? {
                b @ (0 | 1) => out.push(b),
                _ => return None,
            },
            (0x09, 0xA0) => {
                let millis = (u64::from_be_bytes(self.array()?) ^ (1 << 63)) as i64;
                out.extend_from_slice(&millis.to_le_bytes());
            }
            (0x07, 0x80) => out.extend_from_slice(&self.array::<12>()?),
            (0x10 | 0x12 | 0x01, 0x30..=0x35) => {
                let number = self.number(tag)?;
                match kind {
                    0x10 => {
                        out.extend_from_slice(&i32::try_from(number.int()?).ok()?.to_le_bytes())
                    }
                    0x12 => out.extend_from_slice(&number.int()?.to_le_bytes()),
                    _ => out.extend_from_slice(&number.double()?.to_le_bytes()),
                }
            }
            _ => return None,
        }
        Some(())
    }

    /// The number after class byte `class` (see `key::encode_finite`).
    fn number(&mut self, class: u8) -> Option<Number> {
        Some(match class {
            0x30 => Number::NaN,
            0x31 => Number::Inf(true),
            0x33 => Number::Zero,
            0x35 => Number::Inf(false),
            _ => {
                let negative = class == 0x32;
                let mask = if negative { 0xFF } else { 0 };
                let exp = self.array::<2>()?.map(|b| b ^ mask);
                let bits = self.array::<8>()?.map(|b| b ^ mask);
                Number::Finite {
                    negative,
                    exponent: i32::from(u16::from_be_bytes(exp) as i16 ^ i16::MIN),
                    bits: u64::from_be_bytes(bits),
                }
            }
        })
    }
}

/// A number as the key holds it: `±(1 + bits / 2^64) * 2^exponent` for finite nonzero ones.
enum Number {
    NaN,
    Inf(bool),
    Zero,
    Finite {
        negative: bool,
        exponent: i32,
        bits: u64,
    },
}

impl Number {
    /// The number as an exact i64.
    fn int(&self) -> Option<i64> {
        match *self {
            Number::Zero => Some(0),
            Number::Finite {
                negative,
                exponent,
                bits,
            } if (0..=63).contains(&exponent) => {
                let e = exponent.unsigned_abs(); // in 0..=63 (the guard)
                                                 // The bits below the integer part must be zero.
                if bits.checked_shl(e).unwrap_or(0) != 0 {
                    return None;
                }
                let magnitude = (1u128 << e) | u128::from(bits.checked_shr(64 - e).unwrap_or(0));
                if negative {
                    i64::try_from(-(magnitude as i128)).ok()
                } else {
                    i64::try_from(magnitude).ok()
                }
            }
            _ => None,
        }
    }

    /// The number as an f64 (exact for every f64 the key was made from; the caller compares
    /// anything else away).
    fn double(&self) -> Option<f64> {
        Some(match *self {
            Number::NaN => f64::NAN,
            Number::Inf(negative) => {
                if negative {
                    f64::NEG_INFINITY
                } else {
                    f64::INFINITY
                }
            }
            Number::Zero => 0.0,
            Number::Finite {
                negative,
                exponent,
                bits,
            } => {
                // An f64 has at most 52 bits after its leading one.
                if bits & ((1 << 12) - 1) != 0 {
                    return None;
                }
                let mantissa = (1u64 << 52) | (bits >> 12);
                let magnitude = scale(mantissa as f64, exponent - 52);
                if negative {
                    -magnitude
                } else {
                    magnitude
                }
            }
        })
    }
}

/// `x * 2^e`, exactly when the result is representable (in steps whose factors are normal).
fn scale(mut x: f64, mut e: i32) -> f64 {
    // The biased exponent of a normal double: `k` is in -1022..=1023, so `k + 1023` is positive.
    #[allow(clippy::cast_sign_loss)]
    let pow2 = |k: i32| f64::from_bits(((k + 1023) as u64) << 52);
    while e > 1000 {
        x *= pow2(1000);
        e -= 1000;
    }
    while e < -1000 {
        x *= pow2(-1000);
        e += 1000;
    }
    x * pow2(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::key::encode_value;
    use bson::{doc, Bson, Document};

    fn field(path: &str, descending: bool) -> KeyField {
        KeyField {
            path: path.into(),
            descending,
        }
    }

    /// The entry value for `covered` (whose key values are `values`), and what reading it
    /// back gives.
    fn round_trip(fields: &[KeyField], values: &[Bson], covered: &Document) -> (Vec<u8>, Vec<u8>) {
        let mut key = Vec::new();
        for (f, v) in fields.iter().zip(values) {
            encode_value(&mut key, v, f.descending);
        }
        let kv = key.len();
        key.extend_from_slice(b"\x40id\0\0");
        let bytes = covered.to_vec().unwrap();
        let value = entry_value(fields, &key[..kv], b"\x40id\0\0", Some(&bytes), None).unwrap();
        assert_eq!(entry_id(&key, &value), b"\x40id\0\0");
        let back = covered_values(fields, &key, &value).unwrap().unwrap();
        assert_eq!(back.as_ref(), &bytes[..], "covered values read back differ");
        (value, bytes)
    }

    #[test]
    fn common_values_are_stored_as_types_only() {
        let cases: Vec<Bson> = vec![
            Bson::String("user42@example.com".into()),
            Bson::String("with\0nul".into()),
            Bson::String(String::new()),
            Bson::Int32(0),
            Bson::Int32(-7),
            Bson::Int32(i32::MIN),
            Bson::Int32(i32::MAX),
            Bson::Int64(i64::MIN),
            Bson::Int64(i64::MAX),
            Bson::Int64((1 << 53) + 1),
            Bson::Double(1.5),
            Bson::Double(-3.25e-300),
            Bson::Double(f64::MIN_POSITIVE / 1024.0),
            Bson::Double(f64::MAX),
            Bson::Double(f64::INFINITY),
            Bson::Double(0.0),
            Bson::Boolean(true),
            Bson::Null,
            Bson::DateTime(bson::DateTime::from_millis(-86_400_000)),
            Bson::ObjectId(bson::oid::ObjectId::from_bytes([7; 12])),
        ];
        for descending in [false, true] {
            for v in &cases {
                let fields = [field("user.email", descending)];
                let (value, _) = round_trip(
                    &fields,
                    std::slice::from_ref(v),
                    &doc! {"user": {"email": v.clone()}},
                );
                assert_eq!(
                    value.len(),
                    4,
                    "{v:?} should be stored as its type: {value:?}"
                );
            }
        }
    }

    #[test]
    fn values_the_key_cannot_give_back_are_stored_as_bson() {
        let cases: Vec<Bson> = vec![
            Bson::Double(-0.0),
            Bson::Double(f64::from_bits(0x7ff8_0000_0000_0001)),
            Bson::Decimal128(bson::Decimal128::from_bytes([1; 16])),
            Bson::Document(doc! {"x": 1}),
            Bson::Timestamp(bson::Timestamp {
                time: 1,
                increment: 2,
            }),
            Bson::Undefined,
        ];
        for v in &cases {
            let fields = [field("a", false)];
            let (value, bytes) =
                round_trip(&fields, std::slice::from_ref(v), &doc! {"a": v.clone()});
            assert_eq!(value.len(), 3 + bytes.len(), "{v:?}");
        }
    }

    #[test]
    fn compound_fields_rebuild_in_the_documents_order() {
        let f = |p: &str, d| field(p, d);
        // Shared parents, descending components: compact.
        let fields = [f("u.a", false), f("u.b", true), f("s", false)];
        let values = [Bson::Int32(1), Bson::String("x".into()), Bson::Double(2.5)];
        let (v, _) = round_trip(&fields, &values, &doc! {"u": {"a": 1, "b": "x"}, "s": 2.5});
        assert_eq!(v.len(), 6);
        // The document has the fields in another order than the key: BSON.
        let fields = [f("s", false), f("u.a", false)];
        let values = [Bson::Double(2.5), Bson::Int32(1)];
        let covered = doc! {"u": {"a": 1}, "s": 2.5};
        let (v, bytes) = round_trip(&fields, &values, &covered);
        assert_eq!(v.len(), 3 + bytes.len());
        // A field the document lacks (its key is null, the projection has no field): BSON.
        let fields = [f("a", false), f("b", false)];
        let (v, bytes) = round_trip(&fields, &[Bson::Int32(1), Bson::Null], &doc! {"a": 1});
        assert_eq!(v.len(), 3 + bytes.len());
    }

    #[test]
    fn entries_of_the_first_layout_are_read() {
        let key = b"\x34\x80\x00\0\0\0\0\0\0\0\0\x40id\0\0";
        let covered = doc! {"a": 2}.to_vec().unwrap();
        let mut value = vec![5, 0];
        value.extend_from_slice(b"\x40id\0\0");
        value.extend_from_slice(&covered);
        let fields = [field("a", false)];
        assert_eq!(entry_id(key, &value), b"\x40id\0\0");
        let back = covered_values(&fields, key, &value).unwrap().unwrap();
        assert_eq!(back.as_ref(), &covered[..]);
        let bare = [&[5u8, 0][..], b"\x40id\0\0"].concat();
        assert!(covered_values(&fields, key, &bare).unwrap().is_none());
    }

    #[test]
    fn malformed_values_are_errors_not_panics() {
        let fields = [field("a", false)];
        let key = b"\x40x\0\0\x40id\0\0";
        for value in [
            &[][..],
            &[1],
            &[0x05, 0x80, 0x07],
            &[0x05, 0x80, 0x02, 0x10],
            &[0xFF, 0xFF, 0x02, 0x02],
        ] {
            let _ = entry_id(key, value);
            assert!(covered_values(&fields, key, value).is_err(), "{value:?}");
        }
    }
}
