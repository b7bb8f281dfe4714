//! Group commit: many committers waiting for `fdatasync` share one call. The first waiter
//! becomes the leader, syncs everything written so far, and wakes the others; a committer
//! whose record was covered by a sync that started after it was written returns at once.
//!
//! States of [`GroupSync`]: `idle -> syncing [wait_durable leader] -> idle`; a failed sync
//! moves to `failed` for good (the engine is poisoned).

use super::file::SyncHandle;
use crate::error::{Error, Result};
use parking_lot::{Condvar, Mutex};

#[derive(Default)]
struct SyncState {
    written: u64,
    synced: u64,
    syncing: bool,
    failed: Option<String>,
    syncs: u64,
}

/// Tracks which log sequence numbers are written and which are durable.
#[derive(Default)]
pub(crate) struct GroupSync {
    state: Mutex<SyncState>,
    done: Condvar,
}

impl GroupSync {
    /// Records that everything up to `lsn` has been handed to the OS.
    pub(crate) fn written(&self, lsn: u64) {
        let mut s = self.state.lock();
        s.written = s.written.max(lsn);
    }

    /// Records that everything up to `lsn` is durable by other means (a checkpoint).
    pub(crate) fn synced(&self, lsn: u64) {
        let mut s = self.state.lock();
        s.written = s.written.max(lsn);
        s.synced = s.synced.max(lsn);
        self.done.notify_all();
    }

    /// Number of `fdatasync` calls made by leaders.
    pub(crate) fn sync_count(&self) -> u64 {
        self.state.lock().syncs
    }

    /// The end of every commit whose record `lsn` was appended: under `sync=full`, waits
    /// until it is durable (see [`GroupSync::wait_durable`]) and, when the sync fails, calls
    /// `poison` before returning the error; other modes return at once.
    pub(crate) fn finish_commit(
        &self,
        lsn: u64,
        sync: super::SyncMode,
        handle: impl Fn() -> std::sync::Arc<SyncHandle>,
        poison: impl FnOnce(&Error),
    ) -> Result<()> {
        if sync != super::SyncMode::Full {
            return Ok(());
        }
        self.wait_durable(lsn, handle).inspect_err(poison)
    }

    /// Returns once everything up to `lsn` is on stable storage; `handle` gives the file to
    /// sync when this caller becomes the leader.
    pub(crate) fn wait_durable(
        &self,
        lsn: u64,
        handle: impl Fn() -> std::sync::Arc<SyncHandle>,
    ) -> Result<()> {
        let mut s = self.state.lock();
        loop {
            if s.synced >= lsn {
                return Ok(());
            }
            if let Some(e) = &s.failed {
                return Err(Error::PreviousIo(e.clone()));
            }
            if s.syncing {
                self.done.wait(&mut s);
                continue;
            }
            s.syncing = true;
            let target = s.written;
            drop(s);
            let h = handle();
            let r = h.sync();
            s = self.state.lock();
            s.syncing = false;
            s.syncs += 1;
            match r {
                Ok(()) => s.synced = s.synced.max(target),
                Err(e) => {
                    s.failed = Some(e.to_string());
                    self.done.notify_all();
                    return Err(e);
                }
            }
            self.done.notify_all();
        }
    }
}
