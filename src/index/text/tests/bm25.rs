//! BM25: hand-computed values, collection-wide statistics, and a model test against a scorer
//! written straight from the definition over the raw documents.

use std::collections::HashSet;
use std::path::Path;

use proptest::prelude::*;
use roaring::RoaringBitmap;

use super::terms;
use crate::index::text::TextIndex;
use crate::index::text::bm25::{
    Accumulator, Bm25Hit, Source, idf, search, search_keyed, search_with, stats,
};

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
        let sources: Vec<Source<'_>> = (0..parts.len())
            .map(|i| Source {
                index: &indexes[i],
                dead: (!deads[i].is_empty()).then_some(&deads[i]),
                allow: filter.then_some(&allows[i]),
            })
            .collect();
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
            })
            .collect();
        let query: Vec<String> = query.iter().map(|&w| VOCAB[w].to_string()).collect();
        // Few distinct keys: many ties to break.
        let key = |s: usize, r: u32| (s as u64 * 7 + u64::from(r)) % key_mod;
        let want = search_with(&sources, &query, k, key, Accumulator::Dense);
        for acc in [Accumulator::Pruned, Accumulator::Auto] {
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
        let row_terms = |row: u32| -> Vec<String> {
            std::iter::once("all".to_string())
                .chain(every.iter().enumerate().filter(|&(_, &m)| row.is_multiple_of(m)).map(|(i, _)| format!("t{i}")))
                .collect()
        };
        let mut idx = TextIndex::new();
        for row in 0..rows {
            idx.push(row, &row_terms(row));
        }
        let mut dead: RoaringBitmap =
            (0..rows).filter(|r| (r + dead_offset).is_multiple_of(dead_every)).collect();
        if dead_past_the_end {
            dead.insert(rows + 5);
        }
        let src = Source { index: &idx, dead: Some(&dead), allow: None };
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
