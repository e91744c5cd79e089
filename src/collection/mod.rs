//! Collections: the write path (log, apply, seal) and the read path (get, search).
//!
//! ```text
//! upsert/delete ─▶ validate ─▶ encode body ─▶ writer lock ─▶ WAL append ─▶ apply to State
//!                                                              │                (memtable +
//!                                 wait_durable(lsn) ◀──────────┘ unlock          tombstones)
//! seal (memtable full, flush): write segment + tombstones ─▶ rotate WAL ─▶ manifest ─▶ swap
//! search/get: read lock on State ─▶ memtable + every segment ─▶ merged top-k
//! ```
//!
//! Concurrency: one writer at a time per collection (the writer mutex, held from log append
//! to apply, so rows are applied in LSN order); readers share a read lock on the state and are
//! held back only while a batch is applied or a sealed segment is swapped in — never while
//! segment files are written or fsynced. A write is visible to searches once applied, which
//! can be a moment before its fsync completes; it is acknowledged (the call returns) after.

mod compact;
mod memtable;
mod search;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::{Mutex, RwLock};
use roaring::RoaringBitmap;
use serde::Serialize;

pub use self::compact::CompactionReport;
pub(crate) use self::memtable::Memtable;
use crate::config::{CollectionConfig, Durability};
use crate::db::DbCore;
use crate::distance::{Metric, VectorProblem, prepare};
use crate::error::{Error, Result};
use crate::index::hnsw::graph::MemGraph;
use crate::index::hnsw::layout::bfs_order;
use crate::index::hnsw::{FlatVectors, build_graph};
use crate::record::{Record, StoredDoc};
use crate::storage::batch::{self, UpsertBuilder, UpsertView};
use crate::storage::manifest::{SegmentEntry, TombstoneRef, segment_dir_name, tombstone_file_name};
use crate::storage::segment::{SealRow, Segment, write_segment};
use crate::storage::wal::{KIND_DELETE, KIND_UPSERT};
use crate::storage::{fsutil, tombstones};

/// A sealed segment and its deleted rows.
pub(crate) struct SegmentSlot {
    pub seg: Arc<Segment>,
    pub deleted: RoaringBitmap,
    /// Generation of the tombstone file on disk (0: none).
    pub generation: u64,
    /// `deleted` differs from the tombstone file on disk.
    pub dirty: bool,
}

impl SegmentSlot {
    pub(crate) fn new(seg: Arc<Segment>, deleted: RoaringBitmap, generation: u64) -> Self {
        SegmentSlot {
            seg,
            deleted,
            generation,
            dirty: false,
        }
    }

    pub(crate) fn live(&self) -> usize {
        self.seg.rows - self.deleted.len() as usize
    }
}

/// What a search sees: segments (oldest first) and the memtable.
pub(crate) struct State {
    pub segments: Vec<SegmentSlot>,
    pub memtable: Memtable,
}

pub(crate) struct WriterState {
    /// LSN of the newest batch applied to this collection.
    pub applied_lsn: u64,
}

pub(crate) struct CollectionShared {
    pub core: Arc<DbCore>,
    pub id: u64,
    pub name: String,
    pub config: CollectionConfig,
    pub dir: PathBuf,
    pub writer: Mutex<WriterState>,
    pub state: RwLock<State>,
    pub dropped: AtomicBool,
    /// Held by a running compaction: one at a time per collection.
    pub compaction: Mutex<()>,
    /// Being dropped: a running compaction gives up.
    pub dropping: AtomicBool,
}

/// A handle to one collection. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct Collection {
    /// Counts this handle as a user's (`None` for the database's own short-lived handles).
    /// Declared first: it is dropped first, so closing waits for background work before
    /// `inner` lets go of the database.
    pub(crate) _user: Option<crate::background::UserGuard>,
    pub(crate) inner: Arc<CollectionShared>,
}

impl std::fmt::Debug for Collection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collection")
            .field("name", &self.inner.name)
            .field("config", &self.inner.config)
            .finish()
    }
}

/// Counts and sizes of a collection.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CollectionStats {
    /// Collection name.
    pub name: String,
    /// Vector dimension.
    pub dim: usize,
    /// Metric.
    pub metric: Metric,
    /// Live records.
    pub records: usize,
    /// Live rows in the memtable.
    pub memtable_rows: usize,
    /// Approximate heap bytes of the memtable: vectors, documents, graph links, field and
    /// text indexes. Reaching `Options::memtable_max_bytes` seals it.
    pub memtable_bytes: usize,
    /// Sealed segments, oldest first.
    pub segments: Vec<SegmentStats>,
}

