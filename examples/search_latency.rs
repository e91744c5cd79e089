//! Per-query latency of `Collection::search` called from Rust, on an existing database: the
//! Rust half of the Python-binding overhead benchmark (`python/bench/bench_overhead.py` runs
//! this binary and `col.search` from Python on the same database and queries, interleaved).
//!
//! ```sh
//! cargo run --release --example search_latency -- --db DIR --collection NAME \
//!     --queries query.fvecs --n-query 2000 --k 10 --ef 64 --include both
//! ```
//!
//! Opens the database with the default options (as `cairndb.open(path)` does), reads the first
//! `--n-query` rows of an `.fvecs` file, and for each `--include` mode (`on`: text and payload
//! returned, `off`: neither, `both`: on then off) runs, on this thread:
//! 1. `--warmup` untimed passes over the queries;
//! 2. `--passes` timed passes (each over the queries `--cycles` times) without a timer per call: mean µs/query = pass time / queries,
//!    by the wall clock and by the process's CPU time (`CLOCK_PROCESS_CPUTIME_ID`, which
//!    leaves out the time the process waited for a CPU on a busy machine); the median pass is
//!    reported;
//! 3. one pass with an `Instant` around every call: p50 and p99 µs.
//!
//! Every call builds its request as a caller would, from a fresh copy of the query
//! (`SearchRequest::new(q.to_vec()).k(k).ef(ef).with_text(..).with_payload(..)`), the same
//! work the binding does when it copies a numpy row. Prints one JSON object per mode on
//! stdout, with a checksum (sum of all hit ids of one pass) so the caller can check that both
//! sides returned the same results.

use std::fs::File;
use std::hint::black_box;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::Instant;

use cairndb::{Collection, Database, Options, SearchRequest};
use clap::Parser;

type BoxError = Box<dyn std::error::Error>;

#[derive(Parser)]
#[command(about = "Per-query latency of Collection::search from Rust")]
struct Args {
    /// Database directory (must exist).
    #[arg(long)]
    db: PathBuf,
    /// Collection to search.
    #[arg(long)]
    collection: String,
    /// Query vectors, `.fvecs` (int32 dim + dim float32 per row).
    #[arg(long)]
    queries: PathBuf,
    /// Use the first N queries (0 = all).
    #[arg(long, default_value_t = 0)]
    n_query: usize,
    /// Hits per query.
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// HNSW candidate list size.
    #[arg(long, default_value_t = 64)]
    ef: usize,
    /// Return text and payload: on, off or both (on, then off).
    #[arg(long, default_value = "both")]
    include: String,
    /// Untimed passes over the queries before timing.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Timed passes (no per-call timer); the median is reported.
    #[arg(long, default_value_t = 3)]
    passes: usize,
    /// Each timed pass goes over the queries this many times (lengthens short passes).
    #[arg(long, default_value_t = 1)]
    cycles: usize,
}

/// Reads the first `limit` rows (0 = all) of an `.fvecs` file.
fn read_fvecs(path: &Path, limit: usize) -> Result<Vec<Vec<f32>>, BoxError> {
    let mut r = BufReader::new(File::open(path)?);
    let mut rows = Vec::new();
    let mut head = [0u8; 4];
    while limit == 0 || rows.len() < limit {
        match r.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e.into()),
        }
        let dim = i32::from_le_bytes(head);
        let dim = usize::try_from(dim).map_err(|_| format!("row {}: dim {dim}", rows.len()))?;
        let mut buf = vec![0u8; dim * 4];
        r.read_exact(&mut buf)?;
        rows.push(
            buf.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        );
    }
    Ok(rows)
}

fn request(q: &[f32], args: &Args, include: bool) -> SearchRequest {
    SearchRequest::new(q.to_vec())
        .k(args.k)
        .ef(args.ef)
        .with_text(include)
        .with_payload(include)
}

/// One pass over the queries; returns the sum of the hit ids.
fn pass(col: &Collection, qs: &[Vec<f32>], args: &Args, include: bool) -> Result<u64, BoxError> {
    let mut sum = 0u64;
    for q in qs {
        let hits = col.search(&request(q, args, include))?;
        sum = sum.wrapping_add(hits.iter().map(|h| h.id.as_u64().unwrap()).sum::<u64>());
        black_box(hits);
    }
    Ok(sum)
}

/// CPU time used so far by this process (all threads), in seconds.
fn process_cpu_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant the libc knows.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID) failed");
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i]
}

fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    let qs = read_fvecs(&args.queries, args.n_query)?;
    if qs.is_empty() {
        return Err("no queries".into());
    }
    let db = Database::open_with(&args.db, Options::default().create_if_missing(false))?;
    let col = db.collection(&args.collection)?;
    let modes: Vec<bool> = match args.include.as_str() {
        "on" => vec![true],
        "off" => vec![false],
        "both" => vec![true, false],
        other => return Err(format!("--include {other:?}: use on, off or both").into()),
    };
    for include in modes {
        for _ in 0..args.warmup {
            pass(&col, &qs, &args, include)?;
        }
        let mut means = Vec::with_capacity(args.passes);
        let mut cpu_means = Vec::with_capacity(args.passes);
        let mut checksum = 0;
        for _ in 0..args.passes.max(1) {
            let c = process_cpu_s();
            let t = Instant::now();
            for _ in 0..args.cycles.max(1) {
                checksum = pass(&col, &qs, &args, include)?;
            }
            let calls = (qs.len() * args.cycles.max(1)) as f64;
            means.push(t.elapsed().as_secs_f64() * 1e6 / calls);
            cpu_means.push((process_cpu_s() - c) * 1e6 / calls);
        }
        let mut lat = Vec::with_capacity(qs.len());
        for q in &qs {
            let t = Instant::now();
            // Dropped inside the timed region, as the Python side drops its result list there.
            drop(black_box(col.search(&request(q, &args, include))?));
            lat.push(t.elapsed().as_secs_f64() * 1e6);
        }
        lat.sort_by(|a, b| a.total_cmp(b));
        println!(
            "{}",
            serde_json::json!({
                "side": "rust",
                "collection": args.collection,
                "include": include,
                "n_query": qs.len(),
                "k": args.k,
                "ef": args.ef,
                "passes_mean_us": means.clone(),
                "mean_us": median(&mut means),
                "passes_cpu_us": cpu_means.clone(),
                "cpu_us": median(&mut cpu_means),
                "p50_us": quantile(&lat, 0.5),
                "p99_us": quantile(&lat, 0.99),
                "checksum": checksum,
            })
        );
    }
    Ok(())
}
