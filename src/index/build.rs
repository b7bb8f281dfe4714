//! The build of a new index over existing documents: entries collected in sorted chunks
//! (only the key paths decoded), each chunk written in key order with its entries
//! prefetched a few ahead, unique checks across chunks through a Bloom-style key filter.

use super::maintain::{body_of, duplicate, other_holder};
use super::{with_record_id, IndexDef};
use crate::document::record;
use crate::error::{Error, Result};
use crate::storage::{Bytes, ReadView, WriteTxn};

/// Documents read per batch while an index is built.
pub(crate) const BUILD_BATCH: usize = 256;

/// Memory a build's chunk of entries may take (their keys and values, and the sort items)
/// before it is sorted and written. Larger chunks mean fewer of them: the first is appended
/// at the tree's right end, which leaves full pages, while every later one inserts into
/// pages that are already full and splits them.
#[cfg(not(test))]
pub(crate) const BUILD_CHUNK_BYTES: usize = 128 << 20;
/// Small in unit tests, so that every test build spans several chunks.
#[cfg(test)]
pub(crate) const BUILD_CHUNK_BYTES: usize = 1 << 10;

/// Fills a new index's table from the documents already stored (a vector index's graph:
/// [`super::vector::maintain::build`]).
///
/// The documents are read in the collection's order, their entries gathered into chunks of about
/// [`BUILD_CHUNK_BYTES`], and each chunk is sorted and written in key order: consecutive
/// puts then land in the same leaf of the entry tree (the first chunk appends at its right
/// end) instead of each touching a random one. A unique index checks a chunk before writing
/// it ([`first_duplicate`]) and fails exactly as a build putting one document at a time
/// would, naming the same document; only keys that earlier chunks may have written
/// ([`KeyFilter`]) are looked up in the table.
pub(crate) fn build(t: &mut dyn WriteTxn, def: &mut IndexDef) -> Result<()> {
    if let Some(spec) = def.vector.clone() {
        return super::vector::maintain::build(t, def, &spec);
    }
    let table = def.table().to_owned();
    // Every entry is new: logging each one only to write it again as pages is waste.
    t.expect_large();
    t.create_table(&table, "{}")?;
    // Owned: the build sets `def.multikey` as it goes.
    let parts = def.key_parts().clone();
    // The documents do not change during the build: read them from a snapshot, whose leaf
    // pages are walked in place rather than decoded into the writer's page cache.
    let docs = t.snapshot();
    let mut chunk = Chunk::default();
    let mut after: Option<Bytes> = None;
    loop {
        let batch = docs.scan_with_record_ids(&def.coll, after.as_deref(), BUILD_BATCH);
        if batch.is_empty() {
            break;
        }
        for (id_key, rec, rid) in &batch {
            let (entries, multikey) = match def.entries_of_record(rec, &parts, id_key) {
                Ok(r) => r,
                Err(e) => {
                    // A duplicate among the documents before this one fails first.
                    chunk.sort();
                    check_unique(&*t, def, &table, &chunk)?;
                    return Err(match e {
                        Error::InvalidArgument(m) => Error::InvalidArgument(format!(
                            "cannot build index '{}': {m}",
                            def.name
                        )),
                        other => other,
                    });
                }
            };
            def.multikey |= multikey;
            if entries.is_empty() {
                continue;
            }
            let expires = if def.unique {
                record::expires_at(rec).unwrap_or(i64::MAX)
            } else {
                i64::MAX
            };
            // Each entry carries the document's record id in a clustered collection.
            for (k, v) in entries {
                chunk.push(&k, id_key, &with_record_id(v, *rid), expires);
            }
            if chunk.size() >= BUILD_CHUNK_BYTES {
                write_chunk(t, def, &table, &mut chunk, false)?;
            }
        }
        after = batch.last().map(|(k, _, _)| k.clone());
    }
    write_chunk(t, def, &table, &mut chunk, true)
}

/// Entries of a build waiting to be written: their bytes back to back in one buffer.
#[derive(Default)]
pub(crate) struct Chunk {
    bytes: Vec<u8>,
    items: Vec<ChunkEntry>,
    /// For a unique index, the keys of the chunks already written.
    written: KeyFilter,
}

