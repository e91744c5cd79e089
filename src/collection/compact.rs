//! Compaction: sealed segments are merged into one new segment — live rows only, a graph
//! built afresh in parallel, field and text indexes rebuilt — and swapped in with one manifest
//! write.
//!
//! ```text
//!  1. snapshot: the input segments and their tombstones, from the current version
//!  2. build (no lock, on the background pool): gather live rows, build the graph, write
//!     seg-<new>/
//!  3. publish (seal lock: no seal interleaves): rows deleted meanwhile become tombstones of
//!     the new segment; the manifest swaps inputs for the new segment in one atomic write;
//!     the next version has the new segment instead of the inputs
//!  4. remove the inputs' files (left-overs after a crash are removed on open)
//! ```
//!
//! Neither writers nor readers wait for a compaction; a seal waits only for its publish. A
//! record upserted during step 2 replaces its old row in an input segment, which is then a
//! deletion carried over in step 3, so nothing written meanwhile is lost or resurrected.

use std::sync::Arc;

use roaring::RoaringBitmap;
use serde::Serialize;

use super::Collection;
use super::state::SegmentSlot;
use crate::error::{Error, Result};
use crate::index::hnsw::layout::bfs_order;
use crate::index::hnsw::{HnswParams, build_graph_until};
use crate::io::fsutil;
use crate::manifest::{SegmentEntry, TombstoneRef, segment_dir_name, tombstone_file_name};
use crate::segment::tombstones;
use crate::segment::{Codes, SealRow, Segment, write_segment};
use crate::vector::store::RowRefs;

/// What a compaction did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CompactionReport {
    /// Segments merged (0: there was nothing to do).
    pub segments_in: usize,
    /// Rows of the inputs, dead ones included.
    pub rows_in: usize,
    /// Live rows written to the new segment.
    pub rows_out: usize,
    /// Bytes of the inputs' files.
    pub bytes_in: u64,
    /// Bytes of the new segment's files.
    pub bytes_out: u64,
    /// The new segment, if one was written.
    pub segment: Option<u64>,
}

impl Collection {
    /// Merges every sealed segment into one, dropping deleted and replaced rows, and rebuilds
    /// its graph and indexes. Searches and writes continue meanwhile (writes wait only for
    /// the final swap). Does nothing when there is a single segment without deletions.
    pub fn compact(&self) -> Result<CompactionReport> {
        self.inner.core.check_writable()?;
        self.compact_segments(None, false)
    }

    /// The background policy: merges the smallest segments when there are more than
    /// `compaction_max_segments` (down to half that many), and rewrites every segment with
    /// more than `compaction_deleted_ratio` of its rows deleted.
    pub(crate) fn compact_by_policy(&self) -> Result<Option<CompactionReport>> {
        let o = &self.inner.core.options;
        let pick: Vec<u64> = {
            let v = self.inner.version();
            let mut segs: Vec<(usize, u64, bool)> = v
                .segments
                .iter()
                .map(|s| {
                    let heavy =
                        s.deleted.len() as f64 > o.compaction_deleted_ratio * s.seg.rows as f64;
                    (s.live(), s.seg.id, heavy)
                })
                .collect();
            segs.sort_unstable();
            let mut pick: Vec<u64> = Vec::new();
            if segs.len() > o.compaction_max_segments {
                let keep = o.compaction_max_segments / 2;
                let merge = (segs.len() - keep).max(2);
                pick.extend(segs.iter().take(merge).map(|s| s.1));
            }
            for s in &segs {
                if s.2 && !pick.contains(&s.1) {
                    pick.push(s.1);
                }
            }
            pick
        };
        if pick.is_empty() {
            return Ok(None);
        }
        self.compact_segments(Some(&pick), true).map(Some)
    }

    /// Merges the segments named in `which` (all of them for `None`). A background run gives
    /// up, before its long steps, once no handle but its own is left.
    fn compact_segments(
        &self,
        which: Option<&[u64]>,
        background: bool,
    ) -> Result<CompactionReport> {
        let r = self.compact_segments_inner(which, background);
        // Nothing was published, but after a failed fsync what the disk holds is unknown
        // (fsync errors are not reliably reported twice): stop writing until reopened.
        if let Err(e) = &r {
            log::error!("{}: compaction failed: {e}", self.inner.name);
        }
        if let Err(e @ Error::SyncFailed { .. }) = &r {
            self.inner
                .core
                .wal
                .poison(format!("compaction: {e}; reopen the database"));
        }
        r
    }

