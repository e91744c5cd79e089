//! Everything on disk: file headers, the write-ahead log, the manifest, segments and
//! tombstones.
//!
//! ```text
//! <db>/
//!   LOCK                                  advisory lock: one open handle at a time
//!   MANIFEST                              header + JSON: collections, segments, LSNs
//!   wal/<first_lsn>.wal                   header + frames (wal.rs, batch.rs)
//!   collections/<name>/seg-<id>/          vectors, ids, payload (segment/)
//!   collections/<name>/seg-<id>.<gen>.del tombstones (tombstones.rs)
//! ```
//!
//! | file | role |
//! |---|---|
//! | `header.rs` | the 64-byte header every file starts with |
//! | `mmap.rs` | the crate's only `unsafe`: read-only maps of immutable files |
//! | `fsutil.rs` | fsync of files and directories, atomic replace |
//! | `wal.rs` | framing, group commit, replay and torn-tail truncation |
//! | `batch.rs` | encoding of upsert and delete bodies |
//! | `manifest.rs` | the manifest and the layout of paths |
//! | `segment/` | segment writer and mapped reader, lazily verified block checksums |
//! | `tombstones.rs` | deleted-row bitmaps of segments |

pub mod batch;
#[doc(hidden)]
pub mod faults;
pub(crate) mod fsutil;
pub(crate) mod header;
pub(crate) mod manifest;
pub(crate) mod mmap;
pub(crate) mod segment;
pub(crate) mod tombstones;
pub mod wal;
