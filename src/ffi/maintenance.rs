//! Maintenance and observability beyond `nexus_db`'s own: TTL purge, online backup, the
//! integrity check; indexes (a later subsystem: `NEXUS_UNSUPPORTED` with a message naming
//! what is missing); the log callback; and `nexus_free`. Import and export live in `io`.

use super::db::nexus_db;
use super::handle::free_bytes;
use super::panic::ffi_boundary;
use super::status::NEXUS_OK;
use crate::error::Error;
use parking_lot::RwLock;
use std::ffi::{c_char, c_int, c_void, CString};

fn unsupported(function: &str, what: &str) -> c_int {
    let msg = format!("{function}: {what} is not in this build yet");
    ffi_boundary(|| Err(Error::unsupported(msg)))
}

/// Creates a secondary index. This build: `NEXUS_UNSUPPORTED` (indexes are a later subsystem).
///
/// # Safety
/// Any arguments; none are dereferenced by this build.
#[no_mangle]
pub unsafe extern "C" fn nexus_create_index(
    db: *mut nexus_db,
    coll: *const c_char,
    keys_json: *const c_char,
    options_json: *const c_char,
    out_name: *mut *mut c_char,
) -> c_int {
    let _ = (db, coll, keys_json, options_json, out_name);
    unsupported("nexus_create_index", "secondary indexes")
}

/// Drops a secondary index. This build: `NEXUS_UNSUPPORTED`.
///
/// # Safety
/// Any arguments; none are dereferenced by this build.
#[no_mangle]
pub unsafe extern "C" fn nexus_drop_index(
    db: *mut nexus_db,
    coll: *const c_char,
    name: *const c_char,
) -> c_int {
    let _ = (db, coll, name);
    unsupported("nexus_drop_index", "secondary indexes")
}

/// Lists secondary indexes. This build: `NEXUS_UNSUPPORTED`.
///
/// # Safety
/// Any arguments; none are dereferenced by this build.
#[no_mangle]
pub unsafe extern "C" fn nexus_list_indexes(
    db: *mut nexus_db,
    coll: *const c_char,
    out_json: *mut *mut c_char,
) -> c_int {
    let _ = (db, coll, out_json);
    unsupported("nexus_list_indexes", "secondary indexes")
}

/// Explains a query plan. This build: `NEXUS_UNSUPPORTED` (the planner comes with indexes).
///
/// # Safety
/// Any arguments; none are dereferenced by this build.
#[no_mangle]
pub unsafe extern "C" fn nexus_explain(
    db: *mut nexus_db,
    coll: *const c_char,
    filter_json: *const c_char,
    options_json: *const c_char,
    out_json: *mut *mut c_char,
) -> c_int {
    let _ = (db, coll, filter_json, options_json, out_json);
    unsupported("nexus_explain", "the query planner (explain)")
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
/// used twice); with `wal`, every log record's checksum.
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
