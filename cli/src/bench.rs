//! `cairn bench`: builds an HNSW index over a base set through the database's real write path
//! (log, memtable graph, seal into a segment), then measures its size, the process's memory,
//! the time to reopen it, and for each ef the recall@k and single-thread latency of the
//! queries.
//!
//! The memtable limits are raised so the whole base set is indexed in one memtable and sealed
//! into one segment by the final `flush`: the figures are those of one graph over every row.

use std::fs;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cairndb::{
    Collection, CollectionConfig, Database, Durability, Filter, Metric, Options, PlanKind, Record,
    SearchRequest,
};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use serde::Serialize;

use crate::input::{VectorFile, read_ivecs, read_vectors};
use crate::plot::{self, Point};
use crate::util::{CliError, CliResult, Table, fail, thousands};
use crate::{BenchArgs, DurabilityArg};

/// The collection the benchmark builds.
const COLLECTION: &str = "bench";
/// Queries run (and not measured) before the measured passes.
const WARMUP: usize = 200;
/// The largest k and ef a search request takes.
const MAX_K: usize = 100_000;
const MIB: f64 = 1024.0 * 1024.0;

/// The measurements of one ef.
#[derive(Serialize, Clone, Debug)]
pub struct EfRow {
    pub ef: usize,
    /// Mean over the queries of |returned ∩ true top k| / k.
    pub recall: f64,
    /// Queries per second on one thread: queries / total search time.
    pub qps: f64,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    /// Mean time the searching thread was on a CPU per query, in µs (Linux schedstat).
    pub cpu_us: Option<f64>,
    /// Share of the pass the searching thread was ready to run but waited for a CPU, in %.
    pub wait_pct: Option<f64>,
}

/// Everything `cairn bench --json` prints.
#[derive(Serialize, Debug)]
struct Report {
    base: String,
    queries_file: String,
    gt_file: Option<String>,
    /// `file` (from --gt) or `exact` (computed with the database's exact search).
    ground_truth: &'static str,
    n: usize,
    dim: usize,
    metric: String,
    k: usize,
    m: usize,
    ef_construction: usize,
    threads: usize,
    batch: usize,
    durability: &'static str,
    /// Queries measured per ef.
    queries: usize,
    warmup_queries: usize,
    /// Segments after the flush (1: the whole base set in one graph).
    segments: usize,
    read_s: f64,
    ingest_s: f64,
    flush_s: f64,
    build_s: f64,
    rows_per_s: f64,
    index_bytes: u64,
    graph_bytes: u64,
    raw_vector_bytes: u64,
    index_to_raw: f64,
    graph_to_raw: f64,
    /// CPU time of every thread during the build, and time they waited for a CPU.
    build_cpu_s: Option<f64>,
    build_wait_s: Option<f64>,
    peak_rss_bytes: Option<u64>,
    peak_rss_after_build_bytes: Option<u64>,
    cores: usize,
    /// One-minute load average at the start and at the end of the run.
    loadavg_start: Option<f64>,
    loadavg_end: Option<f64>,
    reopen_ms: f64,
    first_query_ms: f64,
    reopen_first_query_ms: f64,
    gt_s: Option<f64>,
    results: Vec<EfRow>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    filtered: Vec<FilteredRun>,
    #[serde(skip_serializing_if = "Option::is_none")]
    churn: Option<ChurnRun>,
}

/// Churn mode: the index after rounds of deletes and re-inserts, and after compaction.
#[derive(Serialize, Clone, Debug)]
struct ChurnRun {
    rounds: usize,
    /// Records deleted and upserted again per round.
    per_round: usize,
    churn_s: f64,
    churned: ChurnState,
    compact_s: f64,
    compacted: ChurnState,
}

#[derive(Serialize, Clone, Debug)]
struct ChurnState {
    segments: usize,
    index_bytes: u64,
    deleted_rows: usize,
    results: Vec<EfRow>,
}

fn churn_state(
    coll: &Collection,
    queries: &[Vec<f32>],
    gt: &[Vec<u64>],
    k: usize,
    efs: &[usize],
) -> CliResult<ChurnState> {
    let stats = coll.stats();
    let mut results = Vec::with_capacity(efs.len());
    for &ef in efs {
        results.push(measure(coll, queries, gt, k, ef)?);
    }
    Ok(ChurnState {
        segments: stats.segments.len(),
        index_bytes: stats.segments.iter().map(|s| s.bytes).sum(),
        deleted_rows: stats.segments.iter().map(|s| s.deleted).sum(),
        results,
    })
}

