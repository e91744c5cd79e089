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
//! Evaluation per source: for two or more terms, document at a time with block-max MaxScore
//! pruning ([`maxscore`]); otherwise term-at-a-time, with a dense accumulator when the postings
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
    /// Document at a time with MaxScore pruning (Turtle & Flood): rows that contain only
    /// terms whose score bounds together stay below the k-th best score are never visited.
    #[cfg_attr(not(test), allow(dead_code))]
    Pruned,
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
            a => a == Accumulator::Pruned,
        };
        let dense = match accumulator {
            Accumulator::Auto | Accumulator::Pruned => postings.saturating_mul(8) >= rows,
            Accumulator::Dense => true,
            Accumulator::Sparse => false,
        };
        if postings == 0 {
            continue;
        } else if pruned {
            maxscore(&lists, s, si, &norm, &mut top, &key);
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

    /// The bound of the whole list.
    fn max(&self) -> f64 {
        self.bounds.iter().copied().fold(0.0, f64::max)
    }

    /// The number of blocks.
    fn blocks(&self) -> usize {
        self.bounds.len()
    }

    /// The last row of block `b` (< `blocks()`).
    #[inline]
    fn last_row(&self, b: usize) -> u32 {
        let end = ((b as u64 + 1) << self.shift).min(self.list.len() as u64) as usize;
        self.list[end - 1].0
    }
}

/// One source's top-k rows, document at a time with block-max MaxScore pruning. `lists` are
/// the query's terms in query order, with their idf.
///
/// Bounds. Each block of a segment's posting lists stores a few `(tf, dl)` points that
/// dominate its postings (`index::BlockMax`); since a term's contribution grows with tf and
/// shrinks with the row's length, the largest contribution of the points under this query's
/// N, df and avgdl bounds the block's. A list's bound is the largest of its blocks'. (A
/// memtable's lists have no blocks: their bound is `idf · m / (m + k1·(1 − b) + k1·b·m /
/// avgdl)` for the largest tf `m`, a row holding a term `m` times being at least `m` terms
/// long.)
///
/// MaxScore: terms sorted by list bound, the longest prefix whose bounds sum below the k-th
/// best score is *non-essential*: a row containing only those cannot enter, so candidates come
/// from the other lists alone. Block-max: before a candidate is scored, the bounds of the
/// blocks that hold it (or would) in every list are added up; if they cannot reach the k-th
/// best, no row up to the end of the first of those blocks can, and the essential lists skip
/// past it. A candidate that is scored is dropped as soon as its partial score plus the block
/// bounds of the terms not yet looked at falls below the k-th best.
///
/// Filters and deletes are tested before any bound: a candidate that is dead or not allowed
/// costs one lookup. A selective filter (at most 1/16 of the source's rows) is first turned
/// into a bit set over the rows, and a candidate it leaves out makes the essential lists leap
/// to the next allowed row (a row without its bit cannot enter, however it scores).
///
/// A row that survives is scored exactly like the exhaustive paths do (contributions added in
/// query order in f64), so scores and ranks are identical; the bounds are only compared, with
/// a margin over the rounding of sums.
fn maxscore(
    lists: &[(Postings<'_>, f64)],
    s: &Source<'_>,
    si: usize,
    norm: &Norm,
    top: &mut TopK,
    key: &impl Fn(usize, u32) -> u64,
) {
    let m = lists.len();
    let cur: Vec<Cursor<'_>> = lists
        .iter()
        .map(|(p, w)| Cursor::new(p, *w, norm))
        .collect();
    let bound: Vec<f64> = cur.iter().map(Cursor::max).collect();
    // Term indexes by ascending bound, and the sums of the bounds of each prefix.
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| bound[a].total_cmp(&bound[b]));
    let mut prefix = vec![0.0f64; m + 1];
    for (i, &t) in order.iter().enumerate() {
        prefix[i + 1] = prefix[i] + bound[t];
    }
    let mut st = State {
        blk_last: cur.iter().map(|c| c.last_row(0)).collect(),
        blk_bound: cur.iter().map(|c| c.bounds[0]).collect(),
        cur,
        order,
        prefix,
        pos: vec![0; m],
        blk: vec![0; m],
        contrib: vec![0.0; m],
        nb: vec![0.0; m + 1],
        essential_from: 0,
        norm,
        si,
    };
    match s.allow {
        // A selective filter: its rows as a bit set, to test each candidate with one load and
        // to leap to the next allowed row.
        Some(a) if a.len().saturating_mul(16) < u64::from(s.index.rows()) => {
            let mut bits = vec![0u64; s.index.rows() as usize / 64 + 1];
            for row in a {
                if let Some(w) = bits.get_mut(row as usize / 64) {
                    *w |= 1 << (row % 64);
                }
            }
            st.by_postings(s, Some(&bits), top, key)
        }
        _ => st.by_postings(s, None, top, key),
    }
}

/// The first row ≥ `row` whose bit is set in `bits`, if any.
#[inline]
fn next_set(bits: &[u64], row: u32) -> Option<u32> {
    let mut w = row as usize / 64;
    let mut word = bits.get(w)? & (u64::MAX << (row % 64));
    while word == 0 {
        w += 1;
        word = *bits.get(w)?;
    }
    Some(w as u32 * 64 + word.trailing_zeros())
}

/// Whether a row whose score is at most `x` (in exact arithmetic) cannot reach `bar`.
#[inline]
fn below(x: f64, bar: f32) -> bool {
    ((x * (1.0 + 1e-9)) as f32) < bar
}

/// The cursors and scratch of [`maxscore`].
struct State<'a> {
    cur: Vec<Cursor<'a>>,
    /// Term indexes by ascending list bound.
    order: Vec<usize>,
    /// `prefix[i]`: the sum of the list bounds of `order[..i]`.
    prefix: Vec<f64>,
    /// Per term: the position of its next posting.
    pos: Vec<usize>,
    /// Per term: its block cursor, the first block whose last row is ≥ the current row (see
    /// [`State::block_at`]), with that block's last row and bound (`u32::MAX` and 0 past the
    /// last block).
    blk: Vec<usize>,
    blk_last: Vec<u32>,
    blk_bound: Vec<f64>,
    /// Per term: its contribution to the current row.
    contrib: Vec<f64>,
    /// `nb[i]`: the sum of the block bounds at the current row of `order[..i]`, for the
    /// non-essential terms.
    nb: Vec<f64>,
    /// `order[essential_from..]` are the essential terms.
    essential_from: usize,
    norm: &'a Norm,
    /// The source's index in the search.
    si: usize,
}

