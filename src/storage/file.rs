//! The only place that touches the OS for database files: opening, the advisory lock,
//! appending, positional page I/O, preallocating, syncing, truncating, renaming. Every write
//! and sync goes through [`LogFile`] (logs: records written at their end position, headers in
//! place) or [`PageFile`] (the paged `NAME.db` of WASP), and both consult the fault hooks of
//! [`super::fault`] before each write and sync (no-ops, and no state at all, unless the build
//! has the `fault-injection` feature or is a unit test).

use super::fault::{self, Faults};
use super::map::{MappedPage, PageMap};
use crate::error::{Error, Result};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Positional write of all of `bytes`.
pub(super) fn write_at(f: &File, offset: u64, bytes: &[u8]) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        f.write_all_at(bytes, offset)
    }
    #[cfg(not(unix))]
    {
        let mut f = f;
        f.seek(SeekFrom::Start(offset))?;
        f.write_all(bytes)
    }
}

/// Positional read into `buf`; returns how many bytes were read (short only at end of file).
pub(super) fn read_at(f: &File, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        #[cfg(unix)]
        let n = {
            use std::os::unix::fs::FileExt;
            f.read_at(&mut buf[done..], offset + done as u64)
        };
        #[cfg(not(unix))]
        let n = {
            let mut f = f;
            f.seek(SeekFrom::Start(offset + done as u64))
                .and_then(|_| f.read(&mut buf[done..]))
        };
        match n {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// `fdatasync` of one database file, through the fault plan (injected failures first;
/// after success the plan learns what is now durable, for power-loss simulation).
fn sync_file(file: &File, faults: &Faults, path: &Path) -> Result<()> {
    fault::before_sync(faults, path)?;
    file.sync_data().map_err(|e| Error::io(path, e))?;
    fault::synced(faults, path);
    Ok(())
}

/// The error of a write the fault plan cut short.
fn torn_write(path: &Path) -> Error {
    Error::io(path, std::io::Error::other("injected fault: torn write"))
}

/// An open log file, with fault injection: records are written at its end position (the end
/// of the records, which in a recycled log is not the end of the file), headers in place.
pub(crate) struct LogFile {
    file: File,
    path: PathBuf,
    /// Where the next record goes.
    end: u64,
    /// The file's length as this handle knows it (what it wrote, preallocated or found).
    file_len: u64,
    /// When non-zero, space is preallocated in steps of this many bytes ahead of `end`.
    prealloc: u64,
    faults: Faults,
}

impl LogFile {
    /// Opens (creating when asked) `path` for reading and writing; positioned at its end.
    pub(crate) fn open(path: &Path, create: bool, faults: Faults) -> Result<Self> {
        let file = open_regular(
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(create)
                .truncate(false),
            path,
        )?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        Ok(Self {
            file,
            path: path.to_owned(),
            end: len,
            file_len: len,
            prealloc: 0,
            faults,
        })
    }

    /// Reads the whole file.
    pub(crate) fn read_all(&mut self) -> Result<Vec<u8>> {
        let mut buf = Vec::with_capacity(usize::try_from(self.file_len).unwrap_or(0));
        self.file
            .seek(SeekFrom::Start(0))
            .and_then(|_| self.file.read_to_end(&mut buf))
            .map_err(|e| Error::io(&self.path, e))?;
        Ok(buf)
    }

    /// Reads into `buf` from `offset`; returns how many bytes were there.
    pub(crate) fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        read_at(&self.file, offset, buf).map_err(|e| Error::io(&self.path, e))
    }

    /// Preallocates space `step` bytes at a time ahead of the records from now on.
    pub(crate) fn set_prealloc(&mut self, step: u64) {
        self.prealloc = step;
    }

    /// Writes `bytes` at `offset` (one positional write), through the fault plan.
    pub(crate) fn write_at(&mut self, offset: u64, bytes: &[u8]) -> Result<()> {
        let file_len = self.file_len;
        let allowed = fault::before_write(
            &self.faults,
            &self.path,
            &self.file,
            offset,
            bytes.len(),
            &|| Ok(file_len),
        )?;
        write_at(&self.file, offset, &bytes[..allowed]).map_err(|e| Error::io(&self.path, e))?;
        self.file_len = self.file_len.max(offset + allowed as u64);
        if allowed < bytes.len() {
            return Err(torn_write(&self.path));
        }
        Ok(())
    }

    /// Writes `bytes` at the end position and moves it past them.
    pub(crate) fn append(&mut self, bytes: &[u8]) -> Result<()> {
        self.append_marked(bytes, 0)
    }

    /// Writes `bytes` at the end position in one write and moves it past all but the last
    /// `mark` of them (an end mark the next record overwrites).
    pub(crate) fn append_marked(&mut self, bytes: &[u8], mark: usize) -> Result<()> {
        let to = self.end + bytes.len() as u64;
        if self.prealloc != 0 && to > self.file_len {
            self.preallocate(to);
        }
        let r = self.write_at(self.end, bytes);
        if r.is_ok() {
            self.end = to - mark as u64;
        }
        r
    }

    /// Makes the file at least `to` bytes long, rounded up to the preallocation step, with
    /// allocated blocks (`fallocate`), so that records written there later change no file
    /// size or extent. Best effort: where it fails or is not supported, records append.
    fn preallocate(&mut self, to: u64) {
        let want = to.div_ceil(self.prealloc) * self.prealloc;
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::io::AsRawFd;
            let (Ok(off), Ok(len)) = (
                libc::off_t::try_from(self.file_len),
                libc::off_t::try_from(want - self.file_len),
            ) else {
                return;
            };
            if fault::check_alive(&self.faults, &self.path).is_err() {
                return;
            }
            // SAFETY: a valid descriptor; mode 0 allocates and extends the file.
            #[allow(unsafe_code)]
            let r = unsafe { libc::fallocate(self.file.as_raw_fd(), 0, off, len) };
            if r == 0 {
                self.file_len = want;
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = want;
    }

    /// `fdatasync`.
    pub(crate) fn sync(&self) -> Result<()> {
        sync_file(&self.file, &self.faults, &self.path)
    }

    /// Cuts the file to `len` bytes and syncs; the end position moves there if it was after.
    pub(crate) fn truncate(&mut self, len: u64) -> Result<()> {
        fault::check_alive(&self.faults, &self.path)?;
        self.file
            .set_len(len)
            .and_then(|_| self.file.sync_all())
            .map_err(|e| Error::io(&self.path, e))?;
        self.file_len = len;
        self.end = self.end.min(len);
        Ok(())
    }

    /// Overwrites `len` bytes from `offset` with zeros (no further than the file's end) and
    /// syncs: a record there can no longer be read.
    pub(crate) fn erase(&mut self, offset: u64, len: u64) -> Result<()> {
        let len = len.min(self.file_len.saturating_sub(offset));
        if len == 0 {
            return Ok(());
        }
        let zeros = vec![0u8; usize::try_from(len).unwrap_or(usize::MAX)];
        self.write_at(offset, &zeros)?;
        self.sync()
    }

    /// The end position: where the next record goes.
    pub(crate) fn end(&self) -> u64 {
        self.end
    }

    /// The next record goes at `end`.
    pub(crate) fn set_end(&mut self, end: u64) {
        self.end = end;
    }

    /// Another process wrote to the file: its records end at `end` now, as far as the next
    /// record is concerned.
    pub(crate) fn adopt_end(&mut self, end: u64) -> Result<()> {
        let actual = self
            .file
            .metadata()
            .map_err(|e| Error::io(&self.path, e))?
            .len();
        if actual < end {
            return Err(Error::Corrupt(format!(
                "{}: the log is {actual} bytes, shorter than the {end} bytes of committed records other processes published",
                self.path.display()
            )));
        }
        self.file_len = actual;
        self.end = end;
        Ok(())
    }

    /// Records that the open file was renamed to `to`.
    pub(crate) fn renamed(&mut self, to: &Path) {
        fault::note_rename(&self.faults, &self.path, to);
        self.path = to.to_owned();
    }

    /// A second handle to the same open file, for syncing outside the writer's lock.
    pub(crate) fn sync_handle(&self) -> Result<SyncHandle> {
        Ok(SyncHandle {
            file: self
                .file
                .try_clone()
                .map_err(|e| Error::io(&self.path, e))?,
            path: self.path.clone(),
            faults: self.faults.clone(),
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
        sync_file(&self.file, &self.faults, &self.path)
    }
}

/// A file of fixed-size pages read and written at offsets (WASP's `NAME.db`). Reads may run
/// concurrently from many threads (`pread`); writes come from the single checkpointer.
pub(crate) struct PageFile {
    file: File,
    path: PathBuf,
    faults: Faults,
    /// Readers' memory map of the file (see [`PageMap`]), once [`PageFile::map_pages`] made it.
    map: Option<PageMap>,
}

impl PageFile {
    /// Wraps an open file (a second handle of the locked [`DbFile`]).
    pub(crate) fn new(file: File, path: &Path, faults: Faults) -> Self {
        Self {
            file,
            path: path.to_owned(),
            faults,
            map: None,
        }
    }

    /// Maps the file for readers (pages of `page_size`); without a map (a 32-bit host, a
    /// failed `mmap`) every read stays a `pread`.
    pub(crate) fn map_pages(&mut self, page_size: usize) -> Result<()> {
        self.map = PageMap::new(&self.file, self.len()?, page_size);
        Ok(())
    }

    /// Another process wrote pages of the file (see [`PageMap::after_foreign_writes`]).
    pub(crate) fn after_foreign_writes(&self) -> Result<()> {
        if let Some(m) = &self.map {
            m.after_foreign_writes(&self.file, self.len()?);
        }
        Ok(())
    }

    /// Whether readers have the memory map.
    pub(crate) fn is_mapped(&self) -> bool {
        self.map.is_some()
    }

    /// Page `id` where it lies in the map, for searching in place.
    pub(crate) fn mapped_page(&self, id: u64) -> Option<MappedPage<'_>> {
        self.map.as_ref()?.page(id)
    }

    /// The path, for messages.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Reads `buf.len()` bytes at `offset`; bytes past the end of the file read as zero.
    pub(crate) fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        if self.map.as_ref().is_some_and(|m| m.read(offset, buf)) {
            return Ok(());
        }
        let n = read_at(&self.file, offset, buf).map_err(|e| Error::io(&self.path, e))?;
        buf[n..].fill(0);
        Ok(())
    }

    /// Writes all of `bytes` at `offset` (a torn write under fault injection fails).
    pub(crate) fn write_at(&self, offset: u64, bytes: &[u8]) -> Result<()> {
        let allowed = fault::before_write(
            &self.faults,
            &self.path,
            &self.file,
            offset,
            bytes.len(),
            &|| self.len(),
        )?;
        if let Some(m) = &self.map {
            m.before_write(offset, bytes.len());
        }
        write_at(&self.file, offset, &bytes[..allowed]).map_err(|e| Error::io(&self.path, e))?;
        if let Some(m) = &self.map {
            m.after_write(&self.file, offset + allowed as u64);
        }
        if allowed < bytes.len() {
            return Err(torn_write(&self.path));
        }
        Ok(())
    }

    /// `fdatasync`.
    pub(crate) fn sync(&self) -> Result<()> {
        sync_file(&self.file, &self.faults, &self.path)
    }

    /// Length of the file in bytes.
    pub(crate) fn len(&self) -> Result<u64> {
        Ok(self
            .file
            .metadata()
            .map_err(|e| Error::io(&self.path, e))?
            .len())
    }

    /// Cuts the file to `len` bytes and syncs (only ever drops free pages at the end).
    pub(crate) fn truncate(&self, len: u64) -> Result<()> {
        fault::check_alive(&self.faults, &self.path)?;
        if let Some(m) = &self.map {
            m.before_truncate(len);
        }
        self.file
            .set_len(len)
            .and_then(|_| self.file.sync_all())
            .map_err(|e| Error::io(&self.path, e))
    }
}

/// A name for a temporary file beside `dest` (same directory, so a rename or link cannot
/// cross file systems): `.NAME.TAG-PID-SEQ` followed by `ext`, unique in this process and,
/// by the process id, among processes ([`remove_stale_temps`] removes those of dead ones).
pub(crate) fn temp_sibling(dest: &Path, tag: &str, ext: &str) -> Result<PathBuf> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let name = dest
        .file_name()
        .ok_or_else(|| Error::invalid(format!("{} does not name a file", dest.display())))?;
    let mut tmp = std::ffi::OsString::from(".");
    tmp.push(name);
    tmp.push(format!(
        ".{tag}-{}-{}{ext}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    Ok(parent_dir(dest).join(tmp))
}

/// Removes the temporaries ([`temp_sibling`]) of `dest` left by processes that no longer
/// run (killed mid-way); those of live processes are left alone. Best effort.
pub(crate) fn remove_stale_temps(dest: &Path, tag: &str) {
    let Some(name) = dest.file_name().and_then(|n| n.to_str()) else {
        return;
    };
    let prefix = format!(".{name}.{tag}-");
    let Ok(entries) = std::fs::read_dir(parent_dir(dest)) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(rest) = file_name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
            continue;
        };
        let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|pid| !process_alive(pid)) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Whether a process with this id exists (on non-Unix: assumed to).
fn process_alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        if pid == std::process::id() {
            return true;
        }
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            return false;
        };
        // SAFETY: kill with signal 0 sends nothing; it only checks that the process exists.
        #[allow(unsafe_code)]
        let r = unsafe { libc::kill(pid, 0) };
        r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

/// Gives the complete file `from` the name `to`, which must not exist (a file that appeared
/// meanwhile is never replaced), then syncs the directory. A hard link is atomic and
/// refuses an existing name; where links are not supported, a rename after a check.
pub(crate) fn link_new(from: &Path, to: &Path) -> Result<()> {
    match std::fs::hard_link(from, to) {
        Ok(()) => {
            let _ = std::fs::remove_file(from);
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(Error::invalid(format!(
                "{} already exists (it appeared while it was written)",
                to.display()
            )));
        }
        Err(_) if to.symlink_metadata().is_err() => {
            std::fs::rename(from, to).map_err(|e| Error::io(to, e))?;
        }
        Err(e) => return Err(Error::io(to, e)),
    }
    sync_dir(to)
}

/// The directory holding `path` (`.` for a bare name).
pub(crate) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// What kind of file `meta` describes, for messages.
fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    let t = meta.file_type();
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_socket() {
            return "a socket";
        }
        if t.is_block_device() || t.is_char_device() {
            return "a device";
        }
    }
    if t.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

