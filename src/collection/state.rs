//! A collection's readable state as immutable *versions*, and how a committed batch makes
//! the next one (the same functions commit live writes and replay the log on open, so the two
//! cannot diverge).
//!
//! ```text
//!  Live (behind the collection's `live` lock, held only to read or swap it)
//!   ├─ version: Arc<Version>     segments + their tombstones, memtables + the rows shown
//!   └─ ids: one map per memtable  id → row of its live row there
//!  a read:   clone the Arc (and look an id up), release the lock, then work on the version
//!  a commit: build the next Version (copy-on-write bitmaps), swap it in
//! ```

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use roaring::RoaringBitmap;

use crate::error::Result;
use crate::index::fields::FieldIndex;
use crate::index::hnsw::layout::MappedGraph;
use crate::index::text::{LiveCache, TextIndex};
use crate::memtable::{Memtable, MemtableView};
use crate::model::record::Payload;
use crate::query::source::Source;
use crate::segment::Segment;
use crate::vector::quant::Quantized;

/// A sealed segment as a version sees it: the segment and its deleted rows.
#[derive(Clone)]
pub(crate) struct SegmentSlot {
    pub seg: Arc<Segment>,
    pub deleted: Arc<RoaringBitmap>,
    /// Generation of the tombstone file on disk (0: none).
    pub generation: u64,
    /// Rows the tombstone file on disk marks; deleted rows only ever grow, so the slot has
    /// deletions to persist when `deleted` holds more.
    pub persisted: u64,
}

impl SegmentSlot {
    pub(crate) fn new(seg: Arc<Segment>, deleted: RoaringBitmap, generation: u64) -> Self {
        let persisted = deleted.len();
        SegmentSlot {
            seg,
            deleted: Arc::new(deleted),
            generation,
            persisted,
        }
    }

    pub(crate) fn live(&self) -> usize {
        self.seg.rows - self.deleted.len() as usize
    }

    /// Whether rows were deleted since the tombstone file was written.
    pub(crate) fn dirty(&self) -> bool {
        self.deleted.len() > self.persisted
    }
}

impl Source for SegmentSlot {
    type Graph = MappedGraph;
    type Vecs = Segment;
    type Fields<'a> = &'a FieldIndex;
    type Text<'a> = &'a TextIndex;

    fn rows(&self) -> usize {
        self.seg.rows
    }
    fn dead(&self) -> &RoaringBitmap {
        &self.deleted
    }
    fn live(&self) -> usize {
        SegmentSlot::live(self)
    }
    fn id_at(&self, row: u32) -> Result<u64> {
        self.seg.id_at(row as usize)
    }
    fn graph(&self) -> &MappedGraph {
        self.seg.graph()
    }
    fn vecs(&self) -> &Segment {
        &self.seg
    }
    fn quantized(&self) -> Option<&Quantized> {
        self.seg.quantized()
    }
    fn vectors(&self, start: usize, end: usize) -> Result<&[f32]> {
        self.seg.vectors(start, end)
    }
    fn doc(&self, row: u32) -> Result<(Option<String>, Payload)> {
        self.seg.doc(row as usize)
    }
    fn doc_id(&self, row: u32) -> Result<String> {
        self.seg.doc_id(row as usize)
    }
    fn fields(&self) -> Result<&FieldIndex> {
        self.seg.fields()
    }
    fn text(&self) -> Result<&TextIndex> {
        self.seg.text()
    }
    fn text_live(&self) -> Option<&LiveCache> {
        Some(self.seg.text_live())
    }
    fn describe(&self) -> String {
        format!("segment {}", self.seg.id)
    }
}

/// One immutable state of a collection: what a read sees, whole.
#[derive(Clone)]
pub(crate) struct Version {
    /// Sealed segments, oldest first.
    pub segments: Vec<SegmentSlot>,
    /// Memtables, oldest first: frozen ones waiting to be sealed, then the active one (always
    /// present).
    pub memtables: Vec<MemtableView>,
}

impl Version {
    pub(crate) fn new(segments: Vec<SegmentSlot>, active: Arc<Memtable>) -> Self {
        Version {
            segments,
            memtables: vec![MemtableView::new(active)],
        }
    }

