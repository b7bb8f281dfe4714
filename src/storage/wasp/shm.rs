//! The file every process with a WASP database open shares, `NAME.wasp-shm` ([`ShmFile`]):
//! a few counters that say what the newest commit and checkpoint are, one reader slot per
//! process, and the byte-range locks that make one writer at a time across processes. The
//! layout and the protocol are in `docs/FORMAT.md` ("Several processes").
//!
//! Locks are open-file-description locks (`F_OFD_SETLK`, Linux): they belong to this open
//! file, not to the process, so closing some other descriptor of the file (as classic POSIX
//! locks would) never drops them, and the kernel releases them when the process dies. That
//! is what makes a SIGKILLed writer or reader harmless to the others.
//!
//! The counters live in a shared memory map of the file and are read and written as atomics:
//! a reader learns whether anything changed with two loads, no system call.

use crate::error::{Error, Result};
use memmap2::{MmapOptions, MmapRaw};
use std::fs::{File, OpenOptions};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Bytes of the shared file.
const SHM_LEN: usize = 4096;
const MAGIC: u64 = u64::from_le_bytes(*b"NXSHM001");
/// Offsets of the counters (each a u64).
const OFF_MAGIC: usize = 0;
const OFF_GEN: usize = 8;
const OFF_LOG_END: usize = 16;
const OFF_LAST_LSN: usize = 24;
/// The write lock: u32 owner (slot + 1; 0 free) and u32 number of sleeping waiters.
const OFF_WRITE_OWNER: usize = 32;
/// The owner word of a lock whose holder's slot was taken over by a new process.
const DEAD_OWNER: u32 = u32::MAX;
const OFF_LOG_BASE: usize = 40;
const OFF_SALT: usize = 48;
/// The reader slots: `SLOTS` of 16 bytes (min pinned generation, pid) from `OFF_SLOTS`.
const OFF_SLOTS: usize = 128;
pub(crate) const SLOTS: usize = 240;

/// Lock bytes (locked ranges of one byte; they need not lie inside the file).
const LOCK_OPEN: i64 = 1;
const LOCK_SLOT0: i64 = 16;

/// Where the shared file of the database whose log is `log_path` lives.
pub(crate) fn shm_path_for(log_path: &Path) -> PathBuf {
    let mut s = log_path.as_os_str().to_owned();
    s.push("-shm");
    PathBuf::from(s)
}

/// What [`ShmFile::open`] found.
pub(crate) enum Joined {
    /// No other process has the database open: the caller recovers and then calls
    /// [`ShmFile::publish_open`] (which lets the others in).
    Alone,
    /// Others have it open; the counters are theirs and valid.
    Others,
}

/// The shared file of one open WASP store, with this process's reader slot.
pub(crate) struct ShmFile {
    file: File,
    path: PathBuf,
    map: MmapRaw,
    slot: usize,
}

// SAFETY-relevant note: the map is only accessed through `AtomicU64`s at 8-byte aligned
// offsets inside it (see `word`); other processes change those words concurrently, which is
// what atomics are for.

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Shared,
    Exclusive,
    Unlock,
}

/// The `flock` record of a lock of type `l_type` (`F_RDLCK`...) on byte `start`.
// The F_* lock types and SEEK_SET are small constants the C struct holds as shorts.
#[allow(clippy::cast_possible_truncation)]
fn one_byte(l_type: libc::c_int, start: i64) -> libc::flock {
    // SAFETY: `flock` is a plain C struct; all-zero is a valid value of it.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = l_type as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = start;
    fl.l_len = 1;
    fl
}

