//! MongoDB-style write calls that report what happened as a JSON result:
//! `nexus_update_one`, `nexus_update_many`, `nexus_replace_one`, `nexus_insert_many_with`,
//! `nexus_bulk_write`. Options and results use MongoDB's names (see `docs/API.md`).
//!
//! Unlike the other calls, a batch that fails part-way (`nexus_insert_many_with`,
//! `nexus_bulk_write`) still writes its result (with `writeErrors`) to `*out_result_json`
//! and returns the status of the first error.

use super::db::nexus_db;
use super::document::{documents_via_value, filter_arg, give_string};
use super::handle::{handle_ref, opt_str_arg, str_arg};
use super::panic::ffi_boundary;
use super::status::NEXUS_OK;
use crate::api::writes::update_from_json;
use crate::document::body::NewBody;
use crate::document::json::{
    document_text_may_fit, parse_document_array, parse_json, parse_json_document, raw_element_array,
};
use crate::error::{Error, Result};
use crate::query::update::UpdateModifications;
use crate::{Document, InsertManyOptions, ModifyOptions, UpdateResult, WriteError, WriteModel};
use std::ffi::{c_char, c_int};

/// Reads an update argument: a JSON object, or an array of stage objects (a pipeline).
///
/// # Safety
/// `p` is NULL or NUL-terminated.
pub(super) unsafe fn update_arg(
    p: *const c_char,
    what: &'static str,
) -> Result<UpdateModifications> {
    // SAFETY: forwarded contract.
    let t = unsafe { str_arg(p, what) }?;
    if t.trim_start().starts_with('[') {
        update_from_json(parse_json(t, what)?, what)
    } else {
        parse_json_document(t, what).map(UpdateModifications::Document)
    }
}

/// Hands `json` to the caller when `out` is not NULL.
///
/// # Safety
/// `out` is NULL or valid for writes.
unsafe fn give_result(out: *mut *mut c_char, json: &str) -> Result<()> {
    if out.is_null() {
        return Ok(());
    }
    // SAFETY: non-NULL, forwarded contract.
    unsafe { give_string(out, json) }
}

/// The status of a batch: `NEXUS_OK`, or the first write error's (its message becomes the
/// thread's error message).
fn batch_status(errors: &[WriteError]) -> Result<c_int> {
    match errors.first() {
        None => Ok(NEXUS_OK),
        Some(e) => Err(status_error(&e.error)),
    }
}

/// Which of the three update calls.
#[derive(Clone, Copy)]
enum Kind {
    One,
    Many,
    Replace,
}

/// The body of `nexus_update_one` / `_many` / `nexus_replace_one`.
///
/// # Safety
/// As for `nexus_update_one`.
unsafe fn update_call(
    kind: Kind,
    db: *mut nexus_db,
    coll: *const c_char,
    filter_json: *const c_char,
    update_json: *const c_char,
    options_json: *const c_char,
    out_result_json: *mut *mut c_char,
) -> Result<c_int> {
    // SAFETY: caller contract (all four lines).
    let h = unsafe { handle_ref(db, "db") }?;
    let coll = unsafe { str_arg(coll, "coll") }?;
    let filter = unsafe { filter_arg(filter_json) }?;
    let options = ModifyOptions::from_json(unsafe { opt_str_arg(options_json, "options_json") }?)?;
    let c = h.db.collection(coll);
    let r: UpdateResult = match kind {
        Kind::One | Kind::Many => {
            // SAFETY: caller contract.
            let update = unsafe { update_arg(update_json, "update_json") }?;
            if matches!(kind, Kind::One) {
                c.update_one(&filter, update, options)?
            } else {
                c.update_many(&filter, update, options)?
            }
        }
        Kind::Replace => {
            // SAFETY: caller contract.
            let t = unsafe { str_arg(update_json, "replacement_json") }?;
            let replacement = parse_json_document(t, "replacement_json")?;
            c.replace_one(&filter, &replacement, options)?
        }
    };
    // SAFETY: NULL or writable per the caller's contract.
    unsafe { give_result(out_result_json, &r.to_json()) }?;
    Ok(NEXUS_OK)
}

