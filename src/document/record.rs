//! The stored form of a document: what the storage layer keeps under the `_id` key.
//!
//! ```text
//! +------+-----------------+----------------------+---------------------+
//! | 0x01 | meta_len: u32 LE | metadata (BSON doc)  | body (BSON doc)     |
//! +------+-----------------+----------------------+---------------------+
//! ```

use super::{Document, Metadata};
use crate::error::{Error, Result};

const RECORD_V1: u8 = 1;

/// Encodes metadata and an already BSON-encoded body into one stored record.
pub(crate) fn encode(meta: &Metadata, body_bson: &[u8]) -> Result<Vec<u8>> {
    let meta_bytes = meta
        .to_bson()
        .to_vec()
        .map_err(|e| Error::Internal(format!("metadata encoding failed: {e}")))?;
    let meta_len = u32::try_from(meta_bytes.len())
        .map_err(|_| Error::Internal("metadata larger than 4 GiB".into()))?;
    let mut out = Vec::with_capacity(5 + meta_bytes.len() + body_bson.len());
    out.push(RECORD_V1);
    out.extend_from_slice(&meta_len.to_le_bytes());
    out.extend_from_slice(&meta_bytes);
    out.extend_from_slice(body_bson);
    Ok(out)
}

/// Splits a stored record into its metadata and body bytes.
fn split(record: &[u8]) -> Result<(&[u8], &[u8])> {
    let corrupt = || Error::Corrupt("stored document record is malformed".into());
    if record.first() != Some(&RECORD_V1) || record.len() < 5 {
        return Err(corrupt());
    }
    let meta_len = u32::from_le_bytes([record[1], record[2], record[3], record[4]]) as usize;
    let body_start = 5usize.checked_add(meta_len).ok_or_else(corrupt)?;
    if body_start > record.len() {
        return Err(corrupt());
    }
    Ok((&record[5..body_start], &record[body_start..]))
}

/// Decodes the metadata of a stored record.
pub(crate) fn decode_meta(record: &[u8]) -> Result<Metadata> {
    let (meta, _) = split(record)?;
    let d = bson::Document::from_reader(meta)
        .map_err(|e| Error::Corrupt(format!("stored metadata is malformed: {e}")))?;
    Metadata::from_bson(&d).ok_or_else(|| Error::Corrupt("stored metadata lacks fields".into()))
}

/// The BSON bytes of the body of a stored record (borrowed, no copy).
pub(crate) fn body_bytes(record: &[u8]) -> Result<&[u8]> {
    Ok(split(record)?.1)
}

/// Decodes the body of a stored record.
pub(crate) fn decode_body(record: &[u8]) -> Result<Document> {
    let body = body_bytes(record)?;
    if let Ok(d) = crate::query::raw::decode_document(body) {
        return Ok(Document::from(d));
    }
    // The fast decoder refused the bytes; the bson crate says precisely what is wrong.
    bson::Document::from_reader(body)
        .map(Document::from)
        .map_err(|e| Error::Corrupt(format!("stored document is malformed: {e}")))
}
