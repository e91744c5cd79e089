//! The build: the database directory, its options, the ingest of the base set and the seal
//! into one segment, then the reopen.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cairndb::{
    Collection, CollectionConfig, Database, Durability, Metric, Options, Record, SearchRequest,
};

use crate::input::VectorFile;
use crate::util::{CliResult, fail};
use crate::{BenchArgs, DurabilityArg};

use super::filtered::sel_attribute;
use super::measure::{Sched, peak_rss};
use super::{COLLECTION, bar, spinner};

/// The database's directory: `--dir`, or one in a temporary directory removed when dropped.
pub(super) struct Store {
    pub(super) tmp: Option<tempfile::TempDir>,
    pub(super) path: PathBuf,
}

impl Store {
    pub(super) fn new(a: &BenchArgs) -> CliResult<Store> {
        let (tmp, path) = match &a.dir {
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
        Ok(Store { tmp, path })
    }
}

/// The database's options and the collection's configuration, and the durability's name.
pub(super) fn settings(
    a: &BenchArgs,
    rows: usize,
    dim: usize,
    metric: Metric,
) -> (Options, CollectionConfig, &'static str) {
    let (durability, durability_name) = match a.durability {
        DurabilityArg::Buffered => (Durability::buffered(), "buffered"),
        DurabilityArg::Sync => (Durability::Sync, "sync"),
    };
    // Limits raised so the whole base set lands in one memtable, then one segment (a
    // memtable reserves room for its limits: no more than the base set needs). The byte
    // limit counts a row's vector, its codes (int8: up to `dim + 68` bytes, RaBitQ less),
    // its level-0 links and bookkeeping (`Memtable::bytes`). With room for the vector plus
    // 512 bytes only, an int8 row of 384-d counted 2,140 bytes against 2,048, the memtable
    // sealed early and the base set ended in two segments (walked twice per query).
    let opts = Options::default()
        .memtable_max_rows(rows.max(1))
        .memtable_max_bytes(
            (rows.max(1) * (dim * 5 + 68 + 24 + 8 * (a.m + 1) + 512)).max(256 << 20),
        )
        .max_wal_bytes(u64::MAX / 2)
        // Compaction runs when the benchmark says so (churn mode), not in the background.
        .background_compaction(false)
        .durability(durability)
        .lock_memory(a.lock_memory);
    let opts = match a.memory_budget {
        Some(b) => opts.memory_budget(b),
        None => opts,
    };
    let config = CollectionConfig {
        dim,
        metric,
        m: a.m,
        ef_construction: a.ef_construction,
        quantization: a.quantization.into(),
        ..Default::default()
    };
    (opts, config, durability_name)
}

/// The figures of the build.
pub(super) struct Built {
    /// Rows ingested, and their dimension.
    pub(super) n: usize,
    pub(super) dim: usize,
    /// Time reading the base file (the build's wall time less the upserts).
    pub(super) read: Duration,
    pub(super) ingest: Duration,
    pub(super) flush: Duration,
    /// CPU and wait time of every thread during the build.
    pub(super) sched: Option<Sched>,
    pub(super) index_bytes: u64,
    pub(super) graph_bytes: u64,
    pub(super) segments: usize,
    pub(super) raw_bytes: u64,
    /// Peak RSS after the build.
    pub(super) rss: Option<u64>,
}

impl Built {
    pub(super) fn build(&self) -> Duration {
        self.ingest + self.flush
    }
}

/// Builds: upserts in batches (each indexed into the memtable graph on rayon's pool), then
/// flushes (seal into a segment, graph written to disk). Closes the database at the end.
pub(super) fn build(
    a: &BenchArgs,
    path: &Path,
    opts: Options,
    config: CollectionConfig,
    rows: VectorFile,
    total: usize,
    with_sel: bool,
) -> CliResult<Built> {
    let dim = config.dim;
    let db = Database::open_with(path, opts)?;
    let coll = db.create_collection(COLLECTION, config)?;
    let sched_start = Sched::process();
    let (n, ingest, read) = ingest(a, &coll, rows, total, with_sel)?;
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
    let sched = Sched::since(sched_start, Sched::process());

    let stats = coll.stats();
    Ok(Built {
        n,
        dim,
        read,
        ingest,
        flush,
        sched,
        index_bytes: stats.segments.iter().map(|s| s.bytes).sum(),
        graph_bytes: stats.segments.iter().map(|s| s.graph_bytes).sum(),
        segments: stats.segments.len(),
        raw_bytes: (n * dim * 4) as u64,
        rss: peak_rss(),
    })
}

/// Upserts the base rows in batches of `--batch`, with a `sel` field if `with_sel`. Returns
/// the rows ingested, the time in upserts, and the time reading the file.
fn ingest(
    a: &BenchArgs,
    coll: &Collection,
    mut rows: VectorFile,
    total: usize,
    with_sel: bool,
) -> CliResult<(usize, Duration, Duration)> {
    let pb = bar(total, "ingest");
    let mut ingest = Duration::ZERO;
    let mut n = 0usize;
    let mut batch: Vec<Record> = Vec::with_capacity(a.batch.min(total).max(1));
    let read_started = Instant::now();
    loop {
        let next = rows.next().transpose()?;
        let done = next.is_none();
        if let Some(v) = next {
            let mut r = Record::new(n as u64, v);
            if with_sel {
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
    Ok((n, ingest, read))
}

/// The database reopened, and the time it took.
pub(super) struct Reopened {
    pub(super) db: Database,
    pub(super) coll: Collection,
    pub(super) reopen: Duration,
    /// The first query after the reopen.
    pub(super) first_query: Duration,
}

/// Opens the directory again and answers one query; then waits for the int8 copy of the
/// vectors that the first search started in the background, so every measured query uses it.
pub(super) fn reopen(path: &Path, opts: Options, first: SearchRequest) -> CliResult<Reopened> {
    let started = Instant::now();
    let db = Database::open_with(path, opts)?;
    let coll = db.collection(COLLECTION)?;
    let reopen = started.elapsed();
    let started = Instant::now();
    coll.search(&first)
        .map_err(|e| fail(format_args!("query 0: {e}")))?;
    let first_query = started.elapsed();
    coll.warm_up()?;
    Ok(Reopened {
        db,
        coll,
        reopen,
        first_query,
    })
}
