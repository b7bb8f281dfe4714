//! Index scans: the byte intervals a plan chose, read in key order from the index table,
//! yielding the `_id` keys of the documents to fetch.

use crate::error::Result;
use crate::index::{covered_values, entry_id, entry_record_id, IndexDef};
use crate::storage::{Bytes, ReadView};
use std::collections::HashSet;
use std::sync::Arc;

/// One document an index scan found: its `_id` key, the entry's covered values (when the
/// scan is covered and the entry has them), and the record id the entry carries.
pub(crate) struct IndexRow {
    pub id: Bytes,
    pub covered: Option<Vec<u8>>,
    pub rid: Option<u64>,
}

/// Entries read from the index table per storage call: the first read is small (a point
/// lookup usually needs one entry), later ones double up to the largest.
const FIRST_BATCH: usize = 2;
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
    /// The index, when the scan returns covered values (a covered query).
    covering: Option<Arc<IndexDef>>,
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
            covering: access.covered.then(|| Arc::clone(&access.def)),
            intervals: access.intervals.clone(),
            pos: 0,
            after: None,
            seen: access.def.multikey.then(HashSet::new),
            batch: FIRST_BATCH,
        }
    }

    /// The `_id` keys of the next (at most `max`) entries in the intervals, in index order,
    /// each document once.
    pub(crate) fn next_ids(
        &mut self,
        view: &dyn ReadView,
        max: usize,
        stats: &mut ExecStats,
    ) -> Vec<Bytes> {
        let mut out = Vec::new();
        // Nothing is decoded, so nothing can fail.
        let _ = self.walk(view, max, stats, |id, _, _| {
            out.push(id);
            Ok(())
        });
        out
    }

    /// As [`IndexScan::next_ids`], with each entry's covered values (a BSON document) when
    /// the scan is covered and the entry has them, and the record id the entry carries (for
    /// [`ReadView::get_at`]).
    pub(crate) fn next_entries(
        &mut self,
        view: &dyn ReadView,
        max: usize,
        stats: &mut ExecStats,
    ) -> Result<Vec<IndexRow>> {
        let covering = self.covering.clone();
        let mut out = Vec::new();
        self.walk(view, max, stats, |id, key, value| {
            let covered = match &covering {
                Some(def) => covered_values(&def.fields, key, value)?.map(|c| c.into_owned()),
                None => None,
            };
            let rid = entry_record_id(key, value);
            out.push(IndexRow { id, covered, rid });
            Ok(())
        })?;
        Ok(out)
    }

    /// Calls `f` with the `_id` key, entry key and value of the next (at most `max`)
    /// entries in the intervals, skipping documents already seen.
    fn walk(
        &mut self,
        view: &dyn ReadView,
        max: usize,
        stats: &mut ExecStats,
        mut f: impl FnMut(Bytes, &[u8], &[u8]) -> Result<()>,
    ) -> Result<()> {
        let mut n = 0;
        while n < max && self.pos < self.intervals.len() {
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
                let id = Bytes::copy_from_slice(entry_id(&k, &value));
                let new = match &mut self.seen {
                    Some(seen) => seen.insert(Bytes::clone(&id)),
                    None => true,
                };
                if new {
                    f(id, &k, &value)?;
                    n += 1;
                }
                self.after = Some(k);
            }
            if ended {
                self.pos += 1;
                self.after = None;
            }
        }
        Ok(())
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
