//! The only place that touches the OS for database files: opening, the advisory lock,
//! appending, syncing, truncating, renaming. Every write and sync goes through [`LogFile`],
//! which consults a [`FaultPlan`] so tests can inject torn writes and failed syncs.

use crate::error::{Error, Result};
use parking_lot::Mutex;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Faults to inject into the file layer (tests only; all off by default).
#[derive(Debug, Default, Clone)]
pub struct FaultPlan {
    /// After this many more bytes are written, writes stop short and fail (a torn write).
    pub fail_writes_after_bytes: Option<u64>,
    /// Every `sync` fails.
    pub fail_syncs: bool,
    /// Every `sync` first sleeps this long (a slow disk), to make group commit observable.
    pub sync_delay: Option<std::time::Duration>,
}

/// Applies the sync-related faults of `faults` for a sync of `path`.
fn sync_faults(faults: &Faults, path: &Path) -> Result<()> {
    let (fail, delay) = {
        let plan = faults.lock();
        (plan.fail_syncs, plan.sync_delay)
    };
    if let Some(d) = delay {
        std::thread::sleep(d);
    }
    if fail {
        return Err(Error::io(
            path,
            std::io::Error::other("injected fault: sync failed"),
        ));
    }
    Ok(())
}

/// Shared, changeable fault plan.
pub(crate) type Faults = Arc<Mutex<FaultPlan>>;

/// An open file that is written by appending, with fault injection.
pub(crate) struct LogFile {
    file: File,
    path: PathBuf,
    len: u64,
    faults: Faults,
}

impl LogFile {
    /// Opens (creating when asked) `path` for reading and appending.
    pub(crate) fn open(path: &Path, create: bool, faults: Faults) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        Ok(Self {
            file,
            path: path.to_owned(),
            len,
            faults,
        })
    }

    /// Reads the whole file.
    pub(crate) fn read_all(&mut self) -> Result<Vec<u8>> {
        let mut buf = Vec::with_capacity(usize::try_from(self.len).unwrap_or(0));
        self.file
            .seek(SeekFrom::Start(0))
            .and_then(|_| self.file.read_to_end(&mut buf))
            .map_err(|e| Error::io(&self.path, e))?;
        Ok(buf)
    }

    /// Appends `bytes` at the end of the file.
    pub(crate) fn append(&mut self, bytes: &[u8]) -> Result<()> {
        let allowed = {
            let mut plan = self.faults.lock();
            match plan.fail_writes_after_bytes.as_mut() {
                None => bytes.len(),
                Some(left) => {
                    let n = usize::try_from(*left)
                        .unwrap_or(usize::MAX)
                        .min(bytes.len());
                    *left -= n as u64;
                    n
                }
            }
        };
        let r = self
            .file
            .seek(SeekFrom::Start(self.len))
            .and_then(|_| self.file.write_all(&bytes[..allowed]));
        if let Err(e) = r {
            return Err(Error::io(&self.path, e));
        }
        self.len += allowed as u64;
        if allowed < bytes.len() {
            return Err(Error::io(
                &self.path,
                std::io::Error::other("injected fault: torn write"),
            ));
        }
        Ok(())
    }

    /// `fdatasync`.
    pub(crate) fn sync(&self) -> Result<()> {
        sync_faults(&self.faults, &self.path)?;
        self.file.sync_data().map_err(|e| Error::io(&self.path, e))
    }

    /// Cuts the file to `len` bytes and syncs.
    pub(crate) fn truncate(&mut self, len: u64) -> Result<()> {
        self.file
            .set_len(len)
            .and_then(|_| self.file.sync_all())
            .map_err(|e| Error::io(&self.path, e))?;
        self.len = len;
        Ok(())
    }

    /// Current length in bytes.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// A second handle to the same open file, for syncing outside the writer's lock.
    pub(crate) fn sync_handle(&self) -> Result<SyncHandle> {
        Ok(SyncHandle {
            file: self
                .file
                .try_clone()
                .map_err(|e| Error::io(&self.path, e))?,
            path: self.path.clone(),
            faults: Arc::clone(&self.faults),
        })
    }
}

/// A handle used only to `fdatasync` a log file (group commit leader).
pub(crate) struct SyncHandle {
    file: File,
    path: PathBuf,
    faults: Faults,
}

impl SyncHandle {
    pub(crate) fn sync(&self) -> Result<()> {
        sync_faults(&self.faults, &self.path)?;
        self.file.sync_data().map_err(|e| Error::io(&self.path, e))
    }
}

/// Renames `from` to `to` and syncs the directory so the rename itself is durable.
pub(crate) fn rename_durable(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to).map_err(|e| Error::io(to, e))?;
    sync_dir(to)
}

/// Syncs the directory holding `path`.
pub(crate) fn sync_dir(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    #[cfg(unix)]
    {
        let d = File::open(dir).map_err(|e| Error::io(dir, e))?;
        d.sync_all().map_err(|e| Error::io(dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// The main database file, opened and locked for the life of the engine. The advisory lock
/// (`flock`) is exclusive for writers and shared for read-only connections, so a second
/// process gets `Busy` instead of corrupting the file.
pub(crate) struct DbFile {
    pub(crate) file: File,
    pub(crate) path: PathBuf,
}

impl DbFile {
    /// Opens `path`, creating it when `create` is set, and takes the lock, retrying until
    /// `busy_timeout` has passed.
    pub(crate) fn open_locked(
        path: &Path,
        create: bool,
        read_only: bool,
        busy_timeout: Duration,
    ) -> Result<Self> {
        let exists = path.exists();
        if !exists && (!create || read_only) {
            return Err(Error::NotFound(format!(
                "database file {} does not exist (and option 'create' is {})",
                path.display(),
                if read_only {
                    "ignored when read_only"
                } else {
                    "false"
                }
            )));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(!read_only)
            .create(create && !read_only)
            .truncate(false)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        let deadline = Instant::now() + busy_timeout;
        loop {
            let r = if read_only {
                file.try_lock_shared()
            } else {
                file.try_lock()
            };
            match r {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) => {
                    if Instant::now() >= deadline {
                        return Err(Error::Busy(format!(
                            "database {} is locked by another process",
                            path.display()
                        )));
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(path, e)),
            }
        }
        Ok(Self {
            file,
            path: path.to_owned(),
        })
    }

    /// Reads the first `n` bytes (fewer if the file is shorter).
    pub(crate) fn read_prefix(&mut self, n: usize) -> Result<Vec<u8>> {
        let mut buf = Vec::with_capacity(n);
        (&self.file)
            .take(n as u64)
            .read_to_end(&mut buf)
            .map_err(|e| Error::io(&self.path, e))?;
        Ok(buf)
    }

    /// Length of the file.
    pub(crate) fn len(&self) -> Result<u64> {
        Ok(self
            .file
            .metadata()
            .map_err(|e| Error::io(&self.path, e))?
            .len())
    }

    /// Writes `bytes` at offset 0 and syncs (used once, to create the header).
    pub(crate) fn write_header(&mut self, bytes: &[u8]) -> Result<()> {
        self.file
            .seek(SeekFrom::Start(0))
            .and_then(|_| self.file.write_all(bytes))
            .and_then(|_| self.file.sync_all())
            .map_err(|e| Error::io(&self.path, e))?;
        sync_dir(&self.path)
    }
}
