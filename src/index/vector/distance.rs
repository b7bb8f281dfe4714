//! Distance kernels of vector indexes: smaller is closer. Squared Euclidean distance,
//! `1 - dot` for cosine (vectors normalized before they get here), `-dot` for dotProduct.
//!
//! Portable code written for the compiler's auto-vectorizer: sixteen independent lanes per
//! step (no dependency between the adds of one step), then the lanes summed. On x86-64 the
//! same loops are compiled a second time with AVX2 and FMA enabled ([`avx2`]), chosen at
//! run time when the processor has both (`is_x86_feature_detected!`); elsewhere, and on
//! processors without them, the portable build (SSE2 on x86-64) runs.
#![allow(unsafe_code)] // calling the AVX2 build once the processor is known to have AVX2

use super::quant::CodeSums;
#[cfg(test)]
use super::quant::{code_sum, Quant};
use super::Similarity;

const LANES: usize = 16;

/// Whether the AVX2 + FMA build of the kernels may run here (checked once).
#[cfg(target_arch = "x86_64")]
fn has_avx2() -> bool {
    use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
    static KNOWN: AtomicU8 = AtomicU8::new(0);
    match KNOWN.load(Relaxed) {
        1 => false,
        2 => true,
        _ => {
            let yes = std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma");
            KNOWN.store(if yes { 2 } else { 1 }, Relaxed);
            yes
        }
    }
}

/// The kernels compiled with AVX2 and FMA (the portable loops inlined into them).
#[cfg(target_arch = "x86_64")]
mod avx2 {
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
        super::dot_portable(a, b)
    }
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
        super::l2_portable(a, b)
    }
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn l2_codes(a: &[u8], b: &[u8]) -> u32 {
        super::l2_codes_portable(a, b)
    }
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn dot_codes(a: &[u8], b: &[u8]) -> u32 {
        super::dot_codes_portable(a, b)
    }
}

/// Σ(a - b)² over two vectors of 8-bit codes of one length (at most 4096: the sum fits).
#[inline]
pub(crate) fn l2_codes(a: &[u8], b: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the processor has AVX2 and FMA (checked at run time just above).
        return unsafe { avx2::l2_codes(a, b) };
    }
    l2_codes_portable(a, b)
}

/// Σab over two vectors of 8-bit codes of one length (at most 4096: the sum fits).
#[inline]
pub(crate) fn dot_codes(a: &[u8], b: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the processor has AVX2 and FMA (checked at run time just above).
        return unsafe { avx2::dot_codes(a, b) };
    }
    dot_codes_portable(a, b)
}

/// Integer lanes per step of the code kernels.
const CODE_LANES: usize = 32;

#[inline(always)]
fn l2_codes_portable(a: &[u8], b: &[u8]) -> u32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0u32; CODE_LANES];
    let (ca, cb) = (a.chunks_exact(CODE_LANES), b.chunks_exact(CODE_LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..CODE_LANES {
            let d = u32::from(x[i].abs_diff(y[i]));
            acc[i] += d * d;
        }
    }
    let mut s: u32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        let d = u32::from(x.abs_diff(*y));
        s += d * d;
    }
    s
}

#[inline(always)]
fn dot_codes_portable(a: &[u8], b: &[u8]) -> u32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0u32; CODE_LANES];
    let (ca, cb) = (a.chunks_exact(CODE_LANES), b.chunks_exact(CODE_LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..CODE_LANES {
            acc[i] += u32::from(x[i]) * u32::from(y[i]);
        }
    }
    let mut s: u32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += u32::from(*x) * u32::from(*y);
    }
    s
}

/// The distance of two coded vectors as [`distance`] gives it for their decoded values
/// (`a` and `b` sums computed here; searches over many codes keep them).
#[cfg(test)]
pub(crate) fn code_distance(sim: Similarity, q: &Quant, a: &[u8], b: &[u8]) -> f32 {
    q.distance(sim, a.len(), code_sums(sim, a, b, code_sum(a), code_sum(b)))
}

/// The sums [`Quant::distance`] takes, `sa` and `sb` given.
#[inline]
pub(crate) fn code_sums(sim: Similarity, a: &[u8], b: &[u8], sa: u32, sb: u32) -> CodeSums {
    let l2_or_dot = u64::from(match sim {
        Similarity::Euclidean => l2_codes(a, b),
        Similarity::Cosine | Similarity::DotProduct => dot_codes(a, b),
    });
    CodeSums { l2_or_dot, sa, sb }
}

/// The dot product of two vectors of one length.
#[inline]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the processor has AVX2 and FMA (checked at run time just above).
        return unsafe { avx2::dot(a, b) };
    }
    dot_portable(a, b)
}

