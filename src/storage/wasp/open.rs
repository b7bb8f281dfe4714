//! Opening a WASP store ([`WaspStorage::open`]): the lock, the header, the manifest, the
//! catalog and free list, and the replay of the side log, with the `recover` modes.

use super::catalog::TableMeta;
use super::manifest::Manifest;
use super::page::{Geometry, Ptr};
use super::pager::{Pager, FIRST_DATA_PAGE};
use super::shared::{LogState, Shared, Space, State};
use super::txn::{apply, Arena};
use super::{btree, new_salt, WaspConfig};
use crate::error::{Error, Result};
use crate::storage::fault::Faults;
use crate::storage::file::{DbFile, LogFile};
use crate::storage::group::GroupSync;
use crate::storage::header::{Header, FORMAT_VERSION, HEADER_LEN};
use crate::storage::log::{log_path_for, write_new_log, LogRecovery, Recovery};
use crate::storage::{log, StorageEngine};
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;
use std::sync::atomic::AtomicU64;
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
    pub(super) fn with_gate<R>(
        &self,
        busy: Duration,
        f: impl FnOnce(&Arc<Shared>) -> Result<R>,
    ) -> Result<R> {
        let _guard = self.shared.gate.acquire(busy)?;
        f(&self.shared)
    }
}

/// Writes the header page and the first manifest of a new file, then syncs.
pub(super) fn create_file(db: &DbFile, faults: &Faults, page_size: u32) -> Result<()> {
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
    crate::storage::file::sync_dir(pf.path())
}
