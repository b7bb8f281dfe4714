//! The side log `NAME.wasp` of both backends: a header, then length-prefixed, CRC32-checked
//! commit records. One record is one committed transaction, so replay is all-or-nothing
//! per transaction. See `docs/FORMAT.md` for the byte layout.
//!
//! Two layouts. Version 1 (memlog's log, and WASP logs of earlier builds): one header, records
//! appended after it, the file replaced through `NAME.wasp.tmp` and a rename when it is
//! rewritten. Version 2 (WASP): a recycled log. After a checkpoint the header is rewritten in
//! place with the next *lap* number and new records overwrite the file from just after the
//! header; the file is never cut, so durable commits overwrite blocks that were already
//! written (and preallocated space), which `fdatasync` makes durable without journaling a size
//! or extent change. Every record's checksum field is `crc32(payload) XOR lap`: a record left
//! from an earlier lap fails the current lap's check even when its bytes line up exactly, and
//! the XOR gives back the lap it was written in. Every record goes out with an 8-byte zero
//! end mark after it (in the same write; the next record overwrites it), so replay tells the
//! end of the current lap (zeros; or an intact record of the previous lap, when a crash lost
//! the end mark a restart writes) from a torn record. Version 1 is lap 0 (the checksum is the
//! plain CRC), so one reader serves both. The header has two 32-byte slots; a reset writes
//! the slot of the new lap (`lap % 2`) and the valid slot with the newer lap is the header, so
//! a header write torn by a crash leaves the previous header, whose records are all covered by
//! the checkpoint that preceded the reset.
//!
//! Replay tells a torn tail from damage: it stops at the first record that is torn, fails
//! its checksum, does not decode or does not continue the lap (its LSN not above the one
//! before), then looks past it for intact records of the current lap (or the next: a newer
//! header that was lost) with higher LSNs ([`Replay::later`]). None: the tail is the residue
//! of a crash during an append (never acknowledged under `sync=full`) and may be cut. Some:
//! acknowledged commits follow the bad record, so the log is damaged, and the caller refuses
//! to open unless told to accept the loss ([`LogRecovery::DiscardDamaged`]).
//!
//! ```text
//! version 1 header (32 bytes), records from offset 32
//!   0  8 magic "NXWALLOG"     8  4 version u32 LE (1)    12 4 salt u32 LE (0: none)
//!  16  8 base_lsn u64 LE     24  4 reserved (0)         28 4 crc32 of 0..28
//! version 2 header: two such 32-byte slots at 0 and 32, records from offset 64
//!   slot: magic, version (2), salt, base_lsn as above; 24 4 lap u32 LE (>= 1); 28 4 crc32
//! record
//!   0  4 payload_len u32 LE   4  4 crc32(payload) XOR lap, u32 LE   8 .. payload
//! payload
//!   lsn u64 LE, op_count u32 LE, then per op: tag u8 and its fields, each byte string as
//!   u32 LE length + bytes:
//!   1 create(name, options)  2 drop(name)  3 rename(from, to)  4 put(table, key, value)
//!   5 delete(table, key)  6 create(name, options) of a clustered table
//!   7 advance-rid(table, next_rid u64 LE): a clustered table's next record id is at least it
//! ```

use super::fault::Faults;
use super::file::{self, LogFile};
use crate::crypto::seal::{Domain, Sealer, OVERHEAD};
use crate::error::{Error, Result};
use crate::storage::Bytes;
use std::borrow::Cow;
use std::path::{Path, PathBuf};

pub(crate) const LOG_MAGIC: &[u8; 8] = b"NXWALLOG";
/// Bytes of a version-1 header, and of one slot of a version-2 header.
pub(crate) const LOG_HEADER_LEN: usize = 32;
/// Where the records of a version-2 (recycled) log start: after its two header slots.
pub(crate) const LOG2_START: usize = 2 * LOG_HEADER_LEN;
/// The newest log version this build writes (WASP) and reads.
const LOG_VERSION: u32 = 2;
/// Zero bytes written after every record of a recycled log, in the same write: the end of the
/// current lap is then always a zeroed record head, told apart from a torn record (whatever
/// earlier laps left after it). The next record overwrites it.
pub(crate) const END_MARK: usize = 8;
/// Space added at a time ahead of a recycled log's records (`fallocate`), so that even its
/// first lap overwrites allocated blocks: the file size changes once per step, not per commit.
pub(crate) const PREALLOC_STEP: u64 = 1 << 20;
/// Upper bound for one record; anything larger in a length prefix is damage, not data.
const MAX_RECORD: usize = 1 << 31;

