//! The memory map of `NAME.db` for readers ([`PageMap`], open option `mmap`, off by default,
//! available on 64-bit Unix): a page that lies in the map is searched where the OS page cache holds it,
//! with no `pread` system call and no copy of the 8 KiB a lookup mostly does not look at.
//! Writes still go through [`super::file::PageFile`] (`pwrite`, fault injection, syncs); on
//! Linux and the BSDs/macOS the map and `pwrite` share one page cache, so a reader sees a page
//! as soon as the write that made it returns.
//!
//! Why it is sound to hand out `&[u8]` into a file: the file is locked for this process
//! (`DbFile`'s advisory lock, taken by every NexusLite process), and this process never
//! writes a page a reader can reach: pages are copy-on-write, a page number is reused only
//! once no snapshot that can see its old contents is alive, and the header and manifest
//! pages are read by copy, never in place. Truncation only drops free pages at the end, and
//! first lowers [`PageMap`]'s limit under the write lock, so no reader is inside those pages
//! when they go.
//!
//! Checked pages: a page's checksum is verified the first time a reader meets it in the map
//! and a bit per page remembers that; a write of the page by this process clears the bit.
//! Repeated lookups then read only the cache lines they search, not all 8 KiB of a page. A
//! page changed behind our back on disk after its first check is not noticed until reopen or
//! `nexus_check` (which always reads by copy and verifies).
//!
//! What a map cannot do: a disk read error under a mapped page, or a page past the end of a
//! file that another process shortened (`truncate` ignores advisory locks), is a `SIGBUS`
//! for the whole process, where `pread` returns `NEXUS_IO` or reads zeros that fail the
//! page checksum (`NEXUS_CORRUPT`). No check of the file's size before each access can close
//! that window, and catching the signal is not a library's to do, so the map is opt-in
//! (`{"mmap": true}`), as SQLite's `mmap_size` is off by default for the same reasons.

use memmap2::{Mmap, MmapOptions};
use parking_lot::{RwLock, RwLockReadGuard};
use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};

/// The smallest address range mapped at first (grown by doubling as the file grows); small
/// in unit tests so that their files outgrow it and remap.
const MIN_RESERVE: u64 = if cfg!(test) {
    64 * 1024
} else {
    64 * 1024 * 1024
};

struct Mapped {
    map: Mmap,
    /// One bit per page of the map: its checksum was verified since this process last wrote it.
    checked: Vec<AtomicU64>,
}

/// A read-only map of a paged file, larger than the file so that it rarely needs remapping;
/// only the part below `limit` (inside the file) is ever read.
pub(crate) struct PageMap {
    page_size: u64,
    state: RwLock<Mapped>,
    /// Bytes of the map that are inside the file.
    limit: AtomicU64,
}

/// One page of the map, held for reading (the map cannot move or shrink meanwhile). Drop it
/// before reading another page: the map's lock is fair, so a remap waiting for it would
/// block a second read of the map by the same thread.
pub(crate) struct MappedPage<'a> {
    guard: RwLockReadGuard<'a, Mapped>,
    at: usize,
    len: usize,
    word: usize,
    mask: u64,
}

impl MappedPage<'_> {
    /// The page's bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.guard.map[self.at..self.at + self.len]
    }

    /// Whether the page's checksum was verified since it was last written.
    pub(crate) fn checked(&self) -> bool {
        self.guard.checked[self.word].load(Ordering::Acquire) & self.mask != 0
    }

    /// Records that the page's checksum has been verified.
    pub(crate) fn set_checked(&self) {
        self.guard.checked[self.word].fetch_or(self.mask, Ordering::Release);
    }
}

/// Maps `len` bytes of `file` (read-only; past the file's end, never read).
fn map_file(file: &File, len: u64) -> std::io::Result<Mmap> {
    let bytes = usize::try_from(len).map_err(|_| std::io::Error::other("map too large"))?;
    // SAFETY: the map is read-only and only ever read below the file's length; see the
    // module notes for why no byte a reader holds is changed or removed underneath it.
    unsafe { MmapOptions::new().len(bytes).map(file) }
}

/// Words of checked bits for a map of `len` bytes.
fn bit_words(len: u64, page_size: u64) -> usize {
    // Only maps that fit the address space are made (`map_file`), so this never saturates.
    usize::try_from(len / page_size / 64 + 1).unwrap_or(usize::MAX)
}

impl Mapped {
    /// Clears the checked bits of pages `ids` (those past the map have none).
    fn uncheck(&self, ids: std::ops::Range<u64>) {
        for id in ids {
            let word = usize::try_from(id / 64).ok();
            if let Some(w) = word.and_then(|i| self.checked.get(i)) {
                w.fetch_and(!(1 << (id % 64)), Ordering::Release);
            }
        }
    }
}

impl PageMap {
    /// Maps `file` (of `file_len` bytes, pages of `page_size`); `None` where maps are not used
    /// (32-bit hosts, non-Unix) or the map fails (then every read uses `pread`).
    pub(crate) fn new(file: &File, file_len: u64, page_size: usize) -> Option<Self> {
        if !cfg!(all(unix, target_pointer_width = "64")) {
            return None;
        }
        let page_size = page_size as u64;
        let reserve = reserve_for(file_len, page_size);
        let map = map_file(file, reserve).ok()?;
        let checked = (0..bit_words(reserve, page_size))
            .map(|_| AtomicU64::new(0))
            .collect();
        Some(Self {
            page_size,
            state: RwLock::new(Mapped { map, checked }),
            limit: AtomicU64::new(file_len.min(reserve)),
        })
    }

