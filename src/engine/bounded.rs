//! Bounded collections (`{"max_documents": N}` and/or `{"max_bytes": B}` at creation):
//! inserting past the bound deletes the least recently used documents, in the same
//! transaction as the insert (so durably), the way Redis's `allkeys-lru` does: LRU is
//! approximated by sampling `max_samples` documents and evicting the least recently used.
//!
//! [`Tracker`] holds, per bounded collection, each document's last access stamp. It mirrors
//! the committed state: it is loaded from a snapshot on first use (stamps from `updated_at`),
//! touched on reads and writes, and refreshed after every commit that touched the collection.

use crate::document::record;
use crate::storage::{Bytes, ReadView};
use std::collections::HashMap;

/// The bound of a collection.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Bound {
    pub max_documents: Option<u64>,
    pub max_bytes: Option<u64>,
}

impl Bound {
    pub(crate) fn is_bounded(&self) -> bool {
        self.max_documents.is_some() || self.max_bytes.is_some()
    }

    /// Whether `count` documents of `bytes` total exceed the bound.
    pub(crate) fn exceeded(&self, count: u64, bytes: u64) -> bool {
        self.max_documents.is_some_and(|n| count > n) || self.max_bytes.is_some_and(|b| bytes > b)
    }
}

/// Last-access stamps of one bounded collection's documents.
#[derive(Default)]
pub(crate) struct Tracker {
    keys: Vec<Bytes>,
    index: HashMap<Bytes, (usize, u64)>,
}

impl Tracker {
    /// Builds the tracker from the committed documents of `coll`.
    pub(crate) fn load(view: &dyn ReadView, coll: &str) -> Self {
        let mut t = Tracker::default();
        let mut after: Option<Bytes> = None;
        loop {
            let batch = view.scan(coll, after.as_deref(), 512);
            if batch.is_empty() {
                return t;
            }
            after = batch.last().map(|(k, _)| k.clone());
            for (k, rec) in batch {
                let stamp = record::decode_meta(&rec)
                    .map(|m| {
                        u64::try_from(m.updated_at)
                            .unwrap_or(0)
                            .saturating_mul(1000)
                    })
                    .unwrap_or(0);
                t.set(k, stamp);
            }
        }
    }

    /// Records an access (or insertion) of `key` at `stamp`.
    pub(crate) fn set(&mut self, key: Bytes, stamp: u64) {
        match self.index.get_mut(&key) {
            Some(e) => e.1 = stamp,
            None => {
                self.index.insert(key.clone(), (self.keys.len(), stamp));
                self.keys.push(key);
            }
        }
    }

    /// Forgets `key`.
    pub(crate) fn remove(&mut self, key: &[u8]) {
        let Some((slot, _)) = self.index.remove(key) else {
            return;
        };
        self.keys.swap_remove(slot);
        if let Some(moved) = self.keys.get(slot) {
            if let Some(e) = self.index.get_mut(moved) {
                e.0 = slot;
            }
        }
    }

    /// The least recently used of `samples` random documents accepted by `eligible`; of all
    /// of them when the collection holds no more than `samples` (random draws, which may
    /// repeat, could miss its least recently used one: 64 draws among 10 documents miss a
    /// given one about once in 800).
    pub(crate) fn sample_lru(
        &self,
        samples: usize,
        eligible: impl Fn(&[u8]) -> bool,
    ) -> Option<Bytes> {
        if self.keys.is_empty() {
            return None;
        }
        if self.keys.len() <= samples {
            return self
                .keys
                .iter()
                .filter(|k| eligible(k))
                .min_by_key(|k| self.index[*k].1)
                .cloned();
        }
        let mut best: Option<(u64, &Bytes)> = None;
        let tries = samples.max(1) * 4;
        let mut taken = 0;
        for _ in 0..tries {
            let k = &self.keys[fastrand::usize(0..self.keys.len())];
            if !eligible(k) {
                continue;
            }
            let stamp = self.index[k].1;
            if best.is_none_or(|(s, _)| stamp < s) {
                best = Some((stamp, k));
            }
            taken += 1;
            if taken == samples {
                break;
            }
        }
        best.map(|(_, k)| k.clone()).or_else(|| {
            // Sampling found nothing eligible: fall back to a scan for the oldest eligible.
            self.keys
                .iter()
                .filter(|k| eligible(k))
                .min_by_key(|k| self.index[*k].1)
                .cloned()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Tracker;
    use crate::storage::Bytes;

    fn tracker(n: u64) -> Tracker {
        let mut t = Tracker::default();
        for i in 0..n {
            // Stamps in reverse of the keys' order, so that neither order decides alone.
            t.set(Bytes::from(format!("k{i:03}").into_bytes()), 1000 - i);
        }
        t
    }

    #[test]
    fn a_collection_no_larger_than_the_samples_loses_its_least_recently_used_every_time() {
        let t = tracker(10);
        for _ in 0..2000 {
            let v = t.sample_lru(64, |_| true).unwrap();
            assert_eq!(&v[..], b"k009");
            let v = t.sample_lru(64, |k| k != b"k009").unwrap();
            assert_eq!(&v[..], b"k008", "the oldest eligible one");
        }
        assert!(t.sample_lru(64, |_| false).is_none());
    }

    #[test]
    fn a_larger_collection_is_sampled_and_the_choice_is_eligible() {
        let t = tracker(500);
        for _ in 0..200 {
            let v = t.sample_lru(5, |k| k != b"k499").unwrap();
            assert_ne!(&v[..], b"k499");
        }
    }
}