/// Applies the update operators (or pipeline) of `update_json` to the first document of
/// `coll` matching `filter_json` (NULL: any), or upserts. `options_json` (NULL: none):
/// `upsert` (bool), `arrayFilters` (array of filters for the `$[<identifier>]` paths), `sort`
/// (which match is updated: the first in this order), `hint` (an index name, a key pattern
/// or `{"$natural": 1}`; must exist). `*out_result_json` (when `out_result_json` is not
/// NULL; free with `nexus_free`) gets `{"matchedCount", "modifiedCount", "upsertedCount",
/// "upsertedId"}`, `upsertedId` (Extended JSON) only when a document was upserted.
///
/// Errors: `NEXUS_INVALID_ARGUMENT` "update document requires atomic operators" (a
/// replacement document), an unknown option or hint; `NEXUS_PARSE` for a bad update or
/// array filter (MongoDB's messages), checked before anything is written;
/// `NEXUS_PARSE` for a stage not allowed in a pipeline update; `NEXUS_NO_COLLECTION`
/// without `upsert` when the collection is missing; `NEXUS_DUPLICATE_KEY` when an upsert's
/// `_id` exists.
///
/// # Safety
/// `db` is a live handle or NULL; strings are NULL or NUL-terminated; `out_result_json`
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn nexus_update_one(
    db: *mut nexus_db,
    coll: *const c_char,
    filter_json: *const c_char,
    update_json: *const c_char,
    options_json: *const c_char,
    out_result_json: *mut *mut c_char,
) -> c_int {
    // SAFETY: forwarded contract.
    ffi_boundary(|| unsafe {
        update_call(
            Kind::One,
            db,
            coll,
            filter_json,
            update_json,
            options_json,
            out_result_json,
        )
    })
}

/// As `nexus_update_one`, for every matching document (an upsert inserts one). The `sort`
/// option is `NEXUS_INVALID_ARGUMENT`.
///
/// # Safety
/// As for `nexus_update_one`.
#[no_mangle]
pub unsafe extern "C" fn nexus_update_many(
    db: *mut nexus_db,
    coll: *const c_char,
    filter_json: *const c_char,
    update_json: *const c_char,
    options_json: *const c_char,
    out_result_json: *mut *mut c_char,
) -> c_int {
    // SAFETY: forwarded contract.
    ffi_boundary(|| unsafe {
        update_call(
            Kind::Many,
            db,
            coll,
            filter_json,
            update_json,
            options_json,
            out_result_json,
        )
    })
}

/// Replaces the body of the first document matching `filter_json` (the first by the `sort`
/// option) with `replacement_json`, keeping its `_id`, or upserts. Options `upsert`, `sort`,
/// `hint`; result as `nexus_update_one`.
///
/// Errors: `NEXUS_INVALID_ARGUMENT` "replacement document must not contain atomic
/// operators", or for `arrayFilters`; `NEXUS_PARSE` when the replacement changes `_id`;
/// otherwise as `nexus_update_one`.
///
/// # Safety
/// As for `nexus_update_one`.
#[no_mangle]
pub unsafe extern "C" fn nexus_replace_one(
    db: *mut nexus_db,
    coll: *const c_char,
    filter_json: *const c_char,
    replacement_json: *const c_char,
    options_json: *const c_char,
    out_result_json: *mut *mut c_char,
) -> c_int {
    // SAFETY: forwarded contract.
    ffi_boundary(|| unsafe {
        update_call(
            Kind::Replace,
            db,
            coll,
            filter_json,
            replacement_json,
            options_json,
            out_result_json,
        )
    })
}

/// Reads the documents of `nexus_insert_many*`'s JSON array.
fn new_bodies(text: &str) -> Result<Vec<NewBody>> {
    Ok(match raw_element_array(text) {
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
    })
}

