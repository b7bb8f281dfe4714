//! Import and export: `nexus_import` and `nexus_export`, thin translations of
//! `Collection::import` / `Collection::export` with JSON options in and a JSON report out.

use super::db::nexus_db;
use super::handle::{alloc_string, handle_ref, opt_str_arg, str_arg};
use super::panic::ffi_boundary;
use super::status::NEXUS_OK;
use crate::io::{ExportOptions, ImportOptions};
use std::ffi::{c_char, c_int};

/// Hands a report to the caller when `out` is not NULL; the call's status.
///
/// # Safety
/// `out` is NULL or valid for writes.
unsafe fn give_report(out: *mut *mut c_char, report: &serde_json::Value) -> crate::Result<c_int> {
    if !out.is_null() {
        let text = alloc_string(&report.to_string())?;
        // SAFETY: non-NULL, forwarded contract.
        unsafe { out.write(text) };
    }
    Ok(NEXUS_OK)
}

/// Imports the file at `path` into collection `coll` (created when missing).
///
/// `options_json` (NULL: defaults) is a JSON object with: `format` (`"auto"` default,
/// `"csv"`, `"ndjson"`, `"json"`, `"bson"`; auto sniffs the first KiB with the extension as a
/// hint), `batch_size` (documents per committed transaction, default 1000), `atomic` (bool:
/// nothing is committed unless the whole file imports), `skip_errors` (bool: bad rows are
/// listed in the sidecar and skipped), `error_sidecar` (path, default `<path>.errors.jsonl`),
/// `dry_run` (bool: read and check everything, write nothing), CSV `delimiter` (one
/// character; detected when absent), `has_headers` (default true), `type_infer` (default
/// true), JSON `array_mode` (bool; detected when absent), `ttl_field` / `persistent`
/// (ephemeral documents), and `verify_key` (a public key PEM: `PATH.sig` is checked against
/// the file first; missing or not matching is `NEXUS_CRYPTO` and nothing is inserted).
/// Unknown keys are `NEXUS_INVALID_ARGUMENT`.
///
/// On success `*out_report_json` (when `out_report_json` is not NULL) receives
/// `{"format","read","imported","failed","bytes","elapsed_ms","batches","docs_per_sec",
/// "error_sidecar","dry_run"}` (free with `nexus_free`).
///
/// Errors: without `skip_errors` the first bad row stops the import with `NEXUS_PARSE` (or
/// `NEXUS_DUPLICATE_KEY`, `NEXUS_INVALID_ARGUMENT` for an oversized document); every good
/// row before it is committed (none with `atomic`) and the message gives the row, line, byte
/// offset, reason and number committed. `NEXUS_INVALID_ARGUMENT` for a directory, an empty
/// or UTF-16 file, or a bad option; `NEXUS_IO` when the file cannot be read. Inside a
/// transaction opened with `nexus_begin`, the import joins it and commits nothing itself.
///
/// # Safety
/// `db` is a live handle or NULL; strings are NULL or NUL-terminated; `out_report_json` is
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn nexus_import(
    db: *mut nexus_db,
    coll: *const c_char,
    path: *const c_char,
    options_json: *const c_char,
    out_report_json: *mut *mut c_char,
) -> c_int {
    ffi_boundary(|| {
        // SAFETY: caller contract (all four lines).
        let h = unsafe { handle_ref(db, "db") }?;
        let coll = unsafe { str_arg(coll, "coll") }?;
        let path = unsafe { str_arg(path, "path") }?;
        let opts = ImportOptions::from_json(unsafe { opt_str_arg(options_json, "options_json") }?)?;
        let report = h.db.collection(coll).import(path, &opts)?;
        // SAFETY: NULL or writable per the caller contract.
        unsafe { give_report(out_report_json, &report.to_json()) }
    })
}

/// Exports the documents of `coll` (all, or those matching the `filter` option) to `path`.
/// The file is written beside `path` under a temporary name, synced, and renamed over `path`
/// only when complete: a failure or crash never leaves a partial file under the real name.
///
/// `options_json` (NULL: defaults) is a JSON object with: `format` (`"auto"` default: from
/// the extension, else NDJSON; `"csv"`, `"ndjson"`, `"json"`, `"bson"`), `filter` (a query
/// object), `fields` (array of dotted paths: the CSV columns in order; default every field
/// seen), `extended_json` (`"relaxed"` default, or `"canonical"` for exact types),
/// `delimiter`, `has_headers` (CSV), `array_mode` (JSON: one array, default true),
/// `pretty` (JSON) and `sign_key` (a private key PEM, checked first: once the file is
/// complete its signature is written to `PATH.sig`, see `nexus_sign_file`). Unknown keys are
/// `NEXUS_INVALID_ARGUMENT`. A missing collection exports an empty file.
///
/// On success `*out_report_json` (when not NULL) receives
/// `{"format","exported","bytes","elapsed_ms","docs_per_sec","path"}` (free with `nexus_free`).
///
/// Errors: `NEXUS_INVALID_ARGUMENT` when `path` is a directory or an option is bad,
/// `NEXUS_PARSE` for a bad filter, `NEXUS_IO` when the destination cannot be written.
///
/// # Safety
/// `db` is a live handle or NULL; strings are NULL or NUL-terminated; `out_report_json` is
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn nexus_export(
    db: *mut nexus_db,
    coll: *const c_char,
    path: *const c_char,
    options_json: *const c_char,
    out_report_json: *mut *mut c_char,
) -> c_int {
    ffi_boundary(|| {
        // SAFETY: caller contract (all four lines).
        let h = unsafe { handle_ref(db, "db") }?;
        let coll = unsafe { str_arg(coll, "coll") }?;
        let path = unsafe { str_arg(path, "path") }?;
        let opts = ExportOptions::from_json(unsafe { opt_str_arg(options_json, "options_json") }?)?;
        let report = h.db.collection(coll).export(path, &opts)?;
        // SAFETY: NULL or writable per the caller contract.
        unsafe { give_report(out_report_json, &report.to_json()) }
    })
}
