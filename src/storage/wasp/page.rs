//! Page layout of `NAME.db` under WASP and the decoded B+tree node ([`Node`]) each page holds.
//! Every page carries a CRC32 over all its bytes after the checksum field and its own page
//! number, so a damaged or misdirected page is `Corrupt`, never garbage data. The layer
//! beneath is the raw page buffer read by the pager; see `docs/FORMAT.md`.
//!
//! ```text
//! page header (32 bytes)
//!   0 u32 crc32 of bytes 4..page_size     4 u8 kind (1 leaf, 2 branch, 3 overflow, 4 free list)
//!   5 u8 reserved (0)                     6 u16 count (entries / keys / ids)
//!   8 u64 page number                    16 u64 next page (overflow, free list; 0 = none)
//!  24 u32 body bytes used                28 u32 reserved (0)
//! leaf entry:   klen u16, vkind u8 (0 inline, 1 overflow), vlen u32, key, inline value | u64 page
//! branch body:  child0 u64, then count x (klen u16, key, child u64)
//! overflow body: value bytes (body bytes used);   free list body: count x u64 page numbers
//! ```

use super::super::Bytes;
use crate::error::{Error, Result};
use std::sync::Arc;

pub(crate) const PAGE_HEADER: usize = 32;
pub(crate) const KIND_LEAF: u8 = 1;
pub(crate) const KIND_BRANCH: u8 = 2;
pub(crate) const KIND_OVERFLOW: u8 = 3;
pub(crate) const KIND_FREELIST: u8 = 4;
/// Fixed bytes of one leaf entry besides key and value.
const LEAF_ENTRY_FIXED: usize = 7;

/// A value in a leaf: in the page, or a chain of overflow pages (`Data` until a checkpoint
/// writes it; large `Data` becomes `Overflow` then).
#[derive(Clone, Debug)]
pub(crate) enum Val {
    Data(Bytes),
    Overflow { page: u64, len: u32 },
}

impl Val {
    pub(crate) fn len(&self) -> usize {
        match self {
            Val::Data(b) => b.len(),
            Val::Overflow { len, .. } => *len as usize,
        }
    }
}

/// Where a child lives: on disk, or (written since the last checkpoint) only in memory.
#[derive(Clone, Debug)]
pub(crate) enum Ptr {
    Disk(u64),
    Mem(Arc<Node>),
}

/// Children a chunk of [`Children`] holds (all chunks but the last are full).
const CHUNK: usize = 64;

/// A branch's child pointers, in chunks of [`CHUNK`] shared copy-on-write.
///
/// Copying a branch for a change (once per transaction for every branch on the changed
/// path) then clones one reference per chunk, and the change copies the one chunk it
/// touches, instead of cloning (and, when the old state goes, dropping) every child pointer:
/// a branch of 8-byte record ids holds 500-700 of them, and before this that clone and drop
/// were a fifth of a single-document update (callgrind, `nexus_update` at sync normal over
/// 20,000 documents: 45.9k instructions before, 38.6k after; 37.3k over 2,000 documents,
/// whose branches are small).
#[derive(Clone, Debug, Default)]
pub(crate) struct Children {
    chunks: Vec<Arc<[Ptr]>>,
    len: usize,
}

impl Children {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Every child in order.
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = &Ptr> + '_ {
        self.chunks.iter().flat_map(|c| c.iter())
    }

    /// The children from `start` on (none when `start >= len`).
    pub(crate) fn iter_from(&self, start: usize) -> impl Iterator<Item = &Ptr> + '_ {
        let (first, skip) = (start / CHUNK, start % CHUNK);
        let head = self
            .chunks
            .get(first)
            .and_then(|c| c.get(skip..))
            .unwrap_or(&[]);
        let rest = self.chunks.get(first + 1..).unwrap_or(&[]);
        head.iter().chain(rest.iter().flat_map(|c| c.iter()))
    }

    /// Every child, to change (every chunk becomes private to this node).
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Ptr> + '_ {
        self.chunks
            .iter_mut()
            .flat_map(|c| Arc::make_mut(c).iter_mut())
    }

    /// Takes the chunks from the one holding `i` to the end apart: returns their children and
    /// the index of `i` among them.
    fn take_tail(&mut self, i: usize) -> (Vec<Ptr>, usize) {
        let first = (i / CHUNK).min(self.chunks.len());
        let mut tail = Vec::with_capacity(self.len - first * CHUNK + 1);
        for c in self.chunks.drain(first..) {
            tail.extend(c.iter().cloned());
        }
        self.len = first * CHUNK;
        (tail, i - first * CHUNK)
    }

    /// Appends `children` after the last (full) chunk.
    fn put_tail(&mut self, children: Vec<Ptr>) {
        debug_assert_eq!(self.len % CHUNK, 0);
        self.len += children.len();
        self.chunks.extend(children.chunks(CHUNK).map(Arc::from));
    }

    /// Inserts `p` at `i` (`i <= len`).
    pub(crate) fn insert(&mut self, i: usize, p: Ptr) {
        let (mut tail, at) = self.take_tail(i);
        tail.insert(at, p);
        self.put_tail(tail);
    }

    /// Removes and returns the child at `i`.
    pub(crate) fn remove(&mut self, i: usize) -> Ptr {
        let (mut tail, at) = self.take_tail(i);
        let p = tail.remove(at);
        self.put_tail(tail);
        p
    }

    /// Moves the children from `at` on into a new `Children`.
    pub(crate) fn split_off(&mut self, at: usize) -> Children {
        let (mut tail, i) = self.take_tail(at);
        let right = tail.split_off(i);
        self.put_tail(tail);
        right.into()
    }

    /// Appends every child of `other`.
    pub(crate) fn append(&mut self, other: Children) {
        let (mut tail, _) = self.take_tail(self.len);
        tail.extend(other.iter().cloned());
        self.put_tail(tail);
    }
}

impl From<Vec<Ptr>> for Children {
    fn from(children: Vec<Ptr>) -> Self {
        let mut c = Children::default();
        c.put_tail(children);
        c
    }
}

impl std::ops::Index<usize> for Children {
    type Output = Ptr;
    fn index(&self, i: usize) -> &Ptr {
        assert!(i < self.len, "child {i} of {}", self.len);
        &self.chunks[i / CHUNK][i % CHUNK]
    }
}

impl std::ops::IndexMut<usize> for Children {
    /// The child at `i`, to change: its chunk becomes private to this node.
    fn index_mut(&mut self, i: usize) -> &mut Ptr {
        assert!(i < self.len, "child {i} of {}", self.len);
        &mut Arc::make_mut(&mut self.chunks[i / CHUNK])[i % CHUNK]
    }
}

/// Spare entries a leaf copied or decoded for a change is given (an insert then does not
/// reallocate its vectors).
const LEAF_ROOM: usize = 2;

