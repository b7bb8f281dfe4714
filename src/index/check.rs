//! The index part of `nexus_check`: every document has exactly its entries in every index
//! of its collection, and every entry points at a document that has that key.

use super::{
    all_defs, covered_values, entry_id, entry_key, entry_record_id, with_record_id, IndexDef,
};
use crate::error::Result;
use crate::storage::{Bytes, ReadView};
use std::collections::HashSet;

/// Most problems listed per index (the count is always exact).
const MAX_LISTED: usize = 10;

/// Checks every index in `view`: per index `{name, collection, entries, ok}`, plus
/// messages describing each damage found.
pub(crate) fn check_all(view: &dyn ReadView) -> Result<(serde_json::Value, Vec<String>)> {
    let mut report = Vec::new();
    let mut errors = Vec::new();
    for def in all_defs(view)? {
        let (entries, problems) = match &def.vector {
            Some(spec) => super::vector::check::check_one(view, &def, spec)?,
            None => check_one(view, &def)?,
        };
        report.push(serde_json::json!({
            "collection": def.coll,
            "name": def.name,
            "entries": entries,
            "ok": problems.is_empty(),
        }));
        errors.extend(problems.into_iter().take(MAX_LISTED));
    }
    Ok((serde_json::Value::Array(report), errors))
}

fn check_one(view: &dyn ReadView, def: &IndexDef) -> Result<(u64, Vec<String>)> {
    let table = def.table();
    let mut problems = Vec::new();
    if !view.has_table(table) {
        problems.push(format!(
            "index '{}' of '{}': its entry table is missing",
            def.name, def.coll
        ));
        return Ok((0, problems));
    }
    // Every document's keys are present, pointing back at the document.
    let mut expected: u64 = 0;
    let mut after: Option<Bytes> = None;
    loop {
        let batch = view.scan(&def.coll, after.as_deref(), 256);
        if batch.is_empty() {
            break;
        }
        for (id, rec) in &batch {
            let doc = crate::document::record::decode_body(rec)?.into_bson();
            let entries = match def.entries_of(&doc, id) {
                Ok((entries, _)) => entries,
                Err(e) => {
                    problems.push(format!(
                        "index '{}' of '{}': a document cannot be indexed: {e}",
                        def.name, def.coll
                    ));
                    continue;
                }
            };
            // The record id the entries of the document carry (clustered collections; an
            // entry without one, as earlier layouts wrote, is read through the `_id` map).
            let rid = view.record_id_for(&def.coll, id);
            for (k, want) in entries {
                let want = with_record_id(want, rid);
                expected += 1;
                let key = entry_key(&k, id);
                let same_values = |v: &[u8]| {
                    let (a, b) = (
                        covered_values(&def.fields, &key, v),
                        covered_values(&def.fields, &key, &want),
                    );
                    matches!((a, b), (Ok(a), Ok(b)) if a == b)
                };
                match view.get(table, &key) {
                    // An entry of the first layout holds the same as `want` in other bytes.
                    Some(v)
                        if v[..] == want[..]
                            || entry_id(&key, &v) == &id[..]
                                && entry_record_id(&key, &v).is_none_or(|r| Some(r) == rid)
                                && same_values(&v) => {}
                    Some(v)
                        if entry_id(&key, &v) == &id[..]
                            && entry_record_id(&key, &v).is_some_and(|r| Some(r) != rid) =>
                    {
                        problems.push(format!(
                            "index '{}' of '{}': an entry holds another record id than its document's",
                            def.name, def.coll
                        ));
                    }
                    Some(v) if entry_id(&key, &v) == &id[..] => problems.push(format!(
                        "index '{}' of '{}': an entry's covered values differ from its document",
                        def.name, def.coll
                    )),
                    Some(_) => problems.push(format!(
                        "index '{}' of '{}': an entry points at the wrong document",
                        def.name, def.coll
                    )),
                    None => problems.push(format!(
                        "index '{}' of '{}': a document is missing its entry",
                        def.name, def.coll
                    )),
                }
            }
        }
        after = batch.last().map(|(k, _)| k.clone());
    }
    // No extra entries: the counts agree and every entry's document exists.
    let entries = view.count(table);
    if entries != expected {
        problems.push(format!(
            "index '{}' of '{}': {entries} entries for {expected} expected",
            def.name, def.coll
        ));
        let mut seen = HashSet::new();
        let mut after: Option<Bytes> = None;
        loop {
            let batch = view.scan(table, after.as_deref(), 256);
            if batch.is_empty() {
                break;
            }
            for (key, value) in &batch {
                let id = entry_id(key, value);
                if seen.insert(id.to_vec()) && view.get(&def.coll, id).is_none() {
                    problems.push(format!(
                        "index '{}' of '{}': an entry points at a missing document",
                        def.name, def.coll
                    ));
                }
            }
            after = batch.last().map(|(k, _)| k.clone());
        }
    }
    Ok((entries, problems))
}
