//! `cairn`: the command-line tool of the Cairn embedded vector database.
//!
//! ```text
//! main.rs    arguments (clap) and dispatch
//! util.rs    errors, opening a database, number/time formatting, text tables
//! jsonl.rs   a JSONL record line, with errors naming the field at fault
//! ids.rs     record ids (integers or strings) checked, parsed and shown in the user's terms
//! input.rs   reading JSONL records, .fvecs/.bvecs/.ivecs/.npy vectors and `--vector` JSON
//! table.rs   import from Parquet, Arrow IPC, CSV and mapped JSONL (record batches → records)
//! export.rs  export to Parquet, Arrow IPC and JSONL (records → record batches)
//! write.rs   create, import, delete, repair
//! read.rs    search, get, stats, verify
//! manage.rs  list, drop, count, export, update
//! bench/     the recall/throughput benchmark on a base and a query set (mod.rs lists its files)
//! plot.rs    its recall-vs-QPS chart (SVG)
//! demo.rs    the end-to-end demo on real PyPI package summaries
//! embed.rs   the demo's lexical hashing embedding
//! synth.rs   the demo's synthetic throughput benchmark
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// `writeln!` to the output, turning a failed write into a [`util::CliError`].
macro_rules! outln {
    ($out:expr) => {
        writeln!($out).map_err($crate::util::CliError::output)?
    };
    ($out:expr, $($arg:tt)*) => {
        writeln!($out, $($arg)*).map_err($crate::util::CliError::output)?
    };
}

mod bench;
mod demo;
mod embed;
mod eval;
mod export;
mod ids;
mod input;
mod jsonl;
mod manage;
mod npy;
mod plot;
mod read;
mod synth;
mod table;
mod util;
mod write;

mod logger;
use util::CliError;

/// Cairn: an embedded vector database. Stores embeddings with their text and metadata in a
/// directory, crash-safe, and finds the nearest ones.
#[derive(Parser, Debug)]
#[command(name = "cairn", version, propagate_version = true)]
#[command(after_help = "Start with `cairn demo` to see everything working on a real data set.")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log more: -v shows what the engine does (opens, recoveries, seals, compactions), -vv
    /// also its debug events. Log lines go to stderr.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Log nothing, not even warnings and errors of the engine.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a collection (and the database directory, when it does not exist yet).
    Create(CreateArgs),
    /// List the collections of a database: dimension, metric and record count of each.
    List(ListArgs),
    /// Drop a collection: delete it and all its records.
    Drop(DropArgs),
    /// Print how many records a collection holds, or how many match a filter.
    Count(CountArgs),
    /// Write a collection's records (or those matching a filter) as JSONL, Parquet or Arrow
    /// in id order, to standard output or --output: the formats `cairn import` reads, so
    /// export then import copies them.
    Export(ExportArgs),
    /// Change records in place from a JSONL file: each line names an id and the parts to
    /// change (vector, text, payload keys); the rest of the record stays.
    Update(UpdateArgs),
    /// Import records from a JSONL, Parquet, Arrow IPC, CSV, .npy or .fvecs file, in atomic,
    /// durable batches.
    Import(ImportArgs),
    /// Find the records most similar to one or more query vectors.
    Search(SearchArgs),
    /// Score text, vector and hybrid search (any fusions) against relevance judgments in
    /// TREC qrels format: MRR@k, nDCG@k, recall@k, hit@k; optionally TREC run files.
    Eval(eval::EvalArgs),
    /// Print one record as JSON (exit code 1 when it does not exist). Under cosine the
    /// vector is the stored, normalized one.
    Get(GetArgs),
    /// Delete records by id, or those matching --filter; returns once the delete is durable.
    Delete(DeleteArgs),
    /// Seal the memtable and merge every segment of a collection into one, dropping deleted
    /// rows and rebuilding the graph and indexes.
    Compact(CompactArgs),

    /// Show collections, dimensions, metrics, record counts, segments and log size.
    Stats(StatsArgs),
    /// Open the database and check every checksum of every file (exit code 1 on corruption).
    Verify(VerifyArgs),
    /// Open a database whose log is damaged by dropping the log from its first bad frame on
    /// (records written after it are lost), and report what was dropped. Without this,
    /// opening such a database fails and changes nothing.
    Repair(RepairArgs),
    /// Run the end-to-end demo: ingest real PyPI package summaries, search, delete, reopen,
    /// and measure throughput on a synthetic 100k-vector set.
    Demo(DemoArgs),
    /// Benchmark the HNSW index on a base set and a query set (.fvecs, .bvecs or .npy):
    /// build time, index size, memory, reopen time, then recall@k and single-thread
    /// latency/QPS for each ef.
    Bench(BenchArgs),
    /// The memory pass of `cairn bench`, run in a fresh process (internal).
    #[command(hide = true)]
    BenchMemoryPass(bench::MemoryPassArgs),
}

