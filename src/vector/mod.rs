//! Vectors: similarity metrics and their SIMD kernels, int8 copies for graph walks, and the
//! stores and scorers that graph walks and exact scans read vectors through.
//!
//! | file | role |
//! |---|---|
//! | `distance/` | [`Metric`], `score` / `score_rows`, vector preparation; simsimd and scalar kernels |
//! | `quant.rs` | int8 rows with a scale each, and the scorer that walks over them |
//! | `store.rs` | the `Vectors` and `Score` traits, `FlatVectors` (rows on the heap) |

pub mod distance;
pub(crate) mod quant;
pub(crate) mod store;

pub use distance::Metric;
pub(crate) use store::{Exact, FlatVectors, Score, Vectors, extend_f32};
