//! A hint to the CPU to start loading memory a loop will read soon: a loop that does much
//! work per item between reads of scattered memory (an index build writing its sorted
//! entries, which lie in the order they were read) would otherwise wait for each miss in
//! turn instead of overlapping them.

/// Starts loading the cache line holding the start of `bytes`. A hint only: it never faults
/// and changes nothing; a no-op on targets without a stable prefetch instruction.
#[inline]
pub(crate) fn prefetch(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing the program sees and cannot fault (the pointer is
    // moreover in bounds of a live slice); SSE is part of the x86_64 baseline.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(bytes.as_ptr().cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}

/// Starts loading the cache line holding the start of `value` (see [`prefetch`]).
#[inline]
pub(crate) fn prefetch_value<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: as for `prefetch`: a hint that reads nothing the program sees and cannot fault
    // (the reference is live).
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(value).cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}
