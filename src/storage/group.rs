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

/// Which state readers see, next to the latest one writers build on. A commit under
/// `sync=full` releases the writer gate before its group's `fdatasync` (so that the next
/// committers can join it), and its state is the next writer's base at once; readers must not
/// see it before it is durable, or a reader could act on a write that a power cut then undoes
/// (and whose committer is told it failed). Every other change of the state (commits in the
/// other sync modes, checkpoints, changes read from other processes) is visible at once.
///
/// Kept beside the engine's `RwLock<Arc<S>>` of the latest state, locked after it. Counters
/// number the latest state's changes: `latest` the newest, `visible` the newest readers may
/// see; while `latest > visible`, `older` is the state readers see.
pub(crate) struct Visibility<S> {
    latest: u64,
    visible: u64,
    older: Option<std::sync::Arc<S>>,
}

impl<S> Default for Visibility<S> {
    fn default() -> Self {
        Self {
            latest: 0,
            visible: 0,
            older: None,
        }
    }
}

impl<S> Visibility<S> {
    /// The latest state changed (the state lock held for writing) and readers may see it.
    pub(crate) fn show_all(&mut self) {
        self.latest += 1;
        self.visible = self.latest;
        self.older = None;
    }

    /// The latest state is about to change (the state lock held for writing) from `prev` to a
    /// state readers see only once durable: returns that state's ticket for [`Self::show`].
    pub(crate) fn hold(&mut self, prev: &std::sync::Arc<S>) -> u64 {
        if self.latest == self.visible {
            self.older = Some(std::sync::Arc::clone(prev));
        }
        self.latest += 1;
        self.latest
    }

    /// The state of `ticket` is durable: readers see it (unless they see a later one already).
    pub(crate) fn show(&mut self, ticket: u64, state: &std::sync::Arc<S>) {
        if ticket > self.visible {
            self.visible = ticket;
            self.older = (self.latest > ticket).then(|| std::sync::Arc::clone(state));
        }
    }

    /// The state a reader sees, given the latest (the state lock held).
    pub(crate) fn pick(&self, latest: &std::sync::Arc<S>) -> std::sync::Arc<S> {
        match &self.older {
            Some(older) if self.latest > self.visible => std::sync::Arc::clone(older),
            _ => std::sync::Arc::clone(latest),
        }
    }
}

#[cfg(test)]
mod visibility_tests {
    use super::Visibility;
    use std::sync::Arc;

    #[test]
    fn held_states_show_in_order_and_never_go_back() {
        let mut v = Visibility::default();
        let s0 = Arc::new(0);
        assert_eq!(*v.pick(&s0), 0);
        let t1 = v.hold(&s0);
        let s1 = Arc::new(1);
        assert_eq!(*v.pick(&s1), 0, "a held commit is not visible");
        let t2 = v.hold(&s1);
        let s2 = Arc::new(2);
        assert_eq!(*v.pick(&s2), 0);
        v.show(t2, &s2);
        assert_eq!(
            *v.pick(&s2),
            2,
            "the later commit's sync covers the earlier one"
        );
        v.show(t1, &s1);
        assert_eq!(*v.pick(&s2), 2, "never back to an older state");
        let t3 = v.hold(&s2);
        let s3 = Arc::new(3);
        let t4 = v.hold(&s3);
        let s4 = Arc::new(4);
        v.show(t3, &s3);
        assert_eq!(
            *v.pick(&s4),
            3,
            "durable up to the third, the fourth still held"
        );
        v.show_all();
        let s5 = Arc::new(5);
        assert_eq!(*v.pick(&s5), 5, "an immediate change shows everything");
        v.show(t4, &s4);
        assert_eq!(*v.pick(&s5), 5);
    }
}
