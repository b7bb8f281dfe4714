//! The `memlog` backend ([`MemLogStorage`]): every collection is an ordered in-memory table
//! (a persistent `imbl::OrdMap`, so a snapshot is an O(1) clone), and every commit is one
//! record appended to the log `NAME.wasp` ([`log`]). `NAME.db` holds only the header and the
//! advisory lock. A checkpoint rewrites the log as a snapshot of the tables
//! (`NAME.wasp.tmp`, fsync, rename, fsync directory), so the log never grows without bound.
//!
//! Open: lock `NAME.db` -> check or write the header -> replay `NAME.wasp`, stopping at the
//! first torn or corrupt record and cutting it off [`MemLogStorage::open`].
//! Commit: append record -> publish the new tables -> release the writer gate ->
//! (`sync=full`) wait for a group `fdatasync` [`WalTxn::commit`].
//! A failed append or sync poisons the backend: every later write fails until reopen.

use super::fault::Faults;
use super::file::{DbFile, LockMode, LogFile, SyncHandle};
use super::group::GroupSync;
use super::header::{Header, HEADER_LEN, MEMLOG_FORMAT_VERSION};
use super::log::{
    self, log_path_for, tmp_path, write_new_log, LogHeader, LogRecovery, Op, Recovery,
};
use super::StorageEngine;
use super::{Bytes, ReadView, Storage, SyncMode, TableInfo, WriteTxn, WriterGate, WriterGuard};
use crate::error::{Error, Result};
use parking_lot::{Mutex, RwLock};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Log size past which a commit triggers a checkpoint (also needs twice the live data).
const AUTO_CHECKPOINT_MIN_BYTES: u64 = 64 * 1024 * 1024;
/// At close, the log is rewritten when it grew by more than this and more than the live data.
const CLOSE_CHECKPOINT_MIN_BYTES: u64 = 1024 * 1024;
/// Target size of one snapshot record written by a checkpoint.
const SNAPSHOT_CHUNK_BYTES: usize = 1024 * 1024;

#[derive(Clone, Default)]
struct Table {
    options: String,
    rows: imbl::OrdMap<Bytes, Bytes>,
    bytes: u64,
}

/// The tables at one moment; cloning is cheap (structural sharing).
#[derive(Clone, Default)]
struct State {
    tables: imbl::OrdMap<String, Table>,
}

impl State {
    fn table(&self, name: &str) -> Result<&Table> {
        self.tables
            .get(name)
            .ok_or_else(|| Error::NoCollection(name.to_owned()))
    }

    fn apply(&mut self, op: &Op) -> Result<()> {
        match op {
            Op::Create { name, options, .. } => {
                if self.tables.contains_key(name) {
                    return Err(Error::DuplicateKey(format!(
                        "collection '{name}' already exists"
                    )));
                }
                self.tables.insert(
                    name.clone(),
                    Table {
                        options: options.clone(),
                        ..Table::default()
                    },
                );
            }
            Op::Drop { name } => {
                self.tables
                    .remove(name)
                    .ok_or_else(|| Error::NoCollection(name.clone()))?;
            }
            Op::Rename { from, to } => {
                if self.tables.contains_key(to) {
                    return Err(Error::DuplicateKey(format!(
                        "collection '{to}' already exists"
                    )));
                }
                let t = self
                    .tables
                    .remove(from)
                    .ok_or_else(|| Error::NoCollection(from.clone()))?;
                self.tables.insert(to.clone(), t);
            }
            Op::Put { table, key, value } => {
                let t = self
                    .tables
                    .get_mut(table)
                    .ok_or_else(|| Error::NoCollection(table.clone()))?;
                let added = (key.len() + value.len()) as u64;
                if let Some(old) = t.rows.insert(Bytes::clone(key), Bytes::clone(value)) {
                    t.bytes -= (key.len() + old.len()) as u64;
                }
                t.bytes += added;
            }
            Op::Delete { table, key } => {
                let t = self
                    .tables
                    .get_mut(table)
                    .ok_or_else(|| Error::NoCollection(table.clone()))?;
                if let Some(old) = t.rows.remove(key) {
                    t.bytes -= (key.len() + old.len()) as u64;
                }
            }
            // memlog keeps no record ids.
            Op::AdvanceRid { .. } => {}
        }
        Ok(())
    }

