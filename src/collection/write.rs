//! The write path: validate, encode, log, apply, wait for durability.
//!
//! ```text
//! upsert/delete ─▶ validate ─▶ encode body ─▶ writer lock ─▶ WAL append ─▶ apply to State
//!                                                              │                (memtable +
//!                                 wait_durable(lsn) ◀──────────┘ unlock          tombstones)
//! ```

use super::Collection;
use super::state::{apply_delete, apply_upsert, locate};
use crate::error::{Error, Result};
use crate::log::batch::{self, UpsertBuilder};
use crate::log::wal::{KIND_DELETE, KIND_UPSERT};
use crate::model::config::Durability;
use crate::model::record::{Record, StoredDoc};
use crate::vector::distance::{VectorProblem, prepare};

impl Collection {
    /// Checks and prepares one vector (normalized for `Cosine`).
    fn prepare_vector(&self, id: u64, v: &mut [f32]) -> Result<()> {
        let cfg = &self.inner.config;
        if v.len() != cfg.dim {
            return Err(Error::DimensionMismatch {
                id: Some(id),
                collection: self.inner.name.clone(),
                expected: cfg.dim,
                got: v.len(),
            });
        }
        prepare(cfg.metric, v).map_err(|p| match p {
            VectorProblem::NonFinite(index) => Error::NonFiniteVector { id, index },
            VectorProblem::Zero => Error::ZeroVector { id },
        })
    }

    /// Inserts or replaces records, atomically: after a crash either the whole batch is
    /// there or none of it. Within a batch, a repeated id keeps its last record.
    ///
    /// Under [`Durability::Sync`] the batch is on stable storage when this returns. Every
    /// record is checked first (dimension, finite values, non-zero under cosine); one bad
    /// record rejects the batch and nothing is written.
    pub fn upsert(&self, records: impl Into<Vec<Record>>) -> Result<()> {
        let records: Vec<Record> = records.into();
        if records.is_empty() {
            return Ok(());
        }
        let dim = self.inner.config.dim;
        let mut builder = UpsertBuilder::new(self.inner.id, dim, records.len() * (dim * 4 + 32));
        let mut v = Vec::with_capacity(dim);
        for r in &records {
            v.clear();
            v.extend_from_slice(&r.vector);
            self.prepare_vector(r.id, &mut v)?;
            let doc = StoredDoc::encode(r.text.as_deref(), &r.payload);
            builder.push(r.id, &v, &doc);
        }
        let body = builder.finish();
        let view = batch::decode_upsert(&body)
            .ok_or_else(|| Error::InvalidArgument("batch could not be encoded".into()))?;

        let lsn = {
            let mut w = self.inner.writer.lock();
            self.check_live()?;
            if self.memtable_full() {
                self.seal_locked(&mut w)?;
            }
            self.reserve_log();
            let lsn = self.inner.core.wal.append(KIND_UPSERT, &body)?;
            let mut st = self.inner.state.write();
            apply_upsert(&mut st, lsn, &view);
            self.inner
                .core
                .set_needed(self.inner.id, st.memtable.min_lsn);
            w.applied_lsn = lsn;
            let new_rows = st.memtable.reserve_graph();
            // Link the new rows into the graph with readers let back in: the graph takes
            // concurrent searches while it grows; other writers still wait for the writer lock.
            let st = parking_lot::RwLockWriteGuard::downgrade(st);
            st.memtable.index(new_rows, self.inner.config.metric)?;
            lsn
        };
        self.wait(lsn)?;
        self.relieve_log();
        Ok(())
    }

    /// Log upkeep after a write. The write itself is committed; a failed seal here is not its
    /// failure (and recurs, with its error, on the next write that needs a seal).
    fn relieve_log(&self) {
        let _ = self.inner.core.relieve_log();
    }

    /// Deletes records by id and returns how many existed. Ids that do not exist are ignored.
    /// Durable on return under [`Durability::Sync`].
    pub fn delete(&self, ids: &[u64]) -> Result<usize> {
        let lsn = {
            let mut w = self.inner.writer.lock();
            self.check_live()?;
            let existing: Vec<u64> = {
                let st = self.inner.state.read();
                let mut seen = std::collections::HashSet::new();
                ids.iter()
                    .copied()
                    .filter(|&id| seen.insert(id) && locate(&st, id).is_some())
                    .collect()
            };
            if existing.is_empty() {
                return Ok(0);
            }
            let body = batch::encode_delete(self.inner.id, &existing);
            self.reserve_log();
            let lsn = self.inner.core.wal.append(KIND_DELETE, &body)?;
            let mut st = self.inner.state.write();
            apply_delete(&mut st, lsn, &existing);
            self.inner
                .core
                .set_needed(self.inner.id, st.memtable.min_lsn);
            w.applied_lsn = lsn;
            (lsn, existing.len())
        };
        self.wait(lsn.0)?;
        self.relieve_log();
        self.inner.core.kick_compactor();
        Ok(lsn.1)
    }

    /// Before a frame is appended, makes sure the log is kept from the next LSN on: otherwise
    /// another collection's seal could trim the log between our append and our apply, and an
    /// acknowledged batch would exist nowhere. (Called with the writer lock held; a
    /// reservation without a frame after it only keeps log files a little longer.)
    fn reserve_log(&self) {
        if self.inner.state.read().memtable.min_lsn.is_none() {
            let core = &self.inner.core;
            core.set_needed(self.inner.id, Some(core.wal.last_lsn() + 1));
        }
    }

    fn wait(&self, lsn: u64) -> Result<()> {
        match self.inner.core.options.durability {
            Durability::Sync => self.inner.core.wal.wait_durable(lsn),
            _ => Ok(()),
        }
    }
}
