//! What a WASP store's readers and its writer share ([`Shared`]): the published tree state
//! ([`State`]), free-space bookkeeping ([`Space`]), the log, the fault and poison flags, and
//! the reader pins ([`Pin`]) that keep pages a snapshot can reach from being reused.

use super::catalog::TableMeta;
use super::follow::{Follow, ForeignChanges};
use super::manifest::Manifest;
use super::pager::Pager;
use super::shm::ShmFile;
use super::txn::Arena;
use super::WaspConfig;
use crate::error::{Error, Result};
use crate::storage::fault::Faults;
use crate::storage::file::{DbFile, LogFile, SyncHandle};
use crate::storage::group::GroupSync;
use crate::storage::log::{LogHeader, Recovery};
use crate::storage::WriterGate;
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;
use std::time::Instant;

/// The tables at one epoch; cloning is cheap (persistent map, shared nodes).
#[derive(Clone, Default)]
pub(crate) struct State {
    /// Counts the states this process published (commits, replayed commits, reloads).
    pub epoch: u64,
    /// The manifest generation whose on-disk trees the tables' disk pages belong to.
    pub gen: u64,
    pub tables: imbl::OrdMap<String, TableMeta>,
}

/// Free-space bookkeeping; changed by commits (pending frees) and checkpoints.
pub(crate) struct Space {
    /// The manifest that is durable now.
    pub manifest: Manifest,
    pub page_count: u64,
    /// Pages free on disk and not needed by any reader: reusable by the next checkpoint.
    pub free: BTreeSet<u64>,
    /// Pages no longer in the trees from a generation on (their *tag*), by ascending tag:
    /// reusable once the durable manifest is at least that generation and no snapshot in
    /// any process reads an older one.
    pub pending: VecDeque<(u64, Vec<u64>)>,
    /// Pages of the durable catalog tree and free list (freed by the next checkpoint).
    pub meta_pages: Vec<u64>,
    /// Nodes made dirty since the last checkpoint (estimate of dirty memory).
    pub dirty_nodes: u64,
}

impl Space {
    /// How many pages are pending (see [`Space::pending`]).
    pub(crate) fn pending_pages(&self) -> usize {
        self.pending.iter().map(|(_, p)| p.len()).sum()
    }

    /// Moves pending pages that no durable tree and no reader needs into the free set;
    /// `min_gen` is the oldest generation a snapshot of any process reads.
    pub(crate) fn release(&mut self, min_gen: u64) {
        while let Some((tag, _)) = self.pending.front() {
            if *tag > self.manifest.generation || *tag > min_gen {
                break;
            }
            if let Some((_, pages)) = self.pending.pop_front() {
                self.free.extend(pages);
            }
        }
    }

    /// Queues pages a commit (or a replayed one) took out of the trees: no tree from the
    /// next checkpoint on reaches them.
    pub(crate) fn freed_by_commit(&mut self, pages: Vec<u64>) {
        self.queue(self.manifest.generation + 1, pages);
    }

    /// Queues `pages` under `tag`, keeping the queue in tag order.
    pub(crate) fn queue(&mut self, tag: u64, pages: Vec<u64>) {
        if pages.is_empty() {
            return;
        }
        match self.pending.back_mut() {
            Some((t, p)) if *t == tag => p.extend(pages),
            Some((t, _)) if *t > tag => {
                let at = self.pending.partition_point(|(t, _)| *t <= tag);
                self.pending.insert(at, (tag, pages));
            }
            _ => self.pending.push_back((tag, pages)),
        }
    }
}

pub(super) struct LogState {
    /// The manifest generation whose checkpoint started this lap of the log (another
    /// process's checkpoint restarts it; see [`super::follow::WriteLock`]).
    pub(super) gen: u64,
    pub(super) file: LogFile,
    /// The header in force: its lap seals the records written now (0: a version-1 log, which
    /// the next checkpoint replaces by a recycled one).
    pub(super) header: LogHeader,
    pub(super) next_lsn: u64,
    pub(super) sync: Arc<SyncHandle>,
    /// Where the records of the current lap start.
    pub(super) base_len: u64,
    pub(super) records_since: u64,
}

impl LogState {
    /// Records go to `file` (whose header is `header`) from now on, after the header (a new
    /// log, or the log as another process left it): its own sync handle, nothing logged in
    /// it by this process yet.
    pub(super) fn use_file(&mut self, file: LogFile, header: LogHeader) -> Result<()> {
        self.sync = Arc::new(file.sync_handle()?);
        self.file = file;
        self.restarted(header);
        Ok(())
    }

    /// The same file starts lap `header.lap` (this process's checkpoint reset it in place).
    pub(super) fn restarted(&mut self, header: LogHeader) {
        self.header = header;
        self.base_len = header.start();
        self.records_since = 0;
    }
}

