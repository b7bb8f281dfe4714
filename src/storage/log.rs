//! The side log `NAME.wasp` of both backends: a header, then length-prefixed, CRC32-checked
//! commit records. One record is one committed transaction, so replay is all-or-nothing
//! per transaction. See `docs/FORMAT.md` for the byte layout.
//!
//! Replay tells a torn tail from damage: it stops at the first record that is torn, fails
//! its checksum or does not decode, then looks past it for intact records with higher LSNs
//! ([`Replay::later`]). None: the tail is the residue of a crash during an append (never
//! acknowledged under `sync=full`) and may be cut. Some: acknowledged commits follow the
//! bad record, so the log is damaged, and the caller refuses to open unless told to accept
//! the loss ([`LogRecovery::DiscardDamaged`]).
//!
//! ```text
//! file header (32 bytes)
//!   0  8 magic "NXWALLOG"     8  4 version u32 LE (1)    12 4 salt u32 LE (0: none)
//!  16  8 base_lsn u64 LE     24  4 reserved             28 4 crc32 of 0..28
//! record
//!   0  4 payload_len u32 LE   4  4 crc32(payload) u32 LE   8 .. payload
//! payload
//!   lsn u64 LE, op_count u32 LE, then per op: tag u8 and its fields, each byte string as
//!   u32 LE length + bytes:
//!   1 create(name, options)  2 drop(name)  3 rename(from, to)  4 put(table, key, value)
//!   5 delete(table, key)
//! ```

use super::fault::Faults;
use super::file::{self, LogFile};
use crate::error::{Error, Result};
use crate::storage::Bytes;
use std::path::{Path, PathBuf};

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

/// The log of database `db`: the same name with the extension `.wasp`.
pub(crate) fn log_path_for(db: &Path) -> PathBuf {
    db.with_extension("wasp")
}

/// Where a new log is written before it is renamed over the log.
pub(crate) fn tmp_path(log_path: &Path) -> PathBuf {
    log_path.with_extension("wasp.tmp")
}

/// Writes a complete log (header + `records`) to `path` through a temporary file and an
/// atomic rename; returns the open file, positioned for appending. `salt` ties the log to
/// its database (0: none, as logs of earlier builds).
pub(crate) fn write_new_log(
    path: &Path,
    base_lsn: u64,
    salt: u32,
    records: impl Iterator<Item = Vec<u8>>,
    faults: &Faults,
) -> Result<LogFile> {
    let tmp = tmp_path(path);
    let _ = std::fs::remove_file(&tmp);
    let mut f = LogFile::open(&tmp, true, faults.clone())?;
    f.append(&encode_header(base_lsn, salt))?;
    for r in records {
        f.append(&r)?;
    }
    f.sync()?;
    file::rename_durable(&tmp, path)?;
    f.renamed(path);
    Ok(f)
}

/// What open does with a log that is damaged (intact commits after a bad record), missing
/// while the database says commits may be in it, or written for another database.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogRecovery {
    /// Refuse with [`Error::Corrupt`] and change nothing (the default).
    #[default]
    Strict,
    /// Open option `"recover": "discard-damaged-log"`: keep the commits before the damage,
    /// drop the rest, cut the log there and report what was dropped (`nexus_stats`,
    /// `storage.recovery`).
    DiscardDamaged,
}

impl LogRecovery {
    /// Parses the open option `recover`: `"strict"` or `"discard-damaged-log"`.
    pub(crate) fn parse(s: &str) -> Result<Self> {
        match s {
            "strict" => Ok(Self::Strict),
            "discard-damaged-log" => Ok(Self::DiscardDamaged),
            other => Err(Error::invalid(format!(
                "open option 'recover' must be \"strict\" or \"discard-damaged-log\", not \"{other}\""
            ))),
        }
    }

    /// The option spelling.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Strict => "strict",
            Self::DiscardDamaged => "discard-damaged-log",
        }
    }
}

/// What recovery found and did at open (`nexus_stats`: `storage.recovery`).
#[derive(Debug, Default, Clone)]
pub(crate) struct Recovery {
    /// Commit records replayed from the log.
    pub records: u64,
    /// Bytes cut from the end of the log (a torn tail, or everything from the damage on).
    pub dropped_bytes: u64,
    /// Why replay stopped early, if it did.
    pub reason: Option<String>,
    /// Intact commits dropped because `recover` accepted a damaged log.
    pub commits_dropped: u64,
    /// The log was missing (or belonged to another database) and `recover` started a new one:
    /// commits after the last checkpoint, if any, are lost (how many is not known).
    pub log_replaced: Option<String>,
    /// The `recover` mode of the open that ran recovery.
    pub mode: LogRecovery,
}

