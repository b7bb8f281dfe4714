//! Relaxed Extended JSON out: from a `bson::Document`, any BSON value, or a document's raw
//! BSON bytes (without decoding it), written iteratively so that nesting costs no stack.

use bson::{Bson, Document as BsonDocument};

/// A document as relaxed Extended JSON text.
pub(crate) fn to_relaxed_json(doc: &BsonDocument) -> String {
    let mut out = Vec::with_capacity(256);
    write_document(&mut out, doc);
    finish(out)
}

/// Any BSON value as relaxed Extended JSON text.
pub(crate) fn bson_to_json_text(value: &Bson) -> String {
    let mut out = Vec::with_capacity(64);
    write_value(&mut out, value);
    finish(out)
}

/// The stored BSON bytes of a document as relaxed Extended JSON text, written straight from
/// the bytes (no owned document is built). Byte for byte the same text as
/// [`to_relaxed_json`] of the decoded document. `None` when the bytes are malformed.
pub(crate) fn raw_to_relaxed_json(body: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(body.len() + body.len() / 4);
    write_raw(&mut out, body, b'{', 0).ok()?;
    String::from_utf8(out).ok()
}

/// [`raw_to_relaxed_json`] appended to `out` (a buffer reused from row to row); false, with
/// `out` as it was, when the bytes are malformed or the text would not be UTF-8.
pub(crate) fn append_relaxed_json(out: &mut Vec<u8>, body: &[u8]) -> bool {
    let start = out.len();
    out.reserve(body.len() + body.len() / 4);
    let ok = write_raw(out, body, b'{', 0).is_ok() && std::str::from_utf8(&out[start..]).is_ok();
    if !ok {
        out.truncate(start);
    }
    ok
}

/// Writes `s` as a JSON string escaped as `serde_json` escapes it (`\"`, `\\`, the five
/// short control escapes, other control characters as `\u00XX`), runs that need no escape
/// copied whole. Bytes are copied as they are: the callers check the finished text is UTF-8.
fn write_json_str(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    let mut from = 0;
    loop {
        let at = super::scan::plain_run(s, from);
        out.extend_from_slice(&s[from..at]);
        let Some(&b) = s.get(at) else { break };
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.extend_from_slice(&[HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
            }
        }
        from = at + 1;
    }
    out.push(b'"');
}

fn write_raw(
    out: &mut Vec<u8>,
    bytes: &[u8],
    open: u8,
    depth: usize,
) -> std::result::Result<(), crate::document::raw::Malformed> {
    use crate::document::raw::{self, Malformed};
    if depth > raw::MAX_DEPTH {
        return Err(Malformed);
    }
    out.push(open);
    for (i, item) in raw::elements(bytes)?.enumerate() {
        let (k, e) = item?;
        if i > 0 {
            out.push(b',');
        }
        if open == b'{' {
            write_json_str(out, k);
            out.push(b':');
        }
        match e.kind {
            0x03 => write_raw(out, e.bytes, b'{', depth + 1)?,
            0x04 => write_raw(out, e.bytes, b'[', depth + 1)?,
            // The common scalars straight from their bytes, as `write_value` writes them.
            0x02 => write_json_str(out, raw::str_bytes(e.bytes)?),
            0x10 => {
                let v = i32::from_le_bytes(raw::fixed(e.bytes)?);
                serde_json::to_writer(&mut *out, &v).map_err(|_| Malformed)?;
            }
            0x12 => {
                let v = i64::from_le_bytes(raw::fixed(e.bytes)?);
                serde_json::to_writer(&mut *out, &v).map_err(|_| Malformed)?;
            }
            0x08 => {
                let b = *e.bytes.first().ok_or(Malformed)? != 0;
                out.extend_from_slice(if b { b"true" } else { b"false" });
            }
            0x0A => out.extend_from_slice(b"null"),
            _ => write_value(out, &raw::to_bson(e)?),
        }
    }
    out.push(if open == b'{' { b'}' } else { b']' });
    Ok(())
}

