//! Opening a WASP store ([`WaspStorage::open`]): the lock, the header, the manifest, the
//! catalog and free list, and the replay of the side log, with the `recover` modes.

use super::catalog::TableMeta;
use super::follow::{catch_up, open_or_create_log, Follow, ForeignChanges, WriteLock};
use super::keyslots::{KeySlots, Unlock};
use super::manifest::Manifest;
use super::page::Ptr;
use super::pager::{gen_of_tag, Pager, FIRST_DATA_PAGE};
use super::shared::{LogState, Shared, Space, State};
use super::shm::{shm_path_for, Joined, ShmFile};
use super::txn::{apply_logged, Arena};
use super::{btree, new_salt, WaspConfig};
use crate::crypto::seal::Cipher;
use crate::crypto::seal::{Sealer, OVERHEAD};
use crate::error::{Error, Result};
use crate::storage::fault::Faults;
use crate::storage::file::{DbFile, LockMode, LogFile};
use crate::storage::group::GroupSync;
use crate::storage::header::{
    cipher_of_format, encrypted_format, Header, FORMAT_VERSION, HEADER_LEN,
};
use crate::storage::log::{log_path_for, write_new_log, LogHeader, LogRecovery, Recovery};
use crate::storage::{log, StorageEngine};
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The paged copy-on-write engine. See the module docs.
pub(crate) struct WaspStorage {
    pub(super) shared: Arc<Shared>,
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
        let mut db = DbFile::open_locked(path, create, read_only, busy_timeout, LockMode::Shared)?;
        // Other processes may have the database open: the shared file says whether any does.
        let (shm, joined) = ShmFile::open(&shm_path_for(&log_path), busy_timeout)?;
        let alone = matches!(joined, Joined::Alone);
        if alone {
            super::rekey::restore_interrupted(&db, path, read_only, &faults)?;
        }
        let fresh = db.len()? == 0;
        let (page_size, format_version, sealer) = if fresh {
            if read_only {
                return Err(Error::Corrupt(format!(
                    "{what} is empty: not a NexusLite database"
                )));
            }
            if !alone {
                // A new file is created by the process that has it alone; others joining
                // means they have another database open whose log has this one's name.
                return Err(Error::Corrupt(format!(
                    "{what} is empty, and other processes have a database open that shares its log {} (`app` and `app.db` both log to `app.wasp`); rename one of them",
                    log_path.display()
                )));
            }
            if log_path.exists() {
                return Err(Error::Corrupt(format!(
                    "{what} is empty but its log {} exists; refusing to guess (move the log away to start afresh)",
                    log_path.display()
                )));
            }
            let cipher = cfg.cipher.unwrap_or_else(Cipher::preferred);
            let keys = match &cfg.encryption {
                None => None,
                Some(Unlock::Key(pem)) => Some(KeySlots::create(pem.as_str(), cipher)?),
                Some(Unlock::Recipients(publics)) => Some(KeySlots::create_for(publics, cipher)?),
                Some(Unlock::Sealer(_)) => {
                    return Err(Error::Internal("a new file is encrypted with a key".into()))
                }
            };
            create_file(&db, &faults, cfg.page_size, keys.as_ref())?;
            let version = match &keys {
                Some((_, sealer)) => encrypted_format(sealer.cipher()),
                None => FORMAT_VERSION,
            };
            (cfg.page_size, version, keys.map(|(_, s)| Arc::new(s)))
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
            let page0 = {
                let mut b = vec![0u8; header.page_size as usize];
                db.page_file(faults.clone())?.read_at(0, &mut b)?;
                b
            };
            let sealer = unlock(&page0, &header, cfg.encryption.as_ref(), &what)?;
            (header.page_size, header.format_version, sealer)
        };
        let mut file = db.page_file(faults.clone())?;
        // Sealed pages are opened into a buffer: a map of them would serve nothing.
        if cfg.mmap && sealer.is_none() {
            file.map_pages(page_size as usize)?;
        }
        let pager = Pager::new(
            file,
            page_size as usize,
            sealer,
            usize::try_from(cfg.cache_bytes).unwrap_or(usize::MAX),
        );
        let parts = Parts {
            pager,
            db,
            shm,
            read_only,
            format_version,
            log_path,
            faults,
            cfg,
        };
        if !alone {
            return Self::join(parts, busy_timeout);
        }
        let (pager, log_path, faults, cfg) =
            (&parts.pager, &parts.log_path, &parts.faults, &parts.cfg);
        let manifest = pager.read_manifest()?;
        // Alone: no snapshot of any other process reads a page, so every listed page is free.
        let trees = load_trees(pager, &manifest, false)?;
        let (tables, meta_pages, free) = (trees.tables, trees.meta_pages, trees.free);
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
            image = read_log_image(
                log_path,
                read_only,
                manifest.log_quiet,
                faults,
                &mut log_file,
            )?;
            let salt = log::decode_header(&image, &log_what)?.salt;
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
            let header = LogHeader::new(manifest.ckpt_lsn, manifest.log_salt, 1);
            if !read_only {
                log_file = Some(write_new_log(log_path, header, std::iter::empty(), faults)?);
            }
            image = header.file_bytes();
        }
        let replay = log::replay_sealed(&image, &log_what, pager.sealer().map(|s| &**s))?;
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
        let mut state = State {
            epoch: 1,
            gen: manifest.generation,
            tables,
        };
        let mut replay_freed = Vec::new();
        let mut dirty_nodes = 0;
        let mut last_lsn = manifest.ckpt_lsn.max(replay.base_lsn);
        let mut replayed = 0u64;
        for rec in replay.records.iter().filter(|r| r.0 > manifest.ckpt_lsn) {
            apply_logged(
                pager,
                &mut state,
                rec,
                &mut replay_freed,
                &mut dirty_nodes,
                &log_what,
            )?;
            last_lsn = last_lsn.max(rec.0);
            replayed += 1;
        }
        if let Some(reason) = &replay.stop_reason {
            ::log::warn!(
                "{log_what}: recovery stopped at {reason}; dropped {} bytes and {} intact commits after them",
                replay.dropped_bytes,
                lost.len()
            );
        }
        let header = replay.header.unwrap_or_else(|| LogHeader::new(0, 0, 0));
        if let Some(f) = log_file.as_mut() {
            if !lost.is_empty() || (header.lap == 0 && replay.stop_reason.is_some()) {
                // Commits after the damage were given up (or a version-1 log's torn tail):
                // cut, so that none of them is ever read as part of this lap again.
                f.truncate(replay.good_len)?;
            } else if replay.stop_reason.is_some() {
                // A torn record of this lap: its head zeroed (an end mark), so the next
                // crash's replay does not stop at its residue.
                f.erase(replay.good_len, log::END_MARK as u64)?;
            }
            f.set_end(replay.good_len);
            if header.lap != 0 {
                f.set_prealloc(log::PREALLOC_STEP);
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
                gen: manifest.generation,
                sync: Arc::new(file.sync_handle()?),
                file,
                header,
                next_lsn: last_lsn + 1,
                base_len: header.start(),
                records_since: replayed,
            })),
            None => None,
        };
        let (gen, log_base, log_end) = (manifest.generation, replay.base_lsn, replay.good_len);
        let mut space = Space {
            page_count: manifest.page_count,
            manifest,
            free,
            pending: VecDeque::new(),
            meta_pages,
            dirty_nodes,
        };
        space.freed_by_commit(replay_freed);
        let shared = assemble(parts, state, space, log, group, recovery);
        shared.local_gen.store(gen, Ordering::SeqCst);
        shared.applied_end.store(log_end, Ordering::SeqCst);
        // Lets other processes in.
        let salt = shared.space.lock().manifest.log_salt;
        shared
            .shm
            .publish_open(salt, gen, log_base, log_end, last_lsn);
        Ok(Self { shared })
    }

    /// Opens a database other processes have open: its state is what they published.
    fn join(parts: Parts, busy: Duration) -> Result<Self> {
        // `app` and `app.db` share `app.wasp` and so `app.wasp-shm`: the other processes
        // may have the other database open.
        let m = parts.pager.read_manifest()?;
        let theirs = parts.shm.salt();
        if m.log_salt != 0 && theirs != 0 && m.log_salt != theirs {
            return Err(Error::Corrupt(format!(
                "{} and the database other processes have open share the log {} (salt {theirs:#010x}, not {:#010x}); rename one of them",
                parts.pager.what(),
                parts.log_path.display(),
                m.log_salt
            )));
        }
        let log = if parts.read_only {
            None
        } else {
            let (file, header) = if parts.log_path.exists() {
                let f = LogFile::open(&parts.log_path, false, parts.faults.clone())?;
                (f, LogHeader::new(0, 0, 0))
            } else {
                // Made by the first writer, holding the write lock.
                let shm = &parts.shm;
                shm.lock_write(Instant::now() + busy, busy)?;
                let r = open_or_create_log(&parts.log_path, shm, m.log_salt, &parts.faults);
                shm.unlock_write();
                r?
            };
            Some(Mutex::new(LogState {
                // Not a generation: the write lock reopens the log and positions it (with
                // its header) before the first record.
                gen: 0,
                sync: Arc::new(file.sync_handle()?),
                file,
                header,
                next_lsn: 1,
                base_len: header.start(),
                records_since: 0,
            }))
        };
        let space = Space {
            manifest: Manifest::default(),
            page_count: 0,
            free: BTreeSet::new(),
            pending: VecDeque::new(),
            meta_pages: Vec::new(),
            dirty_nodes: 0,
        };
        let shared = assemble(
            parts,
            State::default(),
            space,
            log,
            GroupSync::default(),
            Recovery::default(),
        );
        catch_up(&shared, busy)?;
        let lsn = shared.shm.last_lsn();
        shared.group.synced(lsn);
        Ok(Self { shared })
    }

    /// Runs `f` holding the write lock (maintenance: compact, check, backup).
    pub(super) fn with_gate<R>(
        &self,
        busy: Duration,
        f: impl FnOnce(&Arc<Shared>) -> Result<R>,
    ) -> Result<R> {
        let _lock = WriteLock::acquire(&self.shared, busy)?;
        f(&self.shared)
    }
}