    /// Page `id`, when it lies inside the file and the map.
    pub(crate) fn page(&self, id: u64) -> Option<MappedPage<'_>> {
        let guard = self.state.read();
        let at = id.checked_mul(self.page_size)?;
        let end = at.checked_add(self.page_size)?;
        if end > self.limit.load(Ordering::Acquire) {
            return None;
        }
        Some(MappedPage {
            guard,
            at: usize::try_from(at).ok()?,
            len: usize::try_from(self.page_size).ok()?,
            word: usize::try_from(id / 64).ok()?,
            mask: 1 << (id % 64),
        })
    }

    /// Copies `buf.len()` bytes at `offset` out of the map; false when they are not all
    /// inside it (the caller reads them with `pread`).
    pub(crate) fn read(&self, offset: u64, buf: &mut [u8]) -> bool {
        let guard = self.state.read();
        let Some(end) = offset.checked_add(buf.len() as u64) else {
            return false;
        };
        if end > self.limit.load(Ordering::Acquire) {
            return false;
        }
        let (Ok(start), Ok(end)) = (usize::try_from(offset), usize::try_from(end)) else {
            return false;
        };
        buf.copy_from_slice(&guard.map[start..end]);
        true
    }

    /// Before this process writes `len` bytes at `offset`: the pages written lose their
    /// checked bit.
    pub(crate) fn before_write(&self, offset: u64, len: usize) {
        if len == 0 {
            return;
        }
        let first = offset / self.page_size;
        let last = (offset + len as u64 - 1) / self.page_size;
        self.state.read().uncheck(first..last + 1);
    }

    /// After a write that ended at byte `end` of `file`: the file may have grown, and with it
    /// the part of the map readers may use (remapped, larger, when the file outgrew it).
    pub(crate) fn after_write(&self, file: &File, end: u64) {
        let map_len = self.state.read().map.len() as u64;
        if end <= map_len {
            self.limit.fetch_max(end, Ordering::Release);
            return;
        }
        let reserve = reserve_for(end, self.page_size);
        // A failed remap keeps the old map: pages past it are read with `pread`.
        let Ok(grown) = map_file(file, reserve) else {
            return;
        };
        let mut state = self.state.write();
        if (state.map.len() as u64) < reserve {
            // The checked bits carry over: the pages did not change.
            let words = bit_words(reserve, self.page_size);
            state.checked.resize_with(words, || AtomicU64::new(0));
            state.map = grown;
        }
        self.limit
            .fetch_max(end.min(state.map.len() as u64), Ordering::Release);
    }

    /// Another process wrote the file (its checkpoint): every page is checked again when
    /// next read, and the map follows the file's new length `len`.
    pub(crate) fn after_foreign_writes(&self, file: &File, len: u64) {
        {
            let state = self.state.read();
            state.uncheck(0..state.map.len() as u64 / self.page_size);
        }
        self.after_write(file, len);
    }

    /// Before the file is cut to `len` bytes: readers stop using what lies past it (waits for
    /// any reader inside the map).
    pub(crate) fn before_truncate(&self, len: u64) {
        let state = self.state.write();
        self.limit.fetch_min(len, Ordering::Release);
        state.uncheck(len.div_ceil(self.page_size)..state.map.len() as u64 / self.page_size);
    }
}

/// Address range to map for a file of `len` bytes: twice its size, at least [`MIN_RESERVE`],
/// whole pages.
fn reserve_for(len: u64, page_size: u64) -> u64 {
    len.saturating_mul(2)
        .max(MIN_RESERVE)
        .div_ceil(page_size)
        .saturating_mul(page_size)
}

#[cfg(test)]
mod tests {
    use crate::storage::fault::Faults;
    use crate::storage::file::PageFile;
    use std::fs::OpenOptions;

    const PS: usize = 4096;

    fn page(fill: u8) -> Vec<u8> {
        vec![fill; PS]
    }

    #[test]
    fn writes_clear_checks_and_the_map_follows_growth_and_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        let mut pf = PageFile::new(f, &path, Faults::default());
        pf.write_at(0, &page(1)).unwrap();
        pf.map_pages(PS).unwrap();
        let Some(p) = pf.mapped_page(0) else {
            // No map on this host (32-bit, non-Unix): nothing to test.
            return;
        };
        assert_eq!(p.bytes(), &page(1)[..]);
        assert!(!p.checked());
        p.set_checked();
        assert!(p.checked());
        drop(p);
        assert!(pf.mapped_page(1).is_none(), "past the end of the file");

        // A write of the page clears its bit and is seen through the map.
        pf.write_at(0, &page(2)).unwrap();
        let p = pf.mapped_page(0).unwrap();
        assert!(!p.checked(), "a written page is checked again");
        assert_eq!(p.bytes(), &page(2)[..]);
        drop(p);

        // Growth far past the first reservation (64 KiB in tests): remapped, bits kept.
        pf.mapped_page(0).unwrap().set_checked();
        let far = 100u64;
        pf.write_at(far * PS as u64, &page(3)).unwrap();
        assert_eq!(pf.mapped_page(far).unwrap().bytes(), &page(3)[..]);
        assert!(pf.mapped_page(0).unwrap().checked(), "bits survive a remap");
        let mut copy = vec![0u8; PS];
        pf.read_at(far * PS as u64, &mut copy).unwrap();
        assert_eq!(copy, page(3), "reads by copy come from the map too");

        // Truncation: pages past the new end are no longer handed out.
        pf.truncate(PS as u64).unwrap();
        assert!(pf.mapped_page(far).is_none());
        assert!(pf.mapped_page(1).is_none());
        assert_eq!(pf.mapped_page(0).unwrap().bytes(), &page(2)[..]);
        pf.read_at(far * PS as u64, &mut copy).unwrap();
        assert_eq!(
            copy,
            vec![0u8; PS],
            "past the end reads as zeros, as with pread"
        );
    }
}
