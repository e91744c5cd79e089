//! Vector indexes.

pub(crate) mod hnsw;
