//! Filtered vector search through the public API, against a brute-force model: exact results
//! when the planner scans, high recall when it walks the graph, and `min(k, matches)` hits
//! always — across segments, the memtable and deletes, before and after a reopen.

use std::collections::HashMap;

use cairndb::{
    CollectionConfig, Database, Filter, Metric, Options, PlanKind, Record, SearchRequest, Value,
};
use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

fn payload_value(rng: &mut SmallRng) -> Option<(String, Value)> {
    Some(match rng.random_range(0..6) {
        0 => (
            "lang".into(),
            Value::from(["en", "de", "fr"][rng.random_range(0..3)]),
        ),
        1 => ("year".into(), Value::Int(rng.random_range(2015..2025))),
        2 => (
            "score".into(),
            Value::Float(rng.random_range(0..8) as f64 / 4.0),
        ),
        3 => ("draft".into(), Value::Bool(rng.random_bool(0.3))),
        4 => (
            "tags".into(),
            Value::List(
                (0..rng.random_range(0..3))
                    .map(|_| Value::from(["a", "b", "c"][rng.random_range(0..3)]))
                    .collect(),
            ),
        ),
        _ => return None,
    })
}

fn record(rng: &mut SmallRng, id: u64, dim: usize) -> Record {
    let mut r = Record::new(
        id,
        (0..dim)
            .map(|_| rng.random_range(-1.0f32..1.0))
            .collect::<Vec<_>>(),
    );
    for _ in 0..4 {
        if let Some((k, v)) = payload_value(rng) {
            r.payload.insert(k, v);
        }
    }
    r
}

fn leaf() -> impl Strategy<Value = Filter> {
    prop_oneof![
        prop_oneof![Just("en"), Just("de"), Just("xx")].prop_map(|v| Filter::eq("lang", v)),
        (2015i64..2026).prop_map(|y| Filter::eq("year", y)),
        (2015i64..2026, 0i64..5)
            .prop_map(|(y, w)| Filter::range("year").gte(y as f64).lt((y + w) as f64)),
        (0i64..9).prop_map(|x| Filter::range("score").gt(x as f64 / 4.0)),
        any::<bool>().prop_map(|b| Filter::eq("draft", b)),
        prop::collection::vec(
            prop_oneof![Just("a"), Just("b"), Just("c"), Just("en")],
            1..3
        )
        .prop_map(|v| Filter::any_of("tags", v)),
        prop_oneof![Just("tags"), Just("draft"), Just("nope")].prop_map(Filter::exists),
    ]
}

fn filter() -> impl Strategy<Value = Filter> {
    leaf().prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..4).prop_map(Filter::And),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Filter::Or),
            inner.prop_map(Filter::not),
        ]
    })
}

