//! The order-preserving ("memcomparable") encoding of BSON values used as secondary index
//! keys: comparing two encodings as byte strings gives the order of
//! [`crate::query::compare::compare`] (MongoDB's value order), equal values encode to equal
//! bytes (`1`, `1.0`, `NumberLong(1)` and `NumberDecimal("1")` are one key), and no encoding
//! is a proper prefix of another, so encodings can be concatenated (compound indexes, the
//! `_id` key appended to every entry) without changing the order. The byte layout is
//! documented in `docs/FORMAT.md` ("Index keys").
//!
//! [`document_keys`] turns a document into the keys of one index: it walks each indexed path
//! the way the filter does ([`crate::query::path`]) and expands arrays the way MongoDB's
//! multikey indexes do.

// Used by the index maintenance and the planner, which land separately; tests use it now.

use crate::error::{Error, Result};
use crate::query::compare::type_rank;
use crate::query::path::{index_of, split};
use bson::{Bson, Document};

/// Tag of the highest rank (MaxKey); [`type_prefix`] of anything above it is 0xFF.
const MAX_RANK: u8 = 14;

/// Number encodings: the byte after the rank tag of rank 2 is replaced by one of these
/// classes, so that the first byte alone orders NaN < -inf < negatives < 0 < positives < +inf.
const NUM_NAN: u8 = 0x30;
const NUM_NEG_INF: u8 = 0x31;
const NUM_NEG: u8 = 0x32;
const NUM_ZERO: u8 = 0x33;
const NUM_POS: u8 = 0x34;
const NUM_POS_INF: u8 = 0x35;

/// Ends a document or an array; below every tag (tags are 0x10 and up).
const END: u8 = 0x00;

/// Separates a JavaScript code string from what follows: nothing (plain code) or the scope.
const CODE_PLAIN: u8 = 0x00;
const CODE_WITH_SCOPE: u8 = 0x01;

/// The first byte of the ascending encoding of every value with this type rank
/// (crate::query::compare::type_rank) so that the planner can bracket by type:
/// all values of rank r encode in [type_prefix(r), type_prefix(r+1)).
pub(crate) fn type_prefix(rank: u8) -> u8 {
    if rank > MAX_RANK {
        0xFF
    } else {
        0x10 + 0x10 * rank
    }
}

/// Appends the encoding of one value; `descending` complements every byte.
pub(crate) fn encode_value(out: &mut Vec<u8>, v: &Bson, descending: bool) {
    let start = out.len();
    encode(out, v);
    if descending {
        for b in &mut out[start..] {
            *b = !*b;
        }
    }
}

/// Appends the ascending encoding of `v`.
fn encode(out: &mut Vec<u8>, v: &Bson) {
    let tag = type_prefix(type_rank(v));
    match v {
        Bson::MinKey | Bson::MaxKey | Bson::Null | Bson::Undefined | Bson::DbPointer(_) => {
            // compare.rs treats null and undefined as equal, and every DbPointer as equal
            // to every other: the tag alone.
            out.push(tag);
        }
        Bson::Int32(i) => encode_int(out, i64::from(*i)),
        Bson::Int64(i) => encode_int(out, *i),
        Bson::Double(d) => encode_float(out, *d),
        Bson::Decimal128(d) => {
            // As compare.rs does: through its decimal string to the nearest f64.
            encode_float(out, d.to_string().parse::<f64>().unwrap_or(f64::NAN));
        }
        Bson::String(s) | Bson::Symbol(s) => {
            out.push(tag);
            encode_bytes(out, s.as_bytes());
        }
        Bson::Document(d) => {
            out.push(tag);
            encode_fields(out, d);
        }
        Bson::Array(items) => {
            out.push(tag);
            for item in items {
                encode(out, item);
            }
            out.push(END);
        }
        Bson::Binary(b) => {
            out.push(tag);
            // Length first, then subtype, then bytes (compare.rs's order); the length
            // also makes the payload self-delimiting, so the bytes need no escaping.
            let len = u32::try_from(b.bytes.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&len.to_be_bytes());
            out.push(u8::from(b.subtype));
            out.extend_from_slice(&b.bytes);
        }
        Bson::ObjectId(oid) => {
            out.push(tag);
            out.extend_from_slice(&oid.bytes());
        }
        Bson::Boolean(b) => {
            out.push(tag);
            out.push(u8::from(*b));
        }
        Bson::DateTime(d) => {
            out.push(tag);
            out.extend_from_slice(&order_i64(d.timestamp_millis()));
        }
        Bson::Timestamp(ts) => {
            out.push(tag);
            out.extend_from_slice(&ts.time.to_be_bytes());
            out.extend_from_slice(&ts.increment.to_be_bytes());
        }
        Bson::RegularExpression(re) => {
            out.push(tag);
            encode_bytes(out, re.pattern.as_str().as_bytes());
            encode_bytes(out, re.options.as_str().as_bytes());
        }
        Bson::JavaScriptCode(code) => {
            out.push(tag);
            encode_bytes(out, code.as_bytes());
            out.push(CODE_PLAIN);
        }
        Bson::JavaScriptCodeWithScope(c) => {
            // compare.rs calls code-with-scope equal to every value of its rank, which no
            // encoding can reproduce (it is not an order); this orders by code, then plain
            // code before code with a scope, then the scope as a document.
            out.push(tag);
            encode_bytes(out, c.code.as_bytes());
            out.push(CODE_WITH_SCOPE);
            encode_fields(out, &c.scope);
        }
    }
}

