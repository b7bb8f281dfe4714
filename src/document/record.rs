//! The stored form of a document: what the storage layer keeps under the `_id` key.
//!
//! ```text
//! version 2 (written now)
//! +------+----------------------+------------------+--------------------+----------------+
//! | 0x02 | expires_at: i64 LE   | meta_len: u32 LE | metadata (BSON)    | body (BSON)    |
//! |      | (i64::MIN: none)     |                  |                    |                |
//! +------+----------------------+------------------+--------------------+----------------+
//! version 1 (still read): 0x01, meta_len, metadata, body
//! ```
//!
//! The expiry time sits at a fixed offset so scans can skip expired documents without
//! decoding anything.

use super::{Document, Metadata};
use crate::error::{Error, Result};

const RECORD_V1: u8 = 1;
const RECORD_V2: u8 = 2;
const NO_EXPIRY: i64 = i64::MIN;

/// Encodes metadata and an already BSON-encoded body into one stored record.
pub(crate) fn encode(meta: &Metadata, body_bson: &[u8]) -> Result<Vec<u8>> {
    thread_local! {
        static META: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    // The metadata is encoded first so that the record is allocated at its exact size: a
    // `Bytes` made from it then needs no second allocation.
    crate::scratch::with(&META, |m| {
        m.clear();
        meta.encode_bson(m);
        let meta_len = u32::try_from(m.len())
            .map_err(|_| Error::Internal("metadata larger than 4 GiB".into()))?;
        let mut out = Vec::with_capacity(13 + m.len() + body_bson.len());
        out.push(RECORD_V2);
        out.extend_from_slice(&meta.expires_at.unwrap_or(NO_EXPIRY).to_le_bytes());
        out.extend_from_slice(&meta_len.to_le_bytes());
        out.extend_from_slice(m);
        out.extend_from_slice(body_bson);
        Ok(out)
    })
}

fn corrupt() -> Error {
    Error::Corrupt("stored document record is malformed".into())
}

/// Splits a stored record into its metadata and body bytes.
fn split(record: &[u8]) -> Result<(&[u8], &[u8])> {
    let len_at = match record.first() {
        Some(&RECORD_V1) => 1,
        Some(&RECORD_V2) => 9,
        _ => return Err(corrupt()),
    };
    let len_bytes = record.get(len_at..len_at + 4).ok_or_else(corrupt)?;
    let meta_len = u32::from_le_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
    let meta_start = len_at + 4;
    let body_start = meta_start
        .checked_add(meta_len as usize)
        .filter(|&e| e <= record.len())
        .ok_or_else(corrupt)?;
    Ok((&record[meta_start..body_start], &record[body_start..]))
}

/// When the document expires (ms since the epoch), read from the fixed offset.
pub(crate) fn expires_at(record: &[u8]) -> Option<i64> {
    if record.first() == Some(&RECORD_V2) {
        let b: [u8; 8] = record.get(1..9)?.try_into().ok()?;
        let t = i64::from_le_bytes(b);
        return (t != NO_EXPIRY).then_some(t);
    }
    decode_meta(record).ok()?.expires_at
}

/// Whether the document is visible at `now`: not expired.
pub(crate) fn is_live(record: &[u8], now: i64) -> bool {
    expires_at(record).is_none_or(|t| t > now)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_read_without_decoding_and_v1_still_reads() {
        let meta = Metadata {
            expires_at: Some(1234),
            ephemeral: true,
            ..Metadata::new_at(1)
        };
        let body = bson::doc! {"_id": "a"}.to_vec().unwrap();
        let rec = encode(&meta, &body).unwrap();
        assert_eq!(expires_at(&rec), Some(1234));
        assert!(is_live(&rec, 1233) && !is_live(&rec, 1234));
        assert_eq!(decode_meta(&rec).unwrap(), meta);
        assert_eq!(body_bytes(&rec).unwrap(), &body[..]);

        let persistent = encode(&Metadata::new_at(1), &body).unwrap();
        assert_eq!(expires_at(&persistent), None);

        let meta_bytes = Metadata::new_at(5).to_bson().to_vec().unwrap();
        let mut v1 = vec![RECORD_V1];
        v1.extend_from_slice(&(meta_bytes.len() as u32).to_le_bytes());
        v1.extend_from_slice(&meta_bytes);
        v1.extend_from_slice(&body);
        assert_eq!(decode_meta(&v1).unwrap().created_at, 5);
        assert_eq!(body_bytes(&v1).unwrap(), &body[..]);
        assert!(split(&[2, 0, 0]).is_err());
    }
}
