//! The storage layer: the [`Storage`] trait that every backend implements, the
//! [`ReadView`] / [`WriteTxn`] pair it hands out, the single-writer [`WriterGate`], and the
//! database header shared by all backends ([`header`]).
//!
//! Backends:
//! - [`wasp`] (the default): paged copy-on-write B+trees in `NAME.db` plus the side log
//!   `NAME.wasp` ([`log`]), with a page cache of bounded size, checkpoints, MVCC snapshots,
//!   fsck and online backup.
//! - [`memlog`]: ordered in-memory tables plus the same append-only, checksummed log,
//!   rewritten at checkpoints. Selected with `{"storage":"memlog"}`; every document lives in
//!   memory, so it suits small databases and tests of the layers above.
//!
//! The layer above (`engine`) only sees these traits. Keys are opaque byte strings (the
//! encoded `_id`), values are opaque byte strings (the encoded document record), tables are
//! named collections with an options string.
//!
//! Write protocol: `Storage::begin_write` takes the writer gate (one writer at a time, others
//! wait up to the busy timeout), the transaction collects changes privately, and
//! `WriteTxn::commit` makes them durable per [`SyncMode`] and visible to new readers. Dropping
//! a `WriteTxn` without committing rolls it back and leaves no trace.

pub(crate) mod fault;
pub(crate) mod file;
mod group;
pub(crate) mod header;
pub(crate) mod identity;
pub(crate) mod log;
#[allow(unsafe_code)]
mod map;
pub(crate) mod memlog;
pub(crate) mod wasp;

pub use self::log::LogRecovery;
pub(crate) use self::wasp::ForeignChanges;

/// The storage engines a database file can be written by: the choice of the `storage` open
/// option and the backend byte of the file's header (`docs/FORMAT.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum StorageEngine {
    /// In-memory tables and an append-only log (`memlog`): every document is held in memory,
    /// the log is rewritten at checkpoints. Written as backend 1 (`wal`, its name in earlier
    /// builds, is still accepted as the option value).
    MemLog = 1,
    /// Write-Ahead Shadow Paging: copy-on-write B+trees in `NAME.db` plus the side log
    /// `NAME.wasp`. The default for new files.
    Wasp = 2,
}

impl StorageEngine {
    /// The engine new files get when the options do not name one.
    pub const DEFAULT: StorageEngine = StorageEngine::Wasp;

    /// The option spelling (`"memlog"`, `"wasp"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MemLog => "memlog",
            Self::Wasp => "wasp",
        }
    }

    /// The engine an option value names: `"wasp"`, `"memlog"` (or its former name `"wal"`).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "wasp" => Some(Self::Wasp),
            "memlog" | "wal" => Some(Self::MemLog),
            _ => None,
        }
    }
}
use crate::error::{Error, Result};
use parking_lot::{Condvar, Mutex};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Every file that belongs to the database at `db_path`, whether or not it exists right now:
/// the database file itself, its log `NAME.wasp` ([`log::log_path_for`]; both backends keep
/// one) and the log's temporary `NAME.wasp.tmp`, written and renamed over the log at each
/// checkpoint (`log::write_new_log`). This is the one list of them: whatever must never be
/// written over by anything but the engine (exports, sidecars, backups) is checked against
/// it, so a new kind of file (a lock file, shared memory) is added here.
pub(crate) fn database_files(db_path: &Path) -> Vec<PathBuf> {
    let log = log::log_path_for(db_path);
    let log_tmp = log::tmp_path(&log);
    let journal = wasp::rekey::journal_path(db_path);
    vec![db_path.to_path_buf(), log, log_tmp, journal]
}

/// Keys and values are shared, immutable byte strings.
pub(crate) type Bytes = bytes::Bytes;

/// How hard a commit works to reach stable storage before it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// `fdatasync` before the commit returns; concurrent committers share one sync.
    Full,
    /// Written to the OS before the commit returns; synced at checkpoints and close.
    Normal,
    /// Never synced explicitly (tests, scratch data).
    Off,
}

impl SyncMode {
    /// Parses the option value `"full" | "normal" | "off"`.
    pub(crate) fn parse(s: &str) -> Result<Self> {
        match s {
            "full" => Ok(Self::Full),
            "normal" => Ok(Self::Normal),
            "off" => Ok(Self::Off),
            other => Err(Error::invalid(format!(
                "option 'sync' must be \"full\", \"normal\" or \"off\", not \"{other}\""
            ))),
        }
    }