/// The fields of a document (after its tag): per field the rank tag of the value, the
/// name, the value; then [`END`]. compare.rs orders fields by (value rank, name, value).
fn encode_fields(out: &mut Vec<u8>, d: &Document) {
    for (name, value) in d {
        out.push(type_prefix(type_rank(value)));
        encode_bytes(out, name.as_bytes());
        encode(out, value);
    }
    out.push(END);
}

/// A byte string, escaped and terminated: 0x00 becomes 0x00 0xFF, the end is 0x00 0x00.
/// Order is the bytes' order, and no encoding is a prefix of another.
fn encode_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut rest = bytes;
    while let Some(zero) = rest.iter().position(|&b| b == 0) {
        out.extend_from_slice(&rest[..zero]);
        out.extend_from_slice(&[0x00, 0xFF]);
        rest = &rest[zero + 1..];
    }
    out.extend_from_slice(rest);
    out.extend_from_slice(&[0x00, 0x00]);
}

/// An i64 as 8 big-endian bytes whose unsigned order is the signed order.
fn order_i64(i: i64) -> [u8; 8] {
    (i.cast_unsigned() ^ (1 << 63)).to_be_bytes()
}

fn encode_int(out: &mut Vec<u8>, i: i64) {
    match i.cmp(&0) {
        std::cmp::Ordering::Equal => out.push(NUM_ZERO),
        std::cmp::Ordering::Greater => encode_finite(out, false, i.unsigned_abs(), 0),
        std::cmp::Ordering::Less => encode_finite(out, true, i.unsigned_abs(), 0),
    }
}

fn encode_float(out: &mut Vec<u8>, d: f64) {
    if d.is_nan() {
        out.push(NUM_NAN);
    } else if d.is_infinite() {
        out.push(if d > 0.0 { NUM_POS_INF } else { NUM_NEG_INF });
    } else if d == 0.0 {
        out.push(NUM_ZERO); // -0.0 too
    } else {
        let bits = d.to_bits();
        let biased = ((bits >> 52) & 0x7FF) as i32;
        let fraction = bits & ((1 << 52) - 1);
        // |d| = mantissa * 2^shift exactly.
        let (mantissa, shift) = if biased == 0 {
            (fraction, -1074) // subnormal
        } else {
            (fraction | (1 << 52), biased - 1075)
        };
        encode_finite(out, d < 0.0, mantissa, shift);
    }
}

