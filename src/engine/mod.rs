//! The engine: one per database file per process ([`Engine`]), shared by every connection
//! that opens the same path (the registry in [`open_engine`]), owning the storage backend.
//! Connections (`Database`) sit on top; the storage layer (`storage`) sits beneath.
//!
//! Life cycle: `open_engine` -> (connections come and go) -> last connection closes ->
//! [`Engine::release`] runs the backend's clean shutdown (checkpoint, sync); the advisory lock
//! is released when the last reference drops.

use crate::error::{Error, Result};
use crate::storage::file::{FaultPlan, Faults};
use crate::storage::wal::WalStorage;
use crate::storage::Storage;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

/// What an engine is opened with (the part of the open options the engine owns).
#[derive(Debug, Clone)]
pub(crate) struct EngineConfig {
    pub create: bool,
    pub read_only: bool,
    pub busy_timeout: Duration,
}

/// One open database: its storage and who is using it.
pub(crate) struct Engine {
    pub storage: Box<dyn Storage>,
    pub path: Option<PathBuf>,
    connections: AtomicUsize,
    faults: Faults,
}

impl Engine {
    /// Registers a new connection.
    pub(crate) fn attach(&self) {
        self.connections.fetch_add(1, Ordering::SeqCst);
    }

    /// Unregisters a connection; the last one performs the clean shutdown.
    pub(crate) fn release(&self) -> Result<()> {
        if self.connections.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.storage.close()
        } else {
            Ok(())
        }
    }

    pub(crate) fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Replaces the fault plan of the file layer (tests).
    pub(crate) fn set_faults(&self, plan: FaultPlan) {
        *self.faults.lock() = plan;
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

/// Opens the engine for `path` (`None`: a private in-memory database), or joins the one this
/// process already has open for that file.
pub(crate) fn open_engine(path: Option<&Path>, cfg: &EngineConfig) -> Result<Arc<Engine>> {
    let faults: Faults = Arc::default();
    let Some(path) = path else {
        return Ok(Arc::new(Engine {
            storage: Box::new(WalStorage::in_memory(Arc::clone(&faults))),
            path: None,
            connections: AtomicUsize::new(0),
            faults,
        }));
    };
    let key = canonical(path)?;
    let mut reg = registry().lock();
    reg.retain(|_, w| w.strong_count() > 0);
    if let Some(engine) = reg.get(&key).and_then(Weak::upgrade) {
        if engine.storage.read_only() && !cfg.read_only {
            return Err(Error::Busy(format!(
                "{} is already open read-only in this process; close those connections first",
                key.display()
            )));
        }
        return Ok(engine);
    }
    let storage = WalStorage::open(
        &key,
        cfg.create,
        cfg.read_only,
        cfg.busy_timeout,
        Arc::clone(&faults),
    )?;
    let engine = Arc::new(Engine {
        storage: Box::new(storage),
        path: Some(key.clone()),
        connections: AtomicUsize::new(0),
        faults,
    });
    reg.insert(key, Arc::downgrade(&engine));
    Ok(engine)
}
