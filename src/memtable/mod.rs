//! The memtable: a collection's newest rows, in memory, until they are sealed into a segment.
//!
//! ```text
//!  writer (one at a time):  stage(batch) ─▶ rows appended behind the published ones
//!                           link(rows)    ─▶ HNSW inserts (concurrent with searches)
//!  commit (collection):     a new version says "rows 0..n of this memtable, these dead"
//!  readers:                 a MemtableView (memtable, rows, dead) reads rows < n, no lock
//! ```
//!
//! Rows are only ever appended, into room reserved when the memtable is made (an [`Arena`]
//! per column; the kernel backs it with pages only as rows arrive), so a row never moves and
//! a reader can use rows it was shown while more are appended. Which rows a reader sees, and
//! which of them are dead, is not the memtable's business: a [`MemtableView`] carries that.
//! The payload field and text indexes are the exception: they are maps that grow in place,
//! so they sit behind a lock that a writer holds while it stages a batch and a reader while
//! it evaluates a filter or scores text against this memtable (never across anything else).

use std::ops::{Deref, Range};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{MappedRwLockReadGuard, RwLock, RwLockReadGuard};
use rayon::prelude::*;
use roaring::RoaringBitmap;

use crate::error::Result;
use crate::index::fields::FieldIndex;
use crate::index::hnsw::HnswParams;
use crate::index::hnsw::graph::MemGraph;
use crate::index::text::{Analyzer, TextIndex};
use crate::io::mmap::Arena;
use crate::model::config::{CollectionConfig, Options};
use crate::model::record::StoredDoc;
use crate::vector::quant::Quantized;
use crate::vector::{Metric, Vectors, extend_f32};

/// Most rows one memtable reserves room for, whatever the limits say (a memtable this full
/// is sealed; a single larger batch gets a memtable of its own size).
pub(crate) const MAX_RESERVED_ROWS: usize = 1 << 24;
/// Most bytes of vectors, or of documents, one memtable reserves room for (address space
/// only: pages are backed as rows arrive).
pub(crate) const MAX_RESERVED_BYTES: usize = 8 << 30;

/// The vectors of a memtable, and their int8 copies that graph inserts and walks score (none
/// for L2).
pub(crate) struct MemVectors {
    dim: usize,
    data: Arena<f32>,
    pub codes: Option<Quantized>,
}

impl MemVectors {
    /// Vectors of rows `start..end` (appended ones only).
    pub(crate) fn rows(&self, start: usize, end: usize) -> &[f32] {
        &self.data.as_slice()[start * self.dim..end * self.dim]
    }
}

impl Vectors for MemVectors {
    #[inline]
    fn vector(&self, node: u32) -> Result<&[f32]> {
        let s = node as usize * self.dim;
        self.data.as_slice().get(s..s + self.dim).ok_or_else(|| {
            crate::error::Error::InvalidArgument(format!("memtable row {node} is not stored"))
        })
    }

    #[inline]
    fn prefetch(&self, node: u32) {
        let s = node as usize * self.dim;
        if let Some(v) = self.data.as_slice().get(s..s + self.dim) {
            crate::io::mmap::prefetch_f32(v);
        }
    }

    #[inline]
    fn quantized(&self) -> Option<&Quantized> {
        self.codes.as_ref()
    }
}

/// The growing indexes of a memtable.
struct Indexes {
    fields: FieldIndex,
    text: TextIndex,
}

/// One row of a batch to stage: id, vector (f32 LE bytes), encoded document.
pub(crate) type StageRow<'a> = (u64, &'a [u8], &'a [u8]);

/// In-memory rows of one collection.
pub(crate) struct Memtable {
    dim: usize,
    ids: Arena<u64>,
    pub vecs: MemVectors,
    /// `[start, len]` of each row's encoded document in `docs`.
    spans: Arena<[u64; 2]>,
    docs: Arena<u8>,
    indexes: RwLock<Indexes>,
    /// The collection's text analyzer.
    analyzer: Analyzer,
    /// HNSW graph over every row, dead ones included (they keep it connected).
    pub graph: MemGraph,
    /// Smallest and largest LSN of the batches staged here (0: none).
    min_lsn: AtomicU64,
    max_lsn: AtomicU64,
}

