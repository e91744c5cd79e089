//! What a search returns besides its hits: how it was executed.

use serde::{Deserialize, Serialize};

use crate::model::record::Hit;

/// The answer to [`Collection::query`](crate::Collection::query).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchResponse {
    /// The hits, best first.
    pub hits: Vec<Hit>,
    /// How the request was executed, when it asked ([`SearchRequest::explain`](crate::SearchRequest::explain)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explain: Option<Explain>,
}

/// How a request was executed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explain {
    /// The filter, in the text syntax.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// Fields the filter names that no live record in the collection has (a misspelling?):
    /// a condition on such a field matches nothing (and its `NOT` everything). Not an error.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown_fields: Vec<String>,
    /// The vector leg, one plan per source (sealed segments oldest first, then the memtable).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vector: Vec<SourcePlan>,
    /// The text leg.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<TextPlan>,
    /// Candidates each leg was asked for (`k` for a single-leg request).
    pub depth: usize,
    /// Whether every leg returned as many candidates as exist: `min(depth, records that
    /// match)`. The text leg is exhaustive; the vector leg falls back to an exact scan when
    /// the graph finds too few, so this is `false` only if that scan failed to finish.
    pub complete: bool,
}

/// The plan the vector leg chose for one source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourcePlan {
    /// `segment <id>` or `memtable`.
    pub source: String,
    /// Rows in the source, dead ones included.
    pub rows: usize,
    /// Live rows.
    pub live: usize,
    /// Rows the filter's indexes selected before dead rows were removed (the estimate the
    /// plan is based on is exact: filters are evaluated to bitmaps first); `live` without a
    /// filter.
    pub estimated: usize,
    /// Live rows that match the filter (`live` without a filter).
    pub matched: usize,
    /// What was done.
    pub plan: PlanKind,
    /// The candidate-list size of a graph search.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ef: Option<usize>,
    /// The graph found fewer than `min(depth, matched)` and an exact scan of the matching
    /// rows was run instead.
    pub fallback: bool,
    /// Candidates this source contributed before the merge.
    pub returned: usize,
}

/// The access path chosen for a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanKind {
    /// Nothing matches: the source was not searched.
    Skip,
    /// Every matching row was scored.
    Exact,
    /// HNSW traversal admitting only matching rows.
    Graph,
}

/// What the text leg did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextPlan {
    /// The analyzed, de-duplicated query terms.
    pub terms: Vec<String>,
    /// Collection-wide document frequency of each term (live documents).
    pub df: Vec<u64>,
    /// Live documents with text (BM25's N).
    pub documents: u64,
    /// Their average length in terms.
    pub avg_len: f64,
    /// Candidates returned.
    pub returned: usize,
}
