//! Full-text search: analysis, an inverted index per source, and BM25 ranking.
//!
//! ```text
//!  record text ──TextIndex::push_text(row, text, analyzer)──▶ memtable index
//!                (Analyzer::for_each_term → a count per distinct term; no String per token)
//!                     seal: TextIndex::extend_rows(segment rows), encode ──▶ seg-<id>/text
//!                                          open/first use: TextIndex::decode ◀── seg-<id>/text
//!  query text  ──Analyzer::terms──▶ terms ──bm25::search([Source{index, dead, allow}; …], k)
//!                                                   ──▶ best (source, row, score) first
//! ```
//!
//! | file | role |
//! |---|---|
//! | `analyzer.rs` | [`TextConfig`] and [`Analyzer`]: UAX #29 words, lowercase, stop words, stemming |
//! | `index.rs` | `TextIndex`: term → (row, tf) postings and document lengths of one source |
//! | `format.rs` | the segment `text` file: `TextIndex::encode` / `decode` |
//! | `bm25.rs` | collection-wide statistics and top-k BM25 over several sources |
//! | `live.rs` | `LiveCache`: a segment's dead-row counts for the statistics, kept between queries |
//!
//! A source's rows are its own row numbers (memtable rows, or segment rows). Liveness and
//! filters are not stored here: each search passes them per source, so deleting a record
//! never touches a text index.

mod analyzer;
pub(crate) mod bm25;
mod format;
mod index;
mod live;
#[cfg(test)]
mod tests;

pub use analyzer::TextConfig;
// The rest of the interface, for the collection's integration of text search.
pub use analyzer::{Analyzer, ENGLISH_STOP_WORDS, MAX_TERM_BYTES};
#[doc(hidden)]
pub use bm25::set_exhaustive_for_benchmarks;
pub(crate) use index::TextIndex;
pub(crate) use live::LiveCache;

/// Name of the text index file inside a segment directory.
pub(crate) const TEXT_FILE: &str = "text";
