//! The `wal` backend's log file (`NAME.wasp`): a header, then length-prefixed, CRC32-checked
//! commit records. One record is one committed transaction, so replay is all-or-nothing
//! per transaction. See `docs/FORMAT.md` for the byte layout.
//!
//! ```text
//! file header (32 bytes)
//!   0  8 magic "NXWALLOG"     8  4 version u32 LE (1)    12 4 reserved
//!  16  8 base_lsn u64 LE     24  4 reserved             28 4 crc32 of 0..28
//! record
//!   0  4 payload_len u32 LE   4  4 crc32(payload) u32 LE   8 .. payload
//! payload
//!   lsn u64 LE, op_count u32 LE, then per op: tag u8 and its fields, each byte string as
//!   u32 LE length + bytes:
//!   1 create(name, options)  2 drop(name)  3 rename(from, to)  4 put(table, key, value)
//!   5 delete(table, key)
//! ```

use crate::error::{Error, Result};
use crate::storage::Bytes;

pub(crate) const LOG_MAGIC: &[u8; 8] = b"NXWALLOG";
pub(crate) const LOG_HEADER_LEN: usize = 32;
const LOG_VERSION: u32 = 1;
/// Upper bound for one record; anything larger in a length prefix is damage, not data.
const MAX_RECORD: usize = 1 << 31;

/// One change inside a commit record.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Op {
    Create {
        name: String,
        options: String,
    },
    Drop {
        name: String,
    },
    Rename {
        from: String,
        to: String,
    },
    Put {
        table: String,
        key: Bytes,
        value: Bytes,
    },
    Delete {
        table: String,
        key: Bytes,
    },
}

pub(crate) fn encode_header(base_lsn: u64) -> [u8; LOG_HEADER_LEN] {
    let mut b = [0u8; LOG_HEADER_LEN];
    b[0..8].copy_from_slice(LOG_MAGIC);
    b[8..12].copy_from_slice(&LOG_VERSION.to_le_bytes());
    b[16..24].copy_from_slice(&base_lsn.to_le_bytes());
    let crc = crc32fast::hash(&b[0..28]);
    b[28..32].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Validates the log header and returns its base LSN.
pub(crate) fn decode_header(b: &[u8], what: &str) -> Result<u64> {
    if b.len() < LOG_HEADER_LEN || &b[0..8] != LOG_MAGIC {
        return Err(Error::Corrupt(format!("{what} is not a NexusLite log")));
    }
    if read_u32(b, 28) != crc32fast::hash(&b[0..28]) {
        return Err(Error::Corrupt(format!(
            "{what}: log header fails its checksum"
        )));
    }
    let version = read_u32(b, 8);
    if version > LOG_VERSION {
        return Err(Error::unsupported(format!(
            "{what}: log format version {version} is newer than this build reads"
        )));
    }
    Ok(read_u64(b, 16))
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

/// Bytes before a record's ops: payload length and checksum, then the LSN and op count
/// (the payload starts at the LSN).
pub(crate) const RECORD_HEAD: usize = 4 + 4 + 8 + 4;

/// Starts a record in `out` (cleared): room for [`RECORD_HEAD`], filled by [`seal_record`].
pub(crate) fn begin_record(out: &mut Vec<u8>) {
    out.clear();
    out.resize(RECORD_HEAD, 0);
}

/// Appends one op to a record begun with [`begin_record`].
pub(crate) fn encode_op(p: &mut Vec<u8>, op: &Op) {
    match op {
        Op::Create { name, options } => {
            p.push(1);
            put_bytes(p, name.as_bytes());
            put_bytes(p, options.as_bytes());
        }
        Op::Drop { name } => {
            p.push(2);
            put_bytes(p, name.as_bytes());
        }
        Op::Rename { from, to } => {
            p.push(3);
            put_bytes(p, from.as_bytes());
            put_bytes(p, to.as_bytes());
        }
        Op::Put { table, key, value } => encode_put(p, table, key, value),
        Op::Delete { table, key } => {
            p.push(5);
            put_bytes(p, table.as_bytes());
            put_bytes(p, key);
        }
    }
}

/// Appends a put op (what [`encode_op`] writes for [`Op::Put`]).
pub(crate) fn encode_put(p: &mut Vec<u8>, table: &str, key: &[u8], value: &[u8]) {
    p.reserve(13 + table.len() + key.len() + value.len());
    p.push(4);
    put_bytes(p, table.as_bytes());
    put_bytes(p, key);
    put_bytes(p, value);
}

/// Completes a record of `count` ops: its LSN, count, payload length and checksum.
pub(crate) fn seal_record(record: &mut [u8], lsn: u64, count: u32) {
    record[8..16].copy_from_slice(&lsn.to_le_bytes());
    record[16..20].copy_from_slice(&count.to_le_bytes());
    let payload = &record[8..];
    let (len, crc) = (payload.len() as u32, crc32fast::hash(payload));
    record[0..4].copy_from_slice(&len.to_le_bytes());
    record[4..8].copy_from_slice(&crc.to_le_bytes());
}

/// Encodes one commit record (length prefix and checksum included).
pub(crate) fn encode_record(lsn: u64, ops: &[Op]) -> Vec<u8> {
    let mut out = Vec::new();
    begin_record(&mut out);
    for op in ops {
        encode_op(&mut out, op);
    }
    seal_record(&mut out, lsn, ops.len() as u32);
    out
}

fn read_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn read_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// A cursor over a payload; every read is bounds-checked.
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let s = self.b.get(self.at..end)?;
        self.at = end;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|s| s[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4).map(|s| read_u32(s, 0))
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8).map(|s| read_u64(s, 0))
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }
}

