//! [`Touched`]: what a committed transaction changed, as the cache needs to know it to
//! invalidate exactly those entries. The engine's tracked transaction fills it.

use crate::hash::ByName;
use std::collections::HashSet;

/// What a transaction changed.
#[derive(Debug, Default)]
pub(crate) struct Touched {
    /// Per collection, the key of every put or delete (a key may repeat).
    pub docs: ByName<KeyList>,
    /// Collections created, dropped or renamed (both names).
    pub tables: HashSet<String>,
}

/// Keys laid end to end in one buffer: a transaction of many writes allocates as its list
/// grows, not once per key.
#[derive(Debug, Default)]
pub(crate) struct KeyList {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl KeyList {
    pub(crate) fn push(&mut self, key: &[u8]) {
        self.bytes.extend_from_slice(key);
        self.ends.push(self.bytes.len());
    }

    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// The keys in the order they were written.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(&self.ends).map(|(s, &e)| &self.bytes[s..e])
    }
}