/// Counts and size of one sealed segment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentStats {
    /// Segment id.
    pub id: u64,
    /// Rows written.
    pub rows: usize,
    /// Rows deleted since.
    pub deleted: usize,
    /// Bytes of its files.
    pub bytes: u64,
    /// Bytes of its HNSW graph file (part of `bytes`).
    pub graph_bytes: u64,
    /// Bytes memory-mapped (vectors, ids, payload, graph): paged in by the OS as searches
    /// touch them, and shared with the page cache.
    pub mapped_bytes: u64,
    /// Heap bytes of its field and text indexes, once a filtered or text search has decoded
    /// them (0 before).
    pub index_heap_bytes: u64,
}

impl Collection {
    /// The collection's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The collection's configuration.
    pub fn config(&self) -> &CollectionConfig {
        &self.inner.config
    }

    fn check_live(&self) -> Result<()> {
        if self.inner.dropped.load(Ordering::Acquire) {
            return Err(Error::CollectionDropped {
                name: self.inner.name.clone(),
            });
        }
        Ok(())
    }

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

    /// The record with this id, if it exists. Under `Cosine` the vector is the stored,
    /// normalized one.
    pub fn get(&self, id: u64) -> Result<Option<Record>> {
        self.check_live()?;
        let st = self.inner.state.read();
        let Some(loc) = locate(&st, id) else {
            return Ok(None);
        };
        let (vector, doc) = match loc {
            Located::Memtable(row) => {
                let doc = StoredDoc::decode(st.memtable.doc(row)).ok_or_else(|| {
                    Error::InvalidArgument(format!("record {id} has an undecodable payload"))
                })?;
                (st.memtable.vector(row).to_vec(), doc)
            }
            Located::Segment(s, row) => {
                let seg = &st.segments[s].seg;
                (seg.vectors(row, row + 1)?.to_vec(), seg.doc(row)?)
            }
        };
        Ok(Some(Record {
            id,
            vector,
            text: doc.0,
            payload: doc.1,
        }))
    }

    /// Number of live records.
    pub fn len(&self) -> usize {
        let st = self.inner.state.read();
        st.memtable.live_count() + st.segments.iter().map(SegmentSlot::live).sum::<usize>()
    }

    /// Whether the collection holds no records.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Seals the memtable into a segment and makes every write so far durable, whatever the
    /// durability setting.
    pub fn flush(&self) -> Result<()> {
        let mut w = self.inner.writer.lock();
        self.check_live()?;
        self.seal_locked(&mut w)?;
        drop(w);
        self.inner.core.wal.sync()
    }

    /// Builds now what the first searches would otherwise build in the background: the int8
    /// copy of each segment's vectors that graph walks score with (cosine and dot metrics).
    /// Until it exists, walks score the f32 vectors, which is slower but as accurate. Call it
    /// after opening a large collection when the first searches must be at full speed; it
    /// returns once every segment's copy is built.
    pub fn warm_up(&self) -> Result<()> {
        self.check_live()?;
        if self.inner.config.metric == Metric::L2 {
            return Ok(());
        }
        let segs: Vec<Arc<Segment>> = {
            let st = self.inner.state.read();
            st.segments.iter().map(|s| Arc::clone(&s.seg)).collect()
        };
        rayon::iter::ParallelIterator::for_each(
            rayon::iter::IntoParallelRefIterator::par_iter(&segs),
            |s| s.build_quantized(),
        );
        Ok(())
    }

    /// Counts and sizes.
    pub fn stats(&self) -> CollectionStats {
        let st = self.inner.state.read();
        CollectionStats {
            name: self.inner.name.clone(),
            dim: self.inner.config.dim,
            metric: self.inner.config.metric,
            records: st.memtable.live_count()
                + st.segments.iter().map(SegmentSlot::live).sum::<usize>(),
            memtable_rows: st.memtable.live_count(),
            memtable_bytes: st.memtable.bytes(),
            segments: st
                .segments
                .iter()
                .map(|s| SegmentStats {
                    id: s.seg.id,
                    rows: s.seg.rows,
                    deleted: s.deleted.len() as usize,
                    bytes: s.seg.disk_bytes(),
                    graph_bytes: s.seg.graph_bytes(),
                    mapped_bytes: s.seg.mapped_bytes(),
                    index_heap_bytes: s.seg.index_heap_bytes(),
                })
                .collect(),
        }
    }

    fn memtable_full(&self) -> bool {
        let st = self.inner.state.read();
        let o = &self.inner.core.options;
        st.memtable.rows() >= o.memtable_max_rows || st.memtable.bytes() >= o.memtable_max_bytes
    }

