//! Similarity metrics and the kernels that compute them.
//!
//! ```text
//!   Metric::score(query, row)      one pair, "higher is better"
//!   Metric::score_rows(q, rows, …) one query against a block of rows (the exact-scan hot loop)
//!        │
//!        ├── simd.rs     simsimd kernels, picked at run time for the CPU (AVX-512, AVX2, NEON…)
//!        └── scalar.rs   plain loops: the reference the SIMD path is tested against
//! ```
//!
//! Scores are similarities, higher is better, for every metric:
//!
//! | metric | stored vector | score |
//! |---|---|---|
//! | `Cosine` | normalized to unit length on insert | `dot(q̂, x̂)` = cosine similarity, in [-1, 1] |
//! | `Dot` | as given | `dot(q, x)` |
//! | `L2` | as given | `-‖q - x‖²` (negated squared Euclidean distance) |

pub mod scalar;
pub mod simd;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How two vectors are compared. Every metric yields a score where higher means more similar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Cosine similarity. Vectors are normalized to unit length on insert (a zero vector is
    /// rejected) and scored by dot product, so scores lie in [-1, 1].
    #[default]
    Cosine,
    /// Inner (dot) product of the vectors as given.
    Dot,
    /// Negated squared Euclidean distance `-‖a - b‖²`: 0 for identical vectors, lower for
    /// farther ones.
    L2,
}

impl Metric {
    /// The largest Euclidean norm of a vector under `Dot` and `L2` (`Cosine` normalizes every
    /// vector): larger ones are rejected with [`Error::VectorTooLarge`], stored or query. Between
    /// two vectors within it a dot product is at most 1e36 in magnitude and a squared distance
    /// at most 4e36 (as are the partial sums of the kernels and the int8 estimate of graph
    /// walks, within a small factor), so every score stays far inside `f32` (3.4e38).
    pub const MAX_NORM: f64 = 1e18;

    /// The metric's name as used in the CLI and on disk.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Cosine => "cosine",
            Metric::Dot => "dot",
            Metric::L2 => "l2",
        }
    }

    /// Score of two prepared vectors (for `Cosine` both must already be normalized).
    /// Finite inputs can still overflow (`9e37 · 9e37 − 9e37 · 9e37` is `inf − inf`): a NaN
    /// score becomes `-inf`, the worst, so such a record ranks last instead of vanishing.
    #[inline]
    pub fn score(self, a: &[f32], b: &[f32]) -> f32 {
        let s = match self {
            Metric::Cosine | Metric::Dot => simd::dot(a, b),
            Metric::L2 => -simd::l2sq(a, b),
        };
        not_nan(s)
    }

    /// Scores one prepared query against `out.len()` consecutive rows of `dim` floats.
    #[inline]
    pub fn score_rows(self, query: &[f32], rows: &[f32], dim: usize, out: &mut [f32]) {
        debug_assert_eq!(rows.len(), out.len() * dim);
        match self {
            Metric::Cosine | Metric::Dot => {
                for (o, row) in out.iter_mut().zip(rows.chunks_exact(dim)) {
                    *o = not_nan(simd::dot(query, row));
                }
            }
            Metric::L2 => {
                for (o, row) in out.iter_mut().zip(rows.chunks_exact(dim)) {
                    *o = not_nan(-simd::l2sq(query, row));
                }
            }
        }
    }

    /// The same score computed by the scalar reference kernels.
    pub fn score_reference(self, a: &[f32], b: &[f32]) -> f32 {
        match self {
            Metric::Cosine | Metric::Dot => scalar::dot(a, b),
            Metric::L2 => -scalar::l2sq(a, b),
        }
    }
}

impl std::str::FromStr for Metric {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "cosine" | "cos" | "angular" => Ok(Metric::Cosine),
            "dot" | "ip" | "inner" => Ok(Metric::Dot),
            "l2" | "euclidean" => Ok(Metric::L2),
            _ => Err(Error::InvalidArgument(format!(
                "unknown metric {s:?}: use cosine, dot or l2"
            ))),
        }
    }
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[inline(always)]
fn not_nan(s: f32) -> f32 {
    if s.is_nan() { f32::NEG_INFINITY } else { s }
}

/// Why a vector cannot be stored or searched with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum VectorProblem {
    NonFinite(usize),
    /// All zeros, under `Cosine`.
    Zero,
    /// The norm (above [`Metric::MAX_NORM`]), under `Dot` or `L2`.
    TooLarge(f64),
}

impl VectorProblem {
    /// The error for the vector of record `id`, or for the query (`None`).
    pub(crate) fn error(self, id: Option<crate::Id>) -> Error {
        match (self, id) {
            (VectorProblem::NonFinite(index), Some(id)) => Error::NonFiniteVector { id, index },
            (VectorProblem::NonFinite(index), None) => Error::NonFiniteQuery { index },
            (VectorProblem::Zero, Some(id)) => Error::ZeroVector { id },
            (VectorProblem::Zero, None) => Error::ZeroQuery,
            (VectorProblem::TooLarge(norm), id) => Error::VectorTooLarge {
                id,
                norm,
                max: Metric::MAX_NORM,
            },
        }
    }
}

