//! Collections: create, drop, rename, list.

use super::db::nexus_db;
use super::handle::{alloc_string, handle_ref, opt_str_arg, out_arg, str_arg};
use super::panic::ffi_boundary;
use super::status::NEXUS_OK;
use std::ffi::{c_char, c_int};

/// Creates a collection. `options_json` (NULL: none): `max_documents` and/or `max_bytes`
/// make it a bounded collection (inserting past the bound deletes the least recently used
/// documents, durably, like Redis `allkeys-lru`); `cache_capacity` / `cache_bytes` give it
/// its own limit in the document cache.
///
/// Errors: `NEXUS_DUPLICATE_KEY` when it exists; `NEXUS_INVALID_ARGUMENT` for an empty name,
/// one containing `$`, or a reserved name starting with `_`.
///
/// # Safety
/// `db` is a live handle or NULL; strings are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn nexus_create_collection(
    db: *mut nexus_db,
    name: *const c_char,
    options_json: *const c_char,
) -> c_int {
    ffi_boundary(|| {
        // SAFETY: caller contract (all three lines).
        let h = unsafe { handle_ref(db, "db") }?;
        let name = unsafe { str_arg(name, "name") }?;
        let opts = unsafe { opt_str_arg(options_json, "options_json") }?;
        h.db.create_collection(name, opts)?;
        Ok(NEXUS_OK)
    })
}

/// Drops a collection and all its documents. `NEXUS_NO_COLLECTION` when missing.
///
/// # Safety
/// `db` is a live handle or NULL; `name` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn nexus_drop_collection(db: *mut nexus_db, name: *const c_char) -> c_int {
    ffi_boundary(|| {
        // SAFETY: caller contract (both lines).
        let h = unsafe { handle_ref(db, "db") }?;
        let name = unsafe { str_arg(name, "name") }?;
        h.db.drop_collection(name)?;
        Ok(NEXUS_OK)
    })
}

/// Renames a collection. `NEXUS_NO_COLLECTION` when `from` is missing,
/// `NEXUS_DUPLICATE_KEY` when `to` exists.
///
/// # Safety
/// `db` is a live handle or NULL; strings are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn nexus_rename_collection(
    db: *mut nexus_db,
    from: *const c_char,
    to: *const c_char,
) -> c_int {
    ffi_boundary(|| {
        // SAFETY: caller contract (all three lines).
        let h = unsafe { handle_ref(db, "db") }?;
        let from = unsafe { str_arg(from, "from") }?;
        let to = unsafe { str_arg(to, "to") }?;
        h.db.rename_collection(from, to)?;
        Ok(NEXUS_OK)
    })
}

/// Writes the sorted collection names as a JSON array to `*out_json` (free with `nexus_free`).
///
/// # Safety
/// `db` is a live handle or NULL; `out_json` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn nexus_list_collections(
    db: *mut nexus_db,
    out_json: *mut *mut c_char,
) -> c_int {
    ffi_boundary(|| {
        // SAFETY: caller contract.
        let h = unsafe { handle_ref(db, "db") }?;
        out_arg(out_json, "out_json")?;
        let names = h.db.list_collections()?;
        let s = alloc_string(&serde_json::Value::from(names).to_string())?;
        // SAFETY: checked non-NULL above.
        unsafe { out_json.write(s) };
        Ok(NEXUS_OK)
    })
}
