//! What the query engine searches: *sources* of rows. A source is one sealed segment with its
//! tombstones, or one memtable; every source numbers its rows `0..rows` and knows which of
//! them are dead. The engine reads sources only through [`Source`], so it can be tested on
//! memtables alone, without a database.

use std::ops::Range;

use roaring::RoaringBitmap;

use crate::error::{Error, Result};
use crate::index::fields::FieldIndex;
use crate::index::hnsw::graph::MemGraph;
use crate::index::hnsw::search::Links;
use crate::index::text::{Analyzer, TextIndex};
use crate::memtable::Memtable;
use crate::model::record::{Payload, StoredDoc};
use crate::vector::quant::Quantized;
use crate::vector::{FlatVectors, Metric, Vectors};

/// Read access to one source's rows and indexes.
pub(crate) trait Source: Sync {
    /// The graph over the source's rows.
    type Graph: Links + Sync;
    /// The source's f32 vectors, by row.
    type Vecs: Vectors + Sync;

    /// Rows, dead ones included.
    fn rows(&self) -> usize;
    /// Rows that are not live (deleted or replaced).
    fn dead(&self) -> &RoaringBitmap;
    /// Live rows.
    fn live(&self) -> usize {
        self.rows() - self.dead().len() as usize
    }
    /// The record id of `row`.
    fn id_at(&self, row: u32) -> u64;
    /// The HNSW graph over every row.
    fn graph(&self) -> &Self::Graph;
    /// The vectors, for graph walks and re-scoring.
    fn vecs(&self) -> &Self::Vecs;
    /// The int8 copy of the vectors that graph walks score, when it is available.
    fn quantized(&self) -> Option<&Quantized>;
    /// Vectors of rows `start..end`, contiguous (exact scans).
    fn vectors(&self, start: usize, end: usize) -> Result<&[f32]>;
    /// The text and payload of `row`.
    fn doc(&self, row: u32) -> Result<(Option<String>, Payload)>;
    /// The payload field indexes.
    fn fields(&self) -> Result<&FieldIndex>;
    /// The text index.
    fn text(&self) -> Result<&TextIndex>;
    /// Rows not yet linked into the graph (a batch being indexed): searches scan them.
    fn pending(&self) -> Range<u32> {
        0..0
    }
    /// Whether `row` is live.
    fn is_live(&self, row: u32) -> bool {
        !self.dead().contains(row)
    }
    /// How `explain` names the source: `segment <id>` or `memtable`.
    fn describe(&self) -> String;
}

/// Everything one search reads: the sources, oldest first — segments, then memtables —
/// numbered in that order, and what they share.
pub(crate) struct View<'a, S, M> {
    pub segments: &'a [S],
    pub memtables: &'a [&'a M],
    pub metric: Metric,
    /// Level-0 degree of the graphs (the planner's cost model).
    pub m0: usize,
    pub analyzer: &'a Analyzer,
}

impl<S: Source, M: Source> View<'_, S, M> {
    /// Number of sources.
    pub(crate) fn len(&self) -> usize {
        self.segments.len() + self.memtables.len()
    }

    /// Runs `seg` or `mem` on source `i`.
    pub(crate) fn with<R>(
        &self,
        i: usize,
        seg: impl FnOnce(&S) -> R,
        mem: impl FnOnce(&M) -> R,
    ) -> R {
        match self.segments.get(i) {
            Some(s) => seg(s),
            None => mem(self.memtables[i - self.segments.len()]),
        }
    }

    pub(crate) fn id_at(&self, source: u32, row: u32) -> u64 {
        self.with(source as usize, |s| s.id_at(row), |m| m.id_at(row))
    }

    pub(crate) fn doc(&self, source: u32, row: u32) -> Result<(Option<String>, Payload)> {
        self.with(source as usize, |s| s.doc(row), |m| m.doc(row))
    }
}

impl Source for Memtable {
    type Graph = MemGraph;
    type Vecs = FlatVectors;

    fn rows(&self) -> usize {
        Memtable::rows(self)
    }
    fn dead(&self) -> &RoaringBitmap {
        Memtable::dead(self)
    }
    fn live(&self) -> usize {
        self.live_count()
    }
    fn id_at(&self, row: u32) -> u64 {
        Memtable::id_at(self, row as usize)
    }
    fn graph(&self) -> &MemGraph {
        &self.graph
    }
    fn vecs(&self) -> &FlatVectors {
        &self.flat
    }
    fn quantized(&self) -> Option<&Quantized> {
        self.flat.codes.as_ref()
    }
    fn vectors(&self, start: usize, end: usize) -> Result<&[f32]> {
        Ok(Memtable::vectors(self, start, end))
    }
    fn doc(&self, row: u32) -> Result<(Option<String>, Payload)> {
        StoredDoc::decode(Memtable::doc(self, row as usize)).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "record {} has an undecodable payload",
                Memtable::id_at(self, row as usize)
            ))
        })
    }
    fn fields(&self) -> Result<&FieldIndex> {
        Ok(Memtable::fields(self))
    }
    fn text(&self) -> Result<&TextIndex> {
        Ok(Memtable::text(self))
    }
    fn pending(&self) -> Range<u32> {
        Memtable::pending(self)
    }
    fn is_live(&self, row: u32) -> bool {
        Memtable::is_live(self, row as usize)
    }
    fn describe(&self) -> String {
        "memtable".to_owned()
    }
}
