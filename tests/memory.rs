//! The memory budget and the residency figures: `Database::memory` reports what each part of
//! the segments has in memory (from the page tables), a budget reads the codes and graphs in
//! and locks them when asked, a budget too small is a warning and never a failure, and the
//! segments that seals and compactions make later are treated as those opened.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};

use cairndb::{CollectionConfig, Database, Metric, Options, Record, SearchRequest};
use rand::{RngExt, SeedableRng};

const DIM: usize = 64;

static LINES: Mutex<Vec<(log::Level, String)>> = Mutex::new(Vec::new());
static INIT: Once = Once::new();

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, r: &log::Record<'_>) {
        LINES
            .lock()
            .unwrap()
            .push((r.level(), r.args().to_string()));
    }
    fn flush(&self) {}
}

fn capture_logs() {
    INIT.call_once(|| {
        log::set_logger(&Capture).unwrap();
        log::set_max_level(log::LevelFilter::Warn);
    });
}

/// Warnings logged so far that mention `needle` (tests run in parallel: each looks for its
/// own directory).
fn warnings_about(needle: &str) -> Vec<String> {
    LINES
        .lock()
        .unwrap()
        .iter()
        .filter(|(l, s)| *l == log::Level::Warn && s.contains(needle))
        .map(|(_, s)| s.clone())
        .collect()
}

fn rows(n: usize, seed: u64) -> Vec<Vec<f32>> {
    rows_of(n, DIM, seed)
}

fn rows_of(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| (0..dim).map(|_| rng.random_range(-1.0f32..1.0)).collect())
        .collect()
}

/// One collection of `data` in one segment (cosine: it has a codes file).
fn build(dir: &Path, data: &[Vec<f32>]) {
    let db = Database::open_with(dir, Options::default().background_compaction(false)).unwrap();
    let c = db
        .create_collection("m", CollectionConfig::new(data[0].len(), Metric::Cosine))
        .unwrap();
    for (i, chunk) in data.chunks(2000).enumerate() {
        c.upsert(
            chunk
                .iter()
                .enumerate()
                .map(|(j, v)| Record::new((i * 2000 + j) as u64, v.clone()))
                .collect::<Vec<_>>(),
        )
        .unwrap();
    }
    c.flush().unwrap();
    assert_eq!(c.stats().segments.len(), 1);
}

fn segment_file(dir: &Path, name: &str) -> PathBuf {
    let coll = dir.join("collections").join("m");
    let seg = std::fs::read_dir(&coll)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .unwrap();
    seg.join(name)
}

fn len(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().len()
}

/// The process's limit on locked memory, in bytes (`None`: unlimited or unknown).
fn memlock_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max locked memory"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[test]
fn resident_figures_follow_the_page_cache() {
    let dir = tempfile::tempdir().unwrap();
    let data = rows(20_000, 1);
    build(dir.path(), &data);
    let vectors = segment_file(dir.path(), "vectors");
    assert!(cairndb::evict_page_cache(dir.path()).unwrap() >= 5);

    let db = Database::open(dir.path()).unwrap();
    let cold = db.memory();
    // Opening reads the header and the checksum table of the vectors, not the rows (with
    // huge pages advised on this mapping, one fault read 2 MiB around it).
    assert!(
        cold.resident.vectors < len(&vectors) / 4,
        "{cold:?} of {} bytes",
        len(&vectors)
    );
    // An exact search reads every row.
    let c = db.collection("m").unwrap();
    let hits = c
        .search(&SearchRequest::new(data[7].clone()).k(1).exact(true))
        .unwrap();
    assert_eq!(hits[0].id, 7u64);
    let warm = db.memory();
    assert!(
        warm.resident.vectors >= len(&vectors) * 95 / 100,
        "{warm:?} of {} bytes",
        len(&vectors)
    );
    assert!(warm.resident.vectors <= len(&vectors));
    // No budget: nothing to fit.
    assert_eq!(warm.budget, None);
    assert!(warm.fits);
    let s = &c.stats().segments[0];
    assert_eq!(warm.pinned_bytes, s.codes_bytes + s.graph_bytes);
    assert_eq!(s.resident, warm.resident);
}

