//! The WASP backend ([`WaspStorage`], Write-Ahead Shadow Paging): copy-on-write B+trees in
//! the paged file `NAME.db` ([`page`], [`pager`], [`btree`], [`manifest`]) plus the side log
//! `NAME.wasp` (the record format of [`crate::storage::log`]). A commit appends one
//! record to the log and publishes a new in-memory tree state whose changed nodes live in
//! memory; a checkpoint ([`checkpoint`]) writes those nodes to free pages, syncs, flips the
//! manifest and resets the log. Maintenance (fsck, online backup) is in [`check`].
//!
//! States of the engine: `open [WaspStorage::open: lock, header, manifest, catalog, free
//! list, log replay] -> serving -> (commit [WaspTxn::commit] | checkpoint
//! [checkpoint::run]) -> ... -> closed [Storage::close: checkpoint when dirty]`. Any failed
//! write or sync moves it to `poisoned` (writes refused until reopen); a page that fails its
//! checksum while reading moves it to `corrupt` (every call returns `Corrupt`).
//!
//! MVCC: a snapshot is an `Arc<State>` plus a reader pin on its epoch. Pages freed by the
//! commit of epoch `e` return to the free set only once (a) a checkpoint after `e` is durable
//! (the on-disk tree no longer needs them) and (b) no reader pins an epoch below `e`.

pub(crate) mod btree;
pub(crate) mod check;
pub(crate) mod checkpoint;
pub(crate) mod manifest;
pub(crate) mod page;
pub(crate) mod pager;

use self::manifest::Manifest;
use self::page::{Geometry, Ptr, Val};
use self::pager::{Pager, FIRST_DATA_PAGE};
use super::fault::Faults;
use super::file::{DbFile, LogFile, SyncHandle};
use super::group::GroupSync;
use super::header::{Header, FORMAT_VERSION, HEADER_LEN};
use super::log::{self, log_path_for, write_new_log, LogRecovery, Op, Recovery};
use super::StorageEngine;
use super::{Bytes, ReadView, Storage, SyncMode, TableInfo, WriteTxn, WriterGate, WriterGuard};
use crate::error::{Error, Result};
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Default page size of new files.
pub(crate) const DEFAULT_PAGE_SIZE: u32 = 8192;
/// Default page cache budget.
pub(crate) const DEFAULT_CACHE_BYTES: u64 = 32 * 1024 * 1024;

/// Settings of a WASP engine.
#[derive(Debug, Clone)]
pub(crate) struct WaspConfig {
    /// Page size for a new file (8192 or 16384); an existing file keeps its own.
    pub page_size: u32,
    /// Page cache budget in bytes; dirty (not yet checkpointed) nodes count against half of it.
    pub cache_bytes: u64,
    /// A commit checkpoints when the log has grown past this many bytes.
    pub checkpoint_log_bytes: u64,
    /// A commit checkpoints when the last checkpoint is older than this and there is work.
    pub checkpoint_interval: Duration,
    /// Readers search pages through a memory map of the file (see `storage::map`). Off by
    /// default: a map turns a file shortened behind our back, or a media error, into SIGBUS.
    pub mmap: bool,
    /// What open does with a damaged, missing or foreign log.
    pub recover: LogRecovery,
}

impl Default for WaspConfig {
    fn default() -> Self {
        Self {
            page_size: DEFAULT_PAGE_SIZE,
            cache_bytes: DEFAULT_CACHE_BYTES,
            checkpoint_log_bytes: 64 * 1024 * 1024,
            checkpoint_interval: Duration::from_secs(30),
            mmap: false,
            recover: LogRecovery::Strict,
        }
    }
}

/// A collection (or, later, an index) as the catalog records it.
#[derive(Clone, Debug)]
pub(crate) struct TableMeta {
    pub options: String,
    pub root: Option<Ptr>,
    pub count: u64,
    pub bytes: u64,
}

/// Catalog entry kinds (index trees will use kind 2).
const CATALOG_KIND_COLLECTION: u8 = 1;
/// Largest log record buffer a commit hands on to the next write transaction.
const KEPT_RECORD_BYTES: usize = 4 << 20;

impl TableMeta {
    /// Catalog value: kind u8, root u64, count u64, bytes u64, options_len u32, options.
    pub(crate) fn encode(&self, root: u64) -> Vec<u8> {
        let mut v = Vec::with_capacity(29 + self.options.len());
        v.push(CATALOG_KIND_COLLECTION);
        v.extend_from_slice(&root.to_le_bytes());
        v.extend_from_slice(&self.count.to_le_bytes());
        v.extend_from_slice(&self.bytes.to_le_bytes());
        v.extend_from_slice(&(self.options.len() as u32).to_le_bytes());
        v.extend_from_slice(self.options.as_bytes());
        v
    }

    pub(crate) fn decode(b: &[u8], what: &str) -> Result<Self> {
        let bad = || Error::Corrupt(format!("{what}: malformed catalog entry"));
        if b.len() < 29 || b[0] != CATALOG_KIND_COLLECTION {
            return Err(bad());
        }
        let root = page::u64_at(b, 1);
        let olen = u32::from_le_bytes([b[25], b[26], b[27], b[28]]) as usize;
        let options = b
            .get(29..29 + olen)
            .and_then(|o| std::str::from_utf8(o).ok())
            .ok_or_else(bad)?
            .to_owned();
        Ok(Self {
            options,
            root: (root != 0).then_some(Ptr::Disk(root)),
            count: page::u64_at(b, 9),
            bytes: page::u64_at(b, 17),
        })
    }
}

/// The tables at one epoch; cloning is cheap (persistent map, shared nodes).
#[derive(Clone, Default)]
pub(crate) struct State {
    pub epoch: u64,
    pub tables: imbl::OrdMap<String, TableMeta>,
}

