//! Int8 copies of a segment's vectors, for the graph walk.
//!
//! Each row `x` is stored as `round(x / s)` in `i8` with its own scale `s = max|x| / 127`. A walk
//! scores nodes by `s_x · s_q · (x̂ · q̂)` (an int8 dot product: a quarter of the bytes of the f32
//! row, one cache line at 50-d), and the rows it returns are re-scored exactly from the f32
//! vectors before they become hits, so the walk's approximation affects which rows are found,
//! never their scores or order. Used for the cosine and dot metrics.

use bytemuck::{Pod, Zeroable};
use simsimd::SpatialSimilarity;

use crate::error::Result;
use crate::io::mmap::{Arena, ArenaFull};
use crate::vector::store::Score;

/// One cache line.
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
#[repr(C, align(64))]
struct Line([i8; 64]);

/// Int8 rows, each followed by its scale (f32 LE) and starting on a 64-byte boundary: one
/// row's codes and scale share its cache lines. Rows are appended with [`push`](Self::push)
/// into room reserved at creation; rows already pushed can be read while more are appended.
pub(crate) struct Quantized {
    dim: usize,
    /// Cache lines per row.
    lines_per_row: usize,
    lines: Arena<Line>,
}

impl std::fmt::Debug for Quantized {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quantized")
            .field("dim", &self.dim)
            .field("rows", &self.rows())
            .finish()
    }
}

/// Quantizes `v` into `out`; returns the scale.
fn quantize(v: &[f32], out: &mut [i8]) -> f32 {
    let m = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    if m == 0.0 || !m.is_finite() {
        out.fill(0);
        return 0.0;
    }
    let inv = 127.0 / m;
    for (o, x) in out.iter_mut().zip(v) {
        *o = (x * inv).round().clamp(-127.0, 127.0) as i8;
    }
    m / 127.0
}

impl Quantized {
    /// An empty store with room for `rows` rows of `dim` floats.
    pub(crate) fn new(dim: usize, rows: usize) -> Quantized {
        let lines_per_row = (dim + 4).div_ceil(64);
        Quantized {
            dim,
            lines_per_row,
            lines: Arena::with_capacity(rows.saturating_mul(lines_per_row)),
        }
    }

    /// Quantizes `rows` rows of `dim` floats, read in chunks by `read(start, end)`.
    pub(crate) fn build<'a>(
        dim: usize,
        rows: usize,
        read: impl Fn(usize, usize) -> Result<&'a [f32]>,
    ) -> Result<Quantized> {
        let q = Quantized::new(dim, rows);
        const CHUNK: usize = 4096;
        let mut start = 0;
        while start < rows {
            let end = (start + CHUNK).min(rows);
            q.push(read(start, end)?)
                .map_err(|_| crate::error::Error::InvalidArgument("int8 rows overflow".into()))?;
            start = end;
        }
        Ok(q)
    }

    /// Rows stored.
    pub(crate) fn rows(&self) -> usize {
        self.lines.len() / self.lines_per_row
    }

    /// Appends the codes of `vectors` (whole rows of `dim` floats) and publishes them at once.
    pub(crate) fn push(&self, vectors: &[f32]) -> std::result::Result<(), ArenaFull> {
        debug_assert_eq!(vectors.len() % self.dim.max(1), 0);
        let mut lines = vec![Line([0; 64]); vectors.len() / self.dim.max(1) * self.lines_per_row];
        for (v, out) in vectors
            .chunks_exact(self.dim.max(1))
            .zip(lines.chunks_exact_mut(self.lines_per_row))
        {
            let row: &mut [i8] = bytemuck::cast_slice_mut(out);
            let scale = quantize(v, &mut row[..self.dim]);
            for (b, x) in row[self.dim..self.dim + 4]
                .iter_mut()
                .zip(scale.to_le_bytes())
            {
                *b = x as i8;
            }
        }
        self.lines.push(&lines).map(|_| ())
    }

    /// The codes and the scale of `node`, `None` past the last row.
    #[inline]
    pub(crate) fn row(&self, node: u32) -> Option<(&[i8], f32)> {
        let at = node as usize * self.lines_per_row;
        let lines = self.lines.as_slice().get(at..at + self.lines_per_row)?;
        let r: &[i8] = bytemuck::cast_slice(lines);
        let (codes, rest) = r.split_at(self.dim);
        let scale =
            f32::from_le_bytes([rest[0] as u8, rest[1] as u8, rest[2] as u8, rest[3] as u8]);
        Some((codes, scale))
    }

    /// Hints that `node`'s row will be read soon (computes its address, reads nothing).
    #[inline]
    pub(crate) fn prefetch(&self, node: u32) {
        let at = node as usize * self.lines_per_row;
        if let Some(lines) = self.lines.as_slice().get(at..at + self.lines_per_row) {
            crate::io::mmap::prefetch(bytemuck::cast_slice(lines));
        }
    }

    /// Heap bytes in use (the rows stored; the reserved rest costs no memory until written).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.lines.len() * 64
    }
}

