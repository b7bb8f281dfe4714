//! Differential tests: [`NewBody`] (JSON text or raw BSON straight to body bytes) against the
//! `Document` path it replaces (`Document::from_json` / `Document::from_bson_bytes`, then
//! `ensure_id` and `encode_checked`). For every input both give the same `_id` and the same
//! body bytes, or the same error; the generated UUID of a document without `_id` is taken
//! from the reference and handed to the new path.
#![allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // test arithmetic on small values

use super::*;
use crate::document::json;
use crate::document::json::differential_tests::{hand_written_values, nested, Gen, NESTING_SHAPES};

type Outcome = Result<(DocumentId, Vec<u8>)>;

/// The reference outcome, and the `_id` it generated (when it did).
fn reference(doc: Result<Document>) -> (Outcome, Option<String>) {
    let mut doc = match doc {
        Ok(d) => d,
        Err(e) => return (Err(e), None),
    };
    let generated = doc.id().is_none();
    let id = match doc.ensure_id() {
        Ok(id) => id,
        Err(e) => return (Err(e), None),
    };
    let uuid = generated.then(|| id.to_text());
    let out = doc.encode_checked().map(|body| (id, body));
    (out, uuid)
}

fn same(what: &str, want: &Outcome, got: &Outcome) {
    match (want, got) {
        (Ok((wid, wbody)), Ok((gid, gbody))) => {
            assert_eq!(wid.key(), gid.key(), "{what}");
            assert_eq!(wid.to_text(), gid.to_text(), "{what}");
            assert_eq!(wbody, gbody, "{what}");
        }
        (Err(w), Err(g)) => {
            assert_eq!(
                std::mem::discriminant(w),
                std::mem::discriminant(g),
                "{what}: {w} / {g}"
            );
            assert_eq!(w.to_string(), g.to_string(), "{what}");
        }
        _ => panic!("{what}: reference {want:?}, new {got:?}"),
    }
}

fn finish(body: Result<NewBody>, uuid: Option<String>) -> Outcome {
    body?.finish_with(|| uuid.expect("the reference generated no _id"))
}

#[derive(Default, Debug)]
struct Tally {
    raw: usize,
    doc: usize,
    errors: usize,
}

fn check_json(text: &str, t: &mut Tally) {
    // The document path refuses text too deep to be a storable document before parsing it.
    let doc = if json::document_text_may_fit(text, 0) {
        Document::from_json(text)
    } else {
        Err(crate::document::too_deep())
    };
    let (want, uuid) = reference(doc);
    let body = NewBody::from_json(text, "document");
    match &body {
        Ok(NewBody::Raw(_)) => t.raw += 1,
        Ok(NewBody::Doc(_)) => t.doc += 1,
        Err(_) => t.errors += 1,
    }
    same(text, &want, &finish(body, uuid));
}

