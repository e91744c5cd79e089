//! Bounded inputs (issue 13, findings 3 and 10): one nesting limit for filters in every form,
//! filters of any depth that never overflow the stack, and vectors whose scores stay numbers.

use std::thread;

use cairndb::{CollectionConfig, Database, Error, Filter, Metric, Payload, Record, SearchRequest};

const MAX: usize = Filter::MAX_DEPTH;

/// `n` nested `not`s around a condition: depth `n`.
fn nots(n: usize) -> Filter {
    (0..n).fold(Filter::eq("a", 1), |f, _| f.not())
}

/// `n` nested one-operand `and`s around a condition: depth `n`.
fn ands(n: usize) -> Filter {
    (0..n).fold(Filter::eq("a", 1), |f, _| Filter::And(vec![f]))
}

fn too_deep(r: Result<impl std::fmt::Debug, Error>, want_depth: usize) {
    match r {
        Err(Error::FilterTooDeep { depth, max }) => {
            assert_eq!((depth, max), (want_depth, MAX));
        }
        other => panic!("expected FilterTooDeep at {want_depth}, got {other:?}"),
    }
}

/// Runs `f` on a thread with a small stack: anything that recursed once per level of a
/// 100,000-deep filter would overflow it (and abort the test binary).
fn on_small_stack(f: impl FnOnce() + Send + 'static) {
    thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn the_builder_is_limited_by_validate() {
    assert_eq!(nots(MAX).depth(), MAX);
    nots(MAX).validate().unwrap();
    ands(MAX).validate().unwrap();
    too_deep(nots(MAX + 1).validate(), MAX + 1);
    too_deep(ands(MAX + 1).validate(), MAX + 1);
    // Depth is the deepest path, wherever it is.
    let wide = Filter::Or(vec![Filter::exists("b"), ands(MAX), nots(3)]);
    assert_eq!(wide.depth(), MAX + 1);
    too_deep(wide.validate(), MAX + 1);
    assert_eq!(Filter::And(vec![]).depth(), 1);
    assert_eq!(Filter::exists("x").depth(), 0);
}

#[test]
fn a_search_with_a_too_deep_filter_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let col = db
        .create_collection("c", CollectionConfig::new(2, Metric::Dot))
        .unwrap();
    col.upsert(Record::new(1, [1.0, 0.0]).with_field("a", 1))
        .unwrap();
    let req = SearchRequest::new([1.0, 0.0]).filter(nots(MAX));
    assert_eq!(col.search(&req).unwrap().len(), 1);
    too_deep(
        col.search(&SearchRequest::new([1.0, 0.0]).filter(nots(MAX + 1))),
        MAX + 1,
    );
    // Far deeper, on a small stack: refused, not a crash.
    on_small_stack(move || {
        let req = SearchRequest::new([1.0, 0.0]).filter(ands(100_000));
        too_deep(col.search(&req), 100_000);
    });
}

#[test]
fn json_is_limited_while_it_is_read() {
    let nested_nots = |n: usize| {
        format!(
            "{}{}{}",
            r#"{"not":"#.repeat(n),
            r#"{"exists":{"field":"a"}}"#,
            "}".repeat(n)
        )
    };
    // The old tree form (an alias) reads; `Serialize` writes the operator form.
    let f: Filter = serde_json::from_str(&nested_nots(MAX)).unwrap();
    assert_eq!(f.depth(), MAX);
    let op_nots = |n: usize| {
        format!(
            "{}{}{}",
            r#"{"$not":"#.repeat(n),
            r#"{"a":{"$exists":true}}"#,
            "}".repeat(n)
        )
    };
    assert_eq!(serde_json::to_string(&f).unwrap(), op_nots(MAX));
    assert_eq!(serde_json::from_str::<Filter>(&op_nots(MAX)).unwrap(), f);
    for json in [nested_nots(MAX + 1), op_nots(MAX + 1)] {
        let e = serde_json::from_str::<Filter>(&json).unwrap_err();
        assert!(e.to_string().contains("filter nested too deeply"), "{e}");
        too_deep(Filter::from_json(&json), MAX + 1);
    }

    on_small_stack(move || {
        for json in [nested_nots(100_000), op_nots(100_000)] {
            let e = serde_json::from_str::<Filter>(&json).unwrap_err();
            assert!(e.to_string().contains("filter nested too deeply"), "{e}");
            too_deep(Filter::from_json(&json), MAX + 1);
        }
        // `and` costs serde_json two levels (object, array): its own limit may answer first.
        let ands = format!(
            "{}{}{}",
            r#"{"and":["#.repeat(100_000),
            r#"{"exists":{"field":"a"}}"#,
            "]}".repeat(100_000)
        );
        assert!(serde_json::from_str::<Filter>(&ands).is_err());
        // Serializing a filter built too deep in Rust fails the same way.
        let e = serde_json::to_string(&nots(100_000)).unwrap_err();
        assert!(e.to_string().contains("filter nested too deeply"), "{e}");
    });
}

