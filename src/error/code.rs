//! The `NEXUS_*` status codes of the C ABI, with the values `docs/API.md` fixes. They are
//! defined here, at the error layer, because [`Error::code`](super::Error::code) maps every
//! error to one of them; `ffi::status` re-exports them for the header.

use std::ffi::c_int;

/// Success.
pub const NEXUS_OK: c_int = 0;
/// Generic error (also: a cursor used after its database was closed).
pub const NEXUS_ERROR: c_int = 1;
/// The document (or other named thing) does not exist.
pub const NEXUS_NOT_FOUND: c_int = 2;
/// NULL where not allowed, bad UTF-8, unknown or bad option, reserved name, oversized document.
pub const NEXUS_INVALID_ARGUMENT: c_int = 3;
/// Malformed JSON / BSON / filter / update; unknown operator.
pub const NEXUS_PARSE: c_int = 4;
/// A document with this `_id` (or a collection with this name) already exists.
pub const NEXUS_DUPLICATE_KEY: c_int = 5;
/// The collection does not exist.
pub const NEXUS_NO_COLLECTION: c_int = 6;
/// The operating system reported an I/O error (or an earlier one made the database refuse writes).
pub const NEXUS_IO: c_int = 7;
/// Checksum or format failure; not a NexusLite database.
pub const NEXUS_CORRUPT: c_int = 8;
/// Locked by another process, or the write lock was held past `busy_timeout_ms`.
pub const NEXUS_BUSY: c_int = 9;
/// Write on a read-only connection.
pub const NEXUS_READONLY: c_int = 10;
/// No transaction / already in one / conflict.
pub const NEXUS_TXN: c_int = 11;
/// A signature does not match (or is missing), or a key cannot open an encrypted database.
pub const NEXUS_CRYPTO: c_int = 12;
/// The function or option is not implemented by this build, or the file is from a newer version.
pub const NEXUS_UNSUPPORTED: c_int = 13;
/// A Rust panic was caught; the host process keeps running.
pub const NEXUS_INTERNAL: c_int = 99;
/// `nexus_cursor_next*`: a document was produced.
pub const NEXUS_ROW: c_int = 100;
/// `nexus_cursor_next*`: the cursor is exhausted.
pub const NEXUS_DONE: c_int = 101;
