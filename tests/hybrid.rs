//! Full-text and hybrid search through the public API: BM25 against a naive reference computed
//! from the definition (collection-wide statistics over live records, whatever the split into
//! segments and memtable), hand-made corpora where each leg must win, fusion, re-ranking.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use cairndb::text::{Analyzer, TextConfig};
use cairndb::{
    CollectionConfig, Database, Filter, Fusion, Hit, Metric, Options, Record, RerankQuery,
    Reranker, SearchRequest,
};
use proptest::prelude::*;

const K1: f64 = 1.2;
const B: f64 = 0.75;

/// BM25 from the definition: the k best (id, score) among `allowed` live records.
fn naive_bm25(
    docs: &HashMap<u64, (Option<String>, bool)>,
    analyzer: &Analyzer,
    query: &str,
    k: usize,
) -> Vec<(u64, f64)> {
    let analyzed: HashMap<u64, Vec<String>> = docs
        .iter()
        .filter_map(|(&id, (t, _))| t.as_ref().map(|t| (id, analyzer.terms(t))))
        .filter(|(_, terms)| !terms.is_empty())
        .collect();
    let n = analyzed.len() as f64;
    let avgdl = analyzed.values().map(|t| t.len() as f64).sum::<f64>() / n.max(1.0);
    let mut q = analyzer.terms(query);
    let mut seen = HashSet::new();
    q.retain(|t| seen.insert(t.clone()));
    let mut scored: Vec<(u64, f64)> = analyzed
        .iter()
        .filter(|(id, _)| docs[id].1)
        .filter_map(|(&id, terms)| {
            let dl = terms.len() as f64;
            let mut score = 0.0;
            let mut any = false;
            for t in &q {
                let tf = terms.iter().filter(|x| *x == t).count() as f64;
                if tf == 0.0 {
                    continue;
                }
                any = true;
                let df = analyzed.values().filter(|ts| ts.contains(t)).count() as f64;
                let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
                score += idf * tf / (tf + K1 * (1.0 - B + B * dl / avgdl));
            }
            any.then_some((id, score))
        })
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored.truncate(k);
    scored
}

const WORDS: &[&str] = &[
    "the",
    "vector",
    "vectors",
    "search",
    "searching",
    "index",
    "graph",
    "a",
    "of",
    "and",
    "Running",
    "runs",
    "database",
    "crash",
    "recovery",
    "text",
    "BM25",
    "filter",
    "fast",
    "disk",
];

fn text_strategy() -> impl Strategy<Value = Option<String>> {
    proptest::option::weighted(
        0.85,
        prop::collection::vec(prop::sample::select(WORDS), 0..12).prop_map(|w| w.join(" ")),
    )
}

#[derive(Debug, Clone)]
enum Op {
    Upsert(u64, Option<String>, bool),
    Delete(u64),
    Flush,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0u64..60, text_strategy(), any::<bool>()).prop_map(|(id, t, blue)| Op::Upsert(id, t, blue)),
        2 => (0u64..60).prop_map(Op::Delete),
        1 => Just(Op::Flush),
    ]
}

