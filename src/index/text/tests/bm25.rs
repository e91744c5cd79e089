//! BM25: hand-computed values, collection-wide statistics, and a model test against a scorer
//! written straight from the definition over the raw documents.

use std::collections::HashSet;
use std::path::Path;

use proptest::prelude::*;
use roaring::RoaringBitmap;

use super::terms;
use crate::index::text::bm25::{
    Accumulator, Bm25Hit, Source, idf, search, search_keyed, search_with, stats, stats_with_total,
};
use crate::index::text::{LiveCache, TextIndex};

/// The terms of `row` in the divisor corpus: `all`, and `t{i}` for each `every[i]` dividing
/// the row.
fn divisor_terms(every: &[u32], row: u32) -> Vec<String> {
    std::iter::once("all".to_string())
        .chain(
            every
                .iter()
                .enumerate()
                .filter(|&(_, &m)| row.is_multiple_of(m))
                .map(|(i, _)| format!("t{i}")),
        )
        .collect()
}

/// The divisor corpus of `rows` rows as an index.
fn divisor_index(rows: u32, every: &[u32]) -> TextIndex {
    let mut idx = TextIndex::new();
    for row in 0..rows {
        idx.push(row, &divisor_terms(every, row));
    }
    idx
}

fn index(docs: &[&str]) -> TextIndex {
    let mut idx = TextIndex::new();
    for (row, d) in docs.iter().enumerate() {
        idx.push(row as u32, &terms(d));
    }
    idx
}

fn all_live(idx: &TextIndex) -> Source<'_> {
    Source {
        index: idx,
        dead: None,
        allow: None,
        live: None,
    }
}

fn q(s: &str) -> Vec<String> {
    terms(s)
}

#[test]
fn hand_computed_score() {
    // N = 2, avgdl = 1.5; "a": df = 1, idf = ln(1 + 1.5 / 1.5) = ln 2;
    // row 0: tf = 1, dl = 1: ln 2 · 1 / (1 + 1.2 · (0.25 + 0.75 · 1 / 1.5)) = ln 2 / 1.9.
    let idx = index(&["a", "b b"]);
    let hits = search(&[all_live(&idx)], &q("a"), 10);
    assert_eq!(hits.len(), 1);
    assert_eq!((hits[0].source, hits[0].row), (0, 0));
    let want = (2f64.ln() / 1.9) as f32;
    assert!(
        (hits[0].score - want).abs() < 1e-6,
        "{} vs {want}",
        hits[0].score
    );
    assert!((idf(2, 1) - 2f64.ln()).abs() < 1e-12);
    // A term in every document still has a positive idf.
    assert!(idf(5, 5) > 0.0);
}

#[test]
fn ranking_prefers_frequent_rare_terms_and_short_documents() {
    let idx = index(&[
        "common rare",
        "common common common",
        "common rare rare",
        "common rare filler filler filler filler filler filler",
        "",
    ]);
    let hits = search(&[all_live(&idx)], &q("rare common"), 10);
    let rows: Vec<u32> = hits.iter().map(|h| h.row).collect();
    assert_eq!(rows, [2, 0, 3, 1]);
    assert!(hits.windows(2).all(|w| w[0].score > w[1].score));
}

#[test]
fn empty_cases() {
    let idx = index(&["a b", "c"]);
    let s = [all_live(&idx)];
    assert!(search(&s, &q("a"), 0).is_empty());
    assert!(search(&s, &[], 5).is_empty());
    assert!(search(&s, &q("zzz"), 5).is_empty());
    assert!(search(&[], &q("a"), 5).is_empty());
    let empty = TextIndex::new();
    assert!(search(&[all_live(&empty)], &q("a"), 5).is_empty());
}

#[test]
fn repeated_query_terms_count_once() {
    let idx = index(&["a b", "b c", "a a c"]);
    let s = [all_live(&idx)];
    assert_eq!(search(&s, &q("a b"), 5), search(&s, &q("a b a b a"), 5));
}

