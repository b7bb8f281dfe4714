//! The engine: one per database file per process ([`Engine`]), shared by every connection
//! that opens the same path (the registry in [`open_engine`]). It owns the storage backend
//! and what sits beside it for all connections: the document cache (`cache`), the TTL
//! registry and its sweeper ([`ttl`], [`sweeper`]), bounded-collection trackers
//! ([`bounded`]). Every commit goes through [`Engine::write`] / [`Engine::finish`], which
//! invalidate the cache and refresh the trackers afterwards.
//!
//! Life cycle: `open_engine` -> (connections come and go) -> last connection closes ->
//! [`Engine::release`] stops the sweeper and runs the backend's clean shutdown; the advisory
//! lock is released when the last reference drops.

pub(crate) mod bounded;
pub(crate) mod sweeper;
pub(crate) mod txn;

use crate::cache::Touched;
use crate::cache::{CacheConfig, CollLimits, DocCache};
use crate::document::now_millis;
use crate::document::record::RecordVersion;
use crate::error::{Error, Result};
use crate::hash::ByName;
#[cfg(any(test, feature = "fault-injection"))]
use crate::storage::fault::FaultPlan;
use crate::storage::fault::Faults;
use crate::storage::header::{Header, HEADER_LEN};
use crate::storage::memlog::MemLogStorage;
use crate::storage::wasp::WaspStorage;
use crate::storage::{Bytes, ReadView, Storage, StorageEngine, SyncMode, WriteTxn};
use bounded::{Bound, Tracker};
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};
use sweeper::{Sweeper, SweeperConfig};
use txn::TrackedTxn;

/// What an engine is opened with (the part of the open options the engine owns).
#[derive(Debug, Clone)]
pub(crate) struct EngineConfig {
    pub create: bool,
    pub read_only: bool,
    pub busy_timeout: Duration,
    pub cache: CacheConfig,
    pub sweeper: SweeperConfig,
    /// Engine for a new file (an existing file opens with the engine recorded in its header).
    pub storage: StorageEngine,
    /// Settings of the `wasp` engine.
    pub wasp: crate::storage::wasp::WaspConfig,
    /// What open does with a damaged, missing or foreign log (both engines).
    pub recover: crate::storage::LogRecovery,
}

/// Options of a collection, stored with it (`nexus_create_collection`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct CollOptions {
    pub bound: Bound,
    pub cache: CollLimits,
}

impl CollOptions {
    pub(crate) fn parse(text: &str) -> Self {
        let v: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
        let get = |k: &str| v.get(k).and_then(serde_json::Value::as_u64);
        Self {
            bound: Bound {
                max_documents: get("max_documents"),
                max_bytes: get("max_bytes"),
            },
            cache: CollLimits {
                capacity: get("cache_capacity"),
                bytes: get("cache_bytes"),
            },
        }
    }

    pub(crate) fn to_json(self) -> String {
        let mut m = serde_json::Map::new();
        let mut put = |k: &str, v: Option<u64>| {
            if let Some(v) = v {
                m.insert(k.into(), v.into());
            }
        };
        put("max_documents", self.bound.max_documents);
        put("max_bytes", self.bound.max_bytes);
        put("cache_capacity", self.cache.capacity);
        put("cache_bytes", self.cache.bytes);
        serde_json::Value::Object(m).to_string()
    }
}

/// One open database: its storage, cache, expiry machinery and who is using it.
pub(crate) struct Engine {
    pub storage: Box<dyn Storage>,
    pub path: Option<PathBuf>,
    pub cache: DocCache,
    connections: AtomicUsize,
    /// The process generation ([`crate::process::generation`]) this engine was opened in; a
    /// `fork()` child that inherited it sees another and must not use it.
    generation: u64,
    /// The fault plan the storage's files consult (durability tests only).
    #[cfg(any(test, feature = "fault-injection"))]
    faults: Faults,
    sweeper_cfg: Mutex<SweeperConfig>,
    sweeper: Mutex<Option<Sweeper>>,
    options: RwLock<ByName<CollOptions>>,
    trackers: Mutex<HashMap<String, Tracker>>,
    stamp: AtomicU64,
    /// Last field, so it drops after the storage: the last engine to go frees the
    /// process-wide caches.
    _live: LiveEngine,
}

