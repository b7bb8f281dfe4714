//! Document calls: insert (JSON, BSON, many, TTL), get, get_meta, replace, set_ttl,
//! find_one, count, update, delete, distinct, find_one_and_update, find_one_and_delete.

use super::db::nexus_db;
use super::handle::{alloc_string, handle_ref, opt_str_arg, out_arg, str_arg, write_opt};
use super::panic::ffi_boundary;
use super::status::{NEXUS_MULTI, NEXUS_OK, NEXUS_UPSERT};
use crate::document::body::NewBody;
use crate::document::json::{
    document_text_may_fit, json_to_document, parse_document_array, parse_json, parse_json_document,
    raw_element_array,
};
use crate::error::{Error, Result};
use crate::{Document, DocumentId, FindOneAndOptions, UpdateOptions};
use bson::Document as BsonDocument;
use std::ffi::{c_char, c_int};

/// Parses an optional filter argument (NULL: match everything).
///
/// # Safety
/// `p` is NULL or NUL-terminated.
pub(super) unsafe fn filter_arg(p: *const c_char) -> Result<BsonDocument> {
    // SAFETY: forwarded contract.
    match unsafe { opt_str_arg(p, "filter_json") }? {
        None => Ok(BsonDocument::new()),
        Some(t) if t.trim().is_empty() => Ok(BsonDocument::new()),
        Some(t) => parse_json_document(t, "filter"),
    }
}

/// Parses a required JSON document argument.
///
/// # Safety
/// `p` is NULL or NUL-terminated.
unsafe fn doc_arg(p: *const c_char, what: &'static str) -> Result<BsonDocument> {
    // SAFETY: forwarded contract.
    let t = unsafe { str_arg(p, what) }?;
    parse_json_document(t, what)
}

/// Reads a required JSON document argument for an insert, straight to BSON when it can.
///
/// # Safety
/// `p` is NULL or NUL-terminated.
unsafe fn new_body_arg(p: *const c_char, what: &'static str) -> Result<NewBody> {
    // SAFETY: forwarded contract.
    let t = unsafe { str_arg(p, what) }?;
    NewBody::from_json(t, what)
}

/// The documents of a JSON array through `serde_json::Value`: the reference reading of
/// `nexus_insert_many`'s argument, and its error messages, for text the direct reader declines.
pub(super) fn documents_via_value(text: &str) -> Result<Vec<Document>> {
    let serde_json::Value::Array(items) = parse_json(text, "json_array")? else {
        return Err(Error::parse("json_array must be a JSON array of documents"));
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            json_to_document(v, "json_array element")
                .map(Document::from)
                .map_err(|e| Error::parse(format!("element {i}: {e}")))
        })
        .collect()
}

/// Writes a library-owned copy of `s` to a required out-pointer.
///
/// # Safety
/// `out` is valid for writes (checked non-NULL by the caller).
pub(super) unsafe fn give_string(out: *mut *mut c_char, s: &str) -> Result<()> {
    let p = alloc_string(s)?;
    // SAFETY: forwarded contract.
    unsafe { out.write(p) };
    Ok(())
}

/// Hands the new `_id` to the caller when `out_id` is not NULL; the insert's status.
///
/// # Safety
/// `out_id` is NULL or valid for writes.
unsafe fn give_id(out_id: *mut *mut c_char, id: &DocumentId) -> Result<c_int> {
    if !out_id.is_null() {
        // SAFETY: non-NULL, forwarded contract.
        unsafe { give_string(out_id, &id.to_text()) }?;
    }
    Ok(NEXUS_OK)
}

