//! Int8 copies of a segment's vectors, for the graph walk.
//!
//! Each row `x` is stored as `round(x / s)` in `i8` with its own scale `s = max|x| / 127`. A walk
//! scores nodes by `s_x · s_q · (x̂ · q̂)` (an int8 dot product: a quarter of the bytes of the f32
//! row, one cache line at 50-d), and the rows it returns are re-scored exactly from the f32
//! vectors before they become hits, so the walk's approximation affects which rows are found,
//! never their scores or order. Used for the cosine and dot metrics.
//!
//! The same store holds RaBitQ rows (`rabitq.rs`, 1 or 4 bits per dimension, every metric):
//! [`Codec`] says which, and [`QuantScorer`] scores either (RaBitQ rows also give a bound on
//! the error of their estimate, which decides how many candidates are re-scored).

use bytemuck::{Pod, Zeroable};
use simsimd::SpatialSimilarity;

use std::path::PathBuf;

use crate::error::Result;
use crate::io::blocks::BlockCheck;
use crate::io::header::HEADER_LEN;
use crate::io::mmap::{Arena, ArenaFull, Mmap};
use crate::vector::Metric;
use crate::vector::rabitq::{self, RaBitQ};
use crate::vector::store::Score;

/// One cache line.
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
#[repr(C, align(64))]
struct Line([i8; 64]);

/// Int8 rows, each followed by its scale (f32 LE) and starting on a 64-byte boundary: one
/// row's codes and scale share its cache lines. A memtable's rows live on the heap, appended
/// with [`push`](Self::push) into room reserved at creation (rows already pushed can be read
/// while more are appended); a segment's rows are its `codes` file, mapped
/// ([`mapped`](Self::mapped)), each 64 KiB block checked on first touch like the vectors.
pub(crate) struct Quantized {
    dim: usize,
    /// Cache lines per row (int8).
    lines_per_row: usize,
    /// Bytes per row.
    row_len: usize,
    codec: Codec,
    store: Store,
}

/// What the rows hold.
#[derive(Debug, Clone)]
pub(crate) enum Codec {
    Int8,
    /// RaBitQ rows, with the centroid and rotation they were encoded against.
    RaBitQ(RaBitQ),
}

impl Codec {
    fn row_len(&self, dim: usize) -> usize {
        match self {
            Codec::Int8 => row_bytes(dim),
            Codec::RaBitQ(r) => r.row_len(),
        }
    }
}

/// 16 bytes (RaBitQ heap rows are multiples of it).
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
#[repr(C, align(16))]
struct Chunk([u8; 16]);

enum Store {
    Heap(Arena<Line>),
    Heap16(Arena<Chunk>),
    Mapped(MappedCodes),
}

/// A segment's `codes` file, checked at open (header, sizes, checksum table).
pub(crate) struct MappedCodes {
    pub map: Mmap,
    pub path: PathBuf,
    pub rows: usize,
    pub blocks: BlockCheck,
    /// Offset of the block checksum table.
    pub table_off: usize,
    /// Offset of row 0 in the body (after a RaBitQ file's preamble and centroid).
    pub rows_off: usize,
}

impl MappedCodes {
    fn data(&self) -> &[u8] {
        &self.map.bytes()[HEADER_LEN..self.table_off]
    }
}

/// Bytes of a RaBitQ codes file's preamble: 64 bytes of parameters, then the centroid
/// (`dim` f32 LE) zero-padded to a multiple of 64.
pub(crate) fn rabitq_preamble_len(dim: usize) -> usize {
    64 + (dim * 4).div_ceil(64) * 64
}

/// The preamble of a RaBitQ codes file: bits (u8), 7 zero bytes, the rotation seed (u64 LE),
/// the rotation rounds (u32 LE), the row length (u32 LE), zeros to 64; the centroid.
pub(crate) fn rabitq_preamble(r: &RaBitQ) -> Vec<u8> {
    let mut b = vec![0u8; rabitq_preamble_len(r.dim)];
    b[0] = r.bits;
    b[8..16].copy_from_slice(&r.seed.to_le_bytes());
    b[16..20].copy_from_slice(&(rabitq::ROUNDS as u32).to_le_bytes());
    b[20..24].copy_from_slice(&(r.row_len() as u32).to_le_bytes());
    for (i, c) in r.centroid.iter().enumerate() {
        b[64 + 4 * i..68 + 4 * i].copy_from_slice(&c.to_le_bytes());
    }
    b
}