fn lock_op(file: &File, start: i64, kind: Kind) -> std::io::Result<bool> {
    let l_type = match kind {
        Kind::Shared => libc::F_RDLCK,
        Kind::Exclusive => libc::F_WRLCK,
        Kind::Unlock => libc::F_UNLCK,
    };
    let mut fl = one_byte(l_type, start);
    loop {
        // SAFETY: a valid descriptor and a pointer to an initialised `flock`.
        let r = unsafe { libc::fcntl(file.as_raw_fd(), OFD_SETLK, &mut fl) };
        if r == 0 {
            return Ok(true);
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN | libc::EACCES) => return Ok(false),
            _ => return Err(e),
        }
    }
}

/// Whether another open file holds a lock on byte `start` that conflicts with an exclusive one.
fn lock_held_elsewhere(file: &File, start: i64) -> std::io::Result<bool> {
    let mut fl = one_byte(libc::F_WRLCK, start);
    // SAFETY: as in `lock_op`.
    let r = unsafe { libc::fcntl(file.as_raw_fd(), OFD_GETLK, &mut fl) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(i32::from(fl.l_type) != libc::F_UNLCK)
}

#[cfg(target_os = "linux")]
const OFD_SETLK: libc::c_int = libc::F_OFD_SETLK;
#[cfg(target_os = "linux")]
const OFD_GETLK: libc::c_int = libc::F_OFD_GETLK;
// Elsewhere classic POSIX locks: per process, which this module tolerates because it opens
// the shared file once per store and never closes another descriptor of it while open.
#[cfg(not(target_os = "linux"))]
const OFD_SETLK: libc::c_int = libc::F_SETLK;
#[cfg(not(target_os = "linux"))]
const OFD_GETLK: libc::c_int = libc::F_GETLK;

/// Sleeps until `word` no longer holds `expected` (or `nap` passed, or spuriously).
#[cfg(target_os = "linux")]
fn futex_wait(word: &AtomicU32, expected: u32, nap: Duration) {
    let ts = libc::timespec {
        tv_sec: libc::time_t::try_from(nap.as_secs()).unwrap_or(1),
        tv_nsec: libc::c_long::from(nap.subsec_nanos()),
    };
    // SAFETY: `word` is a live, aligned u32 in a shared mapping; a shared (not private)
    // futex because other processes wait on the same physical word.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
            std::ptr::null::<u32>(),
            0,
        );
    }
}

/// Wakes one process sleeping in [`futex_wait`] on `word`.
#[cfg(target_os = "linux")]
fn futex_wake(word: &AtomicU32) {
    // SAFETY: as in `futex_wait`.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, 1);
    }
}

#[cfg(not(target_os = "linux"))]
fn futex_wait(_word: &AtomicU32, _expected: u32, nap: Duration) {
    std::thread::sleep(nap.min(Duration::from_millis(1)));
}

#[cfg(not(target_os = "linux"))]
fn futex_wake(_word: &AtomicU32) {}

/// Sleeps a little longer each time, up to 5 ms, while waiting for a lock.
fn backoff(round: &mut u32) {
    *round += 1;
    let us = (50u64 << (*round).min(7)).min(5000);
    std::thread::sleep(Duration::from_micros(us));
}

