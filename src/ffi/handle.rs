//! Pointer plumbing: NULL-checked conversion of raw pointers to references and of C strings
//! to `&str`, and library-owned allocations that `nexus_free` releases.
//!
//! Allocation layout handed to C: a 16-byte prefix holding the total size, then the payload.
//! `nexus_free` reads the prefix back, so strings and byte buffers share one free function.

use crate::error::{Error, Result};
use std::alloc::{alloc, dealloc, Layout};
use std::ffi::{c_char, c_void, CStr};

const PREFIX: usize = 16;

/// Borrows a NUL-terminated UTF-8 string.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string valid for the returned lifetime.
pub(crate) unsafe fn str_arg<'a>(p: *const c_char, what: &str) -> Result<&'a str> {
    if p.is_null() {
        return Err(Error::invalid(format!("{what} is NULL")));
    }
    // SAFETY: non-NULL and NUL-terminated per the caller's contract.
    let c = unsafe { CStr::from_ptr(p) };
    c.to_str().map_err(|e| {
        Error::invalid(format!(
            "{what} is not valid UTF-8 (invalid byte at offset {})",
            e.valid_up_to()
        ))
    })
}

/// Like [`str_arg`], but NULL is `None`.
///
/// # Safety
/// As for [`str_arg`].
pub(crate) unsafe fn opt_str_arg<'a>(p: *const c_char, what: &str) -> Result<Option<&'a str>> {
    if p.is_null() {
        Ok(None)
    } else {
        // SAFETY: forwarded contract.
        unsafe { str_arg(p, what) }.map(Some)
    }
}

/// Borrows the object behind a handle pointer.
///
/// # Safety
/// `p` is NULL or a pointer previously handed out by this library and not yet closed.
pub(crate) unsafe fn handle_ref<'a, T>(p: *const T, what: &str) -> Result<&'a T> {
    // SAFETY: per the caller's contract the pointer is either NULL or live.
    unsafe { p.as_ref() }.ok_or_else(|| Error::invalid(format!("{what} is NULL")))
}

/// Mutably borrows the object behind a handle pointer.
///
/// # Safety
/// As for [`handle_ref`], and no other reference to it is live.
pub(crate) unsafe fn handle_mut<'a, T>(p: *mut T, what: &str) -> Result<&'a mut T> {
    // SAFETY: per the caller's contract the pointer is either NULL or live and unaliased.
    unsafe { p.as_mut() }.ok_or_else(|| Error::invalid(format!("{what} is NULL")))
}

/// Checks that an out-pointer is not NULL.
pub(crate) fn out_arg<T>(p: *mut T, what: &str) -> Result<()> {
    if p.is_null() {
        Err(Error::invalid(format!("{what} is NULL")))
    } else {
        Ok(())
    }
}

/// Writes `value` through an out-pointer that may be NULL (then nothing is written).
///
/// # Safety
/// `p` is NULL or valid for writing a `T`.
pub(crate) unsafe fn write_opt<T>(p: *mut T, value: T) {
    if !p.is_null() {
        // SAFETY: non-NULL and writable per the caller's contract.
        unsafe { p.write(value) };
    }
}

/// Copies `bytes` (plus a NUL when `nul`) into a library-owned allocation for C.
pub(crate) fn alloc_bytes(bytes: &[u8], nul: bool) -> Result<*mut u8> {
    let total = PREFIX + bytes.len() + usize::from(nul);
    let layout = Layout::from_size_align(total, PREFIX)
        .map_err(|_| Error::Internal("allocation too large".into()))?;
    // SAFETY: the layout has a non-zero size (PREFIX > 0).
    let base = unsafe { alloc(layout) };
    if base.is_null() {
        return Err(Error::Internal(format!(
            "out of memory allocating {total} bytes"
        )));
    }
    // SAFETY: `base` is a fresh allocation of `total` bytes, aligned to 16; the writes below
    // stay inside it (prefix, payload, optional NUL).
    unsafe {
        base.cast::<usize>().write(total);
        let payload = base.add(PREFIX);
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), payload, bytes.len());
        if nul {
            payload.add(bytes.len()).write(0);
        }
        Ok(payload)
    }
}

/// Hands a string to C as a NUL-terminated, library-owned copy.
pub(crate) fn alloc_string(s: &str) -> Result<*mut c_char> {
    alloc_bytes(s.as_bytes(), true).map(|p| p.cast())
}

/// Releases memory from [`alloc_bytes`], overwriting it with zeros first: private keys
/// handed to C (`nexus_keygen`) leave no copy behind in freed memory.
///
/// # Safety
/// `p` is NULL or was returned by [`alloc_bytes`] and not freed since.
pub(crate) unsafe fn free_bytes(p: *mut c_void) {
    if p.is_null() {
        return;
    }
    // SAFETY: `p` is PREFIX bytes into an allocation whose first word is its total size,
    // made with alignment PREFIX (see `alloc_bytes`).
    unsafe {
        let base = p.cast::<u8>().sub(PREFIX);
        let total = base.cast::<usize>().read();
        // Volatile, so the wipe of memory about to be freed is not optimized away.
        for i in PREFIX..total {
            base.add(i).write_volatile(0);
        }
        dealloc(base, Layout::from_size_align_unchecked(total, PREFIX));
    }
}
