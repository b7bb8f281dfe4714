//! Scalar quantization of a vector index (`"quantization": "scalar"`): each component of
//! a (prepared) vector kept as an 8-bit code, `code = round((x - min) / step)` clamped to
//! 0..=255, with one `min` and `step` for the whole index (calibrated from the vectors the
//! index holds when it is first written; see `docs/FORMAT.md`). One range for every
//! dimension keeps the distances integer sums over the codes
//! ([`super::distance::code_distance`]): the squared Euclidean distance of two decoded
//! vectors is `step² · Σ(a - b)²`, and their dot product
//! `n·min² + min·step·(Σa + Σb) + step²·Σab`.

use super::Similarity;

/// One index's code range: value `min + step · code` for codes 0..=255.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Quant {
    pub min: f32,
    pub step: f32,
}

/// A range set or widened from the vectors seen so far (the first vector of an index
/// created empty, or one outside the range) gets this fraction of its width more on each
/// side, for the vectors after them.
const MARGIN: f32 = 0.5;

impl Quant {
    /// The range covering `lo..=hi` (the smallest and largest component seen).
    pub(crate) fn covering(lo: f32, hi: f32) -> Self {
        let (lo, hi) = if lo.is_finite() && hi.is_finite() && lo <= hi {
            (lo, hi)
        } else {
            (-1.0, 1.0)
        };
        // A range of one value still gets a width (codes of the value itself stay exact).
        let width = (hi - lo).max(hi.abs().max(lo.abs()) * 1e-3).max(1e-6);
        Self {
            min: lo,
            step: width / 255.0,
        }
    }

    /// A range covering `lo..=hi` with a margin (see [`MARGIN`]).
    pub(crate) fn widened(lo: f32, hi: f32) -> Self {
        let w = (hi - lo).max(hi.abs().max(lo.abs())).max(1e-3) * MARGIN;
        Self::covering(lo - w, hi + w)
    }

    /// Whether every component of `v` is within the range (half a step past either end
    /// still codes to it).
    pub(crate) fn holds(&self, v: &[f32]) -> bool {
        let (lo, hi) = min_max(v);
        lo >= self.min - self.step / 2.0 && hi <= self.value(255) + self.step / 2.0
    }

    #[inline]
    pub(crate) fn code(&self, x: f32) -> u8 {
        let c = ((x - self.min) / self.step).round();
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // clamped
        let c = c.clamp(0.0, 255.0) as u8;
        c
    }

    #[inline]
    pub(crate) fn value(&self, c: u8) -> f32 {
        self.min + self.step * f32::from(c)
    }

    pub(crate) fn codes(&self, v: &[f32]) -> Vec<u8> {
        v.iter().map(|x| self.code(*x)).collect()
    }

    /// `v` as its codes decode (what the graph compares).
    pub(crate) fn round_trip(&self, v: &[f32]) -> Vec<f32> {
        v.iter().map(|x| self.value(self.code(*x))).collect()
    }

    /// The distance of two decoded vectors from the integer sums over their codes:
    /// `l2` = Σ(a - b)², `dot` = Σab, `sa` / `sb` = Σa / Σb, `n` the dimensions.
    #[inline]
    pub(crate) fn distance(&self, sim: Similarity, n: usize, sums: CodeSums) -> f32 {
        let s = f64::from(self.step);
        match sim {
            #[allow(clippy::cast_possible_truncation)] // a distance, as the float kernels give
            Similarity::Euclidean => (s * s * sums.l2_or_dot as f64) as f32,
            Similarity::Cosine | Similarity::DotProduct => {
                let m = f64::from(self.min);
                #[allow(clippy::cast_precision_loss)] // dimensions <= 4096
                let dot = n as f64 * m * m
                    + m * s * (f64::from(sums.sa) + f64::from(sums.sb))
                    + s * s * sums.l2_or_dot as f64;
                #[allow(clippy::cast_possible_truncation)]
                let d = if sim == Similarity::Cosine {
                    (1.0 - dot) as f32
                } else {
                    (-dot) as f32
                };
                d
            }
        }
    }
}

/// What [`Quant::distance`] takes: Σ(a - b)² (Euclidean) or Σab, and the two code sums.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CodeSums {
    pub l2_or_dot: u64,
    pub sa: u32,
    pub sb: u32,
}

/// The smallest and largest component of `v`.
pub(crate) fn min_max(v: &[f32]) -> (f32, f32) {
    v.iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), x| {
            (lo.min(*x), hi.max(*x))
        })
}

/// The sum of a vector's codes.
pub(crate) fn code_sum(c: &[u8]) -> u32 {
    c.iter().map(|x| u32::from(*x)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_within_half_a_step_and_clamp_outside() {
        let q = Quant::covering(-2.0, 3.0);
        for i in 0..=1000 {
            #[allow(clippy::cast_precision_loss)]
            let x = -2.0 + 5.0 * i as f32 / 1000.0;
            let back = q.value(q.code(x));
            assert!((back - x).abs() <= q.step / 2.0 + 1e-6, "{x} -> {back}");
        }
        assert_eq!(q.code(-10.0), 0);
        assert_eq!(q.code(10.0), 255);
        let f = Quant::widened(0.5, 0.5);
        assert!(f.min < 0.5 && f.value(255) > 0.5 && f.holds(&[0.5]));
        assert!((f.value(f.code(0.5)) - 0.5).abs() <= f.step);
        assert!(q.holds(&[-2.0, 3.0]) && !q.holds(&[3.1]) && !q.holds(&[-2.1]));
    }

    #[test]
    fn integer_distances_match_the_decoded_vectors() {
        let mut rng = fastrand::Rng::with_seed(5);
        let q = Quant::covering(-1.0, 1.0);
        for n in [1usize, 7, 64] {
            let a: Vec<u8> = (0..n).map(|_| rng.u8(..)).collect();
            let b: Vec<u8> = (0..n).map(|_| rng.u8(..)).collect();
            let fa: Vec<f32> = a.iter().map(|c| q.value(*c)).collect();
            let fb: Vec<f32> = b.iter().map(|c| q.value(*c)).collect();
            for sim in [
                Similarity::Euclidean,
                Similarity::Cosine,
                Similarity::DotProduct,
            ] {
                let want = super::super::distance::distance(sim, &fa, &fb);
                let got = super::super::distance::code_distance(sim, &q, &a, &b);
                assert!(
                    (want - got).abs() <= 1e-3 * (1.0 + want.abs()),
                    "{sim:?} n={n}: {want} vs {got}"
                );
            }
        }
    }
}