#[test]
fn the_text_syntax_gives_the_same_error() {
    let not_text = |n: usize| format!("{}a = 1", "NOT ".repeat(n));
    assert_eq!(Filter::parse(&not_text(MAX)).unwrap(), nots(MAX));
    too_deep(Filter::parse(&not_text(MAX + 1)), MAX + 1);
    // `a = 1 AND (a = 1 AND (…))`: every parenthesis opens an `and`.
    let and_text = |n: usize| format!("{}a = 1{}", "a = 1 AND (".repeat(n), ")".repeat(n));
    assert_eq!(Filter::parse(&and_text(MAX)).unwrap().depth(), MAX);
    too_deep(Filter::parse(&and_text(MAX + 1)), MAX + 1);
    // Every valid filter prints as text that parses back, even at the limit.
    for f in [nots(MAX), ands(MAX)] {
        let text = f.to_string();
        assert!(Filter::parse(&text).is_ok(), "{text}");
    }
    let deep = Filter::And(vec![
        nots(MAX - 3).not(),
        Filter::Or(vec![ands(MAX - 3), Filter::exists("b")]),
    ])
    .not();
    assert_eq!(deep.depth(), MAX);
    assert!(Filter::parse(&deep.to_string()).is_ok(), "{deep}");
    // Far deeper text: a syntax error at a column, not a crash.
    on_small_stack(move || {
        assert!(matches!(
            Filter::parse(&not_text(100_000)),
            Err(Error::FilterSyntax { .. })
        ));
    });
}

#[test]
fn a_filter_of_any_depth_drops_prints_and_matches_without_recursing() {
    on_small_stack(|| {
        let not_chain = nots(100_000);
        assert_eq!(not_chain.depth(), 100_000);
        too_deep(not_chain.validate(), 100_000);
        assert!(!not_chain.matches(&Payload::new(), &|_| true));
        assert!(not_chain.to_string().ends_with('…'));
        drop(not_chain);
        let and_chain = ands(100_000);
        too_deep(and_chain.validate(), 100_000);
        drop(and_chain);
        // Wide and deep at once.
        let mixed = (0..50_000).fold(Filter::exists("x"), |f, i| {
            if i % 2 == 0 {
                Filter::Or(vec![Filter::exists("y"), f, Filter::has_term("t")])
            } else {
                f.not()
            }
        });
        drop(mixed);
    });
}

// ---- vectors whose scores stay numbers -------------------------------------------------------

fn collection(
    dir: &std::path::Path,
    dim: usize,
    metric: Metric,
) -> (Database, cairndb::Collection) {
    let db = Database::open(dir).unwrap();
    let col = db
        .create_collection("c", CollectionConfig::new(dim, metric))
        .unwrap();
    (db, col)
}

#[test]
fn huge_vectors_are_refused_under_dot_and_l2() {
    for metric in [Metric::Dot, Metric::L2] {
        let dir = tempfile::tempdir().unwrap();
        let (_db, col) = collection(dir.path(), 2, metric);
        for v in [[3e38, -3e38], [3e38, 3e38], [-3e38, 0.0], [1.1e18, 0.0]] {
            match col.upsert(Record::new(7, v)) {
                Err(Error::VectorTooLarge { id, norm, max }) => {
                    assert_eq!(id, Some(cairndb::Id::Int(7)));
                    assert!(norm > max && max == Metric::MAX_NORM, "{norm} {max}");
                }
                other => panic!("{metric}: {v:?} gave {other:?}"),
            }
            match col.search(&SearchRequest::new(v)) {
                Err(e @ Error::VectorTooLarge { id: None, .. }) => {
                    assert!(e.to_string().starts_with("query vector has norm"), "{e}");
                }
                other => panic!("{metric}: query {v:?} gave {other:?}"),
            }
        }
        assert_eq!(col.len(), 0);
        // At the bound: accepted, and the scores between opposite vectors are finite.
        col.upsert(vec![
            Record::new(1, [1e18, 0.0]),
            Record::new(2, [-1e18, 0.0]),
            Record::new(3, [0.0, 1e18]),
        ])
        .unwrap();
        for q in [[1e18, 0.0], [-1e18, 0.0], [7e17, -7e17]] {
            let hits = col.search(&SearchRequest::new(q).k(3)).unwrap();
            assert_eq!(hits.len(), 3, "{metric} {q:?}");
            assert!(hits.iter().all(|h| h.score.is_finite()), "{hits:?}");
        }
        // NaN and infinities are still refused.
        for v in [[f32::NAN, 0.0], [f32::INFINITY, 0.0]] {
            assert!(matches!(
                col.upsert(Record::new(9, v)),
                Err(Error::NonFiniteVector {
                    id: cairndb::Id::Int(9),
                    index: 0
                })
            ));
        }
    }
}