/// One entry of a [`Chunk`]: at `at`, the index key (`key_len` bytes) and the `_id` key
/// (`id_len`), which together are the entry's key, then its value (`value_len`).
pub(crate) struct ChunkEntry {
    /// The index key's first 16 bytes (zero-padded) as a big-endian number: comparing these
    /// first orders most pairs without reaching into the buffer.
    prefix: u128,
    at: usize,
    key_len: usize,
    id_len: usize,
    value_len: usize,
    /// When the document expires (ms since the epoch; `i64::MAX`: never, or not needed
    /// because the index is not unique).
    expires: i64,
}

impl ChunkEntry {
    pub(crate) fn key<'b>(&self, bytes: &'b [u8]) -> &'b [u8] {
        &bytes[self.at..self.at + self.key_len]
    }
    pub(crate) fn id<'b>(&self, bytes: &'b [u8]) -> &'b [u8] {
        let from = self.at + self.key_len;
        &bytes[from..from + self.id_len]
    }
    pub(crate) fn entry_key<'b>(&self, bytes: &'b [u8]) -> &'b [u8] {
        &bytes[self.at..self.at + self.key_len + self.id_len]
    }
    pub(crate) fn value<'b>(&self, bytes: &'b [u8]) -> &'b [u8] {
        let from = self.at + self.key_len + self.id_len;
        &bytes[from..from + self.value_len]
    }
    /// As [`is_live_doc`] says of the document.
    pub(crate) fn live(&self, now: i64) -> bool {
        self.expires > now
    }
}

impl Chunk {
    /// Memory taken by the entries.
    pub(crate) fn size(&self) -> usize {
        self.bytes.len() + self.items.len() * std::mem::size_of::<ChunkEntry>()
    }

    pub(crate) fn push(&mut self, k: &[u8], id_key: &[u8], value: &[u8], expires: i64) {
        let mut head = [0u8; 16];
        let n = k.len().min(16);
        head[..n].copy_from_slice(&k[..n]);
        self.items.push(ChunkEntry {
            prefix: u128::from_be_bytes(head),
            at: self.bytes.len(),
            key_len: k.len(),
            id_len: id_key.len(),
            value_len: value.len(),
            expires,
        });
        self.bytes.extend_from_slice(k);
        self.bytes.extend_from_slice(id_key);
        self.bytes.extend_from_slice(value);
    }

    /// Sorts the entries by index key, then by the order they were pushed in (`at`: the order
    /// the build read their documents, which [`first_duplicate`] goes by). Index keys are
    /// prefix-free, so two of at most 16 bytes with the same prefix are equal. (Entries with
    /// one index key are then written in the collection's order, not their `_id` keys'
    /// order: the tree takes them in any order.)
    pub(crate) fn sort(&mut self) {
        let bytes = &self.bytes;
        self.items.sort_unstable_by(|a, b| {
            a.prefix
                .cmp(&b.prefix)
                .then_with(|| {
                    if a.key_len <= 16 && b.key_len <= 16 {
                        std::cmp::Ordering::Equal
                    } else {
                        a.key(bytes).cmp(b.key(bytes))
                    }
                })
                .then(a.at.cmp(&b.at))
        });
    }
}

/// Sorts `chunk`, checks it (unique index), writes its entries in key order and empties it.
/// `last`: no chunk follows (its keys need not be remembered).
pub(crate) fn write_chunk(
    t: &mut dyn WriteTxn,
    def: &IndexDef,
    table: &str,
    chunk: &mut Chunk,
    last: bool,
) -> Result<()> {
    chunk.sort();
    check_unique(&*t, def, table, chunk)?;
    // The entries' keys and values are slices of the chunk's buffer (no copy each); the
    // next chunk gets a buffer of its own.
    let capacity = chunk.bytes.capacity();
    let bytes = Bytes::from(std::mem::replace(
        &mut chunk.bytes,
        Vec::with_capacity(if last { 0 } else { capacity }),
    ));
    // Sorted, the entries lie scattered in the buffer: each one's bytes are asked for a few
    // entries ahead, so that the waits for them overlap the writes of the ones before.
    const AHEAD: usize = 8;
    for (i, e) in chunk.items.iter().enumerate() {
        if let Some(next) = chunk.items.get(i + AHEAD) {
            crate::prefetch::prefetch(next.entry_key(&bytes));
        }
        t.put_shared(
            table,
            bytes.slice_ref(e.entry_key(&bytes)),
            bytes.slice_ref(e.value(&bytes)),
        )?;
    }
    if def.unique && !last {
        for e in &chunk.items {
            chunk.written.insert(e.key(&bytes));
        }
    }
    chunk.items.clear();
    Ok(())
}

