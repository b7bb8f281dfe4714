//! `nexus_db`: opening and closing connections, statistics, run-time configuration,
//! checkpoint and compaction.

use super::handle::{alloc_string, handle_ref, opt_str_arg, out_arg, str_arg};
use super::panic::ffi_boundary;
use super::status::NEXUS_OK;
use crate::{Database, OpenOptions};
use std::ffi::{c_char, c_int};

/// A connection to a database (opaque).
///
/// Thread safety: every function may be called on one `nexus_db` from several threads at
/// once (calls are serialized internally), except `nexus_close`, which must not race with
/// other calls on the same handle. Under the hood it is a `Box<Database>`.
pub struct nexus_db {
    pub(crate) db: Database,
}

/// Opens (creating unless `{"create": false}`) the database at `path` and writes a new
/// connection to `*out_db`. `path` NULL or `":memory:"` opens a private in-memory database.
///
/// `options_json` (NULL: defaults) is a JSON object with: `create` (bool, default true),
/// `read_only` (bool), `sync` (`"full"` default: every commit is on stable storage before it
/// returns; `"normal"`; `"off"`), `busy_timeout_ms` (default 5000), `storage` for a new file
/// (`"wasp"`, the paged engine and the default, or `"memlog"`, in-memory tables with a log;
/// `"wal"`, its former name, is accepted; an existing file opens with the engine that wrote
/// it), `page_size` of a new `wasp` file (8192 default, 16384),
/// `checkpoint_log_bytes` (wasp, default 64 MiB), `checkpoint_interval_ms` (wasp, 30000),
/// the document cache (`cache_capacity` in documents, default 10000, 0 turns it off;
/// `cache_bytes`; `eviction`: `"ttl-first"` (default), `"lru-only"`, `"ttl-only"`;
/// `max_samples`, default 5; `batch_size`, default 32; `admission`: `"frequency"` (default:
/// once full, a miss enters only if read more often lately than what it would displace) or
/// `"always"`), the expiry sweeper
/// (`sweeper_interval_ms`, default 100, 0 pauses it; `sweeper_sample`, 20;
/// `sweeper_threshold_pct`, 10; `sweeper_budget_ms`, 25), `page_cache_bytes`
/// (the wasp page cache budget, default 32 MiB, at least 65536), `mmap` (wasp, default
/// false: pages are read with `pread`; true: readers search pages through a read-only memory
/// map of the file, faster on files larger than the page cache, but the file shortened by
/// another process or a disk read error under a mapped page raises SIGBUS in the host instead
/// of returning `NEXUS_CORRUPT` / `NEXUS_IO`), `compact_on_close` (wasp, default true: the
/// last connection's close compacts the file when its free pages are at least an eighth of it
/// and between 1 and 64 MiB), and `recover` (`"strict"`, the default:
/// a damaged log (intact commits after a bad record), a missing log while the file says
/// commits may be in it, or a log of another database is `NEXUS_CORRUPT` and nothing is
/// changed; `"discard-damaged-log"`: keep what the file and the intact start of the log
/// hold, drop the rest, and report it in `nexus_stats` under `storage.recovery`). The path
/// and its log must be regular files (symbolic links to them are followed): a directory,
/// FIFO, socket or device is `NEXUS_INVALID_ARGUMENT` at once. Cache and sweeper settings are shared
/// by every connection to the database in this process. Unknown keys are
/// `NEXUS_INVALID_ARGUMENT`.
///
/// Errors: `NEXUS_CORRUPT` for a file that is not a NexusLite database (it is not modified),
/// `NEXUS_UNSUPPORTED` for a newer format, `NEXUS_BUSY` when another process has it open,
/// `NEXUS_IO`, `NEXUS_NOT_FOUND` when it does not exist and `create` is false.
/// Release the connection with `nexus_close`.
///
/// # Safety
/// `path` and `options_json` are NULL or NUL-terminated strings; `out_db` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn nexus_open(
    path: *const c_char,
    options_json: *const c_char,
    out_db: *mut *mut nexus_db,
) -> c_int {
    ffi_boundary(|| {
        out_arg(out_db, "out_db")?;
        // SAFETY: caller contract.
        let path = unsafe { opt_str_arg(path, "path") }?;
        // SAFETY: caller contract.
        let options =
            OpenOptions::from_json(unsafe { opt_str_arg(options_json, "options_json") }?)?;
        let db = match path {
            None => Database::open(":memory:", options)?,
            Some(p) => Database::open(p, options)?,
        };
        let handle = Box::into_raw(Box::new(nexus_db { db }));
        // SAFETY: checked non-NULL above.
        unsafe { out_db.write(handle) };
        Ok(NEXUS_OK)
    })
}

