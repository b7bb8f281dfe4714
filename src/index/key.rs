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
    ((i as u64) ^ (1 << 63)).to_be_bytes()
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
    let exp = ((exponent as i16 as u16) ^ 0x8000).to_be_bytes();
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
mod tests {
    use super::*;
    use crate::query::compare::compare;
    use crate::query::filter::Filter;
    use bson::spec::BinarySubtype;
    use bson::{bson, doc, Decimal128};
    use std::cmp::Ordering;

    /// xorshift64*: deterministic, no dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn pick<T: Clone>(&mut self, xs: &[T]) -> T {
            xs[self.below(xs.len())].clone()
        }
        fn coin(&mut self) -> bool {
            self.next() & 1 == 1
        }
    }

    fn enc(v: &Bson) -> Vec<u8> {
        let mut out = Vec::new();
        encode_value(&mut out, v, false);
        out
    }

    fn enc_desc(v: &Bson) -> Vec<u8> {
        let mut out = Vec::new();
        encode_value(&mut out, v, true);
        out
    }

    fn dec(s: &str) -> Bson {
        Bson::Decimal128(s.parse::<Decimal128>().unwrap())
    }

    fn regex(pattern: &str, options: &str) -> Bson {
        Bson::RegularExpression(bson::Regex {
            pattern: pattern.try_into().unwrap(),
            options: options.try_into().unwrap(),
        })
    }

    const P53: i64 = 1 << 53;

    /// compare.rs compares an int64 with a double in [2^63, 9.3e18) (or the negative
    /// range below -2^63) wrongly (the double is truncated with a saturating cast); the
    /// random oracle stays out of that range and `compare_rs_disagreement` pins it.
    fn in_compare_gap(d: f64) -> bool {
        let m = d.abs();
        (9_223_372_036_854_775_808.0..9.3e18).contains(&m) && d != -9_223_372_036_854_775_808.0
    }

    fn gen_number(r: &mut Rng) -> Bson {
        let ints = [
            i64::MIN,
            i64::MIN + 1,
            i64::MAX,
            i64::MAX - 1,
            P53 - 1,
            P53,
            P53 + 1,
            -(P53 + 1),
            i64::from(i32::MIN),
            i64::from(i32::MAX),
            0,
            1,
            -1,
            2,
            1_000_000_000_000_000_000,
        ];
        let floats = [
            0.0,
            -0.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1.0,
            -1.0,
            0.5,
            1.5,
            -2.5,
            P53 as f64,
            (P53 + 2) as f64,
            9_007_199_254_740_993.0,
            -9_223_372_036_854_775_808.0,
            f64::MIN_POSITIVE,
            f64::MIN_POSITIVE / 2.0,
            5e-324,
            -5e-324,
            f64::MAX,
            f64::MIN,
            1e18,
            9.2e18,
            9.4e18,
            f64::EPSILON,
            0.1,
        ];
        let decimals = [
            "1",
            "1.0",
            "-0",
            "0",
            "0E+5",
            "0.1",
            "0.5",
            "1E+3",
            "1000",
            "-2.5",
            "NaN",
            "Infinity",
            "-Infinity",
            "9007199254740993",
            "1E+400",
            "1E-400",
            "12345678901234567890",
            "3",
        ];
        let as_int = |i: i64, r: &mut Rng| match i32::try_from(i) {
            Ok(small) if r.coin() => Bson::Int32(small),
            _ => Bson::Int64(i),
        };
        match r.below(8) {
            0 => as_int(r.pick(&ints), r),
            1 => Bson::Double(r.pick(&floats)),
            2 => dec(r.pick(&decimals)),
            3 => as_int(r.below(7) as i64 - 3, r),
            4 => Bson::Double((r.below(25) as f64 - 12.0) / 4.0),
            5 => as_int(r.next() as i64 >> r.below(64), r),
            6 => {
                let d = f64::from_bits(r.next());
                Bson::Double(if in_compare_gap(d) { 1.25 } else { d })
            }
            _ => {
                // Integers as doubles near 2^53 and random magnitudes, and their neighbours.
                let base = (r.next() as i64) >> r.below(64);
                match r.below(3) {
                    0 => Bson::Int64(base),
                    1 if in_compare_gap(base as f64) => Bson::Double(-0.0),
                    1 => Bson::Double(base as f64),
                    _ => Bson::Int64(P53 + r.below(5) as i64 - 2),
                }
            }
        }
    }

    fn gen_string(r: &mut Rng) -> String {
        let pieces = ["a", "b", "\0", "é", "\u{7f}", "\u{10000}", "ab", "\u{1}"];
        (0..r.below(4)).map(|_| r.pick(&pieces)).collect()
    }

    fn gen_value(r: &mut Rng, depth: usize) -> Bson {
        let kinds = if depth >= 3 { 17 } else { 19 };
        match r.below(kinds) {
            0..=3 => gen_number(r),
            4 => Bson::String(gen_string(r)),
            5 => Bson::Symbol(gen_string(r)),
            6 => r.pick(&[Bson::Null, Bson::Undefined, Bson::MinKey, Bson::MaxKey]),
            7 => Bson::Binary(bson::Binary {
                subtype: BinarySubtype::from(r.pick(&[0u8, 1, 4, 0x80])),
                bytes: (0..r.below(4)).map(|_| r.pick(&[0u8, 1, 0xFF])).collect(),
            }),
            8 => {
                let mut b = [0u8; 12];
                for x in &mut b {
                    *x = r.pick(&[0u8, 1, 0xFF]);
                }
                Bson::ObjectId(bson::oid::ObjectId::from_bytes(b))
            }
            9 => Bson::Boolean(r.coin()),
            10 => {
                let any = r.next() as i64;
                let ms = r.pick(&[i64::MIN, -1, 0, 1, i64::MAX, any]);
                Bson::DateTime(bson::DateTime::from_millis(ms))
            }
            11 => Bson::Timestamp(bson::Timestamp {
                time: r.pick(&[0, 1, u32::MAX]),
                increment: r.pick(&[0, 1, u32::MAX]),
            }),
            12 => regex(r.pick(&["", "a", "a.*", "b"]), r.pick(&["", "i", "im"])),
            13 => Bson::JavaScriptCode(gen_string(r)),
            14 | 15 => gen_number(r),
            16 => Bson::String(gen_string(r)),
            17 => {
                let mut d = Document::new();
                for _ in 0..r.below(4) {
                    let name = r.pick(&["a", "b", "", "a\0", "é"]);
                    d.insert(name, gen_value(r, depth + 1));
                }
                Bson::Document(d)
            }
            _ => Bson::Array((0..r.below(4)).map(|_| gen_value(r, depth + 1)).collect()),
        }
    }

    #[test]
    fn byte_order_is_compare_order_on_random_pairs() {
        let mut r = Rng(0x9E37_79B9_7F4A_7C15);
        let pool: Vec<(Bson, Vec<u8>)> = (0..4000)
            .map(|_| {
                let v = gen_value(&mut r, 0);
                let e = enc(&v);
                (v, e)
            })
            .collect();
        for (v, e) in &pool {
            let rank = type_rank(v);
            assert!(
                type_prefix(rank) <= e[0] && e[0] < type_prefix(rank + 1),
                "{v:?}"
            );
            let d = enc_desc(v);
            assert!(d.iter().zip(e).all(|(a, b)| *a == !*b) && d.len() == e.len());
        }
        let mut equal_pairs = 0;
        for i in 0..100_000 {
            // Every tenth pair is a value with itself or a neighbour in generation order.
            let a = r.below(pool.len());
            let b = if i % 10 == 0 {
                (a + r.below(2)) % pool.len()
            } else {
                r.below(pool.len())
            };
            let ((va, ea), (vb, eb)) = (&pool[a], &pool[b]);
            let want = compare(va, vb);
            assert_eq!(ea.cmp(eb), want, "{va:?} vs {vb:?}");
            assert_eq!(
                enc_desc(va).cmp(&enc_desc(vb)),
                want.reverse(),
                "descending {va:?} vs {vb:?}"
            );
            if ea == eb {
                equal_pairs += 1;
            } else {
                assert!(
                    !ea.starts_with(eb) && !eb.starts_with(ea),
                    "prefix: {va:?} {vb:?}"
                );
                // Whatever follows (a compound key's next field, the _id key) cannot
                // change the order.
                let mut xa = ea.clone();
                xa.extend_from_slice(&[0xFF, 0xFF]);
                let mut xb = eb.clone();
                xb.push(0x00);
                assert_eq!(xa.cmp(&xb), want, "suffixed {va:?} vs {vb:?}");
            }
        }
        assert!(equal_pairs > 1000, "{equal_pairs}");
        // The order is total and agrees with compare.rs along the whole sorted pool.
        let mut sorted: Vec<&(Bson, Vec<u8>)> = pool.iter().collect();
        sorted.sort_by(|x, y| x.1.cmp(&y.1));
        for w in sorted.windows(2) {
            let o = compare(&w[0].0, &w[1].0);
            assert_ne!(o, Ordering::Greater, "{:?} {:?}", w[0].0, w[1].0);
            assert_eq!(o == Ordering::Equal, w[0].1 == w[1].1);
        }
    }

    #[test]
    fn equal_numbers_of_every_type_encode_identically() {
        for group in [
            vec![
                Bson::Int32(1),
                Bson::Int64(1),
                Bson::Double(1.0),
                dec("1"),
                dec("1.0"),
                dec("0.1E+1"),
            ],
            vec![
                Bson::Int32(0),
                Bson::Int64(0),
                Bson::Double(0.0),
                Bson::Double(-0.0),
                dec("0"),
                dec("-0"),
                dec("0E+10"),
            ],
            vec![
                Bson::Int32(-7),
                Bson::Int64(-7),
                Bson::Double(-7.0),
                dec("-7"),
            ],
            vec![Bson::Int64(P53), Bson::Double(P53 as f64)],
            vec![
                Bson::Int64(i64::MIN),
                Bson::Double(-9_223_372_036_854_775_808.0),
            ],
            vec![Bson::Double(f64::NAN), Bson::Double(-f64::NAN), dec("NaN")],
            vec![Bson::Double(f64::INFINITY), dec("Infinity"), dec("1E+400")],
            vec![Bson::Double(0.5), dec("0.5"), dec("5E-1")],
        ] {
            for v in &group {
                assert_eq!(enc(v), enc(&group[0]), "{v:?} vs {:?}", group[0]);
            }
        }
    }

    #[test]
    fn large_integers_stay_exact() {
        let ordered = [
            Bson::Double(f64::NAN),
            Bson::Double(f64::NEG_INFINITY),
            Bson::Double(f64::MIN),
            Bson::Int64(i64::MIN),
            Bson::Int64(i64::MIN + 1),
            Bson::Int64(-(P53 + 1)),
            Bson::Double(-(P53 as f64)),
            Bson::Double(-1.5),
            Bson::Int32(-1),
            Bson::Double(-5e-324),
            Bson::Int32(0),
            Bson::Double(5e-324),
            Bson::Double(f64::MIN_POSITIVE),
            Bson::Double(0.1),
            Bson::Int32(1),
            Bson::Double(1.000_000_000_000_000_2),
            Bson::Int64(P53 - 1),
            Bson::Double(9_007_199_254_740_993.0), // rounds to 2^53
            Bson::Int64(P53 + 1),
            Bson::Double((P53 + 2) as f64),
            Bson::Int64(P53 + 3),
            Bson::Int64(i64::MAX - 1),
            Bson::Int64(i64::MAX),
            Bson::Double(9.4e18),
            Bson::Double(f64::MAX),
            Bson::Double(f64::INFINITY),
        ];
        for w in ordered.windows(2) {
            assert!(enc(&w[0]) < enc(&w[1]), "{:?} < {:?}", w[0], w[1]);
            assert_eq!(compare(&w[0], &w[1]), Ordering::Less);
        }
        assert_eq!(
            enc(&Bson::Double(P53 as f64)),
            enc(&Bson::Double(9_007_199_254_740_993.0))
        );
    }

    /// Where compare.rs is not an order, the encoding follows the numbers (and MongoDB).
    #[test]
    fn compare_rs_disagreement() {
        let two63 = Bson::Double(9_223_372_036_854_775_808.0);
        let max = Bson::Int64(i64::MAX);
        // compare.rs truncates 2^63 with a saturating cast to i64::MAX and calls them equal
        // (and 9.25e18 too, though 2^63 < 9.25e18); the keys keep i64::MAX < 2^63.
        assert_eq!(compare(&max, &two63), Ordering::Equal);
        assert!(enc(&max) < enc(&two63));
        assert!(enc(&two63) < enc(&Bson::Double(9.25e18)));
        // Code with scope: compare.rs calls it equal to any code; keys order by code first.
        let cws = |code: &str| {
            Bson::JavaScriptCodeWithScope(bson::JavaScriptCodeWithScope {
                code: code.into(),
                scope: doc! {"x": 1},
            })
        };
        let order = [
            Bson::JavaScriptCode("a".into()),
            cws("a"),
            Bson::JavaScriptCode("a\0".into()),
            cws("b"),
            Bson::JavaScriptCode("b\0".into()),
            Bson::MaxKey,
        ];
        for w in order.windows(2) {
            let (x, y) = (enc(&w[0]), enc(&w[1]));
            assert!(x < y && !y.starts_with(&x), "{:?} < {:?}", w[0], w[1]);
        }
    }

    #[test]
    fn fixed_layouts() {
        assert_eq!(enc(&Bson::MinKey), [0x10]);
        assert_eq!(enc(&Bson::Null), [0x20]);
        assert_eq!(enc(&Bson::Undefined), [0x20]);
        assert_eq!(enc(&Bson::Int32(0)), [0x33]);
        assert_eq!(enc(&Bson::Double(f64::NAN)), [0x30]);
        // 1 = 2^0: exponent 0 (0x8000), no bits after the leading one.
        assert_eq!(
            enc(&Bson::Int32(1)),
            [0x34, 0x80, 0x00, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        // -1.5 = -(2^0 * 1.1b): exponent and bits complemented.
        assert_eq!(
            enc(&Bson::Double(-1.5)),
            [0x32, 0x7F, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
        );
        // The smallest subnormal, 2^-1074: exponent -1074 = 0x8000 - 1074.
        assert_eq!(
            enc(&Bson::Double(5e-324)),
            [0x34, 0x7B, 0xCE, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            enc(&bson!("a\0b")),
            [0x40, b'a', 0x00, 0xFF, b'b', 0x00, 0x00]
        );
        assert_eq!(
            enc(&bson!({"a": true})),
            [0x50, 0x90, b'a', 0, 0, 0x90, 0x01, 0x00]
        );
        assert_eq!(enc(&bson!([])), [0x60, 0x00]);
        assert_eq!(enc(&Bson::MaxKey), [0xF0]);
        assert_eq!(type_prefix(15), 0xFF);
        for rank in 0..15 {
            assert!(type_prefix(rank) < type_prefix(rank + 1));
        }
    }

    #[test]
    fn db_pointers_are_all_equal_as_in_compare() {
        let p = |oid: &str| {
            Bson::try_from(serde_json::json!({
                "$dbPointer": {"$ref": "c", "$id": {"$oid": oid}}
            }))
            .unwrap()
        };
        let (a, b) = (p("000000000000000000000001"), p("000000000000000000000002"));
        assert!(matches!(a, Bson::DbPointer(_)));
        assert_eq!(compare(&a, &b), Ordering::Equal);
        assert_eq!(enc(&a), enc(&b));
        assert_eq!(enc(&a), [type_prefix(12)]);
    }

    fn asc(path: &str) -> KeyField {
        KeyField {
            path: path.into(),
            descending: false,
        }
    }

    fn desc(path: &str) -> KeyField {
        KeyField {
            path: path.into(),
            descending: true,
        }
    }

    fn keys(d: &Document, fields: &[KeyField]) -> (Vec<Vec<u8>>, bool) {
        document_keys(d, fields, false).unwrap()
    }

    fn expect(values: &[Bson]) -> Vec<Vec<u8>> {
        let mut v: Vec<Vec<u8>> = values.iter().map(enc).collect();
        v.sort();
        v.dedup();
        v
    }

    #[test]
    fn single_field_keys() {
        let f = [asc("a")];
        assert_eq!(keys(&doc! {"a": 5}, &f), (expect(&[bson!(5)]), false));
        assert_eq!(keys(&doc! {"b": 5}, &f), (expect(&[Bson::Null]), false));
        // Multikey, deduplicated across number types.
        assert_eq!(
            keys(&doc! {"a": [3, 1, 1.0, 1_i64, 3]}, &f),
            (expect(&[bson!(1), bson!(3)]), true)
        );
        // An empty array is undefined (which compare.rs, and so the key, equals null).
        assert_eq!(
            keys(&doc! {"a": []}, &f),
            (expect(&[Bson::Undefined]), true)
        );
        // A nested array is one key, not expanded further.
        assert_eq!(
            keys(&doc! {"a": [[1, 2], 3]}, &f),
            (expect(&[bson!([1, 2]), bson!(3)]), true)
        );
        // Sub-documents are keys as values.
        assert_eq!(
            keys(&doc! {"a": {"x": 1}}, &f),
            (expect(&[bson!({"x": 1})]), false)
        );
    }

    #[test]
    fn dotted_paths_traverse_arrays_of_documents() {
        let ab = [asc("a.b")];
        assert_eq!(
            keys(&doc! {"a": [{"b": 1}, {"b": [2, 3]}]}, &ab),
            (expect(&[bson!(1), bson!(2), bson!(3)]), true)
        );
        // An element lacking the field contributes null (the filter's {a.b: null} matches).
        assert_eq!(
            keys(&doc! {"a": [{"b": 1}, {"c": 2}]}, &ab),
            (expect(&[bson!(1), Bson::Null]), true)
        );
        assert_eq!(
            keys(&doc! {"a": {"b": {"c": 1}}}, &ab),
            (expect(&[bson!({"c": 1})]), false)
        );
        // Scalars in the way: nothing reached, null.
        assert_eq!(keys(&doc! {"a": 5}, &ab), (expect(&[Bson::Null]), false));
        assert_eq!(
            keys(&doc! {"a": [1, 2]}, &ab),
            (expect(&[Bson::Null]), true)
        );
        // Arrays of arrays are not traversed by a path.
        assert_eq!(
            keys(&doc! {"a": [[{"b": 1}]]}, &ab),
            (expect(&[Bson::Null]), true)
        );
        // Numeric components index arrays; positional access is not multikey.
        assert_eq!(
            keys(&doc! {"a": [7, 8]}, &[asc("a.1")]),
            (expect(&[bson!(8)]), false)
        );
        assert_eq!(
            keys(&doc! {"a": [{"b": 1}, {"b": 2}]}, &[asc("a.1.b")]),
            // The implicit traversal finds no field "1" in the elements: null too, as the
            // filter's {"a.1.b": null} matches.
            (expect(&[bson!(2), Bson::Null]), true)
        );
        assert_eq!(
            keys(&doc! {"a": [[1, 2]]}, &[asc("a.0")]),
            (expect(&[bson!(1), bson!(2)]), true)
        );
    }

    #[test]
    fn compound_keys() {
        let f = [asc("a"), desc("b")];
        let (k, multi) = keys(&doc! {"a": 1, "b": "x"}, &f);
        let mut want = enc(&bson!(1));
        want.extend(enc_desc(&bson!("x")));
        assert_eq!((k, multi), (vec![want], false));

        // One array: one key per element.
        let (k, multi) = keys(&doc! {"a": [2, 1, 2], "b": "x"}, &f);
        assert!(multi);
        assert_eq!(k.len(), 2);
        assert!(k.windows(2).all(|w| w[0] < w[1]));

        // Fields under one shared array: every combination.
        let (k, multi) = keys(
            &doc! {"a": [{"b": 1, "c": 2}, {"b": 3, "c": 4}]},
            &[asc("a.b"), asc("a.c")],
        );
        assert!(multi);
        assert_eq!(k.len(), 4);
        // ... also when one of them has its own array below the shared one.
        let (k, _) = keys(
            &doc! {"a": [{"b": [1, 2], "c": 3}]},
            &[asc("a.b"), asc("a.c")],
        );
        assert_eq!(k.len(), 2);

        // Missing fields: null.
        let (k, _) = keys(&doc! {"z": 1}, &f);
        let mut want = enc(&Bson::Null);
        want.extend(enc_desc(&Bson::Null));
        assert_eq!(k, vec![want]);
    }

    #[test]
    fn parallel_arrays_are_refused() {
        let f = [asc("a"), asc("b")];
        let err = |d: Document, f: &[KeyField]| match document_keys(&d, f, false) {
            Err(Error::InvalidArgument(m)) => m,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            err(doc! {"a": [1], "b": [2]}, &f),
            "cannot index parallel arrays [a] [b]"
        );
        assert_eq!(
            err(doc! {"a": [], "b": [2, 3]}, &f),
            "cannot index parallel arrays [a] [b]"
        );
        assert_eq!(
            err(
                doc! {"a": [{"b": [1], "c": [2]}]},
                &[asc("a.b"), asc("a.c")]
            ),
            "cannot index parallel arrays [b] [c]"
        );
        // Sparse does not skip the check when one field exists.
        assert!(document_keys(&doc! {"a": [1], "b": [2]}, &f, true).is_err());
        assert!(document_keys(&doc! {"a": [1], "b": 2}, &f, false).is_ok());
    }

    #[test]
    fn sparse_indexes_skip_documents_without_the_fields() {
        let f = [asc("a"), asc("b.c")];
        assert_eq!(
            document_keys(&doc! {"x": 1}, &f, true).unwrap(),
            (vec![], false)
        );
        assert_eq!(
            document_keys(&doc! {"b": [1, 2]}, &f, true).unwrap(),
            (vec![], false)
        );
        let (k, _) = document_keys(&doc! {"x": 1}, &f, false).unwrap();
        assert_eq!(k.len(), 1);
        // One existing field is enough (null counts as existing).
        let (k, _) = document_keys(&doc! {"a": Bson::Null}, &f, true).unwrap();
        assert_eq!(k.len(), 1);
        let (k, _) = document_keys(&doc! {"b": {"c": 1}}, &f, true).unwrap();
        assert_eq!(k.len(), 1);
    }

    fn gen_doc_value(r: &mut Rng, depth: usize) -> Bson {
        let scalars = [
            bson!(0),
            bson!(1),
            bson!(2.0),
            bson!(2.5),
            bson!("x"),
            bson!("y"),
            Bson::Null,
            Bson::Boolean(true),
            Bson::Int64(P53 + 1),
        ];
        let names = ["b", "c", "0", "1"];
        match r.below(if depth >= 3 { 3 } else { 6 }) {
            0..=2 => r.pick(&scalars),
            3 | 4 => Bson::Array(
                (0..r.below(4))
                    .map(|_| gen_doc_value(r, depth + 1))
                    .collect(),
            ),
            _ => {
                let mut d = Document::new();
                for _ in 0..r.below(3) {
                    d.insert(r.pick(&names), gen_doc_value(r, depth + 1));
                }
                Bson::Document(d)
            }
        }
    }

    /// The planner's contract: when `{path: v}` (or a range on `v`) matches a document,
    /// the document has a key equal to `encode(v)` (in the range, within v's type).
    #[test]
    fn every_filter_match_has_a_key() {
        let mut r = Rng(0xDEAD_BEEF_1234_5678);
        let paths = [
            "a", "a.b", "a.c", "a.0", "a.1", "a.b.c", "a.0.b", "a.b.0", "b",
        ];
        let mut candidates = vec![
            bson!(0),
            bson!(1),
            bson!(1.0),
            bson!(2),
            bson!(2.5),
            bson!("x"),
            bson!("y"),
            Bson::Null,
            Bson::Boolean(true),
            Bson::Int64(P53 + 1),
            Bson::Double(P53 as f64),
            bson!({"b": 1}),
            bson!({"c": "x"}),
            bson!({}),
        ];
        let arrays = [
            bson!([]),
            bson!([1]),
            bson!([1, 2]),
            bson!(["x", 1]),
            bson!([[]]),
        ];
        candidates.extend(arrays.iter().cloned());
        let mut checked = 0;
        for _ in 0..3000 {
            let mut d = Document::new();
            for name in ["a", "b"] {
                if r.below(4) != 0 {
                    d.insert(name, gen_doc_value(&mut r, 0));
                }
            }
            for path in paths {
                let (ks, _) = match document_keys(&d, &[asc(path)], false) {
                    Ok(k) => k,
                    Err(e) => panic!("{d} {path}: {e:?}"),
                };
                let (dks, _) = document_keys(&d, &[desc(path)], false).unwrap();
                let mut flipped: Vec<Vec<u8>> =
                    ks.iter().map(|k| k.iter().map(|b| !b).collect()).collect();
                flipped.sort();
                assert_eq!(dks, flipped);
                for v in &candidates {
                    let matches = |op: Option<&str>| {
                        let cond = match op {
                            None => v.clone(),
                            Some(op) => bson!({ op: v.clone() }),
                        };
                        Filter::parse(&doc! { path: cond }).unwrap().matches(&d)
                    };
                    if matches(None) {
                        checked += 1;
                        let found = match v {
                            // As MongoDB: the whole array, or its first element
                            // (undefined for the empty array).
                            Bson::Array(items) => {
                                let first = items.first().unwrap_or(&Bson::Undefined);
                                ks.contains(&enc(v)) || ks.contains(&enc(first))
                            }
                            _ => ks.contains(&enc(v)),
                        };
                        assert!(found, "{d} {{{path}: {v}}} matches but no key");
                    }
                    if matches!(v, Bson::Null | Bson::Array(_)) {
                        continue;
                    }
                    let e = enc(v);
                    let end = [type_prefix(type_rank(v) + 1)];
                    let start = [type_prefix(type_rank(v))];
                    for (op, ok) in [
                        (
                            "$gt",
                            &(|k: &[u8]| k > &e[..] && k < &end[..]) as &dyn Fn(&[u8]) -> bool,
                        ),
                        ("$gte", &|k: &[u8]| k >= &e[..] && k < &end[..]),
                        ("$lt", &|k: &[u8]| k < &e[..] && k >= &start[..]),
                        ("$lte", &|k: &[u8]| k <= &e[..] && k >= &start[..]),
                    ] {
                        if matches(Some(op)) {
                            checked += 1;
                            assert!(
                                ks.iter().any(|k| ok(k)),
                                "{d} {{{path}: {{{op}: {v}}}}} matches but no key in range"
                            );
                        }
                    }
                }
            }
        }
        assert!(checked > 10_000, "{checked}");
    }
}
