//! BM25 ranking across the sources of a collection.
//!
//! The scoring function is Lucene's (≥ 8) `BM25Similarity` with k1 = 1.2, b = 0.75:
//!
//! ```text
//! score(d, q) = Σ_{t ∈ distinct(q)} idf(t) · tf(t,d) / (tf(t,d) + k1 · (1 − b + b · dl(d) / avgdl))
//! idf(t)      = ln(1 + (N − df(t) + 0.5) / (df(t) + 0.5))
//! ```
//!
//! - No `(k1 + 1)` factor in the numerator: it scales every score by the same constant, so
//!   Lucene 8 dropped it; bm25s's "lucene" method does the same. Scores therefore match
//!   Lucene's and bm25s's, not textbook BM25 (which is `2.2 ×` these).
//! - `dl` is the exact number of analyzed terms of the document, not Lucene's lossy one-byte
//!   norm; `avgdl` is `Σ dl / N`.
//! - A term repeated in the query counts once.
//! - `N`, `df` and `avgdl` are collection-wide over *live documents with text*: rows marked
//!   dead in their source are left out, and so are rows with no terms (like Lucene's
//!   `docCount`, which counts documents that have the field). Statistics do not depend on how
//!   records are split across sources. An `allow` filter only restricts which rows are
//!   returned, never the statistics.
//!
//! Evaluation per source: for two or more terms, block-max MaxScore a window of rows at a time
//! ([`maxscore`]); otherwise term-at-a-time, with a dense accumulator when the postings
//! cover a fair share of the source's rows, else a sorted list of `(row, partial score)` pairs.
//! Every path adds a row's term contributions in query-term order in f64, so a document's score
//! is the same whichever path and source it goes through. Scores are reported as f32.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashSet};
use std::sync::atomic::{self, AtomicBool};

use roaring::RoaringBitmap;

use super::index::{BLOCK_SHIFT, Postings, TextIndex, block_count};
use super::live::LiveCache;

/// Term-frequency saturation.
pub(crate) const K1: f64 = 1.2;
/// Length normalization.
pub(crate) const B: f64 = 0.75;

/// One source of documents: the memtable or a segment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Source<'a> {
    /// The source's inverted index.
    pub index: &'a TextIndex,
    /// Rows of this source that are NOT live (deleted / replaced); None = all live.
    pub dead: Option<&'a RoaringBitmap>,
    /// If set, only these rows may be returned (a filter); statistics still use all live rows.
    pub allow: Option<&'a RoaringBitmap>,
    /// Where the counts of `dead`'s rows are kept between queries (a segment's), if anywhere.
    pub live: Option<&'a LiveCache>,
}

impl Source<'_> {
    fn is_dead(&self, row: u32) -> bool {
        self.dead.is_some_and(|d| d.contains(row))
    }
}

/// One result: a row of a source and its score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Bm25Hit {
    /// Index into the `sources` slice given to [`search`].
    pub source: usize,
    /// Row within that source.
    pub row: u32,
    /// BM25 score (> 0).
    pub score: f32,
}

/// Collection-wide statistics for a list of terms.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Stats {
    /// Live documents with at least one term.
    pub n: u64,
    /// Average number of terms of those documents (0 when `n` is 0).
    pub avgdl: f64,
    /// For each term given to [`stats`], in order, the live documents containing it.
    pub df: Vec<u64>,
}