/// The log image replay reads at open: the whole file, or (a writer) only its header when the
/// manifest says the log is quiet (the current lap of a recycled log is then empty, and its
/// earlier laps are not needed). A writer keeps the file open in `file`.
fn read_log_image(
    path: &std::path::Path,
    read_only: bool,
    quiet: bool,
    faults: &Faults,
    file: &mut Option<LogFile>,
) -> Result<Vec<u8>> {
    if read_only {
        return crate::storage::file::read_regular(path);
    }
    let mut f = LogFile::open(path, false, faults.clone())?;
    let mut head = vec![0u8; log::LOG2_START];
    let n = f.read_at(0, &mut head)?;
    head.truncate(n);
    let recycled =
        log::decode_header(&head, &path.display().to_string()).is_ok_and(|h| h.version == 2);
    let image = if quiet && recycled {
        head
    } else {
        f.read_all()?
    };
    *file = Some(f);
    Ok(image)
}

/// What an open has made before it knows whether it is alone.
struct Parts {
    pager: Pager,
    db: DbFile,
    shm: ShmFile,
    read_only: bool,
    format_version: u32,
    log_path: PathBuf,
    faults: Faults,
    cfg: WaspConfig,
}

fn assemble(
    parts: Parts,
    state: State,
    space: Space,
    log: Option<Mutex<LogState>>,
    group: GroupSync,
    recovery: Recovery,
) -> Arc<Shared> {
    let Parts {
        pager,
        db,
        shm,
        read_only,
        format_version,
        log_path,
        faults,
        cfg,
    } = parts;
    Arc::new(Shared {
        pager,
        state: RwLock::new(Arc::new(state)),
        visibility: Mutex::default(),
        gate: Arc::default(),
        log,
        group,
        poisoned: Mutex::new(None),
        corrupt: Mutex::new(None),
        space: Mutex::new(space),
        readers: Mutex::new(BTreeMap::new()),
        read_only,
        format_version,
        follow: Mutex::new(Follow::new(log_path.clone())),
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
        shm,
        local_gen: AtomicU64::new(0),
        applied_end: AtomicU64::new(0),
        foreign: Mutex::new(ForeignChanges::default()),
        foreign_noted: AtomicBool::new(false),
        holds_write: AtomicBool::new(false),
        slots_change: RwLock::new(()),
        _db: db,
    })
}