#[test]
fn statistics_ignore_dead_rows_and_rows_without_text() {
    let idx = index(&["a b", "a", "", "b b b"]);
    let st = stats(&[all_live(&idx)], &q("a b z"));
    assert_eq!((st.n, st.df.clone()), (3, vec![2, 2, 0]));
    assert!((st.avgdl - 2.0).abs() < 1e-12);

    let dead: RoaringBitmap = [1, 2, 99].into_iter().collect();
    let s = Source {
        index: &idx,
        dead: Some(&dead),
        allow: None,
        live: None,
    };
    let st = stats(&[s], &q("a b"));
    assert_eq!((st.n, st.df), (2, vec![1, 2]));
    assert!((st.avgdl - 2.5).abs() < 1e-12);
    // Dead rows are never returned.
    assert!(search(&[s], &q("a"), 5).iter().all(|h| h.row == 0));
}

#[test]
fn allow_filters_results_not_statistics() {
    let idx = index(&["a", "a b", "b", "a a"]);
    let allow: RoaringBitmap = [1, 2].into_iter().collect();
    let filtered = Source {
        index: &idx,
        dead: None,
        allow: Some(&allow),
        live: None,
    };
    let hits = search(&[filtered], &q("a b"), 10);
    let all = search(&[all_live(&idx)], &q("a b"), 10);
    assert_eq!(hits.len(), 2);
    for h in &hits {
        assert!(allow.contains(h.row));
        let same = all.iter().find(|a| a.row == h.row).unwrap();
        assert_eq!(same.score, h.score);
    }
}

#[test]
fn scores_do_not_depend_on_the_split_into_sources() {
    let docs = [
        "red apple",
        "green apple pie",
        "red red wine",
        "",
        "apple",
        "pie crust",
    ];
    let one = index(&docs);
    let whole = search(&[all_live(&one)], &q("red apple pie"), 10);

    // The same live records over a segment (with a dead older copy of row 0), a second
    // segment and a memtable.
    let seg_a = index(&["red apple", "red apple", "green apple pie"]);
    let dead_a: RoaringBitmap = [0].into_iter().collect();
    let seg_b = index(&["red red wine", ""]);
    let mem = index(&["apple", "pie crust"]);
    let parts = [
        Source {
            index: &seg_a,
            dead: Some(&dead_a),
            allow: None,
            live: None,
        },
        all_live(&seg_b),
        all_live(&mem),
    ];
    let split = search(&parts, &q("red apple pie"), 10);
    let text = |h: &Bm25Hit, src: &[&[&str]]| src[h.source][h.row as usize].to_string();
    let whole_sources: [&[&str]; 1] = [&docs];
    let split_sources: [&[&str]; 3] = [
        &["red apple", "red apple", "green apple pie"],
        &["red red wine", ""],
        &["apple", "pie crust"],
    ];
    let w: Vec<(String, f32)> = whole
        .iter()
        .map(|h| (text(h, &whole_sources), h.score))
        .collect();
    let s: Vec<(String, f32)> = split
        .iter()
        .map(|h| (text(h, &split_sources), h.score))
        .collect();
    assert_eq!(w, s);
}

#[test]
fn ties_break_by_source_and_row_or_by_key() {
    let a = index(&["x", "y", "x"]);
    let b = index(&["x"]);
    let s = [all_live(&a), all_live(&b)];
    let hits = search(&s, &q("x"), 2);
    let at: Vec<(usize, u32)> = hits.iter().map(|h| (h.source, h.row)).collect();
    assert_eq!(at, [(0, 0), (0, 2)]);
    // Keyed: source 1 row 0 has the smallest key.
    let hits = search_keyed(&s, &q("x"), 2, |src, row| {
        if src == 1 { 0 } else { 10 + u64::from(row) }
    });
    let at: Vec<(usize, u32)> = hits.iter().map(|h| (h.source, h.row)).collect();
    assert_eq!(at, [(1, 0), (0, 0)]);
}

#[test]
fn forced_dense_and_sparse_give_identical_scores() {
    let idx = index(&["a b c", "a a", "b c c d", "", "d a", "c"]);
    let dead: RoaringBitmap = [1].into_iter().collect();
    let s = [Source {
        index: &idx,
        dead: Some(&dead),
        allow: None,
        live: None,
    }];
    let query = q("a c d b");
    let dense = search_with(&s, &query, 10, |_, _| 0, Accumulator::Dense);
    let sparse = search_with(&s, &query, 10, |_, _| 0, Accumulator::Sparse);
    assert_eq!(dense.len(), 4);
    assert_eq!(dense, sparse);
}

