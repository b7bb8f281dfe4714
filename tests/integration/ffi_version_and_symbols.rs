//! The C ABI's version macros and functions agree with Cargo.toml, and every code has a name.

use nexus::ffi::status::*;
use std::ffi::CStr;

#[test]
fn version_macros_match_cargo_toml() {
    assert_eq!(
        NEXUS_VERSION_MAJOR.to_string(),
        env!("CARGO_PKG_VERSION_MAJOR")
    );
    assert_eq!(
        NEXUS_VERSION_MINOR.to_string(),
        env!("CARGO_PKG_VERSION_MINOR")
    );
    assert_eq!(
        NEXUS_VERSION_PATCH.to_string(),
        env!("CARGO_PKG_VERSION_PATCH")
    );
    // SAFETY: nexus_version returns a static NUL-terminated string.
    let v = unsafe { CStr::from_ptr(nexus_version()) }.to_str().unwrap();
    assert_eq!(v, env!("CARGO_PKG_VERSION"));
    assert_eq!(
        nexus_version_number(),
        NEXUS_VERSION_MAJOR * 1_000_000 + NEXUS_VERSION_MINOR * 1000 + NEXUS_VERSION_PATCH
    );
}

#[test]
fn every_code_has_a_static_name() {
    for (code, name) in [
        (NEXUS_OK, "NEXUS_OK"),
        (NEXUS_NOT_FOUND, "NEXUS_NOT_FOUND"),
        (NEXUS_UNSUPPORTED, "NEXUS_UNSUPPORTED"),
        (NEXUS_INTERNAL, "NEXUS_INTERNAL"),
        (NEXUS_DONE, "NEXUS_DONE"),
        (12345, "NEXUS_UNKNOWN"),
    ] {
        // SAFETY: nexus_errstr returns a static NUL-terminated string.
        assert_eq!(
            unsafe { CStr::from_ptr(nexus_errstr(code)) }
                .to_str()
                .unwrap(),
            name
        );
    }
}
