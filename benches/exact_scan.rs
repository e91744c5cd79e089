//! Exact search (`SearchRequest::exact(true)`, k = 10, cosine) over N rows, while they are in
//! the memtable and after `flush()` has sealed them into a memory-mapped segment, next to two
//! memory-read baselines over a contiguous `Vec<f32>` of the same size:
//!
//! * `sum_f32`: sums every float (16 independent accumulators) — a plain memory-read loop;
//! * `dot_loop`: `simd::dot(query, row)` for every row, keeping the best score — the kernel
//!   alone, without top-k, liveness checks or block checksums;
//! * `sum_f32_mmap`: `sum_f32` over the same bytes memory-mapped from a file in the page
//!   cache, the way a sealed segment is read.
//!
//! Below 128k rows a search runs on the calling thread; at 1M rows it is split into 64k-row
//! tasks on rayon's pool (`*_par2` baselines use the same pool).
//!
//! Run: `cargo bench --bench exact_scan`

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use cairndb::distance::simd;
use cairndb::{CollectionConfig, Database, Durability, Metric, Options, SearchRequest};
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use rayon::prelude::*;

/// Records per upsert while loading.
const LOAD_BATCH: usize = 10_000;
/// Distinct queries, used round-robin.
const QUERIES: usize = 16;

fn sum_f32(data: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let chunks = data.chunks_exact(16);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a += x;
        }
    }
    acc.iter().sum::<f32>() + tail
}

fn dot_loop(q: &[f32], data: &[f32], dim: usize) -> f32 {
    let mut best = f32::NEG_INFINITY;
    for row in data.chunks_exact(dim) {
        best = best.max(simd::dot(q, row));
    }
    best
}

fn scan_case<M: criterion::measurement::Measurement>(
    g: &mut BenchmarkGroup<'_, M>,
    n: usize,
    dim: usize,
    parallel_baselines: bool,
) {
    let tag = format!("{n}x{dim}");
    let mut rng = common::rng(n as u64 ^ dim as u64);
    let dir = common::scratch_dir();
    let opts = Options::default()
        .durability(Durability::buffered())
        .memtable_max_rows(n + 1)
        .memtable_max_bytes(usize::MAX / 2);
    let db = Database::open_with(dir.path().join("db"), opts).unwrap();
    let col = db
        .create_collection("bench", CollectionConfig::new(dim, Metric::Cosine))
        .unwrap();
    let t = Instant::now();
    let mut next = 0u64;
    while (next as usize) < n {
        let m = LOAD_BATCH.min(n - next as usize);
        col.upsert(common::random_records(&mut rng, next, m, dim))
            .unwrap();
        next += m as u64;
    }
    eprintln!("[{tag}] loaded {n} rows in {:.2?}", t.elapsed());
    let reqs: Vec<SearchRequest> = (0..QUERIES)
        .map(|_| {
            SearchRequest::new(common::random_vector(&mut rng, dim))
                .k(10)
                .exact(true)
        })
        .collect();
    let mut qi = 0usize;
    let mut next_req = || {
        qi = (qi + 1) % QUERIES;
        &reqs[qi]
    };

    g.throughput(Throughput::Elements(n as u64));
    assert_eq!(col.stats().memtable_rows, n);
    g.bench_function(format!("memtable/{tag}"), |b| {
        b.iter(|| col.search(black_box(next_req())).unwrap())
    });

    let t = Instant::now();
    col.flush().unwrap();
    eprintln!("[{tag}] flushed (sealed) in {:.2?}", t.elapsed());
    let stats = col.stats();
    assert_eq!(stats.memtable_rows, 0);
    assert_eq!(stats.segments.len(), 1);
    // The first scan of a segment checks every block's crc32c; do it outside the timing.
    col.search(next_req()).unwrap();
    g.bench_function(format!("segment/{tag}"), |b| {
        b.iter(|| col.search(black_box(next_req())).unwrap())
    });
    drop(col);
    drop(db);
    drop(dir);

    // Baselines over a contiguous Vec of the same size (not normalized: irrelevant to timing).
    let data = common::random_flat(&mut rng, n, dim);
    let q = common::random_vector(&mut rng, dim);
    g.bench_function(format!("sum_f32/{tag}"), |b| {
        b.iter(|| sum_f32(black_box(&data)))
    });
    g.bench_function(format!("dot_loop/{tag}"), |b| {
        b.iter(|| dot_loop(black_box(&q), black_box(&data), dim))
    });
    // The same bytes read through a memory map of a file in the page cache, as a segment is
    // (the kernel may map page-cache folios larger than the 4 KiB pages of a Vec).
    let map_dir = common::scratch_dir();
    let map_path = map_dir.path().join("data");
    std::fs::write(&map_path, bytemuck::cast_slice::<f32, u8>(&data)).unwrap();
    let file = std::fs::File::open(&map_path).unwrap();
    // SAFETY: the file is private to this benchmark and not modified while mapped.
    let map = unsafe { memmap2::Mmap::map(&file) }.unwrap();
    let mapped: &[f32] = bytemuck::cast_slice(&map[..]);
    g.bench_function(format!("sum_f32_mmap/{tag}"), |b| {
        b.iter(|| sum_f32(black_box(mapped)))
    });
    if parallel_baselines {
        // Same task size as the search: 64k rows.
        let task = 64 * 1024 * dim;
        g.bench_function(format!("sum_f32_par2/{tag}"), |b| {
            b.iter(|| black_box(&data).par_chunks(task).map(sum_f32).sum::<f32>())
        });
        g.bench_function(format!("dot_loop_par2/{tag}"), |b| {
            b.iter(|| {
                black_box(&data)
                    .par_chunks(task)
                    .map(|c| dot_loop(&q, c, dim))
                    .reduce(|| f32::NEG_INFINITY, f32::max)
            })
        });
    }
}

fn exact_scan(c: &mut Criterion) {
    let (small, large) = if common::full_run() {
        (100_000, 1_000_000)
    } else {
        (2_000, 4_000)
    };
    eprintln!("rayon threads: {}", rayon::current_num_threads());
    let mut g = c.benchmark_group("exact_scan");
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    scan_case(&mut g, small, 128, false);
    scan_case(&mut g, small, 384, false);
    g.sample_size(10).measurement_time(Duration::from_secs(4));
    scan_case(&mut g, large, 128, true);
    g.finish();
}

criterion_group!(benches, exact_scan);
criterion_main!(benches);