/// Free-space bookkeeping; changed by commits (pending frees) and checkpoints.
pub(crate) struct Space {
    /// The manifest that is durable now.
    pub manifest: Manifest,
    pub page_count: u64,
    /// Pages free on disk and not needed by any reader: reusable by the next checkpoint.
    pub free: BTreeSet<u64>,
    /// Pages freed by the commit of an epoch, oldest first.
    pub pending: VecDeque<(u64, Vec<u64>)>,
    /// State epoch written by the last durable checkpoint.
    pub ckpt_epoch: u64,
    /// Pages of the durable catalog tree and free list (freed by the next checkpoint).
    pub meta_pages: Vec<u64>,
    /// Nodes made dirty since the last checkpoint (estimate of dirty memory).
    pub dirty_nodes: u64,
}

impl Space {
    /// Moves pending pages that no durable tree and no reader needs into the free set.
    pub(crate) fn release(&mut self, min_reader: u64) {
        while let Some((e, _)) = self.pending.front() {
            if *e > self.ckpt_epoch || *e > min_reader {
                break;
            }
            if let Some((_, pages)) = self.pending.pop_front() {
                self.free.extend(pages);
            }
        }
    }
}

struct LogState {
    file: LogFile,
    next_lsn: u64,
    sync: Arc<SyncHandle>,
    base_len: u64,
    records_since: u64,
}

pub(crate) struct Shared {
    pub(crate) pager: Pager,
    pub(crate) state: RwLock<Arc<State>>,
    gate: Arc<WriterGate>,
    log: Option<Mutex<LogState>>,
    group: GroupSync,
    poisoned: Mutex<Option<String>>,
    corrupt: Mutex<Option<String>>,
    pub(crate) space: Mutex<Space>,
    readers: Mutex<BTreeMap<u64, usize>>,
    read_only: bool,
    format_version: u32,
    log_path: PathBuf,
    faults: Faults,
    cfg: WaspConfig,
    recovery: Recovery,
    commits: AtomicU64,
    checkpoints: AtomicU64,
    checkpoint_micros: AtomicU64,
    last_checkpoint_micros: AtomicU64,
    last_checkpoint: Mutex<Instant>,
    /// The log record buffer of the last write transaction, kept for the next one (large
    /// buffers are not kept): a commit then neither grows nor frees one.
    spare_record: Mutex<Vec<u8>>,
    /// What is left of the last transaction's key and value buffer ([`Arena`]).
    spare_arena: Mutex<Arena>,
    /// This open store's number in [`crate::storage::SnapshotId`]s.
    store_id: u64,
    _db: DbFile,
}

/// Pins an epoch so pages it can reach are not reused.
pub(crate) struct Pin {
    shared: Arc<Shared>,
    epoch: u64,
}

impl Pin {
    fn new(shared: &Arc<Shared>, epoch: u64) -> Self {
        *shared.readers.lock().entry(epoch).or_insert(0) += 1;
        Self {
            shared: Arc::clone(shared),
            epoch,
        }
    }
}

impl Drop for Pin {
    fn drop(&mut self) {
        let mut r = self.shared.readers.lock();
        if let Some(n) = r.get_mut(&self.epoch) {
            *n -= 1;
            if *n == 0 {
                r.remove(&self.epoch);
            }
        }
    }
}

impl Shared {
    fn check_writable(&self) -> Result<()> {
        if self.read_only {
            return Err(Error::ReadOnly(
                "the database was opened with read_only: true".into(),
            ));
        }
        if let Some(why) = self.poisoned.lock().as_ref() {
            return Err(Error::PreviousIo(why.clone()));
        }
        if let Some(why) = self.corrupt.lock().as_ref() {
            return Err(Error::Corrupt(why.clone()));
        }
        Ok(())
    }

    pub(crate) fn poison(&self, e: &Error) {
        let mut p = self.poisoned.lock();
        if p.is_none() {
            ::log::error!("wasp storage poisoned after I/O failure: {e}");
            *p = Some(e.to_string());
        }
    }

    /// Records a failed read (a page failing its checksum): from now on every call fails.
    fn note_read_error(&self, e: &Error) {
        let mut c = self.corrupt.lock();
        if c.is_none() {
            ::log::error!("wasp storage: read failed: {e}");
            *c = Some(e.to_string());
        }
    }

    fn fault(&self) -> Option<Error> {
        self.corrupt.lock().clone().map(Error::Corrupt)
    }

    /// Lowest pinned epoch (`u64::MAX` when no reader).
    pub(crate) fn min_reader(&self) -> u64 {
        self.readers
            .lock()
            .keys()
            .next()
            .copied()
            .unwrap_or(u64::MAX)
    }

    fn reader_count(&self) -> usize {
        self.readers.lock().values().sum()
    }
}

/// Read access to one state: shared by snapshots and the write transaction (`writer`: leaf
/// pages read are cached at once, see [`Pager::leaf_probe`]).
fn view_get(
    shared: &Shared,
    state: &State,
    table: &str,
    key: &[u8],
    writer: bool,
) -> Option<Bytes> {
    let t = state.tables.get(table)?;
    let r = btree::get(&shared.pager, t.root.as_ref(), key, writer)
        .and_then(|v| v.map(|v| btree::resolve(&shared.pager, &v)).transpose());
    match r {
        Ok(v) => v,
        Err(e) => {
            shared.note_read_error(&e);
            None
        }
    }
}

fn view_scan(
    shared: &Shared,
    state: &State,
    table: &str,
    after: Option<&[u8]>,
    limit: usize,
    writer: bool,
) -> Vec<(Bytes, Bytes)> {
    let Some(root) = state.tables.get(table).and_then(|t| t.root.as_ref()) else {
        return Vec::new();
    };
    let mut raw = Vec::new();
    let r = btree::scan(&shared.pager, root, after, limit, &mut raw, writer).and_then(|_| {
        raw.into_iter()
            .map(|(k, v)| Ok((k, btree::resolve(&shared.pager, &v)?)))
            .collect::<Result<Vec<_>>>()
    });
    match r {
        Ok(v) => v,
        Err(e) => {
            shared.note_read_error(&e);
            Vec::new()
        }
    }
}

