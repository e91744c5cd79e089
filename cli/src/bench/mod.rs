//! `cairn bench`: builds an HNSW index over a base set through the database's real write path
//! (log, memtable graph, seal into a segment), then measures its size, the process's memory,
//! the time to reopen it, and for each ef the recall@k and single-thread latency of the
//! queries.
//!
//! The memtable limits are raised so the whole base set is indexed in one memtable and sealed
//! into one segment by the final `flush`: the figures are those of one graph over every row.
//!
//! ```text
//! mod.rs       `run`: the phases in order; ground truth, the measured passes, the outputs
//! inputs.rs    checks of the arguments, reading the queries and the ground truth
//! ingest.rs    the database's options, the build (ingest + seal), the reopen
//! measure.rs   one measured pass of the queries; percentiles; scheduler and memory figures
//! filtered.rs  filtered mode (--filter-selectivity)
//! churn.rs     churn mode (--churn)
//! report.rs    the report: JSON fields, text, CSV
//! ```

mod churn;
mod filtered;
mod ingest;
mod inputs;
mod measure;
mod memory;
mod report;

use std::fs;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use cairndb::{Collection, SearchRequest};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;

use crate::BenchArgs;
use crate::plot::{self, Point};
use crate::util::{CliError, CliResult, fail, thousands};

use churn::{ChurnRun, run_churn};
use filtered::{FilteredRun, measure_filtered};
use ingest::{Reopened, Store};
use inputs::{Plan, check_args, read_inputs};
use measure::{EfRow, loadavg, measure, peak_rss};
pub use memory::{MemoryPassArgs, memory_pass};
use report::{Report, csv, print_text};

/// The collection the benchmark builds.
const COLLECTION: &str = "bench";
/// Queries run (and not measured) before the measured passes.
const WARMUP: usize = 200;
/// The largest k and ef a search request takes.
const MAX_K: usize = 100_000;

/// A progress bar on stderr, or a hidden one when stderr is not a terminal.
/// A hit's id in a bench collection (integer ids; `u64::MAX`, which no bench row has, for
/// anything else).
pub(crate) fn int_id(id: &cairndb::Id) -> u64 {
    id.as_u64().unwrap_or(u64::MAX)
}

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

/// `cairn bench`: the phases in order, each its own function.
pub fn run(a: &BenchArgs) -> CliResult<()> {
    // Arguments first, then the small inputs: bad input fails before the long build.
    let plan = check_args(a)?;
    let input = read_inputs(a)?;
    let machine = Machine::start(a)?;
    let store = Store::new(a)?;
    let (opts, config, durability) = ingest::settings(a, input.rows, input.dim, plan.metric);
    let built = ingest::build(
        a,
        &store.path,
        opts.clone(),
        config,
        input.base_rows,
        input.rows,
        plan.selectivities.is_some(),
    )?;
    let queries = input.queries;
    // Reopen: the build dropped every handle; open the directory again, answer one query.
    let first = SearchRequest::new(queries[0].clone())
        .k(a.k)
        .ef(plan.efs[0]);
    let Reopened {
        db,
        coll,
        reopen,
        first_query,
    } = ingest::reopen(&store.path, opts.clone(), first)?;
    let (gt, gt_time) = ground_truth(a, &coll, &queries, input.gt)?;
    let passes = run_passes(a, &plan, &coll, &queries, &gt, built.n)?;
    let rss = peak_rss();
    let load_end = loadavg();
    drop(coll);
    drop(db);
    let memory = if a.no_memory_pass {
        None
    } else {
        Some(memory::run(a, &store.path, &queries, &gt, plan.efs[0])?)
    };
    let measured = Measured {
        queries: queries.len(),
        reopen,
        first_query,
        gt_time,
        passes,
        rss,
        load_end,
        memory,
    };
    let db_note = match &store.tmp {
        Some(_) => "temporary, removed at the end".to_owned(),
        None => "kept".to_owned(),
    };
    let db_shown = store.path.display().to_string();
    // Removes the temporary directory (a --dir is kept).
    drop(store);

    let report = Report::new(a, plan.metric, durability, &machine, &built, measured);
    write_outputs(a, &report, &db_shown, &db_note)
}

/// The machine the benchmark runs on.
struct Machine {
    /// Threads of rayon's pool (`--threads`, or one per core).
    threads: usize,
    cores: usize,
    /// The one-minute load average at the start.
    load_start: Option<f64>,
}