/// The number of engines alive in this process ([`LiveEngine`]).
static LIVE_ENGINES: AtomicUsize = AtomicUsize::new(0);

/// Counts one engine in [`LIVE_ENGINES`]. When the count drops to zero, the process-wide
/// caches (parsed index definitions, the path registry's table) are emptied and their memory
/// returned: after a host closed every database, the library holds none of it (memory
/// checkers then see no leftovers of closed databases either).
struct LiveEngine;

impl LiveEngine {
    fn new() -> Self {
        LIVE_ENGINES.fetch_add(1, Ordering::SeqCst);
        Self
    }
}

impl Drop for LiveEngine {
    fn drop(&mut self) {
        if LIVE_ENGINES.fetch_sub(1, Ordering::SeqCst) != 1 {
            return;
        }
        crate::index::release_caches();
        // `try_lock`: this thread may hold the registry (see `Drop for Engine`). Dead entries
        // only: an engine opened meanwhile by another thread keeps its entry.
        if let Some(mut reg) = registry().try_lock() {
            if reg.values().all(|w| w.strong_count() == 0) {
                *reg = HashMap::new();
            }
        }
    }
}

impl Engine {
    fn new(
        storage: Box<dyn Storage>,
        path: Option<PathBuf>,
        #[cfg_attr(not(any(test, feature = "fault-injection")), allow(unused_variables))]
        faults: Faults,
        cfg: &EngineConfig,
    ) -> Arc<Self> {
        let engine = Arc::new(Self {
            storage,
            path,
            cache: DocCache::new(cfg.cache.clone()),
            connections: AtomicUsize::new(0),
            generation: crate::process::generation(),
            #[cfg(any(test, feature = "fault-injection"))]
            faults,
            sweeper_cfg: Mutex::new(cfg.sweeper),
            sweeper: Mutex::new(None),
            options: RwLock::new(ByName::default()),
            trackers: Mutex::new(HashMap::new()),
            stamp: AtomicU64::new(0),
            _live: LiveEngine::new(),
        });
        engine.load_options(&*engine.storage.read());
        engine
    }

    /// The document record version this database's file takes (its format version decides).
    pub(crate) fn record_version(&self) -> RecordVersion {
        let version = self.storage.format_version();
        if version >= crate::storage::header::LEAN_RECORDS_FORMAT {
            RecordVersion::Lean
        } else if version >= 2 {
            RecordVersion::Compact
        } else {
            RecordVersion::Bson
        }
    }

    fn start_sweeper(self: &Arc<Self>) -> Result<()> {
        if !self.storage.read_only() {
            *self.sweeper.lock() = Some(Sweeper::start(Arc::downgrade(self))?);
        }
        Ok(())
    }

    /// Registers a new connection.
    pub(crate) fn attach(&self) {
        self.connections.fetch_add(1, Ordering::SeqCst);
    }

    /// Whether this engine was inherited across `fork()`: it belongs to the parent process,
    /// whose threads (sweeper, other writers) this process does not have, and whose commits
    /// it would not see nor could safely add to.
    pub(crate) fn inherited(&self) -> bool {
        self.generation != crate::process::generation()
    }

    /// The error for any use of an inherited engine.
    pub(crate) fn inherited_error(&self) -> Error {
        Error::Closed(format!(
            "this connection to {} was opened before fork(): a child process cannot use it; \
             open a connection of its own",
            self.path
                .as_deref()
                .map_or_else(|| ":memory:".into(), |p| p.display().to_string())
        ))
    }