    /// The memtable that takes new rows.
    pub(crate) fn active(&self) -> &MemtableView {
        self.memtables
            .last()
            .expect("a version always has an active memtable")
    }

    /// Live records.
    pub(crate) fn len(&self) -> usize {
        self.segments.iter().map(SegmentSlot::live).sum::<usize>()
            + self.memtables.iter().map(MemtableView::live).sum::<usize>()
    }
}

/// Where a live id is, in one version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Located {
    /// Memtable `i` of the version, row.
    Memtable(usize, u32),
    /// Segment `i` of the version, row.
    Segment(usize, usize),
}

/// The current version and where each id of its memtables lives.
pub(crate) struct Live {
    pub version: Arc<Version>,
    /// One map per memtable of `version.memtables`, in the same order: id → its live row.
    pub ids: Vec<HashMap<u64, u32>>,
}

impl Live {
    pub(crate) fn new(version: Version) -> Self {
        let ids = version.memtables.iter().map(|_| HashMap::new()).collect();
        Live {
            version: Arc::new(version),
            ids,
        }
    }

    /// Finds the live row of `id`: memtables newest first, then segments newest first. An
    /// error when a block of a segment's ids file that the lookup reads fails its check.
    pub(crate) fn locate(&self, id: u64) -> Result<Option<Located>> {
        if let Some(l) = in_memtables(&self.ids, id) {
            return Ok(Some(l));
        }
        for (i, slot) in self.version.segments.iter().enumerate().rev() {
            if let Some(r) = slot.seg.find(id)?
                && !slot.deleted.contains(r as u32)
            {
                return Ok(Some(Located::Segment(i, r)));
            }
        }
        Ok(None)
    }

    /// Makes `mt` the active memtable; the old one is frozen (it takes no more rows).
    pub(crate) fn freeze(&mut self, mt: Arc<Memtable>) {
        let mut v = (*self.version).clone();
        v.memtables.push(MemtableView::new(mt));
        self.ids.push(HashMap::new());
        self.version = Arc::new(v);
    }

    /// Replaces the active memtable, which holds no row, by `mt`.
    pub(crate) fn replace_empty_active(&mut self, mt: Arc<Memtable>) {
        let mut v = (*self.version).clone();
        debug_assert_eq!(v.active().rows, 0);
        *v.memtables.last_mut().expect("an active memtable") = MemtableView::new(mt);
        self.version = Arc::new(v);
    }

    /// Commits an upsert whose rows `rows` of the active memtable hold `ids`, in order: older
    /// versions of each id die, the rows become visible. With `linked`, they and every row
    /// before them are in the memtable's graph (the writer links before it commits).
    pub(crate) fn commit_upsert(
        &mut self,
        mt: &Arc<Memtable>,
        ids: &[u64],
        rows: Range<u32>,
        linked: bool,
    ) -> Result<()> {
        debug_assert_eq!(ids.len(), rows.len());
        // The segment lookups can fail (a damaged ids block): all of them first, before
        // anything changes.
        let found = SegmentHits::find(&self.version, &self.ids, ids)?;
        let mut v = (*self.version).clone();
        // The memtable the batch was staged in: the active one, or one frozen since (a frozen
        // memtable is sealed only after every batch staged in it has committed).
        let at = v
            .memtables
            .iter()
            .rposition(|m| Arc::ptr_eq(&m.mt, mt))
            .expect("a batch commits before its memtable is sealed");
        for (k, (&id, row)) in ids.iter().zip(rows.clone()).enumerate() {
            remove_live(&mut v, &mut self.ids, id, found.of(k));
            self.ids[at].insert(id, row);
        }
        let target = &mut v.memtables[at];
        target.rows = target.rows.max(rows.end);
        if linked {
            target.linked = target.rows;
        }
        self.version = Arc::new(v);
        Ok(())
    }