/// A decoded tree node.
#[derive(Clone, Debug)]
pub(crate) enum Node {
    /// `size`: the encoded body size ([`Geometry::node_size`]), kept by every change so
    /// that a put need not add up the entries to know whether the leaf must split.
    Leaf {
        keys: LeafKeys,
        vals: Vec<Val>,
        size: usize,
    },
    /// `children[i]` holds keys `k` with `keys[i-1] <= k < keys[i]`.
    Branch { keys: SepKeys, children: Children },
    /// A leaf read from its page to be changed, kept as the page's bytes and changed in
    /// place ([`LeafImage`]) while a change fits the page; anything else (a split, a delete,
    /// a value too large for the page) decodes it into a [`Node::Leaf`] first.
    Image(LeafImage),
}

impl Node {
    /// A leaf of these entries, its size added up.
    pub(crate) fn leaf(g: Geometry, keys: Vec<Bytes>, vals: Vec<Val>) -> Node {
        let size = keys
            .iter()
            .zip(&vals)
            .map(|(k, v)| g.leaf_entry(k, v))
            .sum();
        Node::Leaf {
            keys: keys.into(),
            vals,
            size,
        }
    }

    /// A copy to change (copy-on-write): a leaf's values are copied with room for an insert,
    /// its keys and a branch's separators are shared until the copy changes them.
    pub(crate) fn copy_for_change(&self) -> Node {
        match self {
            Node::Leaf { keys, vals, size } => {
                let mut v = Vec::with_capacity(vals.len() + LEAF_ROOM);
                v.extend(vals.iter().cloned());
                Node::Leaf {
                    keys: keys.clone(),
                    vals: v,
                    size: *size,
                }
            }
            Node::Branch { .. } | Node::Image(_) => self.clone(),
        }
    }

    /// Decodes a leaf image in place (a no-op for the other kinds): for the changes and the
    /// paths that are not worth teaching the image (splits, deletes, checks, relocation).
    pub(crate) fn decode_in_place(&mut self, g: Geometry) {
        if let Node::Image(img) = self {
            *self = img.decode(g);
        }
    }
}

/// A leaf as its page's bytes, for a writer: where most commits change a leaf by one entry
/// (an update replacing a value, an insert into a leaf with room), editing the page costs
/// one copy of it and a move of the bytes after the entry, where decoding it made a key and
/// a value (two reference counts) per entry, and writing it at the checkpoint encoded them
/// all again (callgrind, a single-document update over 200,000 documents: decode 7k and
/// encode 6k of 67k instructions; an insert with a generated id decodes a leaf of the id
/// map, 107 entries, per document).
///
/// `buf` is a whole page: entries from [`PAGE_HEADER`] on, `used` bytes of them; the bytes
/// after them and the header are stale (the page written is zeroed after the entries and
/// sealed, see [`encode_node`]). Values handed out are
/// slices of `buf`; a change copies it first when any is still held (copy-on-write).
#[derive(Clone, Debug)]
pub(crate) struct LeafImage {
    buf: Bytes,
    /// Where each entry starts, in key order.
    offs: Vec<u16>,
    used: usize,
}

impl LeafImage {
    /// The image of a checked leaf page read for a writer.
    pub(crate) fn from_page(buf: Bytes, head: PageHead, id: u64, what: &str) -> Result<Self> {
        let offs = leaf_offsets(&buf, head, id, what)?;
        Ok(Self {
            offs,
            used: head.used as usize,
            buf,
        })
    }

    /// The image of a cached leaf page: its bytes, its entries' offsets, its used bytes.
    pub(crate) fn from_parts(buf: Bytes, offs: Vec<u16>, used: u32) -> Self {
        Self {
            buf,
            offs,
            used: used as usize,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.offs.len()
    }

    /// Body bytes used (the node's encoded size).
    pub(crate) fn size(&self) -> usize {
        self.used
    }

    pub(crate) fn key(&self, i: usize) -> &[u8] {
        leaf_entry_at(&self.buf, self.offs[i].into()).0
    }

    /// The key of entry `i`, a slice of the page.
    pub(crate) fn key_bytes(&self, i: usize) -> Bytes {
        self.buf.slice_ref(self.key(i))
    }

    /// The value of entry `i`: a slice of the page, or its overflow chain.
    pub(crate) fn val(&self, i: usize) -> Val {
        val_at(&self.buf, self.offs[i])
    }

    /// Where `key` is (`Ok`), or where it would go (`Err`), as `binary_search` says.
    pub(crate) fn search(&self, key: &[u8]) -> std::result::Result<usize, usize> {
        // Keys arriving in ascending order go past the last one: one comparison.
        match self.offs.last() {
            None => return Err(0),
            Some(&o) if leaf_entry_at(&self.buf, o.into()).0 < key => return Err(self.offs.len()),
            Some(_) => {}
        }
        search_offsets(&self.buf, &self.offs, key)
    }

    /// Puts `key` -> `val` in place when the page has room for it and the value stays in
    /// the page: `Some(old value)`; `None` (nothing changed) when it does not, and the caller
    /// decodes the leaf to split it or to write the value's overflow chain.
    pub(crate) fn try_put(&mut self, g: Geometry, key: &[u8], val: &Val) -> Option<Option<Val>> {
        let Val::Data(data) = val else { return None };
        if !g.inline(key.len(), data.len()) {
            return None;
        }
        let new_len = LEAF_ENTRY_FIXED + key.len() + data.len();
        let vlen = u32::try_from(data.len()).ok()?;
        let klen = u16::try_from(key.len()).ok()?;
        let found = self.search(key);
        let (i, old_len, old) = match found {
            Ok(i) => {
                let at = usize::from(self.offs[i]);
                let (k, v) = leaf_entry_at(&self.buf, at);
                let (old_len, old) = match v {
                    RawVal::Data(d) => (
                        LEAF_ENTRY_FIXED + k.len() + d.len(),
                        Val::Data(Bytes::copy_from_slice(d)),
                    ),
                    RawVal::Overflow { page, len } => {
                        (LEAF_ENTRY_FIXED + k.len() + 8, Val::Overflow { page, len })
                    }
                };
                (i, old_len, Some(old))
            }
            Err(i) => (i, 0, None),
        };
        let used = self.used - old_len + new_len;
        if used > g.capacity() {
            return None;
        }
        let at = self
            .offs
            .get(i)
            .map_or(PAGE_HEADER + self.used, |&o| usize::from(o));
        let end = PAGE_HEADER + self.used;
        let mut page = match std::mem::take(&mut self.buf).try_into_mut() {
            Ok(page) => page,
            Err(shared) => bytes::BytesMut::from(&shared[..]),
        };
        // The entries after this one move to make room (or close up).
        page.copy_within(at + old_len..end, at + new_len);
        page[at..at + 2].copy_from_slice(&klen.to_le_bytes());
        page[at + 2] = 0;
        page[at + 3..at + 7].copy_from_slice(&vlen.to_le_bytes());
        let k = at + LEAF_ENTRY_FIXED;
        page[k..k + key.len()].copy_from_slice(key);
        page[k + key.len()..at + new_len].copy_from_slice(data);
        self.buf = page.freeze();
        self.used = used;
        if found.is_err() {
            // Offsets are below the page size (at most 16 KiB).
            #[allow(clippy::cast_possible_truncation)]
            self.offs.insert(i, at as u16);
        }
        if new_len != old_len {
            for o in &mut self.offs[i + 1..] {
                // Within the page, as above.
                #[allow(clippy::cast_possible_truncation)]
                {
                    *o = (usize::from(*o) + new_len - old_len) as u16;
                }
            }
        }
        Some(old)
    }

    /// The same leaf decoded: a key and a value per entry, slices of the page.
    pub(crate) fn decode(&self, g: Geometry) -> Node {
        let mut keys = Vec::with_capacity(self.offs.len() + LEAF_ROOM);
        let mut vals = Vec::with_capacity(self.offs.len() + LEAF_ROOM);
        for i in 0..self.offs.len() {
            keys.push(self.buf.slice_ref(self.key(i)));
            vals.push(self.val(i));
        }
        Node::leaf(g, keys, vals)
    }

    /// Writes the leaf's entries into `buf` (one page); returns where they end. The caller
    /// zeroes the rest and seals.
    fn encode_into(&self, buf: &mut [u8]) -> usize {
        let end = PAGE_HEADER + self.used;
        buf[PAGE_HEADER..end].copy_from_slice(&self.buf[PAGE_HEADER..end]);
        end
    }
}

/// Sorted keys with a search aid built at their second search: the bytes all keys share,
/// and for each key the next 8 bytes as an integer, side by side in one array. A search then
/// compares integers in one contiguous array and dereferences only the few keys whose 8 bytes
/// tie, instead of chasing a pointer to every key it probes (a cache miss each in a node that
/// was not searched lately). An insert that shares the prefix keeps the aid; any other change
/// drops it; an unchanged node (every cached page) keeps it.
///
/// The first search is a plain binary search: a leaf decoded for a change (a single-document
/// update reads its page, copies it and searches the copy once) is mostly replaced before it
/// is searched again, and building its aid cost ten times that one search (callgrind,
/// `nexus_update` at sync normal over 200,000 documents: 3.9k of 66.6k instructions).
#[derive(Debug, Default)]
struct KeysInner {
    keys: Vec<Bytes>,
    aid: std::sync::OnceLock<SearchAid>,
    /// Set by the first search without an aid.
    searched: std::sync::atomic::AtomicBool,
}

impl Clone for KeysInner {
    fn clone(&self) -> Self {
        self.with_keys(self.keys.clone())
    }
}

#[derive(Clone, Debug)]
pub(crate) struct SearchAid {
    /// Length of the prefix every key shares.
    shared: usize,
    /// For each key, its 8 bytes after the shared prefix, big-endian, zero-padded.
    next8: Vec<u64>,
}

/// `binary_search`'s answer for `probe` among the sorted keys `key(0..)`, from `upper`, how
/// many of them are `<= probe`: the last of those is `probe` itself, or `probe` goes at
/// `upper`.
pub(crate) fn exact<'k>(
    upper: usize,
    key: impl Fn(usize) -> &'k [u8],
    probe: &[u8],
) -> std::result::Result<usize, usize> {
    match upper.checked_sub(1) {
        Some(at) if key(at) == probe => Ok(at),
        _ => Err(upper),
    }
}

