//! Property test: a filter evaluated on a stored document's BSON bytes ([`Filter::matches_raw`],
//! what scans do) answers what it answers on the decoded document ([`Filter::matches`], what
//! updates, `$pull` and the cache's documents use), for generated documents (every BSON type
//! the comparisons bracket, nested documents and arrays, numeric field names) and generated
//! filters (comparisons across types, `$in`/`$nin` with regexes, `$exists`, `$type`,
//! `$and`/`$or`/`$nor`/`$not`, dotted paths through arrays, `$elemMatch`, `$size`, `$all`,
//! `$regex`, `$mod`). `tests/integration/query_raw_vs_owned.rs` runs a fixed-seed version through the
//! public hooks; this one generates wider and shrinks a failure to a small filter and document.

use super::Filter;
use bson::spec::BinarySubtype;
use bson::{doc, Bson, Document, RawDocumentBuf};
use proptest::prelude::*;
use proptest::test_runner::{TestError, TestRunner};
use std::cell::Cell;
use std::fmt;

/// A regex value (bson keeps its parts as C strings).
fn re(pattern: &str, options: &str) -> Bson {
    Bson::RegularExpression(bson::Regex {
        pattern: pattern.try_into().unwrap(),
        options: options.try_into().unwrap(),
    })
}

/// A document shown as extended JSON in a failure (bson's `Debug` is hard to read).
#[derive(Clone)]
struct Shown(Document);

impl fmt::Debug for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Field names of generated documents and path components of filters: "0" and "1" are also
/// array positions, so a path like `a.0` means an element or a field depending on the data.
const NAMES: [&str; 5] = ["a", "b", "c", "0", "1"];

fn name() -> impl Strategy<Value = &'static str> {
    prop::sample::select(&NAMES[..])
}

/// Scalars of every type that comparisons bracket, with values that collide across types
/// (1 as int, long, double, decimal), and the edge cases of numbers (NaN, -0, infinity).
fn scalar() -> BoxedStrategy<Bson> {
    prop_oneof![
        (-2i32..3).prop_map(Bson::Int32),
        (-2i64..3).prop_map(Bson::Int64),
        prop_oneof![
            4 => (-4i32..6).prop_map(|x| f64::from(x) / 2.0),
            1 => prop::sample::select(vec![f64::NAN, -0.0, f64::INFINITY, f64::NEG_INFINITY]),
        ]
        .prop_map(Bson::Double),
        prop::sample::select(vec!["1", "2", "-0", "2.50", "NaN", "Infinity"])
            .prop_map(|d| Bson::Decimal128(d.parse().expect("decimal"))),
        prop::sample::select(vec!["", "a", "ab", "b", "B", "1"])
            .prop_map(|s| Bson::String(s.into())),
        Just(Bson::Null),
        any::<bool>().prop_map(Bson::Boolean),
        (-1i64..2).prop_map(|m| Bson::DateTime(bson::DateTime::from_millis(m))),
        (0u8..3).prop_map(|b| Bson::ObjectId(bson::oid::ObjectId::from_bytes([b; 12]))),
        (0u8..3).prop_map(|b| Bson::Binary(bson::Binary {
            subtype: if b == 2 {
                BinarySubtype::Uuid
            } else {
                BinarySubtype::Generic
            },
            bytes: vec![b; usize::from(b)],
        })),
        (0u32..3).prop_map(|t| Bson::Timestamp(bson::Timestamp {
            time: t,
            increment: 1
        })),
        Just(Bson::MinKey),
        Just(Bson::MaxKey),
    ]
    .boxed()
}

/// Values as stored: scalars (plus types only documents hold), arrays (of arrays too) and
/// documents, three levels deep at most.
fn value() -> BoxedStrategy<Bson> {
    let leaf = prop_oneof![
        12 => scalar(),
        1 => Just(Bson::Undefined),
        1 => Just(Bson::Symbol("a".into())),
        1 => Just(re("^a", "")),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Bson::Array),
            prop::collection::vec((name(), inner), 0..3).prop_map(|fields| Bson::Document(
                fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
            )),
        ]
    })
    .boxed()
}

/// Operands of filters: values without the document-only types.
fn operand() -> BoxedStrategy<Bson> {
    scalar()
        .prop_recursive(2, 8, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Bson::Array),
                prop::collection::vec((name(), inner), 1..3).prop_map(|fields| Bson::Document(
                    fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
                )),
            ]
        })
        .boxed()
}

fn document() -> impl Strategy<Value = Shown> {
    prop::collection::vec((prop::sample::select(vec!["a", "b", "c"]), value()), 0..4)
        .prop_map(|fields| Shown(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
}

fn path() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["a", "b", "c"]),
        prop::collection::vec(name(), 0..3),
    )
        .prop_map(|(first, rest)| {
            std::iter::once(first)
                .chain(rest)
                .collect::<Vec<_>>()
                .join(".")
        })
}

fn regex() -> impl Strategy<Value = Bson> {
    prop::sample::select(vec![("^a", ""), ("b$", "i"), ("^$", ""), ("1", "")])
        .prop_map(|(p, o)| re(p, o))
}