/// The texts placing `value` around `_id` in the ways `ensure_id` distinguishes.
fn id_shapes(value: &str) -> Vec<String> {
    vec![
        format!(r#"{{"v":{value}}}"#),
        format!(r#"{{"a":1,"v":{value},"z":[{value}]}}"#),
        format!(r#"{{"v":{{"w":{value}}}}}"#),
        format!(r#"{{"_id":{value},"a":1}}"#),
        format!(r#"{{"_id":{value}}}"#),
        format!(r#"{{"a":1,"b":"x","_id":{value},"c":[1]}}"#),
        format!(r#"{{"a":{{"_id":{value}}},"_id":{value}}}"#),
        format!(r#"{{"_id":{value},"_id":2}}"#),
        format!(r#"{{"_id":1,"a":2,"_id":{value}}}"#),
        value.to_owned(),
    ]
}

#[test]
fn json_bodies_match_the_document_path() {
    let mut t = Tally::default();
    for value in hand_written_values() {
        for text in id_shapes(&value) {
            check_json(&text, &mut t);
        }
    }
    for text in [
        r#"{"_id":[1,2]}"#,
        r#"{"a":1,"_id":[]}"#,
        r#"{"_id":{"$regularExpression":{"pattern":"a","options":""}}}"#,
        r#"{"_id":{"$undefined":true},"a":1}"#,
        r#"{"_id":{"a":[1,{"b":null}]},"x":1}"#,
        r#"{"x":1,"_id":{"$oid":"507f1f77bcf86cd799439011"}}"#,
        r#"{"x":1,"_id":1.5,"y":2}"#,
        r#"{"x":1,"_id":null}"#,
        r#"{"_id":"a\u0000b"}"#,
        r#"{"a":{"\u0000":1}}"#,
        r#"{"a":1,"b":2,"a":3,"_id":1}"#,
        r#"{}"#,
        r#"{"_id":"x","a":{"b":1,"c":2,"b":3}}"#,
    ] {
        check_json(text, &mut t);
    }
    // Objects with many keys (the hashed duplicate check), with and without a repeat.
    for n in [15, 16, 17, 40] {
        let keys: Vec<String> = (0..n).map(|i| format!(r#""k{i}":{i}"#)).collect();
        let plain = keys.join(",");
        check_json(&format!("{{{plain}}}"), &mut t);
        check_json(&format!(r#"{{"_id":1,"o":{{{plain}}}}}"#), &mut t);
        check_json(&format!(r#"{{{plain},"k3":"again"}}"#), &mut t);
        check_json(&format!(r#"{{"o":{{{plain},"k{}":[]}}}}"#, n - 1), &mut t);
    }
    eprintln!("hand-written: {t:?}");
    assert!(t.raw > 1_000 && t.doc > 300 && t.errors > 500, "{t:?}");
}

#[test]
fn random_json_bodies_match_the_document_path() {
    let mut g = Gen {
        rng: fastrand::Rng::with_seed(0x626f_6479),
        dup: false,
    };
    let mut t = Tally::default();
    for _ in 0..5_000 {
        let depth = g.rng.u32(1..6);
        let text = g.object(depth);
        let text = g.mangle(text);
        check_json(&text, &mut t);
    }
    eprintln!("random: {t:?}");
    assert!(t.raw > 1_000 && t.errors > 500, "{t:?}");
}

#[test]
fn nesting_and_size_limits_match_the_document_path() {
    // The reference path's recursion needs a large stack in debug builds.
    let run = || {
        let mut t = Tally::default();
        for depth in [1, 97, 98, 99, 100, 101, 127, 128, 129] {
            for (open, close, leaf) in NESTING_SHAPES {
                let inner = nested(depth, open, close, leaf);
                check_json(&format!("{{\"v\":{inner}}}"), &mut t);
                check_json(&format!("{{\"_id\":[1],\"v\":{inner}}}"), &mut t);
                check_json(&format!("{{\"v\":{inner},\"_id\":7}}"), &mut t);
                check_json(&inner, &mut t);
            }
        }
        // Around the 16 MiB limit: `_id` first, later, and generated.
        for pad in [0usize, 1, 2, 60] {
            let fill = MAX_DOCUMENT_BYTES - 30 - 6 + pad;
            let s = "x".repeat(fill);
            check_json(&format!(r#"{{"_id":1,"s":"{s}"}}"#), &mut t);
            check_json(&format!(r#"{{"s":"{s}","_id":1}}"#), &mut t);
            check_json(&format!(r#"{{"s":"{s}"}}"#), &mut t);
            check_json(&format!(r#"{{"_id":[],"s":"{s}"}}"#), &mut t);
            check_json(&format!(r#"{{"a":{{"s":"{s}"}}}}"#), &mut t);
        }
        t
    };
    let t = std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(run)
        .unwrap()
        .join()
        .unwrap();
    eprintln!("limits: {t:?}");
    assert!(t.raw > 20 && t.doc > 20, "{t:?}");
}

#[test]
fn json_arrays_read_as_their_elements() {
    let mut g = Gen {
        rng: fastrand::Rng::with_seed(7),
        dup: false,
    };
    let mut read = 0;
    for _ in 0..500 {
        let items: Vec<String> = (0..3).map(|_| g.object(3)).collect();
        let text = format!("[{}]", items.join(","));
        let Some(raw) = json::raw_element_array(&text) else {
            continue;
        };
        read += 1;
        assert_eq!(raw.len(), items.len());
        for (r, item) in raw.into_iter().zip(&items) {
            let (want, uuid) = reference(Document::from_json(item));
            same(item, &want, &NewBody::Raw(r).finish_with(|| uuid.unwrap()));
        }
    }
    assert!(read > 100, "{read}");
    assert!(json::raw_element_array(r#"[{"a":1},2]"#).is_none());
    assert!(json::raw_element_array(r#"[{"a":1,"a":2}]"#).is_none());
}

// ---- raw BSON --------------------------------------------------------------------------

fn check_bson(bytes: &[u8], t: &mut Tally) {
    let (want, uuid) = reference(Document::from_bson_bytes(bytes));
    let body = NewBody::from_bson_bytes(bytes);
    match &body {
        Ok(NewBody::Raw(_)) => t.raw += 1,
        Ok(NewBody::Doc(_)) => t.doc += 1,
        Err(_) => t.errors += 1,
    }
    same(&format!("{bytes:?}"), &want, &finish(body, uuid));
}

/// A document of the given `(type, key, value bytes)` elements.
fn doc_of(elements: &[(u8, &[u8], &[u8])]) -> Vec<u8> {
    let mut out = vec![0; 4];
    for (kind, key, value) in elements {
        out.push(*kind);
        out.extend_from_slice(key);
        out.push(0);
        out.extend_from_slice(value);
    }
    out.push(0);
    let len = out.len() as i32;
    out[..4].copy_from_slice(&len.to_le_bytes());
    out
}

fn string_value(s: &[u8]) -> Vec<u8> {
    let mut v = ((s.len() + 1) as i32).to_le_bytes().to_vec();
    v.extend_from_slice(s);
    v.push(0);
    v
}

#[test]
fn bson_bodies_match_the_document_path() {
    let mut t = Tally::default();
    let mut valid = Vec::new();
    for value in hand_written_values() {
        for text in id_shapes(&value) {
            if let Ok(d) = Document::from_json(&text) {
                if let Ok(bytes) = d.to_bson_bytes() {
                    valid.push(bytes);
                }
            }
        }
    }
    let mut g = Gen {
        rng: fastrand::Rng::with_seed(0x0072_6177),
        dup: false,
    };
    for _ in 0..2_000 {
        let text = g.object(4);
        if let Ok(bytes) = Document::from_json(&text).and_then(|d| d.to_bson_bytes()) {
            valid.push(bytes);
        }
    }
    let int = 5i32.to_le_bytes();
    let one = 1i32.to_le_bytes();
    let arr_ok = doc_of(&[(0x10, b"0", &int), (0x10, b"1", &int)]);
    let arr_gap = doc_of(&[(0x10, b"0", &int), (0x10, b"2", &int)]);
    let arr_named = doc_of(&[(0x10, b"a", &int)]);
    let dup_inner = doc_of(&[(0x10, b"x", &int), (0x10, b"x", &one)]);
    let old_binary = [&6i32.to_le_bytes()[..], &[2], &2i32.to_le_bytes(), &[1, 2]].concat();
    let generic_binary = [&2i32.to_le_bytes()[..], &[0], &[1, 2]].concat();
    let uuid_binary = [&16i32.to_le_bytes()[..], &[4], &[7; 16]].concat();
    let regex = b"a+\0i\0".to_vec();
    let code = string_value(b"f()");
    valid.extend([
        doc_of(&[(0x10, b"_id", &int), (0x10, b"_id", &one)]),
        doc_of(&[(0x10, b"a", &int), (0x10, b"_id", &one), (0x10, b"a", &one)]),
        doc_of(&[(0x04, b"_id", &arr_ok), (0x10, b"a", &int)]),
        doc_of(&[(0x04, b"a", &arr_ok), (0x04, b"b", &arr_gap)]),
        doc_of(&[(0x04, b"a", &arr_named)]),
        doc_of(&[(0x03, b"a", &dup_inner)]),
        doc_of(&[(0x03, b"_id", &dup_inner)]),
        doc_of(&[(0x08, b"b", &[0]), (0x08, b"c", &[1])]),
        doc_of(&[(0x08, b"b", &[2])]),
        doc_of(&[(0x02, b"s", &string_value(b"a\0b"))]),
        doc_of(&[(0x02, b"s", &string_value(b"\xff"))]),
        doc_of(&[(0x02, b"\xc3", &int)]),
        doc_of(&[(0x05, b"b", &old_binary)]),
        doc_of(&[(0x05, b"b", &generic_binary), (0x05, b"_id", &uuid_binary)]),
        doc_of(&[(0x0B, b"r", &regex), (0x0B, b"_id", &regex)]),
        doc_of(&[(0x0D, b"c", &code), (0x0E, b"s", &code), (0x06, b"u", &[])]),
        doc_of(&[(0x06, b"_id", &[])]),
        doc_of(&[(0x7F, b"_id", &[]), (0xFF, b"m", &[])]),
        doc_of(&[(0x42, b"x", &[])]),
        doc_of(&[]),
    ]);
    let mut rng = fastrand::Rng::with_seed(0x6273_6f6e);
    for bytes in &valid {
        check_bson(bytes, &mut t);
        // Corruptions: a changed byte, a cut, a wrong length prefix.
        for _ in 0..4 {
            let mut b = bytes.clone();
            let at = rng.usize(..b.len());
            b[at] = rng.u8(..);
            check_bson(&b, &mut t);
        }
        check_bson(&bytes[..rng.usize(..bytes.len())], &mut t);
    }
    let run = || {
        let mut t = Tally::default();
        for depth in [98, 99, 100, 101] {
            for (open, close, leaf) in NESTING_SHAPES {
                let text = format!("{{\"v\":{}}}", nested(depth, open, close, leaf));
                if let Ok(d) = Document::from_json(&text) {
                    check_bson(&d.as_bson().to_vec().unwrap(), &mut t);
                }
            }
        }
        t
    };
    let deep = std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(run)
        .unwrap()
        .join()
        .unwrap();
    eprintln!("bson: {t:?} deep: {deep:?}");
    assert!(t.raw > 1_000 && t.doc > 500 && t.errors > 500, "{t:?}");
    assert!(deep.raw > 0 && deep.errors > 0, "{deep:?}");
}
