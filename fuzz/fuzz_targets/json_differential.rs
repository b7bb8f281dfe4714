//! Differential: the library's JSON readers (the byte scanner, the serde_json-driven BSON
//! writer, the public reader) against the reference reading (serde_json, then the Extended
//! JSON conversion): never accept what it refuses, never read another value.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        nexus::fuzzing::json_differential(text);
    }
});
