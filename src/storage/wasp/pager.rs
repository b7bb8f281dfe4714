//! The pager ([`Pager`]): reads and writes whole pages of `NAME.db` through the file layer
//! ([`PageFile`], which carries fault injection), verifies every page it reads, and keeps
//! decoded tree nodes in a page cache with a byte budget ([`PageCache`], CLOCK replacement).
//! Overflow values are read straight from the file and not cached, so a workload of large
//! documents cannot push the cache past its budget.
//!
//! Leaf admission: a lookup or scan that meets a leaf page not in the cache searches it in
//! place ([`Pager::leaf_probe`], walking its entries only up to the key it wants) instead of
//! decoding it. With the memory map (`storage::map`, the default) that is all: a mapped leaf
//! is never decoded for a reader, the OS page cache is its cache and a search touches only
//! the cache lines it reads (decoding and caching leaves measured 20% slower lookups).
//! Without the map, a leaf is read with `pread`, and decoded and cached when it is missed
//! again soon after (a small set of recently missed leaf pages remembers the first miss):
//! random lookups over a database larger than the cache then cost a read and a search, not a
//! decode of every entry, and do not push the hot branch pages out, while leaves read
//! repeatedly still end up cached.
//!
//! Writers: a page about to be copied and replaced is read for the writer alone when it is
//! not cached ([`Pager::node_for_change`]); a checkpoint caches the branch pages it writes
//! (every descent passes through them) but not the leaves, most of which are not touched
//! again soon: caching them pushed the branches out.
//!
//! Page numbers: 0 is the header, 1 and 2 the manifest slots, 3.. data pages.
//!
//! Encrypted files (format versions 4 and 5): every page from 1 on is sealed on its way to the file
//! and opened on its way in ([`Sealer`], bound to its page number); the layers above see
//! pages [`crate::crypto::seal::OVERHEAD`] bytes shorter than the file's (`geo.page_size`
//! is that logical size, [`Pager::phys`] the file's), and no page is memory-mapped. A sealed
//! page's tag authenticates all of it, its checksum included, so a page read and opened is
//! not checksummed again ([`Pager::open_read`]); leaves are admitted as plain ones are (on
//! their second miss).

use super::page::{
    self, Geometry, LeafImage, Node, PageHead, RawVal, SearchAid, Val, KIND_FREELIST, KIND_LEAF,
    KIND_OVERFLOW, PAGE_HEADER,
};
use crate::crypto::seal::{Domain, Sealer, OVERHEAD};
use crate::error::{Error, Result};
use crate::storage::file::PageFile;
use crate::storage::Bytes;
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// First data page.
pub(crate) const FIRST_DATA_PAGE: u64 = 3;
/// Leaf pages remembered as missed once (forgotten all at once when full).
const RECENT_MISSES: usize = 8192;

/// Page `id` of a file of `phys`-byte pages as the file holds it: `buf` padded to `phys`
/// bytes, or sealed with `seal` (`buf` is then the page less the seal's overhead).
pub(crate) fn sealed_page(seal: Option<&Sealer>, id: u64, buf: &[u8], phys: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(phys);
    out.extend_from_slice(buf);
    out.resize(phys, 0);
    if let Some(seal) = seal {
        let (data, trailer) = out.split_at_mut(buf.len());
        seal.seal(Domain::Page, [id, 0, 0], data, trailer);
    }
    out
}

/// What [`Pager::leaf_probe`] found behind a page number.
pub(crate) enum Probe {
    /// The decoded node (cached, a branch, or a leaf admitted on its second miss).
    Node(Arc<Node>),
    /// A leaf read for this call only: `f` has seen its entries in place.
    Done,
}

/// A checked leaf page searched in place by [`Pager::leaf_probe`]'s caller: read for this
/// search only, or a [`PageLeaf`] of the cache (then searched by binary search, and what is
/// taken from it shares its buffer).
pub(crate) struct LeafPage<'a> {
    buf: &'a [u8],
    head: PageHead,
    id: u64,
    what: &'a str,
    /// A cached page: where its entries start, its buffer, and its search aid.
    cached: Option<(&'a [u16], &'a Bytes, Option<&'a SearchAid>)>,
}

impl<'a> LeafPage<'a> {
    /// Walks the entries in key order while `f` returns true: a search stops at the first key
    /// not below the one it wants, and reads none of the page after it.
    pub(crate) fn walk(&self, f: impl FnMut(&'a [u8], RawVal<'a>) -> bool) -> Result<()> {
        page::leaf_entries(self.buf, self.head, self.id, self.what, f)
    }

    /// The value under `key`, if the page holds it.
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Val>> {
        if let Some((offs, owner, aid)) = self.cached {
            let key_at = |i: usize| page::leaf_entry_at(owner, offs[i].into()).0;
            let found = match aid {
                Some(aid) => page::exact(aid.upper_bound(key_at, key), key_at, key),
                None => page::search_offsets(owner, offs, key),
            };
            return Ok(found.ok().map(|i| page::val_at(owner, offs[i])));
        }
        let mut found = None;
        self.walk(|k, v| match k.cmp(key) {
            std::cmp::Ordering::Less => true,
            std::cmp::Ordering::Equal => {
                found = Some(v.to_val());
                false
            }
            std::cmp::Ordering::Greater => false,
        })?;
        Ok(found)
    }