/// Inserts the JSON document `json` into `coll` (created when missing). Without an `_id` the
/// document gets a UUID v4 string. On success `*out_id` (when `out_id` is not NULL) receives
/// the `_id` as text (strings as they are, other types as Extended JSON; free with
/// `nexus_free`).
///
/// Errors: `NEXUS_PARSE` for malformed JSON or a non-object, `NEXUS_DUPLICATE_KEY`,
/// `NEXUS_INVALID_ARGUMENT` for a document over 16 MiB, an array `_id`, or a reserved
/// collection name.
///
/// # Safety
/// `db` is a live handle or NULL; strings are NULL or NUL-terminated; `out_id` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn nexus_insert(
    db: *mut nexus_db,
    coll: *const c_char,
    json: *const c_char,
    out_id: *mut *mut c_char,
) -> c_int {
    ffi_boundary(|| {
        // SAFETY: caller contract (all three lines).
        let h = unsafe { handle_ref(db, "db") }?;
        let coll = unsafe { str_arg(coll, "coll") }?;
        let body = unsafe { new_body_arg(json, "json") }?;
        let id = h.db.collection(coll).insert_expiring(body, None)?;
        // SAFETY: NULL or writable per the caller's contract.
        unsafe { give_id(out_id, &id) }
    })
}

/// Inserts one raw BSON document of `len` bytes. Otherwise as `nexus_insert`.
///
/// # Safety
/// `bson` is NULL or valid for reading `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn nexus_insert_bson(
    db: *mut nexus_db,
    coll: *const c_char,
    bson: *const u8,
    len: usize,
    out_id: *mut *mut c_char,
) -> c_int {
    ffi_boundary(|| {
        // SAFETY: caller contract (both lines).
        let h = unsafe { handle_ref(db, "db") }?;
        let coll = unsafe { str_arg(coll, "coll") }?;
        if bson.is_null() {
            return Err(Error::invalid("bson is NULL"));
        }
        // SAFETY: non-NULL and readable for `len` bytes per the caller's contract.
        let bytes = unsafe { std::slice::from_raw_parts(bson, len) };
        let body = NewBody::from_bson_bytes(bytes)?;
        let id = h.db.collection(coll).insert_expiring(body, None)?;
        // SAFETY: NULL or writable per the caller's contract.
        unsafe { give_id(out_id, &id) }
    })
}

/// Inserts every document of the JSON array `json_array`, atomically: all or none (a
/// duplicate `_id` anywhere inserts nothing). `*out_count` (when not NULL) gets the number
/// inserted.
///
/// # Safety
/// As for `nexus_insert`; `out_count` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn nexus_insert_many(
    db: *mut nexus_db,
    coll: *const c_char,
    json_array: *const c_char,
    out_count: *mut u64,
) -> c_int {
    ffi_boundary(|| {
        // SAFETY: caller contract (all three lines).
        let h = unsafe { handle_ref(db, "db") }?;
        let coll = unsafe { str_arg(coll, "coll") }?;
        let text = unsafe { str_arg(json_array, "json_array") }?;
        let docs: Vec<NewBody> = match raw_element_array(text) {
            Some(raw) => raw.into_iter().map(NewBody::Raw).collect(),
            // Too deep for documents (in an array) to fit: refused before it is parsed.
            None if !document_text_may_fit(text, 1) => return Err(crate::document::too_deep()),
            None => match parse_document_array(text) {
                Some(docs) => docs
                    .into_iter()
                    .map(|d| NewBody::Doc(Document::from(d)))
                    .collect(),
                None => documents_via_value(text)?
                    .into_iter()
                    .map(NewBody::Doc)
                    .collect(),
            },
        };
        let n = h.db.collection(coll).insert_many_bodies(docs)?.len() as u64;
        // SAFETY: NULL or writable per the caller's contract.
        unsafe { write_opt(out_count, n) };
        Ok(NEXUS_OK)
    })
}

