//! Bytes and files: the pieces every file format of Cairn is built from.
//!
//! | file | role |
//! |---|---|
//! | `header.rs` | the 64-byte header every file starts with (magic, kind, version, checksums) |
//! | `beacon.rs` | `BEACON`: the writer's durable LSN and manifest generation, for readers |
//! | `blocks.rs` | lazily verified crc32c per block of a large mapped body |
//! | `mmap.rs` | the crate's only `unsafe`: read-only maps of immutable files, prefetch hints |
//! | `fsutil.rs` | writing new files, fsync of files and directories, atomic replace |
//! | `faults.rs` | the I/O seam every write-path file operation passes (fault injection in tests) |

pub(crate) mod beacon;
pub(crate) mod blocks;
#[cfg(feature = "fault-injection")]
pub mod faults;
#[cfg(not(feature = "fault-injection"))]
pub(crate) mod faults;
pub(crate) mod fsutil;
pub(crate) mod header;
pub(crate) mod mmap;