#[test]
fn dense_and_sparse_accumulation_agree() {
    // A large source where a rare term takes the sparse path and a common one the dense path;
    // the same rows scored through both must get identical scores.
    let mut idx = TextIndex::new();
    for row in 0..2000u32 {
        let mut t = vec!["common".to_string()];
        if row % 97 == 0 {
            t.push("rare".into());
        }
        if row % 3 == 0 {
            t.push("filler".into());
        }
        idx.push(row, &t);
    }
    let s = [all_live(&idx)];
    let sparse = search(&s, &q("rare"), 100);
    assert_eq!(sparse.len(), 21);
    let dense = search(&s, &q("rare common"), 2000);
    let common_only = search(&s, &q("common"), 2000);
    for h in &sparse {
        let d = dense.iter().find(|d| d.row == h.row).unwrap();
        let c = common_only.iter().find(|c| c.row == h.row).unwrap();
        let sum = (f64::from(h.score) + f64::from(c.score)) as f32;
        assert!((d.score - sum).abs() <= 1e-5 * d.score, "{d:?} {h:?} {c:?}");
    }
}

// ---- Model test ----

const VOCAB: [&str; 7] = ["a", "b", "c", "d", "e", "f", "never-indexed"];

/// One document of the model: its terms (as word indexes), or none.
#[derive(Debug, Clone)]
struct Doc {
    words: Vec<usize>,
    dead: bool,
    allowed: bool,
    /// A document with no terms is pushed empty (true) or skipped (false).
    push_empty: bool,
}

fn doc() -> impl Strategy<Value = Doc> {
    (
        prop::collection::vec(
            prop::sample::select(vec![0usize, 0, 0, 1, 1, 2, 3, 4, 5]),
            0..8,
        ),
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.7),
        any::<bool>(),
    )
        .prop_map(|(words, dead, allowed, push_empty)| Doc {
            words,
            dead,
            allowed,
            push_empty,
        })
}

fn doc_terms(d: &Doc) -> Vec<String> {
    d.words.iter().map(|&w| VOCAB[w].to_string()).collect()
}

/// BM25 from the definition, over the raw documents: (source, row, score) of every live,
/// allowed document matching the query, best first.
fn reference(sources: &[Vec<Doc>], query: &[String], filter: bool) -> Vec<(usize, u32, f64)> {
    let live: Vec<(usize, u32, &Doc)> = sources
        .iter()
        .enumerate()
        .flat_map(|(s, docs)| docs.iter().enumerate().map(move |(r, d)| (s, r as u32, d)))
        .filter(|(_, _, d)| !d.dead && !d.words.is_empty())
        .collect();
    let n = live.len() as f64;
    let avgdl = live
        .iter()
        .map(|(_, _, d)| d.words.len() as f64)
        .sum::<f64>()
        / n;
    let distinct: Vec<&String> = {
        let mut seen = HashSet::new();
        query.iter().filter(|t| seen.insert(*t)).collect()
    };
    let mut out = Vec::new();
    for &(s, r, d) in &live {
        if filter && !d.allowed {
            continue;
        }
        let dt = doc_terms(d);
        let dl = dt.len() as f64;
        let mut score = 0.0;
        let mut matched = false;
        for t in &distinct {
            let tf = dt.iter().filter(|x| x == t).count() as f64;
            if tf == 0.0 {
                continue;
            }
            matched = true;
            let df = live
                .iter()
                .filter(|(_, _, o)| doc_terms(o).contains(t))
                .count() as f64;
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
            score += idf * tf / (tf + 1.2 * (1.0 - 0.75 + 0.75 * dl / avgdl));
        }
        if matched {
            out.push((s, r, score));
        }
    }
    out.sort_by(|a, b| b.2.total_cmp(&a.2));
    out
}

