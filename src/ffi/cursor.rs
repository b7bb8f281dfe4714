//! `nexus_cursor`: `nexus_find`, `nexus_aggregate` and `nexus_vector_search` open one; `nexus_cursor_next` / `nexus_cursor_next_bson`
//! step it; `nexus_cursor_close` frees it.

use super::db::nexus_db;
use super::handle::{handle_mut, handle_ref, opt_str_arg, out_arg, str_arg};
use super::panic::ffi_boundary;
use super::status::{NEXUS_DONE, NEXUS_OK, NEXUS_ROW};
use crate::document::json::parse_json_document;
use crate::error::Result;
use crate::{AggregateOptions, Cursor, Document, FindOptions};
use bson::Document as BsonDocument;
use std::ffi::{c_char, c_int};

/// A stream of query results over the snapshot taken by `nexus_find` (opaque). Writes
/// committed after `nexus_find` returned are not seen. Use from one thread at a time.
/// Under the hood it is a `Box<Cursor>` plus the buffer of the last row.
pub struct nexus_cursor {
    cursor: Cursor,
    /// The last row's JSON text and its NUL, the buffer reused from row to row.
    json: Vec<u8>,
    bson: Vec<u8>,
}

/// Hands `cursor` to the caller as a new handle in `*out_cursor`, which the caller checked
/// non-NULL (`out_arg`) before making the cursor.
fn hand_out(cursor: Cursor, out_cursor: *mut *mut nexus_cursor) -> c_int {
    let handle = Box::into_raw(Box::new(nexus_cursor {
        cursor,
        json: Vec::new(),
        bson: Vec::new(),
    }));
    // SAFETY: `out_cursor` is non-NULL (checked by the caller) and writable (C contract).
    unsafe { out_cursor.write(handle) };
    NEXUS_OK
}

/// Runs a query on `coll` and writes a cursor to `*out_cursor` (close it with
/// `nexus_cursor_close`). `filter_json` NULL or `{}` matches all; a missing collection gives
/// an empty result. `options_json` (NULL: none): `sort` (`{"age": -1}`), `projection`
/// (`{"name": 1}`), `skip`, `limit` (0: none), `hint` (an index name, its key pattern, or
/// `{"$natural": 1}` for a collection scan).
///
/// # Safety
/// `db` is a live handle or NULL; strings are NULL or NUL-terminated; `out_cursor` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn nexus_find(
    db: *mut nexus_db,
    coll: *const c_char,
    filter_json: *const c_char,
    options_json: *const c_char,
    out_cursor: *mut *mut nexus_cursor,
) -> c_int {
    ffi_boundary(|| {
        // SAFETY: caller contract (all four lines).
        let h = unsafe { handle_ref(db, "db") }?;
        let coll = unsafe { str_arg(coll, "coll") }?;
        let filter = match unsafe { opt_str_arg(filter_json, "filter_json") }? {
            None => BsonDocument::new(),
            Some(t) if t.trim().is_empty() => BsonDocument::new(),
            Some(t) => parse_json_document(t, "filter")?,
        };
        let opts = match unsafe { opt_str_arg(options_json, "options_json") }? {
            None => FindOptions::default(),
            Some(t) => FindOptions::from_json(t)?,
        };
        out_arg(out_cursor, "out_cursor")?;
        let cursor = h.db.collection(coll).find(&filter, opts)?;
        Ok(hand_out(cursor, out_cursor))
    })
}

fn step(c: &mut nexus_cursor) -> Result<Option<Document>> {
    c.cursor.next_document()
}

/// Advances the cursor: `NEXUS_ROW` with `*out_json` pointing at the document as JSON
/// (borrowed: valid until the next call on this cursor), or `NEXUS_DONE` at the end.
/// After the connection was closed: `NEXUS_ERROR`.
///
/// # Safety
/// `c` is a live cursor or NULL; `out_json` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn nexus_cursor_next(
    c: *mut nexus_cursor,
    out_json: *mut *const c_char,
) -> c_int {
    ffi_boundary(|| {
        // SAFETY: caller contract.
        let c = unsafe { handle_mut(c, "cursor") }?;
        out_arg(out_json, "out_json")?;
        if !c.cursor.next_json_into(&mut c.json)? {
            return Ok(NEXUS_DONE);
        }
        // JSON text escapes a NUL in a string; a raw one would cut the C string short.
        if c.json.contains(&0) {
            return Err(crate::Error::Internal(
                "JSON output contained a NUL byte".into(),
            ));
        }
        c.json.push(0);
        // SAFETY: checked non-NULL above; the buffer lives until the next call on `c`.
        unsafe { out_json.write(c.json.as_ptr().cast()) };
        Ok(NEXUS_ROW)
    })
}

/// Advances the cursor: `NEXUS_ROW` with `*out` / `*out_len` describing the document as BSON
/// (borrowed: valid until the next call on this cursor), or `NEXUS_DONE` at the end.
///
/// # Safety
/// `c` is a live cursor or NULL; `out` and `out_len` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn nexus_cursor_next_bson(
    c: *mut nexus_cursor,
    out: *mut *const u8,
    out_len: *mut usize,
) -> c_int {
    ffi_boundary(|| {
        // SAFETY: caller contract.
        let c = unsafe { handle_mut(c, "cursor") }?;
        out_arg(out, "out")?;
        out_arg(out_len, "out_len")?;
        match step(c)? {
            None => Ok(NEXUS_DONE),
            Some(doc) => {
                c.bson = doc.to_bson_bytes()?;
                // SAFETY: both checked non-NULL above.
                unsafe {
                    out.write(c.bson.as_ptr());
                    out_len.write(c.bson.len());
                }
                Ok(NEXUS_ROW)
            }
        }
    })
}