    fn live_bytes(&self) -> u64 {
        self.tables.values().map(|t| t.bytes).sum()
    }
}

impl ReadView for State {
    fn tables(&self) -> Vec<TableInfo> {
        self.tables
            .iter()
            .map(|(name, t)| TableInfo {
                name: name.clone(),
                options: t.options.clone(),
                documents: t.rows.len() as u64,
                clustered: false,
            })
            .collect()
    }

    fn has_table(&self, name: &str) -> bool {
        self.tables.contains_key(name)
    }

    fn get(&self, table: &str, key: &[u8]) -> Option<Bytes> {
        self.tables.get(table)?.rows.get(key).cloned()
    }

    fn next_key_after(&self, table: &str, after: &[u8]) -> Option<Option<Bytes>> {
        let Some(t) = self.tables.get(table) else {
            return Some(None);
        };
        Some(
            t.rows
                .range::<_, [u8]>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
                .next()
                .map(|(k, _)| k.clone()),
        )
    }

    fn scan(&self, table: &str, after: Option<&[u8]>, limit: usize) -> Vec<(Bytes, Bytes)> {
        let Some(t) = self.tables.get(table) else {
            return Vec::new();
        };
        let iter: Box<dyn Iterator<Item = (&Bytes, &Bytes)>> = match after {
            None => Box::new(t.rows.iter()),
            Some(k) => Box::new(
                t.rows
                    .range::<_, [u8]>((std::ops::Bound::Excluded(k), std::ops::Bound::Unbounded)),
            ),
        };
        iter.take(limit)
            .map(|(k, v)| (Bytes::clone(k), Bytes::clone(v)))
            .collect()
    }

    fn count(&self, table: &str) -> u64 {
        self.tables.get(table).map_or(0, |t| t.rows.len() as u64)
    }

    fn table_bytes(&self, table: &str) -> u64 {
        self.tables.get(table).map_or(0, |t| t.bytes)
    }
}

struct LogState {
    file: LogFile,
    next_lsn: u64,
    sync: Arc<SyncHandle>,
    /// Log length right after the last checkpoint (or open).
    base_len: u64,
}

struct Inner {
    /// The latest state, which writers build on.
    state: RwLock<Arc<State>>,
    /// Which state readers see (a `sync=full` commit only once durable); locked after `state`.
    visibility: Mutex<crate::storage::group::Visibility<State>>,
    gate: Arc<WriterGate>,
    log: Option<Mutex<LogState>>,
    group: GroupSync,
    poisoned: Mutex<Option<String>>,
    log_path: PathBuf,
    read_only: bool,
    format_version: u32,
    faults: Faults,
    recovery: Recovery,
    commits: AtomicU64,
    checkpoints: AtomicU64,
    /// Holds the advisory lock for the life of the engine.
    _db: Option<DbFile>,
}

/// The log-structured backend. See the module docs.
pub(crate) struct MemLogStorage {
    inner: Arc<Inner>,
}

impl MemLogStorage {
    /// A private in-memory database: no files, nothing survives `close`.
    pub(crate) fn in_memory(faults: Faults) -> Self {
        Self {
            inner: Arc::new(Inner {
                state: RwLock::new(Arc::new(State::default())),
                visibility: Mutex::default(),
                gate: Arc::default(),
                log: None,
                group: GroupSync::default(),
                poisoned: Mutex::new(None),
                log_path: PathBuf::new(),
                read_only: false,
                format_version: MEMLOG_FORMAT_VERSION,
                faults,
                recovery: Recovery::default(),
                commits: AtomicU64::new(0),
                checkpoints: AtomicU64::new(0),
                _db: None,
            }),
        }
    }

