//! Transactions per connection: `nexus_begin`, `nexus_begin_read`, `nexus_commit`,
//! `nexus_rollback`.

use super::db::nexus_db;
use super::handle::handle_ref;
use super::panic::ffi_boundary;
use super::status::NEXUS_OK;
use std::ffi::c_int;

/// Starts a transaction on this connection: every later call on it is part of one atomic,
/// isolated unit until `nexus_commit` or `nexus_rollback`. The connection holds the write
/// lock meanwhile (other writers wait up to `busy_timeout_ms`, then get `NEXUS_BUSY`).
/// On a `read_only` connection it starts a read transaction (`nexus_begin_read`).
/// `NEXUS_TXN` when one is already open.
///
/// # Safety
/// `db` is a live handle or NULL.
#[no_mangle]
pub unsafe extern "C" fn nexus_begin(db: *mut nexus_db) -> c_int {
    ffi_boundary(|| {
        // SAFETY: caller contract.
        unsafe { handle_ref(db, "db") }?.db.begin()?;
        Ok(NEXUS_OK)
    })
}

/// Starts a read transaction on this connection: every read sees the snapshot taken now
/// until `nexus_commit` or `nexus_rollback` (either ends it). It takes no lock, so writers on
/// other connections keep committing and it never waits for them; writes on this connection
/// meanwhile are `NEXUS_READONLY`. `NEXUS_TXN` when a transaction is already open.
///
/// # Safety
/// `db` is a live handle or NULL.
#[no_mangle]
pub unsafe extern "C" fn nexus_begin_read(db: *mut nexus_db) -> c_int {
    ffi_boundary(|| {
        // SAFETY: caller contract.
        unsafe { handle_ref(db, "db") }?.db.begin_read()?;
        Ok(NEXUS_OK)
    })
}

/// Commits the open transaction (durably under `sync=full`; a read transaction just ends).
/// `NEXUS_TXN` when none is open.
///
/// # Safety
/// `db` is a live handle or NULL.
#[no_mangle]
pub unsafe extern "C" fn nexus_commit(db: *mut nexus_db) -> c_int {
    ffi_boundary(|| {
        // SAFETY: caller contract.
        unsafe { handle_ref(db, "db") }?.db.commit()?;
        Ok(NEXUS_OK)
    })
}

/// Discards the open transaction; nothing of it remains. `NEXUS_TXN` when none is open.
///
/// # Safety
/// `db` is a live handle or NULL.
#[no_mangle]
pub unsafe extern "C" fn nexus_rollback(db: *mut nexus_db) -> c_int {
    ffi_boundary(|| {
        // SAFETY: caller contract.
        unsafe { handle_ref(db, "db") }?.db.rollback()?;
        Ok(NEXUS_OK)
    })
}