/// Below this many keys a plain binary search is as quick.
pub(crate) const AID_MIN_KEYS: usize = 16;

impl SearchAid {
    /// The aid of the `n` sorted keys `key(0)..key(n - 1)` (`n > 0`).
    pub(crate) fn build<'k>(n: usize, key: impl Fn(usize) -> &'k [u8]) -> Self {
        let (first, last) = (key(0), key(n - 1));
        let shared = first
            .iter()
            .zip(last.iter())
            .take_while(|(a, b)| a == b)
            .count();
        Self {
            shared,
            next8: (0..n).map(|i| next8(key(i), shared)).collect(),
        }
    }

    /// How many of the keys the aid was built from are `<= probe`.
    pub(crate) fn upper_bound<'k>(&self, key: impl Fn(usize) -> &'k [u8], probe: &[u8]) -> usize {
        let (lo, hi) = self.window(&key, probe);
        Self::settle(lo, hi, key, probe)
    }

    /// The first half of [`SearchAid::upper_bound`]: the range `lo..hi` of keys whose 8 bytes
    /// after the prefix tie with `probe`'s (all keys before `lo` are below it, all from `hi`
    /// above it). Reads no key but the first.
    pub(crate) fn window<'k>(
        &self,
        key: impl Fn(usize) -> &'k [u8],
        probe: &[u8],
    ) -> (usize, usize) {
        self.window_from(None, key, probe)
    }

    /// [`SearchAid::window`] of the next of ascending probes: `after` is the previous
    /// probe's `lo` (every key before it is below this probe too). The range is found by
    /// galloping from there, so probes close to each other read the aid's words close to
    /// each other, not a binary search's spread.
    pub(crate) fn window_from<'k>(
        &self,
        after: Option<usize>,
        key: impl Fn(usize) -> &'k [u8],
        probe: &[u8],
    ) -> (usize, usize) {
        let n = self.next8.len();
        // Keys are sorted, so every key starts with the shared prefix: a key that differs
        // from it within it lies before or after all of them.
        let prefix = &key(0)[..self.shared];
        let m = probe.len().min(self.shared);
        match probe[..m].cmp(&prefix[..m]) {
            std::cmp::Ordering::Less => return (0, 0),
            std::cmp::Ordering::Greater => return (n, n),
            std::cmp::Ordering::Equal if probe.len() < self.shared => return (0, 0),
            std::cmp::Ordering::Equal => {}
        }
        // Zero-padded big-endian 8-byte windows keep the order: a smaller window means a
        // smaller key; only equal windows need the keys themselves.
        let h = next8(probe, self.shared);
        let lo = match after {
            None => self.next8.partition_point(|x| *x < h),
            Some(start) => self.interpolate(start.min(n), h),
        };
        let hi = lo + gallop(&self.next8[lo..], |x| x <= h);
        (lo, hi)
    }

    /// The second half of [`SearchAid::upper_bound`]: how many keys are `<= probe`, given
    /// its [`SearchAid::window`].
    pub(crate) fn settle<'k>(
        lo: usize,
        hi: usize,
        key: impl Fn(usize) -> &'k [u8],
        probe: &[u8],
    ) -> usize {
        let (mut a, mut b) = (lo, hi);
        while a < b {
            let mid = a + (b - a) / 2;
            if key(mid) <= probe {
                a = mid + 1;
            } else {
                b = mid;
            }
        }
        a
    }
}

impl SearchAid {
    /// How many words are below `h`, knowing the first `from` are: searched from where `h`
    /// would lie if the words were evenly spread between `next8[from]` and the last (record
    /// ids nearly are: one or two reads of the aid then find it), by doubling steps both ways.
    fn interpolate(&self, from: usize, h: u64) -> usize {
        let s = &self.next8;
        let n = s.len();
        if from >= n || h <= s[from] {
            return from;
        }
        let (a, b) = (s[from], s[n - 1]);
        if h > b {
            return n;
        }
        // a < h <= b, so b > a; the guess lies in from..n.
        let span = (n - 1 - from) as u128;
        let guess =
            from + usize::try_from(u128::from(h - a) * span / u128::from(b - a)).unwrap_or(0);
        let guess = guess.min(n - 1);
        if s[guess] < h {
            return guess + 1 + gallop(&s[guess + 1..], |x| x < h);
        }
        // s[hi] >= h; step back until a word below h (s[from] is one).
        let (mut hi, mut step) = (guess, 1);
        loop {
            let lo = hi.saturating_sub(step).max(from);
            if s[lo] < h {
                return lo + s[lo..hi].partition_point(|x| *x < h);
            }
            hi = lo;
            step *= 2;
        }
    }
}