fn view_tables(state: &State) -> Vec<TableInfo> {
    state
        .tables
        .iter()
        .map(|(name, t)| TableInfo {
            name: name.clone(),
            options: t.options.clone(),
            documents: t.count,
        })
        .collect()
}

/// A snapshot handed to readers and cursors.
struct View {
    state: Arc<State>,
    shared: Arc<Shared>,
    /// Whether `state` is a published (committed) one, not a transaction's.
    committed: bool,
    _pin: Pin,
}

impl ReadView for View {
    fn tables(&self) -> Vec<TableInfo> {
        view_tables(&self.state)
    }
    fn has_table(&self, name: &str) -> bool {
        self.state.tables.contains_key(name)
    }
    fn get(&self, table: &str, key: &[u8]) -> Option<Bytes> {
        view_get(&self.shared, &self.state, table, key, false)
    }
    fn scan(&self, table: &str, after: Option<&[u8]>, limit: usize) -> Vec<(Bytes, Bytes)> {
        view_scan(&self.shared, &self.state, table, after, limit, false)
    }
    fn count(&self, table: &str) -> u64 {
        self.state.tables.get(table).map_or(0, |t| t.count)
    }
    fn table_bytes(&self, table: &str) -> u64 {
        self.state.tables.get(table).map_or(0, |t| t.bytes)
    }
    fn fault(&self) -> Option<Error> {
        self.shared.fault()
    }
    fn snapshot_id(&self) -> Option<crate::storage::SnapshotId> {
        // Each commit publishes a new epoch; a checkpoint republishes the same contents.
        self.committed.then(|| crate::storage::SnapshotId {
            store: self.shared.store_id,
            epoch: self.state.epoch,
        })
    }
}

/// Applies one logged change to `state` (commits and log replay share this).
fn apply(
    pager: &Pager,
    state: &mut State,
    op: &Op,
    freed: &mut Vec<u64>,
    dirtied: &mut u64,
) -> Result<bool> {
    let mut tree = btree::Tree {
        pager,
        freed,
        dirtied,
    };
    match op {
        Op::Create { name, options } => {
            if state.tables.contains_key(name) {
                return Err(Error::DuplicateKey(format!(
                    "collection '{name}' already exists"
                )));
            }
            state.tables.insert(
                name.clone(),
                TableMeta {
                    options: options.clone(),
                    root: None,
                    count: 0,
                    bytes: 0,
                },
            );
        }
        Op::Drop { name } => {
            let t = state
                .tables
                .remove(name)
                .ok_or_else(|| Error::NoCollection(name.clone()))?;
            if let Some(root) = &t.root {
                tree.free_tree(root)?;
            }
        }
        Op::Rename { from, to } => {
            if state.tables.contains_key(to) {
                return Err(Error::DuplicateKey(format!(
                    "collection '{to}' already exists"
                )));
            }
            let t = state
                .tables
                .remove(from)
                .ok_or_else(|| Error::NoCollection(from.clone()))?;
            state.tables.insert(to.clone(), t);
        }
        Op::Put { table, key, value } => {
            apply_put(&mut tree, state, table, key.clone(), value.clone())?;
        }
        Op::Delete { table, key } => {
            let t = state
                .tables
                .get_mut(table)
                .ok_or_else(|| Error::NoCollection(table.clone()))?;
            match tree.delete(&mut t.root, key)? {
                Some(o) => {
                    t.bytes -= (key.len() + o.len()) as u64;
                    t.count -= 1;
                }
                None => return Ok(false),
            }
        }
    }
    Ok(true)
}

/// Applies a put (see [`apply`]); takes the key and value, which the tree keeps.
fn apply_put(
    tree: &mut btree::Tree<'_>,
    state: &mut State,
    table: &str,
    key: Bytes,
    value: Bytes,
) -> Result<()> {
    let max_key = tree.pager.geo.max_key();
    if key.len() > max_key {
        return Err(Error::invalid(format!(
            "key of {} bytes is longer than the {max_key} bytes this page size allows",
            key.len(),
        )));
    }
    let t = state
        .tables
        .get_mut(table)
        .ok_or_else(|| Error::NoCollection(table.to_owned()))?;
    let added = (key.len() + value.len()) as u64;
    let key_len = key.len();
    let old = tree.put(&mut t.root, key, Val::Data(value))?;
    t.bytes += added;
    match old {
        Some(o) => t.bytes -= (key_len + o.len()) as u64,
        None => t.count += 1,
    }
    Ok(())
}

/// Commits a transaction whose changes were not logged (see [`WaspTxn::check_record_size`])
/// by publishing its state and checkpointing it: once the manifest names the new pages
/// (synced), the transaction is durable; until then, recovery finds the database as it was
/// before it, as for a commit whose log record did not reach the disk. The caller holds the
/// writer gate. Any failure poisons the database: the state is visible to new readers but
/// not durable.
fn commit_by_checkpoint(
    shared: &Shared,
    mut state: State,
    freed: Vec<u64>,
    dirtied: u64,
) -> Result<()> {
    {
        let mut space = shared.space.lock();
        let mut cur = shared.state.write();
        state.epoch = cur.epoch + 1;
        space.pending.push_back((state.epoch, freed));
        space.dirty_nodes += dirtied;
        *cur = Arc::new(state);
    }
    shared.commits.fetch_add(1, Ordering::Relaxed);
    checkpoint::run(shared, false).inspect_err(|e| shared.poison(e))
}

/// Keys and values put by write transactions, copied back to back into shared buffers of
/// [`ARENA_CHUNK`] bytes: the tree's entries are slices of them. The dirty tree a checkpoint
/// has written is then freed a buffer at a time instead of two allocations per entry (which
/// cost the writer about a tenth of an insert, and left the heap fragmented), and the
/// callers' own buffers are freed right away, while still in the allocator's caches.
#[derive(Default)]
struct Arena(bytes::BytesMut);

