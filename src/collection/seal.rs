//! Sealing in the background: a full memtable is *frozen* — replaced at once by a new one that
//! takes the next writes — and the seal thread writes it as a segment while searches go on
//! reading it; the segment replaces it in a later version.
//!
//! ```text
//!  writer (writer lock): memtable full ─▶ freeze: new active memtable, old one frozen
//!                        (more than MAX_FROZEN frozen ─▶ wait for the seal thread)
//!  seal thread:  wait until every batch staged in the frozen memtable has committed
//!               ─▶ write seg-<id>/ and changed tombstones ─▶ rotate the log ─▶ manifest
//!               ─▶ next version: the segment instead of the frozen memtable (rows that died
//!                  meanwhile become its tombstones) ─▶ trim the log
//! ```
//!
//! One seal runs at a time per collection (the `seal` lock), oldest frozen memtable first.
//! `flush()` freezes the active memtable and seals everything frozen before it returns.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use roaring::RoaringBitmap;

use super::Collection;
use super::state::{SegmentSlot, Version};
use crate::error::{Error, Result};
use crate::index::hnsw::graph::MemGraph;
use crate::index::hnsw::layout::bfs_order;
use crate::index::hnsw::{HnswParams, build_graph};
use crate::io::fsutil;
use crate::manifest::{SegmentEntry, TombstoneRef, segment_dir_name, tombstone_file_name};
use crate::memtable::{Memtable, MemtableView};
use crate::segment::tombstones;
use crate::segment::{Codes, SealRow, Segment, write_segment};
use crate::vector::FlatVectors;

/// Frozen memtables a collection may have waiting for the seal thread; a writer that would
/// freeze one more waits (back-pressure).
pub(crate) const MAX_FROZEN: usize = 2;

/// The files a seal wrote: the segment (id, directory, what it holds) and new tombstone
/// generations (segment id, generation, deleted rows).
struct Written {
    segment: Option<(u64, PathBuf, Sealed)>,
    tombs: Vec<(u64, u64, u64)>,
}

/// The slot of a segment just sealed from memtable `now`: its tombstones are the rows written
/// dead, plus rows that died in the memtable since the snapshot the seal wrote.
fn sealed_slot(seg: Segment, sealed: &Sealed, now: &MemtableView) -> SegmentSlot {
    let mut dead = sealed.dead.clone();
    for r in now.dead.iter() {
        if let Some(&nr) = sealed.new_row.get(r as usize)
            && nr != u32::MAX
        {
            dead.insert(nr);
        }
    }
    let mut slot = SegmentSlot::new(
        Arc::new(seg),
        sealed.dead.clone(),
        u64::from(!sealed.dead.is_empty()),
    );
    slot.deleted = Arc::new(dead);
    slot
}

/// What sealing a memtable wrote.
struct Sealed {
    rows: u64,
    /// Rows written dead (tombstones generation 1).
    dead: RoaringBitmap,
    /// For each row of the memtable, its row in the segment (`u32::MAX`: not written).
    new_row: Vec<u32>,
}

impl Collection {
    /// A new memtable with room for at least `rows` rows and `doc_bytes` bytes of documents:
    /// the configured limits, or more for a batch larger than them.
    pub(super) fn new_memtable(&self, rows: usize, doc_bytes: usize) -> Memtable {
        Memtable::sized(
            &self.inner.core.options,
            &self.inner.config,
            rows,
            doc_bytes,
        )
    }

    /// Freezes the active memtable and makes a new one with room for a batch of `rows` rows
    /// and `doc_bytes` bytes; waits first while `MAX_FROZEN` are waiting to be sealed. With
    /// the writer lock held.
    pub(super) fn freeze(&self, rows: usize, doc_bytes: usize) -> Result<Arc<Memtable>> {
        let inner = &*self.inner;
        let mut waited = false;
        loop {
            if inner.version().memtables.len() <= MAX_FROZEN {
                break;
            }
            inner.core.kick_sealer();
            inner.core.wal.check_poisoned()?;
            self.check_live()?;
            if !waited {
                waited = true;
                log::debug!(
                    "{}: a writer waits for the seal thread ({MAX_FROZEN} frozen memtables)",
                    inner.name
                );
            }
            let mut c = inner.commits.lock();
            inner.progress.wait_for(&mut c, Duration::from_millis(50));
        }
        let old = inner.version().active().mt.clone();
        // No row is staged in it from now on: walks of its graph need no more room.
        old.graph.freeze(old.staged());
        let mt = Arc::new(self.new_memtable(rows, doc_bytes));
        inner.update(|live| live.freeze(Arc::clone(&mt)));
        inner.core.kick_sealer();
        Ok(mt)
    }