/// Frees a cursor. `nexus_cursor_close(NULL)` is a no-op returning `NEXUS_OK`. Allowed (and
/// required) also after the cursor's connection was closed.
///
/// # Safety
/// `c` is NULL or a cursor from `nexus_find` not closed before; it is invalid afterwards.
#[no_mangle]
pub unsafe extern "C" fn nexus_cursor_close(c: *mut nexus_cursor) -> c_int {
    ffi_boundary(|| {
        if !c.is_null() {
            // SAFETY: a live cursor handed out by nexus_find, given back once.
            drop(unsafe { Box::from_raw(c) });
        }
        Ok(NEXUS_OK)
    })
}

/// Runs an aggregation pipeline on `coll` and writes a cursor over its results to
/// `*out_cursor` (close it with `nexus_cursor_close`). `pipeline_json` is a JSON array of
/// stage objects (`[{"$match": {...}}, {"$group": {...}}]`; the stages and operators are
/// listed in `docs/API.md`); a missing collection is an empty input. `options_json` (NULL:
/// none): `let` (variables for `$$name`), `allowDiskUse` (default true: a blocking stage
/// past the memory limit spills to encrypted temporary files in the database's directory,
/// removed when the cursor is closed), `maxMemoryBytes` (the limit of one blocking stage,
/// default 100 MiB; a NexusLite extension), `batchSize` (accepted, no effect), `explain`
/// (one document describing the plan instead of the results), `comment`; unknown options
/// are `NEXUS_INVALID_ARGUMENT`. The results are computed before this returns, from the
/// snapshot taken now (inside a transaction: the transaction's view). With a final `$out`
/// / `$merge` the results are written (in the open transaction, or in one of their own)
/// and the cursor is empty.
///
/// Errors: `NEXUS_PARSE` (malformed pipeline or stage), `NEXUS_UNSUPPORTED` (a stage,
/// operator or option not built, named in the message; also `$lookup` joining more than
/// 100 MiB for one batch of its input), `NEXUS_INVALID_ARGUMENT` (an expression failing at
/// run time, with MongoDB's wording, e.g. `can't $divide by zero`; a stage past the memory
/// limit with `allowDiskUse: false`), `NEXUS_IO` (a temporary file could not be written).
///
/// # Safety
/// `db` is a live handle or NULL; strings are NULL or NUL-terminated; `out_cursor` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn nexus_aggregate(
    db: *mut nexus_db,
    coll: *const c_char,
    pipeline_json: *const c_char,
    options_json: *const c_char,
    out_cursor: *mut *mut nexus_cursor,
) -> c_int {
    ffi_boundary(|| {
        // SAFETY: caller contract (all four lines).
        let h = unsafe { handle_ref(db, "db") }?;
        let coll = unsafe { str_arg(coll, "coll") }?;
        let pipeline = unsafe { str_arg(pipeline_json, "pipeline_json") }?;
        let opts = unsafe { opt_str_arg(options_json, "options_json") }?;
        out_arg(out_cursor, "out_cursor")?;
        let opts = AggregateOptions::from_json(opts)?;
        let cursor = h.db.collection(coll).aggregate_json(pipeline, opts)?;
        Ok(hand_out(cursor, out_cursor))
    })
}

/// Runs a vector search on `coll` and writes a cursor to `*out_cursor` (close it with
/// `nexus_cursor_close`). `spec_json` is the body of MongoDB Atlas's `$vectorSearch`
/// stage: `path`, `queryVector` (an array of numbers, or BSON binary subtype 9 in
/// Extended JSON), `limit`, `numCandidates` (search breadth, at least `limit`; default
/// `10 * limit`, at least 100), `filter` (a query filter applied during the search),
/// `exact` (true: compare with every indexed vector), `index` (a vector index's name), plus
/// `projection` and `scoreField` (default `"_score"`). Rows come best first, each with its
/// similarity score (euclidean `1 / (1 + d^2)`, cosine `(1 + cos) / 2`, dotProduct
/// `(1 + dot) / 2`) in `scoreField`. A missing collection gives an empty cursor.
///
/// Errors: `NEXUS_PARSE` (not JSON), `NEXUS_INVALID_ARGUMENT` (an unknown field, a missing
/// `path` / `queryVector` / `limit`, a query vector that is not numbers or has another
/// dimension than the index, no vector index on `path`).
///
/// # Safety
/// `db` is a live handle or NULL; strings are NULL or NUL-terminated; `out_cursor` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn nexus_vector_search(
    db: *mut nexus_db,
    coll: *const c_char,
    spec_json: *const c_char,
    out_cursor: *mut *mut nexus_cursor,
) -> c_int {
    ffi_boundary(|| {
        // SAFETY: caller contract (all three lines).
        let h = unsafe { handle_ref(db, "db") }?;
        let coll = unsafe { str_arg(coll, "coll") }?;
        let spec = unsafe { str_arg(spec_json, "spec_json") }?;
        out_arg(out_cursor, "out_cursor")?;
        let cursor = h.db.collection(coll).vector_search_json(spec)?;
        Ok(hand_out(cursor, out_cursor))
    })
}
