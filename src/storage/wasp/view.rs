//! Read views: a snapshot (a [`State`] plus its [`Pin`]) answering `get`, `scan` and the
//! table listing from the B+trees.

use super::btree;
use super::clustered;
use super::shared::{Pin, Shared, State};
use crate::error::{Error, Result};
use crate::storage::{Bytes, ReadView, TableInfo};
use std::sync::Arc;

/// A read's result, a failure noted on the engine (readers check `ReadView::fault`) and
/// replaced by `fallback`.
fn noted<T>(shared: &Shared, r: Result<T>, fallback: T) -> T {
    r.unwrap_or_else(|e| {
        shared.note_read_error(&e);
        fallback
    })
}

/// Read access to one state: shared by snapshots and the write transaction (`writer`: leaf
/// pages read are cached at once, see [`Pager::leaf_probe`]).
pub(super) fn view_get(
    shared: &Shared,
    state: &State,
    table: &str,
    key: &[u8],
    writer: bool,
) -> Option<Bytes> {
    let t = state.tables.get(table)?;
    let pager = &shared.pager;
    let r = match &t.clustered {
        Some(c) => clustered::get(pager, t, c, key, writer),
        None => btree::get(pager, t.root.as_ref(), key, writer)
            .and_then(|v| v.map(|v| btree::resolve(pager, &v)).transpose()),
    };
    noted(shared, r, None)
}

pub(super) fn view_scan(
    shared: &Shared,
    state: &State,
    table: &str,
    after: Option<&[u8]>,
    limit: usize,
    writer: bool,
) -> Vec<(Bytes, Bytes)> {
    view_scan_rids(shared, state, table, after, limit, writer, None)
}

/// See [`ReadView::scan_with_record_ids`].
pub(super) fn view_scan_with_record_ids(
    shared: &Shared,
    state: &State,
    table: &str,
    after: Option<&[u8]>,
    limit: usize,
    writer: bool,
) -> Vec<(Bytes, Bytes, Option<u64>)> {
    let mut rids = Vec::new();
    let entries = view_scan_rids(shared, state, table, after, limit, writer, Some(&mut rids));
    let mut rids = rids.into_iter();
    entries
        .into_iter()
        .map(|(k, v)| (k, v, rids.next()))
        .collect()
}

fn view_scan_rids(
    shared: &Shared,
    state: &State,
    table: &str,
    after: Option<&[u8]>,
    limit: usize,
    writer: bool,
    rids: Option<&mut Vec<u64>>,
) -> Vec<(Bytes, Bytes)> {
    let Some(t) = state.tables.get(table) else {
        return Vec::new();
    };
    let pager = &shared.pager;
    let r = match (&t.clustered, &t.root) {
        (Some(c), _) => clustered::scan(pager, t, c, after, limit, writer, rids),
        (None, Some(root)) => {
            let mut raw = Vec::new();
            btree::scan(pager, root, after, limit, &mut raw, writer, false).and_then(|_| {
                raw.into_iter()
                    .map(|(k, v)| Ok((k, btree::resolve(pager, &v)?)))
                    .collect::<Result<Vec<_>>>()
            })
        }
        (None, None) => Ok(Vec::new()),
    };
    noted(shared, r, Vec::new())
}

/// See [`ReadView::record_id_for`].
pub(super) fn view_record_id_for(
    shared: &Shared,
    state: &State,
    table: &str,
    key: &[u8],
) -> Option<u64> {
    let c = state.tables.get(table)?.clustered.as_ref()?;
    let found = clustered::find(&shared.pager, c, key)
        .map(|r| Some(r.map_or(c.next_rid, u64::from_be_bytes)));
    noted(shared, found, None)
}

