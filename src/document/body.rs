//! The BSON body of a document about to be inserted, built without an owned
//! `bson::Document` when the input allows it.
//!
//! [`NewBody`] is what the insert pipeline consumes: either a [`Document`] (the general path:
//! `ensure_id`, then `encode_checked`) or [`RawElements`], the top-level elements already as
//! BSON bytes, written straight from JSON text (`json::direct`) or copied from raw BSON input
//! that [`canonical_elements`] has checked. [`NewBody::finish`] gives the same `_id` and the
//! same body bytes (or the same error) as the `Document` path would for the same input:
//! `_id` first (kept, moved to the front, or a new UUID v4 string), validated by
//! [`DocumentId::new`], then the 16 MiB limit. Whatever the raw readers cannot guarantee to
//! reproduce exactly (duplicate keys, NUL in keys, nesting beyond [`MAX_NESTING`](super::MAX_NESTING), rare
//! types) they decline, and the input takes the `Document` path.

use super::{new_uuid_v4, too_large, Document, DocumentId, MAX_DOCUMENT_BYTES};
use crate::document::raw;
use crate::error::{Error, Result};
use bson::Bson;

/// The top-level elements of a document body as BSON: `buf` is four placeholder bytes (the
/// length prefix, filled in by [`RawElements::finish_with`]) then the elements, without the
/// terminating NUL. `id` is the byte range of the `_id` element, when there is one. Every
/// nested document and array in `buf` is complete, within [`MAX_NESTING`](super::MAX_NESTING), and has no
/// duplicate keys; no key holds a NUL.
#[derive(Debug, Default)]
pub(crate) struct RawElements {
    pub(crate) buf: Vec<u8>,
    pub(crate) id: Option<(usize, usize)>,
}

/// A document on its way into the store: see the module documentation.
#[derive(Debug)]
pub(crate) enum NewBody {
    Doc(Document),
    Raw(RawElements),
}

impl From<Document> for NewBody {
    fn from(doc: Document) -> Self {
        NewBody::Doc(doc)
    }
}

impl NewBody {
    /// Reads JSON text that must hold one object (errors as `json::parse_json_document`).
    /// Text nested too deep to be a storable document is refused before it is parsed.
    pub(crate) fn from_json(text: &str, what: &str) -> Result<Self> {
        match super::json::raw_elements(text) {
            Some(raw) => Ok(NewBody::Raw(raw)),
            None if !super::json::document_text_may_fit(text, 0) => Err(super::too_deep()),
            None => Ok(NewBody::Doc(Document::from_bson(
                super::json::parse_json_document(text, what)?,
            ))),
        }
    }

    /// Reads one raw BSON document (errors as [`Document::from_bson_bytes`]).
    pub(crate) fn from_bson_bytes(bytes: &[u8]) -> Result<Self> {
        super::check_bson_frame(bytes)?;
        match canonical_elements(bytes) {
            Some(raw) => Ok(NewBody::Raw(raw)),
            None => Ok(NewBody::Doc(Document::from_bson_bytes(bytes)?)),
        }
    }

    /// The `_id` (a new UUID v4 string when the document has none) and the checked body
    /// bytes, `_id` first: exactly `ensure_id` then `encode_checked` of the document.
    pub(crate) fn finish(self) -> Result<(DocumentId, Vec<u8>)> {
        self.finish_with(new_uuid_v4)
    }

    /// As [`NewBody::finish`], with `new_id` giving the `_id` of a document that has none.
    pub(crate) fn finish_with(
        mut self,
        new_id: impl FnOnce() -> String,
    ) -> Result<(DocumentId, Vec<u8>)> {
        match &mut self {
            NewBody::Doc(doc) => {
                let id = doc.ensure_id_with(new_id)?;
                let body = doc.encode_checked()?;
                Ok((id, body))
            }
            NewBody::Raw(raw) => std::mem::take(raw).finish_with(new_id),
        }
    }
}

/// A document given to an insert may nest any depth until it is checked, and it is dropped
/// here when the insert fails: taken apart without recursion ([`super::dispose`]).
impl Drop for NewBody {
    fn drop(&mut self) {
        if let NewBody::Doc(doc) = self {
            super::dispose(std::mem::take(doc.as_bson_mut()));
        }
    }
}

const ID_KEY: &[u8] = b"_id\0";

