//! Vectors: similarity metrics and their SIMD kernels, int8 copies for graph walks, and the
//! stores and scorers that graph walks and exact scans read vectors through.
//!
//! | file | role |
//! |---|---|
//! | `distance/` | [`Metric`], `score` / `score_rows`, vector preparation; simsimd and scalar kernels |
//! | `quant.rs` | int8 rows with a scale each, and the scorer that walks over them |
//! | `rabitq.rs` | RaBitQ codes (1 or 4 bits per dimension): rotation, encoding, the estimator and its error bound |
//! | `store.rs` | the `Vectors` and `Score` traits, `FlatVectors` (rows on the heap) |

pub mod distance;
pub(crate) mod quant;
pub(crate) mod rabitq;
pub(crate) mod store;

pub use distance::Metric;
pub(crate) use store::{Exact, FlatVectors, Score, Vectors, extend_f32};