/// One change inside a commit record.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Op {
    /// `clustered`: the table keeps its entries in insertion order under record ids, with a
    /// map from key to record id beside them (op tag 6; see `docs/FORMAT.md`); otherwise in
    /// key order (op tag 1).
    Create {
        name: String,
        options: String,
        clustered: bool,
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
    /// The next record id of clustered table `table` is at least `next_rid` (op tag 7): a
    /// copy of a database (`storage::copy`) gives each entry the record id it had, so the
    /// index entries that carry record ids stay true. No-op for other tables and engines.
    AdvanceRid {
        table: String,
        next_rid: u64,
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

/// What a log's header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LogHeader {
    /// 1: appended log (memlog; WASP logs of earlier builds); 2: recycled log.
    pub version: u32,
    /// Ties the log to its database (0: none, as logs of earlier builds).
    pub salt: u32,
    /// Every record of the log has a higher LSN.
    pub base_lsn: u64,
    /// The lap of a recycled log (>= 1); 0 for version 1.
    pub lap: u32,
}

impl LogHeader {
    /// A header of the layout `lap` implies (0: version 1, else version 2).
    pub(crate) fn new(base_lsn: u64, salt: u32, lap: u32) -> Self {
        Self {
            version: if lap == 0 { 1 } else { 2 },
            salt,
            base_lsn,
            lap,
        }
    }

    /// The offset of the first record.
    pub(crate) fn start(&self) -> u64 {
        if self.lap == 0 {
            LOG_HEADER_LEN as u64
        } else {
            LOG2_START as u64
        }
    }

    /// The header bytes a new file starts with (for version 2 both slots hold it, so the
    /// magic is at offset 0 and either slot may be overwritten first).
    pub(crate) fn file_bytes(&self) -> Vec<u8> {
        let slot = encode_slot(self);
        if self.lap == 0 {
            slot.to_vec()
        } else {
            [slot, slot].concat()
        }
    }
}

/// The lap after `lap` (never 0, which means version 1).
pub(crate) fn next_lap(lap: u32) -> u32 {
    lap.checked_add(1).unwrap_or(1)
}

/// Whether lap `a` was started after lap `b` (serial-number order, so the u32 may wrap).
fn lap_newer(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < 1 << 31
}

/// Writes a complete log (header + `records`, sealed for the header's lap) to `path` through
/// a temporary file and an atomic rename; returns the open file, positioned after the records.
pub(crate) fn write_new_log(
    path: &Path,
    header: LogHeader,
    records: impl Iterator<Item = Vec<u8>>,
    faults: &Faults,
) -> Result<LogFile> {
    let tmp = tmp_path(path);
    let _ = std::fs::remove_file(&tmp);
    let mut f = LogFile::open(&tmp, true, faults.clone())?;
    f.append(&header.file_bytes())?;
    if header.lap != 0 {
        f.set_prealloc(PREALLOC_STEP);
    }
    for r in records {
        f.append(&r)?;
    }
    f.sync()?;
    file::rename_durable(&tmp, path)?;
    f.renamed(path);
    Ok(f)
}

/// Opens an existing log for writing and reads its header.
pub(crate) fn open_log_file(path: &Path, faults: &Faults) -> Result<(LogFile, LogHeader)> {
    let mut f = LogFile::open(path, false, faults.clone())?;
    let mut head = [0u8; LOG2_START];
    let n = f.read_at(0, &mut head)?;
    let h = decode_header(&head[..n], &path.display().to_string())?;
    if h.lap != 0 {
        f.set_prealloc(PREALLOC_STEP);
    }
    f.set_end(h.start());
    Ok((f, h))
}

/// Starts the next lap of recycled log `f` in place: writes the header slot of lap
/// `next_lap(h.lap)` (base `base_lsn`) and syncs it; the next record goes right after the
/// header. A crash before the sync, or one that tears the slot, leaves the previous slot (and
/// lap) in force. Returns the new header.
pub(crate) fn restart_lap(f: &mut LogFile, h: &LogHeader, base_lsn: u64) -> Result<LogHeader> {
    let new = LogHeader::new(base_lsn, h.salt, next_lap(h.lap));
    let at = u64::from(new.lap % 2) * LOG_HEADER_LEN as u64;
    f.write_at(at, &encode_slot(&new))?;
    // Then the end mark of the empty lap. Either may reach the disk without the other: the
    // header alone leaves the previous lap's first record at the start of the new lap (an
    // intact record of the previous lap: the clean end), the end mark alone ends the previous
    // lap before its first record, which loses nothing (the checkpoint covers it). In this
    // order, a process that reads the end mark where it followed the previous lap finds the
    // new header already written (see `follow::apply_tail`).
    f.write_at(LOG2_START as u64, &[0u8; END_MARK])?;
    f.sync()?;
    f.set_end(new.start());
    Ok(new)
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

/// One header slot (the whole header of version 1).
fn encode_slot(h: &LogHeader) -> [u8; LOG_HEADER_LEN] {
    let mut b = [0u8; LOG_HEADER_LEN];
    b[0..8].copy_from_slice(LOG_MAGIC);
    b[8..12].copy_from_slice(&h.version.to_le_bytes());
    b[12..16].copy_from_slice(&h.salt.to_le_bytes());
    b[16..24].copy_from_slice(&h.base_lsn.to_le_bytes());
    b[24..28].copy_from_slice(&h.lap.to_le_bytes());
    let crc = crc32fast::hash(&b[0..28]);
    b[28..32].copy_from_slice(&crc.to_le_bytes());
    b
}

/// The header of a log image (the file's first bytes: 64 of them cover both layouts).
/// Version 2: the valid slot with the newer lap; a slot that fails its checksum (torn by a
/// crash during a reset, or never written) is passed over.
pub(crate) fn decode_header(b: &[u8], what: &str) -> Result<LogHeader> {
    let slot = |at: usize| -> Option<std::result::Result<LogHeader, u32>> {
        let s = b.get(at..at + LOG_HEADER_LEN)?;
        if &s[0..8] != LOG_MAGIC || read_u32(s, 28) != crc32fast::hash(&s[0..28]) {
            return None;
        }
        let version = read_u32(s, 8);
        if version > LOG_VERSION {
            return Some(Err(version));
        }
        let h = LogHeader {
            version,
            salt: read_u32(s, 12),
            base_lsn: read_u64(s, 16),
            lap: read_u32(s, 24),
        };
        // Version 1 is lap 0 (its field was reserved, written 0); version 2 starts at lap 1.
        ((version == 1) == (h.lap == 0) && version >= 1).then_some(Ok(h))
    };
    let newer = |v: u32| {
        Error::unsupported(format!(
            "{what}: log format version {v} is newer than this build reads"
        ))
    };
    let first = slot(0);
    if let Some(Ok(h)) = first {
        if h.version == 1 {
            return Ok(h);
        }
    }
    let second = slot(LOG_HEADER_LEN);
    let mut best: Option<LogHeader> = None;
    for s in [first, second].into_iter().flatten() {
        match s {
            Err(v) => return Err(newer(v)),
            Ok(h) if h.version == 2 => {
                if best.is_none_or(|b| lap_newer(h.lap, b.lap)) {
                    best = Some(h);
                }
            }
            Ok(_) => {}
        }
    }
    if let Some(h) = best {
        return Ok(h);
    }
    let magic_at = |at: usize| b.get(at..at + 8) == Some(&LOG_MAGIC[..]);
    if magic_at(0) || magic_at(LOG_HEADER_LEN) {
        Err(Error::Corrupt(format!(
            "{what}: log header fails its checksum"
        )))
    } else {
        Err(Error::Corrupt(format!("{what} is not a NexusLite log")))
    }
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
        Op::Create {
            name,
            options,
            clustered,
        } => {
            p.push(if *clustered { 6 } else { 1 });
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
        Op::AdvanceRid { table, next_rid } => {
            p.push(7);
            put_bytes(p, table.as_bytes());
            p.extend_from_slice(&next_rid.to_le_bytes());
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

/// Completes a record of `count` ops for lap `lap` (0: version 1): its LSN, count, payload
/// length and checksum (`crc32(payload) XOR lap`).
///
/// Panics if the payload is 4 GiB or more (its length would not fit the u32 field; a wrapped
/// length would make the commit unreadable): callers check [`record_fits`] first.
pub(crate) fn seal_record(record: &mut [u8], lsn: u64, count: u32, lap: u32) {
    record[8..16].copy_from_slice(&lsn.to_le_bytes());
    record[16..20].copy_from_slice(&count.to_le_bytes());
    let payload = &record[8..];
    let len = u32::try_from(payload.len()).expect("log record payload larger than 4 GiB");
    let crc = crc32fast::hash(payload) ^ lap;
    record[0..4].copy_from_slice(&len.to_le_bytes());
    record[4..8].copy_from_slice(&crc.to_le_bytes());
}

/// Encodes one commit record of lap `lap` (length prefix and checksum included). A commit of
/// 2^32 ops or more, or whose record would be 4 GiB or more, is refused: its op count or
/// length would not fit the record's u32 fields.
pub(crate) fn encode_record(lsn: u64, ops: &[Op], lap: u32) -> Result<Vec<u8>> {
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
    seal_record(&mut out, lsn, count, lap);
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
    /// One op, its byte strings borrowed (not checked to be UTF-8).
    fn raw_op(&mut self) -> Option<RawOp<'a>> {
        Some(match self.u8()? {
            1 => RawOp::Create(self.bytes()?, self.bytes()?, false),
            2 => RawOp::Drop(self.bytes()?),
            3 => RawOp::Rename(self.bytes()?, self.bytes()?),
            4 => RawOp::Put(self.bytes()?, self.bytes()?, self.bytes()?),
            5 => RawOp::Delete(self.bytes()?, self.bytes()?),
            6 => RawOp::Create(self.bytes()?, self.bytes()?, true),
            7 => RawOp::AdvanceRid(self.bytes()?, self.u64()?),
            _ => return None,
        })
    }
}

/// An op as the payload holds it (see the module docs for the tags).
enum RawOp<'a> {
    /// Name, options, clustered.
    Create(&'a [u8], &'a [u8], bool),
    Drop(&'a [u8]),
    Rename(&'a [u8], &'a [u8]),
    Put(&'a [u8], &'a [u8], &'a [u8]),
    Delete(&'a [u8], &'a [u8]),
    AdvanceRid(&'a [u8], u64),
}

/// One logged transaction: its LSN and its changes.
pub(crate) type LoggedTxn = (u64, Vec<Op>);

fn decode_payload(p: &[u8]) -> Option<LoggedTxn> {
    let mut r = Reader { b: p, at: 0 };
    let lsn = r.u64()?;
    let n = r.u32()? as usize;
    let mut ops = Vec::with_capacity(n.min(1 << 16));
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).ok();
    for _ in 0..n {
        ops.push(match r.raw_op()? {
            RawOp::Create(name, options, clustered) => Op::Create {
                name: text(name)?,
                options: text(options)?,
                clustered,
            },
            RawOp::Drop(name) => Op::Drop { name: text(name)? },
            RawOp::Rename(from, to) => Op::Rename {
                from: text(from)?,
                to: text(to)?,
            },
            RawOp::Put(table, key, value) => Op::Put {
                table: text(table)?,
                key: Bytes::copy_from_slice(key),
                value: Bytes::copy_from_slice(value),
            },
            RawOp::Delete(table, key) => Op::Delete {
                table: text(table)?,
                key: Bytes::copy_from_slice(key),
            },
            RawOp::AdvanceRid(table, next_rid) => Op::AdvanceRid {
                table: text(table)?,
                next_rid,
            },
        });
    }
    (r.at == p.len()).then_some((lsn, ops))
}

/// The plain payload of a record of lap `lap`: `payload` itself, or for an encrypted
/// database (`sealer`) its LSN and op count followed by its opened ops; `None` when the ops
/// fail their authentication.
fn plain<'a>(payload: &'a [u8], lap: u32, sealer: Option<&Sealer>) -> Option<Cow<'a, [u8]>> {
    let Some(sealer) = sealer else {
        return Some(Cow::Borrowed(payload));
    };
    if payload.len() < 12 + OVERHEAD {
        return None;
    }
    let (ops, trailer) = payload.split_at(payload.len() - OVERHEAD);
    let mut out = ops.to_vec();
    let numbers = [
        u64::from(lap),
        read_u64(payload, 0),
        u64::from(read_u32(payload, 8)),
    ];
    sealer
        .open(Domain::LogRecord, numbers, &mut out[12..], trailer)
        .then_some(Cow::Owned(out))
}

/// Seals the ops of a record begun with [`begin_record`] for an encrypted database: encrypts
/// them in place and appends the nonce and tag. Called after the ops are encoded and before
/// [`seal_record`] (which checksums the sealed bytes), with the same LSN, count and lap.
pub(crate) fn seal_ops(record: &mut Vec<u8>, lsn: u64, count: u32, lap: u32, sealer: &Sealer) {
    let ops_end = record.len();
    record.resize(ops_end + OVERHEAD, 0);
    let (ops, trailer) = record[RECORD_HEAD..].split_at_mut(ops_end - RECORD_HEAD);
    sealer.seal(
        Domain::LogRecord,
        [u64::from(lap), lsn, u64::from(count)],
        ops,
        trailer,
    );
}

/// Whether `p` has the shape of a payload (an LSN, an op count, then that many ops whose
/// length prefixes end exactly at its end), checked without allocating. The damage scan
/// ([`intact_after`]) tries it at every offset before the checksum: in the residue of earlier
/// laps (BSON, full of small length prefixes and zero bytes) many offsets announce a length
/// that fits and an LSN in range, and a checksum over each such candidate, megabytes long at
/// times, made an open scan a recycled log's residue for seconds.
fn payload_shape_ok(p: &[u8]) -> bool {
    let mut r = Reader { b: p, at: 0 };
    let (Some(_), Some(n)) = (r.u64(), r.u32()) else {
        return false;
    };
    (0..n).all(|_| r.raw_op().is_some()) && r.at == p.len()
}

/// What replaying a log found.
#[derive(Debug, Default)]
pub(crate) struct Replay {
    /// Committed transactions, in order.
    pub records: Vec<LoggedTxn>,
    /// Offset just past the last good record: where the next record goes.
    pub good_len: u64,
    /// Bytes after `good_len` that were dropped (torn or corrupt tail; version 2: the bad
    /// record only, as long as its head says (a torn write's unwritten part included); 0 at
    /// the clean end of a lap).
    pub dropped_bytes: u64,
    /// Why replay stopped early, if it did (not at the clean end of a lap).
    pub stop_reason: Option<String>,
    pub base_lsn: u64,
    /// The header replay read.
    pub header: Option<LogHeader>,
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

/// Parses a whole log image, stopping cleanly at the end of its current lap or at the first
/// torn or corrupt record.
pub(crate) fn replay(image: &[u8], what: &str) -> Result<Replay> {
    replay_sealed(image, what, None)
}

/// [`replay`] of the log of an encrypted database (`sealer`: its data key).
pub(crate) fn replay_sealed(image: &[u8], what: &str, sealer: Option<&Sealer>) -> Result<Replay> {
    let header = decode_header(image, what)?;
    replay_from(image, header, sealer)
}

/// [`replay`] with the header already decoded.
fn replay_from(image: &[u8], header: LogHeader, sealer: Option<&Sealer>) -> Result<Replay> {
    let lap = header.lap;
    let mut out = Replay {
        base_lsn: header.base_lsn,
        header: Some(header),
        ..Replay::default()
    };
    let mut at = usize::try_from(header.start()).unwrap_or(usize::MAX);
    if at > image.len() {
        // A recycled log cut right after its first header slot (a copy of the file made by
        // an earlier build would end at 32): no record.
        out.good_len = header.start();
        return Ok(out);
    }
    let mut prev = header.base_lsn;
    let stop = loop {
        match next_record(image, at, lap, prev, sealer) {
            Ok(Some((rec, next))) => {
                prev = rec.0;
                out.records.push(rec);
                at = next;
            }
            Ok(None) => break None,
            Err(stop) => break Some(stop),
        }
    };
    out.good_len = at as u64;
    if let Some(stop) = stop {
        // Version 1 drops everything after the stop (the file is cut there); version 2 only
        // the bad record (what follows is earlier laps' residue, overwritten in time).
        out.dropped_bytes = if lap == 0 {
            (image.len() - at) as u64
        } else {
            stop.extent as u64
        };
        out.later = intact_after(image, at, prev, lap, sealer);
        if let Some(lsn) = stop.forged {
            out.later.insert(0, lsn);
        }
        out.stop_reason = stop.reason;
    }
    Ok(out)
}

/// Why [`next_record`] stopped.
struct Stop {
    /// `None`: the clean end of a recycled log's current lap (zeros, or a record of an
    /// earlier lap); otherwise what is wrong with the record there.
    reason: Option<String>,
    /// Bytes of the bad record (as far as its length can be believed); 0 at a clean end.
    extent: usize,
    /// The LSN of a record that was written whole (its checksum holds) but fails its
    /// authentication (an encrypted database's record altered or moved): a commit lost to
    /// damage, never a torn tail.
    forged: Option<u64>,
}

impl Stop {
    fn bad(reason: String, extent: usize) -> Self {
        Self {
            reason: Some(reason),
            extent,
            forged: None,
        }
    }
}

/// The record at offset `at` of `image` (lap `lap`, LSN above `prev`) and the offset after
/// it; `None` at the end of the file; the reason to stop otherwise.
fn next_record(
    image: &[u8],
    at: usize,
    lap: u32,
    prev: u64,
    sealer: Option<&Sealer>,
) -> std::result::Result<Option<(LoggedTxn, usize)>, Stop> {
    const CLEAN: Stop = Stop {
        reason: None,
        extent: 0,
        forged: None,
    };
    if at == image.len() {
        return Ok(None);
    }
    let rest = image.len() - at;
    if lap != 0 && image[at..at + rest.min(8)].iter().all(|&b| b == 0) {
        // Never written (preallocated, or past the end of every earlier lap).
        return Err(CLEAN);
    }
    if rest < 8 {
        return Err(Stop::bad(
            format!("torn record header at offset {at}"),
            rest,
        ));
    }
    let len = read_u32(image, at) as usize;
    let crc = read_u32(image, at + 4);
    if len > MAX_RECORD || rest - 8 < len {
        return Err(Stop::bad(
            format!("torn record at offset {at} ({len} bytes announced)"),
            if len > MAX_RECORD { 8 } else { rest },
        ));
    }
    let payload = &image[at + 8..at + 8 + len];
    let extent = 8 + len;
    let written_in = crc32fast::hash(payload) ^ crc;
    let decoded = |lap: u32| plain(payload, lap, sealer).and_then(|p| decode_payload(&p));
    if written_in != lap {
        if lap != 0 && next_lap(written_in) == lap && decoded(written_in).is_some() {
            // An intact record of the previous lap: the current lap ends here (its end mark
            // was lost with a crash during the restart that wrote its header). Any other
            // value is a torn or damaged record (a torn record's checksum gives a random one).
            return Err(CLEAN);
        }
        let why = if lap != 0 && written_in == next_lap(lap) && decoded(written_in).is_some() {
            format!("record at offset {at} belongs to lap {written_in}, after a header of lap {lap} (the newer header was lost)")
        } else {
            format!("checksum mismatch in record at offset {at}")
        };
        return Err(Stop::bad(why, extent));
    }
    if sealer.is_some() && plain(payload, lap, sealer).is_none() {
        // Its checksum holds, so it was written whole: altered, or moved from elsewhere.
        return Err(Stop {
            forged: (payload.len() >= 12).then(|| read_u64(payload, 0)),
            ..Stop::bad(
                format!("record at offset {at} fails its authentication (altered, or not this log's record)"),
                extent,
            )
        });
    }
    match decoded(lap) {
        Some(rec) if lap == 0 || rec.0 > prev => Ok(Some((rec, at + extent))),
        Some(rec) => Err(Stop::bad(
            format!(
                "record at offset {at} does not continue the log (LSN {} after {prev})",
                rec.0
            ),
            extent,
        )),
        None => Err(Stop::bad(
            format!("undecodable record at offset {at}"),
            extent,
        )),
    }
}

/// Decodes records of lap `lap` laid end to end (a stretch of a log after its header, which
/// another process published as complete); the reason when any of it does not decode.
pub(crate) fn decode_records(
    bytes: &[u8],
    lap: u32,
    sealer: Option<&Sealer>,
) -> std::result::Result<Vec<LoggedTxn>, String> {
    let mut out = Vec::new();
    let mut at = 0;
    loop {
        match next_record(bytes, at, lap, 0, sealer) {
            Ok(Some((rec, next))) => {
                out.push(rec);
                at = next;
            }
            Ok(None) => return Ok(out),
            Err(stop) => {
                return Err(stop
                    .reason
                    .unwrap_or_else(|| format!("no record of the current lap at offset {at}")))
            }
        }
    }
}

/// LSNs of the intact records of lap `lap` (or of the lap after it: records written under a
/// newer header that was lost) that start after offset `bad`, where replay stopped: every
/// offset is tried, since the bad record's own length may be what is damaged. A candidate
/// must announce a length that fits, carry an LSN above `floor` (and not absurdly far above
/// it), and pass its checksum; most offsets fail the first two tests at once, so the scan is
/// cheap. Records of earlier laps carry LSNs at or below the lap's base, so they never
/// count. An intact record found is stepped over whole.
fn intact_after(
    image: &[u8],
    bad: usize,
    floor: u64,
    lap: u32,
    sealer: Option<&Sealer>,
) -> Vec<u64> {
    const MAX_LSN_GAP: u64 = 1 << 40;
    let laps = [lap, if lap == 0 { 0 } else { next_lap(lap) }];
    let mut found = Vec::new();
    // From the stop itself: the record there failed (so it is stepped over below), unless
    // it is an intact record of the next lap.
    let mut pos = bad;
    while pos + RECORD_HEAD <= image.len() {
        let len = read_u32(image, pos) as usize;
        if len >= RECORD_HEAD - 8 && len <= image.len() - pos - 8 {
            let lsn = read_u64(image, pos + 8);
            let payload = &image[pos + 8..pos + 8 + len];
            // The checksum last: it reads the whole announced length, and an offset inside
            // an earlier lap's residue often announces megabytes (hashing at every such
            // offset made opening a recycled 7 MiB log take 20 seconds).
            if lsn > floor
                && lsn - floor <= MAX_LSN_GAP
                && (sealer.is_some() || payload_shape_ok(payload))
            {
                let written_in = crc32fast::hash(payload) ^ read_u32(image, pos + 4);
                if laps.contains(&written_in)
                    && plain(payload, written_in, sealer)
                        .is_some_and(|p| decode_payload(&p).is_some())
                {
                    found.push(lsn);
                    pos += 8 + len;
                    continue;
                }
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
        let mut img = LogHeader::new(0, 7, 0).file_bytes();
        for r in records {
            img.extend_from_slice(r);
        }
        img
    }

    /// One op of each kind, the put with `value`.
    fn every_op(value: Bytes) -> [Op; 6] {
        [
            Op::Create {
                name: "c".into(),
                options: "{}".into(),
                clustered: false,
            },
            Op::Create {
                name: "e".into(),
                options: "{}".into(),
                clustered: true,
            },
            Op::Put {
                table: "c".into(),
                key: Bytes::from(&b"k"[..]),
                value,
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
        ]
    }

    /// The shape check the damage scan runs before a checksum accepts every record the
    /// encoder writes and refuses cut or garbled ones, whatever length they announce.
    #[test]
    fn payload_shape_check_accepts_records_and_refuses_residue() {
        let ops = every_op(Bytes::from(vec![7u8; 5000]));
        for n in 0..=ops.len() {
            let rec = encode_record(9, &ops[..n], 3).unwrap();
            let payload = &rec[8..];
            assert!(payload_shape_ok(payload), "{n} ops");
            for cut in [1, 2, payload.len() / 2] {
                let short = &payload[..payload.len() - cut.min(payload.len())];
                assert!(!payload_shape_ok(short), "{n} ops cut by {cut}");
            }
            let mut long = payload.to_vec();
            long.push(0);
            assert!(!payload_shape_ok(&long), "{n} ops and a byte more");
        }
        // BSON-like residue: small length prefixes and zeros, an op count of millions.
        let mut residue = 9u64.to_le_bytes().to_vec();
        residue.extend_from_slice(&4_000_000u32.to_le_bytes());
        residue.extend((0..100_000u32).flat_map(|i| [4, 0, 0, 0, (i % 251) as u8]));
        assert!(!payload_shape_ok(&residue));
    }

    #[test]
    fn records_round_trip() {
        let ops = every_op(Bytes::from(&b"v"[..])).to_vec();
        let r = replay(&image(&[encode_record(7, &ops, 0).unwrap()]), "t").unwrap();
        assert_eq!(r.records, vec![(7, ops)]);
        assert_eq!(r.dropped_bytes, 0);
    }

    #[test]
    fn every_truncation_of_the_last_record_is_dropped_cleanly() {
        let a = encode_record(1, &[Op::Drop { name: "a".into() }], 0).unwrap();
        let b = encode_record(2, &[Op::Drop { name: "b".into() }], 0).unwrap();
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
        let a = encode_record(1, &[Op::Drop { name: "a".into() }], 0).unwrap();
        let b = encode_record(2, &[Op::Drop { name: "b".into() }], 0).unwrap();
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
                    0,
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
        assert_eq!(decode_header(&img, "t").unwrap(), LogHeader::new(0, 7, 0));
    }

    /// Records `lsns` of lap `lap`, each dropping a collection named `name` + LSN.
    fn lap_records(lap: u32, lsns: impl Iterator<Item = u64>, name: &str) -> Vec<Vec<u8>> {
        lsns.map(|lsn| {
            let ops = [Op::Drop {
                name: format!("{name}{lsn:04}"),
            }];
            encode_record(lsn, &ops, lap).unwrap()
        })
        .collect()
    }

    /// A recycled log file as laps leave it: lap `first` wrote `old` from the start, then
    /// the header was restarted (lap `first + 1`, base `base`) and `new` overwrote the start.
    fn recycled(first: u32, old: &[Vec<u8>], base: u64, new: &[Vec<u8>]) -> Vec<u8> {
        let h1 = LogHeader::new(0, 9, first);
        let mut img = h1.file_bytes();
        img.extend(old.concat());
        let h2 = LogHeader::new(base, 9, next_lap(first));
        let at = (h2.lap % 2) as usize * LOG_HEADER_LEN;
        img[at..at + LOG_HEADER_LEN].copy_from_slice(&encode_slot(&h2));
        let new = new.concat();
        img[LOG2_START..LOG2_START + new.len()].copy_from_slice(&new);
        img
    }

    #[test]
    fn a_record_of_an_earlier_lap_ends_the_current_lap_even_when_it_lines_up() {
        // Lap 1: records 1..=20. Lap 2 (base 20): records 21..=23 of the same sizes, so the
        // stale records 4..=20 start exactly where lap 2's next record would.
        let old = lap_records(1, 1..=20, "a");
        let new = lap_records(2, 21..=23, "a");
        assert_eq!(new[0].len(), old[0].len());
        let img = recycled(1, &old, 20, &new);
        let r = replay(&img, "t").unwrap();
        assert_eq!(r.header.unwrap().lap, 2);
        assert_eq!(
            r.records.iter().map(|t| t.0).collect::<Vec<_>>(),
            [21, 22, 23]
        );
        assert_eq!(r.stop_reason, None, "the end of a lap is clean");
        assert_eq!(r.dropped_bytes, 0);
        assert!(
            r.later.is_empty(),
            "earlier laps' records never count as lost"
        );
        assert_eq!(r.good_len, (LOG2_START + new.concat().len()) as u64);

        // Even a stale record whose LSN would continue the lap (written by hand: a real
        // earlier lap only holds LSNs up to the new base) is not read as part of it: the
        // checksum carries the lap.
        let mut img = img;
        let forged = lap_records(1, 24..=24, "a").concat();
        let at = LOG2_START + new.concat().len();
        img[at..at + forged.len()].copy_from_slice(&forged);
        let r = replay(&img, "t").unwrap();
        assert_eq!(r.records.len(), 3);
        assert_eq!(r.stop_reason, None);
        assert!(r.later.is_empty());
        assert_eq!(
            decode_records(&img[LOG2_START..at + forged.len()], 2, None).ok(),
            None
        );
    }

    #[test]
    fn a_torn_record_of_the_current_lap_before_a_stale_one_is_a_torn_tail() {
        let old = lap_records(4, 1..=30, "b");
        let mut new = lap_records(5, 31..=35, "b");
        // The last record of lap 5 is torn: its second half still holds lap 4's bytes.
        let torn = new.pop().unwrap();
        let keep = torn.len() / 2;
        let img = {
            let mut img = recycled(4, &old, 30, &new);
            let at = LOG2_START + new.concat().len();
            img[at..at + keep].copy_from_slice(&torn[..keep]);
            img
        };
        let r = replay(&img, "t").unwrap();
        assert_eq!(
            r.records.iter().map(|t| t.0).collect::<Vec<_>>(),
            [31, 32, 33, 34]
        );
        assert!(r.stop_reason.is_some(), "a torn record is reported");
        assert!(
            r.later.is_empty(),
            "stale lap-4 records after it are not lost commits"
        );
        assert!(r.dropped_bytes > 0 && r.dropped_bytes < 200);
    }

    #[test]
    fn damage_in_the_current_lap_is_told_from_its_end() {
        let old = lap_records(1, 1..=10, "c");
        let new = lap_records(2, 11..=18, "c");
        let mut img = recycled(1, &old, 10, &new);
        // A flipped byte in record 13: records 14..=18 of the current lap follow it.
        let at = LOG2_START + new[..2].concat().len() + 12;
        img[at] ^= 0x10;
        let r = replay(&img, "t").unwrap();
        assert_eq!(r.records.len(), 2);
        assert_eq!(r.later, (14..=18).collect::<Vec<u64>>());
        // A record zeroed (a block that never reached the disk): same.
        let mut img = recycled(1, &old, 10, &new);
        let at = LOG2_START + new[..2].concat().len();
        img[at..at + new[2].len()].fill(0);
        let r = replay(&img, "t").unwrap();
        assert_eq!(r.records.len(), 2);
        assert_eq!(r.later, (14..=18).collect::<Vec<u64>>());
    }

    #[test]
    fn a_torn_header_slot_leaves_the_previous_lap_in_force() {
        let old = lap_records(6, 1..=5, "d");
        let mut img = recycled(6, &old, 5, &[]);
        assert_eq!(decode_header(&img, "t").unwrap().lap, 7);
        // Lap 7's slot (slot 1) written only halfway: lap 6 is the header, its records
        // replay (all at or below the checkpoint that preceded the reset).
        let h6 = encode_slot(&LogHeader::new(0, 9, 6));
        img[LOG_HEADER_LEN + 16..LOG2_START].copy_from_slice(&h6[16..]);
        let h = decode_header(&img, "t").unwrap();
        assert_eq!((h.lap, h.base_lsn), (6, 0));
        let r = replay(&img, "t").unwrap();
        assert_eq!(r.records.len(), 5);
        // Both slots bad: refused.
        img[4] ^= 1;
        img[LOG_HEADER_LEN + 20] ^= 1;
        assert!(decode_header(&img, "t").is_err());
    }

    #[test]
    fn records_of_a_lost_newer_header_count_as_damage() {
        // Lap 3's records after a header that says lap 2 (lap 3's slot rotted): they are
        // acknowledged commits, so replay reports them instead of ending the lap quietly.
        let mut img = LogHeader::new(0, 9, 2).file_bytes();
        img.extend(lap_records(3, 1..=4, "e").concat());
        let r = replay(&img, "t").unwrap();
        assert!(r.records.is_empty());
        assert_eq!(r.later, [1, 2, 3, 4]);
        assert!(r.stop_reason.unwrap().contains("lap 3"));
    }

    #[test]
    fn version_1_logs_still_replay() {
        let recs = drops(5);
        let img = image(&recs);
        let h = decode_header(&img, "t").unwrap();
        assert_eq!((h.version, h.lap, h.start()), (1, 0, LOG_HEADER_LEN as u64));
        let r = replay(&img, "t").unwrap();
        assert_eq!(r.records.len(), 5);
        assert_eq!(r.stop_reason, None);
        // A version-2 header naming lap 0, or a version-1 header naming a lap, is refused.
        let mut bad = encode_slot(&LogHeader::new(0, 7, 0));
        bad[8] = 2;
        let crc = crc32fast::hash(&bad[0..28]);
        bad[28..32].copy_from_slice(&crc.to_le_bytes());
        assert!(decode_header(&[bad, bad].concat(), "t").is_err());
    }
}
