//! The demo's throughput benchmark on a generated, clustered data set.

use std::io::Write;
use std::time::Instant;

use cairndb::{CollectionConfig, Database, Metric, Record, SearchRequest};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

use crate::demo::step;
use crate::util::{CliResult, fail, fmt_dur, per_sec, thousands};

/// Rows of the synthetic set.
pub const ROWS: usize = 50_000;
/// Graph build effort for the demo (the default is 200): keeps the demo quick.
const EF_CONSTRUCTION: usize = 100;
/// Their dimension.
pub const DIM: usize = 128;
const CLUSTERS: usize = 100;
const BATCH: usize = 10_000;
const QUERIES: usize = 200;
const SEED: u64 = 0x0C0A_12D8;

/// A standard normal sample (Box–Muller).
fn normal(rng: &mut SmallRng) -> f32 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]: ln stays finite
    let u2: f64 = rng.random::<f64>();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

/// `ROWS × DIM` floats: `CLUSTERS` random centers in [-1, 1]^DIM, points scattered around
/// them with Gaussian noise.
fn generate(rng: &mut SmallRng) -> Vec<f32> {
    let centers: Vec<f32> = (0..CLUSTERS * DIM)
        .map(|_| rng.random::<f32>() * 2.0 - 1.0)
        .collect();
    let mut data = Vec::with_capacity(ROWS * DIM);
    for _ in 0..ROWS {
        let c = rng.random_range(0..CLUSTERS);
        for &x in &centers[c * DIM..(c + 1) * DIM] {
            data.push(x + 0.25 * normal(rng));
        }
    }
    data
}

/// Generates the set, ingests it durably into collection `synthetic` (L2), seals it, and
/// measures HNSW and exact search: throughput, and the HNSW recall against exact.
pub fn run(db: &Database, out: &mut impl Write) -> CliResult<()> {
    let mut rng = SmallRng::seed_from_u64(SEED);
    let t = Instant::now();
    let data = generate(&mut rng);
    step(
        out,
        &format!(
            "generate {} × {DIM} clustered vectors (seeded)",
            thousands(ROWS as u64)
        ),
        t.elapsed(),
        &format!("{CLUSTERS} clusters"),
    )?;

    let coll = db.create_collection(
        "synthetic",
        CollectionConfig {
            ef_construction: EF_CONSTRUCTION,
            ..CollectionConfig::new(DIM, Metric::L2)
        },
    )?;
    let t = Instant::now();
    for (b, chunk) in data.chunks(BATCH * DIM).enumerate() {
        let records: Vec<Record> = chunk
            .chunks_exact(DIM)
            .enumerate()
            .map(|(i, v)| Record::new((b * BATCH + i) as u64, v))
            .collect();
        coll.upsert(records)?;
    }
    let took = t.elapsed();
    step(
        out,
        &format!(
            "ingest + HNSW indexing: {} batches × {}, each fsync'ed",
            ROWS / BATCH,
            thousands(BATCH as u64)
        ),
        took,
        &format!("{} records/s", per_sec(ROWS as u64, took)),
    )?;

    let t = Instant::now();
    coll.flush()?;
    step(
        out,
        &format!(
            "flush: seal {} rows and their graph into a segment",
            thousands(ROWS as u64)
        ),
        t.elapsed(),
        "",
    )?;

    // Each query is a stored point, slightly moved: its nearest neighbor is that point.
    let sources: Vec<usize> = (0..QUERIES).map(|_| rng.random_range(0..ROWS)).collect();
    let queries: Vec<Vec<f32>> = sources
        .iter()
        .map(|&s| {
            data[s * DIM..(s + 1) * DIM]
                .iter()
                .map(|&x| x + 0.01 * normal(&mut rng))
                .collect()
        })
        .collect();
    let search = |q: &Vec<f32>| coll.search(&SearchRequest::new(q.clone()).k(10).exact(true));

    let t = Instant::now();
    let mut found = 0;
    let mut truth = Vec::with_capacity(QUERIES);
    for (q, &s) in queries.iter().zip(&sources) {
        let hits = search(q)?;
        if hits.first().is_some_and(|h| h.id == s as u64) {
            found += 1;
        }
        truth.push(hits.iter().map(|h| h.id.clone()).collect::<Vec<_>>());
    }
    let one = t.elapsed();

    // The same queries through the HNSW index (the default search), one thread.
    for ef in [16usize, 64] {
        let t = Instant::now();
        let mut hit = 0;
        for (q, want) in queries.iter().zip(&truth) {
            let hits = coll.search(&SearchRequest::new(q.clone()).k(10).ef(ef))?;
            hit += hits.iter().filter(|h| want.contains(&h.id)).count();
        }
        let took = t.elapsed();
        step(
            out,
            &format!("HNSW top-10 search (ef {ef}), 1 thread: {QUERIES} queries"),
            took,
            &format!(
                "{} queries/s, recall@10 {:.3}",
                per_sec(QUERIES as u64, took),
                hit as f64 / (QUERIES * 10) as f64
            ),
        )?;
    }
    step(
        out,
        &format!("exact top-10 search, 1 thread: {QUERIES} queries"),
        one,
        &format!(
            "{} queries/s, {} per query",
            per_sec(QUERIES as u64, one),
            fmt_dur(one / QUERIES as u32)
        ),
    )?;

    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let t = Instant::now();
    let per = QUERIES.div_ceil(threads);
    let results: Vec<CliResult<usize>> = std::thread::scope(|s| {
        let handles: Vec<_> = queries
            .chunks(per)
            .map(|chunk| {
                s.spawn(|| -> cairndb::Result<usize> {
                    chunk.iter().map(|q| search(q).map(|h| h.len())).sum()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| fail("a search thread panicked"))?
                    .map_err(Into::into)
            })
            .collect()
    });
    for r in results {
        r?;
    }
    let all = t.elapsed();
    step(
        out,
        &format!("exact top-10 search, {threads} threads: {QUERIES} queries"),
        all,
        &format!("{} queries/s", per_sec(QUERIES as u64, all)),
    )?;
    let mut note = String::new();
    if found != QUERIES {
        note = " (unexpected: exact search should always find it)".into();
    }
    outln!(
        out,
        "     check: the perturbed source point is the top hit for {found} of {QUERIES} queries{note}"
    );
    Ok(())
}