    /// Says that rows `0..upto` of memtable `mt` are in its graph (nothing if `mt` is no
    /// longer one of this version's memtables).
    pub(crate) fn mark_linked(&mut self, mt: &Arc<Memtable>, upto: u32) {
        let mut v = (*self.version).clone();
        if let Some(m) = v.memtables.iter_mut().find(|m| Arc::ptr_eq(&m.mt, mt)) {
            m.linked = m.linked.max(upto.min(m.rows));
            self.version = Arc::new(v);
        }
    }

    /// Commits a delete; returns how many of `ids` were live. Nothing changes when a
    /// segment lookup fails.
    pub(crate) fn commit_delete(&mut self, ids: &[u64]) -> Result<usize> {
        let found = SegmentHits::find(&self.version, &self.ids, ids)?;
        let mut v = (*self.version).clone();
        let mut n = 0;
        for (k, &id) in ids.iter().enumerate() {
            n += usize::from(remove_live(&mut v, &mut self.ids, id, found.of(k)));
        }
        if n > 0 {
            self.version = Arc::new(v);
        }
        Ok(n)
    }
}

/// The rows holding each of a list of ids in the segments of a version, newest segment
/// first: a segment's ids file is checked block by block as lookups reach it, so lookups
/// can fail, and a commit makes all of its lookups before it changes anything.
struct SegmentHits {
    /// `hits[starts[k]..starts[k + 1]]`: (segment index, row) of id `k`.
    starts: Vec<u32>,
    hits: Vec<(u32, u32)>,
}

impl SegmentHits {
    /// The segment rows of each of `ids`, but for ids live in a memtable (`maps`): those stay
    /// in one while a batch commits, and a memtable row is found before any segment's.
    fn find(v: &Version, maps: &[HashMap<u64, u32>], ids: &[u64]) -> Result<SegmentHits> {
        let mut starts = Vec::with_capacity(ids.len() + 1);
        let mut hits = Vec::new();
        starts.push(0);
        for &id in ids {
            if in_memtables(maps, id).is_some() {
                starts.push(hits.len() as u32);
                continue;
            }
            for (i, slot) in v.segments.iter().enumerate().rev() {
                if let Some(r) = slot.seg.find(id)? {
                    hits.push((i as u32, r as u32));
                    // Older segments hold only dead versions of an id live here.
                    if !slot.deleted.contains(r as u32) {
                        break;
                    }
                }
            }
            starts.push(hits.len() as u32);
        }
        Ok(SegmentHits { starts, hits })
    }

    /// Id `k`'s (segment index, row) pairs, newest segment first.
    fn of(&self, k: usize) -> &[(u32, u32)] {
        &self.hits[self.starts[k] as usize..self.starts[k + 1] as usize]
    }
}

/// The live row of `id` in `v`: memtables newest first (their maps `ids`), then the rows
/// `found` in the segments (newest first) that are not deleted.
fn locate(
    v: &Version,
    ids: &[HashMap<u64, u32>],
    id: u64,
    found: &[(u32, u32)],
) -> Option<Located> {
    in_memtables(ids, id).or_else(|| {
        found
            .iter()
            .find(|&&(s, r)| !v.segments[s as usize].deleted.contains(r))
            .map(|&(s, r)| Located::Segment(s as usize, r as usize))
    })
}

/// The live row of `id` in the memtables (their maps `ids`), newest first.
fn in_memtables(ids: &[HashMap<u64, u32>], id: u64) -> Option<Located> {
    ids.iter()
        .enumerate()
        .rev()
        .find_map(|(i, m)| m.get(&id).map(|&r| Located::Memtable(i, r)))
}

/// Marks the live version of `id` dead in `v`, wherever it is. Returns whether there was one.
fn remove_live(
    v: &mut Version,
    ids: &mut [HashMap<u64, u32>],
    id: u64,
    found: &[(u32, u32)],
) -> bool {
    match locate(v, ids, id, found) {
        Some(Located::Memtable(i, r)) => {
            ids[i].remove(&id);
            Arc::make_mut(&mut v.memtables[i].dead).insert(r);
            true
        }
        Some(Located::Segment(s, r)) => {
            Arc::make_mut(&mut v.segments[s].deleted).insert(r as u32);
            true
        }
        None => false,
    }
}