impl Memtable {
    /// An empty memtable with room for `rows` rows and `doc_bytes` bytes of documents.
    pub(crate) fn new(config: &CollectionConfig, rows: usize, doc_bytes: usize) -> Self {
        let rows = rows.max(1);
        Memtable {
            dim: config.dim,
            ids: Arena::with_capacity(rows),
            vecs: MemVectors {
                dim: config.dim,
                data: Arena::with_capacity(rows * config.dim),
                codes: config.codes().map(|k| {
                    let bits = match k {
                        crate::model::Quantization::RaBitQ4 => Some(4),
                        crate::model::Quantization::RaBitQ1 => Some(1),
                        _ => None,
                    };
                    Quantized::heap(config.dim, rows, bits)
                }),
            },
            spans: Arena::with_capacity(rows),
            docs: Arena::with_capacity(doc_bytes),
            indexes: RwLock::new(Indexes {
                fields: FieldIndex::new(),
                text: TextIndex::new(),
            }),
            analyzer: Analyzer::new(&config.text),
            graph: MemGraph::with_capacity(HnswParams::of(config), rows),
            min_lsn: AtomicU64::new(0),
            max_lsn: AtomicU64::new(0),
        }
    }

    /// A memtable with room for at least `rows` rows and `doc_bytes` bytes of documents: the
    /// configured limits (rows, and as many vectors as `memtable_max_bytes` holds), or more
    /// for a batch larger than them.
    pub(crate) fn sized(
        options: &Options,
        config: &CollectionConfig,
        rows: usize,
        doc_bytes: usize,
    ) -> Self {
        let row_bytes = (config.dim * 4).max(1);
        let by_bytes = options.memtable_max_bytes / row_bytes;
        let cap = options
            .memtable_max_rows
            .min(by_bytes)
            .min(MAX_RESERVED_ROWS)
            .min(MAX_RESERVED_BYTES / row_bytes)
            .max(rows)
            .max(1);
        let docs = options
            .memtable_max_bytes
            .min(MAX_RESERVED_BYTES)
            .max(doc_bytes);
        Memtable::new(config, cap, docs)
    }

    /// Rows staged (appended), committed or not.
    pub(crate) fn staged(&self) -> usize {
        self.ids.len()
    }

    /// Room left: rows, and bytes of documents.
    pub(crate) fn room(&self) -> (usize, usize) {
        (
            self.ids.capacity() - self.ids.len(),
            self.docs.capacity() - self.docs.len(),
        )
    }

    /// Whether a batch of `rows` rows with `doc_bytes` bytes of documents fits.
    pub(crate) fn fits(&self, rows: usize, doc_bytes: usize) -> bool {
        let (r, b) = self.room();
        rows <= r && doc_bytes <= b
    }

    /// Approximate heap bytes in use: vectors and their codes, documents, per-row
    /// bookkeeping, graph links, field and text indexes.
    pub(crate) fn bytes(&self) -> usize {
        let rows = self.staged();
        let links = 4 * (1 + self.graph.params.m0());
        let ix = self.indexes.read();
        rows * (self.dim * 4 + 8 + 16 + links)
            + self.docs.len()
            + self.vecs.codes.as_ref().map_or(0, Quantized::heap_bytes)
            + ix.fields.bytes()
            + ix.text.heap_bytes()
    }

    /// Smallest LSN whose batch is staged here (needed from the log until this memtable is
    /// sealed), if any.
    pub(crate) fn min_lsn(&self) -> Option<u64> {
        Some(self.min_lsn.load(Ordering::Acquire)).filter(|&l| l > 0)
    }

    /// Largest LSN whose batch is staged here, if any.
    pub(crate) fn max_lsn(&self) -> Option<u64> {
        Some(self.max_lsn.load(Ordering::Acquire)).filter(|&l| l > 0)
    }

    /// Records that the batch with `lsn` touches this memtable's rows or is staged here.
    pub(crate) fn note_lsn(&self, lsn: u64) {
        let _ = self
            .min_lsn
            .compare_exchange(0, lsn, Ordering::AcqRel, Ordering::Acquire);
        self.max_lsn.fetch_max(lsn, Ordering::AcqRel);
    }