    /// [`LeafPage::get`] of each of `keys` (sorted ascending): `out[i]` becomes the value of
    /// `keys[i]`. A page read for this call is walked once for all of them.
    pub(crate) fn get_sorted(&self, keys: &[&[u8]], out: &mut [Option<Val>]) -> Result<()> {
        if let (Some((offs, owner, Some(aid))), true) = (self.cached, keys.len() > 1) {
            // Where each key can be from the aid alone first, then which entry is it, then
            // the values: the reads of the entries (cache misses, mostly) then do not wait on
            // one another, nor on the atomic reference counts of the values' slices.
            let key_at = |i: usize| page::leaf_entry_at(owner, offs[i].into()).0;
            let mut after = None;
            let windows: Vec<(usize, usize)> = keys
                .iter()
                .map(|key| {
                    let (lo, hi) = aid.window_from(after, key_at, key);
                    after = Some(lo);
                    if let Some(&at) = offs.get(lo) {
                        crate::prefetch::prefetch(&owner[usize::from(at)..]);
                    }
                    (lo, hi)
                })
                .collect();
            let at: Vec<Option<usize>> = keys
                .iter()
                .zip(windows)
                .map(|(key, (lo, hi))| {
                    page::exact(SearchAid::settle(lo, hi, key_at, key), key_at, key).ok()
                })
                .collect();
            for (slot, i) in out.iter_mut().zip(at) {
                *slot = i.map(|i| page::val_at(owner, offs[i]));
            }
            return Ok(());
        }
        if self.cached.is_some() || keys.len() == 1 {
            for (key, slot) in keys.iter().zip(out.iter_mut()) {
                *slot = self.get(key)?;
            }
            return Ok(());
        }
        let mut next = 0;
        self.walk(|k, v| {
            while next < keys.len() {
                match keys[next].cmp(k) {
                    std::cmp::Ordering::Less => next += 1,
                    std::cmp::Ordering::Equal => {
                        out[next] = Some(v.to_val());
                        next += 1;
                    }
                    std::cmp::Ordering::Greater => return true,
                }
            }
            false
        })
    }

