//! The memory phase: what the database holds in memory and reads from the disk. After the
//! measured passes the database is closed and its files are dropped from the page cache
//! (`posix_fadvise(DONTNEED)`); it is opened again and the queries run twice at the first
//! `--ef`: a cold pass (every page a query touches comes from the disk) and a warm pass. Each
//! pass reports the bytes this process read from the disk per query (`read_bytes` of
//! `/proc/self/io`: block-layer reads, page faults on the maps included), and after each the
//! process's anonymous and file-backed resident sizes and the database's resident bytes per
//! part (`Database::memory`, from the page tables).

use std::fs;
use std::path::Path;
use std::time::Instant;

use cairndb::{Database, MemoryReport, Options};
use serde::Serialize;

use crate::util::{CliResult, fail};

use super::COLLECTION;
use super::measure::{EfRow, measure_with};

/// One pass of the memory phase.
#[derive(Serialize, Clone, Debug)]
pub struct MemoryPass {
    /// `cold` or `warm`.
    pub pass: &'static str,
    pub row: EfRow,
    /// Bytes read from the disk per query during the pass (none where `/proc/self/io` is
    /// missing).
    pub read_bytes_per_query: Option<f64>,
    /// Anonymous (heap) and file-backed resident bytes of the process after the pass.
    pub rss_anon_bytes: Option<u64>,
    pub rss_file_bytes: Option<u64>,
    /// The database's figures after the pass.
    pub memory: MemoryReport,
}

/// The memory phase's figures.
#[derive(Serialize, Clone, Debug)]
pub struct MemoryRun {
    /// Files dropped from the page cache before the cold open.
    pub evicted_files: usize,
    /// Opening the evicted database: wall time and bytes read from the disk.
    pub open_ms: f64,
    pub open_read_bytes: Option<u64>,
    pub passes: Vec<MemoryPass>,
}

/// Bytes this process has read from the storage layer so far.
fn read_bytes() -> Option<u64> {
    let io = fs::read_to_string("/proc/self/io").ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("read_bytes:"))?
        .trim()
        .parse()
        .ok()
}

/// A `kB` field of `/proc/self/status`, in bytes.
fn status_bytes(field: &str) -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix(field))?;
    let kb: u64 = line
        .trim_start_matches(':')
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Runs the memory phase on the closed database at `path` (no handle may be open: mapped
/// pages are not evicted).
pub(super) fn run(
    path: &Path,
    opts: Options,
    queries: &[Vec<f32>],
    gt: &[Vec<u64>],
    k: usize,
    ef: usize,
) -> CliResult<MemoryRun> {
    let evicted_files = cairndb::evict_page_cache(path).map_err(|e| {
        fail(format_args!(
            "evicting {} from the page cache: {e}",
            path.display()
        ))
    })?;
    let before = read_bytes();
    let started = Instant::now();
    let db = Database::open_with(path, opts)?;
    let coll = db.collection(COLLECTION)?;
    let open_ms = started.elapsed().as_secs_f64() * 1e3;
    let open_read_bytes = read_bytes().zip(before).map(|(a, b)| a.saturating_sub(b));
    let mut passes = Vec::with_capacity(2);
    for pass in ["cold", "warm"] {
        let before = read_bytes();
        let row = measure_with(
            &coll,
            queries,
            gt,
            ef,
            &format!("{pass} pass, ef {ef}"),
            |q| cairndb::SearchRequest::new(q.to_vec()).k(k).ef(ef),
        )?;
        let read = read_bytes().zip(before).map(|(a, b)| a.saturating_sub(b));
        passes.push(MemoryPass {
            pass,
            row,
            read_bytes_per_query: read.map(|r| r as f64 / queries.len().max(1) as f64),
            rss_anon_bytes: status_bytes("RssAnon"),
            rss_file_bytes: status_bytes("RssFile"),
            memory: db.memory(),
        });
    }
    Ok(MemoryRun {
        evicted_files,
        open_ms,
        open_read_bytes,
        passes,
    })
}
