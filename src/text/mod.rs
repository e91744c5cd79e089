//! Full-text search: analysis, an inverted index per source, and BM25 ranking.
//!
//! | file | role |
//! |---|---|
//! | `analyzer.rs` | [`TextConfig`] and [`Analyzer`]: UAX #29 words, lowercase, stop words, stemming |

mod analyzer;

pub use analyzer::TextConfig;
// The rest of the interface, for the collection's integration of text search.
#[allow(unused_imports)]
pub use analyzer::{Analyzer, ENGLISH_STOP_WORDS, MAX_TERM_BYTES};