    /// Unregisters a connection; the last one stops the sweeper and shuts the backend down.
    /// In a `fork()` child that inherited the engine nothing is written: the parent owns the
    /// files, and the sweeper thread is the parent's (its handle is dropped, not joined).
    pub(crate) fn release(&self) -> Result<()> {
        if self.inherited() {
            drop(self.sweeper.lock().take());
            return Ok(());
        }
        if self.connections.fetch_sub(1, Ordering::SeqCst) == 1 {
            if let Some(s) = self.sweeper.lock().take() {
                s.stop();
            }
            self.storage.close()
        } else {
            Ok(())
        }
    }

    pub(crate) fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Replaces the fault plan of the file layer (tests).
    #[cfg(any(test, feature = "fault-injection"))]
    pub(crate) fn set_faults(&self, plan: FaultPlan) {
        *self.faults.lock() = plan;
    }

    /// A copy of the fault plan (tests).
    #[cfg(any(test, feature = "fault-injection"))]
    pub(crate) fn fault_plan(&self) -> FaultPlan {
        self.faults.lock().clone()
    }

    pub(crate) fn sweeper_config(&self) -> SweeperConfig {
        *self.sweeper_cfg.lock()
    }

    /// Changes sweeper settings and wakes the thread.
    pub(crate) fn set_sweeper_config(&self, cfg: SweeperConfig) {
        *self.sweeper_cfg.lock() = cfg;
        if let Some(s) = self.sweeper.lock().as_ref() {
            s.nudge();
        }
    }

