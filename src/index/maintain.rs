//! Maintenance: the entries of a put or delete on an indexed collection, written in the same
//! transaction (called by the engine's tracked transaction), with unique checks before
//! anything is written.

use super::vector::maintain::Pending;
use super::{entry_id, save_def, with_record_id, IndexDef};
use crate::document::record;
use crate::error::{Error, Result};
use crate::storage::{Bytes, ReadView, WriteTxn};
use bson::{Bson, Document as BsonDocument};
use std::sync::Arc;

pub(crate) fn body_of(rec: &[u8]) -> Result<BsonDocument> {
    Ok(record::decode_body(rec)?.into_bson())
}

/// Brings the indexes `defs` of collection `coll` up to date for a write of `new_rec` (a
/// stored record; `None` for a delete) under `id_key`, inside `t`, before the document itself
/// is written. Unique violations are found before any entry changes. Returns whether a
/// definition changed in the catalog (an index became multikey).
pub(crate) fn on_write(
    t: &mut dyn WriteTxn,
    defs: &[Arc<IndexDef>],
    coll: &str,
    id_key: &[u8],
    new_rec: Option<&[u8]>,
    absent: bool,
) -> Result<bool> {
    // Only the key paths of each record are decoded (see `entries_of_record`); the whole
    // new document only for a duplicate-key message. `absent`: the caller has just found
    // no record under `id_key`.
    let old_rec = if absent { None } else { t.get(coll, id_key) };
    // The document's record id (the one it has, or will get when put), which its entries
    // carry in a clustered collection.
    let rid = t.record_id_for(coll, id_key);
    let with_rid = |(entries, multikey): (super::def::Entries, bool)| {
        let entries = entries
            .into_iter()
            .map(|(k, v)| (k, with_record_id(v, rid)))
            .collect::<Vec<_>>();
        (entries, multikey)
    };
    // Vector indexes' new vectors are checked before anything is written.
    let mut vectors = Vec::new();
    for def in defs {
        if let Some(spec) = &def.vector {
            vectors.push((def, spec, Pending::check(def, spec, coll, id_key, new_rec)?));
        }
    }
    let mut changes = Vec::with_capacity(defs.len());
    for def in defs.iter().filter(|d| d.vector.is_none()) {
        let parts = def.key_parts();
        let (old_entries, _) = match &old_rec {
            Some(r) => with_rid(def.entries_of_record(r, parts, id_key)?),
            None => (Vec::new(), false),
        };
        let (new_entries, multikey) = match new_rec {
            Some(r) => def
                .entries_of_record(r, parts, id_key)
                .map_err(|e| match e {
                    Error::InvalidArgument(m) => {
                        Error::InvalidArgument(format!("index '{}' of '{coll}': {m}", def.name))
                    }
                    other => other,
                })
                .map(with_rid)?,
            None => (Vec::new(), false),
        };
        let old_has = |k: &[u8]| old_entries.binary_search_by(|(o, _)| o[..].cmp(k)).ok();
        let new_has = |k: &[u8]| new_entries.binary_search_by(|(n, _)| n[..].cmp(k)).is_ok();
        let removed: Vec<Vec<u8>> = old_entries
            .iter()
            .filter(|(k, _)| !new_has(k))
            .map(|(k, _)| k.clone())
            .collect();
        // New keys, and kept keys whose covered values changed (1 became 1.0).
        let mut written = Vec::new();
        for (k, v) in &new_entries {
            match old_has(k) {
                None => {
                    if def.unique && other_holder(&*t, coll, def.table(), k, id_key).is_some() {
                        let new_doc = new_rec.map(body_of).transpose()?;
                        return Err(duplicate(def, new_doc.as_ref()));
                    }
                    written.push((k.clone(), v.clone()));
                }
                Some(i) if old_entries[i].1 != *v => written.push((k.clone(), v.clone())),
                Some(_) => {}
            }
        }
        changes.push((def, removed, written, multikey && !def.multikey));
    }
    let mut catalog_changed = false;
    for (def, removed, written, flip) in changes {
        let table = def.table();
        for k in removed {
            t.delete(table, &entry_key(&k, id_key))?;
        }
        for (k, v) in written {
            t.put(table, Bytes::from(entry_key(&k, id_key)), Bytes::from(v))?;
        }
        if flip {
            let mut d = (**def).clone();
            d.multikey = true;
            save_def(t, &d)?;
            catalog_changed = true;
        }
    }
    for (def, spec, pending) in vectors {
        pending.apply(t, def, spec, id_key, rid, absent)?;
    }
    Ok(catalog_changed)
}

/// Whether the document under `id_key` exists and has not expired (an expired ephemeral
/// document keeps its entries until it is purged, but no longer holds a unique key).
pub(crate) fn is_live_doc(view: &dyn ReadView, coll: &str, id_key: &[u8]) -> bool {
    view.get(coll, id_key)
        .is_some_and(|r| record::is_live(&r, crate::document::now_millis()))
}

/// The `_id` key of a live document other than `id_key` holding index key `k` in `table`
/// (expired documents keep their entries until purged, so there may be several).
pub(crate) fn other_holder(
    view: &dyn ReadView,
    coll: &str,
    table: &str,
    k: &[u8],
    id_key: &[u8],
) -> Option<Bytes> {
    let mut after: Bytes = Bytes::copy_from_slice(k);
    loop {
        let batch = view.scan(table, Some(&after), 8);
        if batch.is_empty() {
            return None;
        }
        for (ek, value) in &batch {
            if !ek.starts_with(k) {
                return None;
            }
            let holder = entry_id(ek, value);
            if holder != id_key && is_live_doc(view, coll, holder) {
                return Some(Bytes::copy_from_slice(holder));
            }
        }
        after = batch.last().map(|(ek, _)| ek.clone())?;
    }
}

pub(crate) fn entry_key(k: &[u8], id_key: &[u8]) -> Vec<u8> {
    let mut e = Vec::with_capacity(k.len() + id_key.len());
    e.extend_from_slice(k);
    e.extend_from_slice(id_key);
    e
}

/// MongoDB's E11000 message, naming the index and the key.
pub(crate) fn duplicate(def: &IndexDef, doc: Option<&BsonDocument>) -> Error {
    let values: Vec<String> = def
        .fields
        .iter()
        .map(|f| {
            let mut reached = Vec::new();
            if let Some(d) = doc {
                crate::query::path::lookup(d, &f.path, &mut reached);
            }
            let v = reached.first().map_or(Bson::Null, |v| (*v).clone());
            format!(
                "{}: {}",
                f.path,
                crate::document::json::bson_to_json_text(&v)
            )
        })
        .collect();
    Error::DuplicateKey(format!(
        "E11000 duplicate key error collection: {} index: {} dup key: {{ {} }}",
        def.coll,
        def.name,
        values.join(", ")
    ))
}