pub(crate) struct Shared {
    pub(crate) pager: Pager,
    /// The latest state, which writers build on.
    pub(crate) state: RwLock<Arc<State>>,
    /// Which state readers see (a `sync=full` commit only once durable); locked after `state`.
    pub(crate) visibility: Mutex<crate::storage::group::Visibility<State>>,
    pub(super) gate: Arc<WriterGate>,
    pub(super) log: Option<Mutex<LogState>>,
    pub(super) group: GroupSync,
    pub(super) poisoned: Mutex<Option<String>>,
    pub(super) corrupt: Mutex<Option<String>>,
    pub(crate) space: Mutex<Space>,
    pub(super) readers: Mutex<BTreeMap<u64, usize>>,
    pub(super) read_only: bool,
    pub(super) format_version: u32,
    pub(super) log_path: PathBuf,
    pub(super) faults: Faults,
    pub(super) cfg: WaspConfig,
    pub(super) recovery: Recovery,
    pub(super) commits: AtomicU64,
    pub(super) checkpoints: AtomicU64,
    pub(super) checkpoint_micros: AtomicU64,
    pub(super) last_checkpoint_micros: AtomicU64,
    pub(super) last_checkpoint: Mutex<Instant>,
    /// The log record buffer of the last write transaction, kept for the next one (large
    /// buffers are not kept): a commit then neither grows nor frees one.
    pub(super) spare_record: Mutex<Vec<u8>>,
    /// What is left of the last transaction's key and value buffer ([`Arena`]).
    pub(super) spare_arena: Mutex<Arena>,
    /// This open store's number in [`crate::storage::SnapshotId`]s.
    pub(super) store_id: u64,
    /// The file shared with the other processes that have the database open.
    pub(super) shm: ShmFile,
    /// What this process has applied of the shared log (see [`super::follow`]).
    pub(super) follow: Mutex<Follow>,
    /// The generation of the published state, and the bytes of the current log applied
    /// (compared with the shared file's counters without taking `follow`).
    pub(super) local_gen: AtomicU64,
    pub(super) applied_end: AtomicU64,
    /// What other processes' commits changed since the layer above last asked, and whether
    /// that is anything (read without the lock).
    pub(super) foreign: Mutex<ForeignChanges>,
    pub(super) foreign_noted: AtomicBool,
    /// A thread of this process holds the write lock ([`super::follow::WriteLock`]).
    pub(super) holds_write: AtomicBool,
    /// Held exclusively while this process changes the key slots (a rekey, which also changes
    /// the data key, or adding or removing a key), shared while another connection of this
    /// process checks its key against them: the check never reads slots half rewritten, or
    /// slots of a new data key the sealer does not use yet.
    pub(super) slots_change: RwLock<()>,
    pub(super) _db: DbFile,
}

/// Pins a generation so pages a snapshot of it can reach are not reused, by this process
/// or (through its reader slot in the shared file) any other.
pub(crate) struct Pin {
    pub(super) shared: Arc<Shared>,
    pub(super) gen: u64,
}

impl Pin {
    /// Pins `gen`. Take it while the state it protects is still published (under
    /// `shared.state`'s lock), or with the writer lock held.
    pub(super) fn new(shared: &Arc<Shared>, gen: u64) -> Self {
        let mut r = shared.readers.lock();
        let oldest = r.keys().next().copied();
        *r.entry(gen).or_insert(0) += 1;
        if oldest.is_none_or(|o| gen < o) {
            shared.shm.set_slot(gen);
        }
        drop(r);
        Self {
            shared: Arc::clone(shared),
            gen,
        }
    }
}

impl Drop for Pin {
    fn drop(&mut self) {
        let mut r = self.shared.readers.lock();
        if let Some(n) = r.get_mut(&self.gen) {
            *n -= 1;
            if *n == 0 {
                r.remove(&self.gen);
                self.shared
                    .shm
                    .set_slot(r.keys().next().copied().unwrap_or(0));
            }
        }
    }
}

impl Shared {
    pub(super) fn check_writable(&self) -> Result<()> {
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
    pub(super) fn note_read_error(&self, e: &Error) {
        let mut c = self.corrupt.lock();
        if c.is_none() {
            ::log::error!("wasp storage: read failed: {e}");
            *c = Some(e.to_string());
        }
    }

    pub(super) fn fault(&self) -> Option<Error> {
        self.corrupt.lock().clone().map(Error::Corrupt)
    }

    /// Lowest generation pinned in this process (`u64::MAX` when no reader).
    pub(crate) fn min_reader(&self) -> u64 {
        self.readers
            .lock()
            .keys()
            .next()
            .copied()
            .unwrap_or(u64::MAX)
    }

    /// Lowest generation a snapshot of any process reads (`u64::MAX` when none).
    pub(crate) fn min_reader_anywhere(&self) -> u64 {
        self.min_reader().min(self.shm.min_other_gen())
    }

    pub(super) fn reader_count(&self) -> usize {
        self.readers.lock().values().sum()
    }
}
