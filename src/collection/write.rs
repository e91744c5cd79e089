//! The write path, a commit pipeline: a batch is visible only once its log frame is durable
//! (under `Durability::Sync`; once it is in the log buffer under `Buffered`), and a batch
//! whose write fails is never visible.
//!
//! ```text
//!  validate, encode ─▶ writer lock: [freeze a full memtable] log append (LSN) + stage rows
//!                       (appended, unpublished) + queue the LSN ─▶ unlock
//!  ─▶ link the rows into the memtable graph (searches go on; other writers too)
//!  ─▶ wait until the frame is durable (group commit)
//!  ─▶ commit in LSN order: the next version shows the rows and kills older versions of
//!     their ids ─▶ return
//! ```
//!
//! Any failure after a frame was appended (log write or fsync) poisons the database: the
//! frame may or may not be on disk, so nothing more is written until it is reopened.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use parking_lot::MutexGuard;

use super::Collection;
use crate::error::{Error, Result};
use crate::log::batch::{self, UpsertBuilder};
use crate::log::wal::{KIND_DELETE, KIND_UPSERT};
use crate::memtable::Memtable;
use crate::model::config::Durability;
use crate::model::id::Id;
use crate::model::record::{Record, StoredDoc};
use crate::query::source::Source;
use crate::vector::distance::prepare;

impl Collection {
    /// Checks and prepares one vector (normalized for `Cosine`).
    pub(super) fn prepare_vector(&self, id: &Id, v: &mut [f32]) -> Result<()> {
        let cfg = &self.inner.config;
        if v.len() != cfg.dim {
            return Err(Error::DimensionMismatch {
                id: Some(id.clone()),
                collection: self.inner.name.clone(),
                expected: cfg.dim,
                got: v.len(),
            });
        }
        prepare(cfg.metric, v).map_err(|p| p.error(Some(id.clone())))
    }

    /// Inserts or replaces records, atomically: after a crash either the whole batch is
    /// there or none of it. Within a batch, a repeated id keeps its last record.
    ///
    /// Under [`Durability::Sync`] the batch is on stable storage when this returns, and
    /// searches see it from then on (never before). Every record is checked first
    /// (dimension, finite values, not the zero vector under cosine, a norm within
    /// [`Metric::MAX_NORM`](crate::Metric::MAX_NORM) under dot and l2, an id of the
    /// collection's [`IdType`](crate::IdType)); one bad record rejects the batch and nothing
    /// is written.
    ///
    /// A string id whose 64-bit key equals another stored (or in-flight, or in this batch)
    /// string id's is refused with [`Error::IdCollision`] (see [`Id`]).
    pub fn upsert(&self, records: impl Into<Vec<Record>>) -> Result<()> {
        let records: Vec<Record> = records.into();
        self.inner.core.check_writable()?;
        self.check_live()?;
        if records.is_empty() {
            return Ok(());
        }
        let body = self.encode_upsert(&records, false)?;
        let str_ids = self.str_ids(&records)?;
        drop(records);
        let w = self.inner.writer.lock();
        self.check_live()?;
        if let Some(ids) = str_ids {
            self.check_collisions(&ids)?;
        }
        self.write_upsert(w, &body)
    }

    /// For a collection of string ids: each record's (key, id), after refusing two different
    /// strings with one key in the batch. `None` for integer ids.
    pub(super) fn str_ids(&self, records: &[Record]) -> Result<Option<HashMap<u64, String>>> {
        if self.inner.config.id_type.is_int_ref() {
            return Ok(None);
        }
        let mut ids: HashMap<u64, String> = HashMap::with_capacity(records.len());
        for r in records {
            let Id::Str(s) = &r.id else { continue };
            match ids.entry(r.id.key()) {
                Entry::Occupied(o) if o.get() != s => {
                    return Err(Error::IdCollision {
                        id: s.clone(),
                        other: o.get().clone(),
                    });
                }
                Entry::Occupied(_) => {}
                Entry::Vacant(v) => {
                    v.insert(s.clone());
                }
            }
        }
        Ok(Some(ids))
    }

    /// With the writer lock held: refuses the batch if a key of `ids` belongs to another
    /// string, live in the current version or staged by a batch still on its way.
    pub(super) fn check_collisions(&self, ids: &HashMap<u64, String>) -> Result<()> {
        let (v, located): (_, Vec<_>) = {
            let live = self.inner.live.read();
            let mut located = Vec::new();
            for (&k, s) in ids {
                if let Some(l) = live.locate(k)? {
                    located.push((l, s));
                }
            }
            (Arc::clone(&live.version), located)
        };
        for (loc, s) in located {
            let stored = super::stored_id(&v, loc)?;
            if stored != *s {
                return Err(Error::IdCollision {
                    id: s.clone(),
                    other: stored,
                });
            }
        }
        // Rows staged (under this lock, which we hold) but not yet committed in `v`.
        for m in &v.memtables {
            for row in m.rows..m.staged() as u32 {
                let Some(s) = ids.get(&m.mt.id_at(row as usize)) else {
                    continue;
                };
                let stored = m.doc_id(row)?;
                if stored != *s {
                    return Err(Error::IdCollision {
                        id: s.clone(),
                        other: stored,
                    });
                }
            }
        }
        Ok(())
    }