/// See [`ReadView::next_key_after`]: a clustered table's keys are its key map's.
pub(super) fn view_next_key_after(
    shared: &Shared,
    state: &State,
    table: &str,
    after: &[u8],
    writer: bool,
) -> Option<Option<Bytes>> {
    let Some(t) = state.tables.get(table) else {
        return Some(None);
    };
    let root = match &t.clustered {
        Some(c) => c.ids.as_ref(),
        None => t.root.as_ref(),
    };
    let Some(root) = root else {
        return Some(None);
    };
    let mut out = Vec::new();
    let r = btree::scan(&shared.pager, root, Some(after), 1, &mut out, writer, false)
        .map(|_| Some(out.pop().map(|(k, _)| k)));
    // A damaged page: "cannot tell" (the fault is noted for the caller, as reads note it).
    noted(shared, r, None)
}

/// See [`ReadView::get_at`].
pub(super) fn view_get_at(
    shared: &Shared,
    state: &State,
    table: &str,
    key: &[u8],
    rid: Option<u64>,
    writer: bool,
) -> Option<Bytes> {
    let t = state.tables.get(table)?;
    if let (Some(rid), Some(_)) = (rid, &t.clustered) {
        match clustered::get_by_rid(&shared.pager, t, rid, key, writer) {
            Ok(Some(v)) => return Some(v),
            Ok(None) => {}
            Err(e) => {
                shared.note_read_error(&e);
                return None;
            }
        }
    }
    view_get(shared, state, table, key, writer)
}

/// See [`ReadView::get_many_at`].
pub(super) fn view_get_many_at(
    shared: &Shared,
    state: &State,
    table: &str,
    wanted: &[(&[u8], Option<u64>)],
    writer: bool,
) -> Vec<Option<Bytes>> {
    let Some(t) = state.tables.get(table) else {
        return vec![None; wanted.len()];
    };
    let mut out = vec![None; wanted.len()];
    if t.clustered.is_some() {
        let (at, by_rid): (Vec<usize>, Vec<(u64, &[u8])>) = wanted
            .iter()
            .enumerate()
            .filter_map(|(i, &(key, rid))| Some((i, (rid?, key))))
            .unzip();
        match clustered::get_many_by_rid(&shared.pager, t, &by_rid, writer) {
            Ok(found) => {
                for (i, v) in at.into_iter().zip(found) {
                    out[i] = v;
                }
            }
            Err(e) => {
                shared.note_read_error(&e);
                return out;
            }
        }
    }
    // Entries without a record id, or not under it: by key (as `view_get_at`).
    for (slot, &(key, _)) in out.iter_mut().zip(wanted) {
        if slot.is_none() {
            *slot = view_get(shared, state, table, key, writer);
        }
    }
    out
}

/// See [`ReadView::sort_in_scan_order`].
pub(super) fn view_sort_in_scan_order(
    shared: &Shared,
    state: &State,
    table: &str,
    keys: &mut [Bytes],
) {
    let Some(c) = state.tables.get(table).and_then(|t| t.clustered.as_ref()) else {
        keys.sort_unstable();
        return;
    };
    // Record ids are big-endian: their byte order is their order; absent keys sort last.
    let absent = [0xFF; 8];
    let mut ranked: Vec<([u8; 8], Bytes)> = keys
        .iter()
        .map(|k| {
            let rid = clustered::find(&shared.pager, c, k).map(|r| r.unwrap_or(absent));
            (noted(shared, rid, absent), Bytes::clone(k))
        })
        .collect();
    ranked.sort_unstable();
    for (slot, (_, k)) in keys.iter_mut().zip(ranked) {
        *slot = k;
    }
}