    /// Opens (or creates) the database at `path`: lock, header, log replay. A new database
    /// gets its (empty) log before its header, so an existing header without a log means the
    /// log was lost: refused unless `recover` accepts the loss.
    pub(crate) fn open(
        path: &Path,
        create: bool,
        read_only: bool,
        busy_timeout: Duration,
        faults: Faults,
        recover: LogRecovery,
    ) -> Result<Self> {
        let log_path = log_path_for(path);
        if !path.exists() && log_path.exists() {
            return Err(Error::Corrupt(format!(
                "{} is missing but its log {} exists; refusing to start a new database over it (move the log away to start afresh)",
                path.display(),
                log_path.display()
            )));
        }
        let mut db =
            DbFile::open_locked(path, create, read_only, busy_timeout, LockMode::ByAccess)?;
        let fresh = db.len()? == 0;
        let format_version = if fresh {
            if read_only {
                return Err(Error::Corrupt(format!(
                    "{} is empty: not a NexusLite database",
                    path.display()
                )));
            }
            if log_path.exists() && !log_is_empty(&log_path)? {
                return Err(Error::Corrupt(format!(
                    "{} is empty but its log {} holds commits; refusing to guess (move the log away to start afresh)",
                    path.display(),
                    log_path.display()
                )));
            }
            // The log first: a crash before the header leaves an empty file and an empty
            // log, which the next open takes as a new database again.
            write_empty_log(&log_path, &faults)?;
            let header = Header {
                format_version: MEMLOG_FORMAT_VERSION,
                backend: StorageEngine::MemLog,
                page_size: 0,
                created_at: crate::document::now_millis(),
            };
            db.write_header(&header.encode())?;
            MEMLOG_FORMAT_VERSION
        } else {
            let header = Header::decode(&db.read_prefix(HEADER_LEN)?, path)?;
            if header.backend != StorageEngine::MemLog {
                return Err(Error::unsupported(format!(
                    "{} was written by the '{}' storage engine, which this build does not include",
                    path.display(),
                    header.backend.as_str()
                )));
            }
            header.format_version
        };
        let tmp = tmp_path(&log_path);
        if !read_only && tmp.exists() {
            // A checkpoint died before its rename: the old log is still the truth.
            std::fs::remove_file(&tmp).map_err(|e| Error::io(&tmp, e))?;
        }
        let mut recovery = Recovery {
            mode: recover,
            ..Recovery::default()
        };
        if !log_path.exists() {
            // Every document of a `memlog` database lives in its log.
            let why = format!("log {} is missing", log_path.display());
            if read_only || recover == LogRecovery::Strict {
                return Err(Error::Corrupt(format!(
                    "{why}: every document of {} is in it. {}",
                    path.display(),
                    log::RECOVER_ADVICE
                )));
            }
            ::log::warn!("{why}; starting {} empty (recover)", path.display());
            write_empty_log(&log_path, &faults)?;
            recovery.log_replaced = Some(why);
        }
        let mut log_file = LogFile::open(&log_path, false, faults.clone())?;
        let image = log_file.read_all()?;
        let what = log_path.display().to_string();
        let replay = log::replay(&image, &what)?;
        drop(image);
        let lost = replay.lost_after(replay.base_lsn);
        if !lost.is_empty() && (read_only || recover == LogRecovery::Strict) {
            return Err(replay.damage_error(&what, &lost));
        }
        let mut state = State::default();
        let mut last_lsn = replay.base_lsn;
        for (lsn, ops) in &replay.records {
            for op in ops {
                state.apply(op).map_err(|e| {
                    Error::Corrupt(format!("{what}: record {lsn} does not apply: {e}"))
                })?;
            }
            last_lsn = last_lsn.max(*lsn);
        }
        if let Some(reason) = &replay.stop_reason {
            ::log::warn!(
                "{what}: recovery stopped at {reason}; dropped {} bytes and {} intact commits after them",
                replay.dropped_bytes,
                lost.len()
            );
            if !read_only {
                log_file.truncate(replay.good_len)?;
            }
        }
        recovery.records = replay.records.len() as u64;
        recovery.dropped_bytes = replay.dropped_bytes;
        recovery.reason = replay.stop_reason;
        recovery.commits_dropped = lost.len() as u64;
        let group = GroupSync::default();
        group.synced(last_lsn);
        let sync = Arc::new(log_file.sync_handle()?);
        Ok(Self {
            inner: Arc::new(Inner {
                state: RwLock::new(Arc::new(state)),
                visibility: Mutex::default(),
                gate: Arc::default(),
                log: Some(Mutex::new(LogState {
                    base_len: log::LOG_HEADER_LEN as u64,
                    file: log_file,
                    next_lsn: last_lsn + 1,
                    sync,
                })),
                group,
                poisoned: Mutex::new(None),
                log_path,
                read_only,
                format_version,
                faults,
                recovery,
                commits: AtomicU64::new(0),
                checkpoints: AtomicU64::new(0),
                _db: Some(db),
            }),
        })
    }
}

