//! The catalog of index definitions: the hidden collection `_indexes` (key `COLL \0 NAME`,
//! value the definition as BSON), read through caches keyed by the stored bytes and the
//! snapshot, and changed when an index is created or dropped or its collection is dropped
//! or renamed.

use super::{IndexDef, CATALOG};
use crate::error::{Error, Result};
use crate::storage::SnapshotId;
use crate::storage::{Bytes, ReadView, WriteTxn};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::OnceLock;

/// Parsed definitions by their catalog bytes, so a query does not parse BSON each time.
pub(crate) type ParsedCache = Mutex<HashMap<(Bytes, Bytes), Arc<IndexDef>>>;

pub(crate) fn parsed_cache() -> &'static ParsedCache {
    static CACHE: OnceLock<ParsedCache> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The index definitions of `coll` as `view` sees them (empty when it has none).
pub(crate) fn defs_for(view: &dyn ReadView, coll: &str) -> Result<Vec<Arc<IndexDef>>> {
    if !view.has_table(CATALOG) {
        return Ok(Vec::new());
    }
    let Some(id) = view.snapshot_id() else {
        return read_defs(view, coll);
    };
    // Queries on an unchanged database read the same definitions again and again: they are
    // kept per committed snapshot (with what they compile on first use).
    if let Some((_, _, defs)) = DEFS_SEEN
        .lock()
        .iter()
        .find(|(i, c, _)| *i == id && c == coll)
    {
        return Ok(defs.to_vec());
    }
    let defs = read_defs(view, coll)?;
    let mut seen = DEFS_SEEN.lock();
    if seen.len() >= DEFS_SEEN_MAX {
        seen.remove(0);
    }
    seen.push((id, coll.to_owned(), defs.clone().into()));
    Ok(defs)
}

/// The definitions [`defs_for`] read last, by snapshot and collection (newest last).
#[allow(clippy::type_complexity)]
static DEFS_SEEN: Mutex<Vec<(SnapshotId, String, Arc<[Arc<IndexDef>]>)>> = Mutex::new(Vec::new());
pub(crate) const DEFS_SEEN_MAX: usize = 16;

/// The definitions of `coll`'s indexes as stored in `view`'s catalog.
pub(crate) fn read_defs(view: &dyn ReadView, coll: &str) -> Result<Vec<Arc<IndexDef>>> {
    let mut prefix = coll.as_bytes().to_vec();
    prefix.push(0);
    let mut out = Vec::new();
    let mut after: Bytes = Bytes::copy_from_slice(prefix.as_slice());
    loop {
        let batch = view.scan(CATALOG, Some(&after), 64);
        if batch.is_empty() {
            return Ok(out);
        }
        for (k, v) in &batch {
            if !k.starts_with(&prefix) {
                return Ok(out);
            }
            out.push(parse_entry(coll, k, v)?);
        }
        after = batch.last().map(|(k, _)| k.clone()).unwrap_or(after);
    }
}