impl ShmFile {
    /// Opens (creating) the shared file, takes a reader slot and the open lock: exclusive
    /// when no other process has the database open ([`Joined::Alone`]; kept until
    /// [`ShmFile::publish_open`]), shared otherwise. Waits up to `busy` for a process that is
    /// recovering the database.
    pub(crate) fn open(path: &Path, busy: Duration) -> Result<(Self, Joined)> {
        let io = |e| Error::io(path, e);
        let file = crate::storage::file::open_regular(
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false),
            path,
        )
        .map_err(|e| match e {
            Error::Io { .. } => Error::io(
                path,
                std::io::Error::other(format!(
                    "{e}; the processes that open a database share this file beside it, so \
                     even a read_only connection must be able to create and write it"
                )),
            ),
            other => other,
        })?;
        if file.metadata().map_err(io)?.len() < SHM_LEN as u64 {
            // Growing never loses a counter another process wrote: set_len only extends.
            file.set_len(SHM_LEN as u64).map_err(io)?;
        }
        let map = MmapOptions::new().len(SHM_LEN).map_raw(&file).map_err(io)?;
        let mut shm = Self {
            file,
            path: path.to_owned(),
            map,
            slot: usize::MAX,
        };
        let deadline = Instant::now() + busy;
        let mut round = 0;
        let joined = loop {
            if lock_op(&shm.file, LOCK_OPEN, Kind::Exclusive).map_err(io)? {
                break Joined::Alone;
            }
            if lock_op(&shm.file, LOCK_OPEN, Kind::Shared).map_err(io)? {
                if shm.word(OFF_MAGIC).load(Ordering::Acquire) == MAGIC {
                    break Joined::Others;
                }
                // The process that had it alone died before publishing: try again.
                lock_op(&shm.file, LOCK_OPEN, Kind::Unlock).map_err(io)?;
            }
            if Instant::now() >= deadline {
                return Err(Error::Busy(format!(
                    "{}: another process is opening or recovering the database (waited {} ms)",
                    path.display(),
                    busy.as_millis()
                )));
            }
            backoff(&mut round);
        };
        if matches!(joined, Joined::Alone) {
            // Counters of processes that are gone: start afresh.
            shm.word(OFF_MAGIC).store(0, Ordering::Release);
            for i in 0..SLOTS {
                shm.slot_word(i).store(0, Ordering::Relaxed);
            }
            shm.word(OFF_WRITE_OWNER).store(0, Ordering::Relaxed);
        }
        shm.slot = shm.claim_slot()?;
        Ok((shm, joined))
    }

    /// Takes the first reader slot no live process holds.
    fn claim_slot(&self) -> Result<usize> {
        for i in 0..SLOTS {
            let start = LOCK_SLOT0 + i as i64;
            if lock_op(&self.file, start, Kind::Exclusive).map_err(|e| Error::io(&self.path, e))? {
                self.slot_word(i).store(0, Ordering::SeqCst);
                // The slot's last owner died holding the write lock: say so, or the next
                // writer would take this live process for the holder.
                let _ = self.owner().compare_exchange(
                    u32::try_from(i + 1).unwrap_or(0),
                    DEAD_OWNER,
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                );
                self.word(OFF_SLOTS + 16 * i + 8)
                    .store(u64::from(std::process::id()), Ordering::Relaxed);
                return Ok(i);
            }
        }
        Err(Error::Busy(format!(
            "{}: {SLOTS} processes have this database open; no reader slot is free",
            self.path.display()
        )))
    }

    /// The process that found the database alone has recovered it: publishes the counters
    /// and lets other processes open it.
    pub(crate) fn publish_open(
        &self,
        salt: u32,
        gen: u64,
        log_base: u64,
        log_end: u64,
        last_lsn: u64,
    ) {
        self.word(OFF_SALT).store(u64::from(salt), Ordering::SeqCst);
        self.word(OFF_GEN).store(gen, Ordering::SeqCst);
        self.word(OFF_LOG_BASE).store(log_base, Ordering::SeqCst);
        self.word(OFF_LOG_END).store(log_end, Ordering::SeqCst);
        self.word(OFF_LAST_LSN).store(last_lsn, Ordering::SeqCst);
        self.word(OFF_MAGIC).store(MAGIC, Ordering::SeqCst);
        // Downgrading an OFD lock is atomic: nobody can take it exclusively in between.
        let _ = lock_op(&self.file, LOCK_OPEN, Kind::Shared);
    }

    fn word(&self, off: usize) -> &AtomicU64 {
        debug_assert!(off.is_multiple_of(8) && off + 8 <= SHM_LEN);
        // SAFETY: the map is SHM_LEN bytes, page aligned, and lives as long as `self`; `off`
        // is a multiple of 8 inside it; the memory is only ever accessed as atomics.
        unsafe { &*self.map.as_ptr().add(off).cast::<AtomicU64>() }
    }

    fn slot_word(&self, i: usize) -> &AtomicU64 {
        self.word(OFF_SLOTS + 16 * i)
    }

    /// The log salt of the database the processes that have this file open share.
    pub(crate) fn salt(&self) -> u32 {
        u32::try_from(self.word(OFF_SALT).load(Ordering::SeqCst)).unwrap_or(0)
    }

    /// The current manifest generation (published by checkpoints).
    pub(crate) fn gen(&self) -> u64 {
        self.word(OFF_GEN).load(Ordering::SeqCst)
    }

    /// Bytes of the current log that hold committed records.
    pub(crate) fn log_end(&self) -> u64 {
        self.word(OFF_LOG_END).load(Ordering::SeqCst)
    }

    /// `base_lsn` of the current log.
    pub(crate) fn log_base(&self) -> u64 {
        self.word(OFF_LOG_BASE).load(Ordering::SeqCst)
    }

    /// LSN of the newest committed record.
    pub(crate) fn last_lsn(&self) -> u64 {
        self.word(OFF_LAST_LSN).load(Ordering::SeqCst)
    }

    /// Publishes a commit (holding the write lock): its record ends the log at `log_end`.
    pub(crate) fn publish_commit(&self, log_end: u64, lsn: u64) {
        self.word(OFF_LAST_LSN).store(lsn, Ordering::SeqCst);
        self.word(OFF_LOG_END).store(log_end, Ordering::SeqCst);
    }

    /// Publishes a new manifest generation and the log that goes with it (holding the write
    /// lock). The log fields are stored first: a reader that sees the new generation also
    /// sees its log.
    pub(crate) fn publish_gen(&self, gen: u64, log_base: u64, log_end: u64, last_lsn: u64) {
        self.word(OFF_LOG_BASE).store(log_base, Ordering::SeqCst);
        self.word(OFF_LOG_END).store(log_end, Ordering::SeqCst);
        self.word(OFF_LAST_LSN).store(last_lsn, Ordering::SeqCst);
        self.word(OFF_GEN).store(gen, Ordering::SeqCst);
    }

    /// This process's slot: the oldest generation any of its snapshots reads (0: none).
    pub(crate) fn set_slot(&self, gen: u64) {
        self.slot_word(self.slot).store(gen, Ordering::SeqCst);
    }

    /// The oldest generation a snapshot of another live process reads (`u64::MAX`: none).
    /// A slot whose lock nobody holds belongs to a process that died: ignored.
    pub(crate) fn min_other_gen(&self) -> u64 {
        let mut min = u64::MAX;
        for i in 0..SLOTS {
            if i == self.slot {
                continue;
            }
            let g = self.slot_word(i).load(Ordering::SeqCst);
            if g == 0 || g >= min {
                continue;
            }
            // An error asking counts as alive: reusing too little is safe.
            if lock_held_elsewhere(&self.file, LOCK_SLOT0 + i as i64).unwrap_or(true) {
                min = g;
            }
        }
        min
    }

    /// The write lock's word: 0 when free, the holder's slot number + 1, or [`DEAD_OWNER`].
    fn owner(&self) -> &AtomicU32 {
        self.word32(OFF_WRITE_OWNER)
    }

    /// How many processes sleep waiting for the write lock (the holder wakes one).
    fn waiters(&self) -> &AtomicU32 {
        self.word32(OFF_WRITE_OWNER + 4)
    }

    fn word32(&self, off: usize) -> &AtomicU32 {
        debug_assert!(off.is_multiple_of(4) && off + 4 <= SHM_LEN);
        // SAFETY: as in `word`, for a 4-byte aligned offset.
        unsafe { &*self.map.as_ptr().add(off).cast::<AtomicU32>() }
    }

    /// Whether the process owning slot `i` is alive (holds the slot's lock).
    fn slot_alive(&self, i: usize) -> bool {
        // An error asking counts as alive: waiting (Busy) is safe, stealing would not be.
        lock_held_elsewhere(&self.file, LOCK_SLOT0 + i as i64).unwrap_or(true)
    }

    /// Takes the write lock, waiting until `deadline`. Returns whether the previous holder
    /// died holding it (its slot's lock is gone): the caller must then recover before
    /// writing. Uncontended, this is one compare-and-swap in the shared map: no system call.
    pub(crate) fn lock_write(&self, deadline: Instant, busy: Duration) -> Result<bool> {
        let me = u32::try_from(self.slot + 1).unwrap_or(u32::MAX - 1);
        let owner = self.owner();
        loop {
            let cur = match owner.compare_exchange(0, me, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => return Ok(false),
                Err(cur) => cur,
            };
            if cur == me {
                return Err(Error::Internal(
                    "the write lock is already held by this process".into(),
                ));
            }
            let dead = cur == DEAD_OWNER || !self.slot_alive(cur as usize - 1);
            if dead {
                if owner
                    .compare_exchange(cur, me, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
                {
                    return Ok(true);
                }
                continue;
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::Busy(format!(
                    "another process held the write lock for longer than busy_timeout_ms ({} ms)",
                    busy.as_millis()
                )));
            }
            // Sleep until the holder lets go (or a while, to look at its liveness again).
            let nap = (deadline - now).min(Duration::from_millis(20));
            self.waiters().fetch_add(1, Ordering::SeqCst);
            futex_wait(owner, cur, nap);
            self.waiters().fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Releases the write lock (the writer's work is complete and published).
    pub(crate) fn unlock_write(&self) {
        self.owner().store(0, Ordering::SeqCst);
        if self.waiters().load(Ordering::SeqCst) > 0 {
            futex_wake(self.owner());
        }
    }

    /// Whether this is the only process with the database open now (tries the open lock
    /// exclusively; on success keeps it, so no process can join until [`ShmFile`] is dropped).
    pub(crate) fn try_alone(&self) -> bool {
        lock_op(&self.file, LOCK_OPEN, Kind::Exclusive).unwrap_or(false)
    }
}

impl ShmFile {
    /// After [`ShmFile::try_alone`]: lets other processes open the database again.
    pub(crate) fn share_open(&self) {
        let _ = lock_op(&self.file, LOCK_OPEN, Kind::Shared);
    }
}

impl Drop for ShmFile {
    fn drop(&mut self) {
        if self.slot != usize::MAX {
            self.slot_word(self.slot).store(0, Ordering::SeqCst);
        }
        // Closing the file releases every lock of this open file description.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_opens_share_counters_and_exclude_writers() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.wasp-shm");
        let (a, ja) = ShmFile::open(&p, Duration::from_millis(100)).unwrap();
        assert!(matches!(ja, Joined::Alone));
        a.publish_open(9, 3, 0, 32, 7);
        let (b, jb) = ShmFile::open(&p, Duration::from_millis(100)).unwrap();
        assert!(matches!(jb, Joined::Others));
        assert_eq!((b.gen(), b.log_end(), b.last_lsn()), (3, 32, 7));
        assert_ne!(a.slot, b.slot);
        a.set_slot(2);
        assert_eq!(b.min_other_gen(), 2);
        let busy = Duration::from_millis(30);
        assert!(!a.lock_write(Instant::now() + busy, busy).unwrap());
        assert!(matches!(
            b.lock_write(Instant::now() + busy, busy),
            Err(Error::Busy(_))
        ));
        a.unlock_write();
        assert!(!b.lock_write(Instant::now() + busy, busy).unwrap());
        // A holder that goes away while writing leaves the mark: the next one recovers.
        drop(b);
        assert!(a.lock_write(Instant::now() + busy, busy).unwrap());
        a.unlock_write();
        assert!(a.try_alone());
    }
}
