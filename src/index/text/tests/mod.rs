//! Tests of the text module that span files: the `text` file format against damage, and BM25
//! against a reference computed straight from its definition.

mod bm25;
mod format;

/// Whitespace-split terms, for tests that bypass the analyzer.
fn terms(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_owned).collect()
}