fn check_bm25(
    c: &cairndb::Collection,
    model: &HashMap<u64, (Option<String>, bool)>,
    analyzer: &Analyzer,
    query: &str,
    k: usize,
    filtered: bool,
) -> Result<(), TestCaseError> {
    let mut req = SearchRequest::by_text(query).k(k);
    let mut visible = model.clone();
    if filtered {
        req = req.filter(Filter::eq("blue", true));
    }
    for v in visible.values_mut() {
        v.1 = !filtered || v.1;
    }
    let want = naive_bm25(&visible, analyzer, query, k);
    let got = c.search(&req).unwrap();
    // MaxScore's pruned top k equals the exhaustive evaluation's: the same ids, bit-identical
    // scores (the switch is process-wide, but either setting gives the same results).
    cairndb::text::set_exhaustive_for_benchmarks(true);
    let exhaustive = c.search(&req).unwrap();
    cairndb::text::set_exhaustive_for_benchmarks(false);
    let pairs = |hits: &[Hit]| -> Vec<(u64, u32)> {
        hits.iter()
            .map(|h| (h.id.as_u64().unwrap(), h.score.to_bits()))
            .collect()
    };
    prop_assert_eq!(
        pairs(&got),
        pairs(&exhaustive),
        "pruned vs exhaustive for {:?}",
        query
    );
    prop_assert_eq!(
        got.len(),
        want.len(),
        "query {:?} filtered {}",
        query,
        filtered
    );
    let reference: HashMap<u64, f64> = naive_bm25(&visible, analyzer, query, usize::MAX)
        .into_iter()
        .collect();
    for (g, w) in got.iter().zip(&want) {
        // Same score at every rank; the id may differ only within a tie.
        prop_assert!(
            (f64::from(g.score) - w.1).abs() <= 1e-4 * w.1.abs().max(1.0),
            "rank score {} vs {} for {:?}",
            g.score,
            w.1,
            query
        );
        let own = reference.get(&g.id.as_u64().unwrap()).copied();
        prop_assert!(
            own.is_some_and(|s| (s - f64::from(g.score)).abs() <= 1e-4 * s.abs().max(1.0)),
            "hit {} scored {} but the reference says {:?}",
            g.id,
            g.score,
            own
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    /// BM25 scores equal the definition's over the live records, however they are spread over
    /// segments and the memtable, with deletes, replaced records, filters, and a reopen; and
    /// the pruned (MaxScore) top k equals the exhaustive one exactly.
    #[test]
    fn bm25_equals_the_definition(
        ops in prop::collection::vec(op(), 1..120),
        queries in prop::collection::vec(
            prop::collection::vec(prop::sample::select(WORDS), 1..4).prop_map(|w| w.join(" ")), 1..5),
        k in 1usize..12,
        stem in any::<bool>(),
        stop_words in any::<bool>(),
    ) {
        let text = TextConfig::default().stem(stem).stop_words(stop_words);
        bm25_against_the_model(&ops, &queries, k, text, 25, false)?;
    }
}

/// Applies `ops` to a collection (memtables of `memtable_rows`) and to the model, then checks
/// every query's BM25 top `k` against the model, unfiltered and filtered; after a reopen,
/// unfiltered and, with `filtered_after_reopen`, filtered again. With `filtered_after_reopen`
/// the first query is also checked after every delete (segments keep their dead-row counts
/// between queries: a delete must show in the next one's statistics).
fn bm25_against_the_model(
    ops: &[Op],
    queries: &[String],
    k: usize,
    text: TextConfig,
    memtable_rows: usize,
    filtered_after_reopen: bool,
) -> Result<(), TestCaseError> {
    let analyzer = Analyzer::new(&text);
    let dir = tempfile::tempdir().unwrap();
    let opts = Options::default().memtable_max_rows(memtable_rows);
    let mut model: HashMap<u64, (Option<String>, bool)> = HashMap::new();
    {
        let db = Database::open_with(dir.path(), opts.clone()).unwrap();
        let c = db
            .create_collection("t", CollectionConfig::new(2, Metric::Dot).with_text(text))
            .unwrap();
        for op in ops {
            match op {
                Op::Upsert(id, t, blue) => {
                    let mut r = Record::new(*id, vec![1.0, *id as f32]).with_field("blue", *blue);
                    r.text = t.clone();
                    c.upsert(r).unwrap();
                    model.insert(*id, (t.clone(), *blue));
                }
                Op::Delete(id) => {
                    c.delete(&[*id]).unwrap();
                    model.remove(id);
                    if filtered_after_reopen {
                        check_bm25(&c, &model, &analyzer, &queries[0], k, false)?;
                    }
                }
                Op::Flush => c.flush().unwrap(),
            }
        }
        for q in queries {
            check_bm25(&c, &model, &analyzer, q, k, false)?;
            check_bm25(&c, &model, &analyzer, q, k, true)?;
        }
    }
    let db = Database::open_with(dir.path(), opts).unwrap();
    let c = db.collection("t").unwrap();
    for q in queries {
        check_bm25(&c, &model, &analyzer, q, k, false)?;
        if filtered_after_reopen {
            check_bm25(&c, &model, &analyzer, q, k, true)?;
        }
    }
    Ok(())
}

fn big_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        20 => (0u64..1200, text_strategy(), prop::bool::weighted(0.05))
            .prop_map(|(id, t, blue)| Op::Upsert(id, t, blue)),
        2 => (0u64..1200).prop_map(Op::Delete),
        1 => Just(Op::Flush),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(6))]

    /// The same on corpora large enough for posting lists of many blocks (block-max pruning,
    /// stored bounds, and the bit set of a selective filter: `blue` holds for 1 record in 20).
    #[test]
    fn bm25_with_block_bounds_equals_the_definition(
        ops in prop::collection::vec(big_op(), 600..1500),
        queries in prop::collection::vec(
            prop::collection::vec(prop::sample::select(WORDS), 2..5).prop_map(|w| w.join(" ")), 1..4),
        k in prop::sample::select(vec![1usize, 10, 30]),
    ) {
        bm25_against_the_model(&ops, &queries, k, TextConfig::default(), 400, true)?;
    }
}

