//! Sealing: the memtable is written as a new segment (with its graph, fields and text
//! index), changed tombstones as new files, the log is rotated, the manifest published, and
//! the state swapped.
//!
//! ```text
//! seal (memtable full, flush): write segment + tombstones ─▶ rotate WAL ─▶ manifest ─▶ swap
//! ```

use std::sync::Arc;

use roaring::RoaringBitmap;

use super::state::SegmentSlot;
use super::{Collection, WriterState};
use crate::error::{Error, Result};
use crate::index::hnsw::graph::MemGraph;
use crate::index::hnsw::layout::bfs_order;
use crate::index::hnsw::{HnswParams, build_graph};
use crate::io::fsutil;
use crate::manifest::{SegmentEntry, TombstoneRef, segment_dir_name, tombstone_file_name};
use crate::memtable::Memtable;
use crate::segment::tombstones;
use crate::segment::{SealRow, Segment, write_segment};
use crate::vector::FlatVectors;

impl Collection {
    pub(super) fn memtable_full(&self) -> bool {
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
            let graph = build_graph(HnswParams::of(cfg), &flat, rows.len(), cfg.metric)?;
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
