//! How reads, writes and background work wait for each other (issue 13's benchmarks).
//!
//! ```sh
//! cargo run --release --example contention -- rerank-stall --secs 10
//! cargo run --release --example contention -- compaction --base base.fvecs --queries query.fvecs
//! cargo run --release --example contention -- ingest --rows 1000000 --dim 128
//! ```
//!
//! * `rerank-stall`: 20,000 rows of 64-d; 4 threads search in a loop with a reranker that
//!   sleeps 1 s; this thread upserts one record at a time (durability Sync) for `--secs`
//!   seconds. Prints upsert latency p50/p99/max, and the same with no searchers first.
//! * `compaction`: loads `--base` (e.g. GloVe 390k × 50) in `--segments` flushed segments with
//!   background compaction off, then times single-threaded searches (k 10) for `--secs`
//!   seconds on the idle collection, then the same searches while another thread compacts
//!   every segment into one. Prints p50/p99 of both and their ratio.
//! * `ingest`: upserts `--rows` random vectors of `--dim` in batches of `--batch` (durability
//!   Buffered) and flushes. Prints rows per second, the wall time of the last upsert call
//!   included the flush.
//!
//! Prints one JSON object on stdout. Uses only the API that every version of Cairn since the
//! first release has, so the same file measures an older commit too.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cairndb::{
    CollectionConfig, Database, Durability, Hit, Metric, Options, Record, RerankQuery, Reranker,
    SearchRequest,
};
use clap::{Parser, Subcommand};

type BoxError = Box<dyn std::error::Error>;

#[derive(Parser)]
#[command(about = "Contention between reads, writes, seals and compactions")]
struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand)]
enum What {
    /// Upsert latency while 4 threads search with a reranker that sleeps 1 s.
    RerankStall {
        #[arg(long, default_value_t = 10.0)]
        secs: f64,
    },
    /// Search latency during a compaction against an idle collection.
    Compaction {
        #[arg(long)]
        base: PathBuf,
        #[arg(long)]
        queries: PathBuf,
        #[arg(long, default_value_t = 8)]
        segments: usize,
        #[arg(long, default_value_t = 5.0)]
        secs: f64,
    },
    /// Ingest rate of random vectors.
    Ingest {
        #[arg(long, default_value_t = 1_000_000)]
        rows: usize,
        #[arg(long, default_value_t = 128)]
        dim: usize,
        #[arg(long, default_value_t = 1000)]
        batch: usize,
    },
}

fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    match args.what {
        What::RerankStall { secs } => rerank_stall(dir.path(), secs),
        What::Compaction {
            base,
            queries,
            segments,
            secs,
        } => compaction(dir.path(), &base, &queries, segments, secs),
        What::Ingest { rows, dim, batch } => ingest(dir.path(), rows, dim, batch),
    }
}

/// SplitMix64: reproducible vectors without a dependency.
fn random_vector(seed: u64, dim: usize) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (0..dim)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn summary(mut ms: Vec<f64>) -> String {
    ms.sort_by(f64::total_cmp);
    format!(
        "{{\"n\": {}, \"p50_ms\": {:.3}, \"p99_ms\": {:.3}, \"max_ms\": {:.3}}}",
        ms.len(),
        percentile(&ms, 0.5),
        percentile(&ms, 0.99),
        ms.last().copied().unwrap_or(f64::NAN)
    )
}

struct Sleepy;

impl Reranker for Sleepy {
    fn rerank(&self, _q: &RerankQuery<'_>, candidates: &[Hit]) -> cairndb::Result<Vec<f32>> {
        std::thread::sleep(Duration::from_secs(1));
        Ok(candidates.iter().map(|h| h.score).collect())
    }
}

