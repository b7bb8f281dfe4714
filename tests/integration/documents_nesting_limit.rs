//! Deeply nested documents are refused with a clear error, never a stack overflow: MongoDB's
//! limit of 100 levels holds for JSON, BSON bytes and documents built in Rust.
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // test arithmetic on small values

use nexus::{Database, Document, Error, MAX_NESTING};

fn nested_json(levels: usize) -> String {
    let mut s = String::new();
    for _ in 0..levels - 1 {
        s.push_str("{\"a\":");
    }
    s.push_str("{\"leaf\":1}");
    for _ in 0..levels - 1 {
        s.push('}');
    }
    s
}

/// BSON bytes of `levels` documents nested in each other (built iteratively).
fn nested_bson(levels: usize) -> Vec<u8> {
    let mut inner: Vec<u8> = vec![5, 0, 0, 0, 0]; // {}
    for _ in 1..levels {
        let mut doc = Vec::with_capacity(inner.len() + 8);
        doc.extend_from_slice(&[0, 0, 0, 0, 0x03, b'a', 0]);
        doc.extend_from_slice(&inner);
        doc.push(0);
        let len = doc.len() as i32;
        doc[0..4].copy_from_slice(&len.to_le_bytes());
        inner = doc;
    }
    inner
}

#[test]
fn nesting_up_to_the_limit_is_stored_and_beyond_is_refused() {
    let db = Database::open_in_memory().unwrap();
    let c = db.collection("deep");
    c.insert(Document::from_json(&nested_json(MAX_NESTING)).unwrap())
        .unwrap();
    let e = c
        .insert(Document::from_json(&nested_json(MAX_NESTING + 1)).unwrap())
        .unwrap_err();
    assert!(
        matches!(e, Error::InvalidArgument(_)) && e.to_string().contains("100"),
        "{e}"
    );
    // JSON far deeper than that is a parse error from the JSON reader itself.
    assert!(Document::from_json(&nested_json(5_000)).is_err());
    assert_eq!(c.count_json("{}").unwrap(), 1);
}

#[test]
fn deeply_nested_bson_bytes_are_refused_before_decoding() {
    let bytes = nested_bson(MAX_NESTING);
    assert!(Document::from_bson_bytes(&bytes).is_ok());
    for levels in [MAX_NESTING + 1, 5_000, 20_000] {
        let e = Document::from_bson_bytes(&nested_bson(levels)).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{levels}: {e}");
    }
}
