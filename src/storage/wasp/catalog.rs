//! How the catalog tree records a table ([`TableMeta`]): its options, root page, document
//! count and byte size, and for a clustered table its key map and next record id.

use super::page;
use super::page::Ptr;
use crate::error::{Error, Result};

/// A table as the catalog records it.
#[derive(Clone, Debug)]
pub(crate) struct TableMeta {
    pub options: String,
    /// The entries: by key, or for a clustered table by record id.
    pub root: Option<Ptr>,
    pub count: u64,
    /// Total bytes of the keys and values put (as the layer above gave them).
    pub bytes: u64,
    /// `Some` for a clustered table (`docs/FORMAT.md`, "Clustered tables").
    pub clustered: Option<Clustered>,
}

/// The parts of a clustered table beside its entries.
#[derive(Clone, Debug, Default)]
pub(crate) struct Clustered {
    /// The map from key to record id (8 bytes, big-endian).
    pub ids: Option<Ptr>,
    /// The record id the next new key gets.
    pub next_rid: u64,
}

/// Catalog entry kinds: a key-ordered table, a clustered one (format version 3 and later).
pub(super) const CATALOG_KIND_ORDERED: u8 = 1;
pub(super) const CATALOG_KIND_CLUSTERED: u8 = 2;

impl TableMeta {
    /// A new, empty table.
    pub(crate) fn new(options: String, clustered: bool) -> Self {
        Self {
            options,
            root: None,
            count: 0,
            bytes: 0,
            clustered: clustered.then(|| Clustered {
                ids: None,
                next_rid: 1,
            }),
        }
    }

    /// The table's trees: its entries, and a clustered table's key map.
    pub(crate) fn trees_mut(&mut self) -> impl Iterator<Item = &mut Option<Ptr>> {
        let ids = self.clustered.as_mut().map(|c| &mut c.ids);
        std::iter::once(&mut self.root).chain(ids)
    }

    /// The key map's root (none for a key-ordered table).
    pub(crate) fn ids_root(&self) -> Option<&Ptr> {
        self.clustered.as_ref().and_then(|c| c.ids.as_ref())
    }

    /// Catalog value: kind u8, root u64, count u64, bytes u64, options_len u32, options;
    /// then, for a clustered table, the key map's root u64 and the next record id u64. `root`
    /// and `ids` are the page numbers of the (written) trees, 0 for none.
    pub(crate) fn encode(&self, root: u64, ids: u64) -> Vec<u8> {
        let mut v = Vec::with_capacity(45 + self.options.len());
        v.push(if self.clustered.is_some() {
            CATALOG_KIND_CLUSTERED
        } else {
            CATALOG_KIND_ORDERED
        });
        v.extend_from_slice(&root.to_le_bytes());
        v.extend_from_slice(&self.count.to_le_bytes());
        v.extend_from_slice(&self.bytes.to_le_bytes());
        // The options are the engine's own JSON for a collection (`CollOptions::to_json`, a
        // few dozen bytes), never caller text.
        #[allow(clippy::cast_possible_truncation)]
        v.extend_from_slice(&(self.options.len() as u32).to_le_bytes());
        v.extend_from_slice(self.options.as_bytes());
        if let Some(c) = &self.clustered {
            v.extend_from_slice(&ids.to_le_bytes());
            v.extend_from_slice(&c.next_rid.to_le_bytes());
        }
        v
    }

    pub(crate) fn decode(b: &[u8], what: &str) -> Result<Self> {
        let bad = || Error::Corrupt(format!("{what}: malformed catalog entry"));
        if b.len() < 29 || !matches!(b[0], CATALOG_KIND_ORDERED | CATALOG_KIND_CLUSTERED) {
            return Err(bad());
        }
        let root = page::u64_at(b, 1);
        let olen = u32::from_le_bytes([b[25], b[26], b[27], b[28]]) as usize;
        let end = 29 + olen;
        let options = b
            .get(29..end)
            .and_then(|o| std::str::from_utf8(o).ok())
            .ok_or_else(bad)?
            .to_owned();
        let clustered = if b[0] == CATALOG_KIND_CLUSTERED {
            if b.len() != end + 16 {
                return Err(bad());
            }
            let ids = page::u64_at(b, end);
            Some(Clustered {
                ids: (ids != 0).then_some(Ptr::Disk(ids)),
                next_rid: page::u64_at(b, end + 8),
            })
        } else {
            None
        };
        Ok(Self {
            options,
            root: (root != 0).then_some(Ptr::Disk(root)),
            count: page::u64_at(b, 9),
            bytes: page::u64_at(b, 17),
            clustered,
        })
    }
}
