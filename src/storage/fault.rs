//! Fault injection for the file layer: torn writes, failed or slow syncs, a crash at the
//! N-th I/O, and the loss of everything written since the last sync (power loss). Durability
//! tests drive it through a [`FaultPlan`]; `file.rs` consults the hooks here before each
//! write and sync.
//!
//! It exists only in unit tests and in builds with the `fault-injection` cargo feature. The
//! shipped library (default features) compiles the hooks to nothing: [`Faults`] is an empty
//! type and no lock is taken on any write.
//!
//! Fault states: `healthy -> crashed [a hook finds the countdown at 0]`; a crashed plan fails
//! every later write and sync, like a dead process would never issue them.
//! [`FaultPlan::simulate_power_loss`] then undoes the unsynced writes it journaled.

#[cfg(any(test, feature = "fault-injection"))]
pub use enabled::*;

#[cfg(not(any(test, feature = "fault-injection")))]
pub(crate) use disabled::*;

#[cfg(any(test, feature = "fault-injection"))]
mod enabled {
    use crate::error::{Error, Result};
    use parking_lot::Mutex;
    use std::fs::{File, OpenOptions};
    use std::path::{Path, PathBuf};
    use std::sync::Arc;

    /// Shared, changeable fault plan.
    pub(crate) type Faults = Arc<Mutex<FaultPlan>>;

    /// Faults to inject into the file layer (tests only; all off by default).
    #[derive(Debug, Default, Clone)]
    pub struct FaultPlan {
        /// After this many more bytes are written, writes stop short and fail (a torn write).
        pub fail_writes_after_bytes: Option<u64>,
        /// Every `sync` fails.
        pub fail_syncs: bool,
        /// Every `sync` first sleeps this long (a slow disk), to make group commit observable.
        pub sync_delay: Option<std::time::Duration>,
        /// Counts down on every write and sync; the operation that finds it at 0 fails (a write
        /// is torn: only its first half reaches the file) and the plan becomes `crashed`.
        pub crash_after_ios: Option<u64>,
        /// Set once `crash_after_ios` fired: every later write and sync fails.
        pub crashed: bool,
        /// Journal every write not yet covered by a sync, so that
        /// [`FaultPlan::simulate_power_loss`] can drop it.
        pub track_unsynced: bool,
        /// The journal: (file, offset, previous bytes there, previous file length), oldest first.
        pub unsynced: Vec<(PathBuf, u64, Vec<u8>, u64)>,
    }

    impl FaultPlan {
        /// Undoes, newest first, every journaled write that no sync covered: the files are left as
        /// a power cut would leave them (the strictest case: nothing unsynced survives). Call it
        /// after the database is closed or dropped.
        pub fn simulate_power_loss(&mut self) -> std::io::Result<()> {
            for (path, offset, old, old_len) in self.unsynced.drain(..).rev() {
                let f = match OpenOptions::new().write(true).open(&path) {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
                crate::storage::file::write_at(&f, offset, &old)?;
                f.set_len(old_len)?;
                f.sync_all()?;
            }
            Ok(())
        }
    }

    /// Consults the plan before a write of `len` bytes at `offset` of `path` (contents readable
    /// through `file`, current length from `file_len`, asked only when needed): returns how many
    /// bytes may be written, and journals the old contents when unsynced writes are tracked.
    pub(crate) fn before_write(
        faults: &Faults,
        path: &Path,
        file: &File,
        offset: u64,
        len: usize,
        file_len: &dyn Fn() -> Result<u64>,
    ) -> Result<usize> {
        let mut plan = faults.lock();
        if plan.crashed {
            return Err(crashed(path));
        }
        let mut allowed = len;
        if let Some(left) = plan.fail_writes_after_bytes.as_mut() {
            let n = usize::try_from(*left).unwrap_or(usize::MAX).min(len);
            *left -= n as u64;
            allowed = n;
        }
        if let Some(left) = plan.crash_after_ios.as_mut() {
            if *left == 0 {
                plan.crashed = true;
                allowed = allowed.min(len / 2);
            } else {
                *left -= 1;
            }
        }
        if plan.track_unsynced && allowed > 0 {
            let file_len = file_len()?;
            let end = offset
                .saturating_add(allowed as u64)
                .min(file_len.max(offset));
            let mut old = vec![0u8; usize::try_from(end.saturating_sub(offset)).unwrap_or(0)];
            let n = crate::storage::file::read_at(file, offset, &mut old)
                .map_err(|e| Error::io(path, e))?;
            old.truncate(n);
            plan.unsynced.push((path.to_owned(), offset, old, file_len));
        }
        Ok(allowed)
    }

    /// Applies the sync-related faults of `faults` for a sync of `path`.
    pub(crate) fn before_sync(faults: &Faults, path: &Path) -> Result<()> {
        let (fail, delay) = {
            let mut plan = faults.lock();
            let mut fail = plan.fail_syncs || plan.crashed;
            if let Some(left) = plan.crash_after_ios.as_mut() {
                if *left == 0 {
                    plan.crashed = true;
                    fail = true;
                } else {
                    *left -= 1;
                }
            }
            (fail, plan.sync_delay)
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

    /// Records that `from` was durably renamed over `to`: the replaced file's unsynced writes are
    /// gone with it, and `from`'s journal entries now belong to `to`.
    pub(crate) fn note_rename(faults: &Faults, from: &Path, to: &Path) {
        let mut plan = faults.lock();
        if plan.track_unsynced {
            plan.unsynced.retain(|(p, ..)| p != to);
            for e in plan.unsynced.iter_mut() {
                if e.0 == from {
                    e.0 = to.to_owned();
                }
            }
        }
    }

    /// Records that `path` is synced: its journaled writes can no longer be lost.
    pub(crate) fn synced(faults: &Faults, path: &Path) {
        let mut plan = faults.lock();
        if plan.track_unsynced {
            plan.unsynced.retain(|(p, ..)| p != path);
        }
    }

    /// Fails once the plan has crashed (a dead process issues no more I/O).
    pub(crate) fn check_alive(faults: &Faults, path: &Path) -> Result<()> {
        if faults.lock().crashed {
            return Err(crashed(path));
        }
        Ok(())
    }

    /// The error of any I/O after the plan has crashed.
    fn crashed(path: &Path) -> Error {
        Error::io(
            path,
            std::io::Error::other("injected fault: the process has crashed"),
        )
    }
}

/// The hooks of the shipped library: nothing to consult, nothing to record.
#[cfg(not(any(test, feature = "fault-injection")))]
mod disabled {
    use crate::error::Result;
    use std::fs::File;
    use std::path::Path;

    /// No fault plan: an empty type, so the file layer carries nothing and locks nothing.
    #[derive(Debug, Default, Clone)]
    pub(crate) struct Faults(());

    /// Every write goes through whole.
    #[inline(always)]
    pub(crate) fn before_write(
        _: &Faults,
        _: &Path,
        _: &File,
        _: u64,
        len: usize,
        _: &dyn Fn() -> Result<u64>,
    ) -> Result<usize> {
        Ok(len)
    }

    #[inline(always)]
    pub(crate) fn before_sync(_: &Faults, _: &Path) -> Result<()> {
        Ok(())
    }

    #[inline(always)]
    pub(crate) fn synced(_: &Faults, _: &Path) {}

    #[inline(always)]
    pub(crate) fn note_rename(_: &Faults, _: &Path, _: &Path) {}

    #[inline(always)]
    pub(crate) fn check_alive(_: &Faults, _: &Path) -> Result<()> {
        Ok(())
    }
}