/// A nonzero finite number `±mantissa * 2^shift` (mantissa > 0) in a form that is the same
/// for every way of writing the value: class byte, the binary exponent of the leading one
/// bit (`floor(log2 |x|)`, 2 bytes, sign-flipped big-endian), and the 64 bits after the
/// leading one, left-aligned (every i64 and f64 has at most 63 of them). Negative numbers
/// complement exponent and bits so larger magnitudes sort lower.
fn encode_finite(out: &mut Vec<u8>, negative: bool, mantissa: u64, shift: i32) {
    debug_assert!(mantissa != 0);
    let lz = mantissa.leading_zeros();
    let exponent = (63 - lz as i32) + shift; // in -1074..=1023
    let bits = mantissa.checked_shl(lz + 1).unwrap_or(0);
    #[allow(clippy::cast_possible_truncation)] // the exponent is in -1074..=1023
    let exp = ((exponent as i16).cast_unsigned() ^ 0x8000).to_be_bytes();
    let bits = bits.to_be_bytes();
    if negative {
        out.push(NUM_NEG);
        out.extend(exp.iter().map(|b| !b));
        out.extend(bits.iter().map(|b| !b));
    } else {
        out.push(NUM_POS);
        out.extend_from_slice(&exp);
        out.extend_from_slice(&bits);
    }
}

/// One index field: dotted path (e.g. "user.email") and direction.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct KeyField {
    pub path: String,
    pub descending: bool,
}

/// What one indexed path reaches in one document.
#[derive(Default)]
struct Reach<'a> {
    /// The path's components.
    parts: Vec<String>,
    /// The values the path reached (before the final array expansion), as the filter's
    /// `Reached::values`.
    values: Vec<&'a Bson>,
    /// As the filter's `Reached::missing`.
    missing: bool,
    /// Every array this path expanded (by address), with the index of the path component
    /// naming the field that holds it.
    arrays: Vec<(*const Vec<Bson>, usize)>,
}

impl Reach<'_> {
    /// The first array this path expanded that `other` did not, by field name.
    fn own_array(&self, other: &Reach<'_>) -> Option<&str> {
        self.arrays
            .iter()
            .find(|(p, _)| !other.arrays.iter().any(|(q, _)| q == p))
            .map(|(_, at)| self.parts[*at].as_str())
    }
}

/// Walks the path from `v` (reached through component `at`) exactly as
/// `crate::query::path` does, also recording the arrays it expands.
fn walk<'a>(v: &'a Bson, at: usize, out: &mut Reach<'a>) {
    let next_at = at + 1;
    let Some(head) = out.parts.get(next_at) else {
        if let Bson::Array(items) = v {
            out.arrays.push((items as *const Vec<Bson>, at));
        }
        out.values.push(v);
        return;
    };
    match v {
        Bson::Document(d) => match d.get(head) {
            Some(next) => walk(next, next_at, out),
            None => out.missing = true,
        },
        Bson::Array(items) => {
            let positional = index_of(head).and_then(|i| items.get(i));
            if let Some(item) = positional {
                // The element stands for the array's field: its name stays the array's.
                walk_positional(item, at, next_at, out);
            }
            // Positional access alone (`a.0` into an array of scalars) is not an
            // expansion; implicit traversal of the array's documents, or a component that
            // cannot index the array, is.
            let mut expanded = positional.is_none();
            for item in items {
                if let Bson::Document(d) = item {
                    expanded = true;
                    let head = &out.parts[next_at];
                    match d.get(head) {
                        Some(next) => walk(next, next_at, out),
                        None => out.missing = true,
                    }
                }
            }
            if expanded {
                out.arrays.push((items as *const Vec<Bson>, at));
            }
        }
        _ => out.missing = true,
    }
}

/// [`walk`] from an array element reached by the numeric component `index_at`; arrays met
/// at its end are reported under the name of the array holding it (component `name_at`).
fn walk_positional<'a>(item: &'a Bson, name_at: usize, index_at: usize, out: &mut Reach<'a>) {
    if index_at + 1 == out.parts.len() {
        if let Bson::Array(items) = item {
            out.arrays.push((items as *const Vec<Bson>, name_at));
        }
        out.values.push(item);
    } else {
        walk(item, index_at, out);
    }
}

fn reach<'a>(doc: &'a Document, path: &str) -> Reach<'a> {
    let mut out = Reach {
        parts: split(path),
        ..Reach::default()
    };
    match doc.get(&out.parts[0]) {
        Some(v) => walk(v, 0, &mut out),
        None => out.missing = true,
    }
    out
}

