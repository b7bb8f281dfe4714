//! Which side of a `fork()` the code runs on. A child process inherits a copy of every open
//! engine (their files, locks, caches and the state of threads it does not have), and using
//! that copy would write beside the parent without either knowing: the parent's commits and
//! the child's would overwrite each other's pages. So every engine and cursor remembers the
//! [`generation`] it was made in, a child handler of `pthread_atfork` moves the generation on
//! in every child, and an inherited object refuses to be used (see `Engine::inherited`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

static GENERATION: AtomicU64 = AtomicU64::new(0);
static REGISTER: Once = Once::new();

/// Runs in the child right after `fork()`: only an atomic increment (async-signal-safe).
#[cfg(unix)]
extern "C" fn in_child() {
    GENERATION.fetch_add(1, Ordering::SeqCst);
}

/// The current process generation: 0 in the process that first asked, one more in each
/// `fork()` child (and its children) since. Registers the fork handler on first use, so any
/// engine is created after it is in place.
pub(crate) fn generation() -> u64 {
    REGISTER.call_once(|| {
        #[cfg(unix)]
        // SAFETY: `in_child` is a plain `extern "C" fn()` that only touches an atomic, which
        // is what a handler running in a forked child of a threaded process may do. The
        // return value only reports ENOMEM; without the handler inherited objects would not
        // be recognised, so a failure is logged.
        #[allow(unsafe_code)]
        unsafe {
            if libc::pthread_atfork(None, None, Some(in_child)) != 0 {
                ::log::warn!("pthread_atfork failed: connections inherited by fork() children will not be detected");
            }
        }
    });
    GENERATION.load(Ordering::SeqCst)
}
