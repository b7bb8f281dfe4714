//! Index scans: the byte intervals a plan chose, read in key order from the index table,
//! yielding the `_id` keys of the documents to fetch.

use super::IndexDef;
use crate::storage::{Bytes, ReadView};
use std::collections::HashSet;
use std::sync::Arc;

/// Entries read from the index table per storage call: the first read is small (a point
/// lookup usually needs one entry), later ones double up to the largest.
const FIRST_BATCH: usize = 4;
const BATCH: usize = 256;

/// A chosen index access path: `[lo, hi)` byte intervals over the index's entry keys
/// (`hi` empty: to the end), sorted and disjoint.
#[derive(Debug, Clone)]
pub(crate) struct IndexAccess {
    pub def: Arc<IndexDef>,
    pub intervals: Vec<(Vec<u8>, Vec<u8>)>,
    /// Index fields constrained by the filter (a prefix of the key pattern).
    pub bounded_fields: usize,
    /// The scan returns documents in the query's sort order (no sort in memory).
    pub provides_sort: bool,
    /// The entries answer the query alone (covered: no document is read).
    pub covered: bool,
}

/// Counters of one execution, reported by explain.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ExecStats {
    pub keys_examined: u64,
    pub docs_examined: u64,
}

/// A position in an [`IndexAccess`].
pub(crate) struct IndexScan {
    table: String,
    intervals: Vec<(Vec<u8>, Vec<u8>)>,
    pos: usize,
    after: Option<Bytes>,
    /// `_id` keys already returned (a multikey index has several entries per document).
    seen: Option<HashSet<Bytes>>,
    /// Entries to ask the storage for next.
    batch: usize,
}

impl IndexScan {
    pub(crate) fn new(access: &IndexAccess) -> Self {
        Self {
            table: access.def.table().to_owned(),
            intervals: access.intervals.clone(),
            pos: 0,
            after: None,
            seen: access.def.multikey.then(HashSet::new),
            batch: FIRST_BATCH,
        }
    }

    /// Up to about `max` more `_id` keys in index order (empty at the end).
    pub(crate) fn next_ids(
        &mut self,
        view: &dyn ReadView,
        max: usize,
        stats: &mut ExecStats,
    ) -> Vec<Bytes> {
        self.next_entries(view, max, stats)
            .into_iter()
            .map(|(id, _)| id)
            .collect()
    }

    /// As [`IndexScan::next_ids`], with each entry's whole value (`_id` key and covered
    /// values, see [`super::entry_value`]).
    pub(crate) fn next_entries(
        &mut self,
        view: &dyn ReadView,
        max: usize,
        stats: &mut ExecStats,
    ) -> Vec<(Bytes, Bytes)> {
        let mut out = Vec::new();
        while out.len() < max && self.pos < self.intervals.len() {
            let (lo, hi) = &self.intervals[self.pos];
            let start: Option<&[u8]> = match &self.after {
                Some(a) => Some(a),
                None if lo.is_empty() => None,
                None => Some(lo),
            };
            let want = self.batch;
            self.batch = (self.batch * 2).min(BATCH);
            let batch = view.scan(&self.table, start, want);
            let full = batch.len() == want;
            let mut ended = !full;
            for (k, value) in batch {
                if !hi.is_empty() && k[..] >= hi[..] {
                    ended = true;
                    break;
                }
                stats.keys_examined += 1;
                self.after = Some(k);
                let id = Bytes::copy_from_slice(super::entry_id(&value));
                if let Some(seen) = &mut self.seen {
                    if !seen.insert(Bytes::clone(&id)) {
                        continue;
                    }
                }
                out.push((id, value));
            }
            if ended {
                self.pos += 1;
                self.after = None;
            }
        }
        out
    }

    /// How many entries the intervals hold, counting no further than `cap`.
    pub(crate) fn estimate(access: &IndexAccess, view: &dyn ReadView, cap: u64) -> u64 {
        let mut scan = IndexScan::new(access);
        scan.seen = None;
        let mut stats = ExecStats::default();
        while stats.keys_examined < cap {
            if scan.next_ids(view, BATCH, &mut stats).is_empty() {
                break;
            }
        }
        stats.keys_examined.min(cap)
    }
}
