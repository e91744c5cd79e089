//! The write-ahead log: every upsert and delete batch is one checksummed frame, appended and
//! made durable (with group commit) before the batch is acknowledged, and replayed on open.
//!
//! | file | role |
//! |---|---|
//! | `wal.rs` | log files, framing, appending, group commit, rotation |
//! | `recover.rs` | reading the log back at open: replay, torn tails, damage, `accept_loss` |
//! | `tail.rs` | following the log read-only, from another process, up to the durable LSN |
//! | `batch.rs` | the bodies of upsert and delete frames |

pub(crate) mod batch;
pub(crate) mod recover;
pub(crate) mod tail;
pub(crate) mod wal;