/// The `ReadView` methods a snapshot ([`View`]) and the write transaction
/// (`txn::WaspTxn`) share: both read a `state` through `shared`, the transaction as the
/// writer (`$writer`: leaf pages it reads are cached at once).
macro_rules! state_reads {
    ($writer:expr) => {
        fn tables(&self) -> Vec<$crate::storage::TableInfo> {
            $crate::storage::wasp::view::view_tables(&self.state)
        }
        fn has_table(&self, name: &str) -> bool {
            self.state.tables.contains_key(name)
        }
        fn get(&self, table: &str, key: &[u8]) -> Option<Bytes> {
            $crate::storage::wasp::view::view_get(&self.shared, &self.state, table, key, $writer)
        }
        fn scan(&self, table: &str, after: Option<&[u8]>, limit: usize) -> Vec<(Bytes, Bytes)> {
            let (shared, state) = (&self.shared, &self.state);
            $crate::storage::wasp::view::view_scan(shared, state, table, after, limit, $writer)
        }
        fn next_key_after(&self, table: &str, after: &[u8]) -> Option<Option<Bytes>> {
            let (shared, state) = (&self.shared, &self.state);
            $crate::storage::wasp::view::view_next_key_after(shared, state, table, after, $writer)
        }
        fn sort_in_scan_order(&self, table: &str, keys: &mut [Bytes]) {
            let (shared, state) = (&self.shared, &self.state);
            $crate::storage::wasp::view::view_sort_in_scan_order(shared, state, table, keys);
        }
        fn record_id_for(&self, table: &str, key: &[u8]) -> Option<u64> {
            let (shared, state) = (&self.shared, &self.state);
            $crate::storage::wasp::view::view_record_id_for(shared, state, table, key)
        }
        fn scan_with_record_ids(
            &self,
            table: &str,
            after: Option<&[u8]>,
            limit: usize,
        ) -> Vec<(Bytes, Bytes, Option<u64>)> {
            let (shared, state) = (&self.shared, &self.state);
            $crate::storage::wasp::view::view_scan_with_record_ids(
                shared, state, table, after, limit, $writer,
            )
        }
        fn get_at(&self, table: &str, key: &[u8], rid: Option<u64>) -> Option<Bytes> {
            let (shared, state) = (&self.shared, &self.state);
            $crate::storage::wasp::view::view_get_at(shared, state, table, key, rid, $writer)
        }
        fn get_many_at(&self, table: &str, wanted: &[(&[u8], Option<u64>)]) -> Vec<Option<Bytes>> {
            let (shared, state) = (&self.shared, &self.state);
            $crate::storage::wasp::view::view_get_many_at(shared, state, table, wanted, $writer)
        }
        fn count(&self, table: &str) -> u64 {
            self.state.tables.get(table).map_or(0, |t| t.count)
        }
        fn table_bytes(&self, table: &str) -> u64 {
            self.state.tables.get(table).map_or(0, |t| t.bytes)
        }
    };
}
pub(super) use state_reads;

pub(super) fn view_tables(state: &State) -> Vec<TableInfo> {
    state
        .tables
        .iter()
        .map(|(name, t)| TableInfo {
            name: name.clone(),
            options: t.options.clone(),
            documents: t.count,
            clustered: t.clustered.is_some(),
        })
        .collect()
}

/// A snapshot handed to readers and cursors.
pub(super) struct View {
    pub(super) state: Arc<State>,
    pub(super) shared: Arc<Shared>,
    /// Whether `state` is a published (committed) one, not a transaction's.
    pub(super) committed: bool,
    pub(super) _pin: Option<Pin>,
    /// Why this view is empty: no snapshot could be taken safely (see `WaspStorage::read`).
    pub(super) refused: Option<Refused>,
}

/// Why a view is empty, as the error its reads report.
pub(super) enum Refused {
    Corrupt(String),
    Busy(String),
}

impl Refused {
    pub(super) fn from_error(e: &Error) -> Self {
        match e {
            Error::Corrupt(m) => Self::Corrupt(m.clone()),
            other => Self::Busy(other.to_string()),
        }
    }
}

impl ReadView for View {
    state_reads!(false);
    fn fault(&self) -> Option<Error> {
        match &self.refused {
            Some(Refused::Corrupt(m)) => Some(Error::Corrupt(m.clone())),
            Some(Refused::Busy(m)) => Some(Error::Busy(m.clone())),
            None => self.shared.fault(),
        }
    }
    fn snapshot_id(&self) -> Option<crate::storage::SnapshotId> {
        // Each commit publishes a new epoch; a checkpoint republishes the same contents.
        self.committed.then(|| crate::storage::SnapshotId {
            store: self.shared.store_id,
            epoch: self.state.epoch,
        })
    }
}
