//! The scatter-gather API: records split over several databases (shards), BM25 statistics
//! gathered from each and added up, every shard searched with them, ranked lists merged and
//! (hybrid) fused — checked against one database holding every record, the model.

use std::collections::HashMap;

use cairndb::{
    CollectionConfig, Database, Error, Filter, Fusion, Hit, Metric, Options, Record, SearchRequest,
    TextStats, merge_hits,
};
use proptest::prelude::*;

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

#[derive(Debug, Clone)]
enum Op {
    /// id, text, vector, group field, shard
    Upsert(u64, Option<String>, [f32; 3], u8, usize),
    Delete(u64),
    /// Seal every shard's and the model's memtable: statistics come from segments too.
    Flush,
}

fn op() -> impl Strategy<Value = Op> {
    let text = prop::option::weighted(
        0.85,
        prop::collection::vec(prop::sample::select(WORDS), 0..8).prop_map(|w| w.join(" ")),
    );
    let v = prop::array::uniform3(-1.0f32..1.0);
    prop_oneof![
        8 => (0u64..60, text, v, 0u8..3, 0usize..4)
            .prop_map(|(id, t, v, g, s)| Op::Upsert(id, t, v, g, s)),
        2 => (0u64..60).prop_map(Op::Delete),
        1 => Just(Op::Flush),
    ]
}

struct Setup {
    _dir: tempfile::TempDir,
    single: cairndb::Collection,
    shards: Vec<cairndb::Collection>,
}

/// Applies `ops` to one database and to `n` shards (a record lives on the shard its last
/// upsert named; it is deleted from the others first, as a router that moved it would).
fn build(ops: &[Op], n: usize, metric: Metric) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options::default().memtable_max_rows(20);
    let cfg = CollectionConfig::new(3, metric);
    let open = |name: &str| {
        Database::open_with(dir.path().join(name), opts.clone())
            .unwrap()
            .create_collection("t", cfg.clone())
            .unwrap()
    };
    let single = open("single");
    let shards: Vec<_> = (0..n).map(|i| open(&format!("shard-{i}"))).collect();
    for op in ops {
        match op {
            Op::Upsert(id, t, v, g, s) => {
                let mut r = Record::new(*id, v.to_vec()).with_field("g", i64::from(*g));
                r.text = t.clone();
                if v.iter().all(|x| *x == 0.0) {
                    continue;
                }
                single.upsert(r.clone()).unwrap();
                for (i, sh) in shards.iter().enumerate() {
                    if i != s % n {
                        sh.delete(&[*id]).unwrap();
                    }
                }
                shards[s % n].upsert(r).unwrap();
            }
            Op::Delete(id) => {
                single.delete(&[*id]).unwrap();
                for sh in &shards {
                    sh.delete(&[*id]).unwrap();
                }
            }
            Op::Flush => {
                single.flush().unwrap();
                for sh in &shards {
                    sh.flush().unwrap();
                }
            }
        }
    }
    Setup {
        _dir: dir,
        single,
        shards,
    }
}

fn gathered_stats(shards: &[cairndb::Collection], q: &str) -> TextStats {
    let mut total = TextStats::default();
    for s in shards {
        total.merge(&s.text_stats(q).unwrap());
    }
    total
}

/// A text search over the shards with global statistics, merged.
fn scatter_text(
    shards: &[cairndb::Collection],
    q: &str,
    k: usize,
    filter: Option<&Filter>,
) -> Vec<Hit> {
    let stats = gathered_stats(shards, q);
    let lists = shards.iter().map(|s| {
        let mut req = SearchRequest::by_text(q).k(k).text_stats(stats.clone());
        if let Some(f) = filter {
            req = req.filter(f.clone());
        }
        s.search(&req).unwrap()
    });
    merge_hits(lists.collect::<Vec<_>>(), k)
}

/// An exact hybrid search over the shards: each leg alone on every shard at the leg depth,
/// merged, then fused.
fn scatter_hybrid(
    shards: &[cairndb::Collection],
    v: &[f32],
    q: &str,
    k: usize,
    fusion: Fusion,
    filter: Option<&Filter>,
) -> Vec<Hit> {
    let depth = (2 * k).max(50);
    let stats = gathered_stats(shards, q);
    let with_filter = |r: SearchRequest| match filter {
        Some(f) => r.filter(f.clone()),
        None => r,
    };
    let vector: Vec<Vec<Hit>> = shards
        .iter()
        .map(|s| {
            s.search(&with_filter(
                SearchRequest::new(v.to_vec()).k(depth).exact(true),
            ))
            .unwrap()
        })
        .collect();
    let text: Vec<Vec<Hit>> = shards
        .iter()
        .map(|s| {
            s.search(&with_filter(
                SearchRequest::by_text(q).k(depth).text_stats(stats.clone()),
            ))
            .unwrap()
        })
        .collect();
    let mut fused = fusion
        .fuse_hits(&merge_hits(vector, depth), &merge_hits(text, depth))
        .unwrap();
    fused.truncate(k);
    fused
}

