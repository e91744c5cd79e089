//! The query engine and its vocabulary: search requests and responses, the sources a search
//! reads, filter evaluation, the vector and text legs, fusion, re-ranking and top-k.
//!
//! | file | role |
//! |---|---|
//! | `request.rs`, `response.rs` | [`SearchRequest`]; [`SearchResponse`] and [`Explain`] |
//! | `source.rs` | the `Source` trait (a segment with its tombstones, or a memtable) and the `View` a search runs on |
//! | `engine.rs` | one request over a view: filter, legs, fusion, re-ranking, hits |
//! | `filter.rs` | a filter evaluated against one source's indexes → bitmap of rows |
//! | `vector.rs` | the vector leg: the planner, graph walks, exact scans |
//! | `text.rs` | the text leg: BM25 with collection-wide statistics |
//! | `fusion.rs` | RRF, weighted min-max, DBSF |
//! | `rerank.rs` | the [`Reranker`] trait |
//! | `topk.rs` | bounded heap, deterministic tie-breaking |
//! | `scatter.rs` | the scatter-gather API: [`TextStats`], [`merge_hits`], [`Fusion::fuse_hits`] |

pub(crate) mod engine;
pub(crate) mod filter;
pub(crate) mod fusion;
mod request;
pub(crate) mod rerank;
mod response;
mod scatter;
pub(crate) mod source;
pub(crate) mod text;
pub(crate) mod topk;
pub(crate) mod vector;

pub use fusion::Fusion;
pub use request::SearchRequest;
pub use rerank::{RerankQuery, Reranker};
pub use response::{Explain, PlanKind, SearchResponse, SourcePlan, TextPlan};
pub use scatter::{TextStats, merge_hits};