/// Size of an [`Arena`] buffer; keys and values above an eighth of it keep their own
/// allocation.
const ARENA_CHUNK: usize = 64 << 10;

impl Arena {
    /// A key or value: copied unless it is large. (A slice of a buffer the caller shares,
    /// which may be a page it read, is copied too: keeping the slice would keep the whole
    /// buffer; [`WriteTxn::put_shared`] is for buffers meant to be kept.)
    fn keep(&mut self, b: Bytes) -> Bytes {
        if b.len() > ARENA_CHUNK / 8 {
            return b;
        }
        self.copy(&b)
    }

    /// Borrowed bytes: copied into the arena, or into their own buffer when large.
    fn take(&mut self, b: &[u8]) -> Bytes {
        if b.len() > ARENA_CHUNK / 8 {
            return Bytes::copy_from_slice(b);
        }
        self.copy(b)
    }

    fn copy(&mut self, b: &[u8]) -> Bytes {
        if self.0.capacity() - self.0.len() < b.len() {
            self.0 = bytes::BytesMut::with_capacity(ARENA_CHUNK);
        }
        self.0.extend_from_slice(b);
        self.0.split().freeze()
    }
}

/// The paged copy-on-write engine. See the module docs.
pub(crate) struct WaspStorage {
    shared: Arc<Shared>,
}

