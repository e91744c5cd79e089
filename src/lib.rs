//! # Cairn — an embedded vector database
//!
//! Cairn stores embeddings with their text and metadata in a directory, crash-safe, and finds
//! the nearest ones. It runs in your process: no server.
//!
//! ```
//! use cairndb::{CollectionConfig, Database, Metric, Record, SearchRequest};
//!
//! # fn main() -> cairndb::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! let db = Database::open(dir.path().join("my-db"))?;
//! let docs = db.get_or_create_collection("docs", CollectionConfig::new(3, Metric::Cosine))?;
//!
//! // A batch is written atomically and, by default, is durable when `upsert` returns.
//! docs.upsert(vec![
//!     Record::new(1, vec![1.0, 0.0, 0.0]).with_text("red").with_field("lang", "en"),
//!     Record::new(2, vec![0.0, 1.0, 0.0]).with_text("green"),
//!     Record::new(3, vec![0.9, 0.1, 0.0]).with_text("crimson"),
//! ])?;
//!
//! let hits = docs.search(&SearchRequest::new(vec![1.0, 0.05, 0.0]).k(2).with_text(true))?;
//! assert_eq!(hits[0].id, 1);
//! assert_eq!(hits[1].text.as_deref(), Some("crimson"));
//!
//! docs.delete(&[2])?;
//! assert_eq!(docs.len(), 2);
//! assert!(docs.get(2)?.is_none());
//! # Ok(()) }
//! ```
//!
//! ## Scores
//! Every score is a similarity, higher is better: cosine similarity for [`Metric::Cosine`]
//! (vectors are normalized on insert), the dot product for [`Metric::Dot`], and the negated
//! squared Euclidean distance `-‖q - x‖²` for [`Metric::L2`].
//!
//! ## Durability
//! Writes go to a write-ahead log first. Under [`Durability::Sync`] (the default) a write has
//! been fdatasync'ed when it returns; concurrent writers share one fsync. After a crash, the
//! database reopens with every acknowledged write and no partial batch. See
//! `docs/architecture.md` and `docs/file-format.md` in the repository.
#![deny(unsafe_code)]
#![warn(missing_docs)]

// Layers, lowest first; a module imports only from layers below it (`tests/layers.rs`
// checks this). `docs/architecture.md` draws them.
mod collection;
mod db;
mod error;
mod index;
mod io;
mod log;
mod manifest;
mod memtable;
mod model;
mod query;
mod segment;
mod vector;

#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing;

/// The fault-injection seam of the write path (feature `fault-injection`, for tests only).
#[cfg(feature = "fault-injection")]
#[doc(hidden)]
pub use io::faults;

pub use collection::{
    Collection, CollectionStats, CompactionReport, PayloadChange, Scan, ScanOptions, SegmentStats,
    Update,
};
pub use db::{Database, DbStats, MemoryReport, VerifyReport};
pub use error::{Error, Result};
pub use index::text;
pub use io::mmap::evict_page_cache;
pub use log::recover::RecoveryReport;
pub use model::filter;
pub use model::{
    CollectionConfig, Durability, Filter, Hit, Id, IdType, LegScore, Legs, MAX_DIM, MAX_ID_BYTES,
    Options, Payload, Quantization, Record, TextConfig, Value, validate_name,
};
pub use query::{
    Explain, Fusion, PlanKind, RerankQuery, Reranker, SearchRequest, SearchResponse, SourcePlan,
    TextPlan, TextStats, merge_hits,
};
pub use segment::ResidentBytes;
pub use vector::distance;
pub use vector::distance::Metric;
