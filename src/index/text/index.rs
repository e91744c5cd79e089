//! The in-memory inverted index of one source: a memtable, or one sealed segment.
//!
//! `term → [(row, tf)]` with rows ascending, plus the number of terms of every row. Rows are
//! the source's own row numbers `0..rows`; which of them are live is the caller's business
//! (see `bm25::Source`). The on-disk form is in `format.rs`.
//!
//! Invariants (kept by [`TextIndex::push`], checked by [`TextIndex::decode`]):
//! - every posting list is non-empty, its rows strictly ascending and `< rows()`, each tf ≥ 1;
//! - `doc_len(r)` equals the sum of the tfs of row `r` over all posting lists.

use std::collections::HashMap;
use std::iter::FusedIterator;

use roaring::RoaringBitmap;

use super::Analyzer;

/// Rough heap cost of one dictionary entry besides its term bytes and postings: the `String`
/// and `Vec` headers and the hash table slot.
pub(super) const ENTRY_OVERHEAD: usize = 64;

/// Postings per block of the per-block score bounds (block `b` holds postings
/// `b·BLOCK_LEN .. (b+1)·BLOCK_LEN` of a list).
pub(crate) const BLOCK_LEN: usize = 64;
/// `log2(BLOCK_LEN)`.
pub(crate) const BLOCK_SHIFT: u32 = 6;
/// The most (tf, dl) points kept per block.
pub(crate) const MAX_POINTS: usize = 4;

/// The score bound data of one block of postings: up to [`MAX_POINTS`] points
/// `(tf, dl)` such that every posting `(row, tf')` of the block has some point with
/// `tf' ≤ tf` and `doc_len(row) ≥ dl`. A BM25 contribution grows with tf and shrinks with the
/// document length whatever N, df and avgdl are, so the largest contribution of the points is
/// a bound on the block's for any collection statistics. Unused slots are `(0, 0)` (a zero
/// contribution); the used ones come first.
pub(crate) type BlockMax = [(u32, u32); MAX_POINTS];

/// The postings of one term, their largest term frequency, and (for a sealed segment's index)
/// the score bound data of each block of [`BLOCK_LEN`] postings (for the bounds that let a
/// top-k search skip rows and blocks, see `bm25.rs`).
#[derive(Debug, Clone, Default)]
pub(super) struct Plist {
    /// (row, term frequency), rows strictly ascending.
    pub rows: Vec<(u32, u32)>,
    /// The largest term frequency in `rows`.
    pub max_tf: u32,
    /// One entry per block of `rows`, or empty (a memtable's index, which has no bounds per
    /// block: searches use `max_tf` then).
    pub blocks: Vec<BlockMax>,
}

/// Equality of the postings; the block bounds are derived data (a memtable's index has none,
/// the same index decoded from its file has them).
impl PartialEq for Plist {
    fn eq(&self, o: &Self) -> bool {
        self.rows == o.rows && self.max_tf == o.max_tf
    }
}
impl Eq for Plist {}

impl Plist {
    pub(super) fn new(rows: Vec<(u32, u32)>) -> Self {
        let max_tf = rows.iter().map(|&(_, tf)| tf).max().unwrap_or(0);
        Plist {
            rows,
            max_tf,
            blocks: Vec::new(),
        }
    }
}

/// The number of blocks of a list of `len` postings.
pub(crate) fn block_count(len: usize) -> usize {
    len.div_ceil(BLOCK_LEN)
}

/// The bound data of each block of `list`, from the lengths of the rows (`doc_lens[row]`):
/// the block's Pareto front of (high tf, low length) points, coarsened to [`MAX_POINTS`] by
/// merging neighbours (the merge of `(tf1, dl1)` and `(tf2, dl2)`, `tf1 < tf2`, `dl1 < dl2`, is
/// `(tf2, dl1)`, which dominates both).
pub(crate) fn block_bounds(list: &[(u32, u32)], doc_lens: &[u32]) -> Vec<BlockMax> {
    let mut out = Vec::with_capacity(block_count(list.len()));
    let mut pts: Vec<(u32, u32)> = Vec::with_capacity(BLOCK_LEN);
    for block in list.chunks(BLOCK_LEN) {
        pts.clear();
        pts.extend(
            block
                .iter()
                .map(|&(row, tf)| (tf, doc_lens.get(row as usize).copied().unwrap_or(0))),
        );
        // By tf descending, then length ascending; keep a point only if its length is below
        // that of every point with a larger (or equal) tf: the front, tf descending and
        // length descending.
        pts.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut front: Vec<(u32, u32)> = Vec::with_capacity(8);
        for &(tf, dl) in pts.iter() {
            if front.last().is_none_or(|&(_, last)| dl < last) {
                front.push((tf, dl));
            }
        }
        // Coarsen: split the front (tf descending) into MAX_POINTS runs; each run becomes
        // (its largest tf, its smallest length) = (first tf, last length).
        let mut b: BlockMax = [(0, 0); MAX_POINTS];
        let n = front.len();
        let groups = n.min(MAX_POINTS);
        for (g, slot) in b.iter_mut().enumerate().take(groups) {
            let (lo, hi) = (g * n / groups, (g + 1) * n / groups);
            *slot = (front[lo].0, front[hi - 1].1);
        }
        out.push(b);
    }
    out
}

