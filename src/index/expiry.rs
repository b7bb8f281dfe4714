//! Ephemeral documents: the TTL registry in the hidden collection `_tempDocuments`, and the
//! expiry work that deletes expired documents ([`purge_round`]), used both by the background
//! sweeper and by `purge_expired`.
//!
//! Registry key (ordered by expiry time, so the soonest expiring come first):
//!
//! ```text
//! expires_at: u64 BE (i64 with the sign bit flipped) | coll_len: u16 BE | coll | _id key
//! ```
//!
//! The registry may hold stale entries (the document was deleted, or its TTL changed); a
//! round checks the document's own expiry before deleting it and drops stale entries as it
//! meets them. Time is absolute (ms since the Unix epoch), so expiry survives restarts.

use crate::document::record;
use crate::error::{Error, Result};
use crate::storage::{Bytes, WriteTxn};

/// The hidden collection holding the registry.
pub(crate) const TEMP_TABLE: &str = "_tempDocuments";

fn encode_key(expires_at: i64, coll: &str, key: &[u8]) -> Result<Bytes> {
    let coll_len = u16::try_from(coll.len())
        .map_err(|_| Error::invalid("collection name too long for the TTL registry"))?;
    let mut out = Vec::with_capacity(10 + coll.len() + key.len());
    // The two's-complement bits with the sign bit flipped: an order-preserving key.
    out.extend_from_slice(&(expires_at.cast_unsigned() ^ (1 << 63)).to_be_bytes());
    out.extend_from_slice(&coll_len.to_be_bytes());
    out.extend_from_slice(coll.as_bytes());
    out.extend_from_slice(key);
    Ok(Bytes::from(out))
}

/// (expires_at, collection, document key) of a registry key.
fn decode_key(k: &[u8]) -> Option<(i64, String, Bytes)> {
    let t = u64::from_be_bytes(k.get(0..8)?.try_into().ok()?) ^ (1 << 63);
    let n = u16::from_be_bytes(k.get(8..10)?.try_into().ok()?) as usize;
    let coll = std::str::from_utf8(k.get(10..10 + n)?).ok()?.to_owned();
    Some((t as i64, coll, Bytes::copy_from_slice(k.get(10 + n..)?)))
}

/// Records that the document `key` of `coll` expires at `expires_at`.
pub(crate) fn register(
    t: &mut dyn WriteTxn,
    coll: &str,
    key: &[u8],
    expires_at: i64,
) -> Result<()> {
    if !t.has_table(TEMP_TABLE) {
        t.create_table(TEMP_TABLE, "{}")?;
    }
    t.put(
        TEMP_TABLE,
        encode_key(expires_at, coll, key)?,
        Bytes::from(&[][..]),
    )
}

/// Removes a registration (no-op when absent).
pub(crate) fn unregister(
    t: &mut dyn WriteTxn,
    coll: &str,
    key: &[u8],
    expires_at: i64,
) -> Result<()> {
    if t.has_table(TEMP_TABLE) {
        t.delete(TEMP_TABLE, &encode_key(expires_at, coll, key)?)?;
    }
    Ok(())
}

/// What one expiry round did.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Round {
    /// Registry entries looked at (at most the sample size).
    pub sampled: usize,
    /// Of those, entries whose time had come.
    pub due: usize,
    /// Documents deleted because they had expired.
    pub deleted: u64,
}

/// One round: looks at the `sample` soonest-expiring registry entries and, for those due at
/// `now`, deletes the document (when it is still expired) and the entry.
pub(crate) fn purge_round(t: &mut dyn WriteTxn, now: i64, sample: usize) -> Result<Round> {
    let mut round = Round::default();
    if !t.has_table(TEMP_TABLE) {
        return Ok(round);
    }
    let entries = t.scan(TEMP_TABLE, None, sample.max(1));
    round.sampled = entries.len();
    for (k, _) in entries {
        let Some((expires_at, coll, key)) = decode_key(&k) else {
            t.delete(TEMP_TABLE, &k)?;
            continue;
        };
        if expires_at > now {
            break;
        }
        round.due += 1;
        if let Some(rec) = t.get(&coll, &key) {
            if !record::is_live(&rec, now) {
                t.delete(&coll, &key)?;
                round.deleted += 1;
            }
        }
        t.delete(TEMP_TABLE, &k)?;
    }
    Ok(round)
}

/// Calls `f` with every registry key of collection `coll`.
fn entries_of(t: &mut dyn WriteTxn, coll: &str) -> Vec<(Bytes, i64, Bytes)> {
    let mut out = Vec::new();
    if !t.has_table(TEMP_TABLE) {
        return out;
    }
    let mut after: Option<Bytes> = None;
    loop {
        let batch = t.scan(TEMP_TABLE, after.as_deref(), 512);
        if batch.is_empty() {
            return out;
        }
        after = batch.last().map(|(k, _)| k.clone());
        for (k, _) in batch {
            if let Some((at, c, key)) = decode_key(&k) {
                if c == coll {
                    out.push((k, at, key));
                }
            }
        }
    }
}

/// Removes every registry entry of a dropped collection.
pub(crate) fn forget_collection(t: &mut dyn WriteTxn, coll: &str) -> Result<()> {
    for (k, _, _) in entries_of(t, coll) {
        t.delete(TEMP_TABLE, &k)?;
    }
    Ok(())
}

/// Moves the registry entries of a renamed collection to its new name.
pub(crate) fn rename_collection(t: &mut dyn WriteTxn, from: &str, to: &str) -> Result<()> {
    for (k, at, key) in entries_of(t, from) {
        t.delete(TEMP_TABLE, &k)?;
        t.put(TEMP_TABLE, encode_key(at, to, &key)?, Bytes::from(&[][..]))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_order_by_time_and_round_trip() {
        let a = encode_key(-5, "c", b"k1").unwrap();
        let b = encode_key(10, "c", b"k0").unwrap();
        let c = encode_key(11, "a", b"k0").unwrap();
        assert!(a < b && b < c);
        assert_eq!(
            decode_key(&b),
            Some((10, "c".into(), Bytes::from(&b"k0"[..])))
        );
    }
}