/// Whether the log at `path` holds no commit (a header and nothing after it, or less).
fn log_is_empty(path: &Path) -> Result<bool> {
    let len = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    Ok(len <= log::LOG_HEADER_LEN as u64)
}

impl Inner {
    fn check_writable(&self) -> Result<()> {
        if self.read_only {
            return Err(Error::ReadOnly(
                "the database was opened with read_only: true".into(),
            ));
        }
        if let Some(why) = self.poisoned.lock().as_ref() {
            return Err(Error::PreviousIo(why.clone()));
        }
        Ok(())
    }

    fn poison(&self, e: &Error) {
        let mut p = self.poisoned.lock();
        if p.is_none() {
            ::log::error!("storage poisoned after I/O failure: {e}");
            *p = Some(e.to_string());
        }
    }

    /// Rewrites the log as a snapshot. The caller holds the writer gate.
    fn checkpoint_locked(&self) -> Result<()> {
        let Some(log_mutex) = &self.log else {
            return Ok(());
        };
        self.check_writable()?;
        let state = Arc::clone(&self.state.read());
        let mut log = log_mutex.lock();
        let base_lsn = log.next_lsn - 1;
        let records = snapshot_records(&state, base_lsn);
        let r = write_new_log(
            &self.log_path,
            LogHeader::new(base_lsn, 0, 0),
            records,
            &self.faults,
        )
        .and_then(|f| {
            let sync = Arc::new(f.sync_handle()?);
            Ok((f, sync))
        });
        match r {
            Ok((f, sync)) => {
                log.base_len = f.end();
                log.file = f;
                log.sync = sync;
                self.group.synced(base_lsn);
                self.checkpoints.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                // The old log is untouched and still complete; only the temp file failed.
                let _ = std::fs::remove_file(tmp_path(&self.log_path));
                Err(e)
            }
        }
    }
}

/// The records of a snapshot log: per table a create, then its rows in chunks.
///
/// Each record holds one create or at most [`SNAPSHOT_CHUNK_BYTES`] of rows plus one row (every
/// row was itself logged by a commit), so it always fits a record's u32 length.
fn snapshot_records(state: &State, lsn: u64) -> impl Iterator<Item = Vec<u8>> + '_ {
    let encode = move |ops: &[Op]| {
        log::encode_record(lsn, ops, 0).expect("a snapshot record is far below 4 GiB")
    };
    state.tables.iter().flat_map(move |(name, t)| {
        let create = encode(&[Op::Create {
            name: name.clone(),
            options: t.options.clone(),
            clustered: false,
        }]);
        let mut chunks = Vec::new();
        let mut ops = Vec::new();
        let mut size = 0usize;
        for (k, v) in t.rows.iter() {
            size += k.len() + v.len();
            ops.push(Op::Put {
                table: name.clone(),
                key: Bytes::clone(k),
                value: Bytes::clone(v),
            });
            if size >= SNAPSHOT_CHUNK_BYTES {
                chunks.push(encode(&ops));
                ops.clear();
                size = 0;
            }
        }
        if !ops.is_empty() {
            chunks.push(encode(&ops));
        }
        std::iter::once(create).chain(chunks)
    })
}

/// The write transaction of the `memlog` backend.
pub(crate) struct WalTxn {
    inner: Arc<Inner>,
    state: State,
    ops: Vec<Op>,
    _guard: WriterGuard,
}

impl WalTxn {
    fn record(&mut self, op: Op) -> Result<()> {
        self.state.apply(&op)?;
        self.ops.push(op);
        Ok(())
    }
}