    fn compact_segments_inner(
        &self,
        which: Option<&[u64]>,
        background: bool,
    ) -> Result<CompactionReport> {
        let _one = self.inner.compaction.lock();
        self.check_live()?;
        let inner = &*self.inner;
        let abandoned = || {
            inner.dropping.load(std::sync::atomic::Ordering::Acquire)
                || (background && inner.core.bg.closing())
        };
        let nothing = CompactionReport {
            segments_in: 0,
            rows_in: 0,
            rows_out: 0,
            bytes_in: 0,
            bytes_out: 0,
            segment: None,
        };

        // 1. Snapshot.
        let inputs: Vec<(Arc<Segment>, Arc<RoaringBitmap>)> = self
            .inner
            .version()
            .segments
            .iter()
            .filter(|s| which.is_none_or(|w| w.contains(&s.seg.id)))
            .map(|s| (Arc::clone(&s.seg), Arc::clone(&s.deleted)))
            .collect();
        if inputs.is_empty() || (inputs.len() == 1 && inputs[0].1.is_empty()) || abandoned() {
            return Ok(nothing);
        }
        let rows_in: usize = inputs.iter().map(|(s, _)| s.rows).sum();
        let bytes_in: u64 = inputs.iter().map(|(s, _)| s.disk_bytes()).sum();

        // 2. Build, on the background pool.
        let started = std::time::Instant::now();
        let id = inner.core.alloc_segment_id();
        let dir = inner.dir.join(segment_dir_name(id));
        let rows_out = match inner
            .core
            .pool
            .install(|| self.build_merged(&inputs, id, &dir, &abandoned))
        {
            Ok(n) => n,
            Err(Error::Cancelled) => {
                log::debug!("{}: compaction cancelled", inner.name);
                return Ok(nothing);
            }
            Err(e) => return Err(e),
        };

        // 3. Publish.
        if abandoned() {
            let _ = std::fs::remove_dir_all(&dir);
            return Ok(nothing);
        }
        let bytes_out = self.publish_merged(&inputs, id, &dir, rows_out)?;
        log::info!(
            "{}: compacted {} segments ({rows_in} rows, {bytes_in} bytes) into segment {id} \
             ({rows_out} rows, {bytes_out} bytes) in {:.1?}{}",
            inner.name,
            inputs.len(),
            started.elapsed(),
            if background { " (background)" } else { "" }
        );
        Ok(CompactionReport {
            segments_in: inputs.len(),
            rows_in,
            rows_out,
            bytes_in,
            bytes_out,
            segment: (rows_out > 0).then_some(id),
        })
    }

    /// Writes the live rows of `inputs` as segment `id` in `dir`, with a new graph; returns
    /// how many rows it wrote (none: nothing written). Gives up with `Error::Cancelled` when
    /// `abandoned` says so.
    fn build_merged(
        &self,
        inputs: &[(Arc<Segment>, Arc<RoaringBitmap>)],
        id: u64,
        dir: &std::path::Path,
        abandoned: &(dyn Fn() -> bool + Sync),
    ) -> Result<usize> {
        let cfg = &self.inner.config;
        // Live rows in input order; the documents are copied as stored.
        let mut rows: Vec<SealRow<'_>> = Vec::new();
        for (seg, deleted) in inputs {
            let vectors = seg.vectors(0, seg.rows)?;
            for r in 0..seg.rows {
                if deleted.contains(r as u32) {
                    continue;
                }
                let id = seg.id_at(r)?;
                if seg.find(id)? != Some(r) {
                    continue;
                }
                rows.push(SealRow {
                    id,
                    vector: &vectors[r * cfg.dim..(r + 1) * cfg.dim],
                    doc: seg.doc_bytes(r)?,
                    live: true,
                });
            }
        }
        if rows.is_empty() {
            return Ok(0);
        }
        let n = rows.len();
        // The graph is built over the rows where they lie (the inputs' maps): no f32 copy.
        let flat = RowRefs::new(
            cfg.dim,
            rows.iter().map(|r| r.vector).collect(),
            cfg.int8_construction(),
        )?;
        let graph = build_graph_until(HnswParams::of(cfg), &flat, n, cfg.metric, abandoned)?;
        let order = bfs_order(&graph);
        let mut slots: Vec<Option<SealRow<'_>>> = rows.into_iter().map(Some).collect();
        let ordered: Vec<SealRow<'_>> = order
            .iter()
            .filter_map(|&old| slots[old as usize].take())
            .collect();
        let analyzer = crate::index::text::Analyzer::new(&cfg.text);
        write_segment(
            dir,
            id,
            cfg.dim,
            &ordered,
            &graph,
            &order,
            &analyzer,
            cfg.codes(),
        )?;
        Ok(n)
    }