/// A 4-d "meaning" space: cars, databases, cooking, weather.
fn corpus() -> (tempfile::TempDir, Database, cairndb::Collection) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let c = db
        .create_collection("docs", CollectionConfig::new(4, Metric::Cosine))
        .unwrap();
    let docs: Vec<(u64, &str, [f32; 4])> = vec![
        (1, "Repairing a car engine at home", [1.0, 0.0, 0.05, 0.0]),
        (
            2,
            "Car insurance prices compared across providers",
            [0.1, 0.0, 0.0, 1.0],
        ),
        (3, "Car rental desks at the airport", [0.2, 0.0, 0.1, 0.9]),
        (4, "The HNSW graph index explained", [0.0, 0.6, 0.8, 0.0]),
        (
            5,
            "Approximate nearest neighbour search in vector databases",
            [0.0, 1.0, 0.0, 0.0],
        ),
        (
            6,
            "Tuning recall and latency of similarity search",
            [0.0, 0.95, 0.0, 0.05],
        ),
        (7, "A slow-cooked tomato sauce", [0.0, 0.0, 1.0, 0.0]),
        (
            8,
            "Weather forecast: rain over the weekend",
            [0.0, 0.0, 0.0, 1.0],
        ),
        (
            9,
            "How to fix a leaking tap in my kitchen",
            [0.0, 0.1, 0.9, 0.1],
        ),
    ];
    c.upsert(
        docs.into_iter()
            .map(|(id, t, v)| {
                Record::new(id, v.to_vec())
                    .with_text(t)
                    .with_field("kind", if id % 2 == 0 { "even" } else { "odd" })
            })
            .collect::<Vec<_>>(),
    )
    .unwrap();
    (dir, db, c)
}

fn ids(h: &[Hit]) -> Vec<u64> {
    h.iter().map(|h| h.id.as_u64().unwrap()).collect()
}