impl WaspStorage {
    /// Opens (or creates) the database at `path`: lock, header, manifest, catalog, free list,
    /// log replay.
    pub(crate) fn open(
        path: &Path,
        create: bool,
        read_only: bool,
        busy_timeout: Duration,
        faults: Faults,
        cfg: WaspConfig,
    ) -> Result<Self> {
        let log_path = log_path_for(path);
        if !path.exists() && log_path.exists() {
            return Err(Error::Corrupt(format!(
                "{} is missing but its log {} exists; refusing to start a new database over it (move the log away to start afresh)",
                path.display(),
                log_path.display()
            )));
        }
        let what = path.display().to_string();
        let mut db = DbFile::open_locked(path, create, read_only, busy_timeout)?;
        let fresh = db.len()? == 0;
        let (page_size, format_version) = if fresh {
            if read_only {
                return Err(Error::Corrupt(format!(
                    "{what} is empty: not a NexusLite database"
                )));
            }
            if log_path.exists() {
                return Err(Error::Corrupt(format!(
                    "{what} is empty but its log {} exists; refusing to guess (move the log away to start afresh)",
                    log_path.display()
                )));
            }
            create_file(&db, &faults, cfg.page_size)?;
            (cfg.page_size, FORMAT_VERSION)
        } else {
            let header = Header::decode(&db.read_prefix(HEADER_LEN)?, path)?;
            if header.backend != StorageEngine::Wasp {
                return Err(Error::Internal(format!(
                    "{what} is a '{}' database, not wasp",
                    header.backend.as_str()
                )));
            }
            if !matches!(header.page_size, 4096 | 8192 | 16384 | 32768 | 65536) {
                return Err(Error::Corrupt(format!(
                    "{what}: page size {} in the header is not supported",
                    header.page_size
                )));
            }
            (header.page_size, header.format_version)
        };
        let geo = Geometry {
            page_size: page_size as usize,
        };
        let mut file = db.page_file(faults.clone())?;
        if cfg.mmap {
            file.map_pages(geo.page_size)?;
        }
        let pager = Pager::new(
            file,
            geo,
            usize::try_from(cfg.cache_bytes).unwrap_or(usize::MAX),
        );
        let manifest =
            Manifest::choose(&pager.read_raw(1)?, &pager.read_raw(2)?, page_size, &what)?;
        // The catalog: every collection with its root, counts and options.
        let mut tables = imbl::OrdMap::new();
        let mut meta_pages = Vec::new();
        if manifest.catalog_root != 0 {
            let root = Ptr::Disk(manifest.catalog_root);
            let mut entries = Vec::new();
            btree::scan(&pager, &root, None, usize::MAX, &mut entries, false)?;
            for (k, v) in entries {
                let name = String::from_utf8(k.to_vec())
                    .map_err(|_| Error::Corrupt(format!("{what}: catalog name is not UTF-8")))?;
                let bytes = btree::resolve(&pager, &v)?;
                tables.insert(name, TableMeta::decode(&bytes, &what)?);
            }
            btree::for_each_disk_page(&pager, &root, &mut |id| meta_pages.push(id))?;
        }
        let (free_list, own) = pager.read_freelist(manifest.freelist_head, manifest.page_count)?;
        meta_pages.extend(own);
        let free: BTreeSet<u64> = free_list.into_iter().collect();
        if free
            .iter()
            .any(|&p| p < FIRST_DATA_PAGE || p >= manifest.page_count)
        {
            return Err(Error::Corrupt(format!(
                "{what}: the free list names a page outside the file"
            )));
        }
        // The log: replay what came after the checkpoint.
        let mut manifest = manifest;
        if manifest.log_salt == 0 {
            // A file of an earlier build: its next manifest and logs carry a salt.
            manifest.log_salt = new_salt();
        }
        let recover = cfg.recover;
        let refuse = read_only || recover == LogRecovery::Strict;
        let log_what = log_path.display().to_string();
        let mut recovery = Recovery {
            mode: recover,
            ..Recovery::default()
        };
        let mut replaced = None;
        let log_exists = log_path.exists();
        if !log_exists && !manifest.log_quiet {
            let why = format!(
                "log {log_what} is missing, and {what} was not closed cleanly: commits after its last checkpoint (LSN {}) may be in that log",
                manifest.ckpt_lsn
            );
            if refuse {
                return Err(Error::Corrupt(format!("{why}. {}", log::RECOVER_ADVICE)));
            }
            replaced = Some(why);
        }
        let mut image = Vec::new();
        let mut log_file = None;
        if replaced.is_none() && log_exists {
            if read_only {
                image = crate::storage::file::read_regular(&log_path)?;
            } else {
                let mut f = LogFile::open(&log_path, false, faults.clone())?;
                image = f.read_all()?;
                log_file = Some(f);
            }
            let (_, salt) = log::decode_header(&image, &log_what)?;
            if salt != 0 && salt != manifest.log_salt {
                let why = format!(
                    "log {log_what} belongs to another database (its salt {salt:#010x} is not {what}'s {:#010x})",
                    manifest.log_salt
                );
                // Refused even when this file needs nothing from a log (quiet): the log may
                // hold another database's commits (`app` and `app.db` share `app.wasp`).
                if refuse {
                    return Err(Error::Corrupt(format!("{why}. {}", log::RECOVER_ADVICE)));
                }
                replaced = Some(why);
            }
        }
        if let Some(why) = &replaced {
            ::log::warn!("{why}; starting a new log at LSN {}", manifest.ckpt_lsn);
            if !manifest.log_quiet {
                recovery.log_replaced = Some(why.clone());
            }
            log_file = None;
            image.clear();
        }
        if image.is_empty() {
            // A new, empty log: none was there (a quiet manifest needs none), or one is
            // replaced. A read-only connection only reads as if it were there.
            if !read_only {
                log_file = Some(write_new_log(
                    &log_path,
                    manifest.ckpt_lsn,
                    manifest.log_salt,
                    std::iter::empty(),
                    &faults,
                )?);
            }
            image = log::encode_header(manifest.ckpt_lsn, manifest.log_salt).to_vec();
        }
        let replay = log::replay(&image, &log_what)?;
        drop(image);
        if replay.base_lsn > manifest.ckpt_lsn {
            // The log was reset by a newer checkpoint than the manifest in use: the newest
            // manifest slot is damaged and the commits in between exist nowhere else.
            return Err(Error::Corrupt(format!(
                "{what}: the newest manifest slot is damaged (the log starts after LSN {}, the valid manifest holds only up to LSN {})",
                replay.base_lsn, manifest.ckpt_lsn
            )));
        }
        let lost = replay.lost_after(manifest.ckpt_lsn);
        if !lost.is_empty() && refuse {
            return Err(replay.damage_error(&log_what, &lost));
        }
        let mut state = State { epoch: 1, tables };
        let mut pending = VecDeque::new();
        let mut dirty_nodes = 0;
        let mut last_lsn = manifest.ckpt_lsn.max(replay.base_lsn);
        let mut replayed = 0u64;
        for (lsn, ops) in &replay.records {
            if *lsn <= manifest.ckpt_lsn {
                continue;
            }
            let mut freed = Vec::new();
            for op in ops {
                apply(&pager, &mut state, op, &mut freed, &mut dirty_nodes).map_err(
                    |e| match e {
                        Error::Corrupt(m) => Error::Corrupt(m),
                        other => Error::Corrupt(format!(
                            "{log_what}: record {lsn} does not apply: {other}"
                        )),
                    },
                )?;
            }
            state.epoch += 1;
            pending.push_back((state.epoch, freed));
            last_lsn = last_lsn.max(*lsn);
            replayed += 1;
        }
        if let Some(reason) = &replay.stop_reason {
            ::log::warn!(
                "{log_what}: recovery stopped at {reason}; dropped {} bytes and {} intact commits after them",
                replay.dropped_bytes,
                lost.len()
            );
            if let Some(f) = log_file.as_mut() {
                f.truncate(replay.good_len)?;
            }
        }
        recovery.records = replayed;
        recovery.dropped_bytes = replay.dropped_bytes;
        recovery.reason = replay.stop_reason;
        recovery.commits_dropped = lost.len() as u64;
        let group = GroupSync::default();
        group.synced(last_lsn);
        let log = match log_file {
            Some(file) => Some(Mutex::new(LogState {
                sync: Arc::new(file.sync_handle()?),
                file,
                next_lsn: last_lsn + 1,
                base_len: log::LOG_HEADER_LEN as u64,
                records_since: replayed,
            })),
            None => None,
        };
        let shared = Arc::new(Shared {
            pager,
            state: RwLock::new(Arc::new(state)),
            gate: Arc::default(),
            log,
            group,
            poisoned: Mutex::new(None),
            corrupt: Mutex::new(None),
            space: Mutex::new(Space {
                page_count: manifest.page_count,
                manifest,
                free,
                pending,
                ckpt_epoch: 1,
                meta_pages,
                dirty_nodes,
            }),
            readers: Mutex::new(BTreeMap::new()),
            read_only,
            format_version,
            log_path,
            faults,
            cfg,
            recovery,
            commits: AtomicU64::new(0),
            checkpoints: AtomicU64::new(0),
            checkpoint_micros: AtomicU64::new(0),
            last_checkpoint_micros: AtomicU64::new(0),
            last_checkpoint: Mutex::new(Instant::now()),
            spare_record: Mutex::new(Vec::new()),
            spare_arena: Mutex::new(Arena::default()),
            store_id: crate::storage::next_store_id(),
            _db: db,
        });
        Ok(Self { shared })
    }

    /// Runs `f` holding the writer gate (maintenance: compact, check, backup).
    fn with_gate<R>(&self, busy: Duration, f: impl FnOnce(&Arc<Shared>) -> Result<R>) -> Result<R> {
        let _guard = self.shared.gate.acquire(busy)?;
        f(&self.shared)
    }
}

