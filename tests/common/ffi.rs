//! Helpers for tests that call the C ABI from Rust: C strings in, library-owned strings out,
//! key generation, the `openssl` command line, and the signed-import check the signature
//! tests share.

use nexus::ffi::crypto::nexus_keygen;
use nexus::ffi::maintenance::nexus_free;
use nexus::io::ImportOptions;
use nexus::Collection;
use std::ffi::{c_char, CStr, CString};
use std::path::Path;
use std::process::{Command, Output};

pub const OK: i32 = 0;
pub const INVALID: i32 = 3;
pub const CRYPTO: i32 = 12;

pub fn c(s: &str) -> CString {
    CString::new(s).unwrap()
}

pub fn path_c(p: &Path) -> CString {
    c(p.to_str().unwrap())
}

/// Takes a library-owned string.
pub fn take(p: *mut c_char) -> String {
    assert!(!p.is_null());
    // SAFETY: a NUL-terminated string from the library, freed right after.
    let s = unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_owned();
    // SAFETY: returned by the library and not freed yet.
    unsafe { nexus_free(p.cast()) };
    s
}

/// `nexus_keygen` of `algorithm` (`None`: the default): the private and public PEMs.
pub fn keygen(algorithm: Option<&str>) -> (String, String) {
    let (mut private, mut public) = (std::ptr::null_mut(), std::ptr::null_mut());
    let a = algorithm.map(c);
    let a_ptr = a.as_ref().map_or(std::ptr::null(), |a| a.as_ptr());
    // SAFETY: a valid string or NULL (the default), writable out-pointers.
    let rc = unsafe { nexus_keygen(a_ptr, &mut private, &mut public) };
    assert_eq!(rc, OK, "{algorithm:?}");
    (take(private), take(public))
}

pub fn openssl(args: &[&str]) -> Output {
    Command::new("openssl")
        .args(args)
        .output()
        .expect("the openssl command line (make setup installs it)")
}

/// A signed export `file` imported into `into` under `public`: changed after signing it is
/// refused with nothing inserted; as signed, all `expected` documents go in.
pub fn signed_import_refuses_a_change(
    into: &Collection<'_>,
    file: &Path,
    public: &str,
    expected: u64,
) {
    let checked = ImportOptions {
        verify_key: Some(public.to_owned()),
        ..ImportOptions::default()
    };
    let text = std::fs::read_to_string(file).unwrap();
    std::fs::write(file, text.replace("u7", "u8")).unwrap();
    assert_eq!(into.import(file, &checked).unwrap_err().code(), CRYPTO);
    assert_eq!(into.count(&Default::default()).unwrap(), 0);
    std::fs::write(file, &text).unwrap();
    assert_eq!(into.import(file, &checked).unwrap().imported, expected);
}
