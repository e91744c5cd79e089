//! HNSW search at fixed ef on a generated clustered data set (100,000 × 64, cosine), from a
//! sealed, memory-mapped segment and from the memtable. `cargo bench --bench hnsw_search`.
//! Under `cargo test --benches` it runs once on a small set.

use std::time::Duration;

use cairndb::{
    Collection, CollectionConfig, Database, Durability, Metric, Options, Record, SearchRequest,
};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

const DIM: usize = 64;

fn full_run() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test" || a == "--list")
}

fn clustered(n: usize, rng: &mut SmallRng, centres: &[Vec<f32>]) -> Vec<Vec<f32>> {
    (0..n)
        .map(|_| {
            let c = &centres[rng.random_range(0..centres.len())];
            c.iter()
                .map(|x| x + rng.random_range(-0.25f32..0.25))
                .collect()
        })
        .collect()
}

fn build(dir: &std::path::Path, base: &[Vec<f32>], seal: bool) -> (Database, Collection) {
    let opts = Options::default()
        .durability(Durability::buffered())
        .memtable_max_rows(usize::MAX / 2)
        .memtable_max_bytes(usize::MAX / 2)
        .max_wal_bytes(u64::MAX / 2);
    let db = Database::open_with(dir, opts).unwrap();
    let c = db
        .create_collection("b", CollectionConfig::new(DIM, Metric::Cosine))
        .unwrap();
    for (b, chunk) in base.chunks(10_000).enumerate() {
        c.upsert(
            chunk
                .iter()
                .enumerate()
                .map(|(i, v)| Record::new((b * 10_000 + i) as u64, v.clone()))
                .collect::<Vec<_>>(),
        )
        .unwrap();
    }
    if seal {
        c.flush().unwrap();
    }
    (db, c)
}

fn bench(cr: &mut Criterion) {
    let n = if full_run() { 100_000 } else { 2_000 };
    let mut rng = SmallRng::seed_from_u64(3);
    let centres: Vec<Vec<f32>> = (0..100)
        .map(|_| (0..DIM).map(|_| rng.random_range(-1.0f32..1.0)).collect())
        .collect();
    let base = clustered(n, &mut rng, &centres);
    let queries = clustered(1_000, &mut rng, &centres);
    let mut g = cr.benchmark_group("hnsw_search");
    g.sample_size(20).measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(queries.len() as u64));
    for (label, seal) in [("segment", true), ("memtable", false)] {
        let dir = tempfile::tempdir().unwrap();
        let (_db, c) = build(dir.path(), &base, seal);
        for ef in [32usize, 64, 128] {
            g.bench_with_input(
                BenchmarkId::new(label, format!("{n}x{DIM}/ef{ef}")),
                &ef,
                |b, &ef| {
                    b.iter(|| {
                        for q in &queries {
                            let hits = c
                                .search(&SearchRequest::new(q.clone()).k(10).ef(ef))
                                .unwrap();
                            std::hint::black_box(hits);
                        }
                    })
                },
            );
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