impl State<'_> {
    /// Moves terms from the essential set to the non-essential one while the bar allows;
    /// false when no term is essential any more (nothing more can enter).
    fn partition(&mut self, bar: f32) -> bool {
        let m = self.order.len();
        while self.essential_from < m && below(self.prefix[self.essential_from + 1], bar) {
            self.essential_from += 1;
        }
        self.essential_from < m
    }

    /// Where term `t`'s search for the current row may start: its next posting, or the start
    /// of its block cursor's block if later (the postings before it are below the row the
    /// cursor was moved to).
    #[inline]
    fn skip_start(&self, t: usize) -> usize {
        let c = &self.cur[t];
        let block_start = ((self.blk[t] as u64) << c.shift).min(c.list.len() as u64) as usize;
        self.pos[t].max(block_start)
    }

    /// Moves term `t`'s block cursor to the first block whose last row is ≥ `row` (rows only
    /// grow), without looking at postings; returns that block's bound and last row.
    #[inline]
    fn block_at(&mut self, t: usize, row: u32) -> (f64, u32) {
        if self.blk_last[t] < row {
            let c = &self.cur[t];
            let mut b = self.blk[t];
            loop {
                b += 1;
                if b >= c.blocks() {
                    self.blk_last[t] = u32::MAX;
                    self.blk_bound[t] = 0.0;
                    break;
                }
                let last = c.last_row(b);
                if last >= row {
                    self.blk_last[t] = last;
                    self.blk_bound[t] = c.bounds[b];
                    break;
                }
            }
            self.blk[t] = b;
        }
        (self.blk_bound[t], self.blk_last[t])
    }

    /// Block bounds of the non-essential terms at `row` into `nb`; returns the smallest last
    /// row of those blocks (`u32::MAX` if none).
    fn non_essential_blocks(&mut self, row: u32) -> u32 {
        let mut upto = u32::MAX;
        for i in 0..self.essential_from {
            let (b, last) = self.block_at(self.order[i], row);
            upto = upto.min(last);
            self.nb[i + 1] = self.nb[i] + b;
        }
        upto
    }

    /// Scores `row` given the essential terms' contributions summed in `partial`: adds the
    /// non-essential terms' (largest bound first) while the row can still reach `bar`, then
    /// offers the row. Clears `contrib`.
    fn finish_row(
        &mut self,
        row: u32,
        dl: u32,
        mut partial: f64,
        bar: f32,
        top: &mut TopK,
        key: &impl Fn(usize, u32) -> u64,
    ) {
        let mut alive = true;
        for i in (0..self.essential_from).rev() {
            if below(partial + self.nb[i + 1], bar) {
                alive = false;
                break;
            }
            let t = self.order[i];
            let from = self.skip_start(t);
            let c = &self.cur[t];
            self.pos[t] = from + gallop(&c.list[from..], row);
            if let Some(&(r, tf)) = c.list.get(self.pos[t])
                && r == row
            {
                self.contrib[t] = self.norm.score(c.w, tf, dl);
                partial += self.contrib[t];
            }
        }
        if alive {
            // Exactly the exhaustive sum: query order, from 0.
            let score = self.contrib.iter().fold(0.0, |acc, &x| acc + x) as f32;
            if score >= bar {
                top.offer(score, self.si, row, key);
            }
        }
        self.contrib.fill(0.0);
    }

    /// Candidates from the essential lists.
    fn by_postings(
        &mut self,
        s: &Source<'_>,
        allow_bits: Option<&[u64]>,
        top: &mut TopK,
        key: &impl Fn(usize, u32) -> u64,
    ) {
        loop {
            let bar = top.threshold();
            if !self.partition(bar) {
                return;
            }
            let ess = self.essential_from;
            // The next candidate: the smallest current row among the essential lists.
            let mut row = u32::MAX;
            for &t in &self.order[ess..] {
                if let Some(&(r, _)) = self.cur[t].list.get(self.pos[t]) {
                    row = row.min(r);
                }
            }
            if row == u32::MAX {
                return;
            }
            // Rows the filter or the deletes leave out, cheapest test first.
            let skip_to = match allow_bits {
                Some(bits) => match next_set(bits, row) {
                    None => return,
                    Some(next) if next > row => Some(next),
                    Some(_) => s.is_dead(row).then_some(row + 1),
                },
                None => {
                    (s.is_dead(row) || s.allow.is_some_and(|a| !a.contains(row))).then_some(row + 1)
                }
            };
            if let Some(skip_to) = skip_to {
                self.skip_essential(skip_to);
                continue;
            }
            // Block bounds: of every row up to `upto` (`range`), and of `row` itself.
            let mut upto = self.non_essential_blocks(row);
            let (mut range, mut at_row) = (self.nb[ess], self.nb[ess]);
            for &t in &self.order[ess..] {
                // The essential lists are at their first posting ≥ `row`: its block is the
                // one of every later row up to the block's last.
                let c = &self.cur[t];
                if let Some(&(r, _)) = c.list.get(self.pos[t]) {
                    let b = ((self.pos[t] as u64) >> c.shift) as usize;
                    range += c.bounds[b];
                    upto = upto.min(c.last_row(b));
                    if r == row {
                        at_row += c.bounds[b];
                    }
                }
            }
            let skip_to = if below(range, bar) {
                // No row up to `upto` can enter (`upto` ≥ `row`, and < u32::MAX: rows are).
                upto.saturating_add(1)
            } else if below(at_row, bar) {
                row + 1
            } else {
                // Score it.
                let dl = s.index.doc_len(row);
                let mut partial = 0.0f64;
                for &t in &self.order[ess..] {
                    let c = &self.cur[t];
                    if let Some(&(r, tf)) = c.list.get(self.pos[t])
                        && r == row
                    {
                        self.pos[t] += 1;
                        self.contrib[t] = self.norm.score(c.w, tf, dl);
                        partial += self.contrib[t];
                    }
                }
                self.finish_row(row, dl, partial, bar, top, key);
                continue;
            };
            self.skip_essential(skip_to);
        }
    }

    /// Moves every essential list to its first posting at or after `row`.
    fn skip_essential(&mut self, row: u32) {
        for &t in &self.order[self.essential_from..] {
            let list = self.cur[t].list;
            let p = &mut self.pos[t];
            if list.get(*p).is_some_and(|&(r, _)| r < row) {
                *p += 1 + gallop(&list[*p + 1..], row);
            }
        }
    }
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
