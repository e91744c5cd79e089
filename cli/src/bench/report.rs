//! The report: its fields (`--json`), the text report and the CSV.

use std::io::Write;
use std::path::Path;

use cairndb::Metric;
use serde::Serialize;

use crate::BenchArgs;
use crate::util::{CliError, CliResult, Table, thousands};

use super::churn::ChurnRun;
use super::filtered::FilteredRun;
use super::ingest::Built;
use super::measure::EfRow;
use super::memory::MemoryRun;
use super::{Machine, Measured, file_name};

const MIB: f64 = 1024.0 * 1024.0;

/// Everything `cairn bench --json` prints.
#[derive(Serialize, Debug)]
pub(super) struct Report {
    pub(super) base: String,
    pub(super) queries_file: String,
    pub(super) gt_file: Option<String>,
    /// `file` (from --gt) or `exact` (computed with the database's exact search).
    pub(super) ground_truth: &'static str,
    pub(super) n: usize,
    pub(super) dim: usize,
    pub(super) metric: String,
    pub(super) k: usize,
    pub(super) m: usize,
    pub(super) ef_construction: usize,
    pub(super) quantization: String,
    pub(super) threads: usize,
    pub(super) batch: usize,
    pub(super) durability: &'static str,
    /// Queries measured per ef.
    pub(super) queries: usize,
    pub(super) warmup_queries: usize,
    /// Segments after the flush (1: the whole base set in one graph).
    pub(super) segments: usize,
    pub(super) read_s: f64,
    pub(super) ingest_s: f64,
    pub(super) flush_s: f64,
    pub(super) build_s: f64,
    pub(super) rows_per_s: f64,
    pub(super) index_bytes: u64,
    pub(super) graph_bytes: u64,
    pub(super) raw_vector_bytes: u64,
    pub(super) index_to_raw: f64,
    pub(super) graph_to_raw: f64,
    /// CPU time of every thread during the build, and time they waited for a CPU.
    pub(super) build_cpu_s: Option<f64>,
    pub(super) build_wait_s: Option<f64>,
    pub(super) peak_rss_bytes: Option<u64>,
    pub(super) peak_rss_after_build_bytes: Option<u64>,
    pub(super) cores: usize,
    /// One-minute load average at the start and at the end of the run.
    pub(super) loadavg_start: Option<f64>,
    pub(super) loadavg_end: Option<f64>,
    pub(super) reopen_ms: f64,
    pub(super) first_query_ms: f64,
    pub(super) reopen_first_query_ms: f64,
    pub(super) gt_s: Option<f64>,
    pub(super) results: Vec<EfRow>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) filtered: Vec<FilteredRun>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) churn: Option<ChurnRun>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) memory: Option<MemoryRun>,
}

