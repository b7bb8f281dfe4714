//! Distance kernels of vector indexes: smaller is closer. Squared Euclidean distance,
//! `1 - dot` for cosine (vectors normalized before they get here), `-dot` for dotProduct.
//!
//! Portable code written for the compiler's auto-vectorizer: sixteen independent lanes per
//! step (no dependency between the adds of one step), then the lanes summed. On x86-64 an
//! AVX2 + FMA build ([`avx2`]: the float kernels written with the intrinsics, the code
//! kernels the portable loops compiled again) is chosen at run time when the processor has
//! both (`is_x86_feature_detected!`); elsewhere, and on processors without them, the
//! portable build (SSE2 on x86-64) runs.
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

/// The kernels compiled with AVX2 and FMA. The float kernels are written with the
/// intrinsics: two 8-lane registers per step, fused multiply-adds, then the lanes summed
/// (left to the auto-vectorizer, the portable loops came out as 2-float operations, about
/// five times the instructions). The code kernels are the portable loops inlined.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::{
        __m256, _mm256_add_ps, _mm256_castps256_ps128, _mm256_extractf128_ps, _mm256_fmadd_ps,
        _mm256_loadu_ps, _mm256_setzero_ps, _mm256_sub_ps, _mm_add_ps, _mm_add_ss, _mm_cvtss_f32,
        _mm_movehdup_ps, _mm_movehl_ps,
    };

    /// Floats per step: two registers of eight.
    const STEP: usize = 16;

    /// The eight lanes of `v` summed.
    #[target_feature(enable = "avx2,fma")]
    fn lanes_sum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let odd = _mm_movehdup_ps(s);
        let s = _mm_add_ps(s, odd);
        _mm_cvtss_f32(_mm_add_ss(s, _mm_movehl_ps(odd, s)))
    }

    /// The 16 floats of `a` and of `b` from `at` (`at + 16` at most their length).
    #[target_feature(enable = "avx2,fma")]
    fn load_step(a: &[f32], b: &[f32], at: usize) -> [__m256; 4] {
        assert!(at + STEP <= a.len() && at + STEP <= b.len());
        // SAFETY: the four 8-float loads read a[at..at + 16] and b[at..at + 16], in bounds
        // (asserted just above); `loadu` takes unaligned addresses.
        unsafe {
            let (pa, pb) = (a.as_ptr().add(at), b.as_ptr().add(at));
            [
                _mm256_loadu_ps(pa),
                _mm256_loadu_ps(pa.add(8)),
                _mm256_loadu_ps(pb),
                _mm256_loadu_ps(pb.add(8)),
            ]
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut at = 0;
        while at + STEP <= n {
            let [a0, a1, b0, b1] = load_step(a, b, at);
            acc0 = _mm256_fmadd_ps(a0, b0, acc0);
            acc1 = _mm256_fmadd_ps(a1, b1, acc1);
            at += STEP;
        }
        let mut s = lanes_sum(_mm256_add_ps(acc0, acc1));
        for (x, y) in a[at..n].iter().zip(&b[at..n]) {
            s += x * y;
        }
        s
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut at = 0;
        while at + STEP <= n {
            let [a0, a1, b0, b1] = load_step(a, b, at);
            let (d0, d1) = (_mm256_sub_ps(a0, b0), _mm256_sub_ps(a1, b1));
            acc0 = _mm256_fmadd_ps(d0, d0, acc0);
            acc1 = _mm256_fmadd_ps(d1, d1, acc1);
            at += STEP;
        }
        let mut s = lanes_sum(_mm256_add_ps(acc0, acc1));
        for (x, y) in a[at..n].iter().zip(&b[at..n]) {
            let d = x - y;
            s += d * d;
        }
        s
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
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the processor has AVX2 and FMA (checked at run time just above).
        return unsafe { avx2::dot(a, b) };
    }
    dot_portable(a, b)
}

/// The squared Euclidean distance of two vectors of one length.
#[inline(always)]
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
#[inline(always)]
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
