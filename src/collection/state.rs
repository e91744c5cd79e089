//! A collection's readable state: its sealed segments with their deleted rows, and its
//! memtable; where an id lives in it; and how a logged batch changes it (the same functions
//! apply live writes and replay the log on open, so the two cannot diverge).

use std::sync::Arc;

use roaring::RoaringBitmap;

use crate::error::Result;
use crate::index::fields::FieldIndex;
use crate::index::hnsw::layout::MappedGraph;
use crate::index::text::TextIndex;
use crate::log::batch::UpsertView;
use crate::memtable::Memtable;
use crate::model::record::Payload;
use crate::query::source::Source;
use crate::segment::Segment;
use crate::vector::quant::Quantized;

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

impl Source for SegmentSlot {
    type Graph = MappedGraph;
    type Vecs = Segment;

    fn rows(&self) -> usize {
        self.seg.rows
    }
    fn dead(&self) -> &RoaringBitmap {
        &self.deleted
    }
    fn live(&self) -> usize {
        SegmentSlot::live(self)
    }
    fn id_at(&self, row: u32) -> u64 {
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
    fn fields(&self) -> Result<&FieldIndex> {
        self.seg.fields()
    }
    fn text(&self) -> Result<&TextIndex> {
        self.seg.text()
    }
    fn describe(&self) -> String {
        format!("segment {}", self.seg.id)
    }
}

/// What a search sees: segments (oldest first) and the memtable.
pub(crate) struct State {
    pub segments: Vec<SegmentSlot>,
    pub memtable: Memtable,
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