#[test]
fn tiny_vectors_are_fine_under_cosine_and_only_zero_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, col) = collection(dir.path(), 3, Metric::Cosine);
    col.upsert(vec![
        Record::new(1, [1e-30, 1e-30, 0.0]),
        Record::new(2, [1e-40, 0.0, -1e-40]),
        Record::new(3, [0.0, 1e-45, 0.0]),
        Record::new(4, [3e38, 3e38, 3e38]),
    ])
    .unwrap();
    for (q, best) in [
        ([2e-30, 2e-30, 0.0], 1),
        ([1e-42, 0.0, -1e-42], 2),
        ([0.0, 1.0, 0.0], 3),
        ([1.0, 1.0, 1.0], 4),
    ] {
        let hits = col.search(&SearchRequest::new(q).k(4)).unwrap();
        assert_eq!(hits[0].id, best, "{q:?}: {hits:?}");
        assert!((hits[0].score - 1.0).abs() < 1e-5, "{hits:?}");
        assert!(hits.iter().all(|h| h.score.is_finite()));
    }
    let e = col.upsert(Record::new(5, [0.0, -0.0, 0.0])).unwrap_err();
    assert!(
        matches!(
            e,
            Error::ZeroVector {
                id: cairndb::Id::Int(5)
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("zero vector (norm 0"), "{e}");
    let e = col.search(&SearchRequest::new([0.0; 3])).unwrap_err();
    assert!(
        matches!(e, Error::ZeroQuery) && e.to_string().contains("norm 0"),
        "{e}"
    );
    assert!(matches!(
        col.upsert(Record::new(6, [1.0, f32::NEG_INFINITY, 0.0])),
        Err(Error::NonFiniteVector {
            id: cairndb::Id::Int(6),
            index: 1
        })
    ));
}

mod scores {
    use super::*;
    use proptest::prelude::*;

    /// A vector of `dim` components whose norm is 10^`exp` (at most [`Metric::MAX_NORM`]).
    fn scaled(unit: &[f32], exp: f64) -> Vec<f32> {
        let n: f64 = unit
            .iter()
            .map(|&x| f64::from(x).powi(2))
            .sum::<f64>()
            .sqrt();
        let target = 10f64.powf(exp).min(Metric::MAX_NORM * (1.0 - 1e-6));
        unit.iter()
            .map(|&x| {
                if n > 0.0 {
                    (f64::from(x) / n * target) as f32
                } else {
                    0.0
                }
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]

        /// Whatever the accepted vectors, no search (graph or exact, memtable or segment)
        /// returns a score that is NaN or infinite.
        #[test]
        fn accepted_vectors_never_score_non_finite(
            metric in prop::sample::select(vec![Metric::Dot, Metric::L2]),
            rows in (1usize..12).prop_flat_map(|dim| prop::collection::vec(
                (prop::collection::vec(-1f32..1.0, dim), 0f64..18.5), 2..40)),
        ) {
            let dim = rows[0].0.len();
            let dir = tempfile::tempdir().unwrap();
            let (_db, col) = collection(dir.path(), dim, metric);
            let vectors: Vec<Vec<f32>> = rows.iter().map(|(u, e)| scaled(u, *e)).collect();
            let records: Vec<Record> = vectors
                .iter()
                .enumerate()
                .map(|(i, v)| Record::new(i as u64, v.clone()))
                .collect();
            col.upsert(records).unwrap();
            for round in 0..2 {
                for q in &vectors {
                    for exact in [false, true] {
                        let req = SearchRequest::new(q.clone()).k(vectors.len()).exact(exact);
                        let hits = col.search(&req).unwrap();
                        prop_assert_eq!(hits.len(), vectors.len());
                        prop_assert!(
                            hits.iter().all(|h| h.score.is_finite()),
                            "round {} exact {}: {:?}", round, exact, hits
                        );
                    }
                }
                col.flush().unwrap();
            }
        }
    }
}
