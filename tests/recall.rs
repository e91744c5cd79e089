//! HNSW recall against exact search through the public API, for every metric, before and after
//! a reopen from disk, and after deletes; `verify` (which runs the graph invariant checker)
//! passes throughout.

mod common;

use cairndb::{CollectionConfig, Database, Metric, Options, Record, SearchRequest};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

const N: usize = 20_000;
const DIM: usize = 64;
const QUERIES: usize = 100;
/// The ef at which recall@10 must reach 0.95.
const EF: usize = 64;

/// `n` points around 64 random centres, and queries drawn the same way.
fn clustered(seed: u64) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let centres: Vec<Vec<f32>> = (0..64)
        .map(|_| (0..DIM).map(|_| rng.random_range(-1.0f32..1.0)).collect())
        .collect();
    let point = |rng: &mut SmallRng| -> Vec<f32> {
        let c = &centres[rng.random_range(0..centres.len())];
        c.iter()
            .map(|x| x + rng.random_range(-0.25f32..0.25))
            .collect()
    };
    let base = (0..N).map(|_| point(&mut rng)).collect();
    let queries = (0..QUERIES).map(|_| point(&mut rng)).collect();
    (base, queries)
}

/// Recall@10 of graph search at `EF` against exact search. Also checks that every hit the
/// graph returns carries its exact score (segment walks score int8 copies of the vectors, then
/// re-score what they found from the f32 vectors) and that hits come best first.
fn recall(c: &cairndb::Collection, queries: &[Vec<f32>]) -> f64 {
    let mut hit = 0;
    for q in queries {
        let truth = c
            .search(&SearchRequest::new(q.clone()).k(10).exact(true))
            .unwrap();
        let got = c
            .search(&SearchRequest::new(q.clone()).k(10).ef(EF))
            .unwrap();
        assert_eq!(got.len(), 10);
        assert!(got.windows(2).all(|w| w[0].score >= w[1].score));
        for h in &got {
            if let Some(t) = truth.iter().find(|t| t.id == h.id) {
                assert!(
                    (t.score - h.score).abs() <= 1e-5 * t.score.abs().max(1.0),
                    "id {}: graph score {} but exact {}",
                    h.id,
                    h.score,
                    t.score
                );
                hit += 1;
            }
        }
    }
    hit as f64 / (queries.len() * 10) as f64
}

#[test]
fn recall_at_ef_64_for_every_metric_before_and_after_reopen() {
    let (base, queries) = clustered(11);
    for metric in [Metric::Cosine, Metric::Dot, Metric::L2] {
        let dir = tempfile::tempdir().unwrap();
        // Two segments and a memtable: the search merges three graphs.
        let opts = Options::default().memtable_max_rows(8_000);
        let db = Database::open_with(dir.path(), opts.clone()).unwrap();
        let c = db
            .create_collection("v", CollectionConfig::new(DIM, metric))
            .unwrap();
        for (b, chunk) in base.chunks(1_000).enumerate() {
            let recs: Vec<Record> = chunk
                .iter()
                .enumerate()
                .map(|(i, v)| Record::new((b * 1_000 + i) as u64, v.clone()))
                .collect();
            c.upsert(recs).unwrap();
        }
        // Seals run in the background: wait (bounded) until no frozen memtable is left.
        assert_eq!(common::settled_stats(&c).segments.len(), 2);
        let r = recall(&c, &queries);
        assert!(r >= 0.95, "{metric}: recall@10 {r} at ef {EF}");
        db.verify().unwrap();

        c.flush().unwrap();
        drop((c, db));
        let db = Database::open_with(dir.path(), opts).unwrap();
        db.verify().unwrap();
        let c = db.collection("v").unwrap();
        // The int8 codes of the segments' vectors (cosine and dot) are their mapped `codes`
        // files: nothing to build, no heap (L2 walks score the f32 vectors and has none).
        let heap = || -> u64 { c.stats().segments.iter().map(|s| s.index_heap_bytes).sum() };
        let before = heap();
        c.warm_up().unwrap();
        assert_eq!(heap() - before, 0, "{metric}: warm_up built a heap copy");
        let codes: u64 = c.stats().segments.iter().map(|s| s.codes_bytes).sum();
        match metric {
            Metric::L2 => assert_eq!(codes, 0, "L2 walks score the f32 vectors"),
            _ => assert!(codes >= (N * DIM) as u64, "{metric}: {codes} codes bytes"),
        }
        let r2 = recall(&c, &queries);
        assert!(
            r2 >= 0.95,
            "{metric}: recall@10 {r2} at ef {EF} after reopen"
        );

        // Delete a tenth (in segments): deleted rows are walked through, never returned,
        // recall stays, and the graph invariants still hold.
        let gone: Vec<u64> = (0..N as u64).step_by(10).collect();
        c.delete(&gone).unwrap();
        for q in &queries {
            let hits = c
                .search(&SearchRequest::new(q.clone()).k(10).ef(EF))
                .unwrap();
            assert_eq!(hits.len(), 10);
            assert!(
                hits.iter().all(|h| h.id.as_u64().unwrap() % 10 != 0),
                "{metric}: a deleted id came back"
            );
        }
        let r3 = recall(&c, &queries);
        assert!(r3 >= 0.95, "{metric}: recall@10 {r3} after deletes");
        c.flush().unwrap();
        db.verify().unwrap();
    }
}
