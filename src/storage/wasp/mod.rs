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
//! MVCC: a snapshot is an `Arc<State>` plus a reader pin on the manifest generation whose
//! trees it reads. A page taken out of the trees (by a commit, or by a checkpoint that
//! rewrote the catalog) is tagged with the first generation whose trees no longer reach
//! it, and returns to the free set only once (a) that generation is durable and (b) no
//! snapshot of any process pins an older one (each process publishes its oldest pin in its
//! slot of the shared file `NAME.wasp-shm`).
//!
//! Several processes ([`follow`]): each keeps its own state; the shared file ([`shm`]) says
//! which generation and how much of the log are committed, and holds the write lock.

pub(crate) mod btree;
pub(crate) mod catalog;
pub(crate) mod check;
pub(crate) mod checkpoint;
mod clustered;
pub(crate) mod copy;
mod follow;
pub(crate) mod keyslots;
pub(crate) mod manifest;
mod open;
pub(crate) mod page;
pub(crate) mod pager;
#[cfg(test)]
mod prop_tests;
pub(crate) mod rekey;
mod shared;
#[allow(unsafe_code)]
mod shm;
mod txn;
mod view;

pub(crate) use self::catalog::TableMeta;
pub(crate) use self::follow::ForeignChanges;
use self::follow::WriteLock;
pub(crate) use self::open::WaspStorage;
pub(crate) use self::shared::{Pin, Shared, Space, State};
use self::txn::WaspTxn;
use self::view::{Refused, View};

use self::manifest::Manifest;
use super::log::{self, write_new_log, LogHeader, LogRecovery};
use super::{ReadView, Storage, WriteTxn};
use crate::error::{Error, Result};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a read waits for another process's checkpoint to be published before it
/// reports `Busy` (reads have no busy timeout of their own).
const FOLLOW_WAIT: Duration = Duration::from_secs(5);

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
    /// The last process's close compacts the file when its free pages are at least an eighth
    /// of it and between 1 and 64 MiB (default true).
    pub compact_on_close: bool,
    /// What open does with a damaged, missing or foreign log.
    pub recover: LogRecovery,
    /// The key of an encrypted file; a new file given one is created encrypted.
    pub encryption: Option<keyslots::Unlock>,
    /// The AEAD of a new encrypted file (`None`: [`crate::crypto::seal::Cipher::preferred`]).
    pub cipher: Option<crate::crypto::seal::Cipher>,
}

impl Default for WaspConfig {
    fn default() -> Self {
        Self {
            page_size: DEFAULT_PAGE_SIZE,
            cache_bytes: DEFAULT_CACHE_BYTES,
            checkpoint_log_bytes: 64 * 1024 * 1024,
            checkpoint_interval: Duration::from_secs(30),
            mmap: false,
            compact_on_close: true,
            recover: LogRecovery::Strict,
            encryption: None,
            cipher: None,
        }
    }
}

impl Storage for WaspStorage {
    fn read(&self) -> Arc<dyn ReadView> {
        let shared = &self.shared;
        let deadline = Instant::now() + FOLLOW_WAIT;
        loop {
            let (state, pin) = {
                let cur = shared.state.read();
                let state = shared.visibility.lock().pick(&cur);
                let pin = Pin::new(shared, state.gen);
                (state, pin)
            };
            // The pin protects the snapshot's pages only if its generation is still the
            // current one once the slot says so (docs/FORMAT.md, "Page reuse"); otherwise
            // other processes checkpointed since this process last caught up.
            if shared.shm.gen() == state.gen {
                return Arc::new(View {
                    state,
                    shared: Arc::clone(shared),
                    committed: true,
                    _pin: Some(pin),
                    refused: None,
                });
            }
            drop(pin);
            let caught = follow::catch_up(shared, FOLLOW_WAIT);
            if let Err(e) = caught.and_then(|()| {
                if Instant::now() < deadline {
                    Ok(())
                } else {
                    Err(Error::Busy(format!(
                        "{}: other processes kept checkpointing faster than this process could follow",
                        shared.pager.what()
                    )))
                }
            }) {
                // No snapshot whose pages are protected: an empty view that reports why.
                return Arc::new(View {
                    state: Arc::new(State::default()),
                    shared: Arc::clone(shared),
                    committed: false,
                    _pin: None,
                    refused: Some(Refused::from_error(&e)),
                });
            }
            std::thread::yield_now();
        }
    }