/// Similarity metric of a collection.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricArg {
    /// Cosine similarity (vectors are normalized on insert); score in [-1, 1].
    Cosine,
    /// Dot product of the vectors as given.
    Dot,
    /// Negated squared Euclidean distance; 0 for identical vectors.
    L2,
}

impl From<MetricArg> for cairndb::Metric {
    fn from(m: MetricArg) -> Self {
        match m {
            MetricArg::Cosine => cairndb::Metric::Cosine,
            MetricArg::Dot => cairndb::Metric::Dot,
            MetricArg::L2 => cairndb::Metric::L2,
        }
    }
}

/// The kind of ids a collection holds.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdTypeArg {
    /// Unsigned 64-bit integers: JSON numbers such as 42.
    Int,
    /// UTF-8 strings of 1 to 1024 bytes: JSON strings such as "docs/a.md#3".
    Str,
}

impl From<IdTypeArg> for cairndb::IdType {
    fn from(t: IdTypeArg) -> Self {
        match t {
            IdTypeArg::Int => cairndb::IdType::Int,
            IdTypeArg::Str => cairndb::IdType::Str,
        }
    }
}

/// What graph walks score.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuantizationArg {
    /// A int8 copy of the vectors (a quarter of their bytes), written beside them in each
    /// segment; the rows a walk finds are re-scored from the f32 vectors.
    Int8,
    /// No copy: walks score the f32 vectors.
    None,
    /// RaBitQ codes, 4 bits per dimension (an eighth of the f32 bytes): an estimate with an
    /// error bound; candidates the bound cannot rule out are re-scored. Every metric.
    Rabitq4,
    /// RaBitQ codes, 1 bit per dimension (a 32nd of the f32 bytes): coarser, re-scores more.
    Rabitq1,
}

impl From<QuantizationArg> for cairndb::Quantization {
    fn from(q: QuantizationArg) -> Self {
        match q {
            QuantizationArg::Int8 => cairndb::Quantization::Int8,
            QuantizationArg::None => cairndb::Quantization::None,
            QuantizationArg::Rabitq4 => cairndb::Quantization::RaBitQ4,
            QuantizationArg::Rabitq1 => cairndb::Quantization::RaBitQ1,
        }
    }
}