impl RawElements {
    fn finish_with(self, new_id: impl FnOnce() -> String) -> Result<(DocumentId, Vec<u8>)> {
        let RawElements { mut buf, id } = self;
        let (id, mut body) = match id {
            Some((start, end)) => {
                let elem = &buf[start..end];
                let value = raw::to_bson(raw::Elem {
                    kind: elem[0],
                    bytes: &elem[1 + ID_KEY.len()..],
                })
                .map_err(|_| Error::parse("malformed BSON document"))?;
                let id = DocumentId::new(value)?;
                if start == 4 {
                    (id, buf)
                } else {
                    let mut body = Vec::with_capacity(buf.len() + 1);
                    body.extend_from_slice(&buf[..4]);
                    body.extend_from_slice(&buf[start..end]);
                    body.extend_from_slice(&buf[4..start]);
                    body.extend_from_slice(&buf[end..]);
                    buf.clear();
                    (id, body)
                }
            }
            None => {
                let text = new_id();
                let mut body = Vec::with_capacity(buf.len() + 16 + text.len());
                body.extend_from_slice(&[0; 4]);
                body.push(0x02);
                body.extend_from_slice(ID_KEY);
                let len =
                    i32::try_from(text.len() + 1).map_err(|_| Error::invalid("_id is too long"))?;
                body.extend_from_slice(&len.to_le_bytes());
                body.extend_from_slice(text.as_bytes());
                body.push(0);
                body.extend_from_slice(&buf[4..]);
                (DocumentId::new(Bson::String(text))?, body)
            }
        };
        body.push(0);
        if body.len() > MAX_DOCUMENT_BYTES {
            return Err(too_large(body.len()));
        }
        let len = i32::try_from(body.len()).map_err(|_| too_large(body.len()))?; // within 16 MiB
        body[..4].copy_from_slice(&len.to_le_bytes());
        Ok((id, body))
    }
}

/// The elements of raw BSON input when decoding it with the `bson` crate and encoding it again
/// (with `_id` moved first) would give these very bytes: every length exact, keys and strings
/// UTF-8, no NUL inside a string, booleans 0 or 1, array keys `0`, `1`, ... in order, no
/// duplicate keys, and only the common types (double, string, document, array, generic
/// binary, ObjectId, boolean, date, null, int32, timestamp, int64, decimal128, min/max key).
/// `None` for anything else; the caller then takes the `Document` path. The nesting depth
/// must already have been checked (the recursion here follows it).
pub(crate) fn canonical_elements(bytes: &[u8]) -> Option<RawElements> {
    let mut id = None;
    if !canonical(bytes, false, Some(&mut id)) {
        return None;
    }
    Some(RawElements {
        buf: bytes[..bytes.len() - 1].to_vec(),
        id,
    })
}

/// Linear duplicate search below this many keys, a hash set above.
const SMALL_OBJECT: usize = 16;

fn canonical(doc: &[u8], array: bool, mut top_id: Option<&mut Option<(usize, usize)>>) -> bool {
    let Ok(elements) = raw::elements(doc) else {
        return false;
    };
    let mut keys: Vec<&[u8]> = Vec::new();
    let mut big: Option<std::collections::HashSet<&[u8]>> = None;
    for (i, item) in elements.enumerate() {
        let Ok((key, e)) = item else {
            return false;
        };
        if array {
            if !key_is_index(key, i) {
                return false;
            }
        } else {
            if std::str::from_utf8(key).is_err() {
                return false;
            }
            if let Some(set) = &mut big {
                if !set.insert(key) {
                    return false;
                }
            } else {
                if keys.contains(&key) {
                    return false;
                }
                keys.push(key);
                if keys.len() > SMALL_OBJECT {
                    big = Some(keys.drain(..).collect());
                }
            }
        }
        let ok = match e.kind {
            0x01 | 0x07 | 0x09 | 0x0A | 0x10 | 0x11 | 0x12 | 0x13 | 0x7F | 0xFF => true,
            0x02 => canonical_string(e.bytes),
            0x03 => canonical(e.bytes, false, None),
            0x04 => canonical(e.bytes, true, None),
            0x05 => e.bytes.get(4) == Some(&0x00),
            0x08 => e.bytes[0] <= 1,
            _ => false,
        };
        if !ok {
            return false;
        }
        if let Some(id) = top_id.as_deref_mut() {
            if key == b"_id" {
                // Offsets within `doc`: the type byte precedes the key.
                let start = key.as_ptr() as usize - doc.as_ptr() as usize - 1;
                let end = e.bytes.as_ptr() as usize - doc.as_ptr() as usize + e.bytes.len();
                *id = Some((start, end));
            }
        }
    }
    true
}

/// A BSON string value: length prefix, UTF-8 bytes without NUL, terminating NUL.
fn canonical_string(bytes: &[u8]) -> bool {
    match bytes.split_last() {
        Some((&0, [_, _, _, _, text @ ..])) => {
            !text.contains(&0) && std::str::from_utf8(text).is_ok()
        }
        _ => false,
    }
}

fn key_is_index(key: &[u8], i: usize) -> bool {
    let mut digits = [0u8; 20];
    let text = index_key(i, &mut digits);
    key == text
}

/// The decimal digits of `i` (the key of array element `i`), written into `buf`.
pub(crate) fn index_key(mut i: usize, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        // A decimal digit, 0..=9.
        #[allow(clippy::cast_possible_truncation)]
        let digit = (i % 10) as u8;
        buf[at] = b'0' + digit;
        i /= 10;
        if i == 0 {
            break;
        }
    }
    &buf[at..]
}

#[cfg(test)]
mod tests;