/// Decodes a preamble written by [`rabitq_preamble`] for `bits`-bit codes of `dim`
/// dimensions; `Err` says what is wrong.
pub(crate) fn parse_rabitq_preamble(
    b: &[u8],
    dim: usize,
    bits: u8,
) -> std::result::Result<RaBitQ, String> {
    if b.len() < rabitq_preamble_len(dim) {
        return Err("file too short for its preamble".into());
    }
    if b[0] != bits {
        return Err(format!(
            "holds {}-bit codes, the manifest says {bits}",
            b[0]
        ));
    }
    let rounds = u32::from_le_bytes([b[16], b[17], b[18], b[19]]);
    if rounds as usize != rabitq::ROUNDS {
        return Err(format!("rotation of {rounds} rounds is not supported"));
    }
    let row_len = u32::from_le_bytes([b[20], b[21], b[22], b[23]]) as usize;
    if row_len != rabitq::row_len(dim, bits) {
        return Err(format!(
            "row length {row_len} is not that of {bits}-bit codes"
        ));
    }
    let seed = u64::from_le_bytes(b[8..16].try_into().expect("8 bytes"));
    let centroid: Vec<f32> = b[64..64 + dim * 4]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if centroid.iter().any(|c| !c.is_finite()) {
        return Err("the centroid is not finite".into());
    }
    Ok(RaBitQ::new(dim, bits, seed, centroid))
}

impl std::fmt::Debug for Quantized {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quantized")
            .field("dim", &self.dim)
            .field("rows", &self.rows())
            .field("mapped", &matches!(self.store, Store::Mapped(_)))
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

/// Bytes of one row's codes and scale, padded to whole cache lines.
pub(crate) fn row_bytes(dim: usize) -> usize {
    (dim + 4).div_ceil(64) * 64
}

/// Encodes one row of `dim` floats into `out` (`row_bytes(dim)` bytes): the codes, the scale
/// (f32 LE), zeros. The layout of a `codes` file row and of a heap row.
pub(crate) fn encode_row(v: &[f32], out: &mut [u8]) {
    let dim = v.len();
    let codes: &mut [i8] = bytemuck::cast_slice_mut(&mut out[..dim]);
    let scale = quantize(v, codes);
    out[dim..dim + 4].copy_from_slice(&scale.to_le_bytes());
    out[dim + 4..].fill(0);
}

impl Quantized {
    /// An empty store with room for `rows` rows of `dim` floats.
    pub(crate) fn new(dim: usize, rows: usize) -> Quantized {
        let lines_per_row = row_bytes(dim) / 64;
        Quantized {
            dim,
            lines_per_row,
            row_len: row_bytes(dim),
            codec: Codec::Int8,
            store: Store::Heap(Arena::with_capacity(rows.saturating_mul(lines_per_row))),
        }
    }

    /// An empty heap store (a memtable's): int8 codes with `rabitq_bits` `None`, else RaBitQ
    /// codes of that many bits, encoded against a zero centroid (a memtable has no rows to
    /// take a mean of when it starts).
    pub(crate) fn heap(dim: usize, rows: usize, rabitq_bits: Option<u8>) -> Quantized {
        let Some(bits) = rabitq_bits else {
            return Quantized::new(dim, rows);
        };
        let codec = Codec::RaBitQ(RaBitQ::new(dim, bits, rabitq::DEFAULT_SEED, vec![0.0; dim]));
        let row_len = codec.row_len(dim);
        Quantized {
            dim,
            lines_per_row: 0,
            row_len,
            codec,
            store: Store::Heap16(Arena::with_capacity(rows.saturating_mul(row_len / 16))),
        }
    }

    /// The rows of a segment's mapped `codes` file (checked by the opener).
    pub(crate) fn mapped(dim: usize, codes: MappedCodes, codec: Codec) -> Quantized {
        Quantized {
            dim,
            lines_per_row: row_bytes(dim) / 64,
            row_len: codec.row_len(dim),
            codec,
            store: Store::Mapped(codes),
        }
    }

    /// Whether the rows are int8 codes (graph construction walks over those only).
    pub(crate) fn is_int8(&self) -> bool {
        matches!(self.codec, Codec::Int8)
    }

    /// Bits per dimension of RaBitQ rows (0 for int8).
    pub(crate) fn rabitq_bits(&self) -> u8 {
        match &self.codec {
            Codec::Int8 => 0,
            Codec::RaBitQ(r) => r.bits,
        }
    }

    /// Whether a walk under `metric` can score these rows (int8: cosine and dot).
    pub(crate) fn supports(&self, metric: Metric) -> bool {
        !(self.is_int8() && metric == Metric::L2)
    }

