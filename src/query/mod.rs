//! Search requests and the top-k machinery that merges results from the memtable and the
//! segments.

mod request;
pub(crate) mod topk;

pub use request::SearchRequest;