impl ReadView for WalTxn {
    fn tables(&self) -> Vec<TableInfo> {
        self.state.tables()
    }
    fn has_table(&self, name: &str) -> bool {
        self.state.has_table(name)
    }
    fn get(&self, table: &str, key: &[u8]) -> Option<Bytes> {
        self.state.get(table, key)
    }
    fn scan(&self, table: &str, after: Option<&[u8]>, limit: usize) -> Vec<(Bytes, Bytes)> {
        self.state.scan(table, after, limit)
    }
    fn next_key_after(&self, table: &str, after: &[u8]) -> Option<Option<Bytes>> {
        self.state.next_key_after(table, after)
    }
    fn count(&self, table: &str) -> u64 {
        self.state.count(table)
    }
    fn table_bytes(&self, table: &str) -> u64 {
        self.state.table_bytes(table)
    }
}

impl WriteTxn for WalTxn {
    fn create_table(&mut self, name: &str, options: &str) -> Result<()> {
        self.record(Op::Create {
            name: name.to_owned(),
            options: options.to_owned(),
            clustered: false,
        })
    }

    fn drop_table(&mut self, name: &str) -> Result<()> {
        self.record(Op::Drop {
            name: name.to_owned(),
        })
    }

    fn rename_table(&mut self, from: &str, to: &str) -> Result<()> {
        self.record(Op::Rename {
            from: from.to_owned(),
            to: to.to_owned(),
        })
    }

    fn put(&mut self, table: &str, key: Bytes, value: Bytes) -> Result<()> {
        self.record(Op::Put {
            table: table.to_owned(),
            key,
            value,
        })
    }

    fn delete(&mut self, table: &str, key: &[u8]) -> Result<bool> {
        self.state.table(table)?;
        if self.state.get(table, key).is_none() {
            return Ok(false);
        }
        self.record(Op::Delete {
            table: table.to_owned(),
            key: Bytes::copy_from_slice(key),
        })?;
        Ok(true)
    }

    fn commit(self: Box<Self>, sync: SyncMode) -> Result<()> {
        let WalTxn {
            inner,
            state,
            ops,
            _guard,
        } = *self;
        if ops.is_empty() {
            return Ok(());
        }
        inner.check_writable()?;
        let Some(log_mutex) = &inner.log else {
            let mut cur = inner.state.write();
            *cur = Arc::new(state);
            inner.visibility.lock().show_all();
            drop(cur);
            inner.commits.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        };
        let (lsn, wants_checkpoint, held) = {
            let mut log = log_mutex.lock();
            let lsn = log.next_lsn;
            // Refused (not written with a wrapped length) when the commit is 4 GiB or more.
            let record = log::encode_record(lsn, &ops, 0)?;
            if let Err(e) = log.file.append(&record) {
                inner.poison(&e);
                return Err(e);
            }
            log.next_lsn += 1;
            inner.group.written(lsn);
            let grown = log.file.end() - log.base_len;
            let wants = grown > AUTO_CHECKPOINT_MIN_BYTES && grown > 2 * state.live_bytes();
            let new = Arc::new(state);
            let mut cur = inner.state.write();
            // Under sync=full readers see the commit once it is durable (Visibility); the
            // next writer builds on it at once.
            let held = if sync == SyncMode::Full {
                Some((inner.visibility.lock().hold(&cur), Arc::clone(&new)))
            } else {
                inner.visibility.lock().show_all();
                None
            };
            *cur = new;
            (lsn, wants, held)
        };
        inner.commits.fetch_add(1, Ordering::Relaxed);
        if wants_checkpoint {
            // Still holding the gate: no other writer can interleave.
            if let Err(e) = inner.checkpoint_locked() {
                ::log::warn!("automatic checkpoint failed: {e}");
            }
        }
        drop(_guard);
        inner.group.finish_commit(
            lsn,
            sync,
            || Arc::clone(&log_mutex.lock().sync),
            |e| inner.poison(e),
        )?;
        if let Some((ticket, state)) = held {
            inner.visibility.lock().show(ticket, &state);
        }
        Ok(())
    }

    fn as_read(&self) -> &dyn ReadView {
        self
    }

    fn snapshot(&self) -> Arc<dyn ReadView> {
        Arc::new(self.state.clone())
    }
}