/// Every index definition in `view`.
pub(crate) fn all_defs(view: &dyn ReadView) -> Result<Vec<Arc<IndexDef>>> {
    if !view.has_table(CATALOG) {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let mut after: Option<Bytes> = None;
    loop {
        let batch = view.scan(CATALOG, after.as_deref(), 64);
        if batch.is_empty() {
            return Ok(out);
        }
        for (k, v) in &batch {
            let coll = k
                .split(|b| *b == 0)
                .next()
                .and_then(|c| std::str::from_utf8(c).ok())
                .ok_or_else(|| Error::Corrupt("index catalog key is malformed".into()))?;
            out.push(parse_entry(coll, k, v)?);
        }
        after = batch.last().map(|(k, _)| k.clone());
    }
}

pub(crate) fn parse_entry(coll: &str, k: &Bytes, v: &Bytes) -> Result<Arc<IndexDef>> {
    let mut cache = parsed_cache().lock();
    if let Some(d) = cache.get(&(k.clone(), v.clone())) {
        return Ok(Arc::clone(d));
    }
    let doc = crate::document::raw::bson_decode(v)
        .map_err(|e| Error::Corrupt(format!("index catalog entry of '{coll}': {e}")))?;
    let def = Arc::new(IndexDef::from_bson(coll, &doc)?);
    if cache.len() >= 4096 {
        cache.clear();
    }
    // Copies, not clones: `k` and `v` are usually slices of a page buffer, and a clone would
    // keep the whole page alive in this process-wide cache, outside the page cache's budget.
    let key = (Bytes::copy_from_slice(k), Bytes::copy_from_slice(v));
    cache.insert(key, Arc::clone(&def));
    Ok(def)
}

/// Empties the process-wide caches of this module and frees their tables; called when the
/// last engine of the process is dropped, so a host that closed every database keeps none of
/// their definitions. `try_lock`: a thread using a cache now has an engine again, and a
/// cache left filled is only memory, never a wrong answer (entries are keyed by content or
/// by a store number that is never reused).
pub(crate) fn release_caches() {
    if let Some(mut cache) = parsed_cache().try_lock() {
        *cache = HashMap::new();
    }
    if let Some(mut seen) = DEFS_SEEN.try_lock() {
        *seen = Vec::new();
    }
    super::vector::graph::release_shared();
}

pub(crate) fn save_def(t: &mut dyn WriteTxn, def: &IndexDef) -> Result<()> {
    if !t.has_table(CATALOG) {
        t.create_table(CATALOG, "{}")?;
    }
    let mut bytes = Vec::new();
    def.to_bson()
        .to_writer(&mut bytes)
        .map_err(|e| Error::invalid(format!("index definition: {e}")))?;
    t.put(CATALOG, def.catalog_key(), Bytes::from(bytes))
}

/// Removes every index of `coll` (the collection is being dropped).
pub(crate) fn forget_collection(t: &mut dyn WriteTxn, coll: &str) -> Result<()> {
    for def in defs_for(t.as_read(), coll)? {
        drop_def(t, &def)?;
    }
    Ok(())
}

/// Moves every index of `from` to `to` (the collection is being renamed).
pub(crate) fn rename_collection(t: &mut dyn WriteTxn, from: &str, to: &str) -> Result<()> {
    for def in defs_for(t.as_read(), from)? {
        let mut moved = (*def).clone();
        moved.coll = to.to_owned();
        t.rename_table(def.table(), moved.table())?;
        t.delete(CATALOG, &def.catalog_key())?;
        save_def(t, &moved)?;
    }
    Ok(())
}

pub(crate) fn drop_def(t: &mut dyn WriteTxn, def: &IndexDef) -> Result<()> {
    t.delete(CATALOG, &def.catalog_key())?;
    if t.has_table(def.table()) {
        t.drop_table(def.table())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    /// A cached definition must not keep the page its catalog entry was read from: the
    /// cache's key bytes are copies, not views of the caller's (page-sized) buffer.
    #[test]
    fn parsed_cache_keeps_copies_not_page_views() {
        // An open engine, so that another test closing the last one of this process does not
        // empty the cache between the parse and the look below.
        let _db = crate::Database::open_in_memory().expect("in-memory database");
        let def = super::super::def::new_def("pinned_page_coll", &doc! {"a": 1}, &doc! {})
            .expect("index definition");
        let mut value = Vec::new();
        def.to_bson().to_writer(&mut value).expect("bson");
        let key = b"pinned_page_coll\0a_1".to_vec();
        // One buffer standing for a page: the entry's key and value are slices of it.
        let mut page = vec![0u8; 8192];
        page[..key.len()].copy_from_slice(&key);
        page[100..100 + value.len()].copy_from_slice(&value);
        let page = Bytes::from(page);
        let k = page.slice(..key.len());
        let v = page.slice(100..100 + value.len());
        parse_entry("pinned_page_coll", &k, &v).expect("parse");
        let cache = parsed_cache().lock();
        let ((ck, cv), _) = cache
            .get_key_value(&(k.clone(), v.clone()))
            .expect("the entry is cached");
        let page_range = page.as_ptr_range();
        assert!(
            !page_range.contains(&ck.as_ptr()),
            "cached key is a view of the page"
        );
        assert!(
            !page_range.contains(&cv.as_ptr()),
            "cached value is a view of the page"
        );
    }
}
