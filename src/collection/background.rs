//! Background work and closing: user handles are counted so that dropping the last one stops
//! background work and releases the database before the drop returns.
//!
//! The compaction thread holds the database only weakly. While it works it is *busy* and
//! holds strong references; when the last user handle ([`Database`](crate::Database) or
//! [`Collection`](crate::Collection)) is dropped, the database is *closing*: background work
//! gives up at its next check (between the steps of a compaction, and between node inserts of
//! its graph build), drops its references, and only then does the handle's drop return — so
//! the directory lock is released and the database can be reopened at once.

use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

#[derive(Default)]
struct State {
    /// User handles alive.
    handles: usize,
    /// The last user handle was dropped: no new background work starts.
    closing: bool,
    /// Background tasks holding strong references to the database.
    busy: usize,
}

/// Shared between the database, its user handles and its background threads.
pub(crate) struct Background {
    state: Mutex<State>,
    idle: Condvar,
    /// The process that opened the database.
    pid: u32,
}

impl Default for Background {
    fn default() -> Self {
        Background {
            state: Mutex::default(),
            idle: Condvar::new(),
            pid: std::process::id(),
        }
    }
}

impl Background {
    /// Whether the last user handle is gone.
    pub(crate) fn closing(&self) -> bool {
        self.state.lock().closing
    }

    /// Marks background work as started; `false` when the database is closing. Several
    /// background threads may be busy at once.
    pub(crate) fn begin(&self) -> bool {
        let mut s = self.state.lock();
        if s.closing {
            return false;
        }
        s.busy += 1;
        true
    }

    /// Marks one background task as done (every strong reference it held already dropped).
    pub(crate) fn end(&self) {
        self.state.lock().busy -= 1;
        self.idle.notify_all();
    }
}

/// Counts one user handle; the last one to drop closes the database.
pub(crate) struct UserGuard {
    bg: Arc<Background>,
}

impl UserGuard {
    pub(crate) fn new(bg: &Arc<Background>) -> Self {
        bg.state.lock().handles += 1;
        UserGuard { bg: Arc::clone(bg) }
    }
}

impl Clone for UserGuard {
    fn clone(&self) -> Self {
        UserGuard::new(&self.bg)
    }
}

impl Drop for UserGuard {
    fn drop(&mut self) {
        // In a forked child the background threads do not exist, and a thread of the parent
        // may have held this lock at the fork: touch nothing (the parent's state is not ours).
        if std::process::id() != self.bg.pid {
            return;
        }
        let mut s = self.bg.state.lock();
        s.handles -= 1;
        if s.handles == 0 {
            s.closing = true;
            while s.busy > 0 {
                self.bg.idle.wait(&mut s);
            }
        }
    }
}
