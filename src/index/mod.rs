//! Indexes over one source's rows (a segment or the memtable), each with its own file codec:
//!
//! | module | role |
//! |---|---|
//! | `hnsw/` | the HNSW graph: concurrent build, search, the segment `graph` file |
//! | `fields.rs` | payload field indexes (keyword, bool, numeric, exists), the `fields` file |
//! | `text/` | analyzer, postings, the `text` file, BM25 over several sources |

pub(crate) mod fields;
pub(crate) mod hnsw;
pub mod text;