    /// Swaps the inputs for the new segment: tombstones for rows deleted since the snapshot,
    /// one manifest write, the next version; then removes the inputs' files. Returns the new
    /// segment's bytes.
    fn publish_merged(
        &self,
        inputs: &[(Arc<Segment>, Arc<RoaringBitmap>)],
        id: u64,
        dir: &std::path::Path,
        rows_out: usize,
    ) -> Result<u64> {
        let inner = &*self.inner;
        let cfg = &inner.config;
        let _seal = inner.seal.lock();
        self.check_live()?;
        inner.core.wal.check_poisoned()?;
        let new_seg = if rows_out > 0 {
            Some(Arc::new(Segment::open(
                dir,
                id,
                rows_out as u64,
                cfg.dim,
                cfg.m,
                Codes::of(cfg, cfg.codes()),
            )?))
            .inspect(|s| inner.core.keep_resident(s))
        } else {
            None
        };
        let input_ids: Vec<u64> = inputs.iter().map(|(s, _)| s.id).collect();
        // Deletions since the snapshot: every commit is in the version read here or will
        // find the inputs gone (and the rows in the new segment) once the next one is in.
        // The commits lock keeps them out until the swap.
        let commits = inner.commits.lock();
        let v = inner.version();
        let mut dead = RoaringBitmap::new();
        for (seg, before) in inputs {
            let Some(slot) = v.segments.iter().find(|s| s.seg.id == seg.id) else {
                return Err(Error::InvalidArgument(
                    "a segment vanished during compaction".into(),
                ));
            };
            for r in &(&*slot.deleted - &**before) {
                if let Some(new_seg) = &new_seg
                    && let Some(nr) = new_seg.find(seg.id_at(r as usize)?)?
                {
                    dead.insert(nr as u32);
                }
            }
        }
        if !dead.is_empty() {
            let path = inner.dir.join(tombstone_file_name(id, 1));
            let _ = std::fs::remove_file(&path);
            tombstones::write(&path, id, &dead)?;
            fsutil::sync_dir(&inner.dir)?;
        }
        inner.core.update_manifest(|m| {
            let entry = m
                .collection_mut(inner.id)
                .ok_or_else(|| Error::CollectionDropped {
                    name: inner.name.clone(),
                })?;
            entry.segments.retain(|s| !input_ids.contains(&s.id));
            if rows_out > 0 {
                entry.segments.push(SegmentEntry {
                    id,
                    rows: rows_out as u64,
                    codes: cfg.codes(),
                    tombstones: (!dead.is_empty()).then(|| TombstoneRef {
                        generation: 1,
                        count: dead.len(),
                    }),
                });
            }
            Ok(())
        })?;
        let mut old_files = Vec::new();
        let bytes_out = new_seg.as_ref().map_or(0, |s| s.disk_bytes());
        inner.update(|live| {
            let mut next = (*live.version).clone();
            next.segments.retain(|s| {
                let gone = input_ids.contains(&s.seg.id);
                if gone {
                    old_files.push(s.seg.dir.clone());
                    if s.generation > 0 {
                        old_files.push(inner.dir.join(tombstone_file_name(s.seg.id, s.generation)));
                    }
                }
                !gone
            });
            if let Some(seg) = new_seg {
                let generation = u64::from(!dead.is_empty());
                next.segments.push(SegmentSlot::new(seg, dead, generation));
            }
            live.version = Arc::new(next);
        });
        drop(commits);

        // 4. Remove the inputs. Failing here loses nothing: left-overs go on the next open.
        for p in old_files {
            let _ = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
        }
        let _ = fsutil::sync_dir(&inner.dir);
        Ok(bytes_out)
    }
}
