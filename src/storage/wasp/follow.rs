//! Several processes on one WASP database: following what the others commit
//! ([`catch_up`]), and the write lock that spans processes ([`WriteLock`]).
//!
//! Every process holds its own copy of the published state (the trees of the durable
//! manifest plus, in memory, the commits logged after it). The shared file
//! ([`super::shm::ShmFile`]) says which manifest generation is current and how many bytes of
//! the current log hold committed records. A process that finds it is behind either reads
//! the log records it has not applied yet (same generation: [`apply_tail`]) or, after
//! another process's checkpoint, loads the new manifest's trees and replays that log
//! ([`reload`]). Either way it notes what changed ([`ForeignChanges`]) so the caches above
//! can drop it. The protocol is written down in `docs/FORMAT.md` ("Several processes").

use super::open::load_trees;
use super::shared::{Pin, Shared, Space, State};
use super::shm::ShmFile;
use super::txn::apply_logged;
use crate::error::{Error, Result};
use crate::storage::fault::Faults;
use crate::storage::file::LogFile;
use crate::storage::log::{self, LogHeader, Op, LOG2_START};
use crate::storage::{Bytes, WriterGuard};
use std::collections::BTreeSet;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Keys listed one by one before [`ForeignChanges`] gives up and says "everything".
const MAX_FOREIGN_KEYS: usize = 50_000;

/// What other processes changed since the layer above last asked.
#[derive(Debug, Default)]
pub(crate) struct ForeignChanges {
    /// Anything may have changed (a checkpoint by another process, or too many keys).
    pub all: bool,
    /// Collections created, dropped or renamed.
    pub tables: BTreeSet<String>,
    /// (collection, key) of every put and delete.
    pub keys: Vec<(String, Bytes)>,
}

impl ForeignChanges {
    pub(crate) fn is_empty(&self) -> bool {
        !self.all && self.tables.is_empty() && self.keys.is_empty()
    }

    fn note(&mut self, ops: &[Op]) {
        if self.all {
            return;
        }
        for op in ops {
            match op {
                Op::Create { name, .. } | Op::Drop { name } => {
                    self.tables.insert(name.clone());
                }
                Op::Rename { from, to } => {
                    self.tables.insert(from.clone());
                    self.tables.insert(to.clone());
                }
                Op::Put { table, key, .. } | Op::Delete { table, key } => {
                    self.keys.push((table.clone(), key.clone()));
                }
                Op::AdvanceRid { .. } => {}
            }
        }
        if self.keys.len() > MAX_FOREIGN_KEYS {
            self.everything();
        }
    }

    fn everything(&mut self) {
        self.all = true;
        self.tables.clear();
        self.keys.clear();
    }
}

/// This process's reading end of the current log (for records other processes append).
pub(crate) struct Follow {
    /// The log's path (for messages).
    pub(super) path: std::path::PathBuf,
    log: Option<File>,
    /// `base_lsn` in the header of `log`.
    log_base: u64,
    /// The header of `log` as read for generation `gen` (its lap checks the records).
    header: LogHeader,
    gen: u64,
}

/// Whether this process has applied everything the shared file says is committed.
fn up_to_date(shared: &Shared) -> bool {
    // The shared counters first: a commit of this process updates its own counters before
    // it publishes, so they are never behind what this load saw.
    let gen = shared.shm.gen();
    let end = shared.shm.log_end();
    gen == shared.local_gen.load(Ordering::SeqCst)
        && end <= shared.applied_end.load(Ordering::SeqCst)
}

impl Follow {
    pub(super) fn new(path: std::path::PathBuf) -> Self {
        Self {
            path,
            log: None,
            log_base: 0,
            header: LogHeader::new(0, 0, 0),
            gen: 0,
        }
    }
}

/// Brings this process's published state up to the newest commit of any process. Waits up
/// to `busy` for a checkpoint of another process to finish publishing.
pub(crate) fn catch_up(shared: &Arc<Shared>, busy: Duration) -> Result<()> {
    if up_to_date(shared) {
        return Ok(());
    }
    let deadline = Instant::now() + busy;
    let mut round = 0u32;
    loop {
        {
            let mut f = shared.follow.lock();
            if up_to_date(shared) {
                return Ok(());
            }
            let gen = shared.shm.gen();
            let done = if gen == shared.local_gen.load(Ordering::SeqCst) {
                apply_tail(shared, &mut f)?
            } else {
                reload(shared, &mut f)?
            };
            if done {
                return Ok(());
            }
        }
        // A checkpoint of another process is between writing its manifest and publishing
        // it, or died there: after a while, try the write lock, as a writer would (this
        // process's gate first, then the shared lock; taking it over from a dead holder
        // recovers what it left). Never while this process holds it: nothing can be half
        // done then.
        round += 1;
        if round > 20 && !shared.holds_write.load(Ordering::SeqCst) {
            drop(WriteLock::acquire(shared, Duration::ZERO));
        }
        if Instant::now() >= deadline {
            return Err(Error::Busy(format!(
                "another process's checkpoint of {} did not finish within busy_timeout_ms ({} ms)",
                shared.pager.what(),
                busy.as_millis()
            )));
        }
        std::thread::sleep(Duration::from_micros(200 * u64::from(round.min(25))));
    }
}

