//! simsimd kernels (run-time CPU dispatch). simsimd returns distances as f64; these wrappers
//! return f32 similarities. Calls go through the `SpatialSimilarity` trait explicitly: a bare
//! `f32::cos` would resolve to the trigonometric function.

use simsimd::SpatialSimilarity;

/// Dot product. Slices must have equal length (checked in debug builds; a mismatch falls back
/// to the scalar kernel over the common prefix rather than panicking).
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    match <f32 as SpatialSimilarity>::dot(a, b) {
        Some(d) => d as f32,
        None => super::scalar::dot(a, b),
    }
}

/// Squared Euclidean distance.
#[inline]
pub fn l2sq(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    match <f32 as SpatialSimilarity>::l2sq(a, b) {
        Some(d) => d as f32,
        None => super::scalar::l2sq(a, b),
    }
}

/// Cosine similarity (simsimd computes the distance `1 - cos`).
#[inline]
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    match <f32 as SpatialSimilarity>::cos(a, b) {
        Some(d) => (1.0 - d) as f32,
        None => super::scalar::cosine(a, b),
    }
}