fn decode_payload(p: &[u8]) -> Option<(u64, Vec<Op>)> {
    let mut r = Reader { b: p, at: 0 };
    let lsn = r.u64()?;
    let n = r.u32()? as usize;
    let mut ops = Vec::with_capacity(n.min(1 << 16));
    for _ in 0..n {
        let op = match r.u8()? {
            1 => Op::Create {
                name: r.string()?,
                options: r.string()?,
            },
            2 => Op::Drop { name: r.string()? },
            3 => Op::Rename {
                from: r.string()?,
                to: r.string()?,
            },
            4 => Op::Put {
                table: r.string()?,
                key: Bytes::copy_from_slice(r.bytes()?),
                value: Bytes::copy_from_slice(r.bytes()?),
            },
            5 => Op::Delete {
                table: r.string()?,
                key: Bytes::copy_from_slice(r.bytes()?),
            },
            _ => return None,
        };
        ops.push(op);
    }
    (r.at == p.len()).then_some((lsn, ops))
}

/// What replaying a log found.
#[derive(Debug, Default)]
pub(crate) struct Replay {
    /// Committed transactions, in order.
    pub records: Vec<(u64, Vec<Op>)>,
    /// Offset just past the last good record: where the next append goes.
    pub good_len: u64,
    /// Bytes after `good_len` that were dropped (torn or corrupt tail).
    pub dropped_bytes: u64,
    /// Why replay stopped early, if it did.
    pub stop_reason: Option<String>,
    pub base_lsn: u64,
}

/// Parses a whole log image, stopping cleanly at the first torn or corrupt record.
pub(crate) fn replay(image: &[u8], what: &str) -> Result<Replay> {
    let base_lsn = decode_header(image, what)?;
    let mut out = Replay {
        base_lsn,
        ..Replay::default()
    };
    let mut at = LOG_HEADER_LEN;
    let stop = loop {
        if at == image.len() {
            break None;
        }
        if image.len() - at < 8 {
            break Some(format!("torn record header at offset {at}"));
        }
        let len = read_u32(image, at) as usize;
        let crc = read_u32(image, at + 4);
        if len > MAX_RECORD || image.len() - at - 8 < len {
            break Some(format!(
                "torn record at offset {at} ({len} bytes announced)"
            ));
        }
        let payload = &image[at + 8..at + 8 + len];
        if crc32fast::hash(payload) != crc {
            break Some(format!("checksum mismatch in record at offset {at}"));
        }
        match decode_payload(payload) {
            Some(rec) => out.records.push(rec),
            None => break Some(format!("undecodable record at offset {at}")),
        }
        at += 8 + len;
    };
    out.good_len = at as u64;
    out.dropped_bytes = (image.len() - at) as u64;
    out.stop_reason = stop;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(records: &[Vec<u8>]) -> Vec<u8> {
        let mut img = encode_header(0).to_vec();
        for r in records {
            img.extend_from_slice(r);
        }
        img
    }

    #[test]
    fn records_round_trip() {
        let ops = vec![
            Op::Create {
                name: "c".into(),
                options: "{}".into(),
            },
            Op::Put {
                table: "c".into(),
                key: Bytes::from(&b"k"[..]),
                value: Bytes::from(&b"v"[..]),
            },
            Op::Delete {
                table: "c".into(),
                key: Bytes::from(&b"k"[..]),
            },
            Op::Rename {
                from: "c".into(),
                to: "d".into(),
            },
            Op::Drop { name: "d".into() },
        ];
        let r = replay(&image(&[encode_record(7, &ops)]), "t").unwrap();
        assert_eq!(r.records, vec![(7, ops)]);
        assert_eq!(r.dropped_bytes, 0);
    }

    #[test]
    fn every_truncation_of_the_last_record_is_dropped_cleanly() {
        let a = encode_record(1, &[Op::Drop { name: "a".into() }]);
        let b = encode_record(2, &[Op::Drop { name: "b".into() }]);
        let full = image(&[a.clone(), b.clone()]);
        for cut in 0..b.len() {
            let img = &full[..full.len() - b.len() + cut];
            let r = replay(img, "t").unwrap();
            assert_eq!(r.records.len(), 1, "cut at {cut}");
            assert_eq!(r.good_len as usize, LOG_HEADER_LEN + a.len());
            assert_eq!(r.dropped_bytes as usize, cut);
        }
    }

    #[test]
    fn a_flipped_bit_stops_replay_at_that_record() {
        let a = encode_record(1, &[Op::Drop { name: "a".into() }]);
        let b = encode_record(2, &[Op::Drop { name: "b".into() }]);
        let mut img = image(&[a.clone(), b]);
        let last = img.len() - 1;
        img[last] ^= 0x40;
        let r = replay(&img, "t").unwrap();
        assert_eq!(r.records.len(), 1);
        assert!(r.stop_reason.unwrap().contains("checksum"));
    }
}
