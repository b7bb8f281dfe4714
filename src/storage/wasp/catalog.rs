//! How the catalog tree records a table ([`TableMeta`]): its options, root page, document
//! count and byte size.

use super::page;
use super::page::Ptr;
use crate::error::{Error, Result};

/// A collection (or, later, an index) as the catalog records it.
#[derive(Clone, Debug)]
pub(crate) struct TableMeta {
    pub options: String,
    pub root: Option<Ptr>,
    pub count: u64,
    pub bytes: u64,
}

/// Catalog entry kinds (index trees will use kind 2).
pub(super) const CATALOG_KIND_COLLECTION: u8 = 1;

impl TableMeta {
    /// Catalog value: kind u8, root u64, count u64, bytes u64, options_len u32, options.
    pub(crate) fn encode(&self, root: u64) -> Vec<u8> {
        let mut v = Vec::with_capacity(29 + self.options.len());
        v.push(CATALOG_KIND_COLLECTION);
        v.extend_from_slice(&root.to_le_bytes());
        v.extend_from_slice(&self.count.to_le_bytes());
        v.extend_from_slice(&self.bytes.to_le_bytes());
        // The options are the engine's own JSON for a collection (`CollOptions::to_json`, a
        // few dozen bytes), never caller text.
        #[allow(clippy::cast_possible_truncation)]
        v.extend_from_slice(&(self.options.len() as u32).to_le_bytes());
        v.extend_from_slice(self.options.as_bytes());
        v
    }

    pub(crate) fn decode(b: &[u8], what: &str) -> Result<Self> {
        let bad = || Error::Corrupt(format!("{what}: malformed catalog entry"));
        if b.len() < 29 || b[0] != CATALOG_KIND_COLLECTION {
            return Err(bad());
        }
        let root = page::u64_at(b, 1);
        let olen = u32::from_le_bytes([b[25], b[26], b[27], b[28]]) as usize;
        let options = b
            .get(29..29 + olen)
            .and_then(|o| std::str::from_utf8(o).ok())
            .ok_or_else(bad)?
            .to_owned();
        Ok(Self {
            options,
            root: (root != 0).then_some(Ptr::Disk(root)),
            count: page::u64_at(b, 9),
            bytes: page::u64_at(b, 17),
        })
    }
}