    /// Writes the memtable's rows and graph as segment `id` in `dir`. Rows that died in the
    /// memtable stay in the segment (the graph needs its node numbering) and become its first
    /// tombstones — unless they are most of it, in which case the live rows get a fresh graph.
    fn write_memtable(&self, mt: &Memtable, dir: &std::path::Path, id: u64) -> Result<Sealed> {
        let cfg = &self.inner.config;
        let dead_rows = mt.rows() - mt.live_count();
        let (rows, rebuilt): (Vec<SealRow<'_>>, Option<MemGraph>) = if dead_rows * 2 > mt.rows() {
            let rows: Vec<SealRow<'_>> = mt
                .live_rows()
                .map(|r| SealRow {
                    id: mt.id_at(r),
                    vector: mt.vector(r),
                    doc: mt.doc(r),
                    live: true,
                })
                .collect();
            let flat =
                FlatVectors::gather(cfg.dim, rows.iter().map(|r| r.vector)).with_codes(cfg.metric);
            let graph = build_graph(cfg.hnsw_params(), &flat, rows.len(), cfg.metric)?;
            (rows, Some(graph))
        } else {
            mt.graph
                .repair(&mt.flat, cfg.metric, |r| mt.is_live(r as usize))?;
            let rows = (0..mt.rows())
                .map(|r| SealRow {
                    id: mt.id_at(r),
                    vector: mt.vector(r),
                    doc: mt.doc(r),
                    live: mt.is_live(r),
                })
                .collect();
            (rows, None)
        };
        // Rows go to disk in breadth-first order of the graph, so that the neighbours a
        // search visits lie close together (fewer pages and TLB misses per query).
        let graph = rebuilt.as_ref().unwrap_or(&mt.graph);
        let order = bfs_order(graph);
        let mut slots: Vec<Option<SealRow<'_>>> = rows.into_iter().map(Some).collect();
        let rows: Vec<SealRow<'_>> = order
            .iter()
            .filter_map(|&old| slots[old as usize].take())
            .collect();
        debug_assert_eq!(rows.len(), order.len());
        write_segment(dir, id, cfg.dim, &rows, graph, &order, mt.analyzer())?;
        let dead: RoaringBitmap = rows
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.live)
            .map(|(i, _)| i as u32)
            .collect();
        if !dead.is_empty() {
            let path = self.inner.dir.join(tombstone_file_name(id, 1));
            let _ = std::fs::remove_file(&path);
            tombstones::write(&path, id, &dead)?;
            fsutil::sync_dir(&self.inner.dir)?;
        }
        Ok(Sealed {
            rows: rows.len() as u64,
            dead,
        })
    }

    /// Writes the memtable as a new segment and changed tombstones as new files, publishes
    /// them in the manifest, and swaps them in. The writer lock is held (no concurrent
    /// writes); readers continue until the brief swap.
    pub(crate) fn seal_locked(&self, w: &mut WriterState) -> Result<()> {
        let inner = &*self.inner;
        let core = &inner.core;
        core.wal.check_poisoned()?;
        let dim = inner.config.dim;

        // 1. Write the new files. Writers are excluded, so the state cannot change under us.
        let (new_seg, new_tombs) = {
            let st = inner.state.read();
            let dirty: Vec<usize> = (0..st.segments.len())
                .filter(|&i| st.segments[i].dirty)
                .collect();
            if st.memtable.rows() == 0 && dirty.is_empty() {
                return Ok(());
            }
            let write = || -> Result<_> {
                let mut new_seg = None;
                if st.memtable.live_count() > 0 {
                    let id = core.alloc_segment_id();
                    let dir = inner.dir.join(segment_dir_name(id));
                    std::fs::create_dir_all(&inner.dir).map_err(|e| Error::io(&inner.dir, e))?;
                    let sealed = self.write_memtable(&st.memtable, &dir, id)?;
                    new_seg = Some((id, dir, sealed));
                }
                let mut new_tombs = Vec::new();
                for &i in &dirty {
                    let slot = &st.segments[i];
                    let generation = slot.generation + 1;
                    let path = inner.dir.join(tombstone_file_name(slot.seg.id, generation));
                    let _ = std::fs::remove_file(&path);
                    tombstones::write(&path, slot.seg.id, &slot.deleted)?;
                    new_tombs.push((i, slot.seg.id, generation, slot.deleted.len()));
                }
                if !new_tombs.is_empty() {
                    fsutil::sync_dir(&inner.dir)?;
                }
                Ok((new_seg, new_tombs))
            };
            // After a failed write or fsync the state of the page cache is unknown: stop
            // writing until the database is reopened (the log still holds every row).
            match write() {
                Ok(v) => v,
                Err(e) => {
                    core.wal.poison(format!(
                        "sealing a memtable failed, reopen the database: {e}"
                    ));
                    return Err(e);
                }
            }
        };

        // 2. Every logged frame so far becomes durable and the log moves to a new file.
        let first_new_lsn = core.wal.rotate()?;

        // 3. Publish.
        core.update_manifest(|m| {
            m.last_lsn = first_new_lsn - 1;
            let entry = m
                .collection_mut(inner.id)
                .ok_or_else(|| Error::CollectionDropped {
                    name: inner.name.clone(),
                })?;
            entry.flushed_lsn = w.applied_lsn;
            for &(_, seg_id, generation, count) in &new_tombs {
                if let Some(s) = entry.segments.iter_mut().find(|s| s.id == seg_id) {
                    s.tombstones = Some(TombstoneRef { generation, count });
                }
            }
            if let Some((id, _, sealed)) = &new_seg {
                entry.segments.push(SegmentEntry {
                    id: *id,
                    rows: sealed.rows,
                    tombstones: (!sealed.dead.is_empty()).then(|| TombstoneRef {
                        generation: 1,
                        count: sealed.dead.len(),
                    }),
                });
            }
            Ok(())
        })?;

        // 4. Swap in. The files were just written and fsynced; opening maps and checks them.
        let opened = match new_seg {
            Some((id, dir, sealed)) => {
                match Segment::open(&dir, id, sealed.rows, dim, inner.config.m) {
                    Ok(seg) => Some((seg, sealed.dead)),
                    Err(e) => {
                        // The manifest already names the segment while the memtable still holds
                        // its rows: sealing again would duplicate them. Stop writing.
                        core.wal
                            .poison(format!("a segment just written failed to open: {e}"));
                        return Err(e);
                    }
                }
            }
            None => None,
        };
        let mut old_tomb_files = Vec::new();
        {
            let mut st = inner.state.write();
            for &(i, seg_id, generation, _) in &new_tombs {
                let slot = &mut st.segments[i];
                if slot.generation > 0 {
                    old_tomb_files
                        .push(inner.dir.join(tombstone_file_name(seg_id, slot.generation)));
                }
                slot.generation = generation;
                slot.dirty = false;
            }
            if let Some((seg, dead)) = opened {
                let generation = u64::from(!dead.is_empty());
                st.segments
                    .push(SegmentSlot::new(Arc::new(seg), dead, generation));
            }
            st.memtable = Memtable::new(&inner.config);
        }
        core.set_needed(inner.id, None);

        // 5. Remove what is no longer referenced. Failing here loses nothing: leftovers are
        // removed again on the next open.
        for p in old_tomb_files {
            let _ = std::fs::remove_file(p);
        }
        // Best effort too: a log file that survives (or reappears after a crash, if this
        // directory fsync fails) holds only frames the manifest marks as flushed.
        let _ = core.wal.remove_below(core.min_needed());
        core.kick_compactor();
        Ok(())
    }
}

