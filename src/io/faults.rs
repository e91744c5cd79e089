//! The I/O seam for fault injection (tests only; not a stable API). Without the
//! `fault-injection` feature, [`check`] is an empty inline function.
//!
//! Every file operation of the write path — creating, writing and fsyncing segment, tombstone,
//! manifest and log files, fsyncing directories, renaming — first calls [`check`]. Normally it
//! costs one relaxed atomic load. A test can [`arm`] it so that the n-th operation from then on
//! fails with an injected I/O error, or count the operations a step makes ([`count`]).
//!
//! It also models power loss ([`power_loss_at`]): it tracks which bytes of which files have
//! been fsynced and which new directory entries have been made durable by an fsync of their
//! directory, and at the chosen operation copies the database directory as a disk would hold
//! it after a power cut at that instant: files created since tracking began whose directory
//! was not fsynced since are missing, and every file is cut to the length it had at its last
//! fsync. (Renames and removals are treated as immediately durable: Cairn fsyncs the
//! directory right after each rename.)
//!
//! The hook is process-wide: a test that arms it must be the only one doing I/O in its
//! process (run such tests in their own test binary, in one `#[test]`).

#[cfg(feature = "fault-injection")]
mod seam;
#[cfg(feature = "fault-injection")]
pub use seam::*;

/// A kind of file operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Creating a file or directory.
    Create,
    /// Writing to a file.
    Write,
    /// fsync of a file or directory.
    Sync,
    /// Renaming a file.
    Rename,
}

/// Called before each file operation of the write path: nothing to do without the
/// `fault-injection` feature.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub(crate) fn check(_op: Op, _path: &std::path::Path) -> std::io::Result<()> {
    Ok(())
}