/// Inserts an ephemeral document that expires `ttl_ms` (at least 1) milliseconds after
/// insertion. From then on it is never returned (`nexus_get` reports `NEXUS_NOT_FOUND` and
/// counts a cache miss; `find` and `count` skip it), even before the background sweeper
/// deletes it. Expiry is an absolute time: it survives restarts. Otherwise as `nexus_insert`.
///
/// # Safety
/// Arguments as for `nexus_insert`.
#[no_mangle]
pub unsafe extern "C" fn nexus_insert_ttl(
    db: *mut nexus_db,
    coll: *const c_char,
    json: *const c_char,
    ttl_ms: u64,
    out_id: *mut *mut c_char,
) -> c_int {
    ffi_boundary(|| {
        // SAFETY: caller contract (all three lines).
        let h = unsafe { handle_ref(db, "db") }?;
        let coll = unsafe { str_arg(coll, "coll") }?;
        let body = unsafe { new_body_arg(json, "json") }?;
        let id = h.db.collection(coll).insert_body_ttl(body, ttl_ms)?;
        // SAFETY: NULL or writable per the caller's contract.
        unsafe { give_id(out_id, &id) }
    })
}

/// Gives the document `id` (read as for `nexus_get`) a time to live of `ttl_ms` from now
/// (`0`: expires at once), or with a negative `ttl_ms` makes it persistent again. Its
/// `expires_at` shows in `nexus_get_meta`. `NEXUS_NOT_FOUND` when absent or already expired.
///
/// # Safety
/// Arguments as for `nexus_get`.
#[no_mangle]
pub unsafe extern "C" fn nexus_set_ttl(
    db: *mut nexus_db,
    coll: *const c_char,
    id: *const c_char,
    ttl_ms: i64,
) -> c_int {
    ffi_boundary(|| {
        // SAFETY: caller contract (all three lines).
        let h = unsafe { handle_ref(db, "db") }?;
        let coll = unsafe { str_arg(coll, "coll") }?;
        let id =
            h.db.collection(coll)
                .resolve_text_id(unsafe { str_arg(id, "id") }?)?;
        h.db.collection(coll).set_ttl(&id, ttl_ms)?;
        Ok(NEXUS_OK)
    })
}

/// Writes the document whose `_id` is `id` as JSON to `*out_json` (free with `nexus_free`).
/// `id` is the text `nexus_insert` returned: a string `_id` as it is, any other `_id` as
/// Extended JSON (`5`, `{"$oid":"..."}`); the string reading is tried first, so when both a
/// string `"5"` and a number `5` are ids, `"5"` names the string. `NEXUS_NOT_FOUND` when
/// absent, `NEXUS_NO_COLLECTION` when the collection is missing.
///
/// # Safety
/// `db` is a live handle or NULL; strings are NULL or NUL-terminated; `out_json` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn nexus_get(
    db: *mut nexus_db,
    coll: *const c_char,
    id: *const c_char,
    out_json: *mut *mut c_char,
) -> c_int {
    ffi_boundary(|| {
        // SAFETY: caller contract (all three lines).
        let h = unsafe { handle_ref(db, "db") }?;
        let coll = unsafe { str_arg(coll, "coll") }?;
        let text = unsafe { str_arg(id, "id") }?;
        out_arg(out_json, "out_json")?;
        let rec =
            h.db.collection(coll)
                .get_record_by_text(text)?
                .ok_or_else(|| {
                    Error::NotFound(format!("no document with _id \"{text}\" in '{coll}'"))
                })?;
        let json = crate::document::record::body_json(&rec)?;
        // SAFETY: checked non-NULL above.
        unsafe { give_string(out_json, &json) }?;
        Ok(NEXUS_OK)
    })
}

fn not_found(coll: &str, id: &DocumentId) -> Error {
    Error::NotFound(format!(
        "no document with _id \"{}\" in '{coll}'",
        id.to_text()
    ))
}

