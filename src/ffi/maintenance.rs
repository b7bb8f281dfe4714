//! Maintenance and observability beyond `nexus_db`'s own: secondary indexes and explain,
//! TTL purge, online backup, the integrity check, the log callback, and `nexus_free`. Import and export live in `io`.

use super::db::nexus_db;
use super::handle::{alloc_string, free_bytes, handle_ref, opt_str_arg, out_arg, str_arg};
use super::panic::ffi_boundary;
use super::status::NEXUS_OK;
use crate::error::Error;
use parking_lot::RwLock;
use std::ffi::{c_char, c_int, c_void, CString};

/// Creates a secondary index on `coll` from the key pattern `keys_json` (`{"a": 1}`,
/// `{"user.email": 1, "age": -1}`) and `options_json` (NULL: defaults; `unique`, `sparse`,
/// `name`, `partialFilterExpression`, `expireAfterSeconds`), building it over the documents
/// already there, and writes its name to `*out_name` (may be NULL; free with `nexus_free`).
/// An identical existing index is `NEXUS_OK` with its name.
///
/// Errors: `NEXUS_DUPLICATE_KEY` (unique index over duplicate data; nothing created),
/// `NEXUS_INVALID_ARGUMENT` (bad pattern or option), `NEXUS_PARSE` (malformed JSON).
///
/// # Safety
/// `db` a live handle or NULL; strings NUL-terminated or NULL; `out_name` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn nexus_create_index(
    db: *mut nexus_db,
    coll: *const c_char,
    keys_json: *const c_char,
    options_json: *const c_char,
    out_name: *mut *mut c_char,
) -> c_int {
    ffi_boundary(|| {
        // SAFETY: caller contract (all four lines).
        let h = unsafe { handle_ref(db, "db") }?;
        let coll = unsafe { str_arg(coll, "coll") }?;
        let keys = unsafe { str_arg(keys_json, "keys_json") }?;
        let options = unsafe { opt_str_arg(options_json, "options_json") }?;
        let name = h.db.collection(coll).create_index_json(keys, options)?;
        if !out_name.is_null() {
            // SAFETY: non-NULL and writable per the caller's contract.
            unsafe { out_name.write(alloc_string(&name)?) };
        }
        Ok(NEXUS_OK)
    })
}

/// Drops the secondary index `name` of `coll`.
///
/// Errors: `NEXUS_NOT_FOUND` when the collection has no such index, `NEXUS_INVALID_ARGUMENT`
/// for the `_id` index.
///
/// # Safety
/// `db` a live handle or NULL; strings NUL-terminated or NULL.
#[no_mangle]
pub unsafe extern "C" fn nexus_drop_index(
    db: *mut nexus_db,
    coll: *const c_char,
    name: *const c_char,
) -> c_int {
    ffi_boundary(|| {
        // SAFETY: caller contract (all three lines).
        let h = unsafe { handle_ref(db, "db") }?;
        let coll = unsafe { str_arg(coll, "coll") }?;
        let name = unsafe { str_arg(name, "name") }?;
        h.db.collection(coll).drop_index(name)?;
        Ok(NEXUS_OK)
    })
}

/// Writes the indexes of `coll` as a JSON array to `*out_json` (free with `nexus_free`),
/// each `{"v":2,"key":{...},"name":"..."}` plus its options, the `_id` index first.
///
/// # Safety
/// `db` a live handle or NULL; `coll` NUL-terminated or NULL; `out_json` writable.
#[no_mangle]
pub unsafe extern "C" fn nexus_list_indexes(
    db: *mut nexus_db,
    coll: *const c_char,
    out_json: *mut *mut c_char,
) -> c_int {
    ffi_boundary(|| {
        // SAFETY: caller contract (both lines).
        let h = unsafe { handle_ref(db, "db") }?;
        let coll = unsafe { str_arg(coll, "coll") }?;
        out_arg(out_json, "out_json")?;
        let list = h.db.collection(coll).list_indexes()?;
        let arr = bson::Bson::Array(list.into_iter().map(bson::Bson::Document).collect());
        let json = arr.into_relaxed_extjson().to_string();
        // SAFETY: checked non-NULL above.
        unsafe { out_json.write(alloc_string(&json)?) };
        Ok(NEXUS_OK)
    })
}