    /// The option spelling.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Normal => "normal",
            Self::Off => "off",
        }
    }
}

/// A collection as the storage layer knows it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TableInfo {
    pub name: String,
    /// The options JSON given at creation (`{}` when none).
    pub options: String,
    pub documents: u64,
    /// Kept in insertion order under record ids ([`WriteTxn::create_clustered`]).
    pub clustered: bool,
}

/// A consistent, immutable view of the database: later commits do not change it.
pub(crate) trait ReadView: Send + Sync {
    /// Every collection, ordered by name.
    fn tables(&self) -> Vec<TableInfo>;
    /// Whether the collection exists.
    fn has_table(&self, name: &str) -> bool;
    /// The value under `key`, or `None`.
    fn get(&self, table: &str, key: &[u8]) -> Option<Bytes>;
    /// Up to `limit` entries in the table's order strictly after the entry whose key is
    /// `after` (from the start when `None`). The order is key order, except in a clustered
    /// table ([`WriteTxn::create_clustered`]): there it is the order keys were first put,
    /// and `after` must be the key of an entry this view holds (the last one a previous scan
    /// of it returned); a key it does not hold ends the scan.
    fn scan(&self, table: &str, after: Option<&[u8]>, limit: usize) -> Vec<(Bytes, Bytes)>;
    /// The smallest key of `table` strictly greater than `after` in key order (whatever the
    /// table's scan order): `Some(None)` when there is none, `None` when this view cannot tell
    /// cheaply (a caller then assumes there may be one).
    fn next_key_after(&self, table: &str, after: &[u8]) -> Option<Option<Bytes>> {
        let _ = (table, after);
        None
    }
    /// [`ReadView::scan`], with each entry's record id in a clustered table (`None`
    /// otherwise).
    fn scan_with_record_ids(
        &self,
        table: &str,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Vec<(Bytes, Bytes, Option<u64>)> {
        self.scan(table, after, limit)
            .into_iter()
            .map(|(k, v)| (k, v, None))
            .collect()
    }
    /// In a clustered table: the record id of `key`'s entry, or the one a put of `key` would
    /// give it now (`None`: not a clustered table). Index entries carry it (see
    /// [`ReadView::get_at`]).
    fn record_id_for(&self, table: &str, key: &[u8]) -> Option<u64> {
        let _ = (table, key);
        None
    }
    /// [`ReadView::get`] of `key` when its entry's record id is known (`rid`, from an index
    /// entry): a clustered table reads the entry by record id, without its key map. An entry
    /// there under another key (never, while index entries are kept with their documents)
    /// falls back to the lookup by key.
    fn get_at(&self, table: &str, key: &[u8], rid: Option<u64>) -> Option<Bytes> {
        let _ = rid;
        self.get(table, key)
    }
    /// [`ReadView::get_at`] of many entries: `out[i]` is the value of `wanted[i]` (a key and
    /// the record id an index entry gave it). A clustered table visits the entries in
    /// record-id order, each page once for all the entries it holds.
    fn get_many_at(&self, table: &str, wanted: &[(&[u8], Option<u64>)]) -> Vec<Option<Bytes>> {
        wanted
            .iter()
            .map(|&(key, rid)| self.get_at(table, key, rid))
            .collect()
    }
    /// Puts `keys` (distinct keys of `table`) in the order [`ReadView::scan`] returns their
    /// entries: key order, or in a clustered table the order the keys were first put (keys
    /// the table does not hold go last). Lets a visit of chosen keys follow the order a scan
    /// of the table would (the "first match" of an update or delete then does not depend on
    /// whether an index found the candidates).
    fn sort_in_scan_order(&self, table: &str, keys: &mut [Bytes]) {
        let _ = table;
        keys.sort_unstable();
    }
    /// Number of entries in the collection (0 when it does not exist).
    fn count(&self, table: &str) -> u64;
    /// Total bytes of the collection's keys and values (0 when it does not exist).
    fn table_bytes(&self, table: &str) -> u64;
    /// A read failure met by this view or its engine (a page failing its checksum). The
    /// methods above cannot return errors, so callers check this after reading: when it is
    /// `Some`, what they read may be incomplete and must not be used.
    fn fault(&self) -> Option<Error> {
        None
    }
    /// Names the committed state this view reads, so that what is derived from it can be
    /// kept: two views with the same id read the same contents. `None` (the default) for
    /// views whose contents are not a committed state (a write transaction and its
    /// snapshots).
    fn snapshot_id(&self) -> Option<SnapshotId> {
        None
    }
}

/// See [`ReadView::snapshot_id`]: a store unique in the process, and a commit of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct SnapshotId {
    pub store: u64,
    pub epoch: u64,
}

