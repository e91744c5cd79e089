//! The search request builder.

use crate::error::{Error, Result};

/// Largest `k` a request may ask for.
pub const MAX_K: usize = 100_000;

/// What to search for and what to return.
///
/// ```
/// use cairndb::SearchRequest;
/// let req = SearchRequest::new(vec![0.1, 0.2, 0.3]).k(5).with_payload(true);
/// assert_eq!(req.top_k(), 5);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SearchRequest {
    pub(crate) vector: Vec<f32>,
    pub(crate) k: usize,
    pub(crate) exact: bool,
    pub(crate) ef: Option<usize>,
    pub(crate) with_payload: bool,
    pub(crate) with_text: bool,
}

impl SearchRequest {
    /// A request for the 10 records most similar to `vector`.
    pub fn new(vector: impl Into<Vec<f32>>) -> Self {
        SearchRequest {
            vector: vector.into(),
            k: 10,
            exact: false,
            ef: None,
            with_payload: false,
            with_text: false,
        }
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
    /// neighbours. Default `max(k, 64)`; values below `k` are raised to `k`.
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

    /// The requested `k`.
    pub fn top_k(&self) -> usize {
        self.k
    }

    /// The query vector.
    pub fn vector(&self) -> &[f32] {
        &self.vector
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.ef.is_some_and(|ef| ef > MAX_K) {
            return Err(Error::InvalidArgument(format!(
                "ef = {} exceeds the maximum of {MAX_K}",
                self.ef.unwrap_or(0)
            )));
        }
        if self.k > MAX_K {
            return Err(Error::InvalidArgument(format!(
                "k = {} exceeds the maximum of {MAX_K}",
                self.k
            )));
        }
        Ok(())
    }
}