impl Storage for MemLogStorage {
    fn read(&self) -> Arc<dyn ReadView> {
        let latest = self.inner.state.read();
        let s: Arc<State> = self.inner.visibility.lock().pick(&latest);
        s
    }

    fn begin_write(&self, busy_timeout: Duration) -> Result<Box<dyn WriteTxn>> {
        self.inner.check_writable()?;
        let guard = self.inner.gate.acquire(busy_timeout)?;
        let state = State::clone(&self.inner.state.read());
        Ok(Box::new(WalTxn {
            inner: Arc::clone(&self.inner),
            state,
            ops: Vec::new(),
            _guard: guard,
        }))
    }

    fn check(&self, busy_timeout: Duration) -> Result<serde_json::Value> {
        if self.inner.log.is_none() {
            return Ok(
                serde_json::json!({"ok": true, "backend": "memlog", "in_memory": true, "errors": []}),
            );
        }
        let _guard = self.inner.gate.acquire(busy_timeout)?;
        let path = &self.inner.log_path;
        let image = super::file::read_regular(path)?;
        let what = path.display().to_string();
        let (records, errors) = match log::replay(&image, &what) {
            Ok(r) => (
                r.records.len(),
                r.stop_reason
                    .map(|why| vec![format!("{what}: {why}")])
                    .unwrap_or_default(),
            ),
            Err(e) => (0, vec![e.to_string()]),
        };
        Ok(serde_json::json!({
            "ok": errors.is_empty(),
            "backend": "memlog",
            "log_bytes": image.len(),
            "records": records,
            "errors": errors,
        }))
    }

    fn checkpoint(&self, busy_timeout: Duration) -> Result<()> {
        if self.inner.log.is_none() {
            return Ok(());
        }
        self.inner.check_writable()?;
        let _guard = self.inner.gate.acquire(busy_timeout)?;
        self.inner.checkpoint_locked()
    }

    fn stats(&self) -> serde_json::Value {
        let state = Arc::clone(&self.inner.state.read());
        let (log_bytes, next_lsn) = match &self.inner.log {
            Some(l) => {
                let l = l.lock();
                (l.file.end(), l.next_lsn)
            }
            None => (0, 0),
        };
        let r = &self.inner.recovery;
        serde_json::json!({
            "backend": "memlog",
            "format_version": self.inner.format_version,
            "in_memory": self.inner.log.is_none(),
            "read_only": self.inner.read_only,
            "collections": state.tables.len(),
            "documents": state.tables.values().map(|t| t.rows.len() as u64).sum::<u64>(),
            "data_bytes": state.live_bytes(),
            "log_bytes": log_bytes,
            "last_lsn": next_lsn.saturating_sub(1),
            "commits": self.inner.commits.load(Ordering::Relaxed),
            "syncs": self.inner.group.sync_count(),
            "checkpoints": self.inner.checkpoints.load(Ordering::Relaxed),
            "poisoned": self.inner.poisoned.lock().clone(),
            "recovery": r.to_json(),
        })
    }

    fn close(&self) -> Result<()> {
        let Some(log_mutex) = &self.inner.log else {
            return Ok(());
        };
        if self.inner.read_only || self.inner.poisoned.lock().is_some() {
            return Ok(());
        }
        let _guard = self.inner.gate.acquire(Duration::from_secs(60))?;
        // Rewrite the log only when it has grown past the live data; else a sync suffices.
        let grown = {
            let l = log_mutex.lock();
            let since = l.file.end() - l.base_len;
            since > CLOSE_CHECKPOINT_MIN_BYTES.max(self.inner.state.read().live_bytes())
        };
        if grown {
            self.inner.checkpoint_locked()
        } else {
            let l = log_mutex.lock();
            l.file.sync()
        }
    }

    fn read_only(&self) -> bool {
        self.inner.read_only
    }

    fn format_version(&self) -> u32 {
        self.inner.format_version
    }
}

/// Writes an empty `memlog` log (version 1, no salt, base LSN 0) through a temporary file.
fn write_empty_log(log_path: &Path, faults: &Faults) -> Result<()> {
    write_new_log(
        log_path,
        LogHeader::new(0, 0, 0),
        std::iter::empty(),
        faults,
    )
    .map(|_| ())
}
