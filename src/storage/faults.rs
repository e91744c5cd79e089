//! The I/O seam for fault injection (tests only; not a stable API).
//!
//! Every file operation of the write path — creating, writing and fsyncing segment, tombstone,
//! manifest and log files, fsyncing directories, renaming — first calls [`check`]. Normally it
//! costs one relaxed atomic load. A test can [`arm`] it so that the n-th operation from then on
//! fails with an injected I/O error, or count the operations a step makes ([`count`]).
//!
//! The hook is process-wide: a test that arms it must be the only one doing I/O in its
//! process (run such tests in their own test binary, in one `#[test]`).

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;

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

static ARMED: AtomicBool = AtomicBool::new(false);
static SEEN: AtomicU64 = AtomicU64::new(0);
static FAIL_AT: AtomicU64 = AtomicU64::new(u64::MAX);
static FAILED: Mutex<Option<(Op, String)>> = Mutex::new(None);

/// Counts operations from now on, failing none.
pub fn count() {
    arm(u64::MAX);
}

/// Fails the `n`-th operation from now on (0-based); counts every operation.
pub fn arm(n: u64) {
    SEEN.store(0, Ordering::SeqCst);
    FAIL_AT.store(n, Ordering::SeqCst);
    *FAILED.lock() = None;
    ARMED.store(true, Ordering::SeqCst);
}

/// Stops counting and failing; returns how many operations were seen since arming.
pub fn disarm() -> u64 {
    ARMED.store(false, Ordering::SeqCst);
    SEEN.load(Ordering::SeqCst)
}

/// The operation that was failed, if one was.
pub fn failed() -> Option<(Op, String)> {
    FAILED.lock().clone()
}

/// Called before each file operation of the write path.
pub(crate) fn check(op: Op, path: &Path) -> std::io::Result<()> {
    if !ARMED.load(Ordering::Relaxed) {
        return Ok(());
    }
    let n = SEEN.fetch_add(1, Ordering::SeqCst);
    if n == FAIL_AT.load(Ordering::SeqCst) {
        *FAILED.lock() = Some((op, path.display().to_string()));
        return Err(std::io::Error::other(format!(
            "injected {op:?} failure on {}",
            path.display()
        )));
    }
    Ok(())
}