    /// Encodes one row into `out` (`row_len` bytes).
    fn encode(&self, v: &[f32], out: &mut [u8], s: &mut rabitq::Scratch) {
        match &self.codec {
            Codec::Int8 => encode_row(v, out),
            Codec::RaBitQ(r) => r.encode(v, out, s),
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
        match &self.store {
            Store::Heap(lines) => lines.len() / self.lines_per_row,
            Store::Heap16(c) => c.len() * 16 / self.row_len,
            Store::Mapped(m) => m.rows,
        }
    }

    /// Appends the codes of `vectors` (whole rows of `dim` floats) and publishes them at once.
    /// A mapped store is full.
    pub(crate) fn push(&self, vectors: &[f32]) -> std::result::Result<(), ArenaFull> {
        debug_assert_eq!(vectors.len() % self.dim.max(1), 0);
        if let Store::Heap16(arena) = &self.store {
            let n = vectors.len() / self.dim.max(1);
            let mut chunks = vec![Chunk([0; 16]); n * self.row_len / 16];
            let out: &mut [u8] = bytemuck::cast_slice_mut(&mut chunks);
            let mut s = rabitq::Scratch::default();
            for (v, o) in vectors
                .chunks_exact(self.dim.max(1))
                .zip(out.chunks_exact_mut(self.row_len))
            {
                self.encode(v, o, &mut s);
            }
            return arena.push(&chunks).map(|_| ());
        }
        let Store::Heap(arena) = &self.store else {
            return Err(ArenaFull);
        };
        let mut lines = vec![Line([0; 64]); vectors.len() / self.dim.max(1) * self.lines_per_row];
        for (v, out) in vectors
            .chunks_exact(self.dim.max(1))
            .zip(lines.chunks_exact_mut(self.lines_per_row))
        {
            encode_row(v, bytemuck::cast_slice_mut(out));
        }
        arena.push(&lines).map(|_| ())
    }

    /// The bytes of `node`'s row, `None` past the last row; a mapped row's block is checked
    /// against its checksum on first touch.
    #[inline]
    pub(crate) fn row_raw(&self, node: u32) -> Result<Option<&[u8]>> {
        let len = self.row_len;
        Ok(Some(match &self.store {
            Store::Heap(arena) => {
                let at = node as usize * self.lines_per_row;
                match arena.as_slice().get(at..at + self.lines_per_row) {
                    Some(lines) => bytemuck::cast_slice(lines),
                    None => return Ok(None),
                }
            }
            Store::Heap16(arena) => {
                let per = len / 16;
                let at = node as usize * per;
                match arena.as_slice().get(at..at + per) {
                    Some(c) => bytemuck::cast_slice(c),
                    None => return Ok(None),
                }
            }
            Store::Mapped(m) => {
                if node as usize >= m.rows {
                    return Ok(None);
                }
                let at = m.rows_off + node as usize * len;
                let data = m.data();
                let table = &m.map.bytes()[m.table_off..];
                m.blocks.ensure(data, table, at, at + len, &m.path)?;
                &data[at..at + len]
            }
        }))
    }

    /// The int8 codes and the scale of `node`, `None` past the last row (int8 rows only).
    #[inline]
    pub(crate) fn row(&self, node: u32) -> Result<Option<(&[i8], f32)>> {
        debug_assert!(self.is_int8());
        let Some(bytes) = self.row_raw(node)? else {
            return Ok(None);
        };
        let (codes, rest) = bytes.split_at(self.dim);
        let scale = f32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
        Ok(Some((bytemuck::cast_slice(codes), scale)))
    }

    /// Hints that `node`'s row will be read soon (computes its address, reads nothing).
    #[inline]
    pub(crate) fn prefetch(&self, node: u32) {
        let len = self.row_len;
        match &self.store {
            Store::Heap(arena) => {
                let at = node as usize * self.lines_per_row;
                if let Some(lines) = arena.as_slice().get(at..at + self.lines_per_row) {
                    crate::io::mmap::prefetch_row(bytemuck::cast_slice(lines));
                }
            }
            Store::Heap16(arena) => {
                let per = len / 16;
                let at = node as usize * per;
                if let Some(c) = arena.as_slice().get(at..at + per) {
                    crate::io::mmap::prefetch_row(bytemuck::cast_slice(c));
                }
            }
            Store::Mapped(m) => {
                let at = m.rows_off + node as usize * len;
                if let Some(b) = m.data().get(at..at + len) {
                    crate::io::mmap::prefetch_row(b);
                }
            }
        }
    }

    /// Heap bytes in use (the rows stored; the reserved rest costs no memory until written).
    /// A mapped store has none.
    pub(crate) fn heap_bytes(&self) -> usize {
        match &self.store {
            Store::Heap(lines) => lines.len() * 64,
            Store::Heap16(c) => c.len() * 16,
            Store::Mapped(_) => 0,
        }
    }

    /// The mapped `codes` file (none on the heap).
    pub(crate) fn mapped_file(&self) -> Option<&Mmap> {
        match &self.store {
            Store::Heap(_) | Store::Heap16(_) => None,
            Store::Mapped(m) => Some(&m.map),
        }
    }

    /// Bytes of the mapped `codes` file (0 on the heap).
    pub(crate) fn mapped_bytes(&self) -> usize {
        match &self.store {
            Store::Heap(_) | Store::Heap16(_) => 0,
            Store::Mapped(m) => m.map.bytes().len(),
        }
    }

    /// Checks every block of a mapped store, and that each row is the encoding of `vectors`
    /// (rows `start..end` read by `read`): a codes file that disagrees with its vectors would
    /// steer walks wrong without any checksum failing.
    pub(crate) fn verify_against<'a>(
        &self,
        read: impl Fn(usize, usize) -> Result<&'a [f32]>,
    ) -> Result<()> {
        let Store::Mapped(m) = &self.store else {
            return Ok(());
        };
        m.blocks
            .ensure_all(m.data(), &m.map.bytes()[m.table_off..], &m.path)?;
        let len = self.row_len;
        let mut want = vec![0u8; len];
        let mut s = rabitq::Scratch::default();
        const CHUNK: usize = 4096;
        let mut start = 0;
        while start < m.rows {
            let end = (start + CHUNK).min(m.rows);
            for (i, v) in read(start, end)?.chunks_exact(self.dim).enumerate() {
                let row = start + i;
                self.encode(v, &mut want, &mut s);
                let at = m.rows_off + row * len;
                if m.data()[at..at + len] != want[..] {
                    return Err(crate::error::Error::corruption(
                        &m.path,
                        format!("the codes of row {row} are not those of its vector"),
                    ));
                }
            }
            start = end;
        }
        Ok(())
    }
}

/// Scores the rows of a [`Quantized`] against one query (a row past the end scores −∞).
pub(crate) struct QuantScorer<'a> {
    qz: &'a Quantized,
    query: QueryCodes,
}