/// Index of the first NaN or infinite component.
pub(crate) fn first_non_finite(v: &[f32]) -> Option<usize> {
    v.iter().position(|x| !x.is_finite())
}

/// Checks a vector and, for `Cosine`, normalizes it in place to unit length.
///
/// The norm is computed and applied in `f64`, where neither the square of a large `f32` nor
/// that of a tiny (even subnormal) one leaves the range: under `Cosine` every vector but the
/// zero vector is accepted, under `Dot` and `L2` every one whose norm is within
/// [`Metric::MAX_NORM`].
pub(crate) fn prepare(metric: Metric, v: &mut [f32]) -> std::result::Result<(), VectorProblem> {
    if let Some(i) = first_non_finite(v) {
        return Err(VectorProblem::NonFinite(i));
    }
    let norm2: f64 = v.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
    match metric {
        Metric::Cosine => {
            if norm2 == 0.0 {
                return Err(VectorProblem::Zero);
            }
            let inv = 1.0 / norm2.sqrt();
            for x in v.iter_mut() {
                *x = (f64::from(*x) * inv) as f32;
            }
        }
        Metric::Dot | Metric::L2 => {
            if norm2 > Metric::MAX_NORM * Metric::MAX_NORM {
                return Err(VectorProblem::TooLarge(norm2.sqrt()));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn close(a: f32, b: f32, scale: f32) -> bool {
        (a - b).abs() <= 1e-5 * scale.max(1.0)
    }

    proptest! {
        #[test]
        fn simd_matches_scalar(
            pair in (1usize..700).prop_flat_map(|d| (
                prop::collection::vec(-100f32..100.0, d),
                prop::collection::vec(-100f32..100.0, d),
            ))
        ) {
            let (a, b) = pair;
            // Relative to the magnitude of the terms summed, which bounds the rounding error.
            let mag: f32 = a.iter().zip(&b).map(|(x, y)| (x * y).abs()).sum();
            prop_assert!(close(simd::dot(&a, &b), scalar::dot(&a, &b), mag));
            let mag2: f32 = a.iter().zip(&b).map(|(x, y)| (x - y) * (x - y)).sum();
            prop_assert!(close(simd::l2sq(&a, &b), scalar::l2sq(&a, &b), mag2));
            let c = simd::cosine(&a, &b);
            let r = scalar::cosine(&a, &b);
            prop_assert!((c - r).abs() <= 1e-5, "cosine {c} vs {r}");
        }

        #[test]
        fn score_rows_matches_pairwise(
            dim in 1usize..40, n in 0usize..20, seed in any::<u64>(), metric_ix in 0usize..3
        ) {
            let metric = [Metric::Cosine, Metric::Dot, Metric::L2][metric_ix];
            let mut x = seed;
            let mut next = || { x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407); ((x >> 40) as f32 / (1u64 << 24) as f32) - 0.5 };
            let q: Vec<f32> = (0..dim).map(|_| next()).collect();
            let rows: Vec<f32> = (0..dim * n).map(|_| next()).collect();
            let mut out = vec![0.0; n];
            metric.score_rows(&q, &rows, dim, &mut out);
            for (i, row) in rows.chunks_exact(dim).enumerate() {
                prop_assert!(close(out[i], metric.score_reference(&q, row), dim as f32));
            }
        }
    }

    #[test]
    fn prepare_normalizes_and_rejects() {
        let mut v = vec![3.0, 4.0];
        prepare(Metric::Cosine, &mut v).unwrap();
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
        let mut z = vec![0.0, 0.0];
        assert_eq!(prepare(Metric::Cosine, &mut z), Err(VectorProblem::Zero));
        assert_eq!(prepare(Metric::Dot, &mut z), Ok(()));
        let mut n = vec![1.0, f32::NAN];
        assert_eq!(
            prepare(Metric::L2, &mut n),
            Err(VectorProblem::NonFinite(1))
        );
        let mut big = vec![f32::MAX, f32::MAX];
        prepare(Metric::Cosine, &mut big.clone()).unwrap();
        prepare(Metric::Cosine, &mut big).unwrap();
        assert!((big[0] - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
        // Tiny, even subnormal, components normalize in f64.
        let mut tiny = vec![1e-45, 1e-45];
        prepare(Metric::Cosine, &mut tiny).unwrap();
        assert!((tiny[0] - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
        // Under dot and l2 the norm is bounded.
        for m in [Metric::Dot, Metric::L2] {
            let mut huge = vec![3e38, -3e38];
            assert!(matches!(prepare(m, &mut huge), Err(VectorProblem::TooLarge(n)) if n > 4e38));
            let mut edge = vec![1e18, 0.0];
            assert_eq!(prepare(m, &mut edge), Ok(()));
        }
    }

    #[test]
    fn metric_names_round_trip() {
        for m in [Metric::Cosine, Metric::Dot, Metric::L2] {
            assert_eq!(m.as_str().parse::<Metric>().unwrap(), m);
        }
        assert!("manhattan".parse::<Metric>().is_err());
    }
}
