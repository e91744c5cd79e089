//! Search requests, fusion of hybrid legs, re-ranking, and the top-k machinery that merges
//! results from the memtable and the segments.

pub(crate) mod fusion;
mod request;
pub(crate) mod rerank;
mod response;
pub(crate) mod topk;

pub use fusion::{Fusion, LegScore};
pub use request::SearchRequest;
pub use rerank::{RerankQuery, Reranker};
pub use response::{Explain, PlanKind, SearchResponse, SourcePlan, TextPlan};