/// The squared Euclidean distance of two vectors of one length.
#[inline]
pub(crate) fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the processor has AVX2 and FMA (checked at run time just above).
        return unsafe { avx2::l2_squared(a, b) };
    }
    l2_portable(a, b)
}

/// The lanes summed pairwise (halves added together, as vector adds can), rather than one
/// after another: 4 dependent adds instead of 15 on a query's critical path.
#[inline(always)]
fn tree_sum(mut acc: [f32; LANES]) -> f32 {
    let mut half = LANES / 2;
    while half > 0 {
        for i in 0..half {
            acc[i] += acc[i + half];
        }
        half /= 2;
    }
    acc[0]
}

#[inline(always)]
fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s = tree_sum(acc);
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

#[inline(always)]
fn l2_portable(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            let d = x[i] - y[i];
            acc[i] += d * d;
        }
    }
    let mut s = tree_sum(acc);
    for (x, y) in ra.iter().zip(rb) {
        let d = x - y;
        s += d * d;
    }
    s
}

/// The distance of two vectors as the graph orders them (prepared by [`prepare`]).
#[inline]
pub(crate) fn distance(sim: Similarity, a: &[f32], b: &[f32]) -> f32 {
    match sim {
        Similarity::Euclidean => l2_squared(a, b),
        Similarity::Cosine => 1.0 - dot(a, b),
        Similarity::DotProduct => -dot(a, b),
    }
}

/// A vector as the kernels take it: unit length for cosine, as given otherwise.
pub(crate) fn prepare(sim: Similarity, mut v: Vec<f32>) -> Vec<f32> {
    if sim == Similarity::Cosine {
        let norm = dot(&v, &v).sqrt();
        if norm > 0.0 {
            for x in &mut v {
                *x /= norm;
            }
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_agree_with_plain_sums_at_every_length() {
        let mut rng = fastrand::Rng::with_seed(7);
        for n in 0..70 {
            let a: Vec<f32> = (0..n).map(|_| rng.f32() - 0.5).collect();
            let b: Vec<f32> = (0..n).map(|_| rng.f32() - 0.5).collect();
            let d: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            let l: f32 = a.iter().zip(&b).map(|(x, y)| (x - y) * (x - y)).sum();
            assert!((dot(&a, &b) - d).abs() < 1e-5, "dot at {n}");
            assert!((l2_squared(&a, &b) - l).abs() < 1e-5, "l2 at {n}");
            // Both builds, whichever the processor runs.
            assert!(
                (dot_portable(&a, &b) - d).abs() < 1e-5,
                "portable dot at {n}"
            );
            assert!((l2_portable(&a, &b) - l).abs() < 1e-5, "portable l2 at {n}");
            let ca: Vec<u8> = (0..n).map(|_| rng.u8(..)).collect();
            let cb: Vec<u8> = (0..n).map(|_| rng.u8(..)).collect();
            let l: u32 = ca
                .iter()
                .zip(&cb)
                .map(|(x, y)| (i32::from(*x) - i32::from(*y)).pow(2) as u32)
                .sum();
            let d: u32 = ca
                .iter()
                .zip(&cb)
                .map(|(x, y)| u32::from(*x) * u32::from(*y))
                .sum();
            assert_eq!(l2_codes(&ca, &cb), l, "l2 codes at {n}");
            assert_eq!(dot_codes(&ca, &cb), d, "dot codes at {n}");
            assert_eq!(l2_codes_portable(&ca, &cb), l, "portable l2 codes at {n}");
            assert_eq!(dot_codes_portable(&ca, &cb), d, "portable dot codes at {n}");
        }
    }

    #[test]
    fn scores_follow_atlas() {
        let a = prepare(Similarity::Cosine, vec![3.0, 0.0]);
        let b = prepare(Similarity::Cosine, vec![0.0, 5.0]);
        assert_eq!(a, vec![1.0, 0.0]);
        let d = distance(Similarity::Cosine, &a, &b);
        assert!((Similarity::Cosine.score(d) - 0.5).abs() < 1e-6);
        assert!(
            (Similarity::Cosine.score(distance(Similarity::Cosine, &a, &a)) - 1.0).abs() < 1e-6
        );
        let d = distance(Similarity::Euclidean, &[0.0, 0.0], &[3.0, 4.0]);
        assert_eq!(d, 25.0);
        assert!((Similarity::Euclidean.score(d) - 1.0 / 26.0).abs() < 1e-9);
        let d = distance(Similarity::DotProduct, &[0.6, 0.8], &[0.6, 0.8]);
        assert!((Similarity::DotProduct.score(d) - 1.0).abs() < 1e-6);
    }
}
