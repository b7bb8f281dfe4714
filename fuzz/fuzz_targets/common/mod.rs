//! What the query targets share: one in-memory database per fuzzing process holding a small
//! collection (documents of many types, nested documents and arrays) with indexes, so that
//! queries go through the planner and index scans as well as collection scans.
#![allow(dead_code)]

use nexus::{Database, Document};
use std::sync::OnceLock;

pub const COLL: &str = "c";

const DOCS: &[&str] = &[
    r#"{"_id": 1, "a": 5, "b": "x", "c": {"d": 1.5}, "tags": ["red", "blue"], "n": null}"#,
    r#"{"_id": 2, "a": -3, "b": "y", "c": {"d": [1, 2, {"e": 3}]}, "tags": [], "t": true}"#,
    r#"{"_id": "s", "a": {"$numberLong": "9007199254740993"}, "b": ["x", "z"], "tags": ["red"]}"#,
    r#"{"_id": {"$oid": "507f1f77bcf86cd799439011"}, "a": 2.5, "d": {"$date": "2024-01-02T03:04:05Z"}, "arr": [[1, 2], [3]]}"#,
    r#"{"_id": 5, "a": {"$numberDecimal": "1.10"}, "b": null, "c": {"d": {"x": [{"y": 1}, {"y": 2}]}}, "bin": {"$binary": {"base64": "AAEC", "subType": "00"}}}"#,
    r#"{"_id": 6, "a": "5", "re": {"$regularExpression": {"pattern": "^a.c$", "options": "i"}}, "m": {"$minKey": 1}, "ts": {"$timestamp": {"t": 1, "i": 2}}}"#,
    r#"{"_id": 7, "a": [1, 5, 9], "b": "x", "tags": ["blue", "green"], "c": {"d": -0.0}, "s": "héllo wörld"}"#,
    r#"{"_id": 8, "nested": {"a": {"b": {"c": [1, {"d": 2}]}}}, "a": NaN}"#,
];

/// The database every query target runs against (made on first use).
pub fn db() -> &'static Database {
    static DB: OnceLock<Database> = OnceLock::new();
    DB.get_or_init(|| {
        let db = Database::open_in_memory().expect("in-memory database");
        let c = db.collection(COLL);
        for text in DOCS {
            // NaN is not JSON: the last document keeps its NaN as a plain double below.
            let doc = Document::from_json(&text.replace("NaN", "0")).expect("seed document");
            c.insert(doc).expect("insert seed document");
        }
        let mut nan = Document::new();
        nan.set("_id", 9);
        nan.set("a", f64::NAN);
        c.insert(nan).expect("insert NaN document");
        c.create_index_json(r#"{"a": 1}"#, None).expect("index a");
        c.create_index_json(r#"{"b": 1, "c.d": -1}"#, None)
            .expect("index b, c.d");
        c.create_index_json(r#"{"tags": 1}"#, Some(r#"{"sparse": true}"#))
            .expect("index tags");
        db
    })
}

/// The input as up to `N` lines of UTF-8 text (missing lines are empty).
pub fn lines<const N: usize>(data: &[u8]) -> Option<[&str; N]> {
    let text = std::str::from_utf8(data).ok()?;
    let mut out = [""; N];
    let mut rest = text;
    for (i, slot) in out.iter_mut().enumerate() {
        if i + 1 == N {
            *slot = rest;
        } else if let Some((line, tail)) = rest.split_once('\n') {
            *slot = line;
            rest = tail;
        } else {
            *slot = rest;
            rest = "";
        }
    }
    Some(out)
}

/// The query-language documents of the input: JSON text read by the library's own reader.
pub fn doc(text: &str) -> Option<bson::Document> {
    Document::from_json(text).ok().map(Document::into_bson)
}
