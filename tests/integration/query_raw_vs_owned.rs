//! Differential test of the two evaluation paths: scans evaluate filters on the stored BSON
//! bytes, other code (positional `$`, `$pull`, `$elemMatch` elements) on owned documents,
//! and cursors write JSON straight from the bytes. Random documents (nested documents and
//! arrays, every common type, missing fields) and random filters from a small grammar must
//! give the same answers both ways.
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // test arithmetic on small values

use bson::{doc, Bson, Document as BsonDocument};
use nexus::bench_hooks::CompiledFilter;
use nexus::{Database, Document, FindOptions};

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const FIELDS: [&str; 3] = ["a", "b", "c"];

fn scalar(r: &mut Rng) -> Bson {
    match r.below(9) {
        0 => Bson::Int32(r.below(5) as i32),
        1 => Bson::Int64(r.below(5) as i64),
        2 => Bson::Double(r.below(10) as f64 / 2.0),
        3 => Bson::String(["x", "y", "xy", ""][r.below(4) as usize].into()),
        4 => Bson::Null,
        5 => Bson::Boolean(r.below(2) == 0),
        6 => Bson::DateTime(bson::DateTime::from_millis(r.below(3) as i64)),
        7 => Bson::Decimal128("2".parse().expect("decimal")),
        _ => Bson::Int32(2),
    }
}

fn value(r: &mut Rng, depth: u32) -> Bson {
    match r.below(if depth > 2 { 1 } else { 4 }) {
        0 | 1 => scalar(r),
        2 => Bson::Document(document(r, depth + 1)),
        _ => Bson::Array((0..r.below(4)).map(|_| value(r, depth + 1)).collect()),
    }
}

fn document(r: &mut Rng, depth: u32) -> BsonDocument {
    let mut d = BsonDocument::new();
    for f in FIELDS {
        if r.below(3) != 0 {
            d.insert(f, value(r, depth));
        }
    }
    d
}

fn path(r: &mut Rng) -> String {
    let mut p = FIELDS[r.below(3) as usize].to_owned();
    for _ in 0..r.below(3) {
        p.push('.');
        if r.below(4) == 0 {
            p.push_str(&r.below(2).to_string());
        } else {
            p.push_str(FIELDS[r.below(3) as usize]);
        }
    }
    p
}

fn condition(r: &mut Rng) -> Bson {
    let v = scalar(r);
    let doc = match r.below(14) {
        0 => return v,
        1 => doc! {"$ne": v},
        2 => doc! {"$gt": v},
        3 => doc! {"$gte": v},
        4 => doc! {"$lt": v},
        5 => doc! {"$lte": v},
        6 => doc! {"$in": [v, scalar(r)]},
        7 => doc! {"$nin": [v]},
        8 => doc! {"$exists": r.below(2) == 0},
        9 => {
            let t = ["int", "string", "array", "object", "null", "number"][r.below(6) as usize];
            doc! {"$type": t}
        }
        10 => doc! {"$size": r.below(3) as i32},
        11 => doc! {"$elemMatch": {"$gte": v}},
        12 => doc! {"$regex": "^x"},
        _ => doc! {"$all": [v]},
    };
    Bson::Document(doc)
}

fn filter(r: &mut Rng, depth: u32) -> BsonDocument {
    match r.below(if depth > 1 { 3 } else { 5 }) {
        3 => doc! {"$or": [filter(r, depth + 1), filter(r, depth + 1)]},
        4 => doc! {"$nor": [filter(r, depth + 1)]},
        _ => {
            let mut d = BsonDocument::new();
            d.insert(path(r), condition(r));
            d
        }
    }
}

#[test]
fn filters_agree_on_bytes_and_on_owned_documents() {
    let mut r = Rng(0x9E37_79B9_7F4A_7C15);
    let docs: Vec<BsonDocument> = (0..400).map(|_| document(&mut r, 0)).collect();
    let bodies: Vec<Vec<u8>> = docs
        .iter()
        .map(|d| d.to_vec().expect("encodable"))
        .collect();
    let mut matched = 0;
    for _ in 0..600 {
        let q = filter(&mut r, 0);
        let f = CompiledFilter::new(&q).unwrap_or_else(|e| panic!("{q}: {e}"));
        for (d, b) in docs.iter().zip(&bodies) {
            let raw = f.matches_bytes(b);
            assert_eq!(raw, f.matches_decoded(b), "filter {q} on {d}");
            matched += usize::from(raw);
        }
    }
    // The generator must produce filters that match sometimes and fail sometimes.
    assert!(matched > 1000 && matched < 600 * 400 - 1000, "{matched}");
}

#[test]
fn cursors_write_the_same_json_from_bytes_as_from_documents() {
    let mut r = Rng(0x1234_5678_9ABC_DEF1);
    let db = Database::open_in_memory().expect("open");
    let c = db.collection("c");
    let docs: Vec<Document> = (0..300)
        .map(|i| {
            let mut d = document(&mut r, 0);
            d.insert("_id", i);
            Document::from(d)
        })
        .collect();
    c.insert_many(docs).expect("insert");
    let mut from_bytes = c.find(&doc! {}, FindOptions::default()).expect("find");
    let mut decoded = c.find(&doc! {}, FindOptions::default()).expect("find");
    let mut n = 0;
    while let Some(text) = from_bytes.next_json().expect("next_json") {
        let d = decoded.next_document().expect("next").expect("same length");
        assert_eq!(text, d.to_json());
        n += 1;
    }
    assert_eq!(n, 300);
    assert!(decoded.next_document().expect("next").is_none());
}
