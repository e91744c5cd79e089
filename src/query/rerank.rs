//! The re-ranking hook: the caller's model re-scores the best fused candidates.

use crate::error::Result;
use crate::model::record::Hit;

/// What a re-ranker is told about the request.
#[derive(Debug, Clone, Copy)]
pub struct RerankQuery<'a> {
    /// The text query, if the request has one.
    pub text: Option<&'a str>,
    /// The query vector (normalized under cosine), if the request has one.
    pub vector: Option<&'a [f32]>,
}

/// Re-scores candidates, e.g. with a cross-encoder. Cairn hands over the best `top_n`
/// candidates after fusion (each with its text and payload loaded) and orders them by the
/// returned scores, higher first; the final top-k is taken from that order.
pub trait Reranker: Send + Sync {
    /// One score per candidate, in the order given. Returning a different number of scores,
    /// or a NaN, fails the search with [`Error::InvalidArgument`](crate::Error).
    fn rerank(&self, query: &RerankQuery<'_>, candidates: &[Hit]) -> Result<Vec<f32>>;
}