enum QueryCodes {
    Int8 { query: Vec<i8>, qscale: f32 },
    RaBitQ(rabitq::Query),
}

impl<'a> QuantScorer<'a> {
    /// A scorer for the (prepared) query `q` under `metric` (int8 rows: cosine or dot).
    pub(crate) fn new(qz: &'a Quantized, metric: Metric, q: &[f32]) -> Self {
        let query = match &qz.codec {
            Codec::Int8 => {
                let mut query = vec![0i8; q.len()];
                let qscale = quantize(q, &mut query);
                QueryCodes::Int8 { query, qscale }
            }
            Codec::RaBitQ(r) => QueryCodes::RaBitQ(r.query(metric, q)),
        };
        QuantScorer { qz, query }
    }

    /// Whether scores come with an error bound ([`bound`](Self::bound)).
    pub(crate) fn has_bound(&self) -> bool {
        matches!(self.query, QueryCodes::RaBitQ(_))
    }

    /// The bound on `|score − exact score|` of `node` (RaBitQ: holds for the fraction of
    /// pairs that ε₀ gives, `rabitq.rs`); 0 for int8 rows and rows past the end.
    pub(crate) fn bound(&self, node: u32) -> Result<f32> {
        match &self.query {
            QueryCodes::Int8 { .. } => Ok(0.0),
            QueryCodes::RaBitQ(q) => Ok(self.qz.row_raw(node)?.map_or(0.0, |r| q.bound(r))),
        }
    }
}

impl Score for QuantScorer<'_> {
    #[inline]
    fn score(&self, node: u32) -> Result<f32> {
        match &self.query {
            QueryCodes::Int8 { query, qscale } => {
                let Some((codes, s)) = self.qz.row(node)? else {
                    return Ok(f32::NEG_INFINITY);
                };
                let dot = <i8 as SpatialSimilarity>::dot(query, codes).unwrap_or(0.0);
                Ok(dot as f32 * s * qscale)
            }
            QueryCodes::RaBitQ(q) => Ok(self
                .qz
                .row_raw(node)?
                .map_or(f32::NEG_INFINITY, |r| q.estimate(r))),
        }
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
                let (codes, scale) = qz.row(i as u32).unwrap().unwrap();
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
        let sc = QuantScorer::new(&qz, Metric::Dot, &[1.0, 0.0, 0.0, 0.0]);
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
            let sc = QuantScorer::new(&qz, Metric::Dot, &q);
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