impl Recovery {
    /// The `storage.recovery` object of `nexus_stats`.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "records_replayed": self.records,
            "dropped_bytes": self.dropped_bytes,
            "stop_reason": self.reason,
            "commits_dropped": self.commits_dropped,
            "log_replaced": self.log_replaced,
            "mode": self.mode.as_str(),
        })
    }
}

/// The advice every refusal of a damaged or missing log ends with.
pub(crate) const RECOVER_ADVICE: &str = "Nothing was changed. Put the original log back if it \
was moved or can be restored from a backup; or, to accept the loss and keep what the \
database file and the intact part of the log hold, open with {\"recover\":\"discard-damaged-log\"} \
or run `nexus check --repair`";

pub(crate) fn encode_header(base_lsn: u64, salt: u32) -> [u8; LOG_HEADER_LEN] {
    let mut b = [0u8; LOG_HEADER_LEN];
    b[0..8].copy_from_slice(LOG_MAGIC);
    b[8..12].copy_from_slice(&LOG_VERSION.to_le_bytes());
    b[12..16].copy_from_slice(&salt.to_le_bytes());
    b[16..24].copy_from_slice(&base_lsn.to_le_bytes());
    let crc = crc32fast::hash(&b[0..28]);
    b[28..32].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Validates the log header and returns its base LSN and salt.
pub(crate) fn decode_header(b: &[u8], what: &str) -> Result<(u64, u32)> {
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
    Ok((read_u64(b, 16), read_u32(b, 12)))
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    // A field's length is a u32 on disk; a wrapped length would make the record unreadable
    // (dropped as a torn tail on replay), so an oversized field stops here instead. Names and
    // options are small and documents are bounded by MAX_DOCUMENT_BYTES.
    // WASP stops logging a transaction whose record passes 2 GiB (wasp/txn.rs), memlog
    // checks `record_fits` before sealing, so this cannot fire.
    let len = u32::try_from(b.len()).expect("log record field larger than 4 GiB");
    out.extend_from_slice(&len.to_le_bytes());
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

/// Whether a record of `record_len` bytes (as built by [`begin_record`] and [`encode_op`]) has a
/// payload whose length fits the record's u32 length field.
pub(crate) fn record_fits(record_len: usize) -> bool {
    u32::try_from(record_len.saturating_sub(8)).is_ok()
}

/// Completes a record of `count` ops: its LSN, count, payload length and checksum.
///
/// Panics if the payload is 4 GiB or more (its length would not fit the u32 field; a wrapped
/// length would make the commit unreadable): callers check [`record_fits`] first.
pub(crate) fn seal_record(record: &mut [u8], lsn: u64, count: u32) {
    record[8..16].copy_from_slice(&lsn.to_le_bytes());
    record[16..20].copy_from_slice(&count.to_le_bytes());
    let payload = &record[8..];
    let len = u32::try_from(payload.len()).expect("log record payload larger than 4 GiB");
    let crc = crc32fast::hash(payload);
    record[0..4].copy_from_slice(&len.to_le_bytes());
    record[4..8].copy_from_slice(&crc.to_le_bytes());
}

/// Encodes one commit record (length prefix and checksum included). A commit of 2^32 ops or
/// more, or whose record would be 4 GiB or more, is refused: its op count or length would not
/// fit the record's u32 fields.
pub(crate) fn encode_record(lsn: u64, ops: &[Op]) -> Result<Vec<u8>> {
    let count = u32::try_from(ops.len())
        .map_err(|_| Error::invalid("a transaction of 2^32 or more changes cannot be logged"))?;
    let mut out = Vec::new();
    begin_record(&mut out);
    for op in ops {
        encode_op(&mut out, op);
    }
    if !record_fits(out.len()) {
        return Err(Error::invalid(
            "a transaction whose changes take 4 GiB or more cannot be logged",
        ));
    }
    seal_record(&mut out, lsn, count);
    Ok(out)
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

/// One logged transaction: its LSN and its changes.
pub(crate) type LoggedTxn = (u64, Vec<Op>);

fn decode_payload(p: &[u8]) -> Option<LoggedTxn> {
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
    pub records: Vec<LoggedTxn>,
    /// Offset just past the last good record: where the next append goes.
    pub good_len: u64,
    /// Bytes after `good_len` that were dropped (torn or corrupt tail).
    pub dropped_bytes: u64,
    /// Why replay stopped early, if it did.
    pub stop_reason: Option<String>,
    pub base_lsn: u64,
    /// LSNs of the intact records found after the point where replay stopped: commits that
    /// a damaged record cut off (empty for a torn tail).
    pub later: Vec<u64>,
}

impl Replay {
    /// Intact commits above `floor` that lie after the damage (what stopping there loses).
    pub(crate) fn lost_after(&self, floor: u64) -> Vec<u64> {
        self.later.iter().copied().filter(|&l| l > floor).collect()
    }

    /// The refusal for a log whose damage cuts off `lost` (non-empty) commits.
    pub(crate) fn damage_error(&self, what: &str, lost: &[u64]) -> Error {
        Error::Corrupt(format!(
            "{what} is damaged: {} at offset {}, followed by {} intact commit(s) (LSN {} to {}), \
             so this is not the torn tail a crash leaves; opening would lose them. {RECOVER_ADVICE}",
            self.stop_reason.as_deref().unwrap_or("a bad record"),
            self.good_len,
            lost.len(),
            lost.first().copied().unwrap_or(0),
            lost.last().copied().unwrap_or(0),
        ))
    }
}

/// Parses a whole log image, stopping cleanly at the first torn or corrupt record.
pub(crate) fn replay(image: &[u8], what: &str) -> Result<Replay> {
    let (base_lsn, _salt) = decode_header(image, what)?;
    let mut out = Replay {
        base_lsn,
        ..Replay::default()
    };
    let mut at = LOG_HEADER_LEN;
    let stop = loop {
        match next_record(image, at) {
            Ok(Some((rec, next))) => {
                out.records.push(rec);
                at = next;
            }
            Ok(None) => break None,
            Err(why) => break Some(why),
        }
    };
    out.good_len = at as u64;
    out.dropped_bytes = (image.len() - at) as u64;
    if stop.is_some() {
        let floor = out.records.last().map_or(base_lsn, |r| r.0);
        out.later = intact_after(image, at, floor);
    }
    out.stop_reason = stop;
    Ok(out)
}

/// The record at offset `at` of `image` and the offset after it; `None` at the end; the
/// reason when what is there is torn, damaged or undecodable.
fn next_record(image: &[u8], at: usize) -> std::result::Result<Option<(LoggedTxn, usize)>, String> {
    if at == image.len() {
        return Ok(None);
    }
    if image.len() - at < 8 {
        return Err(format!("torn record header at offset {at}"));
    }
    let len = read_u32(image, at) as usize;
    let crc = read_u32(image, at + 4);
    if len > MAX_RECORD || image.len() - at - 8 < len {
        return Err(format!(
            "torn record at offset {at} ({len} bytes announced)"
        ));
    }
    let payload = &image[at + 8..at + 8 + len];
    if crc32fast::hash(payload) != crc {
        return Err(format!("checksum mismatch in record at offset {at}"));
    }
    match decode_payload(payload) {
        Some(rec) => Ok(Some((rec, at + 8 + len))),
        None => Err(format!("undecodable record at offset {at}")),
    }
}

/// Decodes records laid end to end (a stretch of a log after its header, which another
/// process published as complete); the reason when any of it does not decode.
pub(crate) fn decode_records(bytes: &[u8]) -> std::result::Result<Vec<LoggedTxn>, String> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some((rec, next)) = next_record(bytes, at)? {
        out.push(rec);
        at = next;
    }
    Ok(out)
}

/// LSNs of the intact records that start after offset `bad` (a record that failed): every
/// offset is tried, since the bad record's own length may be what is damaged. A candidate
/// must announce a length that fits, carry an LSN above `floor` (and not absurdly far above
/// it), and pass its checksum; most offsets fail the first two tests at once, so the scan is
/// cheap. An intact record found is stepped over whole.
fn intact_after(image: &[u8], bad: usize, floor: u64) -> Vec<u64> {
    const MAX_LSN_GAP: u64 = 1 << 40;
    let mut found = Vec::new();
    let mut pos = bad + 1;
    while pos + RECORD_HEAD <= image.len() {
        let len = read_u32(image, pos) as usize;
        if len >= RECORD_HEAD - 8 && len <= image.len() - pos - 8 {
            let lsn = read_u64(image, pos + 8);
            let payload = &image[pos + 8..pos + 8 + len];
            if lsn > floor
                && lsn - floor <= MAX_LSN_GAP
                && crc32fast::hash(payload) == read_u32(image, pos + 4)
                && decode_payload(payload).is_some()
            {
                found.push(lsn);
                pos += 8 + len;
                continue;
            }
        }
        pos += 1;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(records: &[Vec<u8>]) -> Vec<u8> {
        let mut img = encode_header(0, 7).to_vec();
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
        let r = replay(&image(&[encode_record(7, &ops).unwrap()]), "t").unwrap();
        assert_eq!(r.records, vec![(7, ops)]);
        assert_eq!(r.dropped_bytes, 0);
    }

    #[test]
    fn every_truncation_of_the_last_record_is_dropped_cleanly() {
        let a = encode_record(1, &[Op::Drop { name: "a".into() }]).unwrap();
        let b = encode_record(2, &[Op::Drop { name: "b".into() }]).unwrap();
        let full = image(&[a.clone(), b.clone()]);
        for cut in 0..b.len() {
            let img = &full[..full.len() - b.len() + cut];
            let r = replay(img, "t").unwrap();
            assert_eq!(r.records.len(), 1, "cut at {cut}");
            assert_eq!(r.good_len, (LOG_HEADER_LEN + a.len()) as u64);
            assert_eq!(r.dropped_bytes, cut as u64);
        }
    }

    #[test]
    fn a_flipped_bit_stops_replay_at_that_record() {
        let a = encode_record(1, &[Op::Drop { name: "a".into() }]).unwrap();
        let b = encode_record(2, &[Op::Drop { name: "b".into() }]).unwrap();
        let mut img = image(&[a.clone(), b]);
        let last = img.len() - 1;
        img[last] ^= 0x40;
        let r = replay(&img, "t").unwrap();
        assert_eq!(r.records.len(), 1);
        assert!(r.later.is_empty(), "a bad last record is a torn tail");
        assert!(r.stop_reason.unwrap().contains("checksum"));
    }

    fn drops(n: u64) -> Vec<Vec<u8>> {
        (1..=n)
            .map(|lsn| {
                encode_record(
                    lsn,
                    &[Op::Drop {
                        name: format!("c{lsn}"),
                    }],
                )
                .unwrap()
            })
            .collect()
    }

    #[test]
    fn damage_followed_by_intact_records_is_told_from_a_torn_tail() {
        let recs = drops(10);
        let clean = image(&recs);
        let first = LOG_HEADER_LEN;
        // A flipped byte in the payload, in the checksum, in the length (which then points
        // past the end or into the next record): each time records 2..=10 are found intact.
        for at in [first + 12, first + 5, first + 1, first] {
            let mut img = clean.clone();
            img[at] ^= 0x5a;
            let r = replay(&img, "t").unwrap();
            assert_eq!(r.records.len(), 0, "offset {at}");
            assert_eq!(r.later, (2..=10).collect::<Vec<u64>>(), "offset {at}");
            assert_eq!(r.lost_after(4), (5..=10).collect::<Vec<u64>>());
            let e = r.damage_error("t", &r.lost_after(0)).to_string();
            assert!(e.contains("9 intact commit(s) (LSN 2 to 10)"), "{e}");
        }
        // Damage in the middle: the records before it replay, the ones after are counted.
        let mut img = clean.clone();
        let mid = first + recs[..4].iter().map(Vec::len).sum::<usize>() + 10;
        img[mid] ^= 1;
        let r = replay(&img, "t").unwrap();
        assert_eq!(r.records.len(), 4);
        assert_eq!(r.later, (6..=10).collect::<Vec<u64>>());
        // A torn tail (the last record cut short, zeros after it) finds nothing later.
        let mut img = clean[..clean.len() - 3].to_vec();
        img.extend_from_slice(&[0u8; 4096]);
        let r = replay(&img, "t").unwrap();
        assert_eq!(r.records.len(), 9);
        assert!(r.later.is_empty());
        assert_eq!(decode_header(&img, "t").unwrap(), (0, 7));
    }
}