/// Churn rounds: each deletes a seeded random half of the ids and upserts those records again.
#[allow(clippy::too_many_arguments)]
fn run_churn(
    a: &BenchArgs,
    coll: &Collection,
    n: usize,
    with_sel: bool,
    queries: &[Vec<f32>],
    gt: &[Vec<u64>],
    efs: &[usize],
) -> CliResult<ChurnRun> {
    let started = Instant::now();
    let mut per_round = 0;
    for round in 1..=a.churn as u64 {
        let chosen: Vec<u64> = (0..n as u64)
            .filter(|&i| sel_attribute(i ^ (round << 40)) % 2 == 0)
            .collect();
        per_round = chosen.len();
        let pb = bar(
            chosen.len() * 2,
            &format!("churn round {round}: delete and re-insert"),
        );
        for chunk in chosen.chunks(10_000) {
            coll.delete(chunk)?;
            pb.inc(chunk.len() as u64);
        }
        let (rows, _) = VectorFile::open(&a.base)?;
        let mut batch = Vec::with_capacity(a.batch);
        let mut next = chosen.iter().peekable();
        for (i, v) in rows.enumerate() {
            let v = v?;
            if next.peek() != Some(&&(i as u64)) {
                continue;
            }
            next.next();
            let mut r = Record::new(i as u64, v);
            if with_sel {
                r = r.with_field("sel", sel_attribute(i as u64));
            }
            batch.push(r);
            if batch.len() >= a.batch {
                pb.inc(batch.len() as u64);
                coll.upsert(std::mem::take(&mut batch))?;
            }
        }
        if !batch.is_empty() {
            coll.upsert(batch)?;
        }
        coll.flush()?;
        pb.finish_and_clear();
    }
    let churn_s = started.elapsed().as_secs_f64();
    let churned = churn_state(coll, queries, gt, a.k, efs)?;
    let sp = spinner("compacting…");
    let started = Instant::now();
    coll.compact()?;
    let compact_s = started.elapsed().as_secs_f64();
    sp.finish_and_clear();
    let compacted = churn_state(coll, queries, gt, a.k, efs)?;
    Ok(ChurnRun {
        rounds: a.churn,
        per_round,
        churn_s,
        churned,
        compact_s,
        compacted,
    })
}

/// The measurements of one filter selectivity.
#[derive(Serialize, Clone, Debug)]
struct FilteredRun {
    /// Requested fraction of the base set.
    selectivity: f64,
    /// Records that match.
    matched: usize,
    /// An exact scan of the matching rows (`exact: true` with the filter), the baseline.
    exact: EfRow,
    results: Vec<EfRow>,
    /// The plan the planner chose for the segment at each ef (on the first query), and the
    /// ef of a graph walk.
    plans: Vec<String>,
}

/// The attribute `sel` of base row `row`: a seeded pseudo-random number in [0, 1,000,000).
fn sel_attribute(row: u64) -> i64 {
    // splitmix64
    let mut z = row.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    ((z ^ (z >> 31)) % 1_000_000) as i64
}

fn parse_selectivities(list: &str) -> CliResult<Vec<f64>> {
    let mut out = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let s: f64 = part.parse().map_err(|_| {
            fail(format_args!(
                "--filter-selectivity: {part:?} is not a number"
            ))
        })?;
        if !(s > 0.0 && s <= 1.0) {
            return Err(fail(format_args!(
                "--filter-selectivity: {part} is not a fraction in (0, 1]"
            )));
        }
        out.push(s);
    }
    if out.is_empty() {
        return Err(fail("--filter-selectivity needs at least one fraction"));
    }
    Ok(out)
}

fn sel_filter(s: f64) -> Filter {
    Filter::range("sel").lt((s * 1_000_000.0).round())
}

/// Parses `--ef 10,20,40`.
fn parse_efs(list: &str) -> CliResult<Vec<usize>> {
    let mut efs = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.parse::<usize>() {
            Ok(ef) if (1..=MAX_K).contains(&ef) => efs.push(ef),
            _ => {
                return Err(fail(format_args!(
                    "--ef: `{part}` is not a whole number from 1 to {MAX_K}"
                )));
            }
        }
    }
    if efs.is_empty() {
        return Err(fail(
            "--ef is empty; give a comma-separated list such as 10,20,40",
        ));
    }
    Ok(efs)
}

/// Checks that an output file's directory exists, before the long run starts.
fn check_output(flag: &str, path: &Path) -> CliResult<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Err(fail(format_args!(
            "{flag} {}: directory {} does not exist",
            path.display(),
            parent.display()
        )));
    }
    if path.is_dir() {
        return Err(fail(format_args!(
            "{flag} {}: is a directory",
            path.display()
        )));
    }
    Ok(())
}