/// `s.partition_point(pred)`, found by doubling steps from the start (a few reads when the
/// point is near it).
fn gallop(s: &[u64], pred: impl Fn(u64) -> bool) -> usize {
    let (mut known, mut end) = (0, 1);
    // Every word before `known` satisfies `pred`.
    while end <= s.len() && pred(s[end - 1]) {
        known = end;
        end *= 2;
    }
    let end = end.min(s.len());
    known + s[known..end].partition_point(|x| pred(*x))
}

fn next8(key: &[u8], from: usize) -> u64 {
    let mut b = [0u8; 8];
    let tail = key.get(from..).unwrap_or(&[]);
    let n = tail.len().min(8);
    b[..n].copy_from_slice(&tail[..n]);
    u64::from_be_bytes(b)
}

impl KeysInner {
    fn new(keys: Vec<Bytes>) -> Self {
        Self {
            keys,
            aid: std::sync::OnceLock::new(),
            searched: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// A copy with room for `room` more keys (the aid copied too: one array).
    fn copy_with_room(&self, room: usize) -> Self {
        let mut keys = Vec::with_capacity(self.keys.len() + room);
        keys.extend(self.keys.iter().cloned());
        self.with_keys(keys)
    }

    /// `keys` (the same keys as this one's) with this one's aid and search state.
    fn with_keys(&self, keys: Vec<Bytes>) -> Self {
        Self {
            keys,
            aid: self.aid.clone(),
            searched: std::sync::atomic::AtomicBool::new(
                self.searched.load(std::sync::atomic::Ordering::Relaxed),
            ),
        }
    }

    /// Inserts `key` at `i` (the keys stay sorted), keeping the search aid when the key
    /// shares the prefix all keys share (the common case), so the next search need not
    /// rebuild it.
    fn insert(&mut self, i: usize, key: Bytes) {
        if let Some(aid) = self.aid.get_mut() {
            let shared = aid.shared;
            if key.len() >= shared && self.keys[0][..shared] == key[..shared] {
                aid.next8.insert(i, next8(&key, shared));
            } else {
                self.aid.take();
            }
        }
        self.keys.insert(i, key);
    }

    /// How many keys are `<= key`.
    fn upper_bound(&self, key: &[u8]) -> usize {
        let keys = &self.keys;
        // At or past the last key (appends in ascending order): all of them.
        if keys.last().is_some_and(|last| &last[..] <= key) {
            return keys.len();
        }
        let plain = || keys.partition_point(|k| &k[..] <= key);
        if keys.len() < AID_MIN_KEYS {
            return plain();
        }
        let aid = match self.aid.get() {
            Some(aid) => aid,
            None if !self
                .searched
                .swap(true, std::sync::atomic::Ordering::Relaxed) =>
            {
                return plain();
            }
            None => self
                .aid
                .get_or_init(|| SearchAid::build(keys.len(), |i| &keys[i][..])),
        };
        aid.upper_bound(|i| &keys[i][..], key)
    }
}

/// A leaf's keys ([`KeysInner`], with the search aid), shared by every copy of the leaf
/// until one changes them (`DerefMut` and [`LeafKeys::insert`] copy them then, with room for
/// an insert). A commit that replaces one value (an update) copies the leaf's values but not
/// its keys.
#[derive(Clone, Debug, Default)]
pub(crate) struct LeafKeys(Arc<KeysInner>);

impl LeafKeys {
    /// The keys, moved out when no other copy holds them.
    pub(crate) fn into_vec(self) -> Vec<Bytes> {
        match Arc::try_unwrap(self.0) {
            Ok(inner) => inner.keys,
            Err(shared) => shared.keys.to_vec(),
        }
    }

    /// Where `key` is (`Ok`), or where it would go (`Err`), as `binary_search` says.
    pub(crate) fn search(&self, key: &[u8]) -> std::result::Result<usize, usize> {
        exact(self.0.upper_bound(key), |i| &self.0.keys[i][..], key)
    }

    /// Inserts `key` at `i` (the keys stay sorted), keeping the search aid when it can.
    pub(crate) fn insert(&mut self, i: usize, key: Bytes) {
        self.own().insert(i, key);
    }

    fn own(&mut self) -> &mut KeysInner {
        if Arc::get_mut(&mut self.0).is_none() {
            self.0 = Arc::new(self.0.copy_with_room(LEAF_ROOM));
        }
        // Unique now: `make_mut` hands out the keys without copying them.
        Arc::make_mut(&mut self.0)
    }
}

impl From<Vec<Bytes>> for LeafKeys {
    fn from(keys: Vec<Bytes>) -> Self {
        Self(Arc::new(KeysInner::new(keys)))
    }
}

impl std::ops::Deref for LeafKeys {
    type Target = Vec<Bytes>;
    fn deref(&self) -> &Vec<Bytes> {
        &self.0.keys
    }
}

impl std::ops::DerefMut for LeafKeys {
    fn deref_mut(&mut self) -> &mut Vec<Bytes> {
        let inner = self.own();
        inner.aid.take();
        &mut inner.keys
    }
}

/// A branch node's separator keys, with the search aid ([`KeysInner`]).
///
/// The keys and their aid sit behind one `Arc`, shared by every copy of the node: a
/// copy-on-write path copy for a commit that changes a value below (the common case: one
/// document updated or inserted without a split) copies the child pointers only, and the
/// keys are copied the first time a copy changes them (`DerefMut`, [`SepKeys::insert`]).
/// Before, every single-document commit cloned and later dropped each separator of every
/// branch on its path, a third of an update's time.
#[derive(Clone, Debug, Default)]
pub(crate) struct SepKeys(Arc<KeysInner>);

impl SepKeys {
    /// Inserts `key` at `i` (the keys stay sorted), keeping the search aid when the key
    /// shares the prefix all keys share (the common case: a child split), so the next
    /// descent need not rebuild it.
    pub(crate) fn insert(&mut self, i: usize, key: Bytes) {
        Arc::make_mut(&mut self.0).insert(i, key);
    }

    /// How many keys are `<= key` (the child to descend into).
    pub(crate) fn upper_bound(&self, key: &[u8]) -> usize {
        self.0.upper_bound(key)
    }
}

impl From<Vec<Bytes>> for SepKeys {
    fn from(keys: Vec<Bytes>) -> Self {
        Self(Arc::new(KeysInner::new(keys)))
    }
}

impl std::ops::Deref for SepKeys {
    type Target = Vec<Bytes>;
    fn deref(&self) -> &Vec<Bytes> {
        &self.0.keys
    }
}

impl std::ops::DerefMut for SepKeys {
    fn deref_mut(&mut self) -> &mut Vec<Bytes> {
        let inner = Arc::make_mut(&mut self.0);
        inner.aid.take();
        &mut inner.keys
    }
}

/// Size rules derived from the page size.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geometry {
    pub page_size: usize,
}

impl Geometry {
    /// Body bytes available in one page.
    pub(crate) fn capacity(self) -> usize {
        self.page_size - PAGE_HEADER
    }
    /// Longest key accepted.
    pub(crate) fn max_key(self) -> usize {
        self.page_size / 4
    }
    /// Whether a key/value pair keeps its value in the leaf.
    pub(crate) fn inline(self, klen: usize, vlen: usize) -> bool {
        klen + vlen <= self.page_size / 4
    }
    /// Encoded size of one leaf entry (after a checkpoint placed its value).
    pub(crate) fn leaf_entry(self, key: &[u8], val: &Val) -> usize {
        let v = match val {
            Val::Data(b) if self.inline(key.len(), b.len()) => b.len(),
            _ => 8,
        };
        LEAF_ENTRY_FIXED + key.len() + v
    }
    /// Encoded body size of a node.
    pub(crate) fn node_size(self, n: &Node) -> usize {
        match n {
            Node::Leaf { size, .. } => *size,
            Node::Image(img) => img.size(),
            Node::Branch { keys, .. } => 8 + keys.iter().map(|k| 10 + k.len()).sum::<usize>(),
        }
    }
    /// Body bytes of an overflow page.
    pub(crate) fn overflow_chunk(self) -> usize {
        self.capacity()
    }
    /// Page numbers held by one free-list page.
    pub(crate) fn freelist_per_page(self) -> usize {
        self.capacity() / 8
    }
}

/// Fills in the header of `buf` (a whole page) and its checksum.
pub(crate) fn seal(buf: &mut [u8], kind: u8, count: u16, id: u64, next: u64, used: u32) {
    buf[4] = kind;
    buf[5] = 0;
    buf[6..8].copy_from_slice(&count.to_le_bytes());
    buf[8..16].copy_from_slice(&id.to_le_bytes());
    buf[16..24].copy_from_slice(&next.to_le_bytes());
    buf[24..28].copy_from_slice(&used.to_le_bytes());
    buf[28..32].fill(0);
    let crc = crc32fast::hash(&buf[4..]);
    buf[0..4].copy_from_slice(&crc.to_le_bytes());
}

/// The checked header of a page.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PageHead {
    pub kind: u8,
    pub count: u16,
    pub next: u64,
    pub used: u32,
}