/// Whether every posting of `block` is dominated by a point of `b` (its tf at most the point's
/// and its row's length at least the point's), which is what makes `b` a valid bound.
pub(crate) fn dominates(b: &BlockMax, block: &[(u32, u32)], doc_lens: &[u32]) -> bool {
    block.iter().all(|&(row, tf)| {
        let dl = doc_lens.get(row as usize).copied().unwrap_or(0);
        b.iter().any(|&(ptf, pdl)| tf <= ptf && dl >= pdl)
    })
}

/// An inverted index over rows `0..rows()` of one source.
#[derive(Debug, Clone, Default)]
pub(crate) struct TextIndex {
    /// Term → its postings.
    pub(super) postings: HashMap<String, Plist>,
    /// Number of terms of each row; rows skipped by `push` hold 0.
    pub(super) doc_lens: Vec<u32>,
    pub(super) docs_with_text: u64,
    pub(super) total_len: u64,
    /// Estimate of the heap bytes held, maintained by `push`.
    pub(super) heap_bytes: usize,
}

/// Equality of the indexed content: the heap estimate (which counts the block bounds a
/// decoded index holds and a memtable's does not) is left out, like [`Plist`]'s bounds.
impl PartialEq for TextIndex {
    fn eq(&self, o: &Self) -> bool {
        self.postings == o.postings
            && self.doc_lens == o.doc_lens
            && self.docs_with_text == o.docs_with_text
            && self.total_len == o.total_len
    }
}
impl Eq for TextIndex {}