/// Writes the metadata of a document as JSON to `*out_json`:
/// `{"created_at","updated_at" (ms since the epoch),"version","expires_at" (null),"ephemeral","tags"}`.
///
/// # Safety
/// As for `nexus_get`.
#[no_mangle]
pub unsafe extern "C" fn nexus_get_meta(
    db: *mut nexus_db,
    coll: *const c_char,
    id: *const c_char,
    out_json: *mut *mut c_char,
) -> c_int {
    ffi_boundary(|| {
        // SAFETY: caller contract (all three lines).
        let h = unsafe { handle_ref(db, "db") }?;
        let coll = unsafe { str_arg(coll, "coll") }?;
        let id =
            h.db.collection(coll)
                .resolve_text_id(unsafe { str_arg(id, "id") }?)?;
        out_arg(out_json, "out_json")?;
        let meta =
            h.db.collection(coll)
                .get_meta(&id)?
                .ok_or_else(|| not_found(coll, &id))?;
        // SAFETY: checked non-NULL above.
        unsafe { give_string(out_json, &meta.to_json()) }?;
        Ok(NEXUS_OK)
    })
}

/// Replaces the body of the document whose `_id` is `id` (read as for `nexus_get`; an `_id` inside `json`,
/// if any, must be the same). Its version is bumped, its creation time kept.
///
/// # Safety
/// As for `nexus_get`; `json` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn nexus_replace(
    db: *mut nexus_db,
    coll: *const c_char,
    id: *const c_char,
    json: *const c_char,
) -> c_int {
    ffi_boundary(|| {
        // SAFETY: caller contract (all four lines).
        let h = unsafe { handle_ref(db, "db") }?;
        let coll = unsafe { str_arg(coll, "coll") }?;
        let id =
            h.db.collection(coll)
                .resolve_text_id(unsafe { str_arg(id, "id") }?)?;
        let doc = unsafe { doc_arg(json, "json") }?;
        h.db.collection(coll).replace(&id, Document::from(doc))?;
        Ok(NEXUS_OK)
    })
}

/// Writes the first match of `filter_json` (NULL: any) in the collection's order (insertion
/// order; `_id` order in files of format versions 1-2 and with memlog) to `*out_json`.
/// `NEXUS_NOT_FOUND` when nothing matches (also for a missing collection).
///
/// # Safety
/// As for `nexus_get`.
#[no_mangle]
pub unsafe extern "C" fn nexus_find_one(
    db: *mut nexus_db,
    coll: *const c_char,
    filter_json: *const c_char,
    out_json: *mut *mut c_char,
) -> c_int {
    ffi_boundary(|| {
        // SAFETY: caller contract (all three lines).
        let h = unsafe { handle_ref(db, "db") }?;
        let coll = unsafe { str_arg(coll, "coll") }?;
        let filter = unsafe { filter_arg(filter_json) }?;
        out_arg(out_json, "out_json")?;
        let json =
            h.db.collection(coll)
                .find_one_json(&filter)?
                .ok_or_else(|| {
                    Error::NotFound(format!("no document in '{coll}' matches the filter"))
                })?;
        // SAFETY: checked non-NULL above.
        unsafe { give_string(out_json, &json) }?;
        Ok(NEXUS_OK)
    })
}

/// Writes the number of documents matching `filter_json` (NULL: all) to `*out`; 0 for a
/// missing collection.
///
/// # Safety
/// As for `nexus_get`; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn nexus_count(
    db: *mut nexus_db,
    coll: *const c_char,
    filter_json: *const c_char,
    out: *mut u64,
) -> c_int {
    ffi_boundary(|| {
        // SAFETY: caller contract (all three lines).
        let h = unsafe { handle_ref(db, "db") }?;
        let coll = unsafe { str_arg(coll, "coll") }?;
        let filter = unsafe { filter_arg(filter_json) }?;
        out_arg(out, "out")?;
        let n = h.db.collection(coll).count(&filter)?;
        // SAFETY: checked non-NULL above.
        unsafe { out.write(n) };
        Ok(NEXUS_OK)
    })
}

fn check_flags(flags: c_int, allowed: c_int) -> Result<()> {
    if flags & !allowed != 0 {
        return Err(Error::invalid(format!(
            "unknown flag bits {:#x}",
            flags & !allowed
        )));
    }
    Ok(())
}

