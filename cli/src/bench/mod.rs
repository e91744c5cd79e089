//! `cairn bench`: builds an HNSW index over a base set through the database's real write path
//! (log, memtable graph, seal into a segment), then measures its size, the process's memory,
//! the time to reopen it, and for each ef the recall@k and single-thread latency of the
//! queries.
//!
//! The memtable limits are raised so the whole base set is indexed in one memtable and sealed
//! into one segment by the final `flush`: the figures are those of one graph over every row.
//!
//! ```text
//! mod.rs       `run`: arguments, inputs, the build, the reopen, the passes, the outputs
//! inputs.rs    checks of the arguments, reading the ground truth
//! measure.rs   one measured pass of the queries; percentiles; scheduler and memory figures
//! filtered.rs  filtered mode (--filter-selectivity)
//! churn.rs     churn mode (--churn)
//! report.rs    the report: JSON fields, text, CSV
//! ```

mod churn;
mod filtered;
mod inputs;
mod measure;
mod report;

use std::fs;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cairndb::{CollectionConfig, Database, Durability, Metric, Options, Record, SearchRequest};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;

use crate::input::{VectorFile, read_vectors};
use crate::plot::{self, Point};
use crate::util::{CliError, CliResult, fail, thousands};
use crate::{BenchArgs, DurabilityArg};

use churn::run_churn;
use filtered::{measure_filtered, parse_selectivities, sel_attribute};
use inputs::{check_dir, check_output, load_gt, parse_efs};
use measure::{Sched, loadavg, measure, peak_rss};
use report::{Report, csv, print_text};

/// The collection the benchmark builds.
const COLLECTION: &str = "bench";
/// Queries run (and not measured) before the measured passes.
const WARMUP: usize = 200;
/// The largest k and ef a search request takes.
const MAX_K: usize = 100_000;

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