    /// Freezes the active memtable so the seal thread seals it (the log is over its budget and
    /// this collection pins its oldest file). Never waits for the seal thread.
    pub(crate) fn freeze_for_log(&self) -> Result<()> {
        let _w = self.inner.writer.lock();
        self.check_live()?;
        let v = self.inner.version();
        if v.active().mt.min_lsn().is_some() && v.memtables.len() <= MAX_FROZEN {
            self.freeze(0, 0)?;
        } else {
            self.inner.core.kick_sealer();
        }
        Ok(())
    }

    /// Seals the memtable into a segment and makes every write so far durable, whatever the
    /// durability setting; deletions of sealed rows are written to tombstone files too.
    pub fn flush(&self) -> Result<()> {
        self.inner.core.check_writable()?;
        self.check_live()?;
        {
            let _w = self.inner.writer.lock();
            self.check_live()?;
            // Rows staged, or deletes noted (their frames stay in the log until a seal
            // persists the tombstones): freeze it so that the seal below releases its log.
            if self.inner.version().active().mt.min_lsn().is_some() {
                self.freeze(0, 0)?;
            }
        }
        while self.seal_one(true)? {}
        self.inner.core.wal.sync()
    }

    /// Seals every frozen memtable, oldest first (the seal thread's work).
    pub(crate) fn seal_frozen(&self) -> Result<()> {
        while self.seal_one(false)? {}
        Ok(())
    }

    /// Seals the oldest frozen memtable, if there is one — or, with `tombstones`, persists
    /// deletions of sealed rows when there is none. Returns whether it wrote anything.
    fn seal_one(&self, tombstones: bool) -> Result<bool> {
        let inner = &*self.inner;
        let core = &inner.core;
        let _one = inner.seal.lock();
        core.wal.check_poisoned()?;
        if inner.dropped.load(std::sync::atomic::Ordering::Acquire) {
            return Ok(false);
        }
        let Some(frozen) = self.seal_target(tombstones) else {
            return Ok(false);
        };
        let (committed, v) = self.wait_committed(frozen.as_ref())?;
        let f = frozen.as_ref().map(|_| v.memtables[0].clone());
        if let Some(f) = &f {
            debug_assert!(Arc::ptr_eq(&f.mt, frozen.as_ref().expect("frozen")));
            debug_assert_eq!(f.rows as usize, f.staged());
        }

        // 1. Write the new files. After a failed write or fsync the state of the page cache
        // is unknown: stop writing until the database is reopened (the log holds every row).
        let started = std::time::Instant::now();
        let written = self.write_files(&v, f.as_ref()).inspect_err(|e| {
            core.wal.poison(format!(
                "sealing a memtable failed, reopen the database: {e}"
            ));
        })?;
        // 2. Every logged frame so far becomes durable and the log moves to a new file.
        let first_new_lsn = core.wal.rotate()?;
        // 3. Publish.
        self.publish(&v, f.is_some(), committed, first_new_lsn, &written)?;
        // 4. Swap in. The files were just written and fsynced; opening maps and checks them.
        let seal_log = written.segment.as_ref().map(|(id, _, s)| (*id, s.rows));
        let tomb_files = written.tombs.len();
        let old_tomb_files = self.swap_in(f.is_some(), written)?;
        self.set_needed();
        match (&f, &seal_log) {
            (Some(f), Some((id, rows))) => log::debug!(
                "{}: sealed a memtable of {} rows as segment {id} ({rows} rows) in {:.1?}",
                inner.name,
                f.rows,
                started.elapsed()
            ),
            _ if tomb_files > 0 => {
                log::debug!("{}: wrote tombstones of {tomb_files} segments", inner.name)
            }
            _ => {}
        }

        // 5. Remove what is no longer referenced. Failing here loses nothing: leftovers are
        // removed again on the next open.
        for p in old_tomb_files {
            let _ = std::fs::remove_file(p);
        }
        // Best effort too: a log file that survives (or reappears after a crash, if this
        // directory fsync fails) holds only frames the manifest marks as flushed.
        let _ = core.wal.remove_below(core.min_needed());
        inner.progress.notify_all();
        core.kick_compactor();
        Ok(true)
    }