    /// The log frame body of an upsert of `records`, each vector checked and prepared —
    /// unless `prepared` (vectors read back from the collection, or prepared by the caller).
    pub(super) fn encode_upsert(&self, records: &[Record], prepared: bool) -> Result<Vec<u8>> {
        let dim = self.inner.config.dim;
        // Room for the vectors and the texts, so that a large text is copied once.
        let text_bytes: usize = records
            .iter()
            .filter_map(|r| r.text.as_ref())
            .map(String::len)
            .sum();
        let capacity = records.len() * (dim * 4 + 32) + text_bytes;
        let mut builder = UpsertBuilder::new(self.inner.id, dim, capacity);
        let mut v = Vec::with_capacity(dim);
        for r in records {
            let key = self.key_of(&r.id)?;
            v.clear();
            v.extend_from_slice(&r.vector);
            if !prepared {
                self.prepare_vector(&r.id, &mut v)?;
            }
            let doc = StoredDoc::encode(r.id.as_str(), r.text.as_deref(), &r.payload).map_err(
                |e| match e {
                    Error::InvalidArgument(m) => {
                        Error::InvalidArgument(format!("record {}: {m}", r.id))
                    }
                    e => e,
                },
            )?;
            builder.push(key, &v, &doc);
        }
        Ok(builder.finish())
    }

    /// Logs, stages and commits an encoded upsert; `w` is the writer lock, taken by the
    /// caller after its checks (released once the batch is staged).
    pub(super) fn write_upsert(&self, w: MutexGuard<'_, ()>, body: &[u8]) -> Result<()> {
        let view = batch::decode_upsert(body)
            .ok_or_else(|| Error::InvalidArgument("batch could not be encoded".into()))?;
        let ids: Vec<u64> = view.rows.iter().map(|r| r.0).collect();
        let doc_bytes: usize = view.rows.iter().map(|r| r.2.len()).sum();

        let (lsn, mt, rows) = {
            let mt = self.room_for(view.rows.len(), doc_bytes)?;
            self.reserve_log(&mt);
            let lsn = self.inner.core.wal.append(KIND_UPSERT, body)?;
            let Some(rows) = mt.stage(lsn, &view.rows) else {
                // `room_for` made room under this lock, so this cannot happen.
                let e = "a memtable had no room for a batch it was sized for";
                self.inner.core.wal.poison(e.into());
                return Err(Error::InvalidArgument(e.into()));
            };
            self.queue(lsn);
            (lsn, mt, rows)
        };
        drop(w);
        if let Err(e) = mt.link(rows.clone(), self.inner.config.metric) {
            self.inner.core.wal.poison(format!(
                "linking a batch into the memtable graph failed: {e}"
            ));
            self.dequeue(lsn);
            return Err(e);
        }
        let applied = self.commit(lsn, |live| live.commit_upsert(&mt, &ids, rows, true))?;
        self.applied(applied)?;
        self.after_write();
        Ok(())
    }

    /// Deletes records by id and returns how many existed. Ids that do not exist are ignored.
    /// Durable on return under [`Durability::Sync`], and visible from then on. Errors: an id
    /// of the other kind than the collection's [`IdType`](crate::IdType).
    pub fn delete<I: Into<Id> + Clone>(&self, ids: &[I]) -> Result<usize> {
        self.inner.core.check_writable()?;
        self.check_live()?;
        let ids: Vec<Id> = ids.iter().cloned().map(Into::into).collect();
        let keys = ids
            .iter()
            .map(|id| self.key_of(id))
            .collect::<Result<Vec<u64>>>()?;
        let w = self.inner.writer.lock();
        self.check_live()?;
        if self.inner.config.id_type.is_int_ref() {
            return self.write_delete(w, &keys);
        }
        // A key names this string's record only if that is the string stored under it: wait
        // for the batches on their way, then keep the keys whose stored string matches.
        self.wait_pending()?;
        let mut mine = Vec::with_capacity(keys.len());
        for id in &ids {
            if self.locate(id)?.1.is_some() {
                mine.push(id.key());
            }
        }
        self.write_delete(w, &mine)
    }

    /// Logs and commits a delete of `ids`; `w` is the writer lock (released once logged).
    pub(super) fn write_delete(&self, w: MutexGuard<'_, ()>, ids: &[u64]) -> Result<usize> {
        // Nothing to log when no id exists now and no batch is on its way.
        if self.inner.commits.lock().pending.is_empty() {
            let live = self.inner.live.read();
            let mut any = false;
            for &id in ids {
                if live.locate(id)?.is_some() {
                    any = true;
                    break;
                }
            }
            if !any {
                return Ok(0);
            }
        }
        let mt = self.inner.version().active().mt.clone();
        let body = batch::encode_delete(self.inner.id, ids);
        self.reserve_log(&mt);
        let lsn = self.inner.core.wal.append(KIND_DELETE, &body)?;
        // The delete lives in the log until this memtable's seal persists the tombstones.
        mt.note_lsn(lsn);
        self.queue(lsn);
        drop(w);
        let n = self.commit(lsn, |live| live.commit_delete(ids))?;
        let n = self.applied(n)?;
        self.after_write();
        self.inner.core.kick_compactor();
        Ok(n)
    }