/// The statistics of `terms` (as given: a repeated term gets its df twice) over the live rows
/// of `sources`.
pub(crate) fn stats(sources: &[Source<'_>], terms: &[String]) -> Stats {
    stats_with_total(sources, terms).0
}

/// [`stats`] and the total length of the live documents (what `avgdl` divides by `n`), so
/// that statistics of several collections can be added up exactly.
pub(crate) fn stats_with_total(sources: &[Source<'_>], terms: &[String]) -> (Stats, u64) {
    let (mut n, mut total) = (0u64, 0u64);
    let mut df = vec![0u64; terms.len()];
    for s in sources {
        n += s.index.docs_with_text();
        total += s.index.total_len();
        let lists: Vec<Option<Postings<'_>>> = terms.iter().map(|t| s.index.postings(t)).collect();
        for (df, p) in df.iter_mut().zip(&lists) {
            *df += p.as_ref().map_or(0, |p| p.len() as u64);
        }
        let Some(d) = s.dead.filter(|d| !d.is_empty()) else {
            continue;
        };
        // What the dead rows take away: kept between queries for a segment (`live`), else
        // counted here.
        let known = s.live.map(|c| c.lookup(d, terms));
        let mut dead: Option<Vec<u32>> = None;
        let (dead_docs, dead_len) = match known.as_ref().and_then(|k| k.docs_len) {
            Some(dl) => dl,
            None => {
                let rows: Vec<u32> = d.iter().collect();
                let (mut docs, mut len) = (0u64, 0u64);
                for &row in &rows {
                    let dl = s.index.doc_len(row);
                    docs += u64::from(dl > 0);
                    len += u64::from(dl);
                }
                dead = Some(rows);
                (docs, len)
            }
        };
        n -= dead_docs;
        total -= dead_len;
        // The dead rows once, as a sorted slice (and, for long lists, as a bit set over the
        // source's rows, built on first use): every query term's dead postings not known yet
        // are counted against them.
        let mut bits = Vec::new();
        let mut counted: Vec<(&str, u64)> = Vec::new();
        for (i, (t, p)) in terms.iter().zip(&lists).enumerate() {
            let Some(p) = p else { continue };
            let gone = match known.as_ref().and_then(|k| k.df[i]) {
                Some(gone) => gone,
                None => {
                    let rows = dead.get_or_insert_with(|| d.iter().collect());
                    let gone = dead_count(p, d, rows, s.index.rows(), &mut bits);
                    counted.push((t.as_str(), gone));
                    gone
                }
            };
            df[i] -= gone;
        }
        // Something was counted: keep it.
        if let Some(c) = s.live
            && dead.is_some()
        {
            c.keep(d, dead_docs, dead_len, &counted);
        }
    }
    (
        Stats {
            n,
            avgdl: avg_len(n, total),
            df,
        },
        total,
    )
}

/// `total / n` in f64, 0 when `n` is 0: the average document length.
pub(crate) fn avg_len(n: u64, total: u64) -> f64 {
    if n == 0 { 0.0 } else { total as f64 / n as f64 }
}

/// The number of rows of `p` that are in `d` (`dead`: the same rows, ascending; `rows`: the
/// source's). A list much longer than the dead set gallops to each dead row; a list shorter
/// than rows / 64 looks each posting up in the bitmap; any other tests each posting's bit in
/// `bits`, a bit set of the dead rows built on the first such list (a bit per row).
fn dead_count(
    p: &Postings<'_>,
    d: &RoaringBitmap,
    dead: &[u32],
    rows: u32,
    bits: &mut Vec<u64>,
) -> u64 {
    let list = p.as_slice();
    let words = rows as usize / 64 + 1;
    if dead.len().saturating_mul(16) <= list.len() {
        let (mut at, mut hits) = (0usize, 0u64);
        for &row in dead {
            at += gallop(&list[at..], row);
            if at == list.len() {
                break;
            }
            hits += u64::from(list[at].0 == row);
        }
        hits
    } else if list.len() < words {
        list.iter().filter(|&&(r, _)| d.contains(r)).count() as u64
    } else {
        if bits.is_empty() {
            bits.resize(words, 0);
            for &row in dead {
                if let Some(w) = bits.get_mut(row as usize / 64) {
                    *w |= 1 << (row % 64);
                }
            }
        }
        let bit = |r: u32| bits.get(r as usize / 64).map_or(0, |w| (w >> (r % 64)) & 1);
        list.iter().map(|&(r, _)| bit(r)).sum()
    }
}

/// The index of the first entry of `list` (rows ascending) whose row is ≥ `row`: exponential
/// steps, then a binary search in the last step, so a walk over ascending targets costs
/// O(log gap) each.
fn gallop(list: &[(u32, u32)], row: u32) -> usize {
    let mut hi = 1;
    while hi < list.len() && list[hi - 1].0 < row {
        hi *= 2;
    }
    let lo = hi / 2;
    let hi = hi.min(list.len());
    lo + list[lo..hi].partition_point(|&(r, _)| r < row)
}

/// Inverse document frequency, Lucene's form (always > 0).
pub(crate) fn idf(n: u64, df: u64) -> f64 {
    let (n, df) = (n as f64, df as f64);
    (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
}

/// The k best live rows across `sources` for `query_terms` (already analyzed), best first.
///
/// Ranked by the reported (f32) score descending, ties by `(source, row)` ascending. Only rows
/// containing at least one query term are returned, so there may be fewer than `k`.
#[cfg(test)]
pub(crate) fn search(sources: &[Source<'_>], query_terms: &[String], k: usize) -> Vec<Bm25Hit> {
    search_keyed(sources, query_terms, k, |_, _| 0)
}

/// Like [`search`], but ties of equal score are broken by `key(source, row)` ascending first
/// (e.g. the record id, to rank ties the way vector search does), then by `(source, row)`.
/// `key` is called only for rows that reach the top k or tie with its worst.
#[cfg(any(test, fuzzing))]
pub(crate) fn search_keyed(
    sources: &[Source<'_>],
    query_terms: &[String],
    k: usize,
    key: impl Fn(usize, u32) -> u64,
) -> Vec<Bm25Hit> {
    search_with(sources, query_terms, k, key, Accumulator::Auto)
}

/// Benchmarks only: when set, [`Accumulator::Auto`] never prunes, so that one binary can time
/// the exhaustive term-at-a-time evaluation MaxScore replaced against MaxScore itself (the
/// results are identical either way). Process-wide.
static EXHAUSTIVE: AtomicBool = AtomicBool::new(false);

/// Turn MaxScore pruning off (`true`) or back on for every BM25 search in this process. For
/// benchmarks (`examples/bm25_corpus.rs --exhaustive`); results do not change, only the time.
#[doc(hidden)]
pub fn set_exhaustive_for_benchmarks(on: bool) {
    EXHAUSTIVE.store(on, atomic::Ordering::Relaxed);
}

/// How a source's scores are summed; both give identical scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Accumulator {
    /// Dense when the postings number at least an eighth of the source's rows.
    Auto,
    /// One f64 per row.
    #[cfg_attr(not(test), allow(dead_code))]
    Dense,
    /// Sorted `(row, contribution)` pairs.
    #[cfg_attr(not(test), allow(dead_code))]
    Sparse,
    /// Block-max MaxScore (Turtle & Flood), by windows of rows: rows that contain only terms
    /// whose score bounds together stay below the k-th best score are never scored.
    #[cfg_attr(not(test), allow(dead_code))]
    Pruned,
    /// [`Accumulator::Pruned`] by windows of this many rows (a multiple of 64) instead of
    /// [`WINDOW`].
    #[cfg(test)]
    Windows(u32),
}

/// [`search_keyed`] that also returns the statistics it scored with: those of the query's
/// distinct terms, in first-occurrence order (for `explain`, without computing them twice).
///
/// With `external`, those statistics are used instead of the sources' own (a shard of a
/// larger collection scoring with the whole collection's); its `df` then lists the distinct
/// query terms in first-occurrence order.
pub(crate) fn search_keyed_with_stats(
    sources: &[Source<'_>],
    query_terms: &[String],
    k: usize,
    key: impl Fn(usize, u32) -> u64,
    external: Option<Stats>,
) -> (Vec<Bm25Hit>, Stats) {
    run(sources, query_terms, k, key, Accumulator::Auto, external)
}

/// [`search_keyed`] with a chosen accumulator (tests force each one).
#[cfg(any(test, fuzzing))]
pub(super) fn search_with(
    sources: &[Source<'_>],
    query_terms: &[String],
    k: usize,
    key: impl Fn(usize, u32) -> u64,
    accumulator: Accumulator,
) -> Vec<Bm25Hit> {
    run(sources, query_terms, k, key, accumulator, None).0
}

fn run(
    sources: &[Source<'_>],
    query_terms: &[String],
    k: usize,
    key: impl Fn(usize, u32) -> u64,
    accumulator: Accumulator,
    external: Option<Stats>,
) -> (Vec<Bm25Hit>, Stats) {
    // Distinct terms in first-occurrence order (a pasted document can be a long query).
    let mut seen = HashSet::with_capacity(query_terms.len());
    let terms: Vec<String> = query_terms
        .iter()
        .filter(|t| seen.insert(t.as_str()))
        .cloned()
        .collect();
    let st = match external {
        Some(st) => {
            debug_assert_eq!(st.df.len(), terms.len(), "one df per distinct query term");
            st
        }
        None => stats(sources, &terms),
    };
    if k == 0 || st.n == 0 {
        return (Vec::new(), st);
    }
    let weighted: Vec<(&str, f64)> = terms
        .iter()
        .zip(&st.df)
        .filter(|&(_, &df)| df > 0)
        .map(|(t, &df)| (t.as_str(), idf(st.n, df)))
        .collect();
    if weighted.is_empty() {
        return (Vec::new(), st);
    }
    let norm = Norm::new(st.avgdl);
    let mut top = TopK::new(k);
    for (si, s) in sources.iter().enumerate() {
        let lists: Vec<(Postings<'_>, f64)> = weighted
            .iter()
            .filter_map(|&(t, w)| s.index.postings(t).map(|p| (p, w)))
            .collect();
        let admit = |row: u32| !s.is_dead(row) && s.allow.is_none_or(|a| a.contains(row));
        // The bar a row must reach changes only when the heap does: it is kept in a local so
        // the pass over the candidates is a tight compare loop (most rows of a long list
        // cannot enter a full top k).
        let mut bar = top.threshold();
        let postings: usize = lists.iter().map(|(p, _)| p.len()).sum();
        let rows = s.index.rows() as usize;
        let pruned = match accumulator {
            Accumulator::Auto => {
                lists.len() >= 2
                    && postings > 4 * top.k
                    && !EXHAUSTIVE.load(atomic::Ordering::Relaxed)
            }
            Accumulator::Dense | Accumulator::Sparse => false,
            _ => true,
        };
        let dense = match accumulator {
            Accumulator::Dense => true,
            Accumulator::Sparse => false,
            _ => postings.saturating_mul(8) >= rows,
        };
        let window = match accumulator {
            #[cfg(test)]
            Accumulator::Windows(w) => w,
            _ => WINDOW,
        };
        if postings == 0 {
            continue;
        } else if pruned {
            maxscore(&lists, s, si, &norm, &mut top, &key, window);
        } else if dense {
            // Dense: one slot per row; every contribution is > 0, so 0 means "no match".
            let mut acc = vec![0f64; rows];
            for (p, w) in &lists {
                for (row, tf) in p.clone() {
                    acc[row as usize] += norm.score(*w, tf, s.index.doc_len(row));
                }
            }
            for (row, &score) in acc.iter().enumerate() {
                let score = score as f32;
                if score > 0.0 && score >= bar && admit(row as u32) {
                    top.offer(score, si, row as u32, &key);
                    bar = top.threshold();
                }
            }
        } else {
            // Sparse: contributions sorted by row; a stable sort keeps the query-term order
            // within a row, so the sum is the same as the dense one.
            let mut parts: Vec<(u32, f64)> = Vec::with_capacity(postings);
            for (p, w) in &lists {
                for (row, tf) in p.clone() {
                    parts.push((row, norm.score(*w, tf, s.index.doc_len(row))));
                }
            }
            parts.sort_by_key(|&(row, _)| row);
            for run in parts.chunk_by(|a, b| a.0 == b.0) {
                let score = run.iter().fold(0.0, |acc, &(_, x)| acc + x) as f32;
                if score >= bar && admit(run[0].0) {
                    top.offer(score, si, run[0].0, &key);
                    bar = top.threshold();
                }
            }
        }
    }
    (top.into_sorted(), st)
}

/// One query term's postings in one source, with this query's score bounds.
struct Cursor<'a> {
    list: &'a [(u32, u32)],
    /// The term's idf.
    w: f64,
    /// The bound of each block's contributions under this query's statistics; a list without
    /// stored blocks (a memtable's) is one block.
    bounds: Vec<f64>,
    /// `log2` of the block length: `pos >> shift` is the block of position `pos`.
    shift: u32,
}

/// The shift of a list that is one block (longer than any list: rows are `u32`).
const ONE_BLOCK: u32 = 40;

impl<'a> Cursor<'a> {
    fn new(p: &Postings<'a>, w: f64, norm: &Norm) -> Self {
        let blocks = p.blocks();
        let list = p.as_slice();
        if blocks.is_empty() || blocks.len() != block_count(list.len()) {
            // A row holding the term `tf` times is at least `tf` terms long.
            return Cursor {
                list,
                w,
                bounds: vec![norm.score(w, p.max_tf(), p.max_tf())],
                shift: ONE_BLOCK,
            };
        }
        let bounds = blocks
            .iter()
            .map(|b| {
                b.iter()
                    .filter(|&&(tf, _)| tf > 0)
                    .map(|&(tf, dl)| norm.score(w, tf, dl))
                    .fold(0.0, f64::max)
            })
            .collect();
        Cursor {
            list,
            w,
            bounds,
            shift: BLOCK_SHIFT,
        }
    }

    /// The number of blocks.
    fn blocks(&self) -> usize {
        self.bounds.len()
    }

    /// The largest bound of the blocks that hold postings of rows `lo..hi`; `blk` is the
    /// first block whose last row is ≥ `lo` (moved there; windows only move forward).
    fn window_bound(&self, blk: &mut usize, lo: u32, hi: u32) -> f64 {
        while *blk < self.blocks() && self.last_row(*blk) < lo {
            *blk += 1;
        }
        let mut bound = 0.0f64;
        let mut b = *blk;
        while b < self.blocks() && self.first_row(b) < hi {
            bound = bound.max(self.bounds[b]);
            b += 1;
        }
        bound
    }

    /// The tf of `row` in this list, if it holds the row; `pos` (a position whose row is not
    /// after `row`, or the end) moves to the first posting ≥ `row`.
    #[inline]
    fn tf_at(&self, pos: &mut usize, row: u32) -> Option<u32> {
        if self.list.get(*pos).is_some_and(|&(r, _)| r < row) {
            *pos += 1 + gallop(&self.list[*pos + 1..], row);
        }
        self.list
            .get(*pos)
            .filter(|&&(r, _)| r == row)
            .map(|&(_, tf)| tf)
    }

    /// The first row of block `b` (< `blocks()`).
    #[inline]
    fn first_row(&self, b: usize) -> u32 {
        self.list[((b as u64) << self.shift) as usize].0
    }

    /// The last row of block `b` (< `blocks()`).
    #[inline]
    fn last_row(&self, b: usize) -> u32 {
        let end = ((b as u64 + 1) << self.shift).min(self.list.len() as u64) as usize;
        self.list[end - 1].0
    }
}

/// Rows per window of [`maxscore`].
const WINDOW: u32 = 2048;

/// One source's top-k rows with block-max MaxScore, evaluated a window of rows at a time (as
/// Lucene's `MaxScoreBulkScorer` does). `lists` are the query's terms in query order, with
/// their idf; `window` (a multiple of 64) is [`WINDOW`] but in tests.
///
/// Bounds. Each block of a segment's posting lists stores a few `(tf, dl)` points that
/// dominate its postings (`index::BlockMax`); since a term's contribution grows with tf and
/// shrinks with the row's length, the largest contribution of the points under this query's
/// N, df and avgdl bounds the block's. (A memtable's lists have no blocks: a list is one
/// block, bounded by `idf · m / (m + k1·(1 − b) + k1·b·m / avgdl)` for its largest tf `m`, a
/// row holding a term `m` times being at least `m` terms long.)
///
/// Windows. The rows are taken `window` at a time, from the first posting on:
///
/// 1. Each term's bound *in the window* is the largest bound of its blocks that overlap it; a
///    window whose bounds add up below the k-th best score is skipped whole.
/// 2. MaxScore within the window: terms sorted by window bound, the longest prefix whose
///    bounds add up below the k-th best is *non-essential* (a row holding only those cannot
///    enter), so a term common elsewhere but weak here stops producing candidates here.
/// 3. The essential terms' postings in the window are added term at a time into one slot per
///    row: a tight loop over each list instead of a merge of the lists row by row (which cost
///    queries of many common terms up to 3 ms: `docs/benchmarks.md`).
/// 4. Each row with a sum is a candidate: dropped if the sum plus the non-essential bounds
///    cannot reach the k-th best, or if the row is dead or filtered out; else the
///    non-essential terms are looked up (largest bound first, dropping the row as soon as it
///    cannot reach), and a row still in is scored exactly like the exhaustive paths do (every
///    term's contribution, added in query order in f64) and offered.
/// 5. The next window starts at the next posting of any list, so rare terms over a long
///    segment do not walk empty windows.
///
/// A selective filter (at most 1/16 of the source's rows) is first turned into a bit set over
/// the rows: windows start at multiples of 64, so a window's candidates are masked by the
/// set's words, and a window with no allowed row is skipped. Other filters and the deletes
/// cost one lookup per candidate that passes the bounds.
///
/// The window sums are only compared against the bar, with the margin of [`below`] over the
/// rounding of sums, so the order they were added in does not matter: scores and ranks are
/// identical to the exhaustive paths'.
fn maxscore(
    lists: &[(Postings<'_>, f64)],
    s: &Source<'_>,
    si: usize,
    norm: &Norm,
    top: &mut TopK,
    key: &impl Fn(usize, u32) -> u64,
    window: u32,
) {
    debug_assert!(window > 0 && window.is_multiple_of(64));
    let cur: Vec<Cursor<'_>> = lists
        .iter()
        .map(|(p, w)| Cursor::new(p, *w, norm))
        .collect();
    let allow_bits = match s.allow {
        Some(a) if a.len().saturating_mul(16) < u64::from(s.index.rows()) => {
            let mut bits = vec![0u64; s.index.rows() as usize / 64 + 1];
            for row in a {
                if let Some(w) = bits.get_mut(row as usize / 64) {
                    *w |= 1 << (row % 64);
                }
            }
            Some(bits)
        }
        _ => None,
    };
    let allow_bits = allow_bits.as_deref();
    let m = cur.len();
    let rows = s.index.rows();
    // Per term: its first posting at or after the current window's start (the non-essential
    // terms' may lag behind until they are looked up), and its first block whose last row is
    // at or after it.
    let mut pos = vec![0usize; m];
    let mut blk = vec![0usize; m];
    let mut local = vec![0f64; m];
    let mut order: Vec<usize> = (0..m).collect();
    let mut contrib = vec![0f64; m];
    let mut acc = vec![0f64; window as usize];
    let mut seen = vec![0u64; window as usize / 64];
    // The window's start: the first row at or after `from` that any list holds, rounded down
    // to a multiple of 64 (`rows` when none is left).
    let next_start = |pos: &mut [usize], from: u32| {
        let mut next = rows;
        for (c, p) in cur.iter().zip(pos.iter_mut()) {
            if c.list.get(*p).is_some_and(|&(r, _)| r < from) {
                *p += 1 + gallop(&c.list[*p + 1..], from);
            }
            if let Some(&(r, _)) = c.list.get(*p) {
                next = next.min(r);
            }
        }
        // At or after `from` (> every row before it): no window is walked twice.
        if next >= rows { rows } else { next & !63 }
    };
    let mut lo = next_start(&mut pos, 0);
    while lo < rows {
        let hi = lo.saturating_add(window).min(rows);
        let mut bar = top.threshold();
        let mut total = 0.0;
        for t in 0..m {
            local[t] = cur[t].window_bound(&mut blk[t], lo, hi);
            total += local[t];
        }
        let none_allowed = allow_bits.is_some_and(|bits| {
            let words = lo as usize / 64..(hi as usize).div_ceil(64);
            bits.get(words).is_none_or(|w| w.iter().all(|&x| x == 0))
        });
        if below(total, bar) || none_allowed {
            lo = next_start(&mut pos, hi);
            continue;
        }
        order.sort_by(|&a, &b| local[a].total_cmp(&local[b]));
        let (mut ne, mut ne_sum) = (0, 0.0);
        while ne < m && below(ne_sum + local[order[ne]], bar) {
            ne_sum += local[order[ne]];
            ne += 1;
        }
        // The essential terms' postings in the window, term at a time (`pos` stays at the
        // window's start for the candidates' lookups below).
        for &t in &order[ne..] {
            let c = &cur[t];
            for &(r, tf) in &c.list[pos[t]..] {
                if r >= hi {
                    break;
                }
                let i = (r - lo) as usize;
                acc[i] += norm.score(c.w, tf, s.index.doc_len(r));
                seen[i / 64] |= 1 << (i % 64);
            }
        }
        let first_word = lo as usize / 64;
        for (w, slot) in seen.iter_mut().enumerate() {
            let mut word = std::mem::take(slot);
            if let Some(bits) = allow_bits {
                // Rows the filter leaves out: their sums are dropped unread.
                let allowed = bits.get(first_word + w).copied().unwrap_or(0);
                let mut out = word & !allowed;
                while out != 0 {
                    acc[w * 64 + out.trailing_zeros() as usize] = 0.0;
                    out &= out - 1;
                }
                word &= allowed;
            }
            while word != 0 {
                let i = w * 64 + word.trailing_zeros() as usize;
                word &= word - 1;
                let row = lo + i as u32;
                let sum = std::mem::take(&mut acc[i]);
                if below(sum + ne_sum, bar)
                    || s.is_dead(row)
                    || (allow_bits.is_none() && s.allow.is_some_and(|a| !a.contains(row)))
                {
                    continue;
                }
                // The non-essential terms, largest bound first, while the row can reach.
                let dl = s.index.doc_len(row);
                let (mut partial, mut rest, mut alive) = (sum, ne_sum, true);
                for &t in order[..ne].iter().rev() {
                    if below(partial + rest, bar) {
                        alive = false;
                        break;
                    }
                    rest -= local[t];
                    if let Some(tf) = cur[t].tf_at(&mut pos[t], row) {
                        contrib[t] = norm.score(cur[t].w, tf, dl);
                        partial += contrib[t];
                    }
                }
                if alive && !below(partial, bar) {
                    for &t in &order[ne..] {
                        if let Some(tf) = cur[t].tf_at(&mut pos[t], row) {
                            contrib[t] = norm.score(cur[t].w, tf, dl);
                        }
                    }
                    // Exactly the exhaustive sum: query order, from 0.
                    let score = contrib.iter().fold(0.0, |acc, &x| acc + x) as f32;
                    if score >= bar {
                        top.offer(score, si, row, key);
                        bar = top.threshold();
                    }
                }
                contrib.fill(0.0);
            }
        }
        lo = next_start(&mut pos, hi);
    }
}

/// Whether a row whose score is at most `x` (in exact arithmetic) cannot reach `bar`.
#[inline]
fn below(x: f64, bar: f32) -> bool {
    ((x * (1.0 + 1e-9)) as f32) < bar
}

/// The length normalization for one `avgdl`.
struct Norm {
    /// `k1 · (1 − b)`.
    base: f64,
    /// `k1 · b / avgdl`.
    per_term: f64,
}

impl Norm {
    fn new(avgdl: f64) -> Self {
        Norm {
            base: K1 * (1.0 - B),
            per_term: K1 * B / avgdl,
        }
    }

    /// One term's contribution: `idf · tf / (tf + k1 · (1 − b + b · dl / avgdl))`, with one
    /// division.
    #[inline]
    fn score(&self, idf: f64, tf: u32, dl: u32) -> f64 {
        let tf = f64::from(tf);
        idf * tf / (tf + self.base + self.per_term * f64::from(dl))
    }
}

/// A candidate in the heap; ordered so that the worst is the greatest.
#[derive(Debug, Clone, Copy)]
struct Entry {
    score: f32,
    key: u64,
    source: usize,
    row: u32,
}

impl Ord for Entry {
    fn cmp(&self, o: &Self) -> Ordering {
        o.score
            .total_cmp(&self.score)
            .then(self.key.cmp(&o.key))
            .then(self.source.cmp(&o.source))
            .then(self.row.cmp(&o.row))
    }
}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Entry {}

/// Keeps the k best entries; its top is the worst of them.
struct TopK {
    k: usize,
    heap: BinaryHeap<Entry>,
}

impl TopK {
    fn new(k: usize) -> Self {
        TopK {
            k,
            heap: BinaryHeap::with_capacity(k.min(4096)),
        }
    }

    /// The lowest score that may still enter: that of the worst entry once k are held.
    #[inline]
    fn threshold(&self) -> f32 {
        if self.heap.len() < self.k {
            f32::NEG_INFINITY
        } else {
            self.heap.peek().map_or(f32::NEG_INFINITY, |e| e.score)
        }
    }

    #[inline]
    fn offer(&mut self, score: f32, source: usize, row: u32, key: &impl Fn(usize, u32) -> u64) {
        if self.heap.len() < self.k {
            let key = key(source, row);
            self.heap.push(Entry {
                score,
                key,
                source,
                row,
            });
            return;
        }
        let Some(mut worst) = self.heap.peek_mut() else {
            return;
        };
        if score < worst.score {
            return;
        }
        let e = Entry {
            score,
            key: key(source, row),
            source,
            row,
        };
        if e < *worst {
            *worst = e;
        }
    }

    fn into_sorted(self) -> Vec<Bm25Hit> {
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|e| Bm25Hit {
                source: e.source,
                row: e.row,
                score: e.score,
            })
            .collect()
    }
}