/// Writes the header page and the first manifest of a new file, then syncs.
fn create_file(db: &DbFile, faults: &Faults, page_size: u32) -> Result<()> {
    let pf = db.page_file(faults.clone())?;
    let header = Header {
        format_version: FORMAT_VERSION,
        backend: StorageEngine::Wasp,
        page_size,
        created_at: crate::document::now_millis(),
    };
    let ps = page_size as usize;
    let mut page0 = vec![0u8; ps];
    page0[..HEADER_LEN].copy_from_slice(&header.encode());
    pf.write_at(0, &page0)?;
    // A new file's log is quiet: a crash before the log is created loses nothing.
    let m = Manifest {
        generation: 1,
        page_count: FIRST_DATA_PAGE,
        page_size,
        log_salt: new_salt(),
        log_quiet: true,
        ..Manifest::default()
    };
    pf.write_at(ps as u64, &vec![0u8; ps])?;
    pf.write_at(2 * ps as u64, &vec![0u8; ps])?;
    pf.write_at(m.slot() * ps as u64, &m.encode(ps))?;
    pf.sync()?;
    super::file::sync_dir(pf.path())
}

/// The write transaction of WASP: a private state (copy-on-write nodes) plus its log record,
/// encoded op by op as they are applied.
pub(crate) struct WaspTxn {
    shared: Arc<Shared>,
    state: State,
    /// The commit record so far ([`log::begin_record`]), and how many ops it holds.
    record: Vec<u8>,
    n_ops: u32,
    /// The record outgrew the log's checkpoint trigger and is no longer kept: the commit
    /// writes the transaction's pages instead ([`commit_by_checkpoint`]).
    unlogged: bool,
    /// Where the keys and values put by this transaction are kept.
    arena: Arena,
    freed: Vec<u64>,
    dirtied: u64,
    _pin: Pin,
    _guard: WriterGuard,
}

impl WaspTxn {
    fn record(&mut self, op: Op) -> Result<bool> {
        if let Some(e) = self.shared.fault() {
            return Err(e);
        }
        let changed = apply(
            &self.shared.pager,
            &mut self.state,
            &op,
            &mut self.freed,
            &mut self.dirtied,
        )
        .inspect_err(|e| self.note(e))?;
        if changed {
            if !self.unlogged {
                log::encode_op(&mut self.record, &op);
            }
            self.n_ops += 1;
            self.check_record_size();
        }
        Ok(changed)
    }

    /// Logs a put (unless the transaction stopped logging); returns the record's length
    /// before it, for `apply_logged_put` to cut back to on failure.
    fn log_put(&mut self, table: &str, key: &[u8], value: &[u8]) -> Result<usize> {
        if let Some(e) = self.shared.fault() {
            return Err(e);
        }
        let logged = self.record.len();
        if !self.unlogged {
            log::encode_put(&mut self.record, table, key, value);
        }
        Ok(logged)
    }

    fn apply_logged_put(
        &mut self,
        table: &str,
        key: Bytes,
        value: Bytes,
        logged: usize,
    ) -> Result<()> {
        let mut tree = btree::Tree {
            pager: &self.shared.pager,
            freed: &mut self.freed,
            dirtied: &mut self.dirtied,
        };
        match apply_put(&mut tree, &mut self.state, table, key, value) {
            Ok(()) => {
                self.n_ops += 1;
                self.check_record_size();
                Ok(())
            }
            Err(e) => {
                if !self.unlogged {
                    self.record.truncate(logged);
                }
                self.note(&e);
                Err(e)
            }
        }
    }

    /// Stops logging once the record is past the log size that triggers a checkpoint: the
    /// commit would be followed by a checkpoint anyway, so it checkpoints instead of first
    /// writing (and encoding) every change a second time into the log.
    fn check_record_size(&mut self) {
        if !self.unlogged && self.record.len() as u64 > self.shared.cfg.checkpoint_log_bytes {
            self.stop_logging();
        }
    }

    /// From here on the transaction commits by checkpoint ([`commit_by_checkpoint`]).
    fn stop_logging(&mut self) {
        self.unlogged = true;
        self.record = Vec::new();
    }

    /// A read error met while changing the tree is the engine's to report.
    fn note(&self, e: &Error) {
        if matches!(e, Error::Corrupt(_) | Error::Io { .. }) {
            self.shared.note_read_error(e);
        }
    }
}

impl ReadView for WaspTxn {
    fn tables(&self) -> Vec<TableInfo> {
        view_tables(&self.state)
    }
    fn has_table(&self, name: &str) -> bool {
        self.state.tables.contains_key(name)
    }
    fn get(&self, table: &str, key: &[u8]) -> Option<Bytes> {
        view_get(&self.shared, &self.state, table, key, true)
    }
    fn scan(&self, table: &str, after: Option<&[u8]>, limit: usize) -> Vec<(Bytes, Bytes)> {
        view_scan(&self.shared, &self.state, table, after, limit, true)
    }
    fn count(&self, table: &str) -> u64 {
        self.state.tables.get(table).map_or(0, |t| t.count)
    }
    fn table_bytes(&self, table: &str) -> u64 {
        self.state.tables.get(table).map_or(0, |t| t.bytes)
    }
    fn fault(&self) -> Option<Error> {
        self.shared.fault()
    }
}

impl WriteTxn for WaspTxn {
    fn create_table(&mut self, name: &str, options: &str) -> Result<()> {
        self.record(Op::Create {
            name: name.to_owned(),
            options: options.to_owned(),
        })
        .map(drop)
    }

    fn drop_table(&mut self, name: &str) -> Result<()> {
        self.record(Op::Drop {
            name: name.to_owned(),
        })
        .map(drop)
    }

    fn rename_table(&mut self, from: &str, to: &str) -> Result<()> {
        self.record(Op::Rename {
            from: from.to_owned(),
            to: to.to_owned(),
        })
        .map(drop)
    }

    /// A put is logged from the borrowed parts and its key and value move into the tree
    /// (no [`Op`] is built: that would copy the table name and share the two buffers).
    fn put(&mut self, table: &str, key: Bytes, value: Bytes) -> Result<()> {
        let logged = self.log_put(table, &key, &value)?;
        let (key, value) = (self.arena.keep(key), self.arena.keep(value));
        self.apply_logged_put(table, key, value, logged)
    }

