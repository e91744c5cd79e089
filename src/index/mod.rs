//! Indexes: HNSW over vectors, payload field indexes.

pub(crate) mod fields;
pub(crate) mod hnsw;
pub(crate) mod quant;