/// The combined form of `nexus_update_one` / `nexus_update_many` / `nexus_replace_one`:
/// applies `update_json` (operators such as `$set`, or a replacement document) to the
/// first match of `filter_json`, or to every match with `NEXUS_MULTI`; with `NEXUS_UPSERT`
/// inserts a document built from the filter's equality fields and the update when nothing
/// matches. `*out_matched` / `*out_modified` (each may be NULL) get the counts; an upsert
/// reports 0 matched, 0 modified.
///
/// Errors: `NEXUS_PARSE` for an unknown operator, a wrong operand type, conflicting paths, or
/// a change of `_id`, checked before anything is written; `NEXUS_NO_COLLECTION` when the
/// collection is missing and `NEXUS_UPSERT` is not set.
///
/// # Safety
/// As for `nexus_get`; out-pointers NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn nexus_update(
    db: *mut nexus_db,
    coll: *const c_char,
    filter_json: *const c_char,
    update_json: *const c_char,
    flags: c_int,
    out_matched: *mut u64,
    out_modified: *mut u64,
) -> c_int {
    ffi_boundary(|| {
        // SAFETY: caller contract (all four lines).
        let h = unsafe { handle_ref(db, "db") }?;
        let coll = unsafe { str_arg(coll, "coll") }?;
        let filter = unsafe { filter_arg(filter_json) }?;
        let update = unsafe { super::writes::update_arg(update_json, "update_json") }?;
        check_flags(flags, NEXUS_MULTI | NEXUS_UPSERT)?;
        let opts = UpdateOptions {
            multi: flags & NEXUS_MULTI != 0,
            upsert: flags & NEXUS_UPSERT != 0,
        };
        let r = h.db.collection(coll).update_with(&filter, update, opts)?;
        // SAFETY: NULL or writable per the caller's contract (both lines).
        unsafe { write_opt(out_matched, r.matched) };
        unsafe { write_opt(out_modified, r.modified) };
        Ok(NEXUS_OK)
    })
}

/// Deletes the first match of `filter_json` (NULL: any), or every match with `NEXUS_MULTI`.
/// `*out_deleted` (may be NULL) gets the count. `NEXUS_NO_COLLECTION` when missing.
///
/// # Safety
/// As for `nexus_get`; `out_deleted` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn nexus_delete(
    db: *mut nexus_db,
    coll: *const c_char,
    filter_json: *const c_char,
    flags: c_int,
    out_deleted: *mut u64,
) -> c_int {
    ffi_boundary(|| {
        // SAFETY: caller contract (all three lines).
        let h = unsafe { handle_ref(db, "db") }?;
        let coll = unsafe { str_arg(coll, "coll") }?;
        let filter = unsafe { filter_arg(filter_json) }?;
        check_flags(flags, NEXUS_MULTI)?;
        let n =
            h.db.collection(coll)
                .delete(&filter, flags & NEXUS_MULTI != 0)?;
        // SAFETY: NULL or writable per the caller's contract.
        unsafe { write_opt(out_deleted, n) };
        Ok(NEXUS_OK)
    })
}

/// Writes the distinct values of `field` (a dotted path; array values count per element)
/// among documents matching `filter_json` as a sorted JSON array to `*out_json_array`.
///
/// # Safety
/// As for `nexus_get`.
#[no_mangle]
pub unsafe extern "C" fn nexus_distinct(
    db: *mut nexus_db,
    coll: *const c_char,
    field: *const c_char,
    filter_json: *const c_char,
    out_json_array: *mut *mut c_char,
) -> c_int {
    ffi_boundary(|| {
        // SAFETY: caller contract (all four lines).
        let h = unsafe { handle_ref(db, "db") }?;
        let coll = unsafe { str_arg(coll, "coll") }?;
        let field = unsafe { str_arg(field, "field") }?;
        let filter = unsafe { filter_arg(filter_json) }?;
        out_arg(out_json_array, "out_json_array")?;
        let values = h.db.collection(coll).distinct(field, &filter)?;
        let json = bson::Bson::Array(values).into_relaxed_extjson().to_string();
        // SAFETY: checked non-NULL above.
        unsafe { give_string(out_json_array, &json) }?;
        Ok(NEXUS_OK)
    })
}