#[test]
fn a_budget_that_fits_reads_codes_and_graph_in_and_locks_them() {
    capture_logs();
    let dir = tempfile::tempdir().unwrap();
    // Files of several MiB: opening without a budget reads only the 2 MiB ranges around what
    // it checks (header, checksum table).
    let data = rows_of(100_000, 8, 2);
    build(dir.path(), &data);
    let (codes, graph) = (
        segment_file(dir.path(), "codes"),
        segment_file(dir.path(), "graph"),
    );
    cairndb::evict_page_cache(dir.path()).unwrap();
    {
        let db = Database::open(dir.path()).unwrap();
        let m = db.memory();
        assert!(m.resident.codes < len(&codes) * 3 / 4, "{m:?}");
    }
    cairndb::evict_page_cache(dir.path()).unwrap();

    let opts = Options::default().memory_budget(64 << 20).lock_memory(true);
    let db = Database::open_with(dir.path(), opts).unwrap();
    let m = db.memory();
    assert_eq!(m.budget, Some(64 << 20));
    assert_eq!(m.pinned_bytes, len(&codes) + len(&graph));
    assert!(m.fits);
    let shown = dir.path().display().to_string();
    let w = warnings_about(&shown);
    if w.iter().any(|l| l.contains("cannot lock")) {
        // Locking more than the process may (`RLIMIT_MEMLOCK` without `CAP_IPC_LOCK`): a
        // warning, and the database works unlocked.
        assert!(memlock_limit().is_some_and(|l| l < m.pinned_bytes), "{w:?}");
    } else {
        // Locked: every page of both files is in memory, at once.
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(m.resident.codes, len(&codes), "{m:?}");
        assert_eq!(m.resident.graph, len(&graph), "{m:?}");
    }
    // The vectors are left to the searches.
    let vectors = segment_file(dir.path(), "vectors");
    assert!(m.resident.vectors < len(&vectors) / 4, "{m:?}");
    let c = db.collection("m").unwrap();
    let hits = c
        .search(&SearchRequest::new(data[11].clone()).k(1).ef(64))
        .unwrap();
    assert_eq!(hits[0].id, 11u64);
}

#[test]
fn a_budget_too_small_is_a_warning_and_searches_are_unchanged() {
    capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let data = rows(3_000, 3);
    build(dir.path(), &data);
    let queries = rows(20, 4);
    let answers = |db: &Database| -> Vec<Vec<u64>> {
        let c = db.collection("m").unwrap();
        queries
            .iter()
            .map(|q| {
                c.search(&SearchRequest::new(q.clone()).k(10).ef(100))
                    .unwrap()
                    .iter()
                    .map(|h| h.id.as_u64().unwrap())
                    .collect()
            })
            .collect()
    };
    let plain = answers(&Database::open(dir.path()).unwrap());

    let opts = Options::default().memory_budget(1000).lock_memory(true);
    let db = Database::open_with(dir.path(), opts).unwrap();
    let shown = dir.path().display().to_string();
    let w = warnings_about(&shown);
    assert!(
        w.iter()
            .any(|l| l.contains("memory budget of 1000 bytes") && l.contains("not locked")),
        "{w:?}"
    );
    let m = db.memory();
    assert!(!m.fits);
    assert!(m.pinned_bytes > 1000);
    assert_eq!(answers(&db), plain);
}

#[test]
fn segments_made_after_open_are_kept_resident_too() {
    capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let opts = Options::default()
        .background_compaction(false)
        .memory_budget(64 << 20)
        .lock_memory(true);
    let db = Database::open_with(dir.path(), opts).unwrap();
    let c = db
        .create_collection("m", CollectionConfig::new(DIM, Metric::Cosine))
        .unwrap();
    let data = rows(4_000, 5);
    for (b, chunk) in data.chunks(2000).enumerate() {
        c.upsert(
            chunk
                .iter()
                .enumerate()
                .map(|(j, v)| Record::new((b * 2000 + j) as u64, v.clone()))
                .collect::<Vec<_>>(),
        )
        .unwrap();
        c.flush().unwrap();
    }
    assert_eq!(c.stats().segments.len(), 2);
    c.compact().unwrap();
    let stats = c.stats();
    assert_eq!(stats.segments.len(), 1);
    let s = &stats.segments[0];
    let m = db.memory();
    assert_eq!(m.pinned_bytes, s.codes_bytes + s.graph_bytes);
    if !warnings_about(&dir.path().display().to_string())
        .iter()
        .any(|l| l.contains("cannot lock"))
    {
        assert_eq!(s.resident.codes, s.codes_bytes, "{s:?}");
        assert_eq!(s.resident.graph, s.graph_bytes, "{s:?}");
    }
    let hits = c
        .search(&SearchRequest::new(data[3_001].clone()).k(1).ef(64))
        .unwrap();
    assert_eq!(hits[0].id, 3_001u64);
}
