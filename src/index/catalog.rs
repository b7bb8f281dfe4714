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
    cache.insert((k.clone(), v.clone()), Arc::clone(&def));
    Ok(def)
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