/// Inserts the documents of the JSON array `json_array` in order, each whole or not at all.
/// Option `ordered` (default true) stops at the first document that fails; `false` tries
/// every one. Documents inserted before a failure stay inserted (as in MongoDB). The result,
/// `{"insertedCount", "insertedIds": {"<index>": id}, "writeErrors": [{"index", "code",
/// "errmsg"}]}` (codes: MongoDB's, 11000 for a duplicate key), is written to
/// `*out_result_json` (when not NULL) also when some documents failed; the status is then
/// the first failure's (`NEXUS_DUPLICATE_KEY`, `NEXUS_INVALID_ARGUMENT` for an oversized
/// document). All documents go in one transaction (inside an explicit one: into it).
///
/// Errors without a result: `NEXUS_PARSE` (malformed JSON, not an array of objects; nothing
/// inserted), `NEXUS_INVALID_ARGUMENT` (an unknown option), storage errors.
///
/// # Safety
/// As for `nexus_update_one`.
#[no_mangle]
pub unsafe extern "C" fn nexus_insert_many_with(
    db: *mut nexus_db,
    coll: *const c_char,
    json_array: *const c_char,
    options_json: *const c_char,
    out_result_json: *mut *mut c_char,
) -> c_int {
    ffi_boundary(|| {
        // SAFETY: caller contract (all four lines).
        let h = unsafe { handle_ref(db, "db") }?;
        let coll = unsafe { str_arg(coll, "coll") }?;
        let text = unsafe { str_arg(json_array, "json_array") }?;
        let options =
            InsertManyOptions::from_json(unsafe { opt_str_arg(options_json, "options_json") }?)?;
        let r =
            h.db.collection(coll)
                .insert_bodies_with(new_bodies(text)?, options)?;
        // SAFETY: NULL or writable per the caller's contract.
        unsafe { give_result(out_result_json, &r.to_json()) }?;
        batch_status(&r.write_errors)
    })
}

/// Applies the write models of the JSON array `operations_json` in order: `{"insertOne":
/// {"document"}}`, `{"updateOne": {"filter", "update", "upsert", "arrayFilters", "sort",
/// "hint"}}`, `{"updateMany": {"filter", "update", "upsert", "arrayFilters", "hint"}}`,
/// `{"replaceOne": {"filter", "replacement", "upsert", "sort", "hint"}}`, `{"deleteOne":
/// {"filter", "hint"}}`, `{"deleteMany": {"filter", "hint"}}`. Option `ordered` (default
/// true) stops at the first failing operation; `false` tries every one. Each operation is
/// applied whole or not at all, as its own call: outside an explicit transaction each commits
/// by itself, and a failure keeps the operations before it (MongoDB's semantics); inside
/// `nexus_begin` ... `nexus_commit` they all belong to that transaction. The result
/// (MongoDB's BulkWriteResult: `insertedCount`, `matchedCount`, `modifiedCount`,
/// `deletedCount`, `upsertedCount`, `upsertedIds` and `insertedIds` as `{"<index>": id}`,
/// `writeErrors`) is written to `*out_result_json` (when not NULL) also when operations
/// failed; the status is then the first failure's.
///
/// Errors without a result, before anything runs: `NEXUS_PARSE` for malformed JSON;
/// `NEXUS_INVALID_ARGUMENT` for a malformed model (naming its index), an update without
/// operators or a replacement with them.
///
/// # Safety
/// As for `nexus_update_one`.
#[no_mangle]
pub unsafe extern "C" fn nexus_bulk_write(
    db: *mut nexus_db,
    coll: *const c_char,
    operations_json: *const c_char,
    options_json: *const c_char,
    out_result_json: *mut *mut c_char,
) -> c_int {
    ffi_boundary(|| {
        // SAFETY: caller contract (all four lines).
        let h = unsafe { handle_ref(db, "db") }?;
        let coll = unsafe { str_arg(coll, "coll") }?;
        let text = unsafe { str_arg(operations_json, "operations_json") }?;
        let options =
            InsertManyOptions::from_json(unsafe { opt_str_arg(options_json, "options_json") }?)?;
        let models = WriteModel::list_from_json(text)?;
        let r = h.db.collection(coll).bulk_write(models, options)?;
        // SAFETY: NULL or writable per the caller's contract.
        unsafe { give_result(out_result_json, &r.to_json()) }?;
        batch_status(&r.write_errors)
    })
}

/// A copy of a per-write error (its variant and message) for the call's status.
fn status_error(e: &Error) -> Error {
    match e {
        Error::DuplicateKey(m) => Error::DuplicateKey(m.clone()),
        Error::Parse(m) => Error::Parse(m.clone()),
        Error::InvalidArgument(m) => Error::InvalidArgument(m.clone()),
        Error::NoCollection(m) => Error::NoCollection(m.clone()),
        Error::NotFound(m) => Error::NotFound(m.clone()),
        Error::Unsupported(m) => Error::Unsupported(m.clone()),
        other => Error::Internal(other.to_string()),
    }
}