    /// A strictly increasing access stamp (microseconds-ish) for LRU bookkeeping.
    fn next_stamp(&self) -> u64 {
        let now = u64::try_from(now_millis())
            .unwrap_or(0)
            .saturating_mul(1000);
        let mut cur = self.stamp.load(Ordering::Relaxed);
        loop {
            let next = now.max(cur + 1);
            match self
                .stamp
                .compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return next,
                Err(actual) => cur = actual,
            }
        }
    }

    // ---- writes ---------------------------------------------------------------------

    /// Starts a tracked write transaction.
    pub(crate) fn begin(&self, busy_timeout: Duration) -> Result<TrackedTxn> {
        Ok(TrackedTxn::new(self.storage.begin_write(busy_timeout)?))
    }

    /// Commits a tracked transaction and brings the cache and trackers up to date.
    pub(crate) fn finish(&self, t: TrackedTxn, sync: SyncMode) -> Result<()> {
        match t.commit_tracked(sync) {
            Ok(touched) => {
                self.after_commit(&touched);
                Ok(())
            }
            Err(e) => {
                self.trackers.lock().clear();
                Err(e)
            }
        }
    }

    /// Discards a tracked transaction. Nothing else needs undoing: the cache and the
    /// bounded-collection trackers only ever reflect committed state.
    pub(crate) fn abandon(&self, t: TrackedTxn) {
        drop(t);
    }

    /// Runs `f` in its own transaction and commits it.
    pub(crate) fn write<R>(
        &self,
        busy_timeout: Duration,
        sync: SyncMode,
        f: impl FnOnce(&mut dyn WriteTxn) -> Result<R>,
    ) -> Result<R> {
        let mut t = self.begin(busy_timeout)?;
        let r = f(&mut t)?;
        self.finish(t, sync)?;
        Ok(r)
    }

    /// Catches up with what other processes committed to the database and drops what they
    /// changed from the cache and the trackers (called before every operation).
    pub(crate) fn refresh(&self, busy_timeout: Duration) -> Result<()> {
        let Some(changes) = self.storage.refresh(busy_timeout)? else {
            return Ok(());
        };
        if changes.all {
            self.cache.invalidate_all();
            self.trackers.lock().clear();
            self.load_options(&*self.storage.read());
            return Ok(());
        }
        let mut touched = Touched::default();
        for (coll, key) in &changes.keys {
            touched.docs.entry(coll.clone()).or_default().push(key);
        }
        touched.tables = changes.tables.into_iter().collect();
        self.after_commit(&touched);
        Ok(())
    }

    fn after_commit(&self, touched: &Touched) {
        if touched.docs.is_empty() && touched.tables.is_empty() {
            return;
        }
        self.cache.invalidate(touched);
        // A snapshot only when something below reads one (most commits touch no table and
        // no bounded collection).
        let mut snap = None;
        if !touched.tables.is_empty() {
            let mut trackers = self.trackers.lock();
            for t in &touched.tables {
                trackers.remove(t);
            }
            drop(trackers);
            self.load_options(&**snap.get_or_insert_with(|| self.storage.read()));
        }
        let options = self.options.read();
        let mut trackers = self.trackers.lock();
        for (coll, keys) in &touched.docs {
            if !options.get(coll).is_some_and(|o| o.bound.is_bounded()) {
                continue;
            }
            let Some(tr) = trackers.get_mut(coll) else {
                continue;
            };
            let snap = snap.get_or_insert_with(|| self.storage.read());
            for key in keys.iter() {
                if snap.get(coll, key).is_some() {
                    tr.set(Bytes::copy_from_slice(key), self.next_stamp());
                } else {
                    tr.remove(key);
                }
            }
        }
    }

    // ---- collections ------------------------------------------------------------------

    fn load_options(&self, view: &dyn ReadView) {
        let mut map = ByName::default();
        for t in view.tables() {
            let o = CollOptions::parse(&t.options);
            self.cache.set_limits(&t.name, o.cache);
            map.insert(t.name, o);
        }
        *self.options.write() = map;
    }

    /// The options of a collection (defaults when it has none or does not exist).
    pub(crate) fn coll_options(&self, coll: &str) -> CollOptions {
        self.options.read().get(coll).copied().unwrap_or_default()
    }

    /// Notes a read of `key` in `coll` (bounded collections keep LRU order).
    pub(crate) fn touch(&self, coll: &str, key: &[u8]) {
        if !self.coll_options(coll).bound.is_bounded() {
            return;
        }
        let stamp = self.next_stamp();
        if let Some(tr) = self.trackers.lock().get_mut(coll) {
            tr.set(Bytes::copy_from_slice(key), stamp);
        }
    }

    /// Inside `t`, deletes least recently used documents of `coll` until it is within its
    /// bound again; `fresh` (the documents just written) are never chosen. Returns how many
    /// were deleted.
    pub(crate) fn enforce_bound(
        &self,
        t: &mut dyn WriteTxn,
        coll: &str,
        fresh: &[Bytes],
    ) -> Result<u64> {
        let bound = self.coll_options(coll).bound;
        if !bound.is_bounded() || !t.has_table(coll) {
            return Ok(0);
        }
        let samples = self.cache.config().max_samples;
        let mut trackers = self.trackers.lock();
        let tracker = trackers
            .entry(coll.to_owned())
            .or_insert_with(|| Tracker::load(&*self.storage.read(), coll));
        let mut deleted = 0;
        let mut gone: Vec<Bytes> = Vec::new();
        while bound.exceeded(t.count(coll), t.table_bytes(coll)) {
            let victim = tracker.sample_lru(samples, |k| {
                !fresh.iter().any(|f| &f[..] == k) && !gone.iter().any(|g| &g[..] == k)
            });
            let Some(victim) = victim else {
                if fresh.len() as u64 > bound.max_documents.unwrap_or(u64::MAX) {
                    return Err(Error::invalid(format!(
                        "collection '{coll}' is bounded to {} documents; this write alone adds {}",
                        bound.max_documents.unwrap_or(0),
                        fresh.len()
                    )));
                }
                return Err(Error::invalid(format!(
                    "the documents written exceed the bound of collection '{coll}' by themselves"
                )));
            };
            if t.delete(coll, &victim)? {
                deleted += 1;
            }
            gone.push(victim);
        }
        crate::cache::metrics::bump(&self.cache.metrics.bounded_evictions, deleted);
        Ok(deleted)
    }

    // ---- expiry -------------------------------------------------------------------------

    /// One active-expire cycle (see `sweeper`). Returns documents deleted.
    pub(crate) fn sweep_cycle(&self) -> Result<u64> {
        let cfg = self.sweeper_config();
        let started = Instant::now();
        let mut deleted = 0;
        loop {
            let now = now_millis();
            let round = self.write(Duration::ZERO, SyncMode::Full, |t| {
                crate::index::expiry::purge_round(t, now, cfg.sample)
            })?;
            deleted += round.deleted;
            let by_index = if crate::exec::expire::has_ttl_indexes(&*self.storage.read()) {
                self.write(Duration::ZERO, SyncMode::Full, |t| {
                    crate::exec::expire::ttl_round(t, now, cfg.sample)
                })?
            } else {
                0
            };
            deleted += by_index as u64;
            let busy_enough = (round.due as u64) * 100 > (cfg.sample as u64) * cfg.threshold_pct
                || by_index >= cfg.sample;
            if !busy_enough || started.elapsed() >= Duration::from_millis(cfg.budget_ms) {
                break;
            }
        }
        crate::cache::metrics::bump(&self.cache.metrics.sweeper_deleted, deleted);
        crate::cache::metrics::bump(&self.cache.metrics.sweeper_cycles, 1);
        Ok(deleted)
    }

    /// Deletes every expired document now (no time budget). Returns how many.
    pub(crate) fn purge_expired(&self, busy_timeout: Duration, sync: SyncMode) -> Result<u64> {
        let sample = self.sweeper_config().sample.max(64);
        let mut deleted = 0;
        loop {
            let now = now_millis();
            let round = self.write(busy_timeout, sync, |t| {
                crate::index::expiry::purge_round(t, now, sample)
            })?;
            deleted += round.deleted;
            if round.due < round.sampled || round.sampled == 0 {
                break;
            }
        }
        while crate::exec::expire::has_ttl_indexes(&*self.storage.read()) {
            let now = now_millis();
            let n = self.write(busy_timeout, sync, |t| {
                crate::exec::expire::ttl_round(t, now, sample)
            })?;
            deleted += n as u64;
            if n < sample {
                break;
            }
        }
        crate::cache::metrics::bump(&self.cache.metrics.purged, deleted);
        Ok(deleted)
    }

    /// The expiry part of `nexus_stats`.
    pub(crate) fn expiry_stats(&self) -> serde_json::Value {
        let m = &self.cache.metrics;
        let g = crate::cache::metrics::Metrics::get;
        let cfg = self.sweeper_config();
        let registered = self.storage.read().count(crate::index::expiry::TEMP_TABLE);
        serde_json::json!({
            "registered": registered,
            "sweeper": {
                "interval_ms": cfg.interval_ms,
                "sample": cfg.sample,
                "threshold_pct": cfg.threshold_pct,
                "budget_ms": cfg.budget_ms,
                "cycles": g(&m.sweeper_cycles),
                "expired_deleted": g(&m.sweeper_deleted),
            },
            "purged": g(&m.purged),
            "bounded_evictions": g(&m.bounded_evictions),
        })
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // Forget the registry entry of this engine. `try_lock`: the registry may be held by
        // this very thread (an `open_engine` dropping the last reference); the next open
        // prunes dead entries anyway.
        if let (Some(path), Some(mut reg)) = (&self.path, registry().try_lock()) {
            if reg.get(path).is_some_and(|w| w.strong_count() == 0) {
                reg.remove(path);
            }
        }
    }
}