/// Verifies checksum, page number and bounds of page `id`; `what` names the file.
pub(crate) fn open_page(buf: &[u8], id: u64, what: &str) -> Result<PageHead> {
    let crc = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if crc != crc32fast::hash(&buf[4..]) {
        return Err(Error::Corrupt(format!(
            "{what}: page {id} (byte offset {}) fails its checksum",
            id.saturating_mul(buf.len() as u64)
        )));
    }
    open_checked_page(buf, id, what)
}

/// [`open_page`] without the checksum, for a page whose checksum was verified since this
/// process last wrote it (a mapped page, see `storage::map`).
pub(crate) fn open_checked_page(buf: &[u8], id: u64, what: &str) -> Result<PageHead> {
    let stored = u64_at(buf, 8);
    if stored != id {
        return Err(Error::Corrupt(format!(
            "{what}: page {id} claims to be page {stored} (misdirected write)"
        )));
    }
    let head = head_of(buf);
    if head.used as usize > buf.len() - PAGE_HEADER {
        return Err(Error::Corrupt(format!(
            "{what}: page {id} declares more bytes than a page holds"
        )));
    }
    Ok(head)
}

/// The header fields of a page, unchecked: for a page this process has just sealed; pages
/// read from the file go through [`open_page`].
pub(crate) fn head_of(buf: &[u8]) -> PageHead {
    PageHead {
        kind: buf[4],
        count: u16::from_le_bytes([buf[6], buf[7]]),
        next: u64_at(buf, 16),
        used: u32::from_le_bytes([buf[24], buf[25], buf[26], buf[27]]),
    }
}

pub(crate) fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Encodes a node whose children and large values are all on disk into `buf` (one page,
/// any contents: the bytes past the node are zeroed here) as page `id`.
pub(crate) fn encode_node(g: Geometry, n: &Node, id: u64, buf: &mut [u8]) -> Result<()> {
    let mut at = PAGE_HEADER;
    let internal = |m: &str| Error::Internal(format!("page encoder: {m}"));
    // Everything in a page fits its fields (a page is at most 64 KiB); checked all the same.
    let u16_of = |n: usize| u16::try_from(n).map_err(|_| internal("length does not fit u16"));
    let u32_of = |n: usize| u32::try_from(n).map_err(|_| internal("length does not fit u32"));
    if buf.len() != g.page_size {
        return Err(internal("buffer is not one page"));
    }
    let (kind, count) = match n {
        Node::Leaf { keys, vals, size } => {
            // The size every change kept, checked against the entries once per page written.
            let actual: usize = keys.iter().zip(vals).map(|(k, v)| g.leaf_entry(k, v)).sum();
            if actual != *size {
                return Err(internal(&format!(
                    "leaf size kept as {size} bytes, its entries take {actual}"
                )));
            }
            if actual > g.capacity() {
                return Err(internal("node larger than a page"));
            }
            for (k, v) in keys.iter().zip(vals) {
                buf[at..at + 2].copy_from_slice(&u16_of(k.len())?.to_le_bytes());
                let (vkind, vlen) = match v {
                    Val::Data(b) => (0u8, u32_of(b.len())?),
                    Val::Overflow { len, .. } => (1u8, *len),
                };
                buf[at + 2] = vkind;
                buf[at + 3..at + 7].copy_from_slice(&vlen.to_le_bytes());
                at += LEAF_ENTRY_FIXED;
                buf[at..at + k.len()].copy_from_slice(k);
                at += k.len();
                match v {
                    Val::Data(b) => {
                        buf[at..at + b.len()].copy_from_slice(b);
                        at += b.len();
                    }
                    Val::Overflow { page, .. } => {
                        buf[at..at + 8].copy_from_slice(&page.to_le_bytes());
                        at += 8;
                    }
                }
            }
            (KIND_LEAF, keys.len())
        }
        Node::Image(img) => {
            if img.size() > g.capacity() {
                return Err(internal("node larger than a page"));
            }
            at = img.encode_into(buf);
            (KIND_LEAF, img.len())
        }
        Node::Branch { keys, children } => {
            let id_of = |p: &Ptr| match p {
                Ptr::Disk(id) => Ok(*id),
                Ptr::Mem(_) => Err(internal("child not yet written")),
            };
            buf[at..at + 8].copy_from_slice(&id_of(&children[0])?.to_le_bytes());
            at += 8;
            for (k, c) in keys.iter().zip(children.iter().skip(1)) {
                buf[at..at + 2].copy_from_slice(&u16_of(k.len())?.to_le_bytes());
                at += 2;
                buf[at..at + k.len()].copy_from_slice(k);
                at += k.len();
                buf[at..at + 8].copy_from_slice(&id_of(c)?.to_le_bytes());
                at += 8;
            }
            (KIND_BRANCH, keys.len())
        }
    };
    if at > buf.len() {
        return Err(internal("node larger than a page"));
    }
    buf[at..].fill(0);
    seal(buf, kind, u16_of(count)?, id, 0, u32_of(at - PAGE_HEADER)?);
    Ok(())
}

/// The value of the leaf entry at `at` of page `owner`: a slice of it, or an overflow chain.
pub(crate) fn val_at(owner: &Bytes, at: u16) -> Val {
    match leaf_entry_at(owner, at.into()).1 {
        RawVal::Data(d) => Val::Data(owner.slice_ref(d)),
        other => other.to_val(),
    }
}

/// Where `key` is among the entries of leaf page `buf` starting at `offs` (in key order), or
/// where it would go, as `binary_search` says.
pub(crate) fn search_offsets(
    buf: &[u8],
    offs: &[u16],
    key: &[u8],
) -> std::result::Result<usize, usize> {
    offs.binary_search_by(|&o| leaf_entry_at(buf, o.into()).0.cmp(key))
}

/// A leaf entry's value as it lies in the page.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RawVal<'a> {
    Data(&'a [u8]),
    Overflow { page: u64, len: u32 },
}

impl RawVal<'_> {
    pub(crate) fn to_val(self) -> Val {
        match self {
            RawVal::Data(b) => Val::Data(Bytes::copy_from_slice(b)),
            RawVal::Overflow { page, len } => Val::Overflow { page, len },
        }
    }
}