/// One source per index, with its dead rows (none when empty) and, with `filter`, its
/// allowed rows.
fn sources_of<'a>(
    indexes: &'a [TextIndex],
    deads: &'a [RoaringBitmap],
    allows: &'a [RoaringBitmap],
    filter: bool,
) -> Vec<Source<'a>> {
    (0..indexes.len())
        .map(|i| Source {
            index: &indexes[i],
            dead: (!deads[i].is_empty()).then_some(&deads[i]),
            allow: filter.then_some(&allows[i]),
            live: None,
        })
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-4 * a.abs().max(b.abs()).max(1e-12)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn search_matches_reference(
        docs in prop::collection::vec(doc(), 1..40),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..3),
        filter: bool,
        round_trip in prop::collection::vec(any::<bool>(), 3),
        query in prop::collection::vec(0..VOCAB.len(), 0..5),
        k in 1usize..12,
        accumulator in prop::sample::select(vec![
            Accumulator::Auto,
            Accumulator::Dense,
            Accumulator::Sparse,
            Accumulator::Pruned,
        ]),
    ) {
        // Split the corpus into 1–3 sources at the cut points.
        let mut at: Vec<usize> = cuts.iter().map(|c| c.index(docs.len() + 1)).collect();
        at.push(0);
        at.push(docs.len());
        at.sort_unstable();
        at.dedup();
        let parts: Vec<Vec<Doc>> = at.windows(2).map(|w| docs[w[0]..w[1]].to_vec()).collect();

        let mut indexes = Vec::new();
        let mut deads = Vec::new();
        let mut allows = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            let mut idx = TextIndex::new();
            for (row, d) in part.iter().enumerate() {
                if !d.words.is_empty() || d.push_empty {
                    idx.push(row as u32, &doc_terms(d));
                }
            }
            if round_trip[i] {
                idx = TextIndex::decode(&idx.encode(i as u64), Path::new("t"), i as u64).unwrap();
            }
            indexes.push(idx);
            let rows = |f: fn(&Doc) -> bool| -> RoaringBitmap {
                part.iter().enumerate().filter(|(_, d)| f(d)).map(|(r, _)| r as u32).collect()
            };
            deads.push(rows(|d| d.dead));
            allows.push(rows(|d| d.allowed));
        }
        let sources = sources_of(&indexes, &deads, &allows, filter);
        let query: Vec<String> = query.iter().map(|&w| VOCAB[w].to_string()).collect();

        let got = search_with(&sources, &query, k, |_, _| 0, accumulator);
        let want = reference(&parts, &query, filter);

        prop_assert_eq!(got.len(), want.len().min(k));
        let mut seen = HashSet::new();
        for (i, h) in got.iter().enumerate() {
            prop_assert!(seen.insert((h.source, h.row)), "duplicate hit {:?}", h);
            let own = want.iter().find(|w| (w.0, w.1) == (h.source, h.row));
            let Some(&(_, _, own)) = own else {
                return Err(TestCaseError::fail(format!("{h:?} is not a live, allowed match")));
            };
            prop_assert!(close(f64::from(h.score), own), "{:?} vs reference {}", h, own);
            // Same rank as the reference, up to ties.
            prop_assert!(close(f64::from(h.score), want[i].2), "rank {} {:?} vs {:?}", i, h, want[i]);
            if i > 0 {
                prop_assert!(got[i - 1].score >= h.score);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// MaxScore's pruned top k is exactly the exhaustive one: the same rows in the same order
    /// with bit-identical scores, across sources, deletes, filters and an encode/decode round
    /// trip, with ties broken by a key (as the engine does with record ids).
    #[test]
    fn pruned_top_k_equals_the_exhaustive_one(
        docs in prop::collection::vec(doc(), 1..120),
        cut in any::<prop::sample::Index>(),
        filter: bool,
        round_trip: bool,
        query in prop::collection::vec(0..VOCAB.len(), 1..6),
        k in 1usize..8,
        key_mod in 1u64..5,
    ) {
        let at = cut.index(docs.len() + 1);
        let parts = [docs[..at].to_vec(), docs[at..].to_vec()];
        let mut indexes = Vec::new();
        let mut deads = Vec::new();
        let mut allows = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            let mut idx = TextIndex::new();
            for (row, d) in part.iter().enumerate() {
                if !d.words.is_empty() || d.push_empty {
                    idx.push(row as u32, &doc_terms(d));
                }
            }
            if round_trip {
                idx = TextIndex::decode(&idx.encode(i as u64), Path::new("t"), i as u64).unwrap();
            }
            indexes.push(idx);
            let rows = |f: fn(&Doc) -> bool| -> RoaringBitmap {
                part.iter().enumerate().filter(|(_, d)| f(d)).map(|(r, _)| r as u32).collect()
            };
            deads.push(rows(|d| d.dead));
            allows.push(rows(|d| d.allowed));
        }
        let sources: Vec<Source<'_>> = (0..2)
            .map(|i| Source {
                index: &indexes[i],
                dead: (!deads[i].is_empty()).then_some(&deads[i]),
                allow: filter.then_some(&allows[i]),
                live: None,
            })
            .collect();
        let query: Vec<String> = query.iter().map(|&w| VOCAB[w].to_string()).collect();
        // Few distinct keys: many ties to break.
        let key = |s: usize, r: u32| (s as u64 * 7 + u64::from(r)) % key_mod;
        let want = search_with(&sources, &query, k, key, Accumulator::Dense);
        for acc in [
            Accumulator::Pruned,
            Accumulator::Auto,
            Accumulator::Windows(64),
        ] {
            let got = search_with(&sources, &query, k, key, acc);
            prop_assert_eq!(&got, &want, "{:?}", acc);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// The live df of each term, N and the total length over live rows equal a plain count,
    /// whichever way `live_count` takes: few dead rows against a long list (galloping), a list
    /// shorter than rows / 64 (bitmap lookups), or the bit set of the dead rows.
    #[test]
    fn live_statistics_equal_a_plain_count(
        rows in 1u32..3000,
        every in prop::collection::vec(1u32..300, 1..5),
        dead_every in 1u32..500,
        dead_offset in 0u32..500,
        dead_past_the_end in any::<bool>(),
    ) {
        let row_terms = |row: u32| divisor_terms(&every, row);
        let idx = divisor_index(rows, &every);
        let mut dead: RoaringBitmap =
            (0..rows).filter(|r| (r + dead_offset).is_multiple_of(dead_every)).collect();
        if dead_past_the_end {
            dead.insert(rows + 5);
        }
        let src = Source { index: &idx, dead: Some(&dead), allow: None, live: None };
        let query: Vec<String> = std::iter::once("all".to_string())
            .chain((0..every.len()).map(|i| format!("t{i}")))
            .chain(std::iter::once("absent".to_string()))
            .collect();
        let st = stats(&[src], &query);
        let live: Vec<u32> = (0..rows).filter(|r| !dead.contains(*r)).collect();
        prop_assert_eq!(st.n, live.len() as u64);
        let total: usize = live.iter().map(|&r| row_terms(r).len()).sum();
        let avgdl = if live.is_empty() { 0.0 } else { total as f64 / live.len() as f64 };
        prop_assert!(close(st.avgdl, avgdl), "avgdl {} vs {}", st.avgdl, avgdl);
        for (t, &df) in query.iter().zip(&st.df) {
            let want = live.iter().filter(|&&r| row_terms(r).contains(t)).count() as u64;
            prop_assert_eq!(df, want, "term {}", t);
        }
    }
}

proptest! {
    /// The dead-row counts a segment keeps between queries (`LiveCache`) give the statistics
    /// a fresh count gives, over a run of queries whose dead sets grow, go back to an older
    /// state, or differ altogether, each with some of the terms (hits, misses and terms
    /// counted for the first time under a kept set).
    #[test]
    fn kept_statistics_equal_a_fresh_count(
        rows in 1u32..2000,
        every in prop::collection::vec(1u32..200, 1..5),
        steps in prop::collection::vec((0usize..5, prop::collection::vec(any::<bool>(), 6)), 1..12),
    ) {
        let idx = divisor_index(rows, &every);
        // Four nested dead sets (each adds rows to the one before) and one that is not.
        let nested: Vec<RoaringBitmap> = [97u32, 31, 7, 3]
            .iter()
            .scan(RoaringBitmap::new(), |acc, &m| {
                acc.extend((0..rows).filter(|r| r.is_multiple_of(m)));
                Some(acc.clone())
            })
            .collect();
        let other: RoaringBitmap = (0..rows).filter(|r| r % 5 == 1).collect();
        let sets: Vec<&RoaringBitmap> = nested.iter().chain(std::iter::once(&other)).collect();
        let all: Vec<String> = std::iter::once("all".to_string())
            .chain((0..every.len()).map(|i| format!("t{i}")))
            .chain(std::iter::once("absent".to_string()))
            .collect();
        let cache = LiveCache::default();
        for (which, pick) in steps {
            let dead = sets[which];
            let query: Vec<String> = all.iter().zip(&pick).filter(|&(_, &p)| p).map(|(t, _)| t.clone()).collect();
            let fresh = Source { index: &idx, dead: Some(dead), allow: None, live: None };
            let kept = Source { live: Some(&cache), ..fresh };
            prop_assert_eq!(stats_with_total(&[kept], &query), stats_with_total(&[fresh], &query));
        }
    }
}

/// What the cache keeps: after a query, the same dead set finds its counts and the query's
/// terms; a query over an older dead set (a subset) leaves them, a newer one replaces them.
#[test]
fn the_cache_keeps_the_newest_dead_set() {
    let idx = index(&[
        "red blue",
        "red green",
        "blue green",
        "red red gold",
        "green",
    ]);
    let cache = LiveCache::default();
    let older: RoaringBitmap = [1].into_iter().collect();
    let newer: RoaringBitmap = [1, 3].into_iter().collect();
    let q = terms("red blue");
    let run = |dead: &RoaringBitmap, q: &[String]| {
        let s = Source {
            index: &idx,
            dead: Some(dead),
            allow: None,
            live: Some(&cache),
        };
        stats(&[s], q)
    };
    let st = run(&newer, &q);
    assert_eq!((st.n, st.df.clone()), (3, vec![1, 2]));
    let hit = cache.lookup(&newer, &q);
    assert_eq!(hit.docs_len, Some((2, 5)));
    assert_eq!(hit.df, vec![Some(2), Some(0)]);
    assert_eq!(cache.lookup(&newer, &terms("green")).df, vec![None]);
    // An older state: counted, not kept.
    assert_eq!(run(&older, &q).df, vec![2, 2]);
    assert!(cache.lookup(&older, &q).docs_len.is_none());
    assert_eq!(cache.lookup(&newer, &q).df, vec![Some(2), Some(0)]);
    // A hit gives the same statistics again.
    assert_eq!(run(&newer, &q), st);
    // A newer state replaces the kept one.
    let newest: RoaringBitmap = [0, 1, 3].into_iter().collect();
    assert_eq!(run(&newest, &q).df, vec![0, 1]);
    assert!(cache.lookup(&newer, &q).docs_len.is_none());
    assert_eq!(cache.lookup(&newest, &q).df, vec![Some(3), Some(1)]);
}

// ---- Block-max pruning over corpora whose lists span many blocks ----

/// A document of the larger model: term indexes into `BIG_VOCAB` (skewed: low indexes are
/// frequent), repeated to vary tf, and a length spread wide enough to vary the block bounds.
fn big_doc() -> impl Strategy<Value = Vec<usize>> {
    (
        prop::collection::vec((0usize..12, 1u32..4), 0..6),
        0usize..30,
    )
        .prop_map(|(words, filler)| {
            let mut out = Vec::new();
            for (w, times) in words {
                // Skew: half the draws land on the first three terms.
                let w = if w < 6 { w / 2 } else { w };
                out.extend(std::iter::repeat_n(w, times as usize));
            }
            // Filler terms lengthen the document without matching the query.
            out.extend(std::iter::repeat_n(12, filler));
            out
        })
}

/// How a source's index is held: as pushed (no block bounds), decoded from a version-2 file
/// (stored bounds), or decoded from a version-1 file (bounds computed on load).
#[derive(Debug, Clone, Copy)]
enum Held {
    Memtable,
    V2,
    V1,
}

/// BM25 from the definition over `(words, dead, allowed)` documents of several sources, with
/// the statistics counted once: the score of every live, allowed, matching document.
fn big_reference(
    sources: &[Vec<(Vec<usize>, bool, bool)>],
    query: &[usize],
    filter: bool,
) -> Vec<(usize, u32, f64)> {
    let live = || {
        sources.iter().enumerate().flat_map(|(s, docs)| {
            docs.iter()
                .enumerate()
                .filter(|(_, d)| !d.1 && !d.0.is_empty())
                .map(move |(r, d)| (s, r as u32, d))
        })
    };
    let n = live().count() as f64;
    let avgdl = live().map(|(_, _, d)| d.0.len() as f64).sum::<f64>() / n;
    let mut distinct = query.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    let df: Vec<f64> = distinct
        .iter()
        .map(|t| live().filter(|(_, _, d)| d.0.contains(t)).count() as f64)
        .collect();
    let mut out = Vec::new();
    for (s, r, d) in live() {
        if filter && !d.2 {
            continue;
        }
        let dl = d.0.len() as f64;
        let mut score = 0.0;
        for (t, &df) in distinct.iter().zip(&df) {
            let tf = d.0.iter().filter(|x| *x == t).count() as f64;
            if tf > 0.0 {
                let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
                score += idf * tf / (tf + 1.2 * (1.0 - 0.75 + 0.75 * dl / avgdl));
            }
        }
        if score > 0.0 {
            out.push((s, r, score));
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Block-max MaxScore's top k is exactly the exhaustive one (same rows in the same order,
    /// bit-identical scores) and matches BM25 from the definition within 1e-5, on corpora whose
    /// posting lists span many blocks: several sources held as memtables, version-2 files or
    /// version-1 files, deletes, and filters from very selective (driven by the allowed rows)
    /// to none.
    #[test]
    fn block_max_top_k_equals_the_exhaustive_one(
        docs in prop::collection::vec((big_doc(), prop::bool::weighted(0.15), any::<u8>()), 200..1500),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..3),
        held in prop::collection::vec(
            prop::sample::select(vec![Held::Memtable, Held::V2, Held::V1]), 4),
        allow_percent in prop::sample::select(vec![1u8, 5, 20, 50, 100]),
        filter: bool,
        query in prop::collection::vec(0usize..13, 1..6),
        k in prop::sample::select(vec![1usize, 3, 10, 40]),
        key_mod in 1u64..4,
    ) {
        let docs: Vec<(Vec<usize>, bool, bool)> = docs
            .into_iter()
            .map(|(w, dead, a)| (w, dead, u32::from(a) * 100 < u32::from(allow_percent) * 256))
            .collect();
        let mut at: Vec<usize> = cuts.iter().map(|c| c.index(docs.len() + 1)).collect();
        at.push(0);
        at.push(docs.len());
        at.sort_unstable();
        at.dedup();
        let parts: Vec<Vec<(Vec<usize>, bool, bool)>> =
            at.windows(2).map(|w| docs[w[0]..w[1]].to_vec()).collect();
        let word = |w: usize| format!("w{w}");
        let mut indexes = Vec::new();
        let mut deads = Vec::new();
        let mut allows = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            let mut idx = TextIndex::new();
            for (row, d) in part.iter().enumerate() {
                idx.push(row as u32, &d.0.iter().map(|&w| word(w)).collect::<Vec<_>>());
            }
            let id = i as u64;
            idx = match held[i] {
                Held::Memtable => idx,
                Held::V2 => TextIndex::decode(&idx.encode(id), Path::new("t"), id).unwrap(),
                Held::V1 => {
                    TextIndex::decode(&idx.encode_version(id, 1), Path::new("t"), id).unwrap()
                }
            };
            indexes.push(idx);
            deads.push(part.iter().enumerate().filter(|(_, d)| d.1).map(|(r, _)| r as u32)
                .collect::<RoaringBitmap>());
            allows.push(part.iter().enumerate().filter(|(_, d)| d.2).map(|(r, _)| r as u32)
                .collect::<RoaringBitmap>());
        }
        let sources = sources_of(&indexes, &deads, &allows, filter);
        let terms: Vec<String> = query.iter().map(|&w| word(w)).collect();
        let key = |s: usize, r: u32| (s as u64 * 7 + u64::from(r)) % key_mod;
        let want = search_with(&sources, &terms, k, key, Accumulator::Dense);
        for acc in [
            Accumulator::Pruned,
            Accumulator::Auto,
            Accumulator::Windows(64),
            Accumulator::Windows(192),
        ] {
            let got = search_with(&sources, &terms, k, key, acc);
            prop_assert_eq!(&got, &want, "{:?}", acc);
        }
        // And the exhaustive result is BM25's: the same scores at every rank, each hit's own.
        let mut reference = big_reference(&parts, &query, filter);
        reference.sort_by(|a, b| b.2.total_cmp(&a.2));
        prop_assert_eq!(want.len(), reference.len().min(k));
        for (h, r) in want.iter().zip(&reference) {
            let near = |a: f64, b: f64| (a - b).abs() <= 1e-5 * b.abs().max(1.0);
            prop_assert!(near(f64::from(h.score), r.2), "{:?} vs {:?}", h, r);
            let own = reference.iter().find(|x| (x.0, x.1) == (h.source, h.row));
            prop_assert!(own.is_some_and(|o| near(f64::from(h.score), o.2)), "{:?}", h);
        }
    }

    /// The stored points of every block dominate its postings, and the bound they give is at
    /// least the largest contribution in the block for any statistics (and equal to it when
    /// the block's Pareto front has at most MAX_POINTS points).
    #[test]
    fn block_bounds_cover_their_blocks(
        list in prop::collection::btree_map(0u32..2000, (1u32..6, 0u32..50), 1..400),
        avgdl in 0.5f64..40.0,
        w in 0.1f64..10.0,
    ) {
        use crate::index::text::index::{BLOCK_LEN, MAX_POINTS, block_bounds, dominates};
        let rows = 2000usize;
        let mut doc_lens = vec![0u32; rows];
        let mut postings = Vec::new();
        for (&row, &(tf, extra)) in &list {
            doc_lens[row as usize] = tf + extra;
            postings.push((row, tf));
        }
        let blocks = block_bounds(&postings, &doc_lens);
        prop_assert_eq!(blocks.len(), postings.len().div_ceil(BLOCK_LEN));
        let score = |tf: u32, dl: u32| {
            let tf = f64::from(tf);
            w * tf / (tf + 1.2 * (1.0 - 0.75 + 0.75 * f64::from(dl) / avgdl))
        };
        for (b, chunk) in blocks.iter().zip(postings.chunks(BLOCK_LEN)) {
            prop_assert!(dominates(b, chunk, &doc_lens));
            let bound = b.iter().filter(|p| p.0 > 0).map(|&(tf, dl)| score(tf, dl)).fold(0.0, f64::max);
            let exact = chunk.iter().map(|&(r, tf)| score(tf, doc_lens[r as usize])).fold(0.0, f64::max);
            prop_assert!(bound >= exact * (1.0 - 1e-12), "{} < {}", bound, exact);
            if b.iter().filter(|p| p.0 > 0).count() < MAX_POINTS {
                prop_assert!(bound <= exact * (1.0 + 1e-12), "{} > {} (exact front)", bound, exact);
            }
        }
    }
}

/// The row right after a skipped block is still a candidate: strong rows open every other
/// block of the long list of `a`, the blocks between them are weak, as is every row of `b`,
/// and each strong row beats the ones before it, so every one of them enters the top k just
/// after a whole block was skipped (by the postings, and by the allowed rows of a filter that
/// keeps one row in 32, through its bit set).
#[test]
fn the_row_after_a_skipped_block_is_scored() {
    use crate::index::text::index::BLOCK_LEN;
    let blocks = 24u32;
    // `a` in the even rows, `b` in the odd ones: a block of either spans 2 × BLOCK_LEN rows.
    let rows = 2 * BLOCK_LEN as u32 * blocks;
    let long = |term: &str| {
        let mut t = vec![term.to_string()];
        t.extend(std::iter::repeat_n("filler".to_string(), 30));
        t
    };
    let mut idx = TextIndex::new();
    for row in 0..rows {
        let (i, block) = (row / 2, row / 2 / BLOCK_LEN as u32);
        let t = if row % 2 == 1 {
            long("b")
        } else if i % BLOCK_LEN as u32 == 0 && block % 2 == 0 {
            // Strong: `a` (block / 2 + 1) times in a short row.
            vec!["a".to_string(); (block / 2 + 1) as usize]
        } else {
            long("a")
        };
        idx.push(row, &t);
    }
    let idx = TextIndex::decode(&idx.encode(1), Path::new("t"), 1).unwrap();
    let sparse: RoaringBitmap = (0..rows).step_by(32).collect();
    let strongest = 2 * BLOCK_LEN as u32 * (blocks - 2);
    for allow in [None, Some(&sparse)] {
        let s = [Source {
            index: &idx,
            dead: None,
            allow,
            live: None,
        }];
        for k in [1, 2, 5] {
            let want = search_with(&s, &q("a b"), k, |_, _| 0, Accumulator::Dense);
            assert_eq!(want[0].row, strongest, "{allow:?} {k}");
            let got = search_with(&s, &q("a b"), k, |_, _| 0, Accumulator::Pruned);
            assert_eq!(got, want, "filter {:?}, k {k}", allow.is_some());
        }
    }
}