/// What [`load_trees`] found.
pub(super) struct Trees {
    pub tables: imbl::OrdMap<String, TableMeta>,
    pub meta_pages: Vec<u64>,
    pub free: BTreeSet<u64>,
    pub pending: VecDeque<(u64, Vec<u64>)>,
}

/// The trees of manifest `m`: the catalog's tables, the pages of the catalog and free list,
/// and the free pages. `honour_tags`: pages the free list tags with a generation some
/// snapshot may still read are queued (`pending`) instead of free; without it (the only
/// process) every listed page is free.
pub(super) fn load_trees(pager: &Pager, m: &Manifest, honour_tags: bool) -> Result<Trees> {
    let what = pager.what().to_owned();
    let mut tables = imbl::OrdMap::new();
    let mut meta_pages = Vec::new();
    if m.catalog_root != 0 {
        let root = Ptr::Disk(m.catalog_root);
        let mut entries = Vec::new();
        btree::scan(pager, &root, None, usize::MAX, &mut entries, false, false)?;
        for (k, v) in entries {
            let name = String::from_utf8(k.to_vec())
                .map_err(|_| Error::Corrupt(format!("{what}: catalog name is not UTF-8")))?;
            let bytes = btree::resolve(pager, &v)?;
            tables.insert(name, TableMeta::decode(&bytes, &what)?);
        }
        btree::for_each_disk_page(pager, &root, &mut |id| meta_pages.push(id))?;
    }
    let (listed, own) = pager.read_freelist(m.freelist_head, m.page_count)?;
    meta_pages.extend(own);
    let mut free = BTreeSet::new();
    let mut tagged: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for (tag, p) in listed {
        if p < FIRST_DATA_PAGE || p >= m.page_count {
            return Err(Error::Corrupt(format!(
                "{what}: the free list names a page outside the file"
            )));
        }
        if !honour_tags || tag == 0 {
            free.insert(p);
            continue;
        }
        tagged
            .entry(gen_of_tag(tag, m.generation))
            .or_default()
            .push(p);
    }
    Ok(Trees {
        tables,
        meta_pages,
        free,
        pending: tagged.into_iter().collect(),
    })
}