/// Reads `[from, to)` of the log this process follows; `None` when it is not that long (the
/// file was replaced under us).
fn read_log(f: &Follow, from: u64, to: u64) -> Result<Option<Vec<u8>>> {
    let Some(file) = &f.log else {
        return Ok(None);
    };
    let len = usize::try_from(to - from)
        .map_err(|_| Error::Internal("log stretch does not fit in memory".into()))?;
    let mut buf = vec![0u8; len];
    match file.read_exact_at(&mut buf, from) {
        Ok(()) => Ok(Some(buf)),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(Error::io(&f.path, e)),
    }
}

/// Opens the log at its path; returns it and its header. A log whose salt is not `salt`
/// (the manifest's) belongs to another database (`app` and `app.db` share `app.wasp`, and so
/// `app.wasp-shm`): `Corrupt`, as at open.
fn open_log(shared: &Shared, salt: u32) -> Result<Option<(File, LogHeader)>> {
    let file = match File::open(&shared.log_path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&shared.log_path, e)),
    };
    let Some(header) = read_header(shared, &file)? else {
        return Ok(None);
    };
    let found = header.salt;
    if found != 0 && salt != 0 && found != salt {
        return Err(Error::Corrupt(format!(
            "log {} belongs to another database (its salt {found:#010x} is not {}'s {salt:#010x}), which another process has open",
            shared.log_path.display(),
            shared.pager.what()
        )));
    }
    Ok(Some((file, header)))
}

/// The header of the open log `file`; `None` when the file is too short to hold one (being
/// created).
fn read_header(shared: &Shared, file: &File) -> Result<Option<LogHeader>> {
    let mut head = [0u8; LOG2_START];
    let n = crate::storage::file::read_at(file, 0, &mut head)
        .map_err(|e| Error::io(&shared.log_path, e))?;
    if n < log::LOG_HEADER_LEN {
        return Ok(None);
    }
    log::decode_header(&head[..n], &shared.log_path.display().to_string()).map(Some)
}

/// Same generation: applies the records other processes appended since this process last
/// looked. Returns `false` when the log turned out to be replaced meanwhile (try again).
fn apply_tail(shared: &Arc<Shared>, f: &mut Follow) -> Result<bool> {
    let gen = shared.local_gen.load(Ordering::SeqCst);
    let from = shared.applied_end.load(Ordering::SeqCst);
    let to = shared.shm.log_end();
    let base = shared.shm.log_base();
    if to < from {
        // A checkpoint published a new lap between the two loads.
        return Ok(false);
    }
    if f.log.is_none() || f.log_base != base || f.gen != gen {
        let salt = shared.space.lock().manifest.log_salt;
        match open_log(shared, salt)? {
            Some((file, h)) if h.base_lsn == base => {
                f.log = Some(file);
                f.log_base = h.base_lsn;
                f.header = h;
                f.gen = gen;
            }
            _ => return Ok(false),
        }
    }
    // The records change this generation's trees, whose pages the pin protects only if
    // the generation is still current once the slot names it.
    let _pin = Pin::new(shared, gen);
    let moved = || shared.shm.gen() != gen;
    if moved() {
        return Ok(false);
    }
    let Some(bytes) = read_log(f, from, to)? else {
        return if moved() {
            Ok(false)
        } else {
            Err(Error::Corrupt(format!(
                "{}: shorter than the {to} bytes of commits other processes published",
                shared.log_path.display()
            )))
        };
    };
    let records =
        match log::decode_records(&bytes, f.header.lap, shared.pager.sealer().map(|s| &**s)) {
            Ok(r) => r,
            Err(_) if moved() => return Ok(false),
            // Another process's checkpoint is restarting the log (its new header is written,
            // the generation not yet published): try again.
            Err(_) if header_moved(shared, f)? => return Ok(false),
            Err(why) => {
                return Err(Error::Corrupt(format!(
                    "{}: commits another process published do not read back: {why}",
                    shared.log_path.display()
                )))
            }
        };
    let mut space = shared.space.lock();
    let mut freed = Vec::new();
    let mut dirtied = 0;
    let mut foreign = ForeignChanges::default();
    {
        // Applied to the published state itself: when no snapshot holds it (the common
        // case between reads), its nodes change in place instead of being copied, as a
        // commit's private copy must be. Readers of this process wait for the state lock
        // meanwhile (microseconds). A record that does not apply leaves the state half
        // changed: the store is marked corrupt, every later call fails.
        let mut cur = shared.state.write();
        let state = Arc::make_mut(&mut *cur);
        let what = shared.log_path.display().to_string();
        for rec in &records {
            apply_logged(&shared.pager, state, rec, &mut freed, &mut dirtied, &what)
                .inspect_err(|e| shared.note_read_error(e))?;
            foreign.note(&rec.1);
        }
        state.epoch += 1;
        shared.visibility.lock().show_all();
    }
    space.freed_by_commit(freed);
    space.dirty_nodes += dirtied;
    drop(space);
    shared.applied_end.store(to, Ordering::SeqCst);
    merge(shared, foreign);
    Ok(true)
}

