//! The status codes (defined by the error layer, `error::code`, and re-exported here), flags,
//! version macros, and the per-thread error message
//! (`nexus_errmsg`, `nexus_errstr`).

pub use crate::error::code::*;
use std::cell::RefCell;
use std::ffi::{c_char, c_int, CString};

/// Flag for `nexus_update` / `nexus_delete`: act on every match, not just the first.
pub const NEXUS_MULTI: c_int = 1;
/// Flag for `nexus_update`: insert a document when nothing matches.
pub const NEXUS_UPSERT: c_int = 2;

/// Major version of the library (equal to `Cargo.toml`'s; a test checks).
pub const NEXUS_VERSION_MAJOR: c_int = 0;
/// Minor version of the library.
pub const NEXUS_VERSION_MINOR: c_int = 1;
/// Patch version of the library.
pub const NEXUS_VERSION_PATCH: c_int = 0;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Records `msg` as the calling thread's last error message.
pub(crate) fn set_error(msg: &str) {
    let c = CString::new(msg.replace('\0', "\\0")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

/// Clears the calling thread's last error message.
pub(crate) fn clear_error() {
    LAST_ERROR.with(|e| {
        let mut e = e.borrow_mut();
        if !e.as_bytes().is_empty() {
            *e = CString::default();
        }
    });
}

/// The last error message of the calling thread: never NULL, `""` after a success. The
/// pointer is borrowed and stays valid until the next nexus call on this thread.
#[no_mangle]
pub extern "C" fn nexus_errmsg() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// The static name of a status code (`"NEXUS_NOT_FOUND"`), or `"NEXUS_UNKNOWN"`. Never NULL.
#[no_mangle]
pub extern "C" fn nexus_errstr(code: c_int) -> *const c_char {
    let s: &'static std::ffi::CStr = match code {
        NEXUS_OK => c"NEXUS_OK",
        NEXUS_ERROR => c"NEXUS_ERROR",
        NEXUS_NOT_FOUND => c"NEXUS_NOT_FOUND",
        NEXUS_INVALID_ARGUMENT => c"NEXUS_INVALID_ARGUMENT",
        NEXUS_PARSE => c"NEXUS_PARSE",
        NEXUS_DUPLICATE_KEY => c"NEXUS_DUPLICATE_KEY",
        NEXUS_NO_COLLECTION => c"NEXUS_NO_COLLECTION",
        NEXUS_IO => c"NEXUS_IO",
        NEXUS_CORRUPT => c"NEXUS_CORRUPT",
        NEXUS_BUSY => c"NEXUS_BUSY",
        NEXUS_READONLY => c"NEXUS_READONLY",
        NEXUS_TXN => c"NEXUS_TXN",
        NEXUS_CRYPTO => c"NEXUS_CRYPTO",
        NEXUS_UNSUPPORTED => c"NEXUS_UNSUPPORTED",
        NEXUS_INTERNAL => c"NEXUS_INTERNAL",
        NEXUS_ROW => c"NEXUS_ROW",
        NEXUS_DONE => c"NEXUS_DONE",
        _ => c"NEXUS_UNKNOWN",
    };
    s.as_ptr()
}

/// The library version as text, e.g. `"0.1.0"`. Static; never NULL.
#[no_mangle]
pub extern "C" fn nexus_version() -> *const c_char {
    const V: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
    V.as_ptr().cast()
}

/// The library version as `1000000 * major + 1000 * minor + patch`.
#[no_mangle]
pub extern "C" fn nexus_version_number() -> c_int {
    NEXUS_VERSION_MAJOR * 1_000_000 + NEXUS_VERSION_MINOR * 1_000 + NEXUS_VERSION_PATCH
}
