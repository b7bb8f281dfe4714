//! Collection scans and point lookups: the live (unexpired) records of a table in the
//! collection's order (the order its documents were inserted, or `_id` order in files of
//! earlier formats and with memlog; see `ReadView::scan`), the one record a filter pinning
//! `_id` names, the candidates an index narrows a filter to (visited in the collection's
//! order, so that "the first match" of an update or delete does not depend on the plan),
//! matches evaluated on the stored bytes, counts, and the first match by a sort.

use super::ixscan::{ExecStats, IndexScan};
use super::plan::{choose, Access};
use crate::document::id::{DECIMAL_KEY_TAG, NUMBER_KEY_TAG};
use crate::document::{now_millis, record, DocumentId};
use crate::error::Result;
use crate::query::{filter::Filter, Plan};
use crate::storage::{Bytes, ReadView};
use bson::{Bson, Document as BsonDocument};

/// The record, unless it has expired at `now`.
pub(crate) fn live(rec: Option<Bytes>, now: i64) -> Option<Bytes> {
    rec.filter(|r| record::is_live(r, now))
}

/// Calls `f(key, record)` for every live (unexpired) record of `table` in the collection's order while
/// it returns `Ok(true)`.
pub(crate) fn scan_live(
    view: &dyn ReadView,
    table: &str,
    mut f: impl FnMut(&Bytes, &Bytes) -> Result<bool>,
) -> Result<()> {
    let now = now_millis();
    let mut after: Option<Bytes> = None;
    loop {
        let batch = view.scan(table, after.as_deref(), 256);
        if batch.is_empty() {
            return Ok(());
        }
        for (k, rec) in &batch {
            if record::is_live(rec, now) && !f(k, rec)? {
                return Ok(());
            }
        }
        after = batch.last().map(|(k, _)| k.clone());
    }
}

/// When the filter pins one `_id` ([`Filter::id_equality`]): the live record under it, if
/// any (`Some(None)`: the answer is "nothing"); `None` when a scan is needed.
pub(crate) fn point_lookup(
    view: &dyn ReadView,
    table: &str,
    filter: &Filter,
) -> Option<Option<(Bytes, Bytes)>> {
    let id = pinned_id(view, table, filter)?;
    let key = Bytes::copy_from_slice(id.key());
    Some(
        view.get(table, &key)
            .filter(|rec| record::is_live(rec, now_millis()))
            .map(|rec| (key, rec)),
    )
}

/// The `_id` whose key holds the only document `filter` can match ([`Filter::id_equality`]),
/// when a point lookup under that key is exact. Numbers share one key whatever their type,
/// except Decimal128 `_id`s (keys of their own that an equal number does not reach), so a
/// numeric `_id` is looked up only when the table holds no Decimal128 `_id` (one probe of
/// the key order); otherwise the caller scans.
pub(crate) fn pinned_id(view: &dyn ReadView, table: &str, filter: &Filter) -> Option<DocumentId> {
    let value = filter.id_equality()?;
    let id = DocumentId::new(value.clone()).ok()?;
    if id.key().first() == Some(&NUMBER_KEY_TAG) {
        let next = view.next_key_after(table, &[DECIMAL_KEY_TAG - 1])?;
        if next.is_some_and(|k| k.first() == Some(&DECIMAL_KEY_TAG)) {
            return None;
        }
    }
    Some(id)
}

/// Calls `f(key, record)` for the live records that can match `filter`: the one a point
/// lookup finds, or every record in the collection's order, while `f` returns `Ok(true)`.
fn scan_candidates(
    view: &dyn ReadView,
    table: &str,
    filter: &Filter,
    mut f: impl FnMut(&Bytes, &Bytes) -> Result<bool>,
) -> Result<()> {
    match point_lookup(view, table, filter) {
        Some(Some((k, rec))) => return f(&k, &rec).map(|_| ()),
        Some(None) => return Ok(()),
        None => {}
    }
    let choice = choose(view, table, filter, None, None, None, None)?;
    let Access::Index(ix) = choice.access else {
        return scan_live(view, table, f);
    };
    // The candidates are visited in the collection's order, as without the index, so that
    // "the first match" of an update, delete or find-one-and-modify does not depend on the
    // plan.
    let mut scan = IndexScan::new(&ix);
    let mut stats = ExecStats::default();
    let mut ids = Vec::new();
    loop {
        let batch = scan.next_ids(view, 256, &mut stats);
        if batch.is_empty() {
            break;
        }
        ids.extend(batch);
    }
    ids.sort_unstable();
    ids.dedup();
    view.sort_in_scan_order(table, &mut ids);
    let now = now_millis();
    for id in ids {
        if let Some(rec) = view.get(table, &id) {
            if record::is_live(&rec, now) && !f(&id, &rec)? {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Calls `f(key, record, body)` for every live matching document in the collection's order while it
/// returns `Ok(true)`. The filter runs on the stored bytes; only matches are decoded.
pub(crate) fn scan_matches(
    view: &dyn ReadView,
    table: &str,
    filter: &Filter,
    mut f: impl FnMut(&Bytes, &Bytes, &BsonDocument) -> Result<bool>,
) -> Result<()> {
    scan_matching_records(view, table, filter, |k, rec| {
        let doc = record::decode_body(rec)?.into_bson();
        f(k, rec, &doc)
    })
}

/// [`scan_matches`] without decoding: `f(key, record)` for every live matching record.
pub(crate) fn scan_matching_records(
    view: &dyn ReadView,
    table: &str,
    filter: &Filter,
    mut f: impl FnMut(&Bytes, &Bytes) -> Result<bool>,
) -> Result<()> {
    scan_candidates(view, table, filter, |k, rec| {
        if !filter.matches_bytes(record::body_bytes(rec)?)? {
            return Ok(true);
        }
        f(k, rec)
    })
}

/// How many live documents of `table` match, evaluated on the stored bytes (no document is
/// decoded).
pub(crate) fn count_matches(view: &dyn ReadView, table: &str, filter: &Filter) -> Result<u64> {
    let mut n = 0;
    scan_candidates(view, table, filter, |_, rec| {
        if filter.matches_bytes(record::body_bytes(rec)?)? {
            n += 1;
        }
        Ok(true)
    })?;
    Ok(n)
}

/// A document's sort key (see `SortSpec::key_of`).
type SortKey = Vec<Option<Bson>>;

/// The first match of `plan` (by its sort, else the collection's order), unprojected.
pub(crate) fn first_match(
    view: &dyn ReadView,
    table: &str,
    plan: &Plan,
) -> Result<Option<(Bytes, Bytes, BsonDocument)>> {
    let mut best: Option<(SortKey, (Bytes, Bytes, BsonDocument))> = None;
    scan_matches(view, table, &plan.filter, |k, rec, doc| {
        let Some(sort) = &plan.sort else {
            best = Some((Vec::new(), (k.clone(), rec.clone(), doc.clone())));
            return Ok(false);
        };
        let key = sort.key_of(doc);
        let better = match &best {
            None => true,
            Some((b, _)) => sort.compare_keys(&key, b) == std::cmp::Ordering::Less,
        };
        if better {
            best = Some((key, (k.clone(), rec.clone(), doc.clone())));
        }
        Ok(true)
    })?;
    Ok(best.map(|(_, m)| m))
}