impl Report {
    /// The report of a run: the arguments, the machine, the build and what was measured.
    pub(super) fn new(
        a: &BenchArgs,
        metric: Metric,
        durability: &'static str,
        machine: &Machine,
        b: &Built,
        m: Measured,
    ) -> Report {
        let (n, build) = (b.n, b.build());
        Report {
            base: a.base.display().to_string(),
            queries_file: a.queries.display().to_string(),
            gt_file: a.gt.as_ref().map(|p| p.display().to_string()),
            ground_truth: if a.gt.is_some() { "file" } else { "exact" },
            n,
            dim: b.dim,
            metric: metric.to_string(),
            k: a.k,
            m: a.m,
            ef_construction: a.ef_construction,
            quantization: cairndb::Quantization::from(a.quantization).to_string(),
            threads: machine.threads,
            batch: a.batch,
            durability,
            queries: m.queries,
            warmup_queries: m.passes.warmup,
            segments: b.segments,
            read_s: b.read.as_secs_f64(),
            ingest_s: b.ingest.as_secs_f64(),
            flush_s: b.flush.as_secs_f64(),
            build_s: build.as_secs_f64(),
            rows_per_s: n as f64 / build.as_secs_f64().max(1e-9),
            index_bytes: b.index_bytes,
            graph_bytes: b.graph_bytes,
            raw_vector_bytes: b.raw_bytes,
            index_to_raw: b.index_bytes as f64 / b.raw_bytes.max(1) as f64,
            graph_to_raw: b.graph_bytes as f64 / b.raw_bytes.max(1) as f64,
            build_cpu_s: b.sched.map(|s| s.run.as_secs_f64()),
            build_wait_s: b.sched.map(|s| s.wait.as_secs_f64()),
            peak_rss_bytes: m.rss,
            peak_rss_after_build_bytes: b.rss,
            cores: machine.cores,
            loadavg_start: machine.load_start,
            loadavg_end: m.load_end,
            reopen_ms: m.reopen.as_secs_f64() * 1e3,
            first_query_ms: m.first_query.as_secs_f64() * 1e3,
            reopen_first_query_ms: (m.reopen + m.first_query).as_secs_f64() * 1e3,
            gt_s: m.gt_time.map(|d| d.as_secs_f64()),
            results: m.passes.results,
            filtered: m.passes.filtered,
            churn: m.passes.churn,
            memory: m.memory,
        }
    }
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

/// The text report: the setup, the build, then a table per mode.
pub(super) fn print_text(
    out: &mut impl Write,
    r: &Report,
    db: &str,
    db_note: &str,
) -> CliResult<()> {
    print_setup(out, r, db, db_note)?;
    print_build(out, r)?;
    print_index(out, r)?;
    outln!(out);
    print_results(out, r)?;
    if let Some(c) = &r.churn {
        print_churn(out, r, c)?;
    }
    if !r.filtered.is_empty() {
        print_filtered(out, r)?;
    }
    if let Some(m) = &r.memory {
        print_memory(out, m)?;
    }
    Ok(())
}

/// The memory phase: per pass, speed, disk reads per query and what is resident.
fn print_memory(out: &mut impl Write, m: &MemoryRun) -> CliResult<()> {
    let opt_mib = |b: Option<u64>| b.map_or("-".to_owned(), mib);
    outln!(out);
    outln!(
        out,
        "memory: the database closed, {} files evicted from the page cache, reopened in {:.1} ms \
         reading {} from the disk",
        m.evicted_files,
        m.open_ms,
        opt_mib(m.open_read_bytes)
    );
    if let Some(p) = m.passes.first() {
        let mem = &p.memory;
        outln!(
            out,
            "  budget {}; codes and graphs {} ({})",
            opt_mib(mem.budget),
            mib(mem.pinned_bytes),
            if mem.fits { "fit" } else { "do not fit" }
        );
    }
    outln!(
        out,
        "  resident after each pass: the process (anon, file), then the database's parts"
    );
    outln!(
        out,
        "  {:<5} {:>7} {:>9} {:>9} {:>12} {:>10} {:>10} | {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "pass",
        "recall",
        "QPS",
        "p50 µs",
        "read/query",
        "anon RSS",
        "file RSS",
        "codes",
        "graph",
        "vectors",
        "ids",
        "payload",
        "indexes+mt"
    );
    for p in &m.passes {
        let res = &p.memory.resident;
        outln!(
            out,
            "  {:<5} {:>7.4} {:>9.0} {:>9.1} {:>12} {:>10} {:>10} | {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            p.pass,
            p.row.recall,
            p.row.qps,
            p.row.p50_us,
            p.read_bytes_per_query
                .map_or("-".to_owned(), |b| format!("{:.1} KiB", b / 1024.0)),
            opt_mib(p.rss_anon_bytes),
            opt_mib(p.rss_file_bytes),
            mib(res.codes),
            mib(res.graph),
            mib(res.vectors),
            mib(res.ids),
            mib(res.payload),
            mib(res.indexes + p.memory.memtable_bytes)
        );
    }
    Ok(())
}

/// The data, the database and the machine.
fn print_setup(out: &mut impl Write, r: &Report, db: &str, db_note: &str) -> CliResult<()> {
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
    Ok(())
}

/// How the index was built, and what it took.
fn print_build(out: &mut impl Write, r: &Report) -> CliResult<()> {
    outln!(
        out,
        "build     m {}, ef_construction {}, quantization {}, {} threads; upserts of {} records, durability {}",
        r.m,
        r.ef_construction,
        r.quantization,
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
    Ok(())
}

/// The index's size, the memory, the reopen, the ground truth and how queries run.
fn print_index(out: &mut impl Write, r: &Report) -> CliResult<()> {
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
    Ok(())
}

/// The per-ef table.
fn print_results(out: &mut impl Write, r: &Report) -> CliResult<()> {
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
    Ok(())
}

/// Churn mode: recall and QPS fresh, churned and compacted.
fn print_churn(out: &mut impl Write, r: &Report, c: &ChurnRun) -> CliResult<()> {
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
    Ok(())
}

/// Filtered mode: per selectivity, the exact scan and each ef.
fn print_filtered(out: &mut impl Write, r: &Report) -> CliResult<()> {
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
        &format!(">recall@{}", r.k),
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
    Ok(())
}

/// The per-ef rows as CSV, with the build figures repeated as columns.
pub(super) fn csv(r: &Report) -> String {
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