    fn begin_write(&self, busy_timeout: Duration) -> Result<Box<dyn WriteTxn>> {
        self.shared.check_writable()?;
        let guard = WriteLock::acquire(&self.shared, busy_timeout)?;
        let state = State::clone(&self.shared.state.read());
        let pin = Pin::new(&self.shared, state.gen);
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
        // The end of the log's current lap: this process's own position when it is at the
        // current generation, else what the last commit of any process published.
        let (log_bytes, next_lsn, records_since) = match &s.log {
            Some(l) => {
                let l = l.lock();
                let end = if l.gen == s.local_gen.load(Ordering::SeqCst) {
                    l.file.end()
                } else {
                    s.shm.log_end()
                };
                (end, l.next_lsn, l.records_since)
            }
            None => (s.shm.log_end(), 0, 0),
        };
        let (hits, misses, cached, budget) = s.pager.cache_stats();
        let space = s.space.lock();
        let pending = space.pending_pages();
        let db_bytes = s.pager.file.len().unwrap_or(0);
        let min_reader = s.min_reader();
        let old_readers: usize = s
            .readers
            .lock()
            .iter()
            .filter(|(g, _)| **g < state.gen)
            .map(|(_, n)| n)
            .sum();
        let r = &s.recovery;
        serde_json::json!({
            "backend": "wasp",
            "format_version": self.shared.format_version,
            "in_memory": false,
            "read_only": s.read_only,
            "page_size": s.pager.phys(),
            "encrypted": s.pager.sealer().is_some(),
            "cipher": s.pager.sealer().map(|x| x.cipher().name()),
            "mmap": s.pager.file.is_mapped(),
            "collections": state.tables.len(),
            "documents": state.tables.values().map(|t| t.count).sum::<u64>(),
            "data_bytes": state.tables.values().map(|t| t.bytes).sum::<u64>(),
            "epoch": state.epoch,
            "generation": state.gen,
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
            // The current lap ends at `log_bytes`; the recycled file keeps earlier laps'
            // blocks (and preallocated space) after it.
            "log_file_bytes": std::fs::metadata(&s.log_path).map_or(0, |m| m.len()),
            "readers": s.reader_count(),
            "readers_holding_old_snapshots": old_readers,
            "oldest_reader_generation": if min_reader == u64::MAX { serde_json::Value::Null } else { min_reader.into() },
            "oldest_reader_generation_any_process": match s.min_reader_anywhere() { u64::MAX => serde_json::Value::Null, g => g.into() },
            "poisoned": s.poisoned.lock().clone(),
            "corrupt": s.corrupt.lock().clone(),
            "recovery": r.to_json(),
        })
    }

    fn refresh(&self, busy_timeout: Duration) -> Result<Option<ForeignChanges>> {
        follow::catch_up(&self.shared, busy_timeout)?;
        if !self.shared.foreign_noted.load(Ordering::SeqCst) {
            return Ok(None);
        }
        let mut f = self.shared.foreign.lock();
        self.shared.foreign_noted.store(false, Ordering::SeqCst);
        Ok((!f.is_empty()).then(|| std::mem::take(&mut *f)))
    }

    fn close(&self) -> Result<()> {
        let s = &self.shared;
        if s.read_only || s.poisoned.lock().is_some() || s.corrupt.lock().is_some() {
            return Ok(());
        }
        let _lock = WriteLock::acquire(s, Duration::from_secs(60))?;
        // The last process to close checkpoints and says the log is quiet; while others have
        // the database open they go on with the log as it is.
        if !s.shm.try_alone() {
            return Ok(());
        }
        let dirty = s.log.as_ref().is_some_and(|l| {
            let l = l.lock();
            l.file.end() > l.base_len
        });
        if dirty {
            checkpoint::run_final(s)?;
        } else {
            set_log_quiet(s, true)?;
        }
        // Copy-on-write leaves free pages behind (an update rewrites its leaf elsewhere; the
        // old copy is reused only after the next checkpoints): give them back when they are a
        // good part of a small file. Everything is durable already; a failure here loses
        // nothing (the last manifest stands) and the close still succeeds. Its checkpoints,
        // alone, cut the log as below.
        if s.cfg.compact_on_close && checkpoint::worth_compacting_at_close(s) {
            if let Err(e) = checkpoint::compact_alone(s) {
                ::log::warn!("{}: compaction at close failed: {e}", s.pager.what());
            }
            return Ok(());
        }
        // Nothing in the log is needed now: like SQLite removing its WAL at the last close,
        // the file at rest keeps only the empty lap's header and end mark (the next session's
        // first lap appends again, until a checkpoint restarts it in place).
        checkpoint::shrink_log(s)
    }

    fn read_only(&self) -> bool {
        self.shared.read_only
    }

    fn format_version(&self) -> u32 {
        self.shared.format_version
    }

    fn change_key(&self, public_pem: &str, add: bool, busy_timeout: Duration) -> Result<()> {
        let shared = &self.shared;
        let Some(sealer) = shared.pager.sealer() else {
            return Err(Error::invalid(format!(
                "{} is not encrypted: it has no keys to add or remove",
                shared.pager.what()
            )));
        };
        shared.check_writable()?;
        // The writer gate of every process: one change of the slots at a time, from the
        // slots as the file has them now (another process may have changed them).
        let _lock = follow::WriteLock::acquire(shared, busy_timeout)?;
        let _slots = shared.slots_change.write();
        let current = keyslots::KeySlots::of_file(&shared.pager)?;
        current.check(sealer)?;
        let next = if add {
            match current.with_key(public_pem, sealer)? {
                Some(next) => next,
                None => return Ok(()),
            }
        } else {
            current.without_key(public_pem)?
        };
        next.write(&shared.pager.file, shared.pager.phys(), sealer)?;
        shared.pager.file.sync()
    }