fn rerank_stall(dir: &Path, secs: f64) -> Result<(), BoxError> {
    const DIM: usize = 64;
    let db = Database::open_with(dir, Options::default().durability(Durability::Sync))?;
    let col = db.create_collection("c", CollectionConfig::new(DIM, Metric::Cosine))?;
    for chunk in (0..20_000u64).collect::<Vec<_>>().chunks(5_000) {
        col.upsert(
            chunk
                .iter()
                .map(|&i| Record::new(i, random_vector(i, DIM)))
                .collect::<Vec<_>>(),
        )?;
    }
    let upserts = |from: u64| -> Result<Vec<f64>, BoxError> {
        let mut ms = Vec::new();
        let end = Instant::now() + Duration::from_secs_f64(secs);
        let mut id = from;
        while Instant::now() < end {
            let t = Instant::now();
            col.upsert(Record::new(id, random_vector(id, DIM)))?;
            ms.push(t.elapsed().as_secs_f64() * 1e3);
            id += 1;
        }
        Ok(ms)
    };
    let alone = upserts(1_000_000)?;
    let stop = Arc::new(AtomicBool::new(false));
    let searchers: Vec<_> = (0..4u64)
        .map(|t| {
            let (col, stop) = (col.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let req = SearchRequest::new(random_vector(t * 7919 + n, DIM))
                        .k(10)
                        .rerank(Arc::new(Sleepy), 20);
                    col.search(&req).expect("search");
                    n += 1;
                }
                n
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let during = upserts(2_000_000)?;
    stop.store(true, Ordering::Relaxed);
    let searches: u64 = searchers.into_iter().map(|s| s.join().unwrap()).sum();
    println!(
        "{{\"bench\": \"rerank-stall\", \"upsert_alone\": {}, \"upsert_during_rerank\": {}, \"searches\": {searches}}}",
        summary(alone),
        summary(during)
    );
    Ok(())
}

fn read_fvecs(path: &Path) -> Result<(usize, Vec<Vec<f32>>), BoxError> {
    let mut bytes = Vec::new();
    BufReader::new(File::open(path)?).read_to_end(&mut bytes)?;
    let mut rows = Vec::new();
    let mut at = 0;
    let mut dim = 0;
    while at + 4 <= bytes.len() {
        dim = u32::from_le_bytes(bytes[at..at + 4].try_into()?) as usize;
        let end = at + 4 + 4 * dim;
        if end > bytes.len() {
            return Err(format!("{}: truncated row at byte {at}", path.display()).into());
        }
        rows.push(
            bytes[at + 4..end]
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect(),
        );
        at = end;
    }
    Ok((dim, rows))
}

fn compaction(
    dir: &Path,
    base: &Path,
    queries: &Path,
    segments: usize,
    secs: f64,
) -> Result<(), BoxError> {
    let (dim, base) = read_fvecs(base)?;
    let (_, queries) = read_fvecs(queries)?;
    let options = Options::default()
        .durability(Durability::buffered())
        .background_compaction(false)
        .memtable_max_rows(base.len() / segments + 1);
    let db = Database::open_with(dir, options)?;
    let col = db.create_collection("g", CollectionConfig::new(dim, Metric::Cosine))?;
    let per = base.len().div_ceil(segments);
    for (s, seg) in base.chunks(per).enumerate() {
        for (b, batch) in seg.chunks(10_000).enumerate() {
            let first = (s * per + b * 10_000) as u64;
            col.upsert(
                batch
                    .iter()
                    .enumerate()
                    .map(|(i, v)| Record::new(first + i as u64, v.clone()))
                    .collect::<Vec<_>>(),
            )?;
        }
        col.flush()?;
    }
    col.warm_up()?;
    let search = |q: &Vec<f32>| {
        col.search(&SearchRequest::new(q.clone()).k(10))
            .map(|h| h.len())
    };
    let mut qi = 0usize;
    let mut timed = |until: &dyn Fn() -> bool| -> Result<Vec<f64>, BoxError> {
        let mut ms = Vec::new();
        while !until() {
            let t = Instant::now();
            search(&queries[qi % queries.len()])?;
            ms.push(t.elapsed().as_secs_f64() * 1e3);
            qi += 1;
        }
        Ok(ms)
    };
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let idle = timed(&|| Instant::now() >= end)?;
    let done = Arc::new(AtomicBool::new(false));
    let compactor = {
        let (col, done) = (col.clone(), Arc::clone(&done));
        std::thread::spawn(move || {
            let t = Instant::now();
            let r = col.compact();
            done.store(true, Ordering::Release);
            r.map(|_| t.elapsed().as_secs_f64())
        })
    };
    let during = timed(&|| done.load(Ordering::Acquire))?;
    let compaction_s = compactor.join().unwrap()?;
    let (mut a, mut b) = (idle.clone(), during.clone());
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    println!(
        "{{\"bench\": \"compaction\", \"rows\": {}, \"segments_before\": {segments}, \"compaction_s\": {compaction_s:.2}, \"idle\": {}, \"during\": {}, \"p99_ratio\": {:.2}, \"p50_ratio\": {:.2}}}",
        base.len(),
        summary(idle),
        summary(during),
        percentile(&b, 0.99) / percentile(&a, 0.99),
        percentile(&b, 0.5) / percentile(&a, 0.5),
    );
    Ok(())
}

fn ingest(dir: &Path, rows: usize, dim: usize, batch: usize) -> Result<(), BoxError> {
    let db = Database::open_with(dir, Options::default().durability(Durability::buffered()))?;
    let col = db.create_collection("i", CollectionConfig::new(dim, Metric::Cosine))?;
    // Vectors are drawn before the clock starts.
    let data: Vec<Vec<Record>> = (0..rows as u64)
        .collect::<Vec<_>>()
        .chunks(batch)
        .map(|c| {
            c.iter()
                .map(|&i| Record::new(i, random_vector(i, dim)))
                .collect()
        })
        .collect();
    let t = Instant::now();
    for b in data {
        col.upsert(b)?;
    }
    let upserts_s = t.elapsed().as_secs_f64();
    col.flush()?;
    let total_s = t.elapsed().as_secs_f64();
    println!(
        "{{\"bench\": \"ingest\", \"rows\": {rows}, \"dim\": {dim}, \"batch\": {batch}, \"upserts_s\": {upserts_s:.2}, \"total_s\": {total_s:.2}, \"rows_per_s\": {:.0}, \"segments\": {}}}",
        rows as f64 / total_s,
        col.stats().segments.len()
    );
    Ok(())
}