type Registry = Mutex<HashMap<PathBuf, Weak<Engine>>>;

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Registry::default)
}

/// The paths of the file-backed databases open in this process (their registry keys:
/// absolute, symbolic links resolved), for callers that must not write onto their files.
pub(crate) fn open_database_paths() -> Vec<PathBuf> {
    registry()
        .lock()
        .iter()
        .filter(|(_, w)| w.strong_count() > 0)
        .map(|(path, _)| path.clone())
        .collect()
}

/// The registry key of a path: absolute, with symlinks of the directory resolved.
fn canonical(path: &Path) -> Result<PathBuf> {
    if let Ok(p) = std::fs::canonicalize(path) {
        return Ok(p);
    }
    let name = path
        .file_name()
        .ok_or_else(|| Error::invalid(format!("'{}' does not name a file", path.display())))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let dir = std::fs::canonicalize(dir).map_err(|e| Error::io(dir, e))?;
    Ok(dir.join(name))
}

/// Opens the storage backend for `path`: an existing file with the engine named in its
/// header (so a `memlog` database keeps opening as `memlog` whatever the options say), a new or
/// empty one with `cfg.storage`. The header is only read here; the backend checks it again.
fn open_storage(path: &Path, cfg: &EngineConfig, faults: &Faults) -> Result<Box<dyn Storage>> {
    let existing = if path.exists() {
        use std::io::Read;
        // Refuses a FIFO, socket, device or directory at once (a FIFO would block here).
        let f = crate::storage::file::open_regular(std::fs::OpenOptions::new().read(true), path)?;
        let mut buf = Vec::with_capacity(HEADER_LEN);
        f.take(HEADER_LEN as u64)
            .read_to_end(&mut buf)
            .map_err(|e| Error::io(path, e))?;
        if buf.is_empty() {
            None
        } else {
            Some(Header::decode(&buf, path)?.backend)
        }
    } else {
        None
    };
    let backend = existing.unwrap_or(cfg.storage);
    if backend == StorageEngine::MemLog && cfg.wasp.encryption.is_some() {
        return Err(Error::unsupported(
            "encryption at rest needs the wasp storage engine (this database or the 'storage' option is memlog)",
        ));
    }
    Ok(match backend {
        StorageEngine::MemLog => Box::new(MemLogStorage::open(
            path,
            cfg.create,
            cfg.read_only,
            cfg.busy_timeout,
            faults.clone(),
            cfg.recover,
        )?),
        StorageEngine::Wasp => Box::new(WaspStorage::open(
            path,
            cfg.create,
            cfg.read_only,
            cfg.busy_timeout,
            faults.clone(),
            crate::storage::wasp::WaspConfig {
                recover: cfg.recover,
                ..cfg.wasp.clone()
            },
        )?),
    })
}