fn finish(out: Vec<u8>) -> String {
    // The writer emits only serde_json's (UTF-8) output; the fallback is never expected.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Writes relaxed Extended JSON v2 directly, byte for byte what
/// `Bson::into_relaxed_extjson().to_string()` gives, without building a `serde_json::Value`
/// for the common types (the rare ones still go through it). Documents, arrays and a code's
/// scope are written on a heap stack ([`write_nested`]), so any nesting is fine.
fn write_value(out: &mut Vec<u8>, v: &Bson) {
    match v {
        Bson::Document(d) => write_document(out, d),
        Bson::Array(items) => write_nested(out, Level::array(items)),
        Bson::JavaScriptCodeWithScope(c) => {
            let top = Level::scope(out, c);
            write_nested(out, top);
        }
        other => write_scalar(out, other),
    }
}

fn write_document(out: &mut Vec<u8>, doc: &BsonDocument) {
    write_nested(out, Level::document(doc));
}

/// A document or array (or a code's scope) being written: what is left of it, whether an
/// item was written, and the bytes that close it.
struct Level<'a> {
    items: Items<'a>,
    first: bool,
    close: &'static [u8],
}

enum Items<'a> {
    Doc(bson::document::Iter<'a>),
    Arr(std::slice::Iter<'a, Bson>),
}

impl<'a> Level<'a> {
    fn document(d: &'a BsonDocument) -> Self {
        Self {
            items: Items::Doc(d.iter()),
            first: true,
            close: b"}",
        }
    }

    fn array(items: &'a [Bson]) -> Self {
        Self {
            items: Items::Arr(items.iter()),
            first: true,
            close: b"]",
        }
    }

    /// `{"$code":"...","$scope":` written, the scope's fields to come (bson's relaxed form).
    fn scope(out: &mut Vec<u8>, c: &'a bson::JavaScriptCodeWithScope) -> Self {
        out.extend_from_slice(b"{\"$code\":");
        let ok = serde_json::to_writer(&mut *out, &c.code).is_ok();
        debug_assert!(ok, "writing JSON to a Vec cannot fail");
        out.extend_from_slice(b",\"$scope\":");
        Self {
            items: Items::Doc(c.scope.iter()),
            first: true,
            close: b"}}",
        }
    }
}

/// Writes `top` and everything in it, depth first.
fn write_nested(out: &mut Vec<u8>, top: Level<'_>) {
    out.push(if top.close == b"]" { b'[' } else { b'{' });
    let mut stack = vec![top];
    while let Some(level) = stack.last_mut() {
        let value = match &mut level.items {
            Items::Doc(it) => it.next().map(|(k, v)| (Some(k), v)),
            Items::Arr(it) => it.next().map(|v| (None, v)),
        };
        let Some((key, value)) = value else {
            out.extend_from_slice(level.close);
            stack.pop();
            continue;
        };
        if !level.first {
            out.push(b',');
        }
        level.first = false;
        if let Some(k) = key {
            let ok = serde_json::to_writer(&mut *out, k).is_ok();
            debug_assert!(ok, "writing JSON to a Vec cannot fail");
            out.push(b':');
        }
        let inner = match value {
            Bson::Document(d) => Level::document(d),
            Bson::Array(items) => Level::array(items),
            Bson::JavaScriptCodeWithScope(c) => Level::scope(out, c),
            other => {
                write_scalar(out, other);
                continue;
            }
        };
        out.push(if inner.close == b"]" { b'[' } else { b'{' });
        stack.push(inner);
    }
}

/// A value that holds no other values.
fn write_scalar(out: &mut Vec<u8>, v: &Bson) {
    use std::io::Write;
    let ok = match v {
        Bson::Double(f) if f.is_finite() => serde_json::to_writer(&mut *out, f).is_ok(),
        Bson::String(s) => serde_json::to_writer(&mut *out, s).is_ok(),
        Bson::Int32(i) => write!(out, "{i}").is_ok(),
        Bson::Int64(i) => write!(out, "{i}").is_ok(),
        Bson::Boolean(b) => {
            out.extend_from_slice(if *b { b"true" } else { b"false" });
            true
        }
        Bson::Null => {
            out.extend_from_slice(b"null");
            true
        }
        // Relaxed Extended JSON writes dates from 1970 to 9999 as ISO-8601 text and every
        // other date in the canonical `$numberLong` form (the bson crate clamps those).
        Bson::DateTime(dt) if !(0..=253_402_300_799_999).contains(&dt.timestamp_millis()) => {
            write!(
                out,
                "{{\"$date\":{{\"$numberLong\":\"{}\"}}}}",
                dt.timestamp_millis()
            )
            .is_ok()
        }
        other => serde_json::to_writer(&mut *out, &other.clone().into_relaxed_extjson()).is_ok(),
    };
    debug_assert!(ok, "writing JSON to a Vec cannot fail");
}