/// Brute force: the k best live records matching `f`, by (score desc, id asc).
fn model_search(model: &HashMap<u64, Record>, q: &[f32], f: &Filter, k: usize) -> Vec<u64> {
    let mut scored: Vec<(f32, u64)> = model
        .values()
        .filter(|r| f.matches(&r.payload, &|_| false))
        .map(|r| {
            (
                q.iter().zip(&r.vector).map(|(a, b)| a * b).sum::<f32>(),
                r.id.as_u64().unwrap(),
            )
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.into_iter().take(k).map(|(_, id)| id).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Small sources are scanned exactly under a filter, so the indexed search must equal the
    /// model, whichever way the records are split and after deletes and a reopen.
    #[test]
    fn filtered_search_equals_brute_force(
        seed in any::<u64>(),
        filters in prop::collection::vec(filter(), 4..8),
        k in 1usize..15,
    ) {
        const DIM: usize = 8;
        let mut rng = SmallRng::seed_from_u64(seed);
        let dir = tempfile::tempdir().unwrap();
        let opts = Options::default().memtable_max_rows(120);
        let mut model: HashMap<u64, Record> = HashMap::new();
        {
            let db = Database::open_with(dir.path(), opts.clone()).unwrap();
            let c = db.create_collection("f", CollectionConfig::new(DIM, Metric::Dot)).unwrap();
            for _ in 0..4 {
                let batch: Vec<Record> = (0..100).map(|_| {
                    let id = rng.random_range(0..300u64);
                    record(&mut rng, id, DIM)
                }).collect();
                c.upsert(batch.clone()).unwrap();
                for r in batch { model.insert(r.id.as_u64().unwrap(), r); }
                let dels: Vec<u64> = (0..15).map(|_| rng.random_range(0..300u64)).collect();
                c.delete(&dels).unwrap();
                for d in dels { model.remove(&d); }
            }
            let q: Vec<f32> = (0..DIM).map(|_| rng.random_range(-1.0f32..1.0)).collect();
            for f in &filters {
                let want = model_search(&model, &q, f, k);
                for exact in [false, true] {
                    let got: Vec<u64> = c
                        .search(&SearchRequest::new(q.clone()).k(k).filter(f.clone()).exact(exact))
                        .unwrap().iter().map(|h| h.id.as_u64().unwrap()).collect();
                    prop_assert_eq!(&got, &want, "filter {:?} exact {}", f, exact);
                }
            }
        }
        let db = Database::open_with(dir.path(), opts).unwrap();
        let c = db.collection("f").unwrap();
        let q: Vec<f32> = (0..DIM).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        for f in &filters {
            let want = model_search(&model, &q, f, k);
            let got: Vec<u64> = c
                .search(&SearchRequest::new(q.clone()).k(k).filter(f.clone()))
                .unwrap().iter().map(|h| h.id.as_u64().unwrap()).collect();
            prop_assert_eq!(&got, &want, "after reopen, filter {:?}", f);
        }
    }
}

/// On a larger clustered set the planner walks the graph for broad filters and scans for
/// narrow ones; recall@10 against the exact filtered result stays ≥ 0.95 and every search
/// returns `min(10, matches)` hits that all match.
#[test]
fn filtered_recall_across_selectivities() {
    const N: u64 = 20_000;
    const DIM: usize = 32;
    let mut rng = SmallRng::seed_from_u64(5);
    let centres: Vec<Vec<f32>> = (0..32)
        .map(|_| (0..DIM).map(|_| rng.random_range(-1.0f32..1.0)).collect())
        .collect();
    let point = |rng: &mut SmallRng| -> Vec<f32> {
        let c = &centres[rng.random_range(0..centres.len())];
        c.iter()
            .map(|x| x + rng.random_range(-0.3f32..0.3))
            .collect()
    };
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open_with(dir.path(), Options::default()).unwrap();
    let c = db
        .create_collection("f", CollectionConfig::new(DIM, Metric::Cosine))
        .unwrap();
    let records: Vec<Record> = (0..N)
        .map(|i| {
            Record::new(i, point(&mut rng))
                .with_field("bucket", (i * 7919 % 1000) as i64)
                .with_field("half", if i % 2 == 0 { "even" } else { "odd" })
        })
        .collect();
    // One 18k-row segment and a 2k-row memtable.
    for chunk in records.chunks(2_000) {
        c.upsert(chunk.to_vec()).unwrap();
        if chunk[0].id == 16_000 {
            c.flush().unwrap();
        }
    }
    // Delete 5 % so tombstones and the memtable's dead rows take part.
    let dels: Vec<u64> = (0..N).filter(|i| i % 20 == 3).collect();
    c.delete(&dels).unwrap();

    let queries: Vec<Vec<f32>> = (0..50).map(|_| point(&mut rng)).collect();
    // The planner's choice on the 18k-row segment (ef 64, m 16): broad filters walk the graph,
    // narrow ones scan; 20 % lies near the break-even point and may go either way.
    let cases = [
        (Filter::eq("half", "even"), Some(PlanKind::Graph)), // 50 %
        (Filter::range("bucket").lt(200), None),             // 20 %
        (Filter::range("bucket").lt(10), Some(PlanKind::Exact)), // 1 %
        (
            Filter::eq("bucket", 7).and(Filter::eq("half", "odd")),
            Some(PlanKind::Exact),
        ), // ~0.05 %
    ];
    for (f, plan) in cases {
        let mut found = 0;
        let mut possible = 0;
        for q in &queries {
            let truth: Vec<u64> = c
                .search(
                    &SearchRequest::new(q.clone())
                        .k(10)
                        .filter(f.clone())
                        .exact(true),
                )
                .unwrap()
                .iter()
                .map(|h| h.id.as_u64().unwrap())
                .collect();
            let resp = c
                .query(
                    &SearchRequest::new(q.clone())
                        .k(10)
                        .filter(f.clone())
                        .explain(true)
                        .with_payload(true),
                )
                .unwrap();
            let explain = resp.explain.unwrap();
            let matched: usize = explain.vector.iter().map(|p| p.matched).sum();
            assert_eq!(resp.hits.len(), matched.min(10), "{f:?}");
            assert_eq!(truth.len(), matched.min(10));
            for h in &resp.hits {
                assert!(f.matches(h.payload.as_ref().unwrap(), &|_| false));
                assert!(h.id.as_u64().unwrap() % 20 != 3, "deleted record returned");
            }
            let big = explain.vector.iter().max_by_key(|p| p.rows).unwrap();
            if let Some(plan) = plan {
                assert_eq!(big.plan, plan, "{f:?}: {explain:?}");
            }
            assert!(explain.complete);
            found += resp
                .hits
                .iter()
                .filter(|h| truth.contains(&h.id.as_u64().unwrap()))
                .count();
            possible += truth.len();
        }
        let recall = found as f64 / possible as f64;
        assert!(recall >= 0.95, "{f:?}: recall {recall}");
    }
}
