//! The search request builder.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::model::filter::Filter;
use crate::query::fusion::Fusion;
use crate::query::rerank::Reranker;
use crate::query::scatter::TextStats;

/// Largest `k` a request may ask for.
pub const MAX_K: usize = 100_000;

/// What to search for and what to return.
///
/// A request has a vector leg ([`new`](Self::new)), a text leg ([`by_text`](Self::by_text)),
/// or both ([`new`](Self::new) + [`text`](Self::text)): then each leg finds its
/// [`candidates`](Self::candidates) and the two lists are fused ([`Fusion`]). An optional
/// [`filter`](Self::filter) applies to both legs.
///
/// ```
/// use cairndb::{Filter, SearchRequest};
/// let req = SearchRequest::new(vec![0.1, 0.2, 0.3])
///     .text("error budget")
///     .filter(Filter::eq("lang", "en"))
///     .k(5)
///     .with_payload(true);
/// assert_eq!(req.top_k(), 5);
/// ```
#[derive(Clone)]
pub struct SearchRequest {
    pub(crate) vector: Option<Vec<f32>>,
    pub(crate) text: Option<String>,
    pub(crate) filter: Option<Filter>,
    pub(crate) fusion: Fusion,
    pub(crate) candidates: Option<usize>,
    pub(crate) k: usize,
    pub(crate) exact: bool,
    pub(crate) ef: Option<usize>,
    pub(crate) with_payload: bool,
    pub(crate) with_text: bool,
    pub(crate) explain: bool,
    pub(crate) rerank: Option<(Arc<dyn Reranker>, usize)>,
    pub(crate) text_stats: Option<TextStats>,
}

impl std::fmt::Debug for SearchRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchRequest")
            .field("vector", &self.vector.as_ref().map(Vec::len))
            .field("text", &self.text)
            .field("filter", &self.filter)
            .field("fusion", &self.fusion)
            .field("candidates", &self.candidates)
            .field("k", &self.k)
            .field("exact", &self.exact)
            .field("ef", &self.ef)
            .field("rerank", &self.rerank.as_ref().map(|r| r.1))
            .field("text_stats", &self.text_stats)
            .finish_non_exhaustive()
    }
}

impl SearchRequest {
    fn empty() -> Self {
        SearchRequest {
            vector: None,
            text: None,
            filter: None,
            fusion: Fusion::default(),
            candidates: None,
            k: 10,
            exact: false,
            ef: None,
            with_payload: false,
            with_text: false,
            explain: false,
            rerank: None,
            text_stats: None,
        }
    }

    /// A request for the 10 records most similar to `vector`.
    pub fn new(vector: impl Into<Vec<f32>>) -> Self {
        SearchRequest {
            vector: Some(vector.into()),
            ..Self::empty()
        }
    }

    /// A full-text request: the 10 records with the best BM25 score for `query`.
    pub fn by_text(query: impl Into<String>) -> Self {
        SearchRequest {
            text: Some(query.into()),
            ..Self::empty()
        }
    }

    /// Adds (or replaces) the text leg: with a vector this makes a hybrid request.
    pub fn text(mut self, query: impl Into<String>) -> Self {
        self.text = Some(query.into());
        self
    }

    /// Only records matching `filter` are returned, by both legs.
    pub fn filter(mut self, filter: Filter) -> Self {
        self.filter = Some(filter);
        self
    }

    /// How a hybrid request combines its legs (default [`Fusion::default`]: weighted min-max
    /// with alpha = [`Fusion::DEFAULT_ALPHA`], chosen by measurement; see docs/tuning.md).
    pub fn fusion(mut self, fusion: Fusion) -> Self {
        self.fusion = fusion;
        self
    }

    /// How many candidates each leg of a hybrid request finds before fusion (default
    /// `max(2k, 50)`; at least `k`).
    pub fn candidates(mut self, n: usize) -> Self {
        self.candidates = Some(n);
        self
    }

    /// Re-scores the best `top_n` fused candidates with `reranker` before the final top-k.
    pub fn rerank(mut self, reranker: Arc<dyn Reranker>, top_n: usize) -> Self {
        self.rerank = Some((reranker, top_n));
        self
    }

    /// Scores the text leg with these statistics instead of the collection's own: for a
    /// collection that is one shard of a larger one, pass the sum of every shard's
    /// [`Collection::text_stats`](crate::Collection::text_stats) for the same query, and
    /// BM25 scores equal those of one collection holding every record (see [`TextStats`]).
    /// A request without a text leg refuses them; one whose query has a term they lack
    /// fails.
    pub fn text_stats(mut self, stats: TextStats) -> Self {
        self.text_stats = Some(stats);
        self
    }

    /// How many hits to return at most (default 10, at most 100,000).
    pub fn k(mut self, k: usize) -> Self {
        self.k = k;
        self
    }

    /// Scan every record instead of using the HNSW index: exact results (the ground truth
    /// for recall measurements), at the cost of reading every vector.
    pub fn exact(mut self, yes: bool) -> Self {
        self.exact = yes;
        self
    }

    /// Size of the HNSW candidate list: larger is slower and finds more of the true nearest
    /// neighbours. Default `max(k, 64)`; values below `k` are raised to `k`. Under a filter
    /// the planner raises it further as the filter gets more selective.
    pub fn ef(mut self, ef: usize) -> Self {
        self.ef = Some(ef);
        self
    }

    /// Return each hit's payload.
    pub fn with_payload(mut self, yes: bool) -> Self {
        self.with_payload = yes;
        self
    }

    /// Return each hit's text.
    pub fn with_text(mut self, yes: bool) -> Self {
        self.with_text = yes;
        self
    }

    /// Report how the request was executed ([`SearchResponse::explain`](crate::SearchResponse)).
    pub fn explain(mut self, yes: bool) -> Self {
        self.explain = yes;
        self
    }

    /// The requested `k`.
    pub fn top_k(&self) -> usize {
        self.k
    }

    /// The query vector, if the request has a vector leg.
    pub fn vector(&self) -> Option<&[f32]> {
        self.vector.as_deref()
    }

    /// The text query, if the request has a text leg.
    pub fn text_query(&self) -> Option<&str> {
        self.text.as_deref()
    }

    /// Candidates per leg for fusion.
    pub(crate) fn leg_depth(&self) -> usize {
        self.candidates
            .unwrap_or_else(|| (2 * self.k).max(50))
            .max(self.k)
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        if self.vector.is_none() && self.text.is_none() {
            return bad("a request needs a vector, a text query, or both".into());
        }
        if let Some(ef) = self.ef
            && ef > MAX_K
        {
            return bad(format!("ef = {ef} exceeds the maximum of {MAX_K}"));
        }
        if self.k > MAX_K {
            return bad(format!("k = {} exceeds the maximum of {MAX_K}", self.k));
        }
        if let Some(c) = self.candidates
            && c > MAX_K
        {
            return bad(format!("candidates = {c} exceeds the maximum of {MAX_K}"));
        }
        if let Some((_, n)) = &self.rerank
            && *n > MAX_K
        {
            return bad(format!("rerank top_n = {n} exceeds the maximum of {MAX_K}"));
        }
        if let Some(ts) = &self.text_stats {
            if self.text.is_none() {
                return bad("text statistics were given for a request without a text query".into());
            }
            ts.validate()?;
        }
        if let Some(f) = &self.filter {
            f.validate()?;
        }
        self.fusion.validate()
    }
}