/// Whether the header of the log `f` follows is no longer the one it read.
fn header_moved(shared: &Shared, f: &Follow) -> Result<bool> {
    let Some(file) = &f.log else {
        return Ok(true);
    };
    Ok(read_header(shared, file)? != Some(f.header))
}

fn merge(shared: &Shared, mut changes: ForeignChanges) {
    let mut all = shared.foreign.lock();
    shared.foreign_noted.store(true, Ordering::SeqCst);
    if changes.all {
        all.everything();
        return;
    }
    all.tables.append(&mut changes.tables);
    all.keys.append(&mut changes.keys);
    if all.keys.len() > MAX_FOREIGN_KEYS {
        all.everything();
    }
}

/// Another generation is published: loads its trees and replays its log. Returns `false`
/// when a newer checkpoint got in the way (try again).
pub(super) fn reload(shared: &Arc<Shared>, f: &mut Follow) -> Result<bool> {
    let gen = shared.shm.gen();
    // Pages of `gen`'s trees are not reused while a slot names `gen` (see FORMAT.md).
    let _pin = Pin::new(shared, gen);
    let m = shared.pager.read_manifest()?;
    if m.generation != gen {
        return Ok(false);
    }
    let Some((file, header)) = open_log(shared, m.log_salt)? else {
        return Ok(false);
    };
    // The log is restarted (or renamed into place) after its manifest is written: the same
    // manifest after reading its header means it is this generation's log.
    if shared.pager.read_manifest()?.generation != gen || header.base_lsn != shared.shm.log_base() {
        return Ok(false);
    }
    let end = shared.shm.log_end();
    if shared.shm.gen() != gen || end < header.start() {
        return Ok(false);
    }
    f.log = Some(file);
    f.log_base = header.base_lsn;
    f.header = header;
    f.gen = gen;
    let Some(bytes) = read_log(f, header.start(), end)? else {
        return Ok(false);
    };
    // Records of the lap after this one (a checkpoint restarting the log meanwhile) fail
    // this lap's checksums.
    let Ok(records) = log::decode_records(&bytes, header.lap, shared.pager.sealer().map(|s| &**s))
    else {
        return Ok(false);
    };
    // Page numbers this process cached (or checked in its map) may hold other contents
    // now, and the file may have grown.
    shared.pager.clear_cache();
    shared.pager.file.after_foreign_writes()?;
    let trees = load_trees(&shared.pager, &m, true)?;
    let mut space = Space {
        manifest: m,
        page_count: m.page_count,
        free: trees.free,
        pending: trees.pending,
        meta_pages: trees.meta_pages,
        dirty_nodes: 0,
    };
    let mut state = State {
        epoch: 0,
        gen,
        tables: trees.tables,
    };
    let mut freed = Vec::new();
    let what = shared.log_path.display().to_string();
    for rec in records.iter().filter(|r| r.0 > m.ckpt_lsn) {
        apply_logged(
            &shared.pager,
            &mut state,
            rec,
            &mut freed,
            &mut space.dirty_nodes,
            &what,
        )?;
    }
    space.freed_by_commit(freed);
    {
        let mut sp = shared.space.lock();
        let mut cur = shared.state.write();
        state.epoch = cur.epoch + 1;
        *sp = space;
        *cur = Arc::new(state);
        shared.visibility.lock().show_all();
    }
    shared.local_gen.store(gen, Ordering::SeqCst);
    shared.applied_end.store(end, Ordering::SeqCst);
    merge(
        shared,
        ForeignChanges {
            all: true,
            ..ForeignChanges::default()
        },
    );
    Ok(true)
}