    /// As `put`, the tree's copies made straight from the caller's bytes.
    fn put_absent(&mut self, table: &str, key: &[u8], value: &[u8]) -> Result<()> {
        let logged = self.log_put(table, key, value)?;
        let (key, value) = (self.arena.take(key), self.arena.take(value));
        self.apply_logged_put(table, key, value, logged)
    }

    /// As `put`, the key and value kept as the slices they are (no arena copy).
    fn put_shared(&mut self, table: &str, key: Bytes, value: Bytes) -> Result<()> {
        let logged = self.log_put(table, &key, &value)?;
        self.apply_logged_put(table, key, value, logged)
    }

    fn delete(&mut self, table: &str, key: &[u8]) -> Result<bool> {
        if !self.state.tables.contains_key(table) {
            return Err(Error::NoCollection(table.to_owned()));
        }
        self.record(Op::Delete {
            table: table.to_owned(),
            key: Bytes::copy_from_slice(key),
        })
    }

    fn expect_large(&mut self) {
        if self.shared.log.is_some() {
            self.stop_logging();
        }
    }

    fn commit(self: Box<Self>, sync: SyncMode) -> Result<()> {
        let WaspTxn {
            shared,
            mut state,
            mut record,
            n_ops,
            unlogged,
            arena,
            freed,
            dirtied,
            _pin,
            _guard,
        } = *self;
        drop(_pin);
        if n_ops == 0 {
            return Ok(());
        }
        shared.check_writable()?;
        let Some(log_mutex) = &shared.log else {
            return Err(Error::ReadOnly("the database is read-only".into()));
        };
        *shared.spare_arena.lock() = arena;
        if unlogged {
            return commit_by_checkpoint(&shared, state, freed, dirtied);
        }
        // The first commit after a quiet manifest: say durably that the log is in use before
        // it holds anything (still holding the writer gate).
        set_log_quiet(&shared, false)?;
        let (lsn, wants_checkpoint) = {
            let mut log = log_mutex.lock();
            let lsn = log.next_lsn;
            log::seal_record(&mut record, lsn, n_ops);
            if let Err(e) = log.file.append(&record) {
                shared.poison(&e);
                return Err(e);
            }
            log.next_lsn += 1;
            log.records_since += 1;
            shared.group.written(lsn);
            let mut space = shared.space.lock();
            let mut cur = shared.state.write();
            state.epoch = cur.epoch + 1;
            space.pending.push_back((state.epoch, freed));
            space.dirty_nodes += dirtied;
            let dirty_bytes = space.dirty_nodes * shared.pager.geo.page_size as u64;
            *cur = Arc::new(state);
            let grown = log.file.len() - log.base_len;
            let wants = grown > shared.cfg.checkpoint_log_bytes
                || dirty_bytes > (shared.cfg.cache_bytes / 2).max(1 << 20)
                || shared.last_checkpoint.lock().elapsed() > shared.cfg.checkpoint_interval;
            (lsn, wants)
        };
        if record.capacity() <= KEPT_RECORD_BYTES {
            *shared.spare_record.lock() = record;
        }
        shared.commits.fetch_add(1, Ordering::Relaxed);
        if wants_checkpoint {
            // Still holding the gate: no other writer can interleave. A failure poisons.
            if let Err(e) = checkpoint::run(&shared, false) {
                ::log::warn!("automatic checkpoint failed: {e}");
            }
        }
        drop(_guard);
        shared.group.finish_commit(
            lsn,
            sync,
            || Arc::clone(&log_mutex.lock().sync),
            |e| shared.poison(e),
        )
    }

    fn as_read(&self) -> &dyn ReadView {
        self
    }

    fn snapshot(&self) -> Arc<dyn ReadView> {
        Arc::new(View {
            state: Arc::new(self.state.clone()),
            shared: Arc::clone(&self.shared),
            committed: false,
            _pin: Pin::new(&self.shared, self.state.epoch),
        })
    }
}

impl Storage for WaspStorage {
    fn read(&self) -> Arc<dyn ReadView> {
        let state = Arc::clone(&self.shared.state.read());
        let pin = Pin::new(&self.shared, state.epoch);
        Arc::new(View {
            state,
            shared: Arc::clone(&self.shared),
            committed: true,
            _pin: pin,
        })
    }

    fn begin_write(&self, busy_timeout: Duration) -> Result<Box<dyn WriteTxn>> {
        self.shared.check_writable()?;
        let guard = self.shared.gate.acquire(busy_timeout)?;
        let state = State::clone(&self.shared.state.read());
        let pin = Pin::new(&self.shared, state.epoch);
        let mut record = std::mem::take(&mut *self.shared.spare_record.lock());
        log::begin_record(&mut record);
        Ok(Box::new(WaspTxn {
            shared: Arc::clone(&self.shared),
            state,
            record,
            n_ops: 0,
            unlogged: false,
            arena: std::mem::take(&mut *self.shared.spare_arena.lock()),
            freed: Vec::new(),
            dirtied: 0,
            _pin: pin,
            _guard: guard,
        }))
    }

    fn checkpoint(&self, busy_timeout: Duration) -> Result<()> {
        self.shared.check_writable()?;
        self.with_gate(busy_timeout, |s| checkpoint::run(s, false))
    }

    fn compact(&self, busy_timeout: Duration) -> Result<()> {
        self.shared.check_writable()?;
        self.with_gate(busy_timeout, checkpoint::compact)
    }

    fn backup(&self, dest: &Path, busy_timeout: Duration) -> Result<()> {
        check::backup(&self.shared, dest, busy_timeout)
    }

    fn check(&self, busy_timeout: Duration) -> Result<serde_json::Value> {
        if let Some(e) = self.shared.fault() {
            return Err(e);
        }
        let writable = self.shared.check_writable().is_ok();
        self.with_gate(busy_timeout, |s| {
            if writable {
                checkpoint::run(s, false)?;
            }
            check::fsck(s)
        })
    }