/// A fresh store number for [`SnapshotId`].
pub(crate) fn next_store_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// A write transaction: a private view plus the changes made so far.
pub(crate) trait WriteTxn: ReadView {
    /// Creates a table whose entries are kept in key order (indexes, catalogs, registries:
    /// tables read by key ranges). The caller has checked the name.
    fn create_table(&mut self, name: &str, options: &str) -> Result<()>;
    /// Creates a table for documents: an engine that can keeps its entries in the order they
    /// were first put (under increasing record ids, with a map from key to record id beside
    /// them), so inserts append whatever the keys, and [`ReadView::scan`] returns them in that
    /// order. Engines without that layout (and files of earlier formats) create a key-ordered
    /// table.
    fn create_clustered(&mut self, name: &str, options: &str) -> Result<()> {
        self.create_table(name, options)
    }
    /// In a clustered table: the next record id a put of a new key gives is at least
    /// `next_rid` (a copy of a database keeps every entry's record id). No-op elsewhere.
    fn advance_record_id(&mut self, table: &str, next_rid: u64) -> Result<()> {
        let _ = (table, next_rid);
        Ok(())
    }
    /// Drops a collection and all its entries.
    fn drop_table(&mut self, name: &str) -> Result<()>;
    /// Renames a collection.
    fn rename_table(&mut self, from: &str, to: &str) -> Result<()>;
    /// Inserts or overwrites an entry; the collection must exist.
    fn put(&mut self, table: &str, key: Bytes, value: Bytes) -> Result<()>;
    /// [`WriteTxn::put`] of a key the caller has just found absent in this transaction
    /// (layers that look up the old entry, such as index maintenance, can skip it), from
    /// borrowed bytes: an engine that copies what it keeps copies from these directly.
    fn put_absent(&mut self, table: &str, key: &[u8], value: &[u8]) -> Result<()> {
        self.put(
            table,
            Bytes::copy_from_slice(key),
            Bytes::copy_from_slice(value),
        )
    }
    /// [`WriteTxn::put`] of a key and value that are slices of one large buffer the caller
    /// hands over (an index build's sorted chunk): an engine that would copy small keys and
    /// values into buffers of its own keeps these as they are.
    fn put_shared(&mut self, table: &str, key: Bytes, value: Bytes) -> Result<()> {
        self.put(table, key, value)
    }
    /// Removes an entry; returns whether it existed.
    fn delete(&mut self, table: &str, key: &[u8]) -> Result<bool>;
    /// Says the transaction will be large (an index build): an engine that can commit it by
    /// writing its pages instead of logging every change does so from here on.
    fn expect_large(&mut self) {}
    /// Makes the changes durable (per `sync`) and visible to new readers, then releases the
    /// writer gate. On error nothing is visible; a failed write or sync poisons the engine.
    fn commit(self: Box<Self>, sync: SyncMode) -> Result<()>;
    /// Upcast to the read side.
    fn as_read(&self) -> &dyn ReadView;
    /// A snapshot of the transaction's current view (for cursors opened inside it).
    fn snapshot(&self) -> Arc<dyn ReadView>;
}