    fn backup_transcoded(
        &self,
        dest: &Path,
        busy_timeout: Duration,
        recipients: Option<Vec<String>>,
    ) -> Result<()> {
        let view = self.read();
        let page_size = u32::try_from(self.shared.pager.phys())
            .map_err(|_| Error::Internal("page size".into()))?;
        copy::copy_to(&*view, page_size, dest, busy_timeout, recipients)
    }

    fn rekey(&self, busy_timeout: Duration) -> Result<()> {
        rekey::run(&self.shared, busy_timeout)
    }

    fn admits(
        &self,
        key: Option<&crate::crypto::PrivatePem>,
        busy_timeout: Duration,
    ) -> Result<()> {
        let what = self.shared.pager.what();
        if self.shared.pager.sealer().is_none() {
            return match key {
                None => Ok(()),
                Some(_) => Err(keyslots::not_encrypted(what)),
            };
        };
        // Not while this process rewrites the slots (a rekey takes as long as rewriting every
        // page: the open waits for it like for a writer, up to the busy timeout).
        let Some(_slots) = self.shared.slots_change.try_read_for(busy_timeout) else {
            return Err(Error::Busy(format!(
                "{what}: its keys are being changed (a rekey rewrites every page); waited {} ms",
                busy_timeout.as_millis()
            )));
        };
        // As the file has them now: another process may have added or removed keys.
        let keys = keyslots::KeySlots::of_file(&self.shared.pager)?;
        if let Some(sealer) = self.shared.pager.sealer() {
            keys.check(sealer)?;
        }
        match key {
            None => Err(keyslots::key_needed(what)),
            Some(k) if keys.admits(k.as_str())? => Ok(()),
            Some(_) => Err(Error::Crypto(format!(
                "{}: no key slot for this key: the database is encrypted to other keys",
                self.shared.pager.what()
            ))),
        }
    }
}

/// What the checkpointer needs from the log: the last LSN, and resetting it. A recycled log
/// (version 2) starts its next lap in place (new header slot, synced; the next record
/// overwrites the file from just after the header). A version-1 log of an earlier build is
/// replaced by a new recycled log (temporary file and rename), once.
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
    if log.header.lap == 0 || log.header.salt != salt {
        let header = LogHeader::new(last, salt, 1);
        let f = write_new_log(&shared.log_path, header, std::iter::empty(), &shared.faults)?;
        log.use_file(f, header)?;
    } else {
        let old = log.header;
        let header = log::restart_lap(&mut log.file, &old, last)?;
        log.restarted(header);
    }
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
            drop(space);
            // Same trees, same log: only the generation moves (other processes reload).
            publish_generation(shared, m.generation, None);
            let mut cur = shared.state.write();
            *cur = Arc::new(State {
                gen: m.generation,
                ..State::clone(&cur)
            });
            shared.visibility.lock().show_all();
            Ok(())
        }
        Err(e) => {
            drop(space);
            shared.poison(&e);
            Err(e)
        }
    }
}

/// Holding the write lock, after a new manifest is durable (and its log in place): tells
/// other processes, and notes that this process is at that generation already.
/// `log_base`: the new log's `base_lsn` when the log was reset.
pub(crate) fn publish_generation(shared: &Shared, gen: u64, log_base: Option<u64>) {
    let _f = shared.follow.lock();
    let (base, end, last) = match &shared.log {
        Some(l) => {
            let mut l = l.lock();
            l.gen = gen;
            (
                log_base.unwrap_or_else(|| shared.shm.log_base()),
                l.file.end(),
                l.next_lsn - 1,
            )
        }
        None => (
            shared.shm.log_base(),
            shared.shm.log_end(),
            shared.shm.last_lsn(),
        ),
    };
    shared.local_gen.store(gen, Ordering::SeqCst);
    shared.applied_end.store(end, Ordering::SeqCst);
    shared.shm.publish_gen(gen, base, end, last);
}

/// A salt for the logs of a new file: any value but 0 (which means "none").
fn new_salt() -> u32 {
    fastrand::u32(1..)
}

/// Bookkeeping after a checkpoint finished.
pub(crate) fn note_checkpoint(shared: &Shared, started: Instant) {
    let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    shared.checkpoints.fetch_add(1, Ordering::Relaxed);
    shared.checkpoint_micros.fetch_add(us, Ordering::Relaxed);
    shared.last_checkpoint_micros.store(us, Ordering::Relaxed);
    *shared.last_checkpoint.lock() = Instant::now();
}
