//! The one wrapper every exported function runs in: [`ffi_boundary`] catches panics (turning
//! them into `NEXUS_INTERNAL`), maps `Error` to its code, and records the message for
//! `nexus_errmsg`. A panic inside the boundary is not printed: the library never writes to
//! stderr; its message goes to `nexus_errmsg` and the `log` facade instead.

use super::status::{clear_error, set_error, NEXUS_INTERNAL};
use crate::error::Result;
use std::cell::Cell;
use std::ffi::c_int;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    static IN_BOUNDARY: Cell<bool> = const { Cell::new(false) };
}

/// Installs (once) a panic hook that stays silent for panics inside the FFI boundary and
/// defers to the previous hook everywhere else (so a Rust host keeps its own behaviour).
fn install_quiet_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_BOUNDARY.with(Cell::get) {
                ::log::error!("panic inside nexus: {info}");
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs `f`, returning its status code: `Ok(code)` as is (with the error message cleared),
/// `Err(e)` as `e.code()` with the message recorded, a panic as `NEXUS_INTERNAL`.
pub(crate) fn ffi_boundary(f: impl FnOnce() -> Result<c_int>) -> c_int {
    install_quiet_hook();
    let was = IN_BOUNDARY.with(|b| b.replace(true));
    let r = catch_unwind(AssertUnwindSafe(f));
    IN_BOUNDARY.with(|b| b.set(was));
    match r {
        Ok(Ok(code)) => {
            clear_error();
            code
        }
        Ok(Err(e)) => {
            set_error(&e.to_string());
            e.code()
        }
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            set_error(&format!("internal error (a bug in NexusLite): {what}"));
            NEXUS_INTERNAL
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::status::nexus_errmsg;
    use std::ffi::CStr;

    fn errmsg() -> String {
        // SAFETY: nexus_errmsg never returns NULL and the string lives until the next call.
        unsafe { CStr::from_ptr(nexus_errmsg()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn a_panic_becomes_internal_with_a_message() {
        let code = ffi_boundary(|| panic!("boom at the boundary"));
        assert_eq!(code, NEXUS_INTERNAL);
        assert!(errmsg().contains("boom at the boundary"), "{}", errmsg());
        // The next successful call clears the message.
        assert_eq!(ffi_boundary(|| Ok(0)), 0);
        assert_eq!(errmsg(), "");
    }

    #[test]
    fn errors_map_to_their_code_and_message() {
        let code = ffi_boundary(|| Err(crate::Error::NoCollection("ghosts".into())));
        assert_eq!(code, crate::ffi::status::NEXUS_NO_COLLECTION);
        assert_eq!(errmsg(), "collection 'ghosts' does not exist");
    }
}
