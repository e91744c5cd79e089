//! The memtable: a collection's newest rows, in memory, until they are sealed into a segment.
//!
//! Rows are appended; replacing or deleting a row marks it dead (its slot stays until the
//! seal drops it), so row numbers never move while readers hold them.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU32, Ordering as AtomicOrdering};

use rayon::prelude::*;
use roaring::RoaringBitmap;

use crate::error::Result;
use crate::index::fields::FieldIndex;
use crate::index::hnsw::HnswParams;
use crate::index::hnsw::graph::MemGraph;
use crate::index::text::{Analyzer, TextIndex};
use crate::model::config::CollectionConfig;
use crate::model::record::StoredDoc;
use crate::vector::distance::Metric;
use crate::vector::quant::Quantized;
use crate::vector::{FlatVectors, extend_f32};

/// In-memory rows of one collection.
pub(crate) struct Memtable {
    dim: usize,
    ids: Vec<u64>,
    /// The rows' vectors, and their int8 copies that graph inserts and searches walk over
    /// (none for L2).
    pub flat: FlatVectors,
    /// (start, len) of each row's encoded document in `docs`.
    spans: Vec<(usize, usize)>,
    docs: Vec<u8>,
    live: Vec<bool>,
    /// Rows that are not live (replaced or deleted), for filtered search.
    dead: RoaringBitmap,
    /// Payload field indexes over every row.
    fields: FieldIndex,
    /// The collection's text analyzer.
    analyzer: Analyzer,
    /// Inverted index of the rows' text.
    text: TextIndex,
    by_id: HashMap<u64, u32>,
    live_count: usize,
    /// Smallest LSN whose effect is held here (and so still needed from the log).
    pub min_lsn: Option<u64>,
    /// HNSW graph over every row, dead ones included (they keep it connected).
    pub graph: MemGraph,
    /// Rows below this are fully linked into the graph.
    indexed: AtomicU32,
}

impl Memtable {
    pub(crate) fn new(config: &CollectionConfig) -> Self {
        Memtable {
            graph: MemGraph::new(HnswParams::of(config)),
            dim: config.dim,
            analyzer: Analyzer::new(&config.text),
            text: TextIndex::new(),
            indexed: AtomicU32::new(0),
            ids: Vec::new(),
            flat: FlatVectors {
                dim: config.dim,
                data: Vec::new(),
                codes: (config.metric != Metric::L2).then(|| Quantized::new(config.dim)),
            },
            spans: Vec::new(),
            docs: Vec::new(),
            live: Vec::new(),
            dead: RoaringBitmap::new(),
            fields: FieldIndex::new(),
            by_id: HashMap::new(),
            live_count: 0,
            min_lsn: None,
        }
    }

    /// Rows ever appended, dead or alive.
    pub(crate) fn rows(&self) -> usize {
        self.ids.len()
    }

    pub(crate) fn live_count(&self) -> usize {
        self.live_count
    }

    /// Approximate heap bytes held: vectors, documents, per-row bookkeeping (id, span, live
    /// flag, id map entry) and the graph's level-0 links.
    pub(crate) fn bytes(&self) -> usize {
        let links = 4 * (1 + self.graph.params.m0());
        self.flat.data.len() * 4
            + self.docs.len()
            + self.ids.len() * (8 + 16 + 1 + 16 + links)
            + self.fields.bytes()
            + self.text.heap_bytes()
            + self.flat.codes.as_ref().map_or(0, Quantized::heap_bytes)
    }

    pub(crate) fn note_lsn(&mut self, lsn: u64) {
        self.min_lsn.get_or_insert(lsn);
    }