impl TextIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends row `row` with the terms `analyzer` finds in `text`. Each term goes straight
    /// into its posting list (the row's entry is added, or its tf incremented), so the memory
    /// this takes beyond the index itself is one word's, whatever the length of the text.
    /// Rows must be pushed in strictly increasing order; rows without text may be skipped or
    /// pushed with no terms, which is the same thing. Amortised O(terms).
    ///
    /// # Panics
    /// If `row` is not above every row pushed before, or is `u32::MAX` (rows of a source are
    /// `u32`, and `rows()` must fit one) — both are bugs of the caller.
    pub fn push_text(&mut self, row: u32, text: &str, analyzer: &Analyzer) {
        self.start_row(row);
        let mut tokens = 0u64;
        analyzer.for_each_term(text, |t| {
            tokens += 1;
            self.add_term(row, t);
        });
        self.finish_row(row, tokens);
    }

    /// Appends row `row` with its analyzed terms (duplicates count: they are the term
    /// frequencies); otherwise as [`push_text`](Self::push_text).
    #[cfg(test)]
    pub fn push(&mut self, row: u32, terms: &[String]) {
        self.start_row(row);
        terms.iter().for_each(|t| self.add_term(row, t));
        self.finish_row(row, terms.len() as u64);
    }

    /// Adds row `row`, with no terms yet.
    fn start_row(&mut self, row: u32) {
        let next = self.doc_lens.len();
        assert!(
            row as usize >= next && row < u32::MAX,
            "text index: row {row} pushed after {next} rows"
        );
        self.heap_bytes += (row as usize - next + 1) * 4;
        self.doc_lens.resize(row as usize + 1, 0);
    }

    /// One occurrence of `term` in row `row`, the last row started.
    fn add_term(&mut self, row: u32, term: &str) {
        match self.postings.get_mut(term) {
            Some(p) => match p.rows.last_mut() {
                Some((r, tf)) if *r == row => {
                    *tf = tf.saturating_add(1);
                    p.max_tf = p.max_tf.max(*tf);
                }
                _ => {
                    self.heap_bytes += 8;
                    p.rows.push((row, 1));
                    p.max_tf = p.max_tf.max(1);
                }
            },
            None => {
                self.heap_bytes += term.len() + ENTRY_OVERHEAD + 8;
                self.postings.insert(
                    term.to_owned(),
                    Plist {
                        rows: vec![(row, 1)],
                        max_tf: 1,
                        blocks: Vec::new(),
                    },
                );
            }
        }
    }

    /// Records the length of row `row` (its number of terms).
    fn finish_row(&mut self, row: u32, tokens: u64) {
        if tokens == 0 {
            return;
        }
        // A document's length saturates at u32::MAX terms (over 8 GB of text).
        let len = u32::try_from(tokens).unwrap_or(u32::MAX);
        self.doc_lens[row as usize] = len;
        self.docs_with_text += 1;
        self.total_len += u64::from(len);
    }

    /// Makes `rows()` at least `rows`, as if the missing rows were pushed without text (a
    /// segment's `text` file counts all of the segment's rows, like its other files).
    pub fn extend_rows(&mut self, rows: u32) {
        let rows = rows as usize;
        if rows > self.doc_lens.len() {
            self.heap_bytes += (rows - self.doc_lens.len()) * 4;
            self.doc_lens.resize(rows, 0);
        }
    }

    /// The number of terms of `row`; 0 for rows without text and rows never pushed.
    pub fn doc_len(&self, row: u32) -> u32 {
        self.doc_lens.get(row as usize).copied().unwrap_or(0)
    }

    /// One past the highest row pushed; 0 if none was.
    pub fn rows(&self) -> u32 {
        // `push` keeps the length below u32::MAX + 1.
        self.doc_lens.len() as u32
    }

    /// The number of rows with at least one term.
    pub fn docs_with_text(&self) -> u64 {
        self.docs_with_text
    }

    /// The sum of `doc_len` over all rows.
    pub fn total_len(&self) -> u64 {
        self.total_len
    }

    /// The number of distinct terms.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn num_terms(&self) -> usize {
        self.postings.len()
    }

    /// An estimate of the heap memory held (for memtable size limits).
    pub fn heap_bytes(&self) -> usize {
        self.heap_bytes
    }

    /// The rows containing `term`, ascending, with the term's frequency in each; `None` if no
    /// row contains it.
    pub fn postings(&self, term: &str) -> Option<Postings<'_>> {
        self.postings.get(term).map(|p| Postings {
            list: &p.rows,
            max_tf: p.max_tf,
            blocks: &p.blocks,
        })
    }

    /// The rows containing `term`.
    pub fn term_rows(&self, term: &str) -> RoaringBitmap {
        match self.postings.get(term).map(|p| &p.rows) {
            // Rows are strictly ascending, so this cannot fail.
            Some(l) => RoaringBitmap::from_sorted_iter(l.iter().map(|&(r, _)| r))
                .unwrap_or_else(|_| l.iter().map(|&(r, _)| r).collect()),
            None => RoaringBitmap::new(),
        }
    }

    /// Every term with its postings, in no particular order.
    // Used by the fuzz harness (which checks every term's postings) and tests only;
    // compaction re-indexes the live rows' stored text instead of merging indexes.
    #[cfg_attr(not(fuzzing), allow(dead_code))]
    pub fn terms(&self) -> impl Iterator<Item = (&str, Postings<'_>)> {
        self.postings.iter().map(|(t, p)| {
            (
                t.as_str(),
                Postings {
                    list: &p.rows,
                    max_tf: p.max_tf,
                    blocks: &p.blocks,
                },
            )
        })
    }
}

/// The postings of one term: `(row, tf)` pairs, rows strictly ascending.
#[derive(Debug, Clone)]
pub(crate) struct Postings<'a> {
    list: &'a [(u32, u32)],
    /// The largest term frequency of the whole list.
    max_tf: u32,
    /// The bound data of each block of the whole list, or empty (see [`Plist::blocks`]).
    blocks: &'a [BlockMax],
}

impl<'a> Postings<'a> {
    /// The largest term frequency of the term's whole list (not only the remaining pairs).
    pub fn max_tf(&self) -> u32 {
        self.max_tf
    }

    /// The bound data of each block of [`BLOCK_LEN`] postings of the term's whole list, or
    /// empty when the index has none (a memtable's).
    pub fn blocks(&self) -> &'a [BlockMax] {
        self.blocks
    }

    /// The remaining `(row, tf)` pairs.
    pub fn as_slice(&self) -> &'a [(u32, u32)] {
        self.list
    }

    /// The term frequency in `row`, if the row is among the remaining ones (binary search).
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn tf(&self, row: u32) -> Option<u32> {
        self.list
            .binary_search_by_key(&row, |&(r, _)| r)
            .ok()
            .map(|i| self.list[i].1)
    }
}