    /// The outcome of applying a logged batch. Applying fails only when a segment's ids block
    /// that a lookup reads fails its check: the batch is in the log but not visible, so the
    /// database is poisoned (no more writes until it is reopened, when the log replays the
    /// batch — against the same damaged segment, which then fails the open with the same
    /// error).
    fn applied<R>(&self, r: Result<R>) -> Result<R> {
        r.inspect_err(|e| {
            self.inner
                .core
                .wal
                .poison(format!("a logged batch could not be applied: {e}"));
        })
    }

    /// With the writer lock held: waits until every batch logged before has committed, so
    /// that the current version holds every earlier write (a read-modify-write then sees
    /// them all, and no later write can come between).
    pub(super) fn wait_pending(&self) -> Result<()> {
        let mut c = self.inner.commits.lock();
        while !c.pending.is_empty() {
            self.inner.core.wal.check_poisoned()?;
            self.inner
                .progress
                .wait_for(&mut c, std::time::Duration::from_millis(100));
        }
        Ok(())
    }

    /// Queues a logged batch for its commit (with the writer lock held: LSN order).
    fn queue(&self, lsn: u64) {
        self.inner.commits.lock().pending.push_back(lsn);
        self.set_needed();
    }

    /// Takes a batch that will not commit off the queue.
    fn dequeue(&self, lsn: u64) {
        let mut c = self.inner.commits.lock();
        c.pending.retain(|&l| l != lsn);
        self.inner.progress.notify_all();
    }

    /// Waits until `lsn` is durable (in the chosen mode) and every earlier batch of this
    /// collection has committed, then commits it with `apply`: the next version is
    /// published. A failure (the log is then poisoned) leaves the batch invisible.
    fn commit<R>(&self, lsn: u64, apply: impl FnOnce(&mut super::state::Live) -> R) -> Result<R> {
        let core = &self.inner.core;
        let durable = match core.options.durability {
            Durability::Sync => core.wal.wait_durable(lsn),
            _ => Ok(()),
        };
        if let Err(e) = durable {
            self.dequeue(lsn);
            return Err(e);
        }
        let mut c = self.inner.commits.lock();
        while c.pending.front() != Some(&lsn) {
            if let Err(e) = core.wal.check_poisoned() {
                c.pending.retain(|&l| l != lsn);
                self.inner.progress.notify_all();
                return Err(e);
            }
            self.inner
                .progress
                .wait_for(&mut c, std::time::Duration::from_millis(100));
        }
        let r = self.inner.update(apply);
        c.pending.pop_front();
        c.committed = lsn;
        self.inner.progress.notify_all();
        Ok(r)
    }

    /// The active memtable, once it has room for a batch: a full one is frozen first (and
    /// sealed in the background) and replaced by a new one sized for at least the batch.
    /// With the writer lock held.
    fn room_for(&self, rows: usize, doc_bytes: usize) -> Result<Arc<Memtable>> {
        let active = self.inner.version().active().mt.clone();
        let o = &self.inner.core.options;
        let full = active.staged() >= o.memtable_max_rows || active.bytes() >= o.memtable_max_bytes;
        if !full && active.fits(rows, doc_bytes) {
            return Ok(active);
        }
        if active.staged() == 0 {
            // Empty but too small for this batch: replace it.
            let mt = Arc::new(self.new_memtable(rows, doc_bytes));
            self.inner
                .update(|live| live.replace_empty_active(Arc::clone(&mt)));
            return Ok(mt);
        }
        self.freeze(rows, doc_bytes)
    }

    /// Before a frame is appended, makes sure the log is kept from the next LSN on: otherwise
    /// another collection's seal could trim the log between our append and our staging, and
    /// an acknowledged batch would exist nowhere. (A reservation without a frame after it
    /// only keeps log files a little longer.)
    fn reserve_log(&self, active: &Memtable) {
        if active.min_lsn().is_none() {
            let core = &self.inner.core;
            let min = self.min_needed().unwrap_or(u64::MAX);
            core.set_needed(self.inner.id, Some(min.min(core.wal.last_lsn() + 1)));
        }
    }

    /// The smallest LSN this collection's memtables still need from the log.
    pub(crate) fn min_needed(&self) -> Option<u64> {
        self.inner
            .version()
            .memtables
            .iter()
            .filter_map(|m| m.min_lsn())
            .min()
    }

    /// Publishes [`min_needed`](Self::min_needed) for log trimming.
    pub(crate) fn set_needed(&self) {
        self.inner.core.set_needed(self.inner.id, self.min_needed());
    }

    /// Log upkeep after a write: a log over its budget gets the collection that pins its
    /// oldest file frozen for sealing. The write itself is committed; a failure here recurs,
    /// with its error, on the next write.
    fn after_write(&self) {
        self.set_needed();
        let _ = self.inner.core.relieve_log();
    }
}