/// Closes a connection: rolls back its open transaction; the last connection to a database
/// in this process checkpoints and syncs it. Cursors of this connection then return
/// `NEXUS_ERROR` (and must still be closed). `nexus_close(NULL)` is a no-op returning
/// `NEXUS_OK`. The handle is freed even when an error is returned.
///
/// # Safety
/// `db` is NULL or a handle from `nexus_open` not closed before; it is invalid afterwards.
#[no_mangle]
pub unsafe extern "C" fn nexus_close(db: *mut nexus_db) -> c_int {
    ffi_boundary(|| {
        if db.is_null() {
            return Ok(NEXUS_OK);
        }
        // SAFETY: a live handle from nexus_open, owned by the caller, given back here once.
        let boxed = unsafe { Box::from_raw(db) };
        boxed.db.close()?;
        Ok(NEXUS_OK)
    })
}

/// Writes statistics as a JSON object to `*out_json` (free with `nexus_free`): `storage`
/// (documents, log bytes, commits, syncs, checkpoints, recovery report), `cache` (hits,
/// misses, expired reads, evictions by kind `ttl` / `lru`, eviction cycles, fills,
/// admissions declined, entries, bytes, get latency percentiles in ns), `expiry` (registered ephemeral documents, sweeper cycles
/// and deletions, purged, bounded-collection evictions), connections, settings.
///
/// # Safety
/// `db` is a live handle or NULL; `out_json` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn nexus_stats(db: *mut nexus_db, out_json: *mut *mut c_char) -> c_int {
    ffi_boundary(|| {
        // SAFETY: caller contract.
        let h = unsafe { handle_ref(db, "db") }?;
        out_arg(out_json, "out_json")?;
        let s = alloc_string(&h.db.stats()?.to_string())?;
        // SAFETY: checked non-NULL above.
        unsafe { out_json.write(s) };
        Ok(NEXUS_OK)
    })
}

/// Changes settings at run time: `sync` and `busy_timeout_ms` of this connection, and the
/// engine-wide cache and sweeper keys of `nexus_open`'s options (shrinking the cache evicts at
/// once). Unknown keys are `NEXUS_INVALID_ARGUMENT`; nothing changes unless all are valid.
///
/// # Safety
/// `db` is a live handle or NULL; `options_json` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn nexus_configure(db: *mut nexus_db, options_json: *const c_char) -> c_int {
    ffi_boundary(|| {
        // SAFETY: caller contract.
        let h = unsafe { handle_ref(db, "db") }?;
        // SAFETY: caller contract.
        let opts = unsafe { str_arg(options_json, "options_json") }?;
        h.db.configure(opts)?;
        Ok(NEXUS_OK)
    })
}

/// Folds the side log into the database image and shortens the log. `NEXUS_TXN` inside a
/// transaction on this connection; `NEXUS_BUSY` when another connection keeps the write lock.
///
/// # Safety
/// `db` is a live handle or NULL.
#[no_mangle]
pub unsafe extern "C" fn nexus_checkpoint(db: *mut nexus_db) -> c_int {
    ffi_boundary(|| {
        // SAFETY: caller contract.
        unsafe { handle_ref(db, "db") }?.db.checkpoint()?;
        Ok(NEXUS_OK)
    })
}

/// Rewrites the database smaller: with `wasp`, moves pages from the end of `NAME.db` into free
/// pages and truncates the file; with `memlog`, rewrites the log to hold only live documents.
///
/// # Safety
/// `db` is a live handle or NULL.
#[no_mangle]
pub unsafe extern "C" fn nexus_compact(db: *mut nexus_db) -> c_int {
    ffi_boundary(|| {
        // SAFETY: caller contract.
        unsafe { handle_ref(db, "db") }?.db.compact()?;
        Ok(NEXUS_OK)
    })
}