/// Finds one document (the first by the `sort` option), applies `update_json`, and writes the
/// document before the update (or after, with `{"return": "after"}`) to `*out_json`, shaped by
/// the `projection` option. `update_json` takes operators, a replacement document or a
/// pipeline (an array of `$set` / `$unset` / `$project` / `$replaceWith` ... stages);
/// option `arrayFilters` gives the
/// conditions of its `$[<identifier>]` paths. With `{"upsert": true}` and no match a document is inserted; the
/// "before" image of an upsert is the JSON text `null`. `NEXUS_NOT_FOUND` when nothing
/// matched and nothing was upserted.
///
/// # Safety
/// As for `nexus_update`; `out_json` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn nexus_find_one_and_update(
    db: *mut nexus_db,
    coll: *const c_char,
    filter_json: *const c_char,
    update_json: *const c_char,
    options_json: *const c_char,
    out_json: *mut *mut c_char,
) -> c_int {
    ffi_boundary(|| {
        // SAFETY: caller contract (all five lines).
        let h = unsafe { handle_ref(db, "db") }?;
        let coll = unsafe { str_arg(coll, "coll") }?;
        let filter = unsafe { filter_arg(filter_json) }?;
        let update = unsafe { super::writes::update_arg(update_json, "update_json") }?;
        let opts =
            FindOneAndOptions::from_json(unsafe { opt_str_arg(options_json, "options_json") }?)?;
        out_arg(out_json, "out_json")?;
        let upsert = opts.upsert;
        let r =
            h.db.collection(coll)
                .find_one_and_update_with(&filter, update, opts)?;
        let text = match r {
            Some(d) => d.to_json(),
            None if upsert => "null".to_owned(),
            None => {
                return Err(Error::NotFound(format!(
                    "no document in '{coll}' matches the filter"
                )))
            }
        };
        // SAFETY: checked non-NULL above.
        unsafe { give_string(out_json, &text) }?;
        Ok(NEXUS_OK)
    })
}

/// Finds one document (the first by the `sort` option), deletes it, and writes it to
/// `*out_json` (shaped by `projection`). `NEXUS_NOT_FOUND` when nothing matched.
///
/// # Safety
/// As for `nexus_delete`; `out_json` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn nexus_find_one_and_delete(
    db: *mut nexus_db,
    coll: *const c_char,
    filter_json: *const c_char,
    options_json: *const c_char,
    out_json: *mut *mut c_char,
) -> c_int {
    ffi_boundary(|| {
        // SAFETY: caller contract (all four lines).
        let h = unsafe { handle_ref(db, "db") }?;
        let coll = unsafe { str_arg(coll, "coll") }?;
        let filter = unsafe { filter_arg(filter_json) }?;
        let opts =
            FindOneAndOptions::from_json(unsafe { opt_str_arg(options_json, "options_json") }?)?;
        out_arg(out_json, "out_json")?;
        if opts.upsert || opts.return_after || opts.array_filters.is_some() {
            return Err(Error::invalid(
                "find_one_and_delete takes only 'sort' and 'projection' options",
            ));
        }
        let doc =
            h.db.collection(coll)
                .find_one_and_delete(&filter, opts)?
                .ok_or_else(|| {
                    Error::NotFound(format!("no document in '{coll}' matches the filter"))
                })?;
        // SAFETY: checked non-NULL above.
        unsafe { give_string(out_json, &doc.to_json()) }?;
        Ok(NEXUS_OK)
    })
}
