//! What the collections of one open database share: its directory, options, log, manifest,
//! the registry of open collections, and the hand-off to background work.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use super::background::Background;
use super::{Collection, CollectionShared};
use crate::error::Result;
use crate::io::beacon::{Beacon, BeaconWatch};
use crate::log::recover::RecoveryReport;
use crate::log::wal::Wal;
use crate::manifest::ManifestData;
use crate::model::config::Options;

/// State shared by the database handle and every collection handle. It lives (and the
/// directory stays locked) until the last handle is dropped.
pub(crate) struct DbCore {
    pub path: PathBuf,
    pub options: Options,
    pub wal: Arc<Wal>,
    pub manifest: Mutex<ManifestData>,
    /// Per collection, the smallest LSN its memtable still needs from the log.
    pub needed: Mutex<HashMap<u64, u64>>,
    /// Every open collection by id, so that one collection's writes can seal another whose
    /// memtable pins old log files.
    pub registry: Mutex<HashMap<u64, Weak<CollectionShared>>>,
    /// Dropping this sender stops the background sync thread.
    pub _flusher: Mutex<Option<Sender<()>>>,
    /// Wakes the background compaction thread (dropping it stops the thread).
    pub compactor: Mutex<Option<Sender<()>>>,
    /// Wakes the background seal thread (dropping it stops the thread).
    pub sealer: Mutex<Option<Sender<()>>>,
    /// The pool seals and compactions build graphs on, apart from rayon's global pool that
    /// serves queries.
    pub pool: rayon::ThreadPool,
    /// The process that opened the database: a forked child must not use it.
    pub pid: u32,
    /// User handles, closing, and whether background work is running.
    pub bg: Arc<Background>,
    /// What opening found in the log and did about it.
    pub recovery: RecoveryReport,
    /// The directory lock (`None` for a read-only handle, which takes none).
    pub _lock: Option<std::fs::File>,
    /// The writer's signal to read-only handles in other processes (`None` in a reader).
    pub beacon: Option<Arc<Beacon>>,
    /// A read-only handle's way of catching up with the writer (`None` in the writer).
    pub follower: Option<Mutex<Box<dyn CatchUp>>>,
    /// A read-only handle's lock-free check that there is nothing to catch up with.
    pub watch: Option<Arc<BeaconWatch>>,
}

/// How a read-only database catches up with the writer process (implemented by the
/// database layer).
pub(crate) trait CatchUp: Send {
    /// Makes every batch the writer had made durable when this was called visible.
    fn catch_up(&mut self, core: &Arc<DbCore>) -> Result<()>;
}

impl DbCore {
    /// A segment a seal or compaction just opened: with a memory budget, its codes and graph
    /// are read in ahead of use (and locked with `lock_memory`), as opening does.
    pub(crate) fn keep_resident(&self, seg: &crate::segment::Segment) {
        if self.options.memory_budget.is_some() {
            crate::segment::keep_resident(seg, self.options.lock_memory);
        }
    }

    /// For a read-only handle: catches up with the writer. Nothing for the writer.
    pub(crate) fn catch_up(self: &Arc<Self>) -> Result<()> {
        match &self.follower {
            Some(_) if self.watch.as_ref().is_some_and(|w| w.unchanged()) => Ok(()),
            Some(f) => f.lock().catch_up(self),
            None => Ok(()),
        }
    }

    /// Fails on a read-only handle with [`Error::ReadOnly`](crate::Error::ReadOnly).
    pub(crate) fn check_writable(&self) -> Result<()> {
        if self.follower.is_some() {
            return Err(crate::error::Error::ReadOnly {
                path: self.path.clone(),
            });
        }
        Ok(())
    }

    pub(crate) fn alloc_segment_id(&self) -> u64 {
        let mut m = self.manifest.lock();
        let id = m.next_segment_id;
        m.next_segment_id += 1;
        id
    }

    pub(crate) fn set_needed(&self, collection: u64, lsn: Option<u64>) {
        let mut n = self.needed.lock();
        match lsn {
            Some(l) => {
                n.insert(collection, l);
            }
            None => {
                n.remove(&collection);
            }
        }
    }

    /// Log frames below this LSN are no longer needed by any memtable.
    pub(crate) fn min_needed(&self) -> u64 {
        let n = self.needed.lock();
        n.values()
            .copied()
            .min()
            .unwrap_or_else(|| self.wal.last_lsn() + 1)
    }