/// When a write reaches stable storage.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum DurabilityArg {
    /// Every batch is fsync'ed before the next one starts; `committed N` is printed after each.
    Sync,
    /// Batches are buffered and synced at the end (and every second in the background);
    /// `committed N` is printed once, after the final sync. Faster.
    Buffered,
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Database directory (created when missing).
    #[arg(value_name = "DB")]
    pub db: PathBuf,
    /// Collection name: 1 to 64 characters from A-Z, a-z, 0-9, `_` and `-`.
    #[arg(value_name = "COLLECTION")]
    pub collection: String,
    /// Vector dimension (1 to 65536).
    #[arg(long, value_name = "N")]
    pub dim: usize,
    /// Similarity metric.
    #[arg(long, value_enum, default_value_t = MetricArg::Cosine)]
    pub metric: MetricArg,
    /// The kind of record ids, fixed at creation: unsigned integers, or strings of 1 to
    /// 1024 bytes (paths, UUIDs, "doc#chunk"). In JSONL an integer id is a number and a
    /// string id a string.
    #[arg(long, value_enum, default_value_t = IdTypeArg::Int)]
    pub id_type: IdTypeArg,
    /// Succeed when the collection exists already with this dimension, metric and id type
    /// (its other settings stay as they were created); without it an existing collection is
    /// an error.
    #[arg(long)]
    pub exist_ok: bool,
    /// HNSW: links per node on upper levels, 2 to 256 (level 0 has 2·m) [default: 16].
    #[arg(long, value_name = "M")]
    pub m: Option<usize>,
    /// HNSW: candidate list size while building, 1 to 100000 [default: 200].
    #[arg(long, value_name = "N")]
    pub ef_construction: Option<usize>,
    /// What graph walks score: int8 codes (cosine and dot; L2 then walks the f32 vectors),
    /// RaBitQ codes of 4 or 1 bits (every metric), or the f32 vectors [default: int8].
    #[arg(long, value_enum, value_name = "KIND")]
    pub quantization: Option<QuantizationArg>,
    /// Full-text search: reduce English words to their stem ("running", "runs" and "run"
    /// match each other). Off by default, which suits any language.
    #[arg(long)]
    pub stem: bool,
    /// Full-text search: drop the 33 English stop words (a, an, and, the, …) from documents
    /// and queries. Off by default.
    #[arg(long)]
    pub stop_words: bool,
    /// Print what was created (or found) as one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Database directory.
    #[arg(value_name = "DB")]
    pub db: PathBuf,
    /// Print one JSON object: {"collections": [{"name", "dim", "metric", "id_type",
    /// "records", …}]}.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct DropArgs {
    /// Database directory.
    #[arg(value_name = "DB")]
    pub db: PathBuf,
    /// Collection to drop.
    #[arg(value_name = "COLLECTION")]
    pub collection: String,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct CountArgs {
    /// Database directory.
    #[arg(value_name = "DB")]
    pub db: PathBuf,
    /// Collection name.
    #[arg(value_name = "COLLECTION")]
    pub collection: String,
    /// Count only the records matching this filter (syntax: docs/filters.md).
    #[arg(long, value_name = "EXPR")]
    pub filter: Option<String>,
    /// Print {"count": N} instead of the bare number.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Database directory.
    #[arg(value_name = "DB")]
    pub db: PathBuf,
    /// Collection name.
    #[arg(value_name = "COLLECTION")]
    pub collection: String,
    /// Export only the records matching this filter (syntax: docs/filters.md).
    #[arg(long, value_name = "EXPR")]
    pub filter: Option<String>,
    /// Output format [default: by the --output extension (.parquet, .arrow), else jsonl].
    /// Parquet and Arrow have the columns id (UInt64 or Utf8), vector
    /// (FixedSizeList<Float32>), text (Utf8) and payload (Utf8: the payload as JSON text).
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<crate::export::ExportFormat>,
    /// Write to this file (complete or not at all) instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Leave the vectors out (the file is then for reading, not for `cairn import`).
    #[arg(long)]
    pub no_vectors: bool,
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// Database directory.
    #[arg(value_name = "DB")]
    pub db: PathBuf,
    /// Collection name.
    #[arg(value_name = "COLLECTION")]
    pub collection: String,
    /// JSONL file, one change per line: {"id": 1} (or {"id": "doc-1"} in a collection of
    /// string ids) with any of "vector": [...] (replaces the
    /// vector), "text": "..." (replaces the text; null removes it), "payload": {...} (sets
    /// these keys, keeping the others). Lines whose id does not exist are skipped.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Replace each record's whole payload with the line's "payload" instead of setting its
    /// keys.
    #[arg(long)]
    pub replace_payload: bool,
    /// Changes per atomic batch.
    #[arg(long, value_name = "N", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub batch: u64,
    /// Print the result as one JSON object: {"updated": N, "missing": M}.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// Database directory.
    #[arg(value_name = "DB")]
    pub db: PathBuf,
    /// Collection to import into. For a table (JSONL, Parquet, Arrow, CSV) a missing
    /// collection is created with the dimension of the first record, the cosine metric, and
    /// integer or string ids as the first record's id is a number or a string; for .fvecs and
    /// .npy it must exist, with integer ids.
    #[arg(value_name = "COLLECTION")]
    pub collection: String,
    /// Input file, read by its extension (or --format): .jsonl, .parquet, .arrow/.ipc/.feather
    /// (Arrow IPC file or stream), .csv, .npy, .fvecs; another extension is recognized by the
    /// file's first bytes (Parquet, Arrow, .npy) or read as JSONL. JSONL: one record per line,
    /// {"id": 1, "vector": [0.1, ...], "text": "...", "payload": {"lang": "en"}}. Tables:
    /// columns id, vector, text, and the rest payload (see --id-field and the others).
    /// .fvecs/.npy: rows without ids, numbered from --id-start (0 into an empty collection).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The file's format, instead of its extension.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<crate::table::ImportFormat>,
    /// The column (or JSONL field) holding each record's id [default: id].
    #[arg(long, value_name = "NAME")]
    pub id_field: Option<String>,
    /// The column (or JSONL field) holding each record's vector [default: vector]: a list of
    /// float32 or float64 (FixedSizeList, List, LargeList), or a JSON array in a CSV cell.
    #[arg(long, value_name = "NAME")]
    pub vector_field: Option<String>,
    /// The column (or JSONL field) holding each record's text [default: text, when there is
    /// one].
    #[arg(long, value_name = "NAME")]
    pub text_field: Option<String>,
    /// The columns (or JSONL fields) that make the payload, comma-separated [default: all
    /// the others]. Each is a payload key named after it; `NAME.*` (and a column named
    /// `payload`) holding objects is spread: its keys become payload keys.
    #[arg(long, value_name = "A,B,C", value_delimiter = ',')]
    pub payload_fields: Option<Vec<String>>,
    /// Number the rows of a file without ids: row r gets id N + r. Needed to import .fvecs
    /// or .npy rows into a collection that has records (so that they do not replace them),
    /// and for tables without an id column.
    #[arg(long, value_name = "N")]
    pub id_start: Option<u64>,
    /// Records per atomic batch.
    #[arg(long, value_name = "N", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub batch: u64,
    /// When each batch is made durable.
    #[arg(long, value_enum, default_value_t = DurabilityArg::Sync)]
    pub durability: DurabilityArg,
    /// Merge no segments while importing (a bulk load then builds each graph once, in the
    /// seals, instead of again in merges along the way); run `cairn compact` afterwards.
    #[arg(long)]
    pub no_compaction: bool,
    /// Print each `committed N` line as {"committed": N}, and the summary as a last JSON
    /// line on standard output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("query").required(true).multiple(true).args(["vector", "text", "queries"])))]
pub struct SearchArgs {
    /// Database directory.
    #[arg(value_name = "DB")]
    pub db: PathBuf,
    /// Collection to search.
    #[arg(value_name = "COLLECTION")]
    pub collection: String,
    /// One query vector as a JSON array, e.g. '[0.1, 0.2, 0.3]'.
    #[arg(long, value_name = "JSON")]
    pub vector: Option<String>,
    /// A full-text query (BM25); with --vector the search is hybrid.
    #[arg(long, value_name = "QUERY")]
    pub text: Option<String>,
    /// Only return records matching this filter: the text syntax, e.g.
    /// 'lang = "en" AND year >= 2020 AND tags IN ("a", "b") AND NOT draft = true',
    /// or JSON in the operator form when it starts with '{', e.g.
    /// '{"lang": "en", "year": {"$gte": 2020}}' (docs/filters.md).
    #[arg(long, value_name = "EXPR")]
    pub filter: Option<String>,
    /// Many queries, answered in order with the database opened once: a .fvecs file (one
    /// vector per row) or a .jsonl file whose lines carry any of "vector", "text", "filter"
    /// (a string in the text syntax, or an object in the JSON operator form) and "k".
    #[arg(long, value_name = "FILE")]
    pub queries: Option<PathBuf>,
    /// Number of hits per query.
    #[arg(long, value_name = "K", default_value_t = 10)]
    pub k: usize,
    /// HNSW search list size (default max(k, 64)).
    #[arg(long, value_name = "EF")]
    pub ef: Option<usize>,
    /// Scan every record instead of using an index (exact results).
    #[arg(long)]
    pub exact: bool,
    /// How a hybrid query fuses its vector and text legs (default: the library's default
    /// fusion, see docs/tuning.md).
    #[arg(long, value_enum)]
    pub fusion: Option<FusionArg>,
    /// Weight of the vector leg for --fusion weighted, in [0, 1].
    #[arg(long, value_name = "A", default_value_t = 0.5)]
    pub alpha: f32,
    /// Rank offset of --fusion rrf.
    #[arg(long, value_name = "K", default_value_t = 60.0)]
    pub rrf_k: f32,
    /// Candidates each leg of a hybrid query finds before fusion (default max(2k, 50)).
    #[arg(long, value_name = "N")]
    pub candidates: Option<usize>,
    /// Show how the query was executed: the plan per segment, matching rows, completeness.
    #[arg(long)]
    pub explain: bool,
    /// Print one JSON object per query: {"hits":[{"id":..,"score":..,"legs":..},..]}.
    #[arg(long)]
    pub json: bool,
    /// Include each hit's payload.
    #[arg(long, alias = "payload")]
    pub with_payload: bool,
    /// Include each hit's text.
    #[arg(long)]
    pub with_text: bool,
}

/// Fusion method of a hybrid search.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FusionArg {
    /// Reciprocal Rank Fusion: sum of 1 / (rrf_k + rank).
    Rrf,
    /// alpha · (min-max normalized vector score) + (1 − alpha) · (normalized BM25 score).
    Weighted,
    /// Distribution-based score fusion: each leg mapped from mean ± 3σ to [0, 1], summed.
    Dbsf,
}