#[test]
fn keyword_leg_wins_on_an_exact_acronym() {
    let (_d, _db, c) = corpus();
    // The embedding of a bare acronym says little: it sits between the database documents,
    // nearer to 5 and 6 than to 4. Only the text leg knows "HNSW".
    let q = vec![0.0, 1.0, 0.3, 0.0];
    let vector_only = c.search(&SearchRequest::new(q.clone()).k(3)).unwrap();
    assert_ne!(vector_only[0].id, 4);
    // The default fusion at the default depth: 4 is the text leg's only hit (normalized 1)
    // and high in the vector leg's candidates, so it beats the vector leg's best.
    let hits = c
        .search(&SearchRequest::new(q.clone()).text("HNSW").k(3))
        .unwrap();
    assert_eq!(hits[0].id, 4, "{hits:?}");
    let legs = hits[0].legs.unwrap();
    assert_eq!(legs.text.unwrap().rank, 1);
    assert!(legs.vector.is_some_and(|v| v.rank > 1));
    // RRF does it even with 3 candidates a leg, where 4 is the vector leg's last one.
    let hits = c
        .search(
            &SearchRequest::new(q.clone())
                .text("HNSW")
                .k(3)
                .candidates(3)
                .fusion(Fusion::Rrf { k: 60.0 }),
        )
        .unwrap();
    assert_eq!(hits[0].id, 4, "{hits:?}");
    // The weighted min-max default does not: min-max maps the vector leg's last candidate to 0,
    // so 4 gets only the text leg's 1 − alpha = 0.4 against the vector best's alpha = 0.6.
    // (Shallow candidate lists are a known weak spot of min-max; docs/tuning.md.)
    let hits = c
        .search(&SearchRequest::new(q).text("HNSW").k(3).candidates(3))
        .unwrap();
    assert_eq!(hits[0].id, 5, "{hits:?}");
    assert!((hits.iter().find(|h| h.id == 4).unwrap().score - 0.4).abs() < 1e-6);
}

#[test]
fn vector_leg_wins_on_a_paraphrase() {
    let (_d, _db, c) = corpus();
    // "fix my car motor" means the engine repair guide (1), which shares only "car" with it;
    // the text leg prefers the plumbing page (9: "fix", "my"). The vector leg puts 1 first and
    // 9 far down, so 1 wins the fusion.
    let q = vec![1.0, 0.0, 0.0, 0.02];
    let text_only = c
        .search(&SearchRequest::by_text("fix my car motor").k(5))
        .unwrap();
    assert_eq!(text_only[0].id, 9, "{text_only:?}");
    let hits = c
        .search(&SearchRequest::new(q).text("fix my car motor").k(3))
        .unwrap();
    assert_eq!(hits[0].id, 1, "{hits:?}");
    let legs = hits[0].legs.unwrap();
    assert_eq!(legs.vector.unwrap().rank, 1);
}

#[test]
fn fusion_ranks_a_record_found_by_both_legs_first() {
    let (_d, _db, c) = corpus();
    // Vector: 5 first, 6 second. Text "similarity search latency": 6 first (three terms), 5
    // second ("search"). Found by both near the top, 6 and 5 beat records found by one leg.
    let q = vec![0.0, 1.0, 0.0, 0.0];
    for fusion in [
        Fusion::default(),
        Fusion::Weighted { alpha: 0.5 },
        Fusion::Dbsf,
    ] {
        let hits = c
            .search(
                &SearchRequest::new(q.clone())
                    .text("similarity search latency")
                    .fusion(fusion)
                    .k(4),
            )
            .unwrap();
        let top2: HashSet<u64> = ids(&hits[..2]).into_iter().collect();
        assert_eq!(top2, HashSet::from([5, 6]), "{fusion:?}: {hits:?}");
        for h in &hits[..2] {
            let l = h.legs.unwrap();
            assert!(l.vector.is_some() && l.text.is_some());
            assert_eq!(l.fused, h.score);
        }
    }
    // RRF by hand: 6 is text #1 and vector #2.
    let hits = c
        .search(
            &SearchRequest::new(q.clone())
                .text("similarity search latency")
                .fusion(Fusion::Rrf { k: 60.0 })
                .k(4),
        )
        .unwrap();
    let six = hits.iter().find(|h| h.id == 6).unwrap();
    let l = six.legs.unwrap();
    let expect =
        1.0 / (60.0 + l.vector.unwrap().rank as f32) + 1.0 / (60.0 + l.text.unwrap().rank as f32);
    assert!((six.score - expect).abs() < 1e-6);
    // The default (no `fusion`) is weighted min-max with alpha DEFAULT_ALPHA: 6 is the text
    // leg's best (normalized 1), so its score is 0.4 plus 0.6 times its normalized vector score.
    let plain = c
        .search(&SearchRequest::new(q).text("similarity search latency").k(4))
        .unwrap();
    let six = plain.iter().find(|h| h.id == 6).unwrap();
    let l = six.legs.unwrap();
    assert_eq!(l.text.unwrap().rank, 1);
    assert!(
        six.score >= 1.0 - Fusion::DEFAULT_ALPHA - 1e-6 && six.score <= 1.0 + 1e-6,
        "{plain:?}"
    );
    assert_eq!(l.fused, six.score);
}