/// `--dir` must be new or empty: the benchmark never builds into (or over) other data.
fn check_dir(dir: &Path) -> CliResult<()> {
    match fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(fail(format_args!(
                    "refusing to use --dir {}: it is not empty; give a new or empty directory",
                    dir.display()
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(fail(format_args!(
            "cannot use --dir {}: {e}",
            dir.display()
        ))),
    }
}

/// The ids of each query's true top k, sorted (for lookups), from an `.ivecs` file.
fn load_gt(path: &Path, queries: usize, k: usize) -> CliResult<Vec<Vec<u64>>> {
    let rows = read_ivecs(path)?;
    if rows.len() < queries {
        return Err(fail(format_args!(
            "ground truth {} has {} rows, fewer than the {queries} queries",
            path.display(),
            rows.len()
        )));
    }
    let cols = rows.first().map_or(0, Vec::len);
    if cols < k {
        return Err(fail(format_args!(
            "ground truth {} lists {cols} neighbours per query, fewer than k = {k}",
            path.display()
        )));
    }
    rows.into_iter()
        .take(queries)
        .enumerate()
        .map(|(i, row)| {
            row.into_iter()
                .take(k)
                .map(|id| {
                    u64::try_from(id).map_err(|_| {
                        fail(format_args!(
                            "ground truth {} row {i} holds a negative id {id}",
                            path.display()
                        ))
                    })
                })
                .collect()
        })
        .collect()
}

/// The process's peak resident set size (VmHWM), where the system reports it.
fn peak_rss() -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line["VmHWM:".len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Time on a CPU and time waiting in a run queue.
#[derive(Clone, Copy, Default)]
struct Sched {
    run: Duration,
    wait: Duration,
}

impl Sched {
    /// Reads a Linux `schedstat` file: nanoseconds on a CPU, nanoseconds waiting, slices.
    fn read(path: &Path) -> Option<Sched> {
        let text = fs::read_to_string(path).ok()?;
        let mut it = text.split_whitespace().map(str::parse::<u64>);
        Some(Sched {
            run: Duration::from_nanos(it.next()?.ok()?),
            wait: Duration::from_nanos(it.next()?.ok()?),
        })
    }

    /// The calling thread's.
    fn thread() -> Option<Sched> {
        Sched::read(Path::new("/proc/thread-self/schedstat"))
    }

    /// Every live thread's of this process, summed.
    fn process() -> Option<Sched> {
        let mut total = Sched::default();
        for task in fs::read_dir("/proc/self/task").ok()? {
            let t = Sched::read(&task.ok()?.path().join("schedstat"))?;
            total.run += t.run;
            total.wait += t.wait;
        }
        Some(total)
    }

    /// What was spent between `start` and `end`.
    fn since(start: Option<Sched>, end: Option<Sched>) -> Option<Sched> {
        let (a, b) = (start?, end?);
        Some(Sched {
            run: b.run.saturating_sub(a.run),
            wait: b.wait.saturating_sub(a.wait),
        })
    }
}

/// The one-minute load average.
fn loadavg() -> Option<f64> {
    fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A progress bar on stderr, or a hidden one when stderr is not a terminal.
fn bar(len: usize, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {msg:<16} {wide_bar} {human_pos}/{human_len} ({per_sec}, eta {eta})",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    ProgressBar::new(len as u64)
        .with_style(style)
        .with_message(what.to_owned())
}

/// A spinner on stderr for a step without progress (sealing), when stderr is a terminal.
fn spinner(what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new_spinner().with_message(what.to_owned());
    pb.enable_steady_tick(Duration::from_millis(200));
    pb
}

/// Percentile (nearest rank) of sorted latencies, in µs.
fn percentile_us(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1e6
}

/// Runs every query once at `ef`, one at a time on this thread, and measures each.
fn measure(
    coll: &Collection,
    queries: &[Vec<f32>],
    gt: &[Vec<u64>],
    k: usize,
    ef: usize,
) -> CliResult<EfRow> {
    measure_with(coll, queries, gt, ef, &format!("queries, ef {ef}"), |q| {
        SearchRequest::new(q.to_vec()).k(k).ef(ef)
    })
}

/// Runs every query once with the request `make` builds, one at a time on this thread.
fn measure_with(
    coll: &Collection,
    queries: &[Vec<f32>],
    gt: &[Vec<u64>],
    ef: usize,
    what: &str,
    make: impl Fn(&[f32]) -> SearchRequest,
) -> CliResult<EfRow> {
    let pb = bar(queries.len(), what);
    let mut lat = Vec::with_capacity(queries.len());
    let mut recall_sum = 0.0;
    let sched_start = Sched::thread();
    let pass_start = Instant::now();
    for (i, (q, truth)) in queries.iter().zip(gt).enumerate() {
        let req = make(q);
        let started = Instant::now();
        let hits = coll.search(&req);
        let took = started.elapsed();
        let hits = hits.map_err(|e| fail(format_args!("query {i} at ef {ef}: {e}")))?;
        lat.push(took);
        let found = hits
            .iter()
            .filter(|h| truth.binary_search(&h.id).is_ok())
            .count();
        recall_sum += found as f64 / truth.len().max(1) as f64;
        if i % 256 == 255 {
            pb.set_position(i as u64 + 1);
        }
    }
    let pass = pass_start.elapsed();
    let sched = Sched::since(sched_start, Sched::thread());
    pb.finish_and_clear();
    let total: Duration = lat.iter().sum();
    lat.sort_unstable();
    let n = queries.len().max(1) as f64;
    Ok(EfRow {
        ef,
        recall: recall_sum / n,
        qps: n / total.as_secs_f64().max(1e-9),
        mean_us: total.as_secs_f64() * 1e6 / n,
        p50_us: percentile_us(&lat, 0.50),
        p99_us: percentile_us(&lat, 0.99),
        cpu_us: sched.map(|s| s.run.as_secs_f64() * 1e6 / n),
        wait_pct: sched.map(|s| 100.0 * s.wait.as_secs_f64() / pass.as_secs_f64().max(1e-9)),
    })
}

/// Filtered mode for one selectivity: exact filtered ground truth, the exact-scan baseline,
/// then every ef.
fn measure_filtered(
    coll: &Collection,
    queries: &[Vec<f32>],
    k: usize,
    efs: &[usize],
    s: f64,
) -> CliResult<FilteredRun> {
    let f = sel_filter(s);
    let pb = bar(
        queries.len(),
        &format!("exact filtered top k, selectivity {s}"),
    );
    let mut gt = queries
        .par_iter()
        .enumerate()
        .map(|(i, q)| {
            let hits = coll
                .search(
                    &SearchRequest::new(q.clone())
                        .k(k)
                        .exact(true)
                        .filter(f.clone()),
                )
                .map_err(|e| fail(format_args!("exact filtered search for query {i}: {e}")))?;
            pb.inc(1);
            Ok(hits.into_iter().map(|h| h.id).collect())
        })
        .collect::<CliResult<Vec<Vec<u64>>>>()?;
    pb.finish_and_clear();
    for row in &mut gt {
        row.sort_unstable();
    }
    let mut matched = 0;
    let mut plans = Vec::with_capacity(efs.len());
    for &ef in efs {
        let probe = coll.query(
            &SearchRequest::new(queries[0].clone())
                .k(k)
                .ef(ef)
                .filter(f.clone())
                .explain(true),
        )?;
        let explain = probe
            .explain
            .unwrap_or_else(|| unreachable!("explain was requested"));
        matched = explain.vector.iter().map(|p| p.matched).sum();
        plans.push(
            explain
                .vector
                .iter()
                .max_by_key(|p| p.rows)
                .map(|p| match p.plan {
                    PlanKind::Graph => format!("graph, ef {}", p.ef.unwrap_or(0)),
                    PlanKind::Exact => "exact".to_owned(),
                    PlanKind::Skip => "skip".to_owned(),
                })
                .unwrap_or_default(),
        );
    }
    let exact = measure_with(
        coll,
        queries,
        &gt,
        0,
        &format!("exact scan, selectivity {s}"),
        |q| {
            SearchRequest::new(q.to_vec())
                .k(k)
                .exact(true)
                .filter(f.clone())
        },
    )?;
    let mut results = Vec::with_capacity(efs.len());
    for &ef in efs {
        results.push(measure_with(
            coll,
            queries,
            &gt,
            ef,
            &format!("filtered queries, selectivity {s}, ef {ef}"),
            |q| SearchRequest::new(q.to_vec()).k(k).ef(ef).filter(f.clone()),
        )?);
    }
    Ok(FilteredRun {
        selectivity: s,
        matched,
        exact,
        results,
        plans,
    })
}

fn file_name(p: &Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn write_file(flag: &str, path: &Path, bytes: &[u8]) -> CliResult<()> {
    fs::write(path, bytes)
        .map_err(|e| fail(format_args!("{flag}: cannot write {}: {e}", path.display())))
}

pub fn run(a: &BenchArgs) -> CliResult<()> {
    // Arguments first, then the small inputs: bad input fails before the long build.
    if a.k == 0 {
        return Err(fail("--k must be at least 1"));
    }
    if a.k > MAX_K {
        return Err(fail(format_args!("--k must be at most {MAX_K}")));
    }
    let efs = parse_efs(&a.ef)?;
    let selectivities = match &a.filter_selectivity {
        Some(list) => Some(parse_selectivities(list)?),
        None => None,
    };
    if a.batch == 0 {
        return Err(fail("--batch must be at least 1"));
    }
    if a.threads == Some(0) {
        return Err(fail("--threads must be at least 1"));
    }
    if a.n_query == Some(0) {
        return Err(fail("--n-query must be at least 1"));
    }
    let metric: Metric = a.metric.into();
    CollectionConfig {
        dim: 1,
        metric,
        m: a.m,
        ef_construction: a.ef_construction,
        ..Default::default()
    }
    .validate()?;
    if let Some(p) = &a.csv {
        check_output("--csv", p)?;
    }
    if let Some(p) = &a.plot {
        check_output("--plot", p)?;
    }
    if let Some(d) = &a.dir {
        check_dir(d)?;
    }

    let (base_rows, shape) = VectorFile::open(&a.base)?;
    let dim = match shape.dim {
        Some(d) if shape.rows > 0 => d,
        _ => {
            return Err(fail(format_args!(
                "base file {} holds no vectors",
                a.base.display()
            )));
        }
    };
    let (mut queries, qdim) = read_vectors(&a.queries)?;
    if queries.is_empty() {
        return Err(fail(format_args!(
            "query file {} holds no vectors",
            a.queries.display()
        )));
    }
    if qdim != Some(dim) {
        return Err(fail(format_args!(
            "dimension mismatch: the queries in {} have dimension {}, the base vectors in {} have {dim}",
            a.queries.display(),
            qdim.unwrap_or(0),
            a.base.display()
        )));
    }
    if let Some(n) = a.n_query {
        queries.truncate(n);
    }
    let nq = queries.len();
    let gt_from_file = match &a.gt {
        Some(p) => Some(load_gt(p, nq, a.k)?),
        None => None,
    };

    if let Some(gt) = &gt_from_file
        && let Some((i, id)) = gt.iter().enumerate().find_map(|(i, r)| {
            r.iter()
                .find(|&&id| id >= shape.rows as u64)
                .map(|&id| (i, id))
        })
    {
        return Err(fail(format_args!(
            "ground truth row {i} names id {id}, but the base set has only {} rows \
             (is it the ground truth of this base set?)",
            thousands(shape.rows as u64)
        )));
    }

    if let Some(t) = a.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global()
            .map_err(|e| fail(format_args!("cannot start {t} threads: {e}")))?;
    }
    let threads = rayon::current_num_threads();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let load_start = loadavg();

    // The database: in --dir, or in a temporary directory removed at the end.
    let (tmp, db_path): (Option<tempfile::TempDir>, PathBuf) = match &a.dir {
        Some(d) => (None, d.clone()),
        None => {
            let t = tempfile::Builder::new()
                .prefix("cairn-bench-")
                .tempdir()
                .map_err(|e| fail(format_args!("cannot create a temporary directory: {e}")))?;
            let p = t.path().join("db");
            (Some(t), p)
        }
    };
    let (durability, durability_name) = match a.durability {
        DurabilityArg::Buffered => (Durability::buffered(), "buffered"),
        DurabilityArg::Sync => (Durability::Sync, "sync"),
    };
    // Limits raised so the whole base set lands in one memtable, then one segment (a
    // memtable reserves room for its limits: no more than the base set needs).
    let opts = Options::default()
        .memtable_max_rows(shape.rows.max(1))
        .memtable_max_bytes((shape.rows.max(1) * (dim * 4 + 512)).max(256 << 20))
        .max_wal_bytes(u64::MAX / 2)
        // Compaction runs when the benchmark says so (churn mode), not in the background.
        .background_compaction(false)
        .durability(durability);
    let config = CollectionConfig {
        dim,
        metric,
        m: a.m,
        ef_construction: a.ef_construction,
        ..Default::default()
    };

    // Build: upsert in batches (each indexed into the memtable graph on rayon's pool), then
    // flush (seal into a segment, graph written to disk).
    let db = Database::open_with(&db_path, opts.clone())?;
    let coll = db.create_collection(COLLECTION, config)?;
    let pb = bar(shape.rows, "ingest");
    let mut rows = base_rows;
    let mut ingest = Duration::ZERO;
    let mut n = 0usize;
    let mut batch: Vec<Record> = Vec::with_capacity(a.batch.min(shape.rows).max(1));
    let read_started = Instant::now();
    let sched_start = Sched::process();
    loop {
        let next = rows.next().transpose()?;
        let done = next.is_none();
        if let Some(v) = next {
            let mut r = Record::new(n as u64, v);
            if selectivities.is_some() {
                r = r.with_field("sel", sel_attribute(n as u64));
            }
            batch.push(r);
            n += 1;
        }
        if batch.len() >= a.batch || (done && !batch.is_empty()) {
            let first = n - batch.len();
            let records = std::mem::replace(&mut batch, Vec::with_capacity(a.batch.min(100_000)));
            let started = Instant::now();
            coll.upsert(records).map_err(|e| {
                pb.finish_and_clear();
                fail(format_args!(
                    "ingesting base rows {first} to {}: {e}",
                    n - 1
                ))
            })?;
            ingest += started.elapsed();
            pb.set_position(n as u64);
        }
        if done {
            break;
        }
    }
    let read = read_started.elapsed().saturating_sub(ingest);
    pb.finish_and_clear();
    if n == 0 {
        return Err(fail(format_args!(
            "base file {} holds no vectors",
            a.base.display()
        )));
    }
    let sp = spinner("sealing the memtable into a segment (writing the graph)…");
    let started = Instant::now();
    coll.flush()?;
    let flush = started.elapsed();
    sp.finish_and_clear();
    let build = ingest + flush;
    let build_sched = Sched::since(sched_start, Sched::process());

    let stats = coll.stats();
    let index_bytes: u64 = stats.segments.iter().map(|s| s.bytes).sum();
    let graph_bytes: u64 = stats.segments.iter().map(|s| s.graph_bytes).sum();
    let segments = stats.segments.len();
    let raw_bytes = (n * dim * 4) as u64;
    let rss_build = peak_rss();
    // Reopen: drop every handle, open the directory again, answer one query.
    drop(coll);
    drop(db);
    let first_req = SearchRequest::new(queries[0].clone()).k(a.k).ef(efs[0]);
    let started = Instant::now();
    let db = Database::open_with(&db_path, opts)?;
    let coll = db.collection(COLLECTION)?;
    let reopen = started.elapsed();
    let started = Instant::now();
    coll.search(&first_req)
        .map_err(|e| fail(format_args!("query 0: {e}")))?;
    let first_query = started.elapsed();
    // The first search started the int8 copy of the vectors in the background; wait for it so
    // every measured query uses it.
    coll.warm_up()?;

    // Ground truth: the file's first k ids, or the exact top k from the database.
    let (mut gt, gt_time) = match gt_from_file {
        Some(gt) => (gt, None),
        None => {
            let pb = bar(nq, "exact top k");
            let started = Instant::now();
            let gt = queries
                .par_iter()
                .enumerate()
                .map(|(i, q)| {
                    let hits = coll
                        .search(&SearchRequest::new(q.clone()).k(a.k).exact(true))
                        .map_err(|e| fail(format_args!("exact search for query {i}: {e}")))?;
                    pb.inc(1);
                    Ok(hits.into_iter().map(|h| h.id).collect())
                })
                .collect::<CliResult<Vec<Vec<u64>>>>()?;
            pb.finish_and_clear();
            (gt, Some(started.elapsed()))
        }
    };
    for row in &mut gt {
        row.sort_unstable();
    }

    // Warm-up, then one measured pass per ef, all on this thread.
    let warmup = nq.min(WARMUP);
    for (i, q) in queries.iter().take(warmup).enumerate() {
        coll.search(&SearchRequest::new(q.clone()).k(a.k).ef(efs[0]))
            .map_err(|e| fail(format_args!("query {i}: {e}")))?;
    }
    let mut results = Vec::with_capacity(efs.len());
    for &ef in &efs {
        results.push(measure(&coll, &queries, &gt, a.k, ef)?);
    }
    let mut filtered = Vec::new();
    for &s in selectivities.as_deref().unwrap_or(&[]) {
        filtered.push(measure_filtered(&coll, &queries, a.k, &efs, s)?);
    }
    let churn = if a.churn > 0 {
        Some(run_churn(
            a,
            &coll,
            n,
            selectivities.is_some(),
            &queries,
            &gt,
            &efs,
        )?)
    } else {
        None
    };
    let rss = peak_rss();
    let load_end = loadavg();
    drop(coll);
    drop(db);
    let db_note = match &tmp {
        Some(_) => "temporary, removed at the end".to_owned(),
        None => "kept".to_owned(),
    };
    let db_shown = db_path.display().to_string();
    drop(tmp);

    let report = Report {
        base: a.base.display().to_string(),
        queries_file: a.queries.display().to_string(),
        gt_file: a.gt.as_ref().map(|p| p.display().to_string()),
        ground_truth: if a.gt.is_some() { "file" } else { "exact" },
        n,
        dim,
        metric: metric.to_string(),
        k: a.k,
        m: a.m,
        ef_construction: a.ef_construction,
        threads,
        batch: a.batch,
        durability: durability_name,
        queries: nq,
        warmup_queries: warmup,
        segments,
        read_s: read.as_secs_f64(),
        ingest_s: ingest.as_secs_f64(),
        flush_s: flush.as_secs_f64(),
        build_s: build.as_secs_f64(),
        rows_per_s: n as f64 / build.as_secs_f64().max(1e-9),
        index_bytes,
        graph_bytes,
        raw_vector_bytes: raw_bytes,
        index_to_raw: index_bytes as f64 / raw_bytes.max(1) as f64,
        graph_to_raw: graph_bytes as f64 / raw_bytes.max(1) as f64,
        build_cpu_s: build_sched.map(|s| s.run.as_secs_f64()),
        build_wait_s: build_sched.map(|s| s.wait.as_secs_f64()),
        peak_rss_bytes: rss,
        peak_rss_after_build_bytes: rss_build,
        cores,
        loadavg_start: load_start,
        loadavg_end: load_end,
        reopen_ms: reopen.as_secs_f64() * 1e3,
        first_query_ms: first_query.as_secs_f64() * 1e3,
        reopen_first_query_ms: (reopen + first_query).as_secs_f64() * 1e3,
        gt_s: gt_time.map(|d| d.as_secs_f64()),
        results,
        filtered,
        churn,
    };

    if let Some(p) = &a.csv {
        write_file("--csv", p, csv(&report).as_bytes())?;
    }
    if let Some(p) = &a.plot {
        let points: Vec<Point> = report
            .results
            .iter()
            .map(|r| Point {
                ef: r.ef,
                recall: r.recall,
                qps: r.qps,
            })
            .collect();
        let caption = format!(
            "cairn: {} ({} × {}, {}), m {}, ef_construction {}",
            file_name(&a.base),
            thousands(n as u64),
            dim,
            report.metric,
            a.m,
            a.ef_construction
        );
        plot::draw(p, &points, &caption, a.k)?;
    }

    let mut out = std::io::stdout().lock();
    if a.json {
        let j = serde_json::to_string_pretty(&report)
            .map_err(|e| fail(format_args!("cannot write JSON: {e}")))?;
        outln!(out, "{j}");
    } else {
        print_text(&mut out, &report, &db_shown, &db_note)?;
        if let Some(p) = &a.csv {
            outln!(out, "wrote {}", p.display());
        }
        if let Some(p) = &a.plot {
            outln!(out, "wrote {}", p.display());
        }
    }
    out.flush().map_err(CliError::output)?;
    Ok(())
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / MIB)
}

fn secs(s: f64) -> String {
    if s < 10.0 {
        format!("{s:.2} s")
    } else {
        format!("{s:.1} s")
    }
}

fn print_text(out: &mut impl Write, r: &Report, db: &str, db_note: &str) -> CliResult<()> {
    let base = file_name(Path::new(&r.base));
    let queries = file_name(Path::new(&r.queries_file));
    outln!(
        out,
        "data      {base}: {} vectors × {}; {queries}: {} queries; metric {}; k {}",
        thousands(r.n as u64),
        r.dim,
        thousands(r.queries as u64),
        r.metric,
        r.k
    );
    outln!(out, "database  {db} ({db_note})");
    let load = |l: Option<f64>| l.map_or_else(|| "n/a".to_owned(), |l| format!("{l:.2}"));
    outln!(
        out,
        "machine   {} cores; load average {} at the start, {} at the end",
        r.cores,
        load(r.loadavg_start),
        load(r.loadavg_end)
    );
    outln!(
        out,
        "build     m {}, ef_construction {}, {} threads; upserts of {} records, durability {}",
        r.m,
        r.ef_construction,
        r.threads,
        thousands(r.batch as u64),
        if r.durability == "buffered" {
            "buffered (synced every 1 s)"
        } else {
            "sync (every batch fsync'ed)"
        }
    );
    outln!(
        out,
        "          memtable limits raised: the whole base set is indexed in one memtable, then \
         sealed into {} by the flush",
        crate::util::plural(r.segments, "segment")
    );
    outln!(
        out,
        "          ingest {} + flush {} = {} ({} rows/s; reading the file, {}, not counted)",
        secs(r.ingest_s),
        secs(r.flush_s),
        secs(r.build_s),
        thousands(r.rows_per_s.round() as u64),
        secs(r.read_s)
    );
    if let (Some(cpu), Some(wait)) = (r.build_cpu_s, r.build_wait_s) {
        outln!(
            out,
            "          CPU time of all threads {} ({:.2} cores busy on average); they waited {} \
             for a CPU",
            secs(cpu),
            cpu / r.build_s.max(1e-9),
            secs(wait)
        );
    }
    outln!(
        out,
        "index     {} on disk, of which graph {}; raw f32 vectors {}; index/raw {:.2}×, graph/raw {:.2}×",
        mib(r.index_bytes),
        mib(r.graph_bytes),
        mib(r.raw_vector_bytes),
        r.index_to_raw,
        r.graph_to_raw
    );
    let rss = |b: Option<u64>| b.map_or_else(|| "n/a".to_owned(), mib);
    outln!(
        out,
        "memory    peak RSS {} (after the build: {}; includes the queries and ground truth)",
        rss(r.peak_rss_bytes),
        rss(r.peak_rss_after_build_bytes)
    );
    outln!(
        out,
        "reopen    open {:.1} ms + first query {:.2} ms = {:.1} ms (files in the page cache)",
        r.reopen_ms,
        r.first_query_ms,
        r.reopen_first_query_ms
    );
    match (&r.gt_file, r.gt_s) {
        (Some(p), _) => outln!(
            out,
            "truth     {} (the first {} ids of each row)",
            file_name(Path::new(p)),
            r.k
        ),
        (None, s) => outln!(
            out,
            "truth     no --gt: exact top {} computed with the database's exact search, {} queries \
             on {} threads in {}",
            r.k,
            thousands(r.queries as u64),
            r.threads,
            secs(s.unwrap_or(0.0))
        ),
    }
    outln!(
        out,
        "queries   one at a time on one thread, after {} warm-up queries at ef {}",
        r.warmup_queries,
        r.results.first().map_or(0, |x| x.ef)
    );
    outln!(out);
    let recall = format!(">recall@{}", r.k);
    let sched = r.results.iter().all(|x| x.cpu_us.is_some());
    let mut headers = vec![">ef", &recall, ">QPS", ">mean µs", ">p50 µs", ">p99 µs"];
    if sched {
        headers.extend([">CPU µs", ">waited"]);
    }
    let mut t = Table::new(&headers);
    for x in &r.results {
        let mut row = vec![
            x.ef.to_string(),
            format!("{:.4}", x.recall),
            thousands(x.qps.round() as u64),
            format!("{:.1}", x.mean_us),
            format!("{:.1}", x.p50_us),
            format!("{:.1}", x.p99_us),
        ];
        if sched {
            row.push(format!("{:.1}", x.cpu_us.unwrap_or(0.0)));
            row.push(format!("{:.1}%", x.wait_pct.unwrap_or(0.0)));
        }
        t.row(row);
    }
    write!(out, "{}", t.render("")).map_err(CliError::output)?;
    if sched {
        outln!(
            out,
            "(CPU µs: the searching thread's time on a CPU per query; waited: the share of the \
             pass it was ready to run but had no CPU)"
        );
    }
    if r.results.iter().any(|x| x.ef < r.k) {
        outln!(out, "(an ef below k searches with ef = k)");
    }
    if let Some(c) = &r.churn {
        outln!(out);
        outln!(
            out,
            "churn     {} rounds of deleting and re-inserting {} records ({}), then compact ({})",
            c.rounds,
            thousands(c.per_round as u64),
            secs(c.churn_s),
            secs(c.compact_s)
        );
        outln!(
            out,
            "          disk: fresh {}, churned {} in {} segments ({} deleted rows), compacted {} in {}",
            mib(r.index_bytes),
            mib(c.churned.index_bytes),
            c.churned.segments,
            thousands(c.churned.deleted_rows as u64),
            mib(c.compacted.index_bytes),
            c.compacted.segments
        );
        let mut t = Table::new(&[
            ">ef",
            ">fresh",
            ">churned",
            ">compacted",
            ">QPS fresh",
            ">churned",
            ">compacted",
        ]);
        for ((f, ch), co) in r
            .results
            .iter()
            .zip(&c.churned.results)
            .zip(&c.compacted.results)
        {
            t.row(vec![
                f.ef.to_string(),
                format!("{:.4}", f.recall),
                format!("{:.4}", ch.recall),
                format!("{:.4}", co.recall),
                thousands(f.qps.round() as u64),
                thousands(ch.qps.round() as u64),
                thousands(co.qps.round() as u64),
            ]);
        }
        write!(out, "{}", t.render("")).map_err(CliError::output)?;
    }
    if !r.filtered.is_empty() {
        outln!(out);
        outln!(
            out,
            "filtered  sel < s·10⁶ on a seeded attribute; recall against the exact filtered top {}",
            r.k
        );
        let mut t = Table::new(&[
            ">selectivity",
            ">matched",
            "plan",
            ">ef",
            &recall,
            ">QPS",
            ">p50 µs",
            ">p99 µs",
            ">× exact scan",
        ]);
        for f in &r.filtered {
            t.row(vec![
                format!("{}", f.selectivity),
                thousands(f.matched as u64),
                "exact scan".to_owned(),
                "-".to_owned(),
                format!("{:.4}", f.exact.recall),
                thousands(f.exact.qps.round() as u64),
                format!("{:.1}", f.exact.p50_us),
                format!("{:.1}", f.exact.p99_us),
                "1.00".to_owned(),
            ]);
            for (x, plan) in f.results.iter().zip(&f.plans) {
                t.row(vec![
                    String::new(),
                    String::new(),
                    plan.clone(),
                    x.ef.to_string(),
                    format!("{:.4}", x.recall),
                    thousands(x.qps.round() as u64),
                    format!("{:.1}", x.p50_us),
                    format!("{:.1}", x.p99_us),
                    format!("{:.2}", x.qps / f.exact.qps.max(1e-9)),
                ]);
            }
        }
        write!(out, "{}", t.render("")).map_err(CliError::output)?;
    }
    Ok(())
}

/// The per-ef rows as CSV, with the build figures repeated as columns.
fn csv(r: &Report) -> String {
    let f = |v: f64, digits: usize| format!("{v:.digits$}");
    let opt = |v: Option<f64>, digits: usize| v.map_or_else(String::new, |v| f(v, digits));
    let mut header = String::new();
    let mut lines = Vec::new();
    for x in &r.results {
        let cols: Vec<(&str, String)> = vec![
            ("ef", x.ef.to_string()),
            ("recall", f(x.recall, 6)),
            ("qps", f(x.qps, 3)),
            ("mean_us", f(x.mean_us, 3)),
            ("p50_us", f(x.p50_us, 3)),
            ("p99_us", f(x.p99_us, 3)),
            ("cpu_us", opt(x.cpu_us, 3)),
            ("wait_pct", opt(x.wait_pct, 2)),
            ("k", r.k.to_string()),
            ("n", r.n.to_string()),
            ("dim", r.dim.to_string()),
            ("metric", r.metric.clone()),
            ("m", r.m.to_string()),
            ("ef_construction", r.ef_construction.to_string()),
            ("threads", r.threads.to_string()),
            ("queries", r.queries.to_string()),
            ("ground_truth", r.ground_truth.to_owned()),
            ("ingest_s", f(r.ingest_s, 4)),
            ("flush_s", f(r.flush_s, 4)),
            ("build_s", f(r.build_s, 4)),
            ("rows_per_s", f(r.rows_per_s, 1)),
            ("build_cpu_s", opt(r.build_cpu_s, 3)),
            ("index_bytes", r.index_bytes.to_string()),
            ("graph_bytes", r.graph_bytes.to_string()),
            ("raw_vector_bytes", r.raw_vector_bytes.to_string()),
            ("peak_rss_bytes", opt(r.peak_rss_bytes.map(|b| b as f64), 0)),
            ("reopen_ms", f(r.reopen_ms, 3)),
            ("first_query_ms", f(r.first_query_ms, 3)),
            ("loadavg_start", opt(r.loadavg_start, 2)),
        ];
        if header.is_empty() {
            header = cols.iter().map(|c| c.0).collect::<Vec<_>>().join(",");
        }
        lines.push(cols.into_iter().map(|c| c.1).collect::<Vec<_>>().join(","));
    }
    let mut out = header;
    out.push('\n');
    for l in lines {
        out.push_str(&l);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ef_lists() {
        assert_eq!(parse_efs("10, 20,40").unwrap(), vec![10, 20, 40]);
        assert!(parse_efs("").is_err());
        assert!(parse_efs(" , ").is_err());
        assert!(parse_efs("10,x").is_err());
        assert!(parse_efs("0").is_err());
    }

    #[test]
    fn percentiles() {
        let d: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        assert_eq!(percentile_us(&d, 0.5), 50.0);
        assert_eq!(percentile_us(&d, 0.99), 99.0);
        assert_eq!(percentile_us(&d[..1], 0.99), 1.0);
    }
}