    /// What to seal: `Some(Some(frozen))` the oldest frozen memtable, `Some(None)` only the
    /// tombstones of sealed segments (with `tombstones`), `None` nothing.
    fn seal_target(&self, tombstones: bool) -> Option<Option<Arc<Memtable>>> {
        let v = self.inner.version();
        if v.memtables.len() > 1 {
            Some(Some(v.memtables[0].mt.clone()))
        } else if tombstones && v.segments.iter().any(SegmentSlot::dirty) {
            Some(None)
        } else {
            None
        }
    }

    /// Waits until every batch staged in (or noted on) the frozen memtable has committed, so
    /// that a version shows it whole. Returns the committed LSN and that version, read
    /// together.
    fn wait_committed(&self, frozen: Option<&Arc<Memtable>>) -> Result<(u64, Arc<Version>)> {
        let inner = &*self.inner;
        loop {
            let mut c = inner.commits.lock();
            let done = frozen
                .and_then(|f| f.max_lsn())
                .is_none_or(|m| c.committed >= m && c.pending.front().is_none_or(|&p| p > m));
            if done {
                return Ok((c.committed, inner.version()));
            }
            inner.core.wal.check_poisoned()?;
            inner.progress.wait_for(&mut c, Duration::from_millis(50));
        }
    }

    /// Writes the segment of the frozen memtable `f` (unless none of its rows is live) and a
    /// new tombstone file for each segment with unpersisted deletions, all fsynced.
    fn write_files(&self, v: &Version, f: Option<&MemtableView>) -> Result<Written> {
        let inner = &*self.inner;
        let mut segment = None;
        if let Some(f) = f.filter(|f| f.live() > 0) {
            let id = inner.core.alloc_segment_id();
            let dir = inner.dir.join(segment_dir_name(id));
            std::fs::create_dir_all(&inner.dir).map_err(|e| Error::io(&inner.dir, e))?;
            let sealed = self.write_memtable(f, &dir, id)?;
            segment = Some((id, dir, sealed));
        }
        let mut tombs = Vec::new();
        for slot in v.segments.iter().filter(|s| s.dirty()) {
            let generation = slot.generation + 1;
            let path = inner.dir.join(tombstone_file_name(slot.seg.id, generation));
            let _ = std::fs::remove_file(&path);
            tombstones::write(&path, slot.seg.id, &slot.deleted)?;
            tombs.push((slot.seg.id, generation, slot.deleted.len()));
        }
        if !tombs.is_empty() {
            fsutil::sync_dir(&inner.dir)?;
        }
        Ok(Written { segment, tombs })
    }

    /// Publishes the new files in the manifest. Frames up to `flushed` are in segments and
    /// tombstone files now: those of the frozen memtable (when `sealed_frozen`), and every
    /// committed one before the first frame a remaining memtable still needs.
    fn publish(
        &self,
        v: &Version,
        sealed_frozen: bool,
        committed: u64,
        first_new_lsn: u64,
        written: &Written,
    ) -> Result<()> {
        let inner = &*self.inner;
        let rest_min = v
            .memtables
            .iter()
            .skip(usize::from(sealed_frozen))
            .filter_map(|m| m.min_lsn())
            .min();
        let flushed = rest_min.map_or(committed, |m| committed.min(m - 1));
        inner.core.update_manifest(|m| {
            m.last_lsn = first_new_lsn - 1;
            let entry = m
                .collection_mut(inner.id)
                .ok_or_else(|| Error::CollectionDropped {
                    name: inner.name.clone(),
                })?;
            entry.flushed_lsn = entry.flushed_lsn.max(flushed);
            for &(seg_id, generation, count) in &written.tombs {
                if let Some(s) = entry.segments.iter_mut().find(|s| s.id == seg_id) {
                    s.tombstones = Some(TombstoneRef { generation, count });
                }
            }
            if let Some((id, _, sealed)) = &written.segment {
                entry.segments.push(SegmentEntry {
                    id: *id,
                    rows: sealed.rows,
                    codes: inner.config.codes(),
                    tombstones: (!sealed.dead.is_empty()).then(|| TombstoneRef {
                        generation: 1,
                        count: sealed.dead.len(),
                    }),
                });
            }
            Ok(())
        })
    }

