//! Read-only handles in other processes (issue 14's benchmarks).
//!
//! ```sh
//! cargo run --release --example readers -- latency --base base.fvecs --queries query.fvecs
//! cargo run --release --example readers -- delay --readers 3 --batches 2000
//! ```
//!
//! * `latency`: loads `--base` (e.g. GloVe 390k × 50) into one sealed segment, then times the
//!   same single-threaded searches (k 10, ef `--ef`) in this process (the writer's handle) and
//!   in a child process holding a read-only handle, in interleaved passes of `--queries-per-pass`
//!   queries (`--passes` each). Prints p50/p99 per side over all passes and the ratio.
//! * `delay`: a writer (this process, `Durability::Sync`) upserts `--batches` batches of
//!   `--batch` random 64-d rows, one every `--every-ms`, each with a marker record whose id is
//!   the batch number; `--readers` child processes search continuously (k 10) and after each
//!   search look up the next marker. For every batch: the time from the writer's
//!   acknowledgement (its `upsert` returned) to the end of the first reader call that returned
//!   it. Prints p50/p99/max over batches and readers. Clock: `SystemTime` (one machine).
//!
//! Prints one JSON object on stdout.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cairndb::{CollectionConfig, Database, Durability, Metric, Options, Record, SearchRequest};
use clap::{Parser, Subcommand};

type BoxError = Box<dyn std::error::Error>;

#[derive(Parser)]
#[command(about = "Read-only handles in other processes: latency and staleness")]
struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand)]
enum What {
    /// Search latency of a read-only handle in another process against the writer's own.
    Latency {
        #[arg(long)]
        base: PathBuf,
        #[arg(long)]
        queries: PathBuf,
        #[arg(long, default_value_t = 64)]
        ef: usize,
        #[arg(long, default_value_t = 2000)]
        queries_per_pass: usize,
        #[arg(long, default_value_t = 5)]
        passes: usize,
    },
    /// Delay from a writer's acknowledgement to the first reader call that sees the batch.
    Delay {
        #[arg(long, default_value_t = 3)]
        readers: usize,
        #[arg(long, default_value_t = 2000)]
        batches: u64,
        #[arg(long, default_value_t = 10)]
        batch: u64,
        #[arg(long, default_value_t = 2.0)]
        every_ms: f64,
    },
    /// What a read-only handle's catch-ups cost: a tail of `--rows` unsealed rows, a reload
    /// after a seal, and a reload that replays `--rows` unsealed rows (all in this process:
    /// the handle learns everything from the files either way).
    Reload {
        #[arg(long, default_value_t = 100_000)]
        rows: u64,
        #[arg(long, default_value_t = 128)]
        dim: usize,
    },
    /// (internal) A reader process of `latency`: runs a pass per line read on stdin.
    LatencyReader {
        dir: PathBuf,
        queries: PathBuf,
        ef: usize,
        n: usize,
    },
    /// (internal) A reader process of `delay`.
    DelayReader { dir: PathBuf, batches: u64 },
}

const DIM: usize = 64;
const MARKER_BASE: u64 = 1 << 40;

