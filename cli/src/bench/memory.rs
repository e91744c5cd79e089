//! The memory pass: what the database holds in memory and reads from the disk, measured in a
//! fresh process (`cairn bench-memory-pass`, started by `cairn bench` with the queries and
//! the ground truth in a temporary file), so that its resident sizes are the database's and
//! not the build's leftovers. The database's files are first dropped from the page cache
//! (`posix_fadvise(DONTNEED)`, after every handle was closed); it is opened again and the
//! queries run twice at the first `--ef`: a cold pass (every page a query touches comes from
//! the disk) and a warm pass. Each pass reports the bytes the process read from the disk per
//! query (`read_bytes` of `/proc/self/io`: block-layer reads, page faults on the maps
//! included), and after each the process's anonymous and file-backed resident sizes and the
//! database's resident bytes per part (`Database::memory`, from the page tables).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use cairndb::{Database, MemoryReport, Options};
use serde::{Deserialize, Serialize};

use crate::util::{CliResult, fail};

use super::COLLECTION;
use super::measure::{EfRow, measure_with};

/// One pass of the memory phase.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct MemoryPass {
    /// `cold` or `warm`.
    pub pass: String,
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
#[derive(Serialize, Deserialize, Clone, Debug)]
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

/// Arguments of the memory pass's process.
#[derive(clap::Args, Debug)]
pub struct MemoryPassArgs {
    /// The database directory (closed: no other handle open).
    pub db: PathBuf,
    /// JSON file: {"queries": [[f32]], "gt": [[u64]], "k": K, "ef": EF}.
    #[arg(long)]
    pub input: PathBuf,
    #[arg(long, value_parser = crate::util::parse_bytes)]
    pub memory_budget: Option<u64>,
    #[arg(long)]
    pub lock_memory: bool,
}

#[derive(Serialize, Deserialize)]
struct PassInput {
    queries: Vec<Vec<f32>>,
    gt: Vec<Vec<u64>>,
    k: usize,
    ef: usize,
}

/// Runs the memory pass on the closed database at `path` in a fresh process of this binary,
/// and returns what it measured.
pub(super) fn run(
    a: &crate::BenchArgs,
    path: &Path,
    queries: &[Vec<f32>],
    gt: &[Vec<u64>],
    ef: usize,
) -> CliResult<MemoryRun> {
    let input = tempfile::NamedTempFile::new()
        .map_err(|e| fail(format_args!("cannot create a temporary file: {e}")))?;
    let body = serde_json::to_vec(&PassInput {
        queries: queries.to_vec(),
        gt: gt.to_vec(),
        k: a.k,
        ef,
    })
    .map_err(|e| fail(format_args!("cannot write the memory pass's input: {e}")))?;
    fs::write(input.path(), body)
        .map_err(|e| fail(format_args!("cannot write the memory pass's input: {e}")))?;
    let exe = std::env::current_exe().map_err(|e| {
        fail(format_args!(
            "cannot find this program to run the memory pass: {e}"
        ))
    })?;
    let mut cmd = Command::new(exe);
    cmd.arg("bench-memory-pass")
        .arg(path)
        .arg("--input")
        .arg(input.path());
    if let Some(b) = a.memory_budget {
        cmd.arg("--memory-budget").arg(b.to_string());
    }
    if a.lock_memory {
        cmd.arg("--lock-memory");
    }
    let out = cmd
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| fail(format_args!("cannot run the memory pass: {e}")))?;
    if !out.status.success() {
        return Err(fail(format_args!(
            "the memory pass failed ({})",
            out.status
        )));
    }
    serde_json::from_slice(&out.stdout)
        .map_err(|e| fail(format_args!("cannot read the memory pass's figures: {e}")))
}

/// `cairn bench-memory-pass`: the pass itself, printing its figures as JSON.
pub fn memory_pass(a: &MemoryPassArgs) -> CliResult<()> {
    let text = fs::read(&a.input)
        .map_err(|e| fail(format_args!("cannot read {}: {e}", a.input.display())))?;
    let input: PassInput = serde_json::from_slice(&text).map_err(|e| {
        fail(format_args!(
            "{} is not a memory pass input: {e}",
            a.input.display()
        ))
    })?;
    let opts = Options::default()
        .background_compaction(false)
        .lock_memory(a.lock_memory);
    let opts = match a.memory_budget {
        Some(b) => opts.memory_budget(b),
        None => opts,
    };
    let run = measure_pass(&a.db, opts, &input.queries, &input.gt, input.k, input.ef)?;
    let json =
        serde_json::to_string(&run).map_err(|e| fail(format_args!("cannot write JSON: {e}")))?;
    println!("{json}");
    Ok(())
}

/// Evicts the database at `path` from the page cache, opens it, and runs the cold and the
/// warm pass.
fn measure_pass(
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
            pass: pass.to_owned(),
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