/// A storage backend. Shared by every connection to one database in this process.
pub(crate) trait Storage: Send + Sync {
    /// A snapshot of the latest committed state.
    fn read(&self) -> Arc<dyn ReadView>;
    /// Starts the (single) write transaction, waiting up to `busy_timeout` for the writer gate.
    fn begin_write(&self, busy_timeout: Duration) -> Result<Box<dyn WriteTxn>>;
    /// Folds the log into the main image and shortens the log.
    fn checkpoint(&self, busy_timeout: Duration) -> Result<()>;
    /// Backend statistics as a JSON object.
    fn stats(&self) -> serde_json::Value;
    /// Clean shutdown: checkpoint when writable, sync, release files.
    fn close(&self) -> Result<()>;
    /// Whether the database was opened read-only.
    fn read_only(&self) -> bool;
    /// Brings this process's view up to the newest commit of any process that has the
    /// database open (waiting up to `busy_timeout` for one's checkpoint to finish), and says
    /// what their commits changed since the last call (`None`: nothing), for caches above.
    fn refresh(&self, busy_timeout: Duration) -> Result<Option<ForeignChanges>> {
        let _ = busy_timeout;
        Ok(None)
    }
    /// The format version of the database file (`FORMAT_VERSION` for a new or in-memory one).
    fn format_version(&self) -> u32;
    /// Adds (`add`) or removes a recipient of an encrypted database: its key slots are
    /// rewritten, crash-safely; the data and the data key stay as they are.
    fn change_key(&self, public_pem: &str, add: bool, busy_timeout: Duration) -> Result<()> {
        let _ = (public_pem, add, busy_timeout);
        Err(Error::invalid(
            "the database is not encrypted: it has no keys to add or remove",
        ))
    }
    /// A copy of the database in the new WASP file `dest`, made entry by entry from one
    /// snapshot: encrypted to `recipients` (public key PEMs) under a fresh data key, or plain
    /// (`None`). `nexus_backup_with`'s `encrypt_to` and `decrypt`.
    fn backup_transcoded(
        &self,
        dest: &std::path::Path,
        busy_timeout: Duration,
        recipients: Option<Vec<String>>,
    ) -> Result<()> {
        let _ = (dest, busy_timeout, recipients);
        Err(Error::unsupported(
            "an encrypted or plain copy (encrypt_to, decrypt) is made of a database on the wasp engine",
        ))
    }
    /// Rewrites every page of an encrypted database under a new random data key, its key
    /// slots rewrapped for the same recipients, crash-safely (`nexus_rekey`).
    fn rekey(&self, busy_timeout: Duration) -> Result<()> {
        let _ = busy_timeout;
        Err(Error::invalid(
            "the database is not encrypted: it has no data key to change",
        ))
    }
    /// Whether another connection presenting `key` may use this open database: an encrypted
    /// one admits the private key of one of its recipients only, a plain one no key.
    fn admits(
        &self,
        key: Option<&crate::crypto::PrivatePem>,
        busy_timeout: Duration,
    ) -> Result<()> {
        let _ = busy_timeout;
        match key {
            None => Ok(()),
            Some(_) => Err(wasp::keyslots::not_encrypted("the database")),
        }
    }
    /// Rewrites the database smaller (default: a checkpoint).
    fn compact(&self, busy_timeout: Duration) -> Result<()> {
        self.checkpoint(busy_timeout)
    }
    /// Consistent online copy to `dest` (which must not exist).
    fn backup(&self, dest: &std::path::Path, busy_timeout: Duration) -> Result<()> {
        let _ = (dest, busy_timeout);
        Err(Error::unsupported(
            "online backup needs a file-backed database",
        ))
    }
    /// Integrity check; the report says `"ok": false` and lists the damage when damaged.
    fn check(&self, busy_timeout: Duration) -> Result<serde_json::Value> {
        let _ = busy_timeout;
        Ok(serde_json::json!({"ok": true, "backend": "memory", "errors": []}))
    }
}

/// The single-writer lock: held from `begin_write` until commit or rollback.
///
/// Unlike a mutex guard, the [`WriterGuard`] is an owned value that can live inside a
/// transaction object handed across FFI calls.
#[derive(Default)]
pub(crate) struct WriterGate {
    held: Mutex<bool>,
    released: Condvar,
}

impl WriterGate {
    /// Acquires the gate, waiting at most `timeout`.
    pub(crate) fn acquire(self: &Arc<Self>, timeout: Duration) -> Result<WriterGuard> {
        let deadline = Instant::now() + timeout;
        let mut held = self.held.lock();
        while *held {
            if self.released.wait_until(&mut held, deadline).timed_out() && *held {
                return Err(Error::Busy(format!(
                    "another connection held the write lock for longer than busy_timeout_ms ({} ms)",
                    timeout.as_millis()
                )));
            }
        }
        *held = true;
        Ok(WriterGuard {
            gate: Arc::clone(self),
        })
    }
}

/// Proof of holding the writer gate; releases it when dropped.
pub(crate) struct WriterGuard {
    gate: Arc<WriterGate>,
}

impl Drop for WriterGuard {
    fn drop(&mut self) {
        *self.gate.held.lock() = false;
        self.gate.released.notify_one();
    }
}

#[cfg(test)]
mod tests;