    /// Appends to `out` up to `max` entries in key order after the key `after` (from the
    /// first when `None`). The entries of a page read for this call lie one after another in
    /// it: they are copied out as one block, each key and value a slice of it (one
    /// allocation, not two an entry); those of a cached page are slices of its buffer.
    /// `entries`: values are a clustered table's entries, handed out as their own key and
    /// value (see `btree::scan`).
    pub(crate) fn copy_run(
        &self,
        after: Option<&[u8]>,
        max: usize,
        out: &mut Vec<(Bytes, Val)>,
        entries: bool,
    ) -> Result<()> {
        if max == 0 {
            return Ok(());
        }
        let base = self.buf.as_ptr() as usize;
        let at = |s: &[u8]| {
            let from = s.as_ptr() as usize - base;
            from..from + s.len()
        };
        // An entry's key and value as ranges of the page: a clustered entry's own parts.
        let parts = |k: &[u8], v: RawVal<'_>| -> Result<(std::ops::Range<usize>, Taken)> {
            Ok(match v {
                RawVal::Data(d) if entries => {
                    let (kr, vr) = super::clustered::entry_ranges(d)
                        .ok_or_else(|| super::btree::corrupt_entry(self.what))?;
                    let d = at(d);
                    (
                        d.start + kr.start..d.start + kr.end,
                        Taken::Data(d.start + vr.start..d.start + vr.end),
                    )
                }
                RawVal::Data(d) => (at(k), Taken::Data(at(d))),
                other => (at(k), Taken::Other(other.to_val())),
            })
        };
        if let Some((offs, owner, aid)) = self.cached {
            let key_at = |i: usize| page::leaf_entry_at(owner, offs[i].into()).0;
            // Where to start: from the aid when the page has one (the entries' 8-byte words
            // side by side, so a scan's first step does not touch the entries themselves).
            let start = after.map_or(0, |a| match aid {
                Some(aid) => aid.upper_bound(key_at, a),
                None => offs.partition_point(|&o| page::leaf_entry_at(owner, o.into()).0 <= a),
            });
            for &o in offs[start..].iter().take(max) {
                let (k, v) = page::leaf_entry_at(owner, o.into());
                let (kr, taken) = parts(k, v)?;
                let val = match taken {
                    Taken::Data(r) => Val::Data(owner.slice(r)),
                    Taken::Other(v) => v,
                };
                out.push((owner.slice(kr), val));
            }
            return Ok(());
        }
        let mut taken: Vec<(std::ops::Range<usize>, Taken)> = Vec::new();
        let mut failed = None;
        self.walk(|k, v| {
            if after.is_some_and(|a| k <= a) {
                return true;
            }
            match parts(k, v) {
                Ok(p) => taken.push(p),
                Err(e) => {
                    failed = Some(e);
                    return false;
                }
            }
            taken.len() < max
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
        let lo = taken.iter().map(|(k, _)| k.start).min();
        let hi = taken
            .iter()
            .map(|(k, v)| match v {
                Taken::Data(r) => r.end.max(k.end),
                Taken::Other(_) => k.end,
            })
            .max();
        let (Some(lo), Some(hi)) = (lo, hi) else {
            return Ok(());
        };
        let block = Bytes::copy_from_slice(&self.buf[lo..hi]);
        let slice = |r: std::ops::Range<usize>| block.slice(r.start - lo..r.end - lo);
        out.extend(taken.into_iter().map(|(k, v)| {
            let val = match v {
                Taken::Data(r) => Val::Data(slice(r)),
                Taken::Other(v) => v,
            };
            (slice(k), val)
        }));
        Ok(())
    }
}

/// What [`LeafPage::copy_run`] takes of an entry's value: a range of the page, or the value
/// itself (an overflow reference).
enum Taken {
    Data(std::ops::Range<usize>),
    Other(Val),
}

/// A leaf page kept in the cache as it was read (checked): its bytes and where each entry
/// starts, searched in place by binary search. It takes its page and 10 bytes an entry of
/// the cache's budget, against about 70 bytes an entry decoded (a key and a value of
/// `Bytes` each), so small entries (an index, a collection's `_id` map) no longer take three
/// times their page; a writer decodes it only to change it.
pub(crate) struct PageLeaf {
    buf: Bytes,
    head: PageHead,
    offs: Vec<u16>,
    /// The keys' search aid (as a branch's), for a leaf of many keys, built when the leaf is
    /// searched the second time in the cache ([`PageLeaf::aid`]).
    aid: std::sync::OnceLock<SearchAid>,
    /// Searched in the cache since it was admitted.
    searched: std::sync::atomic::AtomicBool,
}

impl PageLeaf {
    fn new(buf: Bytes, head: PageHead, id: u64, what: &str) -> Result<Self> {
        let offs = page::leaf_offsets(&buf, head, id, what)?;
        Ok(Self {
            buf,
            head,
            offs,
            aid: std::sync::OnceLock::new(),
            searched: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The search aid from the leaf's second search on: under a random workload larger than
    /// the cache most admitted leaves are searched once before they are evicted, and for
    /// that one search a binary search over the offsets costs less than building the aid
    /// (find({age}) through an index over 200,000 documents: the aid's build was 1k of 14k
    /// instructions per row).
    fn aid(&self) -> Option<&SearchAid> {
        if self.offs.len() < page::AID_MIN_KEYS {
            return None;
        }
        if let Some(aid) = self.aid.get() {
            return Some(aid);
        }
        if !self
            .searched
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            return None;
        }
        Some(self.aid.get_or_init(|| {
            SearchAid::build(self.offs.len(), |i| {
                page::leaf_entry_at(&self.buf, self.offs[i].into()).0
            })
        }))
    }

    fn page<'a>(&'a self, id: u64, what: &'a str) -> LeafPage<'a> {
        LeafPage {
            buf: &self.buf,
            head: self.head,
            id,
            what,
            cached: Some((&self.offs, &self.buf, self.aid())),
        }
    }

    fn decode(&self, id: u64, what: &str) -> Result<Node> {
        page::decode_node(&self.buf, self.head, id, what)
    }

    /// The leaf as an image for a writer (sharing the page until the writer changes it).
    fn image(&self) -> LeafImage {
        LeafImage::from_parts(Bytes::clone(&self.buf), self.offs.clone(), self.head.used)
    }

    fn bytes(&self) -> usize {
        self.buf.len() + 10 * self.offs.len() + 64
    }
}

/// What the cache holds for a page: a decoded node (a branch) or a leaf as read.
#[derive(Clone)]
pub(crate) enum Cached {
    Node(Arc<Node>),
    Leaf(Arc<PageLeaf>),
}

/// Hashes page numbers (already well spread integers) with one multiplication instead of
/// SipHash: the page cache is looked up several times per tree descent.
#[derive(Default)]
pub(crate) struct PageIdHasher(u64);

impl std::hash::Hasher for PageIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (n ^ self.0).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type PageIds = std::hash::BuildHasherDefault<PageIdHasher>;

thread_local! {
    /// This thread's page buffer: a page read for a probe, or a leaf being written.
    static PAGE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

struct Slot {
    id: u64,
    node: Cached,
    bytes: usize,
    referenced: bool,
}

/// A free-list page's tag for pages out of the trees from generation `gen` on: never 0
/// (which means "free for every reader"), `1 + gen mod (2^32 - 1)`; [`gen_of_tag`] reads it
/// back.
pub(crate) fn tag_of(gen: u64) -> u32 {
    u32::try_from(1 + gen % TAG_MODULUS).unwrap_or(u32::MAX)
}

const TAG_MODULUS: u64 = u32::MAX as u64;

/// The generation a (nonzero) tag stands for in a free list written with manifest
/// generation `manifest_gen`: the one at most `manifest_gen` with that tag.
pub(crate) fn gen_of_tag(tag: u32, manifest_gen: u64) -> u64 {
    let back = (u64::from(tag_of(manifest_gen)) + TAG_MODULUS - u64::from(tag)) % TAG_MODULUS;
    manifest_gen.saturating_sub(back)
}

#[cfg(test)]
#[test]
fn tags_read_back_across_the_wrap() {
    let m = TAG_MODULUS;
    for (gen, at) in [(5, 7), (m - 1, m), (m, m + 3), (2 * m, 2 * m), (1, 1)] {
        assert_ne!(tag_of(gen), 0);
        assert_eq!(gen_of_tag(tag_of(gen), at), gen, "{gen} at {at}");
    }
}

/// Decoded nodes by page number, bounded by bytes (an estimate of the decoded size).
pub(crate) struct PageCache {
    budget: usize,
    bytes: usize,
    index: HashMap<u64, usize, PageIds>,
    slots: Vec<Slot>,
    hand: usize,
}

impl PageCache {
    fn new(budget: usize) -> Self {
        Self {
            budget,
            bytes: 0,
            index: HashMap::default(),
            slots: Vec::new(),
            hand: 0,
        }
    }

    fn get(&mut self, id: u64) -> Option<Cached> {
        let i = *self.index.get(&id)?;
        let s = &mut self.slots[i];
        s.referenced = true;
        Some(s.node.clone())
    }

    fn remove(&mut self, id: u64) {
        if let Some(i) = self.index.remove(&id) {
            let s = self.slots.swap_remove(i);
            self.bytes -= s.bytes;
            if i < self.slots.len() {
                let moved = self.slots[i].id;
                self.index.insert(moved, i);
            }
            if self.hand >= self.slots.len() {
                self.hand = 0;
            }
        }
    }

    fn insert(&mut self, id: u64, node: Cached, bytes: usize) {
        self.remove(id);
        if bytes > self.budget {
            return;
        }
        while self.bytes + bytes > self.budget && !self.slots.is_empty() {
            // CLOCK: clear reference bits until an unreferenced slot comes under the hand.
            if self.hand >= self.slots.len() {
                self.hand = 0;
            }
            if self.slots[self.hand].referenced {
                self.slots[self.hand].referenced = false;
                self.hand += 1;
            } else {
                // The removal moves the last slot (the newest entry) under the hand: step
                // past it, so that it is looked at after a full turn of the hand, as a new
                // entry is (evicting it at once would throw out each new page at the next
                // insert, and a working set larger than the hand's gap would never stay).
                let victim = self.slots[self.hand].id;
                self.remove(victim);
                self.hand += 1;
            }
        }
        self.index.insert(id, self.slots.len());
        self.slots.push(Slot {
            id,
            node,
            bytes,
            referenced: false,
        });
        self.bytes += bytes;
    }
}

/// Page I/O plus the page cache. Shared by readers (any thread) and the checkpointer.
pub(crate) struct Pager {
    pub(crate) file: PageFile,
    /// The pages the layers above see (shorter than the file's when encrypted).
    pub(crate) geo: Geometry,
    /// The file's page size.
    phys: usize,
    /// Seals pages of an encrypted file.
    seal: Option<Arc<Sealer>>,
    cache: Mutex<PageCache>,
    recent_misses: Mutex<HashSet<u64, PageIds>>,
    hits: AtomicU64,
    misses: AtomicU64,
    what: String,
}

impl Pager {
    /// A pager over `file` of `page_size`-byte pages; `seal`: the file is encrypted.
    pub(crate) fn new(
        file: PageFile,
        page_size: usize,
        seal: Option<Arc<Sealer>>,
        cache_bytes: usize,
    ) -> Self {
        let what = file.path().display().to_string();
        let overhead = if seal.is_some() { OVERHEAD } else { 0 };
        Self {
            file,
            geo: Geometry {
                page_size: page_size - overhead,
            },
            phys: page_size,
            seal,
            cache: Mutex::new(PageCache::new(cache_bytes)),
            recent_misses: Mutex::new(HashSet::default()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            what,
        }
    }

    /// The file name for messages.
    pub(crate) fn what(&self) -> &str {
        &self.what
    }

    /// Where page `id` starts. A page number read from a damaged page (a child, an overflow
    /// or free-list link) can be anything: one whose offset would not fit a file offset is
    /// damage, not a multiplication that wraps (fuzz target `db_file`).
    fn offset(&self, id: u64) -> Result<u64> {
        let phys = self.phys as u64;
        id.checked_mul(phys)
            .filter(|&at| at <= i64::MAX as u64 - phys)
            .ok_or_else(|| {
                Error::Corrupt(format!(
                    "{}: page {id} lies past the largest possible file",
                    self.what
                ))
            })
    }

    /// The file's page size (the header's; `geo.page_size` less the seal when encrypted).
    pub(crate) fn phys(&self) -> usize {
        self.phys
    }

    /// The sealer of an encrypted file.
    pub(crate) fn sealer(&self) -> Option<&Arc<Sealer>> {
        self.seal.as_ref()
    }

    /// Reads page `id` (1 and on: opened when encrypted) into a fresh buffer of
    /// `geo.page_size` bytes without checking its contents.
    pub(crate) fn read_raw(&self, id: u64) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; self.phys];
        self.read_opened(id, &mut buf)?;
        buf.truncate(self.geo.page_size);
        Ok(buf)
    }

    /// Reads page `id` as the file holds it (sealed when encrypted): backups copy it so.
    pub(crate) fn read_physical(&self, id: u64) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; self.phys];
        self.file.read_at(self.offset(id)?, &mut buf)?;
        Ok(buf)
    }