fn main() -> Result<(), BoxError> {
    match Args::parse().what {
        What::Latency {
            base,
            queries,
            ef,
            queries_per_pass,
            passes,
        } => latency(&base, &queries, ef, queries_per_pass, passes),
        What::Delay {
            readers,
            batches,
            batch,
            every_ms,
        } => delay(readers, batches, batch, every_ms),
        What::Reload { rows, dim } => reload(rows, dim),
        What::LatencyReader {
            dir,
            queries,
            ef,
            n,
        } => latency_reader(&dir, &queries, ef, n),
        What::DelayReader { dir, batches } => delay_reader(&dir, batches),
    }
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn stats(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (
        percentile(&v, 0.5),
        percentile(&v, 0.99),
        v.last().copied().unwrap_or(f64::NAN),
    )
}

fn read_fvecs(path: &Path) -> Result<Vec<Vec<f32>>, BoxError> {
    let bytes = std::fs::read(path)?;
    let mut rows = Vec::new();
    let mut at = 0;
    while at + 4 <= bytes.len() {
        let dim = u32::from_le_bytes(bytes[at..at + 4].try_into()?) as usize;
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
    Ok(rows)
}

fn child(args: &[String]) -> Result<Child, BoxError> {
    Ok(Command::new(std::env::current_exe()?)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?)
}

/// Searches `queries[..n]` one at a time and returns each latency in µs.
fn pass(c: &cairndb::Collection, queries: &[Vec<f32>], ef: usize) -> Result<Vec<f64>, BoxError> {
    let mut out = Vec::with_capacity(queries.len());
    for q in queries {
        let t = Instant::now();
        let hits = c.search(&SearchRequest::new(q.clone()).k(10).ef(ef))?;
        out.push(t.elapsed().as_secs_f64() * 1e6);
        std::hint::black_box(hits);
    }
    Ok(out)
}

fn latency(
    base: &Path,
    queries: &Path,
    ef: usize,
    per_pass: usize,
    passes: usize,
) -> Result<(), BoxError> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("db");
    let rows = read_fvecs(base)?;
    let qs: Vec<Vec<f32>> = read_fvecs(queries)?.into_iter().take(per_pass).collect();
    let dim = rows.first().map_or(0, Vec::len);
    let opts = Options::default()
        .durability(Durability::buffered())
        .memtable_max_rows(rows.len() + 1);
    let db = Database::open_with(&dir, opts)?;
    let c = db.create_collection("v", CollectionConfig::new(dim, Metric::Cosine))?;
    for (b, chunk) in rows.chunks(10_000).enumerate() {
        let recs: Vec<Record> = chunk
            .iter()
            .enumerate()
            .map(|(i, v)| Record::new((b * 10_000 + i) as u64, v.clone()))
            .collect();
        c.upsert(recs)?;
    }
    c.flush()?;
    c.warm_up()?;
    let mut reader = child(&[
        "latency-reader".into(),
        dir.display().to_string(),
        queries.display().to_string(),
        ef.to_string(),
        qs.len().to_string(),
    ])?;
    let mut to = reader.stdin.take().ok_or("no stdin")?;
    let mut from = BufReader::new(reader.stdout.take().ok_or("no stdout")?);
    let mut line = String::new();
    from.read_line(&mut line)?; // ready (opened, warmed up)
    let (mut local, mut remote) = (Vec::new(), Vec::new());
    // A warm-up pass each, not counted.
    pass(&c, &qs, ef)?;
    writeln!(to, "pass")?;
    line.clear();
    from.read_line(&mut line)?;
    for _ in 0..passes {
        local.extend(pass(&c, &qs, ef)?);
        writeln!(to, "pass")?;
        line.clear();
        from.read_line(&mut line)?;
        remote.extend(
            line.split_whitespace()
                .map(str::parse::<f64>)
                .collect::<Result<Vec<_>, _>>()?,
        );
    }
    drop(to);
    reader.wait()?;
    let (lp50, lp99, _) = stats(local);
    let (rp50, rp99, _) = stats(remote);
    println!(
        "{{\"rows\": {}, \"dim\": {dim}, \"ef\": {ef}, \"queries\": {}, \"passes\": {passes}, \
         \"in_process_us\": {{\"p50\": {lp50:.1}, \"p99\": {lp99:.1}}}, \
         \"read_only_process_us\": {{\"p50\": {rp50:.1}, \"p99\": {rp99:.1}}}, \
         \"ratio_p50\": {:.3}, \"ratio_p99\": {:.3}}}",
        rows.len(),
        qs.len(),
        rp50 / lp50,
        rp99 / lp99
    );
    Ok(())
}

fn latency_reader(dir: &Path, queries: &Path, ef: usize, n: usize) -> Result<(), BoxError> {
    let qs: Vec<Vec<f32>> = read_fvecs(queries)?.into_iter().take(n).collect();
    let db = Database::open_read_only(dir)?;
    let c = db.collection("v")?;
    c.warm_up()?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready")?;
    out.flush()?;
    for line in std::io::stdin().lock().lines() {
        line?;
        let times = pass(&c, &qs, ef)?;
        let text: Vec<String> = times.iter().map(|t| format!("{t:.2}")).collect();
        writeln!(out, "{}", text.join(" "))?;
        out.flush()?;
    }
    Ok(())
}

fn vector(seed: u64) -> Vec<f32> {
    let mut z = seed;
    (0..DIM)
        .map(|_| {
            z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut x = z;
            x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((x ^ (x >> 31)) >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

fn delay(readers: usize, batches: u64, batch: u64, every_ms: f64) -> Result<(), BoxError> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("db");
    let db = Database::open_with(&dir, Options::default().durability(Durability::Sync))?;
    let c = db.create_collection("v", CollectionConfig::new(DIM, Metric::Cosine))?;
    // Some data to search: 20,000 rows, sealed.
    for b in 0..20u64 {
        c.upsert(
            (0..1000)
                .map(|i| Record::new(b * 1000 + i, vector(b * 1000 + i)))
                .collect::<Vec<_>>(),
        )?;
    }
    c.flush()?;
    let mut kids = Vec::new();
    for _ in 0..readers {
        let mut k = child(&[
            "delay-reader".into(),
            dir.display().to_string(),
            batches.to_string(),
        ])?;
        let mut from = BufReader::new(k.stdout.take().ok_or("no stdout")?);
        let mut line = String::new();
        from.read_line(&mut line)?; // ready
        kids.push((k, from));
    }
    let mut acked = Vec::with_capacity(batches as usize);
    let mut next_id = 1_000_000u64;
    let started = Instant::now();
    for b in 0..batches {
        let due = started + Duration::from_secs_f64(b as f64 * every_ms / 1e3);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let mut recs: Vec<Record> = (0..batch)
            .map(|i| Record::new(next_id + i, vector(next_id + i)))
            .collect();
        next_id += batch;
        recs.push(Record::new(MARKER_BASE + b, vector(MARKER_BASE + b)));
        c.upsert(recs)?;
        acked.push(now_us());
    }
    let mut delays = Vec::new();
    for (mut k, from) in kids {
        for line in from.lines() {
            let line = line?;
            let mut it = line.split_whitespace();
            let (Some(b), Some(t)) = (it.next(), it.next()) else {
                continue;
            };
            let (b, t): (usize, u64) = (b.parse()?, t.parse()?);
            delays.push(t.saturating_sub(acked[b]) as f64 / 1e3);
        }
        k.wait()?;
    }
    let n = delays.len();
    let (p50, p99, max) = stats(delays);
    println!(
        "{{\"readers\": {readers}, \"batches\": {batches}, \"rows_per_batch\": {}, \
         \"every_ms\": {every_ms}, \"observations\": {n}, \
         \"ack_to_visible_ms\": {{\"p50\": {p50:.3}, \"p99\": {p99:.3}, \"max\": {max:.3}}}, \
         \"writer_wall_s\": {:.2}}}",
        batch + 1,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn delay_reader(dir: &Path, batches: u64) -> Result<(), BoxError> {
    let db = Database::open_read_only(dir)?;
    let c = db.collection("v")?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready")?;
    out.flush()?;
    let mut next = 0u64;
    let mut q = 0u64;
    let deadline = Instant::now() + Duration::from_secs(600);
    while next < batches && Instant::now() < deadline {
        q += 1;
        std::hint::black_box(c.search(&SearchRequest::new(vector(q)).k(10))?);
        // Every marker that this call shows, with the time the call returned.
        while next < batches && c.get(MARKER_BASE + next)?.is_some() {
            writeln!(out, "{next} {}", now_us())?;
            next += 1;
        }
    }
    out.flush()?;
    Ok(())
}

fn reload(rows: u64, dim: usize) -> Result<(), BoxError> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("db");
    let opts = Options::default()
        .durability(Durability::buffered())
        .memtable_max_rows(rows as usize * 3);
    let db = Database::open_with(&dir, opts)?;
    let c = db.create_collection("v", CollectionConfig::new(dim, Metric::Cosine))?;
    let r = Database::open_read_only(&dir)?;
    let rc = r.collection("v")?;
    let ingest = |from: u64| -> Result<(), BoxError> {
        for b in (from..from + rows).step_by(1000) {
            let recs: Vec<Record> = (b..b + 1000)
                .map(|i| {
                    let mut v = vector(i);
                    v.resize(dim, 0.25);
                    Record::new(i, v)
                })
                .collect();
            c.upsert(recs)?;
        }
        db.sync()?;
        Ok(())
    };
    let timed = |what: &str, expect: u64| -> Result<String, BoxError> {
        let t = Instant::now();
        let n = rc.len() as u64;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        if n != expect {
            return Err(format!("{what}: reader has {n} records, expected {expect}").into());
        }
        let q = vector(7).into_iter().cycle().take(dim).collect::<Vec<_>>();
        let t = Instant::now();
        rc.search(&SearchRequest::new(q).k(10))?;
        let first = t.elapsed().as_secs_f64() * 1e3;
        Ok(format!(
            "\"{what}\": {{\"catch_up_ms\": {ms:.1}, \"first_search_ms\": {first:.2}}}"
        ))
    };
    ingest(0)?;
    let tail = timed("tail_of_unsealed_rows", rows)?;
    c.flush()?;
    let sealed = timed("reload_after_seal", rows)?;
    ingest(rows)?;
    let tail2 = timed("tail_again", 2 * rows)?;
    // A manifest change with the rows still unsealed: the reload replays them.
    db.create_collection("other", CollectionConfig::new(4, Metric::L2))?;
    let replay = timed("reload_replaying_unsealed_rows", 2 * rows)?;
    println!("{{\"rows\": {rows}, \"dim\": {dim}, {tail}, {sealed}, {tail2}, {replay}}}");
    Ok(())
}