/// Runs the query `filter_json` with the find options `options_json` (`sort`, `projection`,
/// `skip`, `limit`, `hint`) and writes the plan chosen, the candidates considered and what
/// was examined to `*out_json` (MongoDB's explain shape; free with `nexus_free`).
///
/// # Safety
/// `db` a live handle or NULL; strings NUL-terminated or NULL; `out_json` writable.
#[no_mangle]
pub unsafe extern "C" fn nexus_explain(
    db: *mut nexus_db,
    coll: *const c_char,
    filter_json: *const c_char,
    options_json: *const c_char,
    out_json: *mut *mut c_char,
) -> c_int {
    ffi_boundary(|| {
        // SAFETY: caller contract (all three lines).
        let h = unsafe { handle_ref(db, "db") }?;
        let coll = unsafe { str_arg(coll, "coll") }?;
        let filter = unsafe { opt_str_arg(filter_json, "filter_json") }?;
        let options = unsafe { opt_str_arg(options_json, "options_json") }?;
        out_arg(out_json, "out_json")?;
        let filter = crate::api::collection::read::parse_filter_json(filter.unwrap_or(""))?;
        let options = crate::FindOptions::from_json(options.unwrap_or(""))?;
        let plan = h.db.collection(coll).explain(&filter, options)?;
        let json = bson::Bson::Document(plan)
            .into_relaxed_extjson()
            .to_string();
        // SAFETY: checked non-NULL above.
        unsafe { out_json.write(alloc_string(&json)?) };
        Ok(NEXUS_OK)
    })
}

/// Deletes every expired ephemeral document now, durably, and writes how many to
/// `*out_purged` (may be NULL). The deterministic counterpart of the background sweeper.
///
/// # Safety
/// `db` is a live handle or NULL; `out_purged` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn nexus_purge_expired(db: *mut nexus_db, out_purged: *mut u64) -> c_int {
    ffi_boundary(|| {
        // SAFETY: caller contract.
        let h = unsafe { super::handle::handle_ref(db, "db") }?;
        let n = h.db.purge_expired()?;
        // SAFETY: NULL or writable per the caller's contract.
        unsafe { super::handle::write_opt(out_purged, n) };
        Ok(NEXUS_OK)
    })
}

/// Writes a consistent copy of the database to `dest_path` (a new file; its log, the same
/// name with the extension `.wasp`, is written too) while other connections keep writing.
/// The copy opens as a normal database and passes `nexus_check`. Writers wait only for the
/// checkpoint at the start.
///
/// Errors: `NEXUS_INVALID_ARGUMENT` when `dest_path` is NULL or exists, `NEXUS_UNSUPPORTED`
/// for an in-memory database, `NEXUS_IO`, `NEXUS_BUSY` when the write lock is not free within
/// `busy_timeout_ms`.
///
/// # Safety
/// `db` is a live handle or NULL; `dest_path` NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn nexus_backup(db: *mut nexus_db, dest_path: *const c_char) -> c_int {
    ffi_boundary(|| {
        // SAFETY: caller contract.
        let h = unsafe { super::handle::handle_ref(db, "db") }?;
        // SAFETY: caller contract: NULL or NUL-terminated.
        let dest = unsafe { super::handle::str_arg(dest_path, "dest_path") }?;
        h.db.backup(dest)?;
        Ok(NEXUS_OK)
    })
}

/// Integrity check (fsck). Writes a JSON report to `*out_report_json` (may be NULL; free it
/// with `nexus_free`): `ok`, page counts (`pages_total`, `pages_tree`, `pages_overflow`,
/// `pages_free`, `pages_lost`), per-collection `documents` and `bytes`, and `errors` (an
/// array of messages). With `wasp` it verifies every reachable page's checksum, key order
/// and fences, overflow chains, document counts and free-space accounting (no page lost or
/// used twice); with `memlog`, every log record's checksum.
///
/// Returns `NEXUS_OK` when the database is sound, `NEXUS_CORRUPT` when it is damaged (the
/// report is still written and `nexus_errmsg` names the first problem).
///
/// # Safety
/// `db` is a live handle or NULL; `out_report_json` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn nexus_check(
    db: *mut nexus_db,
    out_report_json: *mut *mut c_char,
) -> c_int {
    ffi_boundary(|| {
        // SAFETY: caller contract.
        let h = unsafe { super::handle::handle_ref(db, "db") }?;
        let report = h.db.check_report()?;
        if !out_report_json.is_null() {
            let s = super::handle::alloc_string(&report.to_string())?;
            // SAFETY: non-NULL and writable per the caller's contract.
            unsafe { *out_report_json = s };
        }
        if report["ok"] != serde_json::Value::Bool(true) {
            let first = report["errors"][0].as_str().unwrap_or("damaged").to_owned();
            return Err(Error::Corrupt(format!("integrity check failed: {first}")));
        }
        Ok(NEXUS_OK)
    })
}