/// The keys of one field: every reached value, arrays replaced by their elements (one
/// level: an element that is itself an array is a key as a whole), an empty array by
/// `undefined`, and `null` when the path is missing anywhere or reached nothing. Sorted,
/// deduplicated.
fn field_keys(r: &Reach<'_>, descending: bool) -> Vec<Vec<u8>> {
    let mut keys = Vec::new();
    let mut one = |v: &Bson| {
        let mut k = Vec::new();
        encode_value(&mut k, v, descending);
        keys.push(k);
    };
    for v in &r.values {
        match v {
            Bson::Array(items) if items.is_empty() => one(&Bson::Undefined),
            Bson::Array(items) => items.iter().for_each(&mut one),
            other => one(other),
        }
    }
    if r.missing || r.values.is_empty() {
        one(&Bson::Null);
    }
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// The key parts of a document for an index over `fields` (compound = concatenation of
/// each field's encoding, in order). Multikey: when the value reached by a path is an array
/// (or the path traverses arrays of sub-documents, MongoDB's implicit array traversal),
/// there is one key per distinct element (an empty array indexes as `undefined`, as MongoDB).
/// A missing field encodes as null. At most one field of a compound index may be an array:
/// otherwise Err(Error::invalid("cannot index parallel arrays [a] [b]")) (MongoDB's words).
/// `sparse`: when NONE of the fields exists in the document, return Ok(vec![]) (no entry).
/// Keys returned sorted and deduplicated. Also return whether any path met an array.
///
/// The keys of one field are those of every value the path reaches (walked as the filter
/// walks it: implicit traversal of arrays of documents, numeric components index arrays),
/// an array value contributing its elements instead of itself (one level: an element that
/// is an array is a key as a whole, like `[1, 2]` in `{a: [[1, 2]]}`), plus `null` when the
/// path is missing somewhere (`{a: [{b: 1}, {c: 2}]}` gives `1` and `null` for `a.b`) or
/// reaches nothing. So `{path: v}` and the range operators match a document only if one of
/// its keys is `v` or in the range. Whole arrays are not keys: `{a: [1, 2]}` is found
/// through the key of its first element, as MongoDB does.
///
/// A compound index takes every combination of its fields' keys (the cross product), so
/// fields under one shared array (`items.sku`, `items.qty`) are allowed and every
/// combination a filter could match is present. Two fields that each expand an array the
/// other does not (`{a: [1], b: [2]}`, or `b` and `c` in `{a: [{b: [1], c: [2]}]}`) are
/// parallel arrays and refused.
pub(crate) fn document_keys(
    doc: &Document,
    fields: &[KeyField],
    sparse: bool,
) -> Result<(Vec<Vec<u8>>, bool /*multikey*/)> {
    let reaches: Vec<Reach<'_>> = fields.iter().map(|f| reach(doc, &f.path)).collect();
    if sparse && reaches.iter().all(|r| r.values.is_empty()) {
        return Ok((Vec::new(), false));
    }
    check_parallel(&reaches)?;
    let multikey = reaches.iter().any(|r| !r.arrays.is_empty());
    let mut keys: Vec<Vec<u8>> = vec![Vec::new()];
    for (f, r) in fields.iter().zip(&reaches) {
        let parts = field_keys(r, f.descending);
        keys = if parts.len() == 1 {
            keys.into_iter()
                .map(|mut k| {
                    k.extend_from_slice(&parts[0]);
                    k
                })
                .collect()
        } else {
            let mut next = Vec::with_capacity(keys.len() * parts.len());
            for k in &keys {
                for p in &parts {
                    let mut c = Vec::with_capacity(k.len() + p.len());
                    c.extend_from_slice(k);
                    c.extend_from_slice(p);
                    next.push(c);
                }
            }
            next
        };
    }
    keys.sort_unstable();
    keys.dedup();
    Ok((keys, multikey))
}

/// Refuses two fields that each expanded an array the other did not.
fn check_parallel(reaches: &[Reach<'_>]) -> Result<()> {
    for (i, a) in reaches.iter().enumerate() {
        for b in &reaches[i + 1..] {
            if let (Some(x), Some(y)) = (a.own_array(b), b.own_array(a)) {
                return Err(Error::invalid(format!(
                    "cannot index parallel arrays [{x}] [{y}]"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