fn same(got: &[Hit], want: &[Hit]) -> Result<(), TestCaseError> {
    let g: Vec<_> = got.iter().map(|h| (h.id.clone(), h.score)).collect();
    let w: Vec<_> = want.iter().map(|h| (h.id.clone(), h.score)).collect();
    prop_assert_eq!(g.len(), w.len(), "{:?} vs {:?}", g, w);
    for ((gi, gs), (wi, ws)) in g.iter().zip(&w) {
        prop_assert_eq!(gi, wi, "{:?} vs {:?}", g, w);
        prop_assert!((gs - ws).abs() <= 1e-5, "{:?} vs {:?}", g, w);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn shards_with_gathered_statistics_score_as_one_database(
        ops in prop::collection::vec(op(), 1..150),
        n in 1usize..5,
        queries in prop::collection::vec(
            (prop::collection::vec(prop::sample::select(WORDS), 1..4).prop_map(|w| w.join(" ")),
             prop::array::uniform3(-1.0f32..1.0)), 1..4),
        k in 1usize..15,
        g in prop::option::of(0i64..3),
        rrf in any::<bool>(),
    ) {
        let s = build(&ops, n, Metric::Cosine);
        let filter = g.map(|g| Filter::eq("g", g));
        let fusion = if rrf { Fusion::Rrf { k: 60.0 } } else { Fusion::default() };
        prop_assert_eq!(
            s.shards.iter().map(|c| c.len()).sum::<usize>(),
            s.single.len()
        );
        for (q, v) in &queries {
            // The statistics add up to the single database's.
            prop_assert_eq!(gathered_stats(&s.shards, q), s.single.text_stats(q).unwrap());
            // BM25 over the shards equals BM25 over one database, filtered or not.
            let want = s.single.search(&SearchRequest::by_text(q.as_str()).k(k)).unwrap();
            same(&scatter_text(&s.shards, q, k, None), &want)?;
            if let Some(f) = &filter {
                let want = s.single
                    .search(&SearchRequest::by_text(q.as_str()).k(k).filter(f.clone()))
                    .unwrap();
                same(&scatter_text(&s.shards, q, k, Some(f)), &want)?;
            }
            // Exact hybrid search fused over the shards equals the single database's.
            if v.iter().any(|x| *x != 0.0) {
                let mut req = SearchRequest::new(v.to_vec()).text(q.as_str()).k(k).exact(true)
                    .fusion(fusion);
                if let Some(f) = &filter {
                    req = req.filter(f.clone());
                }
                let want = s.single.search(&req).unwrap();
                let got = scatter_hybrid(&s.shards, v, q, k, fusion, filter.as_ref());
                same(&got, &want)?;
                for (a, b) in got.iter().zip(&want) {
                    prop_assert_eq!(a.legs, b.legs);
                }
            }
        }
    }
}

#[test]
fn without_global_statistics_shard_scores_differ() {
    // The point of the API: a shard alone scores with its own N and df.
    let ops: Vec<Op> = (0..40u64)
        .map(|i| {
            let t = if i % 2 == 0 {
                "vector search"
            } else {
                "crash recovery disk"
            };
            Op::Upsert(
                i,
                Some(t.into()),
                [1.0, i as f32, 0.5],
                0,
                (i % 4 == 3) as usize,
            )
        })
        .collect();
    let s = build(&ops, 2, Metric::Dot);
    let want = s
        .single
        .search(&SearchRequest::by_text("vector").k(3))
        .unwrap();
    let local = s.shards[0]
        .search(&SearchRequest::by_text("vector").k(3))
        .unwrap();
    assert_ne!(local[0].score, want[0].score);
    let got = scatter_text(&s.shards, "vector", 3, None);
    assert_eq!(got[0].score, want[0].score);
}

#[test]
fn hostile_statistics_are_refused_with_clear_errors() {
    let s = build(
        &[Op::Upsert(
            1,
            Some("vector search".into()),
            [1.0, 0.0, 0.0],
            0,
            0,
        )],
        1,
        Metric::Cosine,
    );
    let c = &s.shards[0];
    let mut st = c.text_stats("vector").unwrap();
    assert_eq!(st.documents, 1);
    assert_eq!(st.total_len, 2);
    assert_eq!(
        st.df,
        HashMap::from([("vector".to_string(), 1u64)])
            .into_iter()
            .collect()
    );
    // A term of the query the statistics do not have.
    let e = c
        .search(&SearchRequest::by_text("vector graph").text_stats(st.clone()))
        .unwrap_err();
    assert!(
        matches!(e, Error::InvalidArgument(ref m) if m.contains("graph")),
        "{e}"
    );
    // Impossible numbers.
    st.total_len = 0;
    let e = c
        .search(&SearchRequest::by_text("vector").text_stats(st.clone()))
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    st.total_len = 2;
    st.df.insert("vector".into(), 5);
    assert!(
        c.search(&SearchRequest::by_text("vector").text_stats(st.clone()))
            .is_err()
    );
    // Statistics without a text leg.
    let e = c
        .search(&SearchRequest::new(vec![1.0, 0.0, 0.0]).text_stats(TextStats::default()))
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    // Zero documents: nothing to score, no error.
    let empty = TextStats {
        documents: 0,
        total_len: 0,
        df: [("vector".to_string(), 0)].into(),
    };
    assert!(
        c.search(&SearchRequest::by_text("vector").text_stats(empty))
            .unwrap()
            .is_empty()
    );
    // Statistics bigger than the shard: scores use them (idf from N = 1000).
    let big = TextStats {
        documents: 1000,
        total_len: 2000,
        df: [("vector".to_string(), 10)].into(),
    };
    let h = c
        .search(&SearchRequest::by_text("vector").text_stats(big))
        .unwrap();
    let idf = (1.0f64 + (1000.0 - 10.0 + 0.5) / (10.0 + 0.5)).ln();
    let want = idf / (1.0 + 1.2 * (1.0 - 0.75 + 0.75 * 2.0 / 2.0));
    assert!((f64::from(h[0].score) - want).abs() < 1e-5);
}