/// Opens the engine for `path` (`None`: a private in-memory database), or joins the one this
/// process already has open for that file.
pub(crate) fn open_engine(path: Option<&Path>, cfg: &EngineConfig) -> Result<Arc<Engine>> {
    let faults = Faults::default();
    let key = match &cfg.wasp.encryption {
        Some(crate::storage::wasp::keyslots::Unlock::Key(k)) => Some(k),
        _ => None,
    };
    let Some(path) = path else {
        if key.is_some() {
            return Err(Error::unsupported(
                "an in-memory database is not encrypted (nothing of it reaches a file)",
            ));
        }
        let storage = Box::new(MemLogStorage::in_memory(faults.clone()));
        let engine = Engine::new(storage, None, faults, cfg);
        engine.start_sweeper()?;
        return Ok(engine);
    };
    let path_key = canonical(path)?;
    let mut reg = registry().lock();
    // Engines inherited across fork() are the parent's: a child opens its own.
    reg.retain(|_, w| w.upgrade().is_some_and(|e| !e.inherited()));
    if let Some(engine) = reg.get(&path_key).and_then(Weak::upgrade) {
        if engine.storage.read_only() && !cfg.read_only {
            drop(reg);
            return Err(Error::Busy(format!(
                "{} is already open read-only in this process; close those connections first",
                path_key.display()
            )));
        }
        // Each connection to an encrypted database shows a key of its own. Checked without
        // the registry: the check may wait for a rekey, and other paths' opens must not.
        drop(reg);
        engine.storage.admits(key, cfg.busy_timeout)?;
        return Ok(engine);
    }
    let storage = open_storage(&path_key, cfg, &faults)?;
    let engine = Engine::new(storage, Some(path_key.clone()), faults, cfg);
    engine.start_sweeper()?;
    reg.insert(path_key, Arc::downgrade(&engine));
    Ok(engine)
}