/// The entry of a leaf page that starts at `at` (an offset [`leaf_entries`] reported for
/// this page, so its lengths were checked then).
pub(crate) fn leaf_entry_at(buf: &[u8], at: usize) -> (&[u8], RawVal<'_>) {
    let klen = usize::from(u16::from_le_bytes([buf[at], buf[at + 1]]));
    let vkind = buf[at + 2];
    let vlen = u32::from_le_bytes([buf[at + 3], buf[at + 4], buf[at + 5], buf[at + 6]]);
    let k = at + LEAF_ENTRY_FIXED;
    let key = &buf[k..k + klen];
    let v = k + klen;
    let val = if vkind == 0 {
        RawVal::Data(&buf[v..v + vlen as usize])
    } else {
        RawVal::Overflow {
            page: u64_at(buf, v),
            len: vlen,
        }
    };
    (key, val)
}

/// Where each entry of a checked leaf page starts, checking them all.
pub(crate) fn leaf_offsets(buf: &[u8], head: PageHead, id: u64, what: &str) -> Result<Vec<u16>> {
    let mut offs = Vec::with_capacity(usize::from(head.count));
    let base = buf.as_ptr() as usize;
    leaf_entries(buf, head, id, what, |k, _| {
        // Offsets are below the page size (at most 16 KiB).
        #[allow(clippy::cast_possible_truncation)]
        offs.push((k.as_ptr() as usize - base - LEAF_ENTRY_FIXED) as u16);
        true
    })?;
    Ok(offs)
}

/// How far ahead of the entry it reads a leaf walk asks for the page's bytes.
const WALK_AHEAD: usize = 512;

/// Walks the entries of a checked leaf page in place, in key order, while `f` returns true
/// (no entry is copied: lookups on pages that are not cached decode nothing).
pub(crate) fn leaf_entries<'a>(
    buf: &'a [u8],
    head: PageHead,
    id: u64,
    what: &str,
    mut f: impl FnMut(&'a [u8], RawVal<'a>) -> bool,
) -> Result<()> {
    let bad = |m: &str| Error::Corrupt(format!("{what}: page {id}: {m}"));
    let end = PAGE_HEADER + head.used as usize;
    let mut at = PAGE_HEADER;
    let take = |at: &mut usize, n: usize| -> Result<&'a [u8]> {
        if *at + n > end {
            return Err(bad("entry runs past the used bytes"));
        }
        let s = &buf[*at..*at + n];
        *at += n;
        Ok(s)
    };
    for _ in 0..head.count {
        // Where the next entries start depends on this one's lengths, so the CPU cannot
        // look ahead by itself: the bytes a few entries on are asked for now.
        if let Some(ahead) = buf.get((at + WALK_AHEAD).min(end)..end) {
            crate::prefetch::prefetch(ahead);
        }
        let fixed = take(&mut at, LEAF_ENTRY_FIXED)?;
        let klen = u16::from_le_bytes([fixed[0], fixed[1]]) as usize;
        let vkind = fixed[2];
        let vlen = u32::from_le_bytes([fixed[3], fixed[4], fixed[5], fixed[6]]);
        let key = take(&mut at, klen)?;
        let val = match vkind {
            0 => RawVal::Data(take(&mut at, vlen as usize)?),
            1 => RawVal::Overflow {
                page: u64_at(take(&mut at, 8)?, 0),
                len: vlen,
            },
            _ => return Err(bad("unknown value kind")),
        };
        if !f(key, val) {
            break;
        }
    }
    Ok(())
}