/// The refusal of a path that is not a regular file.
fn not_regular(path: &Path, meta: &std::fs::Metadata) -> Error {
    Error::invalid(format!(
        "{} is {}: a database and its log must be regular files",
        path.display(),
        file_kind(meta)
    ))
}

/// Opens a database file or log with `opts`, refusing at once anything that is not a regular
/// file (a directory, FIFO, socket or device): checked before the open (which would block on
/// a FIFO without a writer) and again on the open file, which is opened with `O_NONBLOCK` so
/// that a FIFO swapped in between cannot block either. Symbolic links to regular files are
/// followed.
pub(crate) fn open_regular(opts: &mut OpenOptions, path: &Path) -> Result<File> {
    if let Ok(meta) = std::fs::metadata(path) {
        if !meta.is_file() {
            return Err(not_regular(path, &meta));
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags(libc::O_NONBLOCK);
    }
    let file = opts.open(path).map_err(|e| Error::io(path, e))?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(not_regular(path, &meta));
    }
    #[cfg(unix)]
    {
        use std::os::unix::io::AsRawFd;
        let fd = file.as_raw_fd();
        // SAFETY: fcntl on a descriptor this function owns; clears O_NONBLOCK (no effect on
        // a regular file's I/O, but the file should look as if opened without it).
        #[allow(unsafe_code)]
        let ok = unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            flags >= 0 && libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) >= 0
        };
        if !ok {
            return Err(Error::io(path, std::io::Error::last_os_error()));
        }
    }
    Ok(file)
}

