//! Per-thread buffers reused across calls on hot paths (a page being read or written, a
//! record's metadata, the JSON scanner's key list), so that each call does not allocate and
//! free its own.

use std::cell::RefCell;
use std::thread::LocalKey;

/// Runs `f` with this thread's buffer in `key`; when that buffer is already in use further up
/// the stack, with a fresh one instead.
pub(crate) fn with<T: Default, R>(
    key: &'static LocalKey<RefCell<T>>,
    f: impl FnOnce(&mut T) -> R,
) -> R {
    key.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => f(&mut buf),
        Err(_) => f(&mut T::default()),
    })
}