    /// Reads page `id` into `buf` (`phys` bytes) and opens it when sealed. While a rekey
    /// rewrites the file in place (`rekey.rs`), a read can meet a page half rewritten, or
    /// read a page under the old key that is checked after the rekey ended (a failed
    /// check): it is read again.
    fn read_opened(&self, id: u64, buf: &mut [u8]) -> Result<()> {
        // The rewrite of one page is short, but its thread may wait for the CPU on a loaded
        // machine: the limit is generous (a page that still fails then is damaged).
        const PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);
        let mut since: Option<std::time::Instant> = None;
        let changes = || self.seal.as_ref().map_or(0, |s| s.key_changes());
        loop {
            let before = changes();
            self.file.read_at(self.offset(id)?, buf)?;
            match self.open_sealed(id, buf) {
                Err(_)
                    if since.is_none_or(|t| t.elapsed() < PATIENCE)
                        && (changes() != before
                            || self.seal.as_ref().is_some_and(|s| s.rekeying())) =>
                {
                    since.get_or_insert_with(std::time::Instant::now);
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                r => return r,
            }
        }
    }

    /// Opens the sealed page `id` in `buf` (the file's bytes) in place: afterwards its first
    /// `geo.page_size` bytes are the page. Nothing to do for a plain file.
    fn open_sealed(&self, id: u64, buf: &mut [u8]) -> Result<()> {
        let Some(seal) = &self.seal else {
            return Ok(());
        };
        let (data, trailer) = buf.split_at_mut(self.geo.page_size);
        if seal.open(Domain::Page, [id, 0, 0], data, trailer) {
            return Ok(());
        }
        Err(Error::Corrupt(format!(
            "{}: page {id} fails its authentication (damaged, altered, or not this file's page {id})",
            self.what
        )))
    }

    /// The header of page `id` just read into `buf` by [`Pager::read_opened`], checked. A
    /// sealed page's tag has authenticated every byte of it (its checksum included, computed
    /// before it was sealed), so its checksum is not computed again: a second pass over the
    /// page that can find nothing the tag did not (a plain page's checksum is verified).
    fn open_read(&self, buf: &[u8], id: u64) -> Result<PageHead> {
        if self.seal.is_some() {
            page::open_checked_page(buf, id, &self.what)
        } else {
            page::open_page(buf, id, &self.what)
        }
    }

    /// Page `id` as the file holds it: `buf` (`geo.page_size` bytes) sealed when encrypted.
    pub(crate) fn physical(&self, id: u64, buf: &[u8]) -> Vec<u8> {
        sealed_page(self.seal.as_deref(), id, buf, self.phys)
    }