/// The sealer of an existing file whose header is `header` (first page `page0`): `None` for a
/// plain file (which refuses a key), or the file unlocked with `unlock`.
fn unlock(
    page0: &[u8],
    header: &Header,
    unlock: Option<&Unlock>,
    what: &str,
) -> Result<Option<Arc<Sealer>>> {
    let Some(cipher) = cipher_of_format(header.format_version) else {
        return match unlock {
            None => Ok(None),
            Some(_) => Err(super::keyslots::not_encrypted(what)),
        };
    };
    let keys = KeySlots::read(page0, what)?;
    if keys.cipher != cipher {
        return Err(Error::Corrupt(format!(
            "{what}: the header's format version {} does not match the cipher of the key slots ({})",
            header.format_version,
            keys.cipher.name()
        )));
    }
    let sealer = match unlock {
        None => return Err(super::keyslots::key_needed(what)),
        Some(Unlock::Key(pem)) => Arc::new(keys.unlock(pem.as_str()).map_err(|e| match e {
            Error::Crypto(m) => Error::Crypto(format!("{what}: {m}")),
            other => other,
        })?),
        Some(Unlock::Sealer(s)) if s.file_id() == keys.file_id => Arc::clone(s),
        Some(Unlock::Recipients(_)) => {
            return Err(Error::Internal(format!(
                "{what}: an existing file is opened with a private key, not recipients"
            )))
        }
        Some(Unlock::Sealer(_)) => {
            return Err(Error::Internal(format!(
                "{what}: a copy opened with another file's key"
            )))
        }
    };
    Ok(Some(sealer))
}

/// Writes the header page and the first manifest of a new file (encrypted with `keys`), then
/// syncs.
pub(super) fn create_file(
    db: &DbFile,
    faults: &Faults,
    page_size: u32,
    keys: Option<&(KeySlots, Sealer)>,
) -> Result<()> {
    let pf = db.page_file(faults.clone())?;
    let header = Header {
        format_version: match keys {
            Some((_, sealer)) => encrypted_format(sealer.cipher()),
            None => FORMAT_VERSION,
        },
        backend: StorageEngine::Wasp,
        page_size,
        created_at: crate::document::now_millis(),
    };
    let ps = page_size as usize;
    let mut page0 = vec![0u8; ps];
    page0[..HEADER_LEN].copy_from_slice(&header.encode());
    pf.write_at(0, &page0)?;
    if let Some((slots, sealer)) = keys {
        slots.write(&pf, ps, sealer)?;
    }
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
    let logical = ps - if keys.is_some() { OVERHEAD } else { 0 };
    let page = super::pager::sealed_page(keys.map(|k| &k.1), m.slot(), &m.encode(logical), ps);
    pf.write_at(m.slot() * ps as u64, &page)?;
    pf.sync()?;
    crate::storage::file::sync_dir(pf.path())
}