impl Iterator for Postings<'_> {
    type Item = (u32, u32);

    #[inline]
    fn next(&mut self) -> Option<(u32, u32)> {
        let (&first, rest) = self.list.split_first()?;
        self.list = rest;
        Some(first)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.list.len(), Some(self.list.len()))
    }
}

impl ExactSizeIterator for Postings<'_> {}
impl FusedIterator for Postings<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use crate::model::config::TextConfig;

    proptest! {
        /// Indexing a text term by term gives the index of its collected terms (the same
        /// postings, tfs and lengths), under every analyzer configuration.
        #[test]
        fn push_text_equals_push_of_the_terms(
            docs in prop::collection::vec(
                prop::collection::vec(prop::sample::select(vec![
                    "Run", "running", "the", "THE", "Σίσυφος", "ΟΔΟΣ", "straße", "a", "x1",
                    "3.14", "don't", " ", ", ", ". ", "\n", "é", "İstanbul", "😀",
                ]), 0..30),
                1..6,
            ),
            stem in any::<bool>(),
            stop_words in any::<bool>(),
        ) {
            let analyzer = Analyzer::new(&TextConfig::default().stem(stem).stop_words(stop_words));
            let (mut a, mut b) = (TextIndex::new(), TextIndex::new());
            for (row, words) in docs.iter().enumerate() {
                let text = words.concat();
                a.push_text(row as u32 * 2, &text, &analyzer);
                b.push(row as u32 * 2, &analyzer.terms(&text));
            }
            prop_assert_eq!(a, b);
        }
    }

    fn terms(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn empty_index() {
        let idx = TextIndex::new();
        assert_eq!(idx.rows(), 0);
        assert_eq!(idx.docs_with_text(), 0);
        assert_eq!(idx.total_len(), 0);
        assert_eq!(idx.doc_len(0), 0);
        assert!(idx.postings("a").is_none());
        assert!(idx.term_rows("a").is_empty());
    }

    #[test]
    fn push_counts_terms_and_frequencies() {
        let mut idx = TextIndex::new();
        idx.push(0, &terms("a b a"));
        idx.push(1, &[]);
        // Row 2 skipped: same as pushed empty.
        idx.push(3, &terms("b c"));
        assert_eq!(idx.rows(), 4);
        assert_eq!(
            (0..5).map(|r| idx.doc_len(r)).collect::<Vec<_>>(),
            [3, 0, 0, 2, 0]
        );
        assert_eq!(idx.docs_with_text(), 2);
        assert_eq!(idx.total_len(), 5);
        assert_eq!(idx.num_terms(), 3);
        assert_eq!(idx.postings("a").unwrap().collect::<Vec<_>>(), [(0, 2)]);
        assert_eq!(
            idx.postings("b").unwrap().collect::<Vec<_>>(),
            [(0, 1), (3, 1)]
        );
        assert_eq!(idx.postings("b").unwrap().len(), 2);
        assert_eq!(idx.postings("b").unwrap().tf(3), Some(1));
        assert_eq!(idx.postings("b").unwrap().tf(1), None);
        assert_eq!(idx.term_rows("b").iter().collect::<Vec<_>>(), [0, 3]);
        assert!(idx.postings("d").is_none());
        assert!(idx.heap_bytes() > 0);
    }

    #[test]
    fn skipped_and_empty_rows_are_equivalent() {
        let mut a = TextIndex::new();
        a.push(0, &terms("x"));
        a.push(1, &[]);
        a.push(2, &[]);
        a.push(3, &terms("x y"));
        let mut b = TextIndex::new();
        b.push(0, &terms("x"));
        b.push(3, &terms("x y"));
        assert_eq!(a.rows(), b.rows());
        assert_eq!(a.postings, b.postings);
        assert_eq!(a.doc_lens, b.doc_lens);
        assert_eq!(a.docs_with_text(), b.docs_with_text());
        b.extend_rows(6);
        b.extend_rows(2);
        a.push(5, &[]);
        assert_eq!(a, b);
    }

    #[test]
    #[should_panic(expected = "pushed after")]
    fn rows_must_increase() {
        let mut idx = TextIndex::new();
        idx.push(2, &terms("a"));
        idx.push(2, &terms("b"));
    }
}