    /// Opens the new segment and makes the next version: the segment instead of the frozen
    /// memtable (when `sealed_frozen`), the new tombstone generations. Returns the tombstone
    /// files no longer referenced.
    fn swap_in(&self, sealed_frozen: bool, written: Written) -> Result<Vec<PathBuf>> {
        let inner = &*self.inner;
        let opened = match written.segment {
            Some((id, dir, sealed)) => {
                let cfg = &inner.config;
                let codes = Codes::of(cfg, cfg.codes());
                match Segment::open(&dir, id, sealed.rows, cfg.dim, cfg.m, codes) {
                    Ok(seg) => {
                        inner.core.keep_resident(&seg);
                        Some((seg, sealed))
                    }
                    Err(e) => {
                        // The manifest already names the segment while a memtable still holds
                        // its rows: sealing again would duplicate them. Stop writing.
                        inner
                            .core
                            .wal
                            .poison(format!("a segment just written failed to open: {e}"));
                        return Err(e);
                    }
                }
            }
            None => None,
        };
        let mut old_tomb_files = Vec::new();
        inner.update(|live| {
            let mut next = (*live.version).clone();
            for &(seg_id, generation, count) in &written.tombs {
                if let Some(slot) = next.segments.iter_mut().find(|s| s.seg.id == seg_id) {
                    if slot.generation > 0 {
                        old_tomb_files
                            .push(inner.dir.join(tombstone_file_name(seg_id, slot.generation)));
                    }
                    slot.generation = generation;
                    slot.persisted = count;
                }
            }
            if sealed_frozen {
                // The frozen memtable as it is now: rows that died since the snapshot die in
                // the segment too (they are in the log until the next seal persists them).
                let now = next.memtables.remove(0);
                live.ids.remove(0);
                if let Some((seg, sealed)) = opened {
                    next.segments.push(sealed_slot(seg, &sealed, &now));
                }
            }
            live.version = Arc::new(next);
        });
        Ok(old_tomb_files)
    }

    /// Writes the frozen memtable `f` and its graph as segment `id` in `dir`. Rows that died in
    /// the memtable stay in the segment (the graph needs its node numbering) and become its
    /// first tombstones — unless they are most of it, in which case the live rows get a fresh
    /// graph.
    fn write_memtable(&self, f: &MemtableView, dir: &Path, id: u64) -> Result<Sealed> {
        let cfg = &self.inner.config;
        let n = f.rows as usize;
        let dead_rows = n - f.live();
        let row = |r: u32| SealRow {
            id: f.id_at(r as usize),
            vector: f.vector(r as usize),
            doc: f.doc(r as usize),
            live: f.is_live(r),
        };
        // `source[i]`: the memtable row of the i-th row handed to the writer.
        let (rows, source, rebuilt): (Vec<SealRow<'_>>, Vec<u32>, Option<MemGraph>) =
            if dead_rows * 2 > n {
                let source: Vec<u32> = f.live_rows().collect();
                let rows: Vec<SealRow<'_>> = source.iter().map(|&r| row(r)).collect();
                let flat = FlatVectors::gather(cfg.dim, rows.iter().map(|r| r.vector))
                    .with_codes(cfg.int8_construction());
                let graph = build_graph(HnswParams::of(cfg), &flat, rows.len(), cfg.metric)?;
                (rows, source, Some(graph))
            } else {
                f.graph.repair(&f.vecs, cfg.metric, |r| f.is_live(r))?;
                (
                    (0..n as u32).map(row).collect(),
                    (0..n as u32).collect(),
                    None,
                )
            };
        // Rows go to disk in breadth-first order of the graph, so that the neighbours a
        // search visits lie close together (fewer pages and TLB misses per query).
        let graph = rebuilt.as_ref().unwrap_or(&f.graph);
        let order = bfs_order(graph);
        let mut slots: Vec<Option<SealRow<'_>>> = rows.into_iter().map(Some).collect();
        let rows: Vec<SealRow<'_>> = order
            .iter()
            .filter_map(|&old| slots[old as usize].take())
            .collect();
        debug_assert_eq!(rows.len(), order.len());
        write_segment(
            dir,
            id,
            cfg.dim,
            &rows,
            graph,
            &order,
            f.analyzer(),
            cfg.codes(),
        )?;
        let mut new_row = vec![u32::MAX; n];
        for (new, &old) in order.iter().enumerate() {
            new_row[source[old as usize] as usize] = new as u32;
        }
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
            new_row,
        })
    }
}