/// Scores the rows of a [`Quantized`] against one query (a row past the end scores −∞).
pub(crate) struct QuantScorer<'a> {
    qz: &'a Quantized,
    query: Vec<i8>,
    qscale: f32,
}

impl<'a> QuantScorer<'a> {
    /// A scorer for the (prepared) query `q`.
    pub(crate) fn new(qz: &'a Quantized, q: &[f32]) -> Self {
        let mut query = vec![0i8; q.len()];
        let qscale = quantize(q, &mut query);
        QuantScorer { qz, query, qscale }
    }
}

impl Score for QuantScorer<'_> {
    #[inline]
    fn score(&self, node: u32) -> Result<f32> {
        let Some((codes, s)) = self.qz.row(node) else {
            return Ok(f32::NEG_INFINITY);
        };
        let dot = <i8 as SpatialSimilarity>::dot(&self.query, codes).unwrap_or(0.0);
        Ok(dot as f32 * s * self.qscale)
    }

    #[inline]
    fn prefetch(&self, node: u32) {
        self.qz.prefetch(node);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vector::distance::Metric;
    use rand::{RngExt, SeedableRng};

    fn rows(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
        (0..n * dim)
            .map(|_| rng.random_range(-1.0f32..1.0))
            .collect()
    }

    #[test]
    fn codes_are_within_half_a_step_and_rows_are_aligned() {
        for dim in [1, 3, 50, 60, 64, 384] {
            let data = rows(33, dim, dim as u64);
            let qz = Quantized::build(dim, 33, |s, e| Ok(&data[s * dim..e * dim])).unwrap();
            for (i, v) in data.chunks_exact(dim).enumerate() {
                let (codes, scale) = qz.row(i as u32).unwrap();
                assert_eq!(codes.as_ptr().align_offset(64), 0, "row {i} of dim {dim}");
                let m = v.iter().fold(0f32, |m, x| m.max(x.abs()));
                assert!((scale - m / 127.0).abs() <= 1e-7);
                for (x, &c) in v.iter().zip(codes) {
                    assert!(
                        (x - c as f32 * scale).abs() <= scale * 0.5 + 1e-6,
                        "{x} vs {c}·{scale}"
                    );
                }
            }
        }
    }

    #[test]
    fn zero_rows_score_zero_and_out_of_range_nodes_score_minus_infinity() {
        let data = [0.0f32; 8];
        let qz = Quantized::build(4, 2, |s, e| Ok(&data[s * 4..e * 4])).unwrap();
        let sc = QuantScorer::new(&qz, &[1.0, 0.0, 0.0, 0.0]);
        assert_eq!(sc.score(1).unwrap(), 0.0);
        assert_eq!(sc.score(2).unwrap(), f32::NEG_INFINITY);
    }

    #[test]
    fn int8_scores_track_exact_scores() {
        // Over 2,000 random 64-d rows, the int8 score of each row is within 2 % of the score
        // range of the exact dot product, and the exact top 10 lies within the int8 top 40.
        let (n, dim) = (2000, 64);
        let data = rows(n, dim, 7);
        let qz = Quantized::build(dim, n, |s, e| Ok(&data[s * dim..e * dim])).unwrap();
        for seed in 0..20 {
            let q = rows(1, dim, 100 + seed);
            let sc = QuantScorer::new(&qz, &q);
            let exact: Vec<f32> = data
                .chunks_exact(dim)
                .map(|v| Metric::Dot.score(&q, v))
                .collect();
            let approx: Vec<f32> = (0..n as u32).map(|i| sc.score(i).unwrap()).collect();
            let range = exact.iter().fold(0f32, |m, x| m.max(x.abs()));
            for (e, a) in exact.iter().zip(&approx) {
                assert!((e - a).abs() <= 0.02 * range, "exact {e}, int8 {a}");
            }
            let top = |s: &[f32], k: usize| {
                let mut idx: Vec<usize> = (0..n).collect();
                idx.sort_by(|&a, &b| s[b].total_cmp(&s[a]));
                idx.truncate(k);
                idx
            };
            let wide = top(&approx, 40);
            assert!(top(&exact, 10).iter().all(|i| wide.contains(i)));
        }
    }
}
