//! Durable ingest: 50,000 records of dimension 384 (random, seeded; no text or payload) in
//! batches of 1,000 into a fresh database per iteration, timed from the first `upsert` until
//! the last one returns.
//!
//! * `sync/*`: `Durability::Sync` — every batch is fdatasync'ed before `upsert` returns.
//! * `buffered/*`: `Durability::Buffered` (1 s background sync) — the same work without
//!   waiting for the log's fsync; the difference to `sync/*` is the cost of the fsyncs.
//!   The final sync when the database is dropped is outside the timing.
//! * `*/default`: default options (the memtable seals at 100k rows / 256 MiB, so no seal).
//! * `*/seal20k`: `memtable_max_rows(20_000)`: two seals (each writes and fsyncs a segment)
//!   happen inside the timed part.
//!
//! Run: `cargo bench --bench ingest`

mod common;

use std::time::{Duration, Instant};

use cairndb::{CollectionConfig, Database, Durability, Metric, Options, Record};
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};

const DIM: usize = 384;
const BATCH: usize = 1_000;

fn ingest(c: &mut Criterion) {
    let total = if common::full_run() { 50_000 } else { 2_000 };
    let mut rng = common::rng(7);
    let batches: Vec<Vec<Record>> = (0..total / BATCH)
        .map(|b| common::random_records(&mut rng, (b * BATCH) as u64, BATCH, DIM))
        .collect();

    let variants = [
        ("sync/default", Options::default()),
        ("sync/seal20k", Options::default().memtable_max_rows(20_000)),
        (
            "buffered/default",
            Options::default().durability(Durability::buffered()),
        ),
        (
            "buffered/seal20k",
            Options::default()
                .durability(Durability::buffered())
                .memtable_max_rows(20_000),
        ),
    ];

    let mut g = c.benchmark_group("ingest");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8))
        .throughput(Throughput::Elements(total as u64));
    for (name, opts) in variants {
        g.bench_function(format!("{name}/{total}x{DIM}"), |b| {
            b.iter_custom(|iters| {
                let mut elapsed = Duration::ZERO;
                for _ in 0..iters {
                    let dir = common::scratch_dir();
                    let db = Database::open_with(dir.path().join("db"), opts.clone()).unwrap();
                    let col = db
                        .create_collection("bench", CollectionConfig::new(DIM, Metric::Cosine))
                        .unwrap();
                    let input = batches.clone();
                    let t = Instant::now();
                    for batch in input {
                        col.upsert(batch).unwrap();
                    }
                    elapsed += t.elapsed();
                    // Closing (and, for buffered, the final sync) and removing the directory
                    // are not timed.
                    drop(col);
                    drop(db);
                    drop(dir);
                }
                elapsed
            })
        });
    }
    g.finish();
}

criterion_group!(benches, ingest);
criterion_main!(benches);