    fn stats(&self) -> serde_json::Value {
        let s = &self.shared;
        let state = Arc::clone(&s.state.read());
        let (log_bytes, next_lsn, records_since) = match &s.log {
            Some(l) => {
                let l = l.lock();
                (l.file.len(), l.next_lsn, l.records_since)
            }
            None => (0, 0, 0),
        };
        let (hits, misses, cached, budget) = s.pager.cache_stats();
        let space = s.space.lock();
        let pending: usize = space.pending.iter().map(|(_, p)| p.len()).sum();
        let db_bytes = s.pager.file.len().unwrap_or(0);
        let min_reader = s.min_reader();
        let old_readers: usize = s
            .readers
            .lock()
            .iter()
            .filter(|(e, _)| **e < state.epoch)
            .map(|(_, n)| n)
            .sum();
        let r = &s.recovery;
        serde_json::json!({
            "backend": "wasp",
            "format_version": self.shared.format_version,
            "in_memory": false,
            "read_only": s.read_only,
            "page_size": s.pager.geo.page_size,
            "mmap": s.pager.file.is_mapped(),
            "collections": state.tables.len(),
            "documents": state.tables.values().map(|t| t.count).sum::<u64>(),
            "data_bytes": state.tables.values().map(|t| t.bytes).sum::<u64>(),
            "epoch": state.epoch,
            "commits": s.commits.load(Ordering::Relaxed),
            "syncs": s.group.sync_count(),
            "page_cache": {
                "budget_bytes": budget,
                "bytes": cached,
                "hits": hits,
                "misses": misses,
                "hit_ratio": if hits + misses == 0 { 0.0 } else { hits as f64 / (hits + misses) as f64 },
            },
            "log_bytes": log_bytes,
            "log_records_since_checkpoint": records_since,
            "last_lsn": next_lsn.saturating_sub(1),
            "checkpoints": s.checkpoints.load(Ordering::Relaxed),
            "checkpoint_total_ms": s.checkpoint_micros.load(Ordering::Relaxed) as f64 / 1000.0,
            "last_checkpoint_ms": s.last_checkpoint_micros.load(Ordering::Relaxed) as f64 / 1000.0,
            "manifest_generation": space.manifest.generation,
            "total_pages": space.page_count,
            "free_pages": space.free.len(),
            "pending_free_pages": pending,
            "dirty_nodes": space.dirty_nodes,
            "db_file_bytes": db_bytes,
            "log_file_bytes": log_bytes,
            "readers": s.reader_count(),
            "readers_holding_old_snapshots": old_readers,
            "oldest_reader_epoch": if min_reader == u64::MAX { serde_json::Value::Null } else { min_reader.into() },
            "poisoned": s.poisoned.lock().clone(),
            "corrupt": s.corrupt.lock().clone(),
            "recovery": r.to_json(),
        })
    }

    fn close(&self) -> Result<()> {
        let s = &self.shared;
        if s.read_only || s.poisoned.lock().is_some() || s.corrupt.lock().is_some() {
            return Ok(());
        }
        let _guard = s.gate.acquire(Duration::from_secs(60))?;
        let dirty = s.log.as_ref().is_some_and(|l| l.lock().records_since > 0);
        if dirty {
            checkpoint::run_final(s)
        } else {
            set_log_quiet(s, true)
        }
    }

    fn read_only(&self) -> bool {
        self.shared.read_only
    }

    fn format_version(&self) -> u32 {
        self.shared.format_version
    }
}

/// What the checkpointer needs from the log: the last LSN, and resetting it.
pub(crate) fn reset_log(shared: &Shared, ckpt_lsn_only: bool) -> Result<u64> {
    let Some(log_mutex) = &shared.log else {
        return Ok(0);
    };
    let mut log = log_mutex.lock();
    let last = log.next_lsn - 1;
    if ckpt_lsn_only {
        return Ok(last);
    }
    let salt = shared.space.lock().manifest.log_salt;
    let f = write_new_log(
        &shared.log_path,
        last,
        salt,
        std::iter::empty(),
        &shared.faults,
    )?;
    log.sync = Arc::new(f.sync_handle()?);
    log.base_len = f.len();
    log.file = f;
    log.records_since = 0;
    shared.group.synced(last);
    Ok(last)
}

/// Writes the durable manifest again (next generation, other slot) saying whether the log is
/// quiet; nothing when it already says so. The caller holds the writer gate. Before the
/// first commit after a quiet manifest is appended to the log, this must have said `false`:
/// a failure is returned (and poisons the engine) before anything is appended.
pub(crate) fn set_log_quiet(shared: &Shared, quiet: bool) -> Result<()> {
    let mut space = shared.space.lock();
    if space.manifest.log_quiet == quiet {
        return Ok(());
    }
    let m = Manifest {
        generation: space.manifest.generation + 1,
        log_quiet: quiet,
        ..space.manifest
    };
    let ps = shared.pager.geo.page_size;
    let r = shared
        .pager
        .write_raw(m.slot(), &m.encode(ps))
        .and_then(|()| shared.pager.file.sync());
    match r {
        Ok(()) => {
            space.manifest = m;
            Ok(())
        }
        Err(e) => {
            drop(space);
            shared.poison(&e);
            Err(e)
        }
    }
}

/// A salt for the logs of a new file: any value but 0 (which means "none").
fn new_salt() -> u32 {
    fastrand::u32(1..)
}

/// Bookkeeping after a checkpoint finished.
pub(crate) fn note_checkpoint(shared: &Shared, started: Instant) {
    let us = started.elapsed().as_micros() as u64;
    shared.checkpoints.fetch_add(1, Ordering::Relaxed);
    shared.checkpoint_micros.fetch_add(us, Ordering::Relaxed);
    shared.last_checkpoint_micros.store(us, Ordering::Relaxed);
    *shared.last_checkpoint.lock() = Instant::now();
}