#[derive(Args, Debug)]
pub struct GetArgs {
    /// Database directory.
    #[arg(value_name = "DB")]
    pub db: PathBuf,
    /// Collection name.
    #[arg(value_name = "COLLECTION")]
    pub collection: String,
    /// Record id: a whole number, or in a collection of string ids the text as it is
    /// (`cairn get db c 42` looks up the string "42"; put `--` before an id starting with `-`).
    #[arg(value_name = "ID")]
    pub id: String,
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// Database directory.
    #[arg(value_name = "DB")]
    pub db: PathBuf,
    /// Collection name.
    #[arg(value_name = "COLLECTION")]
    pub collection: String,
    /// Ids of the records to delete, read as the collection's ids are (whole numbers, or
    /// strings as they are); ids that do not exist are ignored.
    #[arg(value_name = "ID", required_unless_present = "filter", conflicts_with = "filter", num_args = 1..)]
    pub ids: Vec<String>,
    /// Instead of ids: delete every record matching this filter, atomically (syntax:
    /// docs/filters.md).
    #[arg(long, value_name = "EXPR")]
    pub filter: Option<String>,
    /// Print the result as one JSON object: {"deleted": N, "missing": M}.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct CompactArgs {
    /// Database directory.
    #[arg(value_name = "DB")]
    pub db: PathBuf,
    /// Collection name.
    #[arg(value_name = "COLLECTION")]
    pub collection: String,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Database directory.
    #[arg(value_name = "DB")]
    pub db: PathBuf,
    /// Print the statistics as one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Database directory.
    #[arg(value_name = "DB")]
    pub db: PathBuf,
    /// Print the report as one JSON object (a failure is still an error on stderr, exit 1).
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct RepairArgs {
    /// Database directory.
    #[arg(value_name = "DB")]
    pub db: PathBuf,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Directory for the demo database. An old demo database there is replaced; any other
    /// non-empty directory is left alone and the demo refuses to run.
    #[arg(long, value_name = "DIR", default_value = "./cairn-demo")]
    pub dir: PathBuf,
    /// Keep the demo database afterwards (to explore it with `cairn stats`, `cairn search`...).
    #[arg(long)]
    pub keep: bool,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Vectors to index (.fvecs, .bvecs or .npy float32); ids are row numbers from 0.
    #[arg(long, value_name = "FILE")]
    pub base: PathBuf,
    /// Query vectors (.fvecs, .bvecs or .npy float32), of the base set's dimension.
    #[arg(long, value_name = "FILE")]
    pub queries: PathBuf,
    /// Ground truth (.ivecs): per query, the ids of its true nearest neighbours, best first
    /// (the first k are used). Without it the exact top k is computed by the database's own
    /// exact search.
    #[arg(long, value_name = "FILE")]
    pub gt: Option<PathBuf>,
    /// Similarity metric.
    #[arg(long, value_enum, default_value_t = MetricArg::Cosine)]
    pub metric: MetricArg,
    /// Neighbours per query (recall@k).
    #[arg(long, value_name = "K", default_value_t = 10)]
    pub k: usize,
    /// Comma-separated HNSW search list sizes to measure (values below k act as k).
    #[arg(long, value_name = "LIST", default_value = "10,20,40,80,120,200,400")]
    pub ef: String,
    /// HNSW: links per node (level 0 has 2·m).
    #[arg(long, value_name = "M", default_value_t = 16)]
    pub m: usize,
    /// HNSW: candidate list size while building.
    #[arg(long, value_name = "N", default_value_t = 200)]
    pub ef_construction: usize,
    /// What graph walks score: int8 codes (cosine and dot), RaBitQ codes, or the f32 vectors.
    #[arg(long, value_enum, value_name = "KIND", default_value_t = QuantizationArg::Int8)]
    pub quantization: QuantizationArg,
    /// Threads that build the index (rayon's pool; default: every core). Queries always run
    /// one at a time on one thread.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Open the database with this memory budget (bytes, or with a K, M or G suffix: 1.2G):
    /// the codes and graphs are read in and kept resident, the vectors read for re-scoring
    /// only. The memory pass reports whether they fit.
    #[arg(long, value_name = "BYTES", value_parser = util::parse_bytes)]
    pub memory_budget: Option<u64>,
    /// With --memory-budget: lock the codes and graphs in memory (mlock).
    #[arg(long)]
    pub lock_memory: bool,
    /// Skip the memory pass (the database closed, its pages evicted, the queries run cold and
    /// warm with the bytes read from the disk per query).
    #[arg(long)]
    pub no_memory_pass: bool,
    /// Use only the first N queries.
    #[arg(long, value_name = "N")]
    pub n_query: Option<usize>,
    /// Records per upsert batch.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub batch: usize,
    /// Build the database in DIR (new or empty; kept afterwards) instead of a temporary
    /// directory that is removed at the end.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Log durability while ingesting: `buffered` (synced every second and at the flush) or
    /// `sync` (every batch fsync'ed).
    #[arg(long, value_enum, default_value_t = DurabilityArg::Buffered, hide_possible_values = true)]
    pub durability: DurabilityArg,
    /// Also write the per-ef results (with the build figures as extra columns) to this CSV file.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Also draw recall (x) against QPS (y, log scale) to this SVG file.
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// Print one JSON object instead of the summary and table.
    #[arg(long)]
    pub json: bool,
    /// Filtered mode: comma-separated fractions (e.g. 0.5,0.1,0.01,0.001). Every base record
    /// gets a seeded random attribute `sel` in [0, 1,000,000); for each fraction s the
    /// queries run under the filter `sel < s·1,000,000`, against the exact filtered top k,
    /// at every --ef, beside an exact scan of the matching rows.
    #[arg(long, value_name = "LIST")]
    pub filter_selectivity: Option<String>,
    /// Churn mode: after the measurements, N rounds of deleting a seeded random half of the
    /// records and upserting them again (then a flush), recall at every --ef and disk size
    /// after the rounds, then after `compact`, beside the fresh build's.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub churn: usize,
}

fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Create(a) => write::create(&a),
        Command::List(a) => manage::list(&a),
        Command::Drop(a) => manage::drop(&a),
        Command::Count(a) => manage::count(&a),
        Command::Export(a) => manage::export(&a),
        Command::Update(a) => manage::update(&a),
        Command::Import(a) => write::import(&a),
        Command::Search(a) => read::search(&a),
        Command::Eval(a) => eval::eval(&a),
        Command::Get(a) => read::get(&a),
        Command::Delete(a) => write::delete(&a),
        Command::Compact(a) => write::compact(&a),
        Command::Stats(a) => read::stats(&a),
        Command::Verify(a) => read::verify(&a),
        Command::Repair(a) => write::repair(&a),
        Command::Demo(a) => demo::run(&a),
        Command::Bench(a) => bench::run(&a),
        Command::BenchMemoryPass(a) => bench::memory_pass(&a),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logger::init(match (cli.quiet, cli.verbose) {
        (true, _) => log::LevelFilter::Off,
        (false, 0) => log::LevelFilter::Warn,
        (false, 1) => log::LevelFilter::Info,
        (false, _) => log::LevelFilter::Debug,
    });
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`cairn search ... | head`): nothing left to say.
        Err(CliError::OutputClosed) => ExitCode::SUCCESS,
        Err(CliError::Failed(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
    }
}