/// A log sink: `level` 1 error, 2 warn, 3 info, 4 debug, 5 trace; `target` is the Rust module;
/// both strings are borrowed for the duration of the call. May be called from any thread.
pub type nexus_log_fn = Option<
    unsafe extern "C" fn(
        level: c_int,
        target: *const c_char,
        message: *const c_char,
        user: *mut c_void,
    ),
>;

struct Sink {
    f: unsafe extern "C" fn(c_int, *const c_char, *const c_char, *mut c_void),
    user: *mut c_void,
    max_level: log::LevelFilter,
}

// SAFETY: the host promises (nexus_set_log_callback's contract) that the callback and its
// user pointer may be used from any thread.
unsafe impl Send for Sink {}
// SAFETY: as above.
unsafe impl Sync for Sink {}

static SINK: RwLock<Option<Sink>> = RwLock::new(None);

struct Forwarder;

impl log::Log for Forwarder {
    fn enabled(&self, meta: &log::Metadata<'_>) -> bool {
        SINK.read()
            .as_ref()
            .is_some_and(|s| meta.level() <= s.max_level)
    }

    fn log(&self, record: &log::Record<'_>) {
        let sink = SINK.read();
        let Some(s) = sink.as_ref() else { return };
        if record.level() > s.max_level {
            return;
        }
        let target = CString::new(record.target().replace('\0', "")).unwrap_or_default();
        let message = CString::new(record.args().to_string().replace('\0', "")).unwrap_or_default();
        // SAFETY: the host registered `f` for exactly this call shape; strings live across it.
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe {
            (s.f)(
                record.level() as c_int,
                target.as_ptr(),
                message.as_ptr(),
                s.user,
            )
        }));
        let _ = r;
    }

    fn flush(&self) {}
}

static FORWARDER: Forwarder = Forwarder;

/// Routes the library's log records at or below `max_level` (1 error .. 5 trace) to `fn`,
/// with `user` passed back. `fn` NULL stops forwarding. The library installs this forwarder as
/// the process's `log` logger on first use; if a Rust host already installed another logger,
/// this returns `NEXUS_UNSUPPORTED` (the host's logger receives the records instead).
///
/// # Safety
/// `fn` and `user` must be usable from any thread until replaced or removed.
#[no_mangle]
pub unsafe extern "C" fn nexus_set_log_callback(
    r#fn: nexus_log_fn,
    max_level: c_int,
    user: *mut c_void,
) -> c_int {
    ffi_boundary(|| {
        let level = match max_level {
            i32::MIN..=0 => log::LevelFilter::Off,
            1 => log::LevelFilter::Error,
            2 => log::LevelFilter::Warn,
            3 => log::LevelFilter::Info,
            4 => log::LevelFilter::Debug,
            _ => log::LevelFilter::Trace,
        };
        let Some(f) = r#fn else {
            *SINK.write() = None;
            return Ok(NEXUS_OK);
        };
        static INSTALLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        let ours = *INSTALLED.get_or_init(|| log::set_logger(&FORWARDER).is_ok());
        if !ours {
            return Err(Error::unsupported(
                "another `log` logger is already installed in this process",
            ));
        }
        *SINK.write() = Some(Sink {
            f,
            user,
            max_level: level,
        });
        log::set_max_level(level);
        Ok(NEXUS_OK)
    })
}

/// Frees memory the library handed to the caller (`char *` / `uint8_t *` out-values).
/// `nexus_free(NULL)` is a no-op. Never pass borrowed pointers (cursor rows, `nexus_errmsg`).
///
/// # Safety
/// `ptr` is NULL or an owned pointer from this library not freed before.
#[no_mangle]
pub unsafe extern "C" fn nexus_free(ptr: *mut c_void) {
    // SAFETY: forwarded contract.
    unsafe { free_bytes(ptr) }
}
