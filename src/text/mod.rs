//! Full-text search: analysis, an inverted index per source, and BM25 ranking.
//!
//! | file | role |
//! |---|---|
//! | `analyzer.rs` | [`TextConfig`] and [`Analyzer`]: UAX #29 words, lowercase, stop words, stemming |
//! | `index.rs` | `TextIndex`: term → (row, tf) postings and document lengths of one source |
//! | `format.rs` | the segment `text` file: `TextIndex::encode` / `decode` |

mod analyzer;
mod format;
mod index;
#[cfg(test)]
mod tests;

pub use analyzer::TextConfig;
// The rest of the interface, for the collection's integration of text search.
#[allow(unused_imports)]
pub use analyzer::{Analyzer, ENGLISH_STOP_WORDS, MAX_TERM_BYTES};
#[allow(unused_imports)]
pub(crate) use index::{Postings, TextIndex};

/// Name of the text index file inside a segment directory.
pub(crate) const TEXT_FILE: &str = "text";