    /// Appends a batch's rows, unpublished to searches until a version shows them, and returns
    /// their row numbers; `None` (nothing appended) if they do not fit. One writer at a time.
    pub(crate) fn stage(&self, lsn: u64, rows: &[StageRow<'_>]) -> Option<Range<u32>> {
        let doc_bytes: usize = rows.iter().map(|r| r.2.len()).sum();
        if !self.fits(rows.len(), doc_bytes) {
            return None;
        }
        let start = self.staged();
        let mut vectors = Vec::with_capacity(rows.len() * self.dim);
        let mut spans = Vec::with_capacity(rows.len());
        let mut at = self.docs.len() as u64;
        for &(_, v, doc) in rows {
            extend_f32(&mut vectors, v);
            spans.push([at, doc.len() as u64]);
            at += doc.len() as u64;
        }
        debug_assert_eq!(vectors.len(), rows.len() * self.dim);
        // Indexes first (behind their lock), then the columns: a row is complete before the
        // graph links it.
        {
            let mut ix = self.indexes.write();
            for (i, &(_, _, doc)) in rows.iter().enumerate() {
                let row = (start + i) as u32;
                // A document that does not decode (impossible for one this build encoded) is
                // simply not indexed.
                match StoredDoc::decode_ref(doc) {
                    Some((text, payload)) => {
                        ix.fields.push(row, &payload);
                        if let Some(t) = text {
                            ix.text.push_text(row, &t, &self.analyzer);
                        }
                    }
                    None => ix.fields.set_rows(row + 1),
                }
            }
        }
        // Room was checked above and only one writer stages at a time, so these succeed.
        let ids: Vec<u64> = rows.iter().map(|r| r.0).collect();
        // Documents straight from the batch, one by one (a large text is not copied twice).
        let pushed = rows.iter().all(|r| self.docs.push(r.2).is_ok())
            && self.spans.push(&spans).is_ok()
            && self.vecs.data.push(&vectors).is_ok()
            && self
                .vecs
                .codes
                .as_ref()
                .is_none_or(|c| c.push(&vectors).is_ok())
            && self.ids.push(&ids).is_ok();
        debug_assert!(pushed, "room was checked");
        if !pushed {
            return None;
        }
        self.note_lsn(lsn);
        Some(start as u32..(start + rows.len()) as u32)
    }

    /// Inserts staged rows into the graph, on rayon's pool for larger batches (the pool of
    /// the calling thread: the caller's, or the background pool for a seal's repair).
    pub(crate) fn link(&self, rows: Range<u32>, metric: Metric) -> Result<()> {
        if rows.len() < 64 {
            rows.into_iter()
                .try_for_each(|r| self.graph.insert(r, &self.vecs, metric))
        } else {
            rows.into_par_iter()
                .try_for_each(|r| self.graph.insert(r, &self.vecs, metric))
        }
    }

    pub(crate) fn id_at(&self, row: usize) -> u64 {
        self.ids.as_slice()[row]
    }

    pub(crate) fn vector(&self, row: usize) -> &[f32] {
        self.vecs.rows(row, row + 1)
    }

    /// Vectors of rows `start..end`.
    pub(crate) fn vectors(&self, start: usize, end: usize) -> &[f32] {
        self.vecs.rows(start, end)
    }

    pub(crate) fn doc(&self, row: usize) -> &[u8] {
        let [s, l] = self.spans.as_slice()[row];
        &self.docs.as_slice()[s as usize..(s + l) as usize]
    }

    /// The text index (rows without text may be missing at its end). Held: staging waits.
    pub(crate) fn text(&self) -> MappedRwLockReadGuard<'_, TextIndex> {
        RwLockReadGuard::map(self.indexes.read(), |ix| &ix.text)
    }

    /// The payload field indexes. Held: staging waits.
    pub(crate) fn fields(&self) -> MappedRwLockReadGuard<'_, FieldIndex> {
        RwLockReadGuard::map(self.indexes.read(), |ix| &ix.fields)
    }

    /// The collection's analyzer.
    pub(crate) fn analyzer(&self) -> &Analyzer {
        &self.analyzer
    }
}

/// What a reader sees of a memtable: its first `rows` rows, of which `dead` are deleted or
/// replaced. Cheap to clone.
#[derive(Clone)]
pub(crate) struct MemtableView {
    pub mt: Arc<Memtable>,
    pub rows: u32,
    /// Rows `0..linked` are in the graph; `linked..rows` are not yet (a read-only handle
    /// links in the background) and searches score them exactly.
    pub linked: u32,
    pub dead: Arc<RoaringBitmap>,
}

impl MemtableView {
    /// A view of no rows yet.
    pub(crate) fn new(mt: Arc<Memtable>) -> Self {
        MemtableView {
            mt,
            rows: 0,
            linked: 0,
            dead: Arc::new(RoaringBitmap::new()),
        }
    }

    pub(crate) fn live(&self) -> usize {
        self.rows as usize - self.dead.len() as usize
    }

    pub(crate) fn is_live(&self, row: u32) -> bool {
        row < self.rows && !self.dead.contains(row)
    }

    /// Live rows in row order.
    pub(crate) fn live_rows(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.rows).filter(|&r| !self.dead.contains(r))
    }
}

impl Deref for MemtableView {
    type Target = Memtable;
    fn deref(&self) -> &Memtable {
        &self.mt
    }
}