/// Reads all of the regular file `path` (refusing anything else, see [`open_regular`]).
pub(crate) fn read_regular(path: &Path) -> Result<Vec<u8>> {
    let mut f = open_regular(OpenOptions::new().read(true), path)?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).map_err(|e| Error::io(path, e))?;
    Ok(buf)
}

/// Renames `from` to `to` and syncs the directory so the rename itself is durable.
pub(crate) fn rename_durable(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to).map_err(|e| Error::io(to, e))?;
    sync_dir(to)
}

/// Syncs the directory holding `path`.
pub(crate) fn sync_dir(path: &Path) -> Result<()> {
    let dir = parent_dir(path);
    #[cfg(unix)]
    {
        let d = File::open(dir).map_err(|e| Error::io(dir, e))?;
        d.sync_all().map_err(|e| Error::io(dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// How [`DbFile::open_locked`] locks the file (`flock`, for the life of the engine).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LockMode {
    /// Shared by every process (WASP: processes coordinate through the shared file; the
    /// lock keeps out backends and builds that take it exclusively).
    Shared,
    /// Exclusive for writers, shared for read-only connections (`memlog`, whose tables live
    /// in one process's memory).
    ByAccess,
}

/// The main database file, opened and locked for the life of the engine (see [`LockMode`]),
/// so a process that must not share it gets `Busy` instead of corrupting the file.
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
        mode: LockMode,
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
        let file = open_regular(
            OpenOptions::new()
                .read(true)
                .write(!read_only)
                .create(create && !read_only)
                .truncate(false),
            path,
        )?;
        let deadline = Instant::now() + busy_timeout;
        loop {
            let r = if read_only || mode == LockMode::Shared {
                file.try_lock_shared()
            } else {
                file.try_lock()
            };
            match r {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) => {
                    if Instant::now() >= deadline {
                        return Err(Error::Busy(match mode {
                            LockMode::ByAccess => format!(
                                "database {} is open in another process (waited {} ms): the \
                                 memlog storage keeps its tables in one process's memory, so \
                                 one process at a time may write it; open it with the option \
                                 \"storage\": \"wasp\" (the default) to share it between \
                                 processes, or close it there first",
                                path.display(),
                                busy_timeout.as_millis()
                            ),
                            LockMode::Shared => format!(
                                "database {} is locked exclusively by another process (waited \
                                 {} ms): a memlog connection or an earlier NexusLite build, \
                                 which open a database in one process at a time; close it \
                                 there first",
                                path.display(),
                                busy_timeout.as_millis()
                            ),
                        }));
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

    /// A second handle to the locked file, for page I/O.
    pub(crate) fn page_file(&self, faults: Faults) -> Result<PageFile> {
        let f = self
            .file
            .try_clone()
            .map_err(|e| Error::io(&self.path, e))?;
        Ok(PageFile::new(f, &self.path, faults))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_temporaries_of_dead_processes_are_removed_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.csv");
        let mine = temp_sibling(&dest, "nexus-tmp", "").unwrap();
        assert!(mine
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with(".out.csv.nexus-tmp-"));
        // No process has this id (above Linux's largest pid_max).
        let dead = dir.path().join(".out.csv.nexus-tmp-999999999-0");
        let other_tag = dir.path().join(".out.csv.nexus-backup-999999999-0.db");
        let unrelated = dir.path().join("out.csv.bak");
        for p in [&mine, &dead, &other_tag, &unrelated] {
            std::fs::write(p, b"x").unwrap();
        }
        remove_stale_temps(&dest, "nexus-tmp");
        assert!(!dead.exists(), "a dead export's temporary is removed");
        assert!(mine.exists(), "this process's own temporary stays");
        assert!(other_tag.exists() && unrelated.exists());
    }

    #[test]
    fn link_new_never_replaces_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, b"new").unwrap();
        std::fs::write(&b, b"old").unwrap();
        assert!(matches!(link_new(&a, &b), Err(Error::InvalidArgument(_))));
        assert_eq!(std::fs::read(&b).unwrap(), b"old");
        std::fs::remove_file(&b).unwrap();
        link_new(&a, &b).unwrap();
        assert_eq!(std::fs::read(&b).unwrap(), b"new");
        assert!(!a.exists(), "the temporary name is gone");
    }
}
