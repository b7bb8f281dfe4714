//! Distance kernels of vector indexes: smaller is closer. Squared Euclidean distance,
//! `1 - dot` for cosine (vectors normalized before they get here), `-dot` for dotProduct.
//!
//! Portable code written for the compiler's auto-vectorizer: eight independent lanes per
//! step (no dependency between the adds of one step), then the lanes summed, so that on
//! x86-64 the loop becomes SSE/AVX adds and multiplies without `unsafe` or target flags.

use super::Similarity;

const LANES: usize = 8;

/// The dot product of two vectors of one length.
#[inline]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// The squared Euclidean distance of two vectors of one length.
#[inline]
pub(crate) fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
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
    let mut s: f32 = acc.iter().sum();
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
        for n in 0..40 {
            let a: Vec<f32> = (0..n).map(|_| rng.f32() - 0.5).collect();
            let b: Vec<f32> = (0..n).map(|_| rng.f32() - 0.5).collect();
            let d: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            let l: f32 = a.iter().zip(&b).map(|(x, y)| (x - y) * (x - y)).sum();
            assert!((dot(&a, &b) - d).abs() < 1e-5, "dot at {n}");
            assert!((l2_squared(&a, &b) - l).abs() < 1e-5, "l2 at {n}");
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
