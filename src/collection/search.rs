//! Searches: the request is checked, the query vector prepared, and the query engine runs
//! over the collection's state.

use super::Collection;
use crate::error::{Error, Result};
use crate::model::record::Hit;
use crate::query::engine;
use crate::query::{SearchRequest, SearchResponse, TextStats};
use crate::vector::distance::prepare;

impl Collection {
    /// The `k` records that best answer the request, best first. Ties in score are broken by
    /// lower id. Shorthand for [`query`](Self::query)`(req)?.hits`.
    ///
    /// Errors: the query's dimension differs from the collection's, it holds NaN or an
    /// infinity, (under cosine) it is all zeros or (under dot and l2) its norm exceeds
    /// [`Metric::MAX_NORM`](crate::Metric::MAX_NORM); the filter is invalid; a checksum
    /// fails on a segment read.
    pub fn search(&self, req: &SearchRequest) -> Result<Vec<Hit>> {
        Ok(self.query(req)?.hits)
    }

    /// Runs a request: vector, text or hybrid, with an optional filter, fusion and
    /// re-ranking; returns the hits and, if asked, how they were found.
    pub fn query(&self, req: &SearchRequest) -> Result<SearchResponse> {
        self.check_live()?;
        req.validate()?;
        let cfg = &self.inner.config;
        let q = match &req.vector {
            Some(v) => {
                if v.len() != cfg.dim {
                    return Err(Error::DimensionMismatch {
                        id: None,
                        collection: self.inner.name.clone(),
                        expected: cfg.dim,
                        got: v.len(),
                    });
                }
                let mut q = v.clone();
                prepare(cfg.metric, &mut q).map_err(|p| p.error(None))?;
                Some(q)
            }
            None => None,
        };
        // The current version; no collection lock is held from here on, whatever the request
        // does (a re-ranker may call back into this collection, or take seconds).
        let v = self.inner.version();
        engine::run(&self.view(&v), req, q.as_deref())
    }

    /// The statistics BM25 scores `query` with in this collection, over its current version:
    /// live documents with text, their total length, and the df of each distinct analyzed
    /// term of the query. For scatter-gather over shards: add up every shard's
    /// ([`TextStats::merge`]) and search each with
    /// [`SearchRequest::text_stats`](crate::SearchRequest::text_stats).
    ///
    /// Writes between this call and the search are not reflected in the statistics (each
    /// call sees one version).
    pub fn text_stats(&self, query: &str) -> Result<TextStats> {
        self.check_live()?;
        let v = self.inner.version();
        crate::query::text::text_stats(&self.view(&v), query)
    }
}