/// Holding the write lock after a writer died holding it: when its checkpoint got as far
/// as a manifest it never published, publishes that manifest and its log. (A record it
/// appended but never published is cut by [`WriteLock::acquire`] before the next append.)
fn recover(shared: &Shared) -> Result<()> {
    let m = shared.pager.read_manifest()?;
    if m.generation == shared.shm.gen() {
        return Ok(());
    }
    let what = shared.log_path.display().to_string();
    let image = match std::fs::read(&shared.log_path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            LogHeader::new(m.ckpt_lsn, m.log_salt, 1).file_bytes()
        }
        Err(e) => return Err(Error::io(&shared.log_path, e)),
    };
    let replay = log::replay_sealed(&image, &what, shared.pager.sealer().map(|s| &**s))?;
    if replay.base_lsn > m.ckpt_lsn {
        return Err(Error::Corrupt(format!(
            "{what}: the log starts after LSN {}, the manifest holds only up to LSN {}",
            replay.base_lsn, m.ckpt_lsn
        )));
    }
    let last = replay
        .records
        .last()
        .map_or(m.ckpt_lsn, |r| r.0)
        .max(m.ckpt_lsn);
    ::log::warn!(
        "{what}: a process died while checkpointing; its manifest (generation {}) is adopted",
        m.generation
    );
    shared
        .shm
        .publish_gen(m.generation, replay.base_lsn, replay.good_len, last);
    Ok(())
}

/// The write lock of the database: this process's writer gate and the shared file's write
/// lock, with this process caught up and its log positioned after the last commit of any
/// process. Dropping it releases both.
pub(crate) struct WriteLock {
    shared: Arc<Shared>,
    _gate: WriterGuard,
}

impl WriteLock {
    pub(crate) fn acquire(shared: &Arc<Shared>, busy: Duration) -> Result<Self> {
        let deadline = Instant::now() + busy;
        let gate = shared.gate.acquire(busy)?;
        let died = shared.shm.lock_write(deadline, busy)?;
        shared.holds_write.store(true, Ordering::SeqCst);
        let lock = Self {
            shared: Arc::clone(shared),
            _gate: gate,
        };
        if died {
            recover(shared)?;
        }
        catch_up(shared, busy)?;
        position_log(shared, died)?;
        Ok(lock)
    }
}

impl Drop for WriteLock {
    fn drop(&mut self) {
        self.shared.holds_write.store(false, Ordering::SeqCst);
        self.shared.shm.unlock_write();
    }
}

/// Holding the write lock: the log at `path` to write to and its header, created empty
/// (`base_lsn` as the shared file says) when it is missing: the first process had the
/// database read-only and it had no log (closed cleanly, or copied without it).
pub(super) fn open_or_create_log(
    path: &std::path::Path,
    shm: &ShmFile,
    salt: u32,
    faults: &Faults,
) -> Result<(LogFile, LogHeader)> {
    if path.exists() {
        log::open_log_file(path, faults)
    } else {
        let header = LogHeader::new(shm.log_base(), salt, 1);
        let f = log::write_new_log(path, header, std::iter::empty(), faults)?;
        Ok((f, header))
    }
}

/// Holding the write lock: makes this process's log handle the current log file, ready to
/// write after the last published commit. When the previous holder died, a record it wrote
/// after that commit but never published is erased: it was never acknowledged, and it must
/// not be read as part of the lap once later records end before it.
fn position_log(shared: &Shared, died: bool) -> Result<()> {
    let Some(log_mutex) = &shared.log else {
        return Ok(());
    };
    let mut log = log_mutex.lock();
    let gen = shared.local_gen.load(Ordering::SeqCst);
    let end = shared.shm.log_end();
    if log.gen != gen {
        // Another process's checkpoint restarted (or replaced) the log, or moved the
        // generation: its header is read again.
        let salt = shared.space.lock().manifest.log_salt;
        let (file, header) =
            open_or_create_log(&shared.log_path, &shared.shm, salt, &shared.faults)?;
        log.use_file(file, header)?;
        log.gen = gen;
        log.file.adopt_end(end)?;
    } else if died || log.file.end() != end {
        log.file.adopt_end(end)?;
    }
    if died {
        let mut head = [0u8; log::END_MARK];
        let n = log.file.read_at(end, &mut head)?;
        if head[..n].iter().any(|&b| b != 0) {
            log.file.erase(end, log::END_MARK as u64)?;
        }
    }
    log.next_lsn = log.next_lsn.max(shared.shm.last_lsn() + 1);
    Ok(())
}
