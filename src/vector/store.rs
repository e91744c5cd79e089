//! Vector stores and scorers: the traits graph walks and exact scans read vectors through,
//! and the in-memory row store that memtables and bulk builds keep their vectors in.
//!
//! ```text
//!   Vectors   f32 rows by node number (FlatVectors on the heap, a segment's mapped file)
//!   Score     one query's score of a node: Exact (the metric over Vectors), or QuantScorer
//!             (the int8 copy, quant.rs)
//! ```

use crate::error::Result;
use crate::vector::distance::Metric;
use crate::vector::quant::Quantized;

/// Read access to the vectors a graph links.
pub(crate) trait Vectors {
    fn vector(&self, node: u32) -> Result<&[f32]>;
    /// Hint that `node`'s vector will be read soon.
    #[inline]
    fn prefetch(&self, _node: u32) {}
    /// The int8 copies of the vectors (`index::quant`), if the store keeps them; graph
    /// construction then walks over the copies.
    #[inline]
    fn quantized(&self) -> Option<&Quantized> {
        None
    }
}

/// Scores nodes against one query: exactly from the f32 vectors ([`Exact`]), or from a
/// compressed copy (`index::quant`).
pub(crate) trait Score {
    /// Whether the scores are exact (no re-scoring needed).
    const EXACT: bool = false;
    /// The similarity of `node` to the query (higher is better).
    fn score(&self, node: u32) -> Result<f32>;
    /// Hint that `node` will be scored soon.
    #[inline]
    fn prefetch(&self, _node: u32) {}
}

/// Exact scores: the metric over the f32 vectors.
pub(crate) struct Exact<'a, V> {
    pub vecs: &'a V,
    pub metric: Metric,
    pub q: &'a [f32],
}

impl<V: Vectors> Score for Exact<'_, V> {
    const EXACT: bool = true;

    #[inline]
    fn score(&self, node: u32) -> Result<f32> {
        Ok(self.metric.score(self.q, self.vecs.vector(node)?))
    }

    #[inline]
    fn prefetch(&self, node: u32) {
        self.vecs.prefetch(node);
    }
}

/// Vectors in one contiguous array (bulk builds and tests).
pub(crate) struct FlatVectors {
    pub dim: usize,
    pub data: Vec<f32>,
    /// Int8 copies that graph construction walks over (cosine and dot).
    pub codes: Option<Quantized>,
}

impl FlatVectors {
    pub(crate) fn gather<'a>(dim: usize, rows: impl Iterator<Item = &'a [f32]>) -> Self {
        let mut data = Vec::new();
        for r in rows {
            data.extend_from_slice(r);
        }
        FlatVectors {
            dim,
            data,
            codes: None,
        }
    }

    /// Adds int8 copies of the rows when `on` (the collection walks over them).
    pub(crate) fn with_codes(mut self, on: bool) -> Self {
        if on {
            let (dim, data) = (self.dim, &self.data);
            let rows = data.len() / dim.max(1);
            let q = Quantized::build(dim, rows, |s, e| Ok(&data[s * dim..e * dim]));
            self.codes = q.ok();
        }
        self
    }
}

impl Vectors for FlatVectors {
    #[inline]
    fn vector(&self, node: u32) -> Result<&[f32]> {
        let s = node as usize * self.dim;
        Ok(&self.data[s..s + self.dim])
    }

    #[inline]
    fn prefetch(&self, node: u32) {
        let s = node as usize * self.dim;
        if let Some(v) = self.data.get(s..s + self.dim) {
            crate::io::mmap::prefetch_f32(v);
        }
    }

    #[inline]
    fn quantized(&self) -> Option<&Quantized> {
        self.codes.as_ref()
    }
}

/// Rows held by reference: a compaction's live rows, read through its input segments' maps
/// (the page cache), so building the merged graph copies no f32 vector to the heap; only the
/// int8 copy that construction walks over (about a quarter of the f32 bytes) is built there.
pub(crate) struct RowRefs<'a> {
    rows: Vec<&'a [f32]>,
    codes: Option<Quantized>,
}

impl<'a> RowRefs<'a> {
    /// `rows`, each of `dim` floats; with `codes`, their int8 copy too.
    pub(crate) fn new(dim: usize, rows: Vec<&'a [f32]>, codes: bool) -> Result<Self> {
        let codes = if codes {
            let q = Quantized::new(dim, rows.len());
            for r in &rows {
                q.push(r).map_err(|_| {
                    crate::error::Error::InvalidArgument("int8 rows overflow".into())
                })?;
            }
            Some(q)
        } else {
            None
        };
        Ok(RowRefs { rows, codes })
    }
}

impl Vectors for RowRefs<'_> {
    #[inline]
    fn vector(&self, node: u32) -> Result<&[f32]> {
        Ok(self.rows[node as usize])
    }

    #[inline]
    fn prefetch(&self, node: u32) {
        if let Some(v) = self.rows.get(node as usize) {
            crate::io::mmap::prefetch_f32(v);
        }
    }

    #[inline]
    fn quantized(&self) -> Option<&Quantized> {
        self.codes.as_ref()
    }
}

/// Reads little-endian f32s from `bytes` into `out`.
pub(crate) fn extend_f32(out: &mut Vec<f32>, bytes: &[u8]) {
    out.extend(
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
    );
}
