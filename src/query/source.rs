//! What the query engine searches: *sources* of rows. A source is one sealed segment with its
//! tombstones, or one memtable; every source numbers its rows `0..rows` and knows which of
//! them are dead. The engine reads sources only through [`Source`], so it can be tested on
//! memtables alone, without a database.

use std::ops::Deref;

use parking_lot::MappedRwLockReadGuard;
use roaring::RoaringBitmap;

use crate::error::{Error, Result};
use crate::index::fields::FieldIndex;
use crate::index::hnsw::graph::MemGraph;
use crate::index::hnsw::search::Links;
use crate::index::text::{Analyzer, LiveCache, TextIndex};
use crate::memtable::{MemVectors, MemtableView};
use crate::model::id::{Id, IdType};
use crate::model::record::{Payload, StoredDoc};
use crate::vector::quant::Quantized;
use crate::vector::{Metric, Vectors};

/// Read access to one source's rows and indexes.
pub(crate) trait Source: Sync {
    /// The graph over the source's rows.
    type Graph: Links + Sync;
    /// The source's f32 vectors, by row.
    type Vecs: Vectors + Sync;
    /// The payload field indexes, borrowed (a memtable's are locked while borrowed).
    type Fields<'a>: Deref<Target = FieldIndex>
    where
        Self: 'a;
    /// The text index, borrowed (a memtable's is locked while borrowed).
    type Text<'a>: Deref<Target = TextIndex>
    where
        Self: 'a;

    /// Rows, dead ones included: the source is rows `0..rows`. (A memtable's graph and
    /// indexes may hold more, appended after this view was taken; they are not part of it.)
    fn rows(&self) -> usize;
    /// Rows `0..linked()` are in the graph; the rest are scored exactly by graph searches.
    fn linked(&self) -> usize {
        self.rows()
    }
    /// Rows that are not live (deleted or replaced).
    fn dead(&self) -> &RoaringBitmap;
    /// Live rows.
    fn live(&self) -> usize {
        self.rows() - self.dead().len() as usize
    }
    /// The record id (integer, or a string id's key) of `row`; an error when the block of
    /// the segment's ids file that holds it fails its check.
    fn id_at(&self, row: u32) -> Result<u64>;
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
    /// The string id that the document of `row` starts with (collections of string ids);
    /// an error if it has none.
    fn doc_id(&self, row: u32) -> Result<String>;
    /// The record id of `row`: its key for integer ids, the stored string for string ids.
    fn record_id(&self, id_type: IdType, row: u32) -> Result<Id> {
        Ok(match id_type {
            IdType::Int => Id::Int(self.id_at(row)?),
            IdType::Str => Id::Str(self.doc_id(row)?),
        })
    }
    /// The payload field indexes.
    fn fields(&self) -> Result<Self::Fields<'_>>;
    /// The text index.
    fn text(&self) -> Result<Self::Text<'_>>;
    /// Where the text statistics' dead-row counts are kept between queries (a segment's: its
    /// rows never change), if anywhere.
    fn text_live(&self) -> Option<&LiveCache> {
        None
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
    pub memtables: &'a [M],
    pub metric: Metric,
    /// Level-0 degree of the graphs (the planner's cost model).
    pub m0: usize,
    pub analyzer: &'a Analyzer,
    /// The collection's kind of ids (how a hit's id is read).
    pub id_type: IdType,
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
            None => mem(&self.memtables[i - self.segments.len()]),
        }
    }

    pub(crate) fn id_at(&self, source: u32, row: u32) -> Result<u64> {
        self.with(source as usize, |s| s.id_at(row), |m| m.id_at(row))
    }

    pub(crate) fn doc(&self, source: u32, row: u32) -> Result<(Option<String>, Payload)> {
        self.with(source as usize, |s| s.doc(row), |m| m.doc(row))
    }

    /// The record id of `row` of `source`.
    pub(crate) fn record_id(&self, source: u32, row: u32) -> Result<Id> {
        let t = self.id_type;
        self.with(
            source as usize,
            |s| s.record_id(t, row),
            |m| m.record_id(t, row),
        )
    }
}

impl Source for MemtableView {
    type Graph = MemGraph;
    type Vecs = MemVectors;
    type Fields<'a> = MappedRwLockReadGuard<'a, FieldIndex>;
    type Text<'a> = MappedRwLockReadGuard<'a, TextIndex>;

    fn rows(&self) -> usize {
        self.rows as usize
    }
    fn linked(&self) -> usize {
        self.linked.min(self.rows) as usize
    }
    fn dead(&self) -> &RoaringBitmap {
        &self.dead
    }
    fn live(&self) -> usize {
        MemtableView::live(self)
    }
    fn id_at(&self, row: u32) -> Result<u64> {
        Ok(self.mt.id_at(row as usize))
    }
    fn graph(&self) -> &MemGraph {
        &self.mt.graph
    }
    fn vecs(&self) -> &MemVectors {
        &self.mt.vecs
    }
    fn quantized(&self) -> Option<&Quantized> {
        self.mt.vecs.codes.as_ref()
    }
    fn vectors(&self, start: usize, end: usize) -> Result<&[f32]> {
        Ok(self.mt.vectors(start, end))
    }
    fn doc(&self, row: u32) -> Result<(Option<String>, Payload)> {
        StoredDoc::decode(self.mt.doc(row as usize)).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "record {} has an undecodable payload",
                self.mt.id_at(row as usize)
            ))
        })
    }
    fn doc_id(&self, row: u32) -> Result<String> {
        match StoredDoc::id(self.mt.doc(row as usize)) {
            Some(Some(id)) => Ok(id.to_owned()),
            _ => Err(Error::InvalidArgument(format!(
                "memtable row {row} (key {}) has no string id",
                self.mt.id_at(row as usize)
            ))),
        }
    }
    fn fields(&self) -> Result<Self::Fields<'_>> {
        Ok(self.mt.fields())
    }
    fn text(&self) -> Result<Self::Text<'_>> {
        Ok(self.mt.text())
    }
    fn is_live(&self, row: u32) -> bool {
        MemtableView::is_live(self, row)
    }
    fn describe(&self) -> String {
        "memtable".to_owned()
    }
}