/// What sealing a memtable wrote.
struct Sealed {
    rows: u64,
    /// Rows written dead (tombstones generation 1).
    dead: RoaringBitmap,
}

/// Where a live id is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Located {
    Memtable(usize),
    Segment(usize, usize),
}

/// Finds the live row of `id`: the memtable first, then segments newest first.
pub(crate) fn locate(st: &State, id: u64) -> Option<Located> {
    if let Some(r) = st.memtable.find(id) {
        return Some(Located::Memtable(r));
    }
    for (i, slot) in st.segments.iter().enumerate().rev() {
        if let Some(r) = slot.seg.find(id)
            && !slot.deleted.contains(r as u32)
        {
            return Some(Located::Segment(i, r));
        }
    }
    None
}

/// Removes the live version of `id`, wherever it is. Returns whether there was one.
fn remove_live(st: &mut State, id: u64) -> bool {
    match locate(st, id) {
        Some(Located::Memtable(_)) => st.memtable.remove(id),
        Some(Located::Segment(s, r)) => {
            let slot = &mut st.segments[s];
            slot.deleted.insert(r as u32);
            slot.dirty = true;
            true
        }
        None => false,
    }
}

/// Applies an upsert batch (live or during replay).
pub(crate) fn apply_upsert(st: &mut State, lsn: u64, view: &UpsertView<'_>) {
    st.memtable.note_lsn(lsn);
    for &(id, vector, doc) in &view.rows {
        remove_live(st, id);
        st.memtable.push(id, vector, doc);
    }
}

/// Applies a delete batch (live or during replay).
pub(crate) fn apply_delete(st: &mut State, lsn: u64, ids: &[u64]) {
    let mut any = false;
    for &id in ids {
        any |= remove_live(st, id);
    }
    if any {
        // Tombstones of segments are only durable through the log until the next seal.
        st.memtable.note_lsn(lsn);
    }
}