#[test]
fn both_legs_respect_the_filter_and_explain_reports_them() {
    let (_d, _db, c) = corpus();
    let resp = c
        .query(
            &SearchRequest::new(vec![1.0, 0.0, 0.0, 0.0])
                .text("car")
                .filter(Filter::eq("kind", "even"))
                .explain(true)
                .with_payload(true)
                .k(10),
        )
        .unwrap();
    assert!(!resp.hits.is_empty());
    for h in &resp.hits {
        assert_eq!(h.id.as_u64().unwrap() % 2, 0, "{h:?}");
    }
    let x = resp.explain.unwrap();
    assert_eq!(x.filter.as_deref(), Some("kind = \"even\""));
    let t = x.text.unwrap();
    assert_eq!(t.terms, vec!["car".to_owned()]);
    assert_eq!(t.df, vec![3]); // statistics over every live record, not only the filtered ones
    assert_eq!(t.documents, 9);
    assert_eq!(t.returned, 1); // only 2 is even among the car documents
    assert!(x.complete);
    // has_term in a filter uses the same analyzer.
    let hits = c
        .search(
            &SearchRequest::new(vec![0.0, 1.0, 0.0, 0.0])
                .filter(Filter::has_term("CAR"))
                .k(10),
        )
        .unwrap();
    assert_eq!(
        ids(&hits).into_iter().collect::<HashSet<_>>(),
        HashSet::from([1, 2, 3])
    );
}

struct Reverse;
impl Reranker for Reverse {
    fn rerank(&self, _q: &RerankQuery<'_>, candidates: &[Hit]) -> cairndb::Result<Vec<f32>> {
        // Scores from the text: the shorter the text, the better.
        Ok(candidates
            .iter()
            .map(|h| -(h.text.as_ref().map_or(1000, String::len) as f32))
            .collect())
    }
}

struct Broken;
impl Reranker for Broken {
    fn rerank(&self, _q: &RerankQuery<'_>, _c: &[Hit]) -> cairndb::Result<Vec<f32>> {
        Ok(vec![1.0])
    }
}

#[test]
fn a_reranker_rescores_the_fused_candidates() {
    let (_d, _db, c) = corpus();
    let req = SearchRequest::new(vec![0.0, 1.0, 0.0, 0.0])
        .text("search")
        .k(3);
    let hits = c.search(&req.clone().rerank(Arc::new(Reverse), 9)).unwrap();
    let lens: Vec<usize> = hits
        .iter()
        .map(|h| {
            c.get(h.id.as_u64().unwrap())
                .unwrap()
                .unwrap()
                .text
                .unwrap()
                .len()
        })
        .collect();
    assert!(lens.windows(2).all(|w| w[0] <= w[1]), "{lens:?}");
    assert!(hits[0].text.is_none(), "text only when asked for");
    assert!(
        hits.iter()
            .all(|h| h.legs.is_some_and(|l| l.fused != h.score))
    );
    let err = c.search(&req.rerank(Arc::new(Broken), 5)).unwrap_err();
    assert!(err.to_string().contains("re-ranker"), "{err}");
}
