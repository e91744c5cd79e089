//! The database's background threads: the log sync of `Durability::Buffered`, the seal
//! thread, and the compaction thread. Each holds the database weakly (the log, for the sync
//! thread), so a closed database is released when its last handle goes, not later on one of
//! these threads; seals and compactions run on the database's background pool, never on the
//! pool that serves queries.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Weak};

use crate::collection::Collection;
use crate::collection::background::Background;
use crate::collection::core::DbCore;
use crate::log::wal::Wal;

/// The background sync thread of `Durability::Buffered`. It holds only the log, weakly: the
/// database (and its LOCK) is released the moment the last handle is dropped, never later on
/// this thread. (`DbCore::drop` syncs the log first, so a late sync here writes nothing.)
pub(super) fn spawn_flusher(
    wal: Weak<Wal>,
    stop: mpsc::Receiver<()>,
    interval: std::time::Duration,
) {
    let _ = std::thread::Builder::new()
        .name("cairn-sync".into())
        .spawn(move || {
            loop {
                match stop.recv_timeout(interval) {
                    Err(RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
                let Some(wal) = wal.upgrade() else { return };
                // A failure poisons the log; writers see it on their next call.
                let _ = wal.sync();
            }
        });
}

/// The seal thread: seals the frozen memtables of every collection, oldest first, when a
/// writer freezes one (and every 10 s). Errors are not lost: a failed seal poisons the log,
/// and writers see it.
pub(super) fn spawn_sealer(core: Weak<DbCore>, bg: Arc<Background>, wake: mpsc::Receiver<()>) {
    spawn_woken("cairn-seal", bg, wake, move || {
        if let Some(core) = core.upgrade() {
            for c in core.open_collections() {
                if let Some(Err(e)) =
                    contained(&c, "seal", || core.pool.install(|| c.seal_frozen()))
                {
                    log::error!("{}: background seal failed: {e}", c.name());
                }
            }
        }
    });
}

/// The background compaction thread. It holds the database weakly and upgrades only to
/// check or compact, so it never keeps a closed database open except to finish a
/// compaction; a compaction notices when every user handle is gone and stops early.
pub(super) fn spawn_compactor(core: Weak<DbCore>, bg: Arc<Background>, wake: mpsc::Receiver<()>) {
    spawn_woken("cairn-compact", bg, wake, move || {
        let Some(core) = core.upgrade() else { return };
        let collections = core.open_collections();
        drop(core);
        for c in collections {
            // Errors are not lost: a failed write poisons the log and the writer sees it
            // (compaction logs its errors); anything else is retried at the next check.
            let _ = contained(&c, "compaction", || c.compact_by_policy());
        }
    });
}

/// A background thread at low priority that runs `work` when woken (and every 10 s) while
/// the database is open; it ends when the database closes.
pub(super) fn spawn_woken(
    name: &str,
    bg: Arc<Background>,
    wake: mpsc::Receiver<()>,
    mut work: impl FnMut() + Send + 'static,
) {
    let _ = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            crate::io::mmap::lower_thread_priority();
            loop {
                match wake.recv_timeout(std::time::Duration::from_secs(10)) {
                    Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                }
                while wake.try_recv().is_ok() {}
                if !bg.begin() {
                    return;
                }
                work();
                // Every strong reference is gone before closing may proceed.
                bg.end();
            }
        });
}

/// Runs background `work` on collection `c`; `None` if it panicked. A panic is a bug, and
/// writers waiting for the work must not wait forever: it poisons the log, and they get the
/// error.
fn contained<R>(c: &Collection, what: &str, work: impl FnOnce() -> R) -> Option<R> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)) {
        Ok(r) => Some(r),
        Err(panic) => {
            log::error!("{}: background {what} panicked", c.name());
            c.poison(format!(
                "a {what} panicked, reopen the database: {}",
                panic_message(&panic)
            ));
            None
        }
    }
}

/// The message of a caught panic, when it has one.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}