impl Machine {
    /// Sizes rayon's pool to `--threads`, and reads the machine's figures.
    fn start(a: &BenchArgs) -> CliResult<Machine> {
        if let Some(t) = a.threads {
            rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build_global()
                .map_err(|e| fail(format_args!("cannot start {t} threads: {e}")))?;
        }
        Ok(Machine {
            threads: rayon::current_num_threads(),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            load_start: loadavg(),
        })
    }
}

/// What the run measured after the build.
struct Measured {
    /// Queries measured per ef.
    queries: usize,
    reopen: Duration,
    first_query: Duration,
    /// The time computing the exact ground truth (none with --gt).
    gt_time: Option<Duration>,
    passes: Passes,
    /// Peak RSS and load average at the end.
    rss: Option<u64>,
    load_end: Option<f64>,
    /// The memory phase (none with --no-memory-pass).
    memory: Option<memory::MemoryRun>,
}

/// The ground truth, each row sorted: the file's first k ids, or the exact top k from the
/// database (on rayon's pool), with the time it took.
fn ground_truth(
    a: &BenchArgs,
    coll: &Collection,
    queries: &[Vec<f32>],
    from_file: Option<Vec<Vec<u64>>>,
) -> CliResult<(Vec<Vec<u64>>, Option<Duration>)> {
    let (mut gt, gt_time) = match from_file {
        Some(gt) => (gt, None),
        None => {
            let pb = bar(queries.len(), "exact top k");
            let started = Instant::now();
            let gt = queries
                .par_iter()
                .enumerate()
                .map(|(i, q)| {
                    let hits = coll
                        .search(&SearchRequest::new(q.clone()).k(a.k).exact(true))
                        .map_err(|e| fail(format_args!("exact search for query {i}: {e}")))?;
                    pb.inc(1);
                    Ok(hits.into_iter().map(|h| int_id(&h.id)).collect())
                })
                .collect::<CliResult<Vec<Vec<u64>>>>()?;
            pb.finish_and_clear();
            (gt, Some(started.elapsed()))
        }
    };
    for row in &mut gt {
        row.sort_unstable();
    }
    Ok((gt, gt_time))
}

/// The measured passes: per ef, per selectivity (filtered mode), and churn mode.
struct Passes {
    /// Queries run before the measured passes.
    warmup: usize,
    results: Vec<EfRow>,
    filtered: Vec<FilteredRun>,
    churn: Option<ChurnRun>,
}

/// Warm-up, then one measured pass per ef, all on this thread; then filtered and churn mode.
fn run_passes(
    a: &BenchArgs,
    plan: &Plan,
    coll: &Collection,
    queries: &[Vec<f32>],
    gt: &[Vec<u64>],
    n: usize,
) -> CliResult<Passes> {
    let efs = &plan.efs;
    let warmup = queries.len().min(WARMUP);
    for (i, q) in queries.iter().take(warmup).enumerate() {
        coll.search(&SearchRequest::new(q.clone()).k(a.k).ef(efs[0]))
            .map_err(|e| fail(format_args!("query {i}: {e}")))?;
    }
    let mut results = Vec::with_capacity(efs.len());
    for &ef in efs {
        results.push(measure(coll, queries, gt, a.k, ef)?);
    }
    let mut filtered = Vec::new();
    for &s in plan.selectivities.as_deref().unwrap_or(&[]) {
        filtered.push(measure_filtered(coll, queries, a.k, efs, s)?);
    }
    let churn = if a.churn > 0 {
        Some(run_churn(
            a,
            coll,
            n,
            plan.selectivities.is_some(),
            queries,
            gt,
            efs,
        )?)
    } else {
        None
    };
    Ok(Passes {
        warmup,
        results,
        filtered,
        churn,
    })
}

/// Writes --csv and --plot, then the report on stdout (JSON with --json, else text).
fn write_outputs(a: &BenchArgs, report: &Report, db_shown: &str, db_note: &str) -> CliResult<()> {
    if let Some(p) = &a.csv {
        write_file("--csv", p, csv(report).as_bytes())?;
    }
    if let Some(p) = &a.plot {
        draw_plot(a, report, p)?;
    }
    let mut out = std::io::stdout().lock();
    if a.json {
        let j = serde_json::to_string_pretty(report)
            .map_err(|e| fail(format_args!("cannot write JSON: {e}")))?;
        outln!(out, "{j}");
    } else {
        print_text(&mut out, report, db_shown, db_note)?;
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

/// The recall-vs-QPS chart of the per-ef rows.
fn draw_plot(a: &BenchArgs, report: &Report, path: &Path) -> CliResult<()> {
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
        thousands(report.n as u64),
        report.dim,
        report.metric,
        a.m,
        a.ef_construction
    );
    plot::draw(path, &points, &caption, a.k)
}
