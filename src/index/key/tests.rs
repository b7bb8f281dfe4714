#![allow(clippy::cast_possible_truncation)] // test arithmetic on small numbers

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
    // compare.rs once truncated 2^63 with a saturating cast to i64::MAX and called them
    // equal; since 2026-12-07 both it and the keys keep i64::MAX < 2^63 < 9.25e18.
    assert_eq!(compare(&max, &two63), Ordering::Less);
    assert_eq!(compare(&two63, &Bson::Double(9.25e18)), Ordering::Less);
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