/// For a unique index, the duplicate-key error for the first document of the (sorted)
/// `chunk` that holds a key an earlier document holds while live.
pub(crate) fn check_unique(
    view: &dyn ReadView,
    def: &IndexDef,
    table: &str,
    chunk: &Chunk,
) -> Result<()> {
    if !def.unique {
        return Ok(());
    }
    let Some(i) = first_duplicate(view, def, table, chunk) else {
        return Ok(());
    };
    let doc = view
        .get(&def.coll, chunk.items[i].id(&chunk.bytes))
        .map(|r| body_of(&r))
        .transpose()?;
    Err(duplicate(def, doc.as_ref()))
}

/// The entry, in a sorted chunk, of the document a build putting one document at a time (in
/// `_id` order, checking each new entry with [`other_holder`]) would refuse first: among
/// the documents holding a key that an earlier document holds while live (in the table,
/// from earlier chunks, or earlier in the chunk's run of that key), the one read first.
/// The table is asked only about keys earlier chunks may have written. Expired documents
/// keep their entries but hold no key, as in [`other_holder`].
pub(crate) fn first_duplicate(
    view: &dyn ReadView,
    def: &IndexDef,
    table: &str,
    chunk: &Chunk,
) -> Option<usize> {
    let (bytes, items) = (&chunk.bytes, &chunk.items);
    let now = crate::document::now_millis();
    let mut found: Option<usize> = None;
    let mut i = 0;
    while i < items.len() {
        let k = items[i].key(bytes);
        let mut end = i + 1;
        while end < items.len() && items[end].key(bytes) == k {
            end += 1;
        }
        // items[i..end] hold key k, in the order the build read their documents.
        let refused = if chunk.written.may_contain(k)
            && other_holder(view, &def.coll, table, k, items[i].id(bytes)).is_some()
        {
            Some(i)
        } else {
            (i..end)
                .find(|&x| items[x].live(now))
                .map(|x| x + 1)
                .filter(|&x| x < end)
        };
        if let Some(r) = refused {
            // The document read first is the one a build putting them one at a time fails on.
            if found.is_none_or(|f| items[r].at < items[f].at) {
                found = Some(r);
            }
        }
        i = end;
    }
    found
}

/// A Bloom filter of index keys (fixed size, allocated on first insert): no false
/// negatives, so a key it does not contain was never inserted.
#[derive(Default)]
pub(crate) struct KeyFilter {
    bits: Vec<u64>,
}

impl KeyFilter {
    /// 2^25 bits (4 MiB): about one false positive in 1,500 lookups after a million keys,
    /// one in 5 after ten million.
    const BITS: usize = 1 << 25;

    /// The three bit positions of `k`.
    pub(crate) fn probes(k: &[u8]) -> [usize; 3] {
        use std::hash::Hasher;
        let mut h = std::hash::DefaultHasher::new();
        h.write(k);
        let x = h.finish();
        // Hash mixing: taking the low bits of the 64-bit hash is the intent.
        #[allow(clippy::cast_possible_truncation)]
        let (a, b) = (x as usize, (x >> 32) as usize | 1);
        [a, a.wrapping_add(b), a.wrapping_add(b.wrapping_mul(2))].map(|p| p % Self::BITS)
    }

    pub(crate) fn insert(&mut self, k: &[u8]) {
        if self.bits.is_empty() {
            self.bits = vec![0; Self::BITS / 64];
        }
        for p in Self::probes(k) {
            self.bits[p / 64] |= 1 << (p % 64);
        }
    }

    pub(crate) fn may_contain(&self, k: &[u8]) -> bool {
        !self.bits.is_empty()
            && Self::probes(k)
                .iter()
                .all(|&p| self.bits[p / 64] & (1 << (p % 64)) != 0)
    }
}