    /// Writes the page in `buf` (`geo.page_size` bytes) as page `id`, sealing it in place
    /// (`buf` grows to the file's page size) when encrypted.
    fn write_in_place(&self, id: u64, buf: &mut Vec<u8>) -> Result<()> {
        if let Some(seal) = &self.seal {
            buf.resize(self.phys, 0);
            let (data, trailer) = buf.split_at_mut(self.geo.page_size);
            seal.seal(Domain::Page, [id, 0, 0], data, trailer);
        }
        self.file.write_at(self.offset(id)?, buf)
    }

    /// Writes a whole page buffer (`geo.page_size` bytes) as page `id`.
    pub(crate) fn write_raw(&self, id: u64, buf: &[u8]) -> Result<()> {
        if self.seal.is_none() {
            return self.file.write_at(self.offset(id)?, buf);
        }
        self.file
            .write_at(self.offset(id)?, &self.physical(id, buf))
    }

    /// Estimated memory of a decoded node.
    fn node_bytes(&self, n: &Node) -> usize {
        let entries = match n {
            Node::Leaf { keys, .. } => keys.len(),
            Node::Image(img) => img.len(),
            Node::Branch { keys, .. } => keys.len(),
        };
        self.geo.node_size(n) + 64 * entries + 64
    }

    /// The tree node stored in page `id`: from the cache, or read, verified and decoded. A
    /// leaf is cached as read ([`PageLeaf`]) and decoded for the caller.
    pub(crate) fn node(&self, id: u64) -> Result<Arc<Node>> {
        let cached = self.cache.lock().get(id);
        match cached {
            Some(Cached::Node(n)) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(n);
            }
            Some(Cached::Leaf(l)) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return l.decode(id, &self.what).map(Arc::new);
            }
            None => {}
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let (buf, head) = self.read_checked(id)?;
        if head.kind == KIND_LEAF {
            let leaf = PageLeaf::new(buf, head, id, &self.what)?;
            let node = leaf.decode(id, &self.what)?;
            let bytes = leaf.bytes();
            self.cache
                .lock()
                .insert(id, Cached::Leaf(Arc::new(leaf)), bytes);
            return Ok(Arc::new(node));
        }
        let node = Arc::new(page::decode_node(&buf, head, id, &self.what)?);
        let bytes = self.node_bytes(&node);
        self.cache
            .lock()
            .insert(id, Cached::Node(Arc::clone(&node)), bytes);
        Ok(node)
    }

    /// The node in page `id` when it is a branch (decoded and cached as by [`Pager::node`]);
    /// a leaf is searched in place by `f`: from the cache, or read and verified. A leaf
    /// read from the file is kept in the cache ([`PageLeaf`]) when it is missed again soon
    /// after (see the module notes), or at once when `cache_leaves` (the writer, whose reads
    /// precede changes to the same leaves); a mapped leaf never (the OS page cache is its
    /// cache).
    pub(crate) fn leaf_probe(
        &self,
        id: u64,
        cache_leaves: bool,
        f: impl FnOnce(&LeafPage<'_>) -> Result<()>,
    ) -> Result<Probe> {
        let cached = self.cache.lock().get(id);
        match cached {
            Some(Cached::Node(n)) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(Probe::Node(n));
            }
            Some(Cached::Leaf(l)) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                f(&l.page(id, &self.what))?;
                return Ok(Probe::Done);
            }
            None => {}
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let mut f = Some(f);
        // Read into this thread's buffer: a leaf searched once is searched there; a page
        // that is kept (a branch, a leaf missed again) is copied out of it.
        let kept = self.with_page(id, |buf, head, mapped| {
            if head.kind != KIND_LEAF {
                let node = page::decode_node(&Bytes::copy_from_slice(buf), head, id, &self.what)?;
                return Ok(Some(Cached::Node(Arc::new(node))));
            }
            // A sealed leaf is admitted as a plain one is, on its second miss: it is opened
            // (decrypted) into this thread's buffer and searched there the first time. Keeping
            // every sealed leaf at its first miss cost more than the decryption it saved
            // (a copy, its offsets and search aid, and an eviction with its frees per miss:
            // 20% of a random get's profile against 7.5% for the decryption), and under a
            // random workload larger than the cache it bought no hits a second-miss
            // admission does not.
            let keep = !mapped && (cache_leaves || self.missed_again(id));
            if !keep {
                let search = f.take().expect("called once");
                search(&LeafPage {
                    buf,
                    head,
                    id,
                    what: &self.what,
                    cached: None,
                })?;
                return Ok(None);
            }
            let leaf = PageLeaf::new(Bytes::copy_from_slice(buf), head, id, &self.what)?;
            Ok(Some(Cached::Leaf(Arc::new(leaf))))
        })?;
        match kept {
            None => Ok(Probe::Done),
            Some(Cached::Node(n)) => {
                let bytes = self.node_bytes(&n);
                self.cache
                    .lock()
                    .insert(id, Cached::Node(Arc::clone(&n)), bytes);
                Ok(Probe::Node(n))
            }
            Some(Cached::Leaf(l)) => {
                self.cache
                    .lock()
                    .insert(id, Cached::Leaf(Arc::clone(&l)), l.bytes());
                let search = f.take().expect("called once");
                search(&l.page(id, &self.what))?;
                Ok(Probe::Done)
            }
        }
    }

    /// Whether leaf `id` was missed lately (and forgets it); else remembers this miss.
    fn missed_again(&self, id: u64) -> bool {
        let mut recent = self.recent_misses.lock();
        if recent.remove(&id) {
            return true;
        }
        if recent.len() >= RECENT_MISSES {
            recent.clear();
        }
        recent.insert(id);
        false
    }