    /// Appends a row; the caller has removed any older version of `id`.
    pub(crate) fn push(&mut self, id: u64, vector_le: &[u8], doc: &[u8]) {
        let row = self.ids.len() as u32;
        self.ids.push(id);
        let flat = &mut self.flat;
        let cap = flat.data.capacity();
        extend_f32(&mut flat.data, vector_le);
        if flat.data.capacity() != cap {
            crate::io::mmap::advise_huge_pages(&flat.data);
        }
        debug_assert_eq!(flat.data.len(), self.ids.len() * self.dim);
        if let Some(codes) = &mut flat.codes {
            codes.push(&flat.data[row as usize * self.dim..]);
        }
        self.spans.push((self.docs.len(), doc.len()));
        self.docs.extend_from_slice(doc);
        self.live.push(true);
        // A document that does not decode (impossible for one this build encoded) is simply
        // not indexed.
        match StoredDoc::decode(doc) {
            Some((text, payload)) => {
                self.fields.push(row, &payload);
                if let Some(t) = text {
                    self.text.push(row, &self.analyzer.terms(&t));
                }
            }
            None => self.fields.set_rows(row + 1),
        }
        self.by_id.insert(id, row);
        self.live_count += 1;
    }

    /// Marks the row of `id` dead; returns whether it was live here.
    pub(crate) fn remove(&mut self, id: u64) -> bool {
        match self.by_id.remove(&id) {
            Some(row) => {
                self.live[row as usize] = false;
                self.dead.insert(row);
                self.live_count -= 1;
                true
            }
            None => false,
        }
    }

    pub(crate) fn find(&self, id: u64) -> Option<usize> {
        self.by_id.get(&id).map(|&r| r as usize)
    }

    pub(crate) fn is_live(&self, row: usize) -> bool {
        self.live[row]
    }

    pub(crate) fn id_at(&self, row: usize) -> u64 {
        self.ids[row]
    }

    pub(crate) fn vector(&self, row: usize) -> &[f32] {
        &self.flat.data[row * self.dim..(row + 1) * self.dim]
    }

    /// Vectors of rows `start..end`.
    pub(crate) fn vectors(&self, start: usize, end: usize) -> &[f32] {
        &self.flat.data[start * self.dim..end * self.dim]
    }

    pub(crate) fn doc(&self, row: usize) -> &[u8] {
        let (s, l) = self.spans[row];
        &self.docs[s..s + l]
    }

    /// Reserves graph nodes for rows not yet in the graph; returns them. Needs `&mut`; the
    /// insertion itself ([`index`](Self::index)) only needs `&self`, so readers can search
    /// meanwhile.
    pub(crate) fn reserve_graph(&mut self) -> Range<u32> {
        let start = self.graph.nodes_reserved() as u32;
        self.graph.reserve(self.rows());
        start..self.rows() as u32
    }

    /// Inserts the reserved rows into the graph, on rayon's pool for larger batches. Until it
    /// returns, the rows are [`pending`](Self::pending): searches scan them.
    pub(crate) fn index(&self, rows: Range<u32>, metric: Metric) -> Result<()> {
        let end = rows.end;
        if rows.len() < 64 {
            rows.into_iter()
                .try_for_each(|r| self.graph.insert(r, &self.flat, metric))?;
        } else {
            rows.into_par_iter()
                .try_for_each(|r| self.graph.insert(r, &self.flat, metric))?;
        }
        self.indexed.fetch_max(end, AtomicOrdering::Release);
        Ok(())
    }

    /// Rows applied but not yet (known to be) linked into the graph: a search scans them, so
    /// a batch is visible to graph searches as a whole from the moment it is applied.
    pub(crate) fn pending(&self) -> Range<u32> {
        self.indexed.load(AtomicOrdering::Acquire)..self.rows() as u32
    }

    /// Rows that are not live.
    pub(crate) fn dead(&self) -> &RoaringBitmap {
        &self.dead
    }

    /// The text index (rows without text may be missing at its end).
    pub(crate) fn text(&self) -> &TextIndex {
        &self.text
    }

    /// The collection's analyzer.
    pub(crate) fn analyzer(&self) -> &Analyzer {
        &self.analyzer
    }

    /// The payload field indexes.
    pub(crate) fn fields(&self) -> &FieldIndex {
        &self.fields
    }

    /// Live rows in row order.
    pub(crate) fn live_rows(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.rows()).filter(|&r| self.live[r])
    }
}