    /// Fails in a process forked from the one that opened the database: its handles share
    /// the parent's log position and buffers, so any write would corrupt the log.
    pub(crate) fn check_process(&self) -> Result<()> {
        let now = std::process::id();
        if now != self.pid {
            return Err(crate::error::Error::ForkedProcess {
                opened_by: self.pid,
                current: now,
            });
        }
        Ok(())
    }

    /// Asks the background seal thread to seal frozen memtables.
    pub(crate) fn kick_sealer(&self) {
        if let Some(tx) = &*self.sealer.lock() {
            let _ = tx.send(());
        }
    }

    /// Asks the background compaction thread, if any, to check the collections now.
    pub(crate) fn kick_compactor(&self) {
        if let Some(tx) = &*self.compactor.lock() {
            let _ = tx.send(());
        }
    }

    /// The open collections.
    pub(crate) fn open_collections(&self) -> Vec<Collection> {
        self.registry
            .lock()
            .values()
            .filter_map(Weak::upgrade)
            .map(|inner| Collection { _user: None, inner })
            .collect()
    }

    pub(crate) fn register(&self, c: &Arc<CollectionShared>) {
        self.registry.lock().insert(c.id, Arc::downgrade(c));
    }

    /// Keeps the log within `max_wal_bytes`: while it is larger, freezes the memtable of the
    /// collection that holds the oldest record still needed, so the seal thread seals it and
    /// the log can be trimmed. Called after a write, with no lock held.
    pub(crate) fn relieve_log(&self) -> Result<()> {
        // A write that started a new log file publishes it, so that losing it is detected.
        if self.wal.newest_file() > self.manifest.lock().log_file
            && self.wal.check_poisoned().is_ok()
        {
            self.update_manifest(|_| Ok(()))?;
        }
        if self.wal.disk_bytes() <= self.options.max_wal_bytes {
            return Ok(());
        }
        let oldest = {
            let n = self.needed.lock();
            n.iter().min_by_key(|(_, lsn)| **lsn).map(|(c, _)| *c)
        };
        let Some(cid) = oldest else { return Ok(()) };
        let Some(inner) = self.registry.lock().get(&cid).and_then(Weak::upgrade) else {
            return Ok(());
        };
        let c = Collection { _user: None, inner };
        c.freeze_for_log()?;
        // Far over the budget: the seal thread is behind. This writer seals what pins the
        // log itself (back-pressure on the log, as MAX_FROZEN is on memory).
        let hard = self
            .options
            .max_wal_bytes
            .saturating_add(self.options.max_wal_bytes / 2);
        if self.wal.disk_bytes() > hard {
            log::debug!(
                "{}: the log passed 1.5 × its budget; a writer seals",
                c.name()
            );
            c.seal_frozen()?;
        }
        Ok(())
    }

    /// Applies `change` to a copy of the manifest and publishes it. A failure to publish
    /// poisons the database: whether the new manifest reached the disk is then unknown.
    pub(crate) fn update_manifest(
        &self,
        change: impl FnOnce(&mut ManifestData) -> Result<()>,
    ) -> Result<()> {
        self.check_writable()?;
        let mut m = self.manifest.lock();
        let mut next = m.clone();
        change(&mut next)?;
        // Record the newest log file: from now on its loss is detected on open.
        next.log_file = next.log_file.max(self.wal.newest_file());
        if let Err(e) = next.store(&self.path) {
            self.wal.poison(format!("writing the manifest failed: {e}"));
            return Err(e);
        }
        *m = next;
        if let Some(b) = &self.beacon {
            b.manifest_stored();
        }
        Ok(())
    }
}

impl Drop for DbCore {
    fn drop(&mut self) {
        // Buffered writes reach the disk when the last handle goes — in the process that
        // opened the database only: a forked child's copy of the buffer is the parent's.
        // Not after a poisoning: the manifest on disk may then differ from ours.
        if std::process::id() == self.pid
            && self.wal.sync().is_ok()
            && self.wal.check_poisoned().is_ok()
        {
            // A clean close records where the log ends, so that a log shortened afterwards
            // is reported on open, not taken for a torn tail.
            let last = self.wal.last_lsn();
            let stale = {
                let m = self.manifest.lock();
                m.last_lsn < last || m.log_file < self.wal.newest_file()
            };
            if stale {
                let _ = self.update_manifest(|m| {
                    m.last_lsn = m.last_lsn.max(last);
                    Ok(())
                });
            }
        }
    }
}