/// `$type`'s operand: a name, a number, or an array of them.
fn type_operand() -> impl Strategy<Value = Bson> {
    let one = prop_oneof![
        prop::sample::select(vec![
            "double",
            "string",
            "object",
            "array",
            "binData",
            "undefined",
            "objectId",
            "bool",
            "date",
            "null",
            "regex",
            "symbol",
            "int",
            "timestamp",
            "long",
            "decimal",
            "minKey",
            "maxKey",
            "number",
        ])
        .prop_map(|s| Bson::String(s.into())),
        prop::sample::select(vec![1, 2, 3, 4, 10, 16, 18, 19, -1, 127]).prop_map(Bson::Int32),
    ];
    prop_oneof![
        3 => one.clone(),
        1 => prop::collection::vec(one, 1..3).prop_map(Bson::Array),
    ]
}

/// One operator of an operator document, without nested filters.
fn operator() -> BoxedStrategy<(String, Bson)> {
    let cmp = prop::sample::select(vec!["$eq", "$ne", "$gt", "$gte", "$lt", "$lte"]);
    prop_oneof![
        8 => (cmp, operand()).prop_map(|(op, v)| (op.to_owned(), v)),
        3 => (
            prop::sample::select(vec!["$in", "$nin"]),
            prop::collection::vec(prop_oneof![6 => operand(), 1 => regex()], 0..4),
        )
            .prop_map(|(op, vs)| (op.to_owned(), Bson::Array(vs))),
        2 => any::<bool>().prop_map(|b| ("$exists".to_owned(), Bson::Boolean(b))),
        2 => type_operand().prop_map(|t| ("$type".to_owned(), t)),
        1 => (0i32..3).prop_map(|n| ("$size".to_owned(), Bson::Int32(n))),
        2 => prop::collection::vec(operand(), 1..3).prop_map(|vs| ("$all".to_owned(), Bson::Array(vs))),
        1 => prop::sample::select(vec!["^a", "b", "^$"])
            .prop_map(|p| ("$regex".to_owned(), Bson::String(p.into()))),
        1 => (1i32..4, 0i32..3).prop_map(|(d, r)| ("$mod".to_owned(), bson::bson!([d, r]))),
    ]
    .boxed()
}

fn operators(ops: impl Strategy<Value = (String, Bson)>) -> impl Strategy<Value = Document> {
    prop::collection::vec(ops, 1..3).prop_map(|ops| ops.into_iter().collect())
}

/// A filter: field conditions (implicit equality, operator documents, a regex literal), and
/// around them `$and`/`$or`/`$nor`, `$not`, `$elemMatch` (over values and over documents),
/// `$all` of `$elemMatch`es, several fields in one document.
fn filter() -> impl Strategy<Value = Shown> {
    let cond = prop_oneof![
        3 => operand(),
        1 => regex(),
        6 => operators(operator()).prop_map(Bson::Document),
    ];
    let leaf = (path(), cond).prop_map(|(p, c)| doc! {p: c});
    leaf.prop_recursive(3, 16, 3, |inner| {
        let logical = prop::sample::select(vec!["$and", "$or", "$nor"]);
        let ops = || operators(operator());
        prop_oneof![
            (logical, prop::collection::vec(inner.clone(), 1..3)).prop_map(|(op, fs)| {
                doc! {op: fs.into_iter().map(Bson::Document).collect::<Vec<_>>()}
            }),
            (path(), inner.clone()).prop_map(|(p, f)| doc! {p: {"$elemMatch": f}}),
            (path(), ops()).prop_map(|(p, o)| doc! {p: {"$elemMatch": o}}),
            (path(), prop_oneof![ops().prop_map(Bson::Document), regex()])
                .prop_map(|(p, o)| doc! {p: {"$not": o}}),
            (path(), prop::collection::vec(inner.clone(), 1..3)).prop_map(|(p, fs)| {
                let all: Vec<Bson> = fs
                    .into_iter()
                    .map(|f| bson::bson!({"$elemMatch": f}))
                    .collect();
                doc! {p: {"$all": all}}
            }),
            (inner.clone(), inner).prop_map(|(mut a, b)| {
                a.extend(b);
                a
            }),
        ]
    })
    .prop_map(Shown)
}

#[test]
fn prop_filters_agree_on_bytes_and_on_decoded_documents() {
    let mut runner = TestRunner::new(crate::prop_support::config(5000, 3));
    let (matched, tried) = (Cell::new(0u64), Cell::new(0u64));
    let case = (filter(), prop::collection::vec(document(), 1..8));
    let result = runner.run(&case, |(filter, docs)| {
        let f = Filter::parse(&filter.0)
            .map_err(|e| TestCaseError::fail(format!("the generator made a bad filter: {e}")))?;
        for d in &docs {
            let owned = f.matches(&d.0);
            let raw =
                RawDocumentBuf::from_bytes(d.0.to_vec().expect("encodable")).expect("well-formed");
            prop_assert_eq!(f.matches_raw(&raw), Some(owned), "on {:?}", d);
            prop_assert_eq!(f.matches_bytes(raw.as_bytes()).ok(), Some(owned));
            matched.set(matched.get() + u64::from(owned));
            tried.set(tried.get() + 1);
        }
        Ok(())
    });
    if let Err(e) = result {
        match e {
            TestError::Fail(why, (filter, docs)) => {
                panic!("{why}\nminimal failing filter: {filter:?}\ndocuments: {docs:?}")
            }
            TestError::Abort(why) => panic!("aborted: {why}"),
        }
    }
    // The generator must make filters that match and filters that do not (checked when
    // enough cases ran to tell).
    let (m, n) = (matched.get(), tried.get());
    assert!(
        n < 1000 || (m * 20 > n && m * 20 < n * 19),
        "{m} of {n} evaluations matched"
    );
}
