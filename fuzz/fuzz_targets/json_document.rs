//! The document parser (JSON and Extended JSON text to a document) and the writer back: a
//! document that parses writes relaxed Extended JSON that parses again and writes the same
//! text (relaxed JSON drops number types, e.g. a NumberLong that fits 32 bits reads back as
//! an int, so the written text, not the first BSON, is the fixed point).
#![no_main]
use libfuzzer_sys::fuzz_target;
use nexus::Document;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(doc) = Document::from_json(text) else {
        return;
    };
    let json = doc.to_json();
    let again = Document::from_json(&json)
        .unwrap_or_else(|e| panic!("{text:?} wrote {json:?}, which does not parse: {e}"));
    assert_eq!(
        json,
        again.to_json(),
        "{text:?} wrote {json:?}, which writes back differently"
    );
});
