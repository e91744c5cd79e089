//! Opening a database whose collection holds one sealed segment of ~1.07 GB of vectors
//! (700,000 × 384 f32): `Database::open` + `collection(…)` + one `get(id)` (which reads and
//! checks one 64 KiB vector block and one document). Opening maps the segment; it must not
//! read it.
//!
//! The database is built once before the measurements (not timed). Then, once, the OS page
//! cache is dropped (`sync; echo 3 > /proc/sys/vm/drop_caches`, needs root) and a cold open is
//! timed and printed with the bytes it read from disk; five more cold opens follow, each after
//! evicting only the database's files from the page cache. Criterion then measures warm opens
//! (`open`: `Database::open` alone; `open_get`: open + `collection` + `get` of one fixed id).
//!
//! Run: `cargo bench --bench open`

mod common;

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use cairndb::{CollectionConfig, Database, Durability, Metric, Options};
use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use rand::RngExt;

const DIM: usize = 384;
const LOAD_BATCH: usize = 10_000;

fn build(path: &Path, rows: usize) {
    let t = Instant::now();
    let opts = Options::default()
        .durability(Durability::buffered())
        .memtable_max_rows(rows + 1)
        .memtable_max_bytes(usize::MAX / 2);
    let db = Database::open_with(path, opts).unwrap();
    let col = db
        .create_collection("bench", CollectionConfig::new(DIM, Metric::Cosine))
        .unwrap();
    let mut rng = common::rng(3);
    let mut next = 0usize;
    while next < rows {
        let m = LOAD_BATCH.min(rows - next);
        col.upsert(common::random_records(&mut rng, next as u64, m, DIM))
            .unwrap();
        next += m;
    }
    let loaded = t.elapsed();
    col.flush().unwrap();
    let stats = col.stats();
    assert_eq!(stats.segments.len(), 1, "expected exactly one segment");
    eprintln!(
        "built {rows} rows x {DIM}: one segment of {:.3} GB on disk (vectors {:.3} GB); \
         load {loaded:.2?}, total with flush {:.2?}",
        stats.segments[0].bytes as f64 / 1e9,
        (rows * DIM * 4) as f64 / 1e9,
        t.elapsed()
    );
}

fn drop_page_cache() -> Result<(), String> {
    let status = std::process::Command::new("sync")
        .status()
        .map_err(|e| format!("sync: {e}"))?;
    if !status.success() {
        return Err(format!("sync exited with {status}"));
    }
    std::fs::write("/proc/sys/vm/drop_caches", "3")
        .map_err(|e| format!("writing /proc/sys/vm/drop_caches: {e}"))
}

/// Bytes this process has caused to be fetched from storage (`read_bytes` of
/// `/proc/self/io`), if available.
fn read_bytes() -> Option<u64> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("read_bytes: "))
        .and_then(|v| v.trim().parse().ok())
}

fn mb(a: Option<u64>, b: Option<u64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) => format!("{:.1} MB read from disk", (b - a) as f64 / 1e6),
        _ => "disk reads unknown".into(),
    }
}

/// Evicts every file under `dir` from the page cache (`posix_fadvise(DONTNEED)` through
/// `dd iflag=nocache count=0`). Unlike `drop_caches` this touches only our files, so it can be
/// repeated. The files must be clean (they were synced when the database was closed).
fn evict_files(dir: &Path) -> Result<(), String> {
    for entry in std::fs::read_dir(dir).map_err(|e| e.to_string())? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.is_dir() {
            evict_files(&path)?;
            continue;
        }
        let status = std::process::Command::new("dd")
            .arg(format!("if={}", path.display()))
            .args(["iflag=nocache", "count=0", "status=none"])
            .status()
            .map_err(|e| format!("dd: {e}"))?;
        if !status.success() {
            return Err(format!("dd exited with {status}"));
        }
    }
    Ok(())
}

/// Opens, takes the collection and reads one record, printing the phase times. Returns the
/// total time.
fn open_get_report(label: &str, path: &Path, id: u64) -> Duration {
    let r0 = read_bytes();
    let t0 = Instant::now();
    let db = Database::open(path).unwrap();
    let t1 = Instant::now();
    let r1 = read_bytes();
    let col = db.collection("bench").unwrap();
    let t2 = Instant::now();
    let rec = col.get(id).unwrap();
    let t3 = Instant::now();
    let r2 = read_bytes();
    assert!(black_box(rec).is_some());
    eprintln!(
        "{label}: open {:.2?} ({}), collection {:.2?}, get {:.2?} ({}), total {:.2?}",
        t1 - t0,
        mb(r0, r1),
        t2 - t1,
        t3 - t2,
        mb(r1, r2),
        t3 - t0
    );
    t3 - t0
}

fn open(c: &mut Criterion) {
    let full = common::full_run();
    let rows = if full { 700_000 } else { 5_000 };
    let dir = common::scratch_dir();
    let path = dir.path().join("db");
    build(&path, rows);
    let mut rng = common::rng(4);

    if full {
        match drop_page_cache() {
            Ok(()) => {
                open_get_report(
                    "cold (drop_caches)",
                    &path,
                    rng.random_range(0..rows as u64),
                );
            }
            Err(e) => eprintln!("cold open not measured: dropping the page cache failed: {e}"),
        }
        open_get_report(
            "second open (warm)",
            &path,
            rng.random_range(0..rows as u64),
        );
        let mut cold = Vec::new();
        for i in 0..5 {
            if let Err(e) = evict_files(&path) {
                eprintln!("evicting the database files failed: {e}");
                break;
            }
            cold.push(open_get_report(
                &format!("cold (files evicted) #{}", i + 1),
                &path,
                rng.random_range(0..rows as u64),
            ));
        }
        if !cold.is_empty() {
            cold.sort();
            eprintln!(
                "cold (files evicted): median of {} = {:.2?}",
                cold.len(),
                cold[cold.len() / 2]
            );
        }
    }

    let mut g = c.benchmark_group("open");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    g.bench_function(format!("open/{rows}x{DIM}"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t = Instant::now();
                let db = Database::open(&path).unwrap();
                total += t.elapsed();
                // Closing (unmapping) is not timed.
                drop(black_box(db));
            }
            total
        })
    });
    // One fixed id: its block stays in the page cache, so this is the warm case. (A random id
    // after the cache drop would mostly measure a disk read; see the cold figures above.)
    let id = rng.random_range(0..rows as u64);
    g.bench_function(format!("open_get/{rows}x{DIM}"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t = Instant::now();
                let db = Database::open(&path).unwrap();
                let col = db.collection("bench").unwrap();
                let rec = col.get(id).unwrap();
                total += t.elapsed();
                assert!(black_box(rec).is_some());
                drop(col);
                drop(db);
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, open);
criterion_main!(benches);