/// Decodes a checked leaf or branch page. Keys and values are slices of `buf` (one shared
/// buffer per page, not one allocation per entry).
pub(crate) fn decode_node(buf: &Bytes, head: PageHead, id: u64, what: &str) -> Result<Node> {
    let bad = |m: &str| Error::Corrupt(format!("{what}: page {id}: {m}"));
    let end = PAGE_HEADER + head.used as usize;
    let mut at = PAGE_HEADER;
    let mut take = |n: usize| -> Result<&[u8]> {
        if at + n > end {
            return Err(bad("entry runs past the used bytes"));
        }
        let s = &buf[at..at + n];
        at += n;
        Ok(s)
    };
    match head.kind {
        KIND_LEAF => {
            let n = head.count as usize;
            // Room for the insert that usually follows when the node is read to change it.
            let mut keys = Vec::with_capacity(n + LEAF_ROOM);
            let mut vals = Vec::with_capacity(n + LEAF_ROOM);
            leaf_entries(buf, head, id, what, |k, v| {
                keys.push(buf.slice_ref(k));
                vals.push(match v {
                    RawVal::Data(b) => Val::Data(buf.slice_ref(b)),
                    RawVal::Overflow { page, len } => Val::Overflow { page, len },
                });
                true
            })?;
            let g = Geometry {
                page_size: buf.len(),
            };
            Ok(Node::leaf(g, keys, vals))
        }
        KIND_BRANCH => {
            let n = head.count as usize;
            let mut keys = Vec::with_capacity(n);
            let mut children = Vec::with_capacity(n + 1);
            children.push(Ptr::Disk(u64_at(take(8)?, 0)));
            for _ in 0..n {
                let l = take(2)?;
                let klen = u16::from_le_bytes([l[0], l[1]]) as usize;
                keys.push(buf.slice_ref(take(klen)?));
                children.push(Ptr::Disk(u64_at(take(8)?, 0)));
            }
            if n == 0 {
                return Err(bad("branch without keys"));
            }
            Ok(Node::Branch {
                keys: keys.into(),
                children: children.into(),
            })
        }
        k => Err(bad(&format!("expected a tree page, found kind {k}"))),
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // random test inputs: small values by construction
mod tests {
    use super::*;

    /// Ascending probes located from the previous one's window (galloping, interpolating)
    /// land where a search from scratch does: keys dense, sparse, clustered, with a shared
    /// prefix or not, probes present, absent, repeated, below and above all keys.
    #[test]
    fn window_from_agrees_with_window() {
        let mut rng = fastrand::Rng::with_seed(5);
        for round in 0..300 {
            let n = rng.usize(1..200);
            let base = rng.u64(..1 << 40);
            let mut ids: Vec<u64> = match round % 3 {
                0 => (0..n as u64).map(|i| base + i).collect(),
                1 => (0..n).map(|_| base + rng.u64(..1 << 20)).collect(),
                _ => (0..n)
                    .map(|i| {
                        base + if i % 2 == 0 {
                            rng.u64(..50)
                        } else {
                            1 << 30 | rng.u64(..50)
                        }
                    })
                    .collect(),
            };
            ids.sort_unstable();
            ids.dedup();
            let keys: Vec<[u8; 8]> = ids.iter().map(|i| i.to_be_bytes()).collect();
            let key = |i: usize| &keys[i][..];
            let aid = SearchAid::build(keys.len(), key);
            let mut probes: Vec<[u8; 8]> = (0..rng.usize(1..40))
                .map(|_| match rng.u8(..4) {
                    0 => keys[rng.usize(..keys.len())],
                    1 => base.saturating_sub(rng.u64(..3)).to_be_bytes(),
                    2 => (ids[ids.len() - 1] + rng.u64(..3)).to_be_bytes(),
                    _ => (base + rng.u64(..1 << 31)).to_be_bytes(),
                })
                .collect();
            probes.sort_unstable();
            let mut after = None;
            for p in &probes {
                let got = aid.window_from(after, key, p);
                assert_eq!(
                    got,
                    aid.window(key, p),
                    "round {round}: probe {p:?} after {after:?}"
                );
                let want = keys.partition_point(|k| k <= p);
                assert_eq!(SearchAid::settle(got.0, got.1, key, p), want);
                after = Some(got.0);
            }
        }
    }

    #[test]
    fn leaf_and_branch_round_trip_and_detect_flips() {
        let g = Geometry { page_size: 8192 };
        let leaf = Node::leaf(
            g,
            vec![Bytes::from(&b"a"[..]), Bytes::from(&b"bb"[..])],
            vec![
                Val::Data(Bytes::from(&b"one"[..])),
                Val::Overflow { page: 9, len: 5000 },
            ],
        );
        let mut buf = vec![0u8; 8192];
        encode_node(g, &leaf, 7, &mut buf).unwrap();
        let head = open_page(&buf, 7, "t").unwrap();
        match decode_node(&Bytes::copy_from_slice(&buf), head, 7, "t").unwrap() {
            Node::Leaf { keys, vals, size } => {
                assert_eq!(
                    size,
                    g.node_size(&leaf),
                    "the decoded size is the encoded one"
                );
                assert_eq!(&keys[1][..], b"bb");
                assert!(matches!(vals[1], Val::Overflow { page: 9, len: 5000 }));
            }
            Node::Branch { .. } | Node::Image(_) => panic!("leaf expected"),
        }
        assert!(open_page(&buf, 8, "t").is_err(), "misdirected page");
        for at in [0usize, 5, 40, 8000] {
            let mut b = buf.clone();
            b[at] ^= 0x40;
            assert!(matches!(open_page(&b, 7, "t"), Err(Error::Corrupt(_))));
        }
        let branch = Node::Branch {
            keys: vec![Bytes::from(&b"m"[..])].into(),
            children: vec![Ptr::Disk(3), Ptr::Disk(4)].into(),
        };
        let mut buf = vec![0u8; 8192];
        encode_node(g, &branch, 5, &mut buf).unwrap();
        let head = open_page(&buf, 5, "t").unwrap();
        assert!(matches!(
            decode_node(&Bytes::copy_from_slice(&buf), head, 5, "t").unwrap(),
            Node::Branch { .. }
        ));
    }

    #[test]
    fn separator_search_agrees_with_a_plain_binary_search() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut rand = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for round in 0..200 {
            // Keys with a long shared prefix, zero bytes, prefixes of each other and ties in
            // the 8 bytes after the shared part.
            let shared: Vec<u8> = (0..rand(12)).map(|_| b'a' + rand(3) as u8).collect();
            let make = |rand: &mut dyn FnMut(u64) -> u64| {
                let mut k = shared.clone();
                for _ in 0..rand(14) {
                    k.push([0u8, 1, b'a', b'b', 255][rand(5) as usize]);
                }
                k
            };
            let n = 1 + rand(if round % 2 == 0 { 40 } else { 400 }) as usize;
            let mut keys: Vec<Vec<u8>> = (0..n).map(|_| make(&mut rand)).collect();
            keys.sort();
            keys.dedup();
            let sep = SepKeys::from(
                keys.iter()
                    .map(|k| Bytes::copy_from_slice(k))
                    .collect::<Vec<_>>(),
            );
            let mut probes: Vec<Vec<u8>> = (0..300).map(|_| make(&mut rand)).collect();
            probes.extend(keys.iter().cloned());
            probes.push(Vec::new());
            probes.push(shared[..shared.len() / 2].to_vec());
            probes.push(vec![255; 30]);
            for p in &probes {
                let want = keys.partition_point(|k| k[..] <= p[..]);
                assert_eq!(
                    sep.upper_bound(p),
                    want,
                    "probe {p:?} over {} keys",
                    keys.len()
                );
            }
            // Inserting keys (as child splits do) keeps the aid when the prefix still holds
            // and drops it when not; searches agree with the plain ones either way.
            let mut sep = sep;
            for _ in 0..20 {
                let mut k = make(&mut rand);
                if rand(4) == 0 {
                    k = vec![b'a' + rand(4) as u8; rand(6) as usize]; // may break the prefix
                }
                match keys.binary_search(&k) {
                    Ok(_) => continue,
                    Err(i) => {
                        keys.insert(i, k.clone());
                        sep.insert(i, Bytes::from(k));
                    }
                }
                for p in probes.iter().step_by(7) {
                    let want = keys.partition_point(|k| k[..] <= p[..]);
                    assert_eq!(sep.upper_bound(p), want, "after inserts, probe {p:?}");
                }
            }
        }
    }

    /// `Children` against a `Vec` model: every operation a tree makes, at chunk edges and
    /// inside chunks, and a copy that must not see the changes made to the original.
    #[test]
    fn children_behave_as_a_vector_and_copies_stay_apart() {
        let ids = |c: &Children| -> Vec<u64> {
            c.iter()
                .map(|p| match p {
                    Ptr::Disk(id) => *id,
                    Ptr::Mem(_) => u64::MAX,
                })
                .collect()
        };
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut rand = move |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        };
        let mut model: Vec<u64> = (0..200).collect();
        let mut c: Children = model
            .iter()
            .map(|&i| Ptr::Disk(i))
            .collect::<Vec<_>>()
            .into();
        let mut next = 1000;
        for round in 0..2000 {
            let copy = c.clone();
            let before = model.clone();
            match rand(6) {
                0 => {
                    let i = rand(model.len() + 1);
                    c.insert(i, Ptr::Disk(next));
                    model.insert(i, next);
                    next += 1;
                }
                1 if model.len() > 1 => {
                    let i = rand(model.len());
                    assert!(matches!(c.remove(i), Ptr::Disk(id) if id == model.remove(i)));
                }
                2 if model.len() > 2 => {
                    let at = rand(model.len());
                    let right = c.split_off(at);
                    let mr = model.split_off(at);
                    assert_eq!(ids(&right), mr, "round {round}: split_off({at})");
                    c.append(right);
                    model.extend(mr);
                }
                3 => {
                    let i = rand(model.len());
                    c[i] = Ptr::Disk(next);
                    model[i] = next;
                    next += 1;
                }
                4 => {
                    for p in c.iter_mut() {
                        if let Ptr::Disk(id) = p {
                            *id += 1;
                        }
                    }
                    model.iter_mut().for_each(|id| *id += 1);
                }
                _ => {
                    let start = rand(model.len() + 1);
                    let from: Vec<u64> = c
                        .iter_from(start)
                        .map(|p| match p {
                            Ptr::Disk(id) => *id,
                            Ptr::Mem(_) => u64::MAX,
                        })
                        .collect();
                    assert_eq!(from, model[start..]);
                }
            }
            assert_eq!(c.len(), model.len());
            assert_eq!(ids(&c), model, "round {round}");
            assert_eq!(ids(&copy), before, "round {round}: the copy changed");
            let last = model.len() - 1;
            assert!(matches!(c[last], Ptr::Disk(id) if id == model[last]));
            assert_eq!(
                c.iter().rev().count(),
                model.len(),
                "round {round}: reverse iteration"
            );
        }
    }

    /// The entries of a leaf page `buf` (checked), as owned keys and values (an overflow
    /// value as its page number's 8 bytes).
    fn page_entries(buf: &[u8], id: u64) -> Vec<(Vec<u8>, Vec<u8>)> {
        let head = open_page(buf, id, "t").unwrap();
        let mut out = Vec::new();
        leaf_entries(buf, head, id, "t", |k, v| {
            out.push((
                k.to_vec(),
                match v {
                    RawVal::Data(d) => d.to_vec(),
                    RawVal::Overflow { page, .. } => page.to_le_bytes().to_vec(),
                },
            ));
            true
        })
        .unwrap();
        out
    }

    proptest::proptest! {
        #![proptest_config(crate::prop_support::config(256, 3))]

        /// A leaf image changed in place holds what a decoded leaf given the same puts holds:
        /// replaced values of every length (growing, shrinking, equal), inserts before, between
        /// and after the keys, puts refused (no room, a value for an overflow chain) leaving
        /// the image as it was; its size is its entries' size, its page decodes to the same
        /// entries, and a value handed out before a change keeps its bytes.
        #[test]
        fn prop_leaf_image_puts_agree_with_a_decoded_leaf(
            start in proptest::collection::btree_map(0u16..400, 0usize..120, 0..40),
            puts in proptest::collection::vec((0u16..400, 0usize..1400, proptest::prelude::any::<u8>()), 1..80),
        ) {
            let g = Geometry { page_size: 4096 };
            let key = |k: u16| Bytes::from(format!("key{k:03}").into_bytes());
            let val = |len: usize, fill: u8| Bytes::from(vec![fill; len]);
            let mut model: std::collections::BTreeMap<Bytes, Val> = start
                .iter()
                .map(|(&k, &len)| (key(k), Val::Data(val(len, 7))))
                .collect();
            if let Some(v) = model.values_mut().next() {
                *v = Val::Overflow { page: 77, len: 3000 };
            }
            let leaf = Node::leaf(g, model.keys().cloned().collect(), model.values().cloned().collect());
            proptest::prop_assume!(g.node_size(&leaf) <= g.capacity());
            let mut buf = vec![0u8; 4096];
            encode_node(g, &leaf, 5, &mut buf).unwrap();
            let page = Bytes::from(buf);
            let head = open_page(&page, 5, "t").unwrap();
            let mut img = LeafImage::from_page(page, head, 5, "t").unwrap();
            // A value handed out before the changes (a slice of the page), and its bytes then.
            let held = (img.len() > 1).then(|| (img.val(1), start.values().nth(1).copied()));
            for (k, len, fill) in puts {
                let (k, v) = (key(k), Val::Data(val(len, fill)));
                let before = format!("{img:?}");
                match img.try_put(g, &k, &v) {
                    Some(old) => {
                        let want = model.insert(k, v);
                        let show = |v: Option<Val>| v.map(|v| match v {
                            Val::Data(b) => b.to_vec(),
                            Val::Overflow { page, len } => format!("{page}/{len}").into_bytes(),
                        });
                        proptest::prop_assert_eq!(show(old), show(want));
                    }
                    None => {
                        proptest::prop_assert_eq!(format!("{img:?}"), before, "a refused put changed the image");
                        let mut bigger = model.clone();
                        bigger.insert(k.clone(), v.clone());
                        let size: usize = bigger.iter().map(|(k, v)| g.leaf_entry(k, v)).sum();
                        proptest::prop_assert!(
                            size > g.capacity() || !g.inline(k.len(), len),
                            "a put that fits was refused"
                        );
                    }
                }
                let size: usize = model.iter().map(|(k, v)| g.leaf_entry(k, v)).sum();
                proptest::prop_assert_eq!(img.size(), size);
                let Node::Leaf { keys, vals, size: dsize } = img.decode(g) else {
                    unreachable!("a leaf")
                };
                proptest::prop_assert_eq!(dsize, size);
                proptest::prop_assert!(keys.iter().eq(model.keys()));
                for ((k, v), (mk, mv)) in keys.iter().zip(&vals).zip(&model) {
                    proptest::prop_assert_eq!(k, mk);
                    proptest::prop_assert_eq!(format!("{v:?}"), format!("{mv:?}"));
                }
                for (i, k) in model.keys().enumerate() {
                    proptest::prop_assert_eq!(img.search(k), Ok(i));
                }
                let mut out = vec![0xAAu8; 4096];
                encode_node(g, &Node::Image(img.clone()), 6, &mut out).unwrap();
                let mut again = vec![0xAAu8; 4096];
                encode_node(g, &img.decode(g), 6, &mut again).unwrap();
                proptest::prop_assert_eq!(&out, &again, "an image encodes as its decoded leaf");
                proptest::prop_assert_eq!(page_entries(&out, 6).len(), model.len());
            }
            if let Some((Val::Data(b), Some(len))) = held {
                // Copy-on-write: the slice handed out before the changes keeps its bytes.
                proptest::prop_assert_eq!(&b[..], &val(len, 7)[..]);
            }
        }
    }
}