    /// Calls `f` with page `id`, checked, and its header: the readers' probe of a page that is
    /// not cached. The page is searched where the memory map has it (its checksum verified
    /// the first time only, see `storage::map`), or else read into this thread's page buffer
    /// (allocated once, not zeroed per read) and verified. `f` learns whether the page came
    /// from the map; it must not read pages itself (it holds the map, see `MappedPage`).
    fn with_page<R>(
        &self,
        id: u64,
        f: impl FnOnce(&[u8], PageHead, bool) -> Result<R>,
    ) -> Result<R> {
        if let Some(p) = self.file.mapped_page(id) {
            let head = if p.checked() {
                page::open_checked_page(p.bytes(), id, &self.what)?
            } else {
                let head = page::open_page(p.bytes(), id, &self.what)?;
                p.set_checked();
                head
            };
            return f(p.bytes(), head, true);
        }
        crate::scratch::with(&PAGE, |buf| {
            buf.resize(self.phys, 0);
            self.read_opened(id, buf)?;
            let buf = &buf[..self.geo.page_size];
            let head = self.open_read(buf, id)?;
            f(buf, head, false)
        })
    }

    /// A private copy of the node in page `id`, for a writer about to change it (and free the
    /// page): a cached node is copied; otherwise the page is read and decoded for the writer
    /// alone, without filling the cache with a page that is being replaced.
    pub(crate) fn node_for_change(&self, id: u64) -> Result<Node> {
        let cached = self.cache.lock().get(id);
        match cached {
            Some(Cached::Node(n)) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                Ok(n.copy_for_change())
            }
            Some(Cached::Leaf(l)) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                Ok(Node::Image(l.image()))
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                let (buf, head) = self.read_checked(id)?;
                if head.kind == KIND_LEAF {
                    return Ok(Node::Image(LeafImage::from_page(
                        buf, head, id, &self.what,
                    )?));
                }
                page::decode_node(&buf, head, id, &self.what)
            }
        }
    }

    /// Reads and verifies a tree page, bypassing the cache (fsck, backup).
    pub(crate) fn read_node_uncached(&self, id: u64) -> Result<Node> {
        let (buf, head) = self.read_checked(id)?;
        page::decode_node(&buf, head, id, &self.what)
    }

    /// Reads and verifies page `id` into a buffer of its own (what is made of it keeps it).
    fn read_checked(&self, id: u64) -> Result<(Bytes, PageHead)> {
        let buf = Bytes::from(self.read_raw(id)?);
        let head = self.open_read(&buf, id)?;
        Ok((buf, head))
    }

    /// Encodes `node` into page `id` and writes it. A branch is cached as read back from its
    /// page (its keys then share one page buffer): the next writes and reads descend through
    /// it. A leaf is not: most leaves a checkpoint writes are not touched again soon, and the
    /// next reader that wants one reads it.
    pub(crate) fn write_node(&self, id: u64, node: &Node) -> Result<()> {
        if matches!(node, Node::Leaf { .. } | Node::Image(_)) {
            // A leaf is encoded in this thread's page buffer (no allocation and zeroing of a
            // page per leaf written) and not cached.
            crate::scratch::with(&PAGE, |buf| {
                buf.resize(self.geo.page_size, 0);
                page::encode_node(self.geo, node, id, buf)?;
                self.write_in_place(id, buf)
            })?;
            // Whatever the cache held under `id` was a page since freed.
            self.cache.lock().remove(id);
            return Ok(());
        }
        let mut buf = vec![0u8; self.geo.page_size];
        page::encode_node(self.geo, node, id, &mut buf)?;
        self.write_raw(id, &buf)?;
        let page = Bytes::from(buf);
        let node = Arc::new(page::decode_node(
            &page,
            page::head_of(&page),
            id,
            &self.what,
        )?);
        let bytes = self.node_bytes(&node);
        self.cache.lock().insert(id, Cached::Node(node), bytes);
        Ok(())
    }

    /// Forgets a cached page (its number is about to be reused).
    pub(crate) fn forget(&self, id: u64) {
        self.cache.lock().remove(id);
    }

    /// Number of overflow pages a value of `len` bytes takes.
    pub(crate) fn overflow_count(&self, len: usize) -> usize {
        len.div_ceil(self.geo.overflow_chunk()).max(1)
    }

    /// Writes `data` into the overflow chain `pages` (in order).
    pub(crate) fn write_overflow(&self, pages: &[u64], data: &[u8]) -> Result<()> {
        let chunk = self.geo.overflow_chunk();
        for (i, &id) in pages.iter().enumerate() {
            let part = &data[(i * chunk).min(data.len())..((i + 1) * chunk).min(data.len())];
            let mut buf = vec![0u8; self.geo.page_size];
            buf[PAGE_HEADER..PAGE_HEADER + part.len()].copy_from_slice(part);
            let next = pages.get(i + 1).copied().unwrap_or(0);
            // A part is at most one overflow chunk (less than a page).
            let used = u32::try_from(part.len())
                .map_err(|_| Error::Internal("overflow chunk larger than 4 GiB".into()))?;
            page::seal(&mut buf, KIND_OVERFLOW, 0, id, next, used);
            self.write_in_place(id, &mut buf)?;
        }
        Ok(())
    }

    /// Follows an overflow chain of a `len`-byte value; returns the value and, when asked,
    /// the page numbers of the chain.
    pub(crate) fn read_overflow(
        &self,
        first: u64,
        len: u32,
        pages: Option<&mut Vec<u64>>,
    ) -> Result<Bytes> {
        let mut out = Vec::with_capacity(len as usize);
        let mut ids = Vec::new();
        let mut id = first;
        let n = self.overflow_count(len as usize);
        for i in 0..n {
            if id < FIRST_DATA_PAGE {
                return Err(Error::Corrupt(format!(
                    "{}: overflow chain from page {first} points at page {id}",
                    self.what
                )));
            }
            let buf = self.read_raw(id)?;
            let head = self.open_read(&buf, id)?;
            if head.kind != KIND_OVERFLOW {
                return Err(Error::Corrupt(format!(
                    "{}: page {id} in an overflow chain is of kind {}",
                    self.what, head.kind
                )));
            }
            out.extend_from_slice(&buf[PAGE_HEADER..PAGE_HEADER + head.used as usize]);
            ids.push(id);
            if i + 1 < n {
                id = head.next;
            } else if head.next != 0 {
                return Err(Error::Corrupt(format!(
                    "{}: overflow chain from page {first} is longer than its value",
                    self.what
                )));
            }
        }
        if out.len() != len as usize {
            return Err(Error::Corrupt(format!(
                "{}: overflow value at page {first} holds {} bytes, expected {len}",
                self.what,
                out.len()
            )));
        }
        if let Some(p) = pages {
            p.extend(ids);
        }
        Ok(Bytes::from(out))
    }

    /// Writes a free list into the pages `at` (a chain) and returns its head (0 when `at` is
    /// empty). `groups` are (tag, pages): each list page holds pages of one group and carries
    /// its tag (the low 32 bits of the generation from which on no tree reaches them; 0: free
    /// for every reader) at header offset 28. `at` must have room: [`free_list_pages`].
    pub(crate) fn write_freelist(&self, at: &[u64], groups: &[(u32, Vec<u64>)]) -> Result<u64> {
        let per = self.geo.freelist_per_page();
        let mut parts = groups
            .iter()
            .flat_map(|(tag, ids)| ids.chunks(per).map(move |c| (*tag, c)));
        // Pages of `at` beyond the parts stay empty (the list shrank while pages were taken
        // for it).
        for (i, &id) in at.iter().enumerate() {
            let (tag, part) = parts.next().unwrap_or((0, &[]));
            let mut buf = vec![0u8; self.geo.page_size];
            for (j, p) in part.iter().enumerate() {
                let o = PAGE_HEADER + 8 * j;
                buf[o..o + 8].copy_from_slice(&p.to_le_bytes());
            }
            let next = at.get(i + 1).copied().unwrap_or(0);
            // A part is at most one page's worth of ids.
            let too_many = || Error::Internal("free-list page holds too many ids".into());
            let count = u16::try_from(part.len()).map_err(|_| too_many())?;
            let used = u32::try_from(8 * part.len()).map_err(|_| too_many())?;
            page::seal(&mut buf, KIND_FREELIST, count, id, next, used);
            buf[28..32].copy_from_slice(&tag.to_le_bytes());
            let crc = crc32fast::hash(&buf[4..]);
            buf[0..4].copy_from_slice(&crc.to_le_bytes());
            self.write_in_place(id, &mut buf)?;
        }
        if parts.next().is_some() {
            return Err(Error::Internal("free list outgrew its pages".into()));
        }
        Ok(at.first().copied().unwrap_or(0))
    }

    /// Reads a free-list chain: returns ((tag, page) for every free page, the chain's own
    /// pages). Lists written before tags hold 0 there.
    #[allow(clippy::type_complexity)]
    pub(crate) fn read_freelist(
        &self,
        head: u64,
        limit: u64,
    ) -> Result<(Vec<(u32, u64)>, Vec<u64>)> {
        let mut ids = Vec::new();
        let mut own = Vec::new();
        let mut at = head;
        while at != 0 {
            if at < FIRST_DATA_PAGE || at >= limit || own.len() as u64 > limit {
                return Err(Error::Corrupt(format!(
                    "{}: free list points at page {at} (file has {limit} pages)",
                    self.what
                )));
            }
            let buf = self.read_raw(at)?;
            let h = self.open_read(&buf, at)?;
            if h.kind != KIND_FREELIST {
                return Err(Error::Corrupt(format!(
                    "{}: page {at} in the free list is of kind {}",
                    self.what, h.kind
                )));
            }
            let tag = u32::from_le_bytes([buf[28], buf[29], buf[30], buf[31]]);
            for j in 0..h.count as usize {
                ids.push((tag, page::u64_at(&buf, PAGE_HEADER + 8 * j)));
            }
            own.push(at);
            at = h.next;
        }
        Ok((ids, own))
    }

    /// The manifest in force: the valid slot with the highest generation (read by copy).
    pub(crate) fn read_manifest(&self) -> Result<super::manifest::Manifest> {
        // A slot that fails its authentication (never written, or torn) is an invalid slot,
        // as one failing its checksum is.
        let slot = |id| match self.read_raw(id) {
            Err(Error::Corrupt(_)) if self.seal.is_some() => Ok(vec![0u8; self.geo.page_size]),
            r => r,
        };
        super::manifest::Manifest::choose(
            &slot(1)?,
            &slot(2)?,
            u32::try_from(self.phys).unwrap_or(0),
            self.what(),
        )
    }

    /// Forgets every cached page: another process's checkpoint may have written new
    /// contents into page numbers this cache holds.
    pub(crate) fn clear_cache(&self) {
        let mut c = self.cache.lock();
        let budget = c.budget;
        *c = PageCache::new(budget);
        drop(c);
        self.recent_misses.lock().clear();
    }

    /// (hits, misses, cached bytes, budget) of the page cache.
    pub(crate) fn cache_stats(&self) -> (u64, u64, usize, usize) {
        let c = self.cache.lock();
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
            c.bytes,
            c.budget,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sealed leaf is opened and searched in place at its first miss and admitted to the
    /// cache at its second, as a plain one is; it reads back under either cipher, and a
    /// byte altered in the file is refused.
    #[test]
    fn sealed_leaves_are_admitted_on_their_second_miss() {
        use crate::crypto::seal::{new_file_id, Cipher, DataKey};
        use crate::storage::fault::Faults;
        for cipher in [Cipher::XChaCha20Poly1305, Cipher::Aes256Gcm] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("t.db");
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)
                .unwrap();
            let sealer = Sealer::new(&DataKey::random(), new_file_id(), cipher);
            let pager = Pager::new(
                PageFile::new(file, &path, Faults::default()),
                4096,
                Some(Arc::new(sealer)),
                1 << 20,
            );
            let keys: Vec<Bytes> = (0..20u32)
                .map(|i| Bytes::from(format!("key{i:04}")))
                .collect();
            let vals = (0..20u32)
                .map(|i| Val::Data(Bytes::from(format!("value {i}"))))
                .collect();
            pager
                .write_node(5, &Node::leaf(pager.geo, keys, vals))
                .unwrap();
            pager.clear_cache();
            let probe = || {
                let mut got = None;
                let p = pager
                    .leaf_probe(5, false, |leaf| {
                        got = leaf.get(b"key0007")?;
                        Ok(())
                    })
                    .unwrap();
                assert!(matches!(p, Probe::Done));
                match got {
                    Some(Val::Data(b)) => assert_eq!(&b[..], b"value 7"),
                    _ => panic!("key0007 not found in the sealed leaf"),
                }
                pager.cache_stats().2
            };
            assert_eq!(probe(), 0, "{cipher:?}: a leaf missed once is not cached");
            assert!(probe() > 0, "{cipher:?}: a leaf missed twice is cached");
            // A hit now; the file altered under a fresh cache is refused.
            assert!(probe() > 0);
            let mut raw = pager.read_physical(5).unwrap();
            raw[100] ^= 1;
            pager.file.write_at(5 * 4096, &raw).unwrap();
            pager.clear_cache();
            assert!(matches!(
                pager.leaf_probe(5, false, |_| Ok(())),
                Err(Error::Corrupt(_))
            ));
        }
    }

    /// CLOCK: a full cache of entries not read since they came in takes new ones in order,
    /// each new entry staying until the hand has gone round: reading the last `budget`
    /// pages over and over hits every time once they are in.
    #[test]
    fn new_entries_stay_for_a_turn_of_the_hand() {
        let mut c = PageCache::new(1000);
        let leaf = Cached::Node(Arc::new(Node::Leaf {
            keys: Vec::new().into(),
            vals: Vec::new(),
            size: 0,
        }));
        for id in 0..10 {
            c.insert(id, leaf.clone(), 100);
        }
        for id in 10..18 {
            c.insert(id, leaf.clone(), 100);
        }
        for id in 10..18 {
            assert!(
                c.get(id).is_some(),
                "page {id} was evicted by a later insert"
            );
        }
        // A working set of 8 pages, read round after round, beside pages read once.
        let mut c = PageCache::new(1000);
        let mut misses = 0;
        for round in 0..20 {
            for id in 100..108 {
                if c.get(id).is_none() {
                    misses += 1;
                    c.insert(id, leaf.clone(), 100);
                }
            }
            c.insert(1000 + round, leaf.clone(), 100);
        }
        assert_eq!(misses, 8, "only the first round misses");
        assert!(c.bytes <= 1000);
    }

    /// A scan's start in a cached leaf (found through its search aid) is where a walk of the
    /// same page bytes finds it, for every `after` key: each present, between two, before
    /// the first and past the last.
    #[test]
    fn copy_run_starts_where_a_walk_does() {
        let g = Geometry { page_size: 8192 };
        let keys: Vec<Bytes> = (0..150u32)
            .map(|i| Bytes::from(format!("user{:05}@example.com", i * 7).into_bytes()))
            .collect();
        let vals = keys.iter().map(|k| Val::Data(k.slice(4..9))).collect();
        let node = Node::leaf(g, keys.clone(), vals);
        let mut buf = vec![0u8; g.page_size];
        page::encode_node(g, &node, 9, &mut buf).unwrap();
        let head = page::open_page(&buf, 9, "t").unwrap();
        let leaf = PageLeaf::new(Bytes::from(buf.clone()), head, 9, "t").unwrap();
        assert!(leaf.aid().is_none(), "no aid for the first search");
        assert!(
            leaf.aid().is_some(),
            "a leaf of 150 keys has a search aid from then on"
        );
        let cached = leaf.page(9, "t");
        let walked = LeafPage {
            buf: &buf,
            head,
            id: 9,
            what: "t",
            cached: None,
        };
        let mut probes: Vec<Vec<u8>> = vec![b"a".to_vec(), b"zz".to_vec(), b"user".to_vec()];
        for k in &keys {
            probes.push(k.to_vec());
            let mut between = k.to_vec();
            between.push(b'!');
            probes.push(between);
        }
        for after in probes.iter().map(|p| Some(&p[..])).chain([None]) {
            for max in [1, 3, 1000] {
                let (mut a, mut b) = (Vec::new(), Vec::new());
                cached.copy_run(after, max, &mut a, false).unwrap();
                walked.copy_run(after, max, &mut b, false).unwrap();
                let firsts =
                    |v: &Vec<(Bytes, Val)>| v.iter().map(|e| e.0.clone()).collect::<Vec<_>>();
                assert_eq!(firsts(&a), firsts(&b), "after {after:?}, max {max}");
            }
        }
    }

    #[test]
    fn cache_stays_within_budget() {
        let mut c = PageCache::new(1000);
        let leaf = Arc::new(Node::Leaf {
            keys: Vec::new().into(),
            vals: Vec::new(),
            size: 0,
        });
        let leaf = Cached::Node(leaf);
        for id in 0..100 {
            c.insert(id, leaf.clone(), 90);
            assert!(c.bytes <= 1000);
            if id % 3 == 0 {
                let _ = c.get(id);
            }
        }
        assert!(c.get(99).is_some(), "the newest entry stays");
        assert!(c.get(98).is_some(), "so does the one before it");
        c.insert(5, leaf, 5000);
        assert!(
            c.bytes <= 1000,
            "an entry larger than the budget is not kept"
        );
    }
}
