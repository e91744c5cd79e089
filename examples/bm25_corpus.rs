//! BM25 full-text search over a JSONL corpus, measured the way the shared peer harness
//! (`bm25_peers.py`: bm25s, tantivy, rank-bm25) measures its peers, and compared with their
//! TREC run files.
//!
//! ```sh
//! D=~/.cache/cairn-bench/data/pypi-text-100k
//! R=~/.cache/cairn-bench/data/results/pypi-text-100k
//! cargo run --release --example bm25_corpus -- \
//!     --corpus $D/corpus.jsonl --queries $D/queries.jsonl --out-dir $R
//! ```
//!
//! 1. Reads `corpus.jsonl` (`{"id": .., "text": ..}` per line) and upserts it, `--batch`
//!    records per call, into a new collection (dimension 1, every vector `[1.0]`: text search
//!    needs no vectors, but every record carries one) in a temporary database; then flushes
//!    the memtable into one segment (`--source memtable` skips the flush and searches the
//!    memtable). Prints the index time and the bytes on disk.
//! 2. For each query mode, runs the first `--n-query` queries one at a time on this thread
//!    (`--warmup` queries first, untimed), timing each `Collection::search` call, and writes
//!    the top `--k` as a TREC run file (`qid Q0 docid rank score tag`):
//!    * `raw`: the query text as is, analyzed by Cairn;
//!    * `peer32`: the first `--max-query-tokens` distinct tokens of the query text by the peer
//!      harness's rule (lower-cased runs of `[^\W_]+`, tokens of 40+ characters dropped),
//!      joined by spaces, so that Cairn scores the same query terms as the peers. The
//!      tokenizing is done before the timer starts.
//! 3. If peer run files `bm25_<peer>.run` are in `--out-dir`, prints the pairwise top-k
//!    agreement with each: the mean over queries of |A ∩ B| / k, and how often the top-1 is
//!    the same, as `bm25_peers.py` computes them (over the queries the peer ran; one it ran but
//!    found nothing for counts as an empty list). Each query's pair of lists is also sorted
//!    into: the same documents; a tie at the cut (every document only the peer lists has
//!    Cairn's k-th score by Cairn's own scoring, looked up by an untimed deeper search); or a
//!    real difference.
//!
//! Before indexing it prints how Cairn's analyzer and the peer rule split the documents and
//! the queries differently. `--doc-analysis peer` indexes each document as its peer tokens
//! (a token that Cairn's analyzer would split or change, such as a run of CJK ideographs, is
//! renamed one-to-one to `zzq<hex of its UTF-8>`), and peer32 queries likewise, so that Cairn
//! scores exactly the peers' terms: what then remains between Cairn and a peer is scoring and
//! tie-breaking. `--inspect QID,..` prints, for those queries, both top-k lists with each
//! side's score of every listed document, Cairn's N / avgdl / df, and the documents whose
//! analyses differ.
//!
//! `--ab-passes N` times MaxScore against the exhaustive evaluation it replaced (both in this
//! binary: `cairndb::text::set_exhaustive_for_benchmarks`) instead: N interleaved passes of
//! each, per mode, with no filter and under `bucket < P` for each `--filter-percent P` (every
//! record carries `bucket`, a hash of its id mod 100), after deleting `--delete-percent` % of
//! the records; it checks that both give identical top-k lists and writes
//! `cairn_bm25_ab_del<D>.json`:
//!
//! ```sh
//! cargo run --release --example bm25_corpus -- --corpus $D/corpus.jsonl \
//!     --queries $D/queries.jsonl --out-dir $R --modes peer32 --ab-passes 3 \
//!     --filter-percent 50,5 --delete-percent 10
//! ```
//!
//! Run files: `bm25_cairn.run` (peer32), `bm25_cairn_raw.run` (raw); with `--source memtable`
//! or `--doc-analysis peer` the names get `_memtable` / `_peerdocs` before the mode. A JSON
//! summary goes to `cairn_bm25[_memtable][_peerdocs].json` in the same folder.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use cairndb::text::Analyzer;
use cairndb::{
    Collection, CollectionConfig, Database, Filter, Metric, Options, Record, SearchRequest,
    TextConfig,
};
use clap::{Parser, ValueEnum};
use serde::Deserialize;

type BoxError = Box<dyn std::error::Error>;

/// Depth of the untimed searches that look up Cairn's score of a document a peer lists.
const DEEP: usize = 1_000;

/// Peers whose run files are compared, in this order.
const PEERS: [&str; 3] = ["bm25s", "tantivy", "rank_bm25"];

#[derive(Parser, Clone)]
#[command(about = "Cairn BM25 on a JSONL corpus, compared with the peer harness's run files")]
struct Args {
    /// corpus.jsonl: one {"id": u64, "text": str} per line.
    #[arg(long)]
    corpus: PathBuf,
    /// queries.jsonl: one {"id": u64, "text": str} per line.
    #[arg(long)]
    queries: PathBuf,
    /// Where run files and the summary go, and where the peers' run files are looked for.
    #[arg(long)]
    out_dir: PathBuf,
    /// Query modes, comma-separated: raw, peer32.
    #[arg(long, value_delimiter = ',', default_value = "raw,peer32")]
    modes: Vec<Mode>,
    /// Search the sealed segment (after flush) or the memtable (no flush).
    #[arg(long, value_enum, default_value = "segment")]
    source: SourceKind,
    /// How documents are indexed: Cairn's analyzer on the text, or the peer tokens joined by
    /// spaces.
    #[arg(long, value_enum, default_value = "cairn")]
    doc_analysis: DocAnalysis,
    /// Records per upsert call.
    #[arg(long, default_value_t = 10_000)]
    batch: usize,
    /// The first N queries.
    #[arg(long, default_value_t = 1_000)]
    n_query: usize,
    /// Untimed queries (the first ones) before the timed pass.
    #[arg(long, default_value_t = 20)]
    warmup: usize,
    /// Hits per query.
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// peer32: distinct tokens kept per query.
    #[arg(long, default_value_t = 32)]
    max_query_tokens: usize,
    /// Also write each timed query's latency to `<out-dir>/cairn_latency<suffix>_<mode>.tsv`
    /// (query id, µs, hits, on-CPU µs).
    #[arg(long)]
    latency_files: bool,
    /// Untimed passes over all queries after the timed one (something for a profiler to see).
    #[arg(long, default_value_t = 0)]
    extra_passes: usize,
    /// Parent folder of the temporary database (default: the system's temporary folder).
    #[arg(long)]
    tmp_dir: Option<PathBuf>,
    /// Query ids to explain in detail (comma-separated).
    #[arg(long, value_delimiter = ',')]
    inspect: Vec<u64>,
    /// Write the peer tokens of every query (peer32) and document to this JSONL file
    /// (`{"q"|"d": id, "t": [..]}`), to check them against the harness's Python tokenizer.
    #[arg(long)]
    dump_peer_tokens: Option<PathBuf>,
    /// The peer the inspected queries are compared with.
    #[arg(long, default_value = "bm25s")]
    inspect_peer: String,
    /// Set by `--ab-passes` for each filtered run.
    #[arg(skip)]
    filter: Option<Filter>,
    /// MaxScore against the exhaustive evaluation: instead of the runs above, time every mode
    /// with MaxScore on and off (`cairndb::text::set_exhaustive_for_benchmarks`), in this many
    /// interleaved passes, with no filter and with each `--filter-percent`; the two top-k lists
    /// of every query are checked to be identical.
    #[arg(long, default_value_t = 0)]
    ab_passes: usize,
    /// With `--ab-passes`: also time under the filter `bucket < P` for each P given; every
    /// record carries `bucket` = a hash of its id mod 100, so the filter keeps about P % of
    /// the records.
    #[arg(long, value_delimiter = ',')]
    filter_percent: Vec<u64>,
    /// After indexing (and the flush), delete about this percentage of the records (those
    /// whose id hashes below it, independent of `bucket`).
    #[arg(long, default_value_t = 0)]
    delete_percent: u64,
}

/// A well-mixed hash of an id (splitmix64's finalizer), so that the filter buckets and the
/// deleted records are spread over the corpus and independent of each other.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The `bucket` field of record `id`: 0..100.
fn bucket(id: u64) -> u64 {
    mix(id) % 100
}

/// Whether `--delete-percent p` deletes record `id`.
fn deleted(id: u64, p: u64) -> bool {
    mix(id ^ 0x5555_5555_5555_5555) % 100 < p
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Raw,
    Peer32,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Raw => "raw",
            Mode::Peer32 => "peer32",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SourceKind {
    Segment,
    Memtable,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DocAnalysis {
    Cairn,
    Peer,
}

#[derive(Deserialize)]
struct Line {
    id: u64,
    text: String,
}

fn read_jsonl(path: &Path) -> Result<Vec<Line>, BoxError> {
    let f = BufReader::new(File::open(path).map_err(|e| format!("{}: {e}", path.display()))?);
    let mut out = Vec::new();
    for (i, line) in f.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(
            serde_json::from_str(&line)
                .map_err(|e| format!("{} line {}: {e}", path.display(), i + 1))?,
        );
    }
    Ok(out)
}

/// The peer harness's tokens: lower-cased runs of letters and digits (`[^\W_]+` on
/// `text.lower()`), tokens of 40 or more characters dropped.
///
/// `char::is_alphanumeric` stands in for Python's `\w` minus `_`; they differ on a few
/// non-Latin characters (Python's `str.isalnum` has no combining marks).
fn peer_tokens(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty() && t.chars().count() < 40)
        .map(str::to_owned)
        .collect()
}

/// The first `max` distinct peer tokens, in order of first appearance.
fn peer_query(text: &str, max: usize) -> Vec<String> {
    let mut seen = HashSet::new();
    peer_tokens(text)
        .into_iter()
        .filter(|t| seen.insert(t.clone()))
        .take(max)
        .collect()
}

/// Peer tokens as a text that Cairn's analyzer turns back into exactly one term per token: a
/// token it would split or change (a run of CJK ideographs, Thai, ...) is spelled as
/// `zzq` + the hex of its UTF-8 bytes, a one-to-one renaming that leaves every statistic as
/// the peers see it.
fn as_cairn_words(tokens: &[String], analyzer: &Analyzer) -> String {
    let words: Vec<String> = tokens
        .iter()
        .map(|t| {
            let terms = analyzer.terms(t);
            if terms.len() == 1 && terms[0] == *t {
                t.clone()
            } else {
                let hex: String = t.bytes().map(|b| format!("{b:02x}")).collect();
                format!("zzq{hex}")
            }
        })
        .collect();
    words.join(" ")
}

/// Why a Cairn term is not among the peer tokens of the same text.
fn term_class(t: &str) -> &'static str {
    if t.contains('_') {
        "underscore (a_b)"
    } else if t.contains(['\'', '\u{2019}']) {
        "apostrophe (don't)"
    } else if t.contains(|c: char| c.is_ascii_punctuation()) {
        "inner . , : (3.5, github.com)"
    } else if t.chars().count() >= 40 {
        "40+ characters"
    } else {
        "script (CJK ...)"
    }
}

/// Prints how differently Cairn and the peers analyze `texts`: mean terms per text, how many
/// texts differ, and why (by the class of the Cairn terms the peers do not have).
fn analysis_report<'a>(what: &str, texts: impl Iterator<Item = &'a str>, analyzer: &Analyzer) {
    let (mut n, mut cairn_terms, mut peer_terms, mut differ) = (0usize, 0usize, 0usize, 0usize);
    let mut by_class: HashMap<&str, usize> = HashMap::new();
    let mut frequent: HashMap<String, usize> = HashMap::new();
    for text in texts {
        let (c, p) = (analyzer.terms(text), peer_tokens(text));
        n += 1;
        cairn_terms += c.len();
        peer_terms += p.len();
        if c == p {
            continue;
        }
        differ += 1;
        let ps: HashSet<&String> = p.iter().collect();
        let mut classes = HashSet::new();
        for t in c.iter().filter(|t| !ps.contains(t)) {
            classes.insert(term_class(t));
            *frequent.entry(t.clone()).or_default() += 1;
        }
        for cl in classes {
            *by_class.entry(cl).or_default() += 1;
        }
    }
    let mut frequent: Vec<(String, usize)> = frequent.into_iter().collect();
    frequent.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    frequent.truncate(20);
    let mut by_class: Vec<(&str, usize)> = by_class.into_iter().collect();
    by_class.sort_by_key(|b| std::cmp::Reverse(b.1));
    let n1 = n.max(1) as f64;
    eprintln!(
        "analysis of {n} {what}: mean terms cairn {:.4}, peer {:.4}; {differ} analyzed differently, \
         by the kind of Cairn term the peers lack (a text may count in several): {by_class:?}; \
         most frequent such terms: {frequent:?}",
        cairn_terms as f64 / n1,
        peer_terms as f64 / n1,
    );
}

/// numpy's default (linear) percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let x = p / 100.0 * (sorted.len() - 1) as f64;
    let (lo, hi) = (x.floor() as usize, x.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (x - lo as f64)
}

/// Bytes of the files under `dir`, summed by file name (a segment's `text`, `graph`, ...; a
/// log file's name is kept up to its first digit).
fn dir_bytes(dir: &Path, by_name: &mut HashMap<String, u64>) -> std::io::Result<u64> {
    let mut all = 0;
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let meta = e.metadata()?;
        if meta.is_dir() {
            all += dir_bytes(&e.path(), by_name)?;
        } else {
            all += meta.len();
            let name = e.file_name().to_string_lossy().into_owned();
            let name = name
                .split(|c: char| c.is_ascii_digit())
                .next()
                .unwrap_or("")
                .to_string();
            *by_name.entry(name).or_default() += meta.len();
        }
    }
    Ok(all)
}

/// A top-k list: (doc id, score), best first.
type List = Vec<(u64, f32)>;

/// A TREC run file: query id → its list (ranks in file order).
fn read_run(path: &Path) -> Result<HashMap<u64, List>, BoxError> {
    let mut out: HashMap<u64, List> = HashMap::new();
    for line in BufReader::new(File::open(path)?).lines() {
        let line = line?;
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 5 {
            continue;
        }
        out.entry(f[0].parse()?)
            .or_default()
            .push((f[2].parse()?, f[4].parse()?));
    }
    Ok(out)
}

fn write_run(path: &Path, qids: &[u64], lists: &[List], tag: &str) -> std::io::Result<()> {
    let mut w = BufWriter::new(File::create(path)?);
    for (qid, list) in qids.iter().zip(lists) {
        for (rank, (id, score)) in list.iter().enumerate() {
            writeln!(w, "{qid} Q0 {id} {} {score:.6} {tag}", rank + 1)?;
        }
    }
    w.flush()
}

/// The peer's lists for the queries it ran: every query of ours up to the last query id in
/// its run file (the harness runs queries in order; a query with no hit has no line).
fn peer_lists(run: &HashMap<u64, List>, qids: &[u64]) -> Vec<Option<List>> {
    let last = run.keys().copied().max();
    qids.iter()
        .map(|q| match last {
            Some(last) if *q <= last => Some(run.get(q).cloned().unwrap_or_default()),
            _ => None,
        })
        .collect()
}

fn overlap(a: &List, b: &List) -> usize {
    let b: HashSet<u64> = b.iter().map(|x| x.0).collect();
    a.iter().filter(|x| b.contains(&x.0)).count()
}

/// Relative difference, for comparing scores.
fn rel(a: f32, b: f32) -> f64 {
    let (a, b) = (f64::from(a), f64::from(b));
    (a - b).abs() / a.abs().max(b.abs()).max(1e-12)
}

/// How two lists of one query disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Disagreement {
    /// Same documents (perhaps in another order).
    SameSet,
    /// Cairn's list is full and every document only the peer lists has Cairn's k-th score
    /// (within 1e-5, relative) by Cairn's own scoring: the two picked differently among
    /// documents tied at the cut.
    TieAtCut,
    /// Anything else: some document only the peer lists scores lower in Cairn than Cairn's
    /// k-th (or does not match at all).
    Other,
}

/// `deep`: Cairn's scores of the documents the query matches, at least of its top 100.
fn classify(a: &List, b: &List, k: usize, deep: &HashMap<u64, f32>) -> Disagreement {
    let ov = overlap(a, b);
    if ov == a.len() && ov == b.len() {
        return Disagreement::SameSet;
    }
    if a.len() == k {
        let kth = a[k - 1].1;
        let mine: HashSet<u64> = a.iter().map(|x| x.0).collect();
        if b.iter()
            .filter(|x| !mine.contains(&x.0))
            .all(|x| deep.get(&x.0).is_some_and(|&s| rel(s, kth) < 1e-5))
        {
            return Disagreement::TieAtCut;
        }
    }
    Disagreement::Other
}

struct ModeResult {
    mode: Mode,
    qids: Vec<u64>,
    texts: Vec<String>,
    lists: Vec<List>,
    lat_us: Vec<f64>,
    /// On-CPU time of each query (µs; none where the kernel does not report it).
    cpu_us: Vec<Option<f64>>,
}

fn run_mode(
    coll: &Collection,
    analyzer: &Analyzer,
    mode: Mode,
    queries: &[Line],
    args: &Args,
) -> Result<ModeResult, BoxError> {
    let texts: Vec<String> = queries
        .iter()
        .map(|q| match mode {
            Mode::Raw => q.text.clone(),
            Mode::Peer32 => {
                let terms = peer_query(&q.text, args.max_query_tokens);
                match args.doc_analysis {
                    DocAnalysis::Cairn => terms.join(" "),
                    DocAnalysis::Peer => as_cairn_words(&terms, analyzer),
                }
            }
        })
        .collect();
    let reqs: Vec<SearchRequest> = texts
        .iter()
        .map(|t| {
            let r = SearchRequest::by_text(t.clone()).k(args.k);
            match &args.filter {
                Some(f) => r.filter(f.clone()),
                None => r,
            }
        })
        .collect();
    for r in reqs.iter().take(args.warmup) {
        coll.search(r)?;
    }
    let mut lists = Vec::with_capacity(reqs.len());
    let mut lat_us = Vec::with_capacity(reqs.len());
    let mut cpu_us = Vec::with_capacity(reqs.len());
    for r in &reqs {
        // On-CPU time does not grow while the thread waits for a core: on a loaded machine it
        // still shows which queries cost the most.
        let c = cpu_time::ThreadTime::try_now().ok();
        let t = Instant::now();
        let hits = coll.search(r)?;
        lat_us.push(t.elapsed().as_secs_f64() * 1e6);
        cpu_us.push(
            c.and_then(|c| c.try_elapsed().ok())
                .map(|d| d.as_secs_f64() * 1e6),
        );
        lists.push(
            hits.iter()
                .map(|h| (h.id.as_u64().unwrap(), h.score))
                .collect(),
        );
    }
    for _ in 0..args.extra_passes {
        for r in &reqs {
            std::hint::black_box(coll.search(r)?);
        }
    }
    Ok(ModeResult {
        mode,
        qids: queries.iter().map(|q| q.id).collect(),
        texts,
        lists,
        lat_us,
        cpu_us,
    })
}

fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.out_dir)?;
    let suffix = format!(
        "{}{}",
        if args.source == SourceKind::Memtable {
            "_memtable"
        } else {
            ""
        },
        if args.doc_analysis == DocAnalysis::Peer {
            "_peerdocs"
        } else {
            ""
        }
    );

    let docs = read_jsonl(&args.corpus)?;
    let mut queries = read_jsonl(&args.queries)?;
    queries.truncate(args.n_query);
    let doc_text: HashMap<u64, &str> = docs.iter().map(|d| (d.id, d.text.as_str())).collect();
    eprintln!(
        "corpus {} docs, {:.1} MiB text; {} queries",
        docs.len(),
        docs.iter().map(|d| d.text.len()).sum::<usize>() as f64 / (1 << 20) as f64,
        queries.len()
    );

    if let Some(p) = &args.dump_peer_tokens {
        let mut w = BufWriter::new(File::create(p)?);
        for q in &queries {
            let t = peer_query(&q.text, args.max_query_tokens);
            writeln!(w, "{}", serde_json::json!({"q": q.id, "t": t}))?;
        }
        for d in &docs {
            writeln!(
                w,
                "{}",
                serde_json::json!({"d": d.id, "t": peer_tokens(&d.text)})
            )?;
        }
        w.flush()?;
    }

    // How the two analyses see the corpus and the queries.
    let analyzer = Analyzer::new(&TextConfig::default());
    analysis_report("documents", docs.iter().map(|d| d.text.as_str()), &analyzer);
    analysis_report(
        "queries",
        queries.iter().map(|q| q.text.as_str()),
        &analyzer,
    );

    // Index.
    let tmp = match &args.tmp_dir {
        Some(d) => tempfile::Builder::new()
            .prefix("bm25_cairn_")
            .tempdir_in(d)?,
        None => tempfile::Builder::new().prefix("bm25_cairn_").tempdir()?,
    };
    let path = tmp.path().join("db");
    // The memtable must not seal by itself: one flush at the end makes one segment.
    let opts = Options::default()
        .memtable_max_rows(docs.len() + 1)
        .memtable_max_bytes(usize::MAX / 2);
    let db = Database::open_with(&path, opts)?;
    let coll = db.create_collection("docs", CollectionConfig::new(1, Metric::Cosine))?;
    let t0 = Instant::now();
    for chunk in docs.chunks(args.batch.max(1)) {
        let batch: Vec<Record> = chunk
            .iter()
            .map(|d| {
                let text = match args.doc_analysis {
                    DocAnalysis::Cairn => d.text.clone(),
                    DocAnalysis::Peer => as_cairn_words(&peer_tokens(&d.text), &analyzer),
                };
                Record::new(d.id, vec![1.0])
                    .with_text(text)
                    .with_field("bucket", bucket(d.id) as i64)
            })
            .collect();
        coll.upsert(batch)?;
    }
    let ingest_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    if args.source == SourceKind::Segment {
        coll.flush()?;
    }
    let flush_s = t1.elapsed().as_secs_f64();
    let index_s = t0.elapsed().as_secs_f64();
    if args.delete_percent > 0 {
        let gone: Vec<u64> = docs
            .iter()
            .map(|d| d.id)
            .filter(|&id| deleted(id, args.delete_percent))
            .collect();
        let n = coll.delete(&gone)?;
        eprintln!(
            "deleted {n} records ({:.1} %)",
            100.0 * n as f64 / docs.len() as f64
        );
    }
    let mut files = HashMap::new();
    let disk = dir_bytes(&path, &mut files)?;
    let text_disk = files.get("text").copied().unwrap_or(0);
    let mut files: Vec<(String, u64)> = files.into_iter().filter(|f| f.1 > 0).collect();
    files.sort_by_key(|f| std::cmp::Reverse(f.1));
    let stats = coll.stats();
    eprintln!(
        "indexed {} records in {index_s:.2} s (upsert {ingest_s:.2} s + flush {flush_s:.2} s); \
         {} segment(s), memtable rows {}; on disk {:.1} MiB (segment text file {:.1} MiB); \
         bytes by file name: {files:?}",
        coll.len(),
        stats.segments.len(),
        stats.memtable_rows,
        disk as f64 / (1 << 20) as f64,
        text_disk as f64 / (1 << 20) as f64,
    );

    if args.ab_passes > 0 {
        return ab(&coll, &analyzer, &queries, &args);
    }

    // Peer run files.
    let mut peers: Vec<(&str, HashMap<u64, List>)> = Vec::new();
    for p in PEERS {
        let f = args.out_dir.join(format!("bm25_{p}.run"));
        if f.exists() {
            peers.push((p, read_run(&f)?));
        }
    }

    let mut summary_rows = Vec::new();
    for &mode in &args.modes {
        let r = run_mode(&coll, &analyzer, mode, &queries, &args)?;
        let name = match mode {
            Mode::Peer32 => format!("bm25_cairn{suffix}.run"),
            Mode::Raw => format!("bm25_cairn{suffix}_raw.run"),
        };
        let tag = format!("cairn{suffix}_{}", mode.name());
        write_run(&args.out_dir.join(&name), &r.qids, &r.lists, &tag)?;
        if args.latency_files {
            let f = args
                .out_dir
                .join(format!("cairn_latency{suffix}_{}.tsv", mode.name()));
            let mut w = BufWriter::new(File::create(f)?);
            for (((q, us), cpu), l) in r.qids.iter().zip(&r.lat_us).zip(&r.cpu_us).zip(&r.lists) {
                let cpu = cpu.map_or("-".to_string(), |c| format!("{c:.1}"));
                writeln!(w, "{q}\t{us:.1}\t{}\t{cpu}", l.len())?;
            }
            w.flush()?;
        }

        let mut sorted = r.lat_us.clone();
        sorted.sort_by(f64::total_cmp);
        let total: f64 = sorted.iter().sum();
        let (mean, p50, p99) = (
            total / sorted.len() as f64,
            percentile(&sorted, 50.0),
            percentile(&sorted, 99.0),
        );
        let qps = sorted.len() as f64 / (total / 1e6);
        let empty = r.lists.iter().filter(|l| l.is_empty()).count();
        println!(
            "== cairn{suffix} {}: {} queries, QPS {qps:.0}, mean {mean:.1} µs, p50 {p50:.1} µs, \
             p99 {p99:.1} µs; {empty} queries without hits; wrote {name}",
            mode.name(),
            sorted.len()
        );

        let mut agreement = Vec::new();
        for (p, run) in &peers {
            let theirs = peer_lists(run, &r.qids);
            let (mut ov, mut top1, mut n) = (0.0, 0usize, 0usize);
            let mut classes: HashMap<Disagreement, Vec<u64>> = HashMap::new();
            let mut score_rel = Vec::new();
            for (((qid, a), b), text) in r.qids.iter().zip(&r.lists).zip(&theirs).zip(&r.texts) {
                let Some(b) = b else { continue };
                n += 1;
                ov += overlap(a, b) as f64 / args.k as f64;
                top1 += usize::from(!a.is_empty() && !b.is_empty() && a[0].0 == b[0].0);
                // Cairn's scores further down, for the documents only the peer lists.
                let deep: HashMap<u64, f32> = if overlap(a, b) < b.len() {
                    coll.search(&SearchRequest::by_text(text.clone()).k(DEEP))?
                        .iter()
                        .map(|h| (h.id.as_u64().unwrap(), h.score))
                        .collect()
                } else {
                    HashMap::new()
                };
                classes
                    .entry(classify(a, b, args.k, &deep))
                    .or_default()
                    .push(*qid);
                let bs: HashMap<u64, f32> = b.iter().copied().collect();
                for (id, s) in a {
                    if let Some(&t) = bs.get(id) {
                        score_rel.push(rel(*s, t));
                    }
                }
            }
            if n == 0 {
                continue;
            }
            score_rel.sort_by(f64::total_cmp);
            let count = |d| classes.get(&d).map_or(0, Vec::len);
            let (same, tie, other_n) = (
                count(Disagreement::SameSet),
                count(Disagreement::TieAtCut),
                count(Disagreement::Other),
            );
            println!(
                "   vs {p:<9} {n:>4} queries: top-{} overlap {:.4}, same top-1 {:.4}; lists: same \
                 set {}, tie at the cut {}, other {}; common docs' score ratio: median rel. diff \
                 {:.2e}, max {:.2e}",
                args.k,
                ov / n as f64,
                top1 as f64 / n as f64,
                same,
                tie,
                other_n,
                percentile(&score_rel, 50.0),
                score_rel.last().copied().unwrap_or(f64::NAN),
            );
            if *p == "bm25s" {
                let mut other = classes.remove(&Disagreement::Other).unwrap_or_default();
                other.truncate(40);
                println!("   first queries that differ from bm25s otherwise: {other:?}");
            }
            agreement.push(serde_json::json!({
                "peer": p, "n_queries": n,
                "overlap_at_10": ov / n as f64, "top1_same": top1 as f64 / n as f64,
                "same_set": same, "tie_at_cut": tie, "other": other_n,
            }));
        }
        summary_rows.push(serde_json::json!({
            "engine": format!("cairn{suffix}"), "mode": mode.name(), "n_docs": docs.len(),
            "index_s": index_s, "upsert_s": ingest_s, "flush_s": flush_s,
            "disk_bytes": disk, "text_file_bytes": text_disk,
            "n_queries": sorted.len(), "qps": qps, "mean_us": mean, "p50_us": p50, "p99_us": p99,
            "queries_without_hits": empty, "agreement": agreement,
        }));

        // Details of chosen queries.
        if let Some((_, run)) = peers.iter().find(|(p, _)| *p == args.inspect_peer) {
            for &qid in &args.inspect {
                let Some(i) = r.qids.iter().position(|&q| q == qid) else {
                    continue;
                };
                inspect(
                    &coll,
                    &analyzer,
                    &r,
                    i,
                    run.get(&qid).cloned().unwrap_or_default(),
                    &args,
                    &doc_text,
                )?;
            }
        }
    }
    let summary = serde_json::json!({
        "corpus": args.corpus.file_name().map(|f| f.to_string_lossy().into_owned()),
        "source": match args.source { SourceKind::Segment => "segment", SourceKind::Memtable => "memtable" },
        "doc_analysis": match args.doc_analysis { DocAnalysis::Cairn => "cairn", DocAnalysis::Peer => "peer" },
        "batch": args.batch, "k": args.k, "warmup": args.warmup, "rows": summary_rows,
    });
    std::fs::write(
        args.out_dir.join(format!("cairn_bm25{suffix}.json")),
        serde_json::to_string_pretty(&summary)? + "\n",
    )?;
    drop(coll);
    drop(db);
    Ok(())
}

/// `--ab-passes`: MaxScore and the exhaustive evaluation, interleaved, for every mode and
/// filter; prints one line per pass and variant, and the p50 ratio of each pass.
fn ab(
    coll: &Collection,
    analyzer: &Analyzer,
    queries: &[Line],
    args: &Args,
) -> Result<(), BoxError> {
    let filters: Vec<Option<u64>> = std::iter::once(None)
        .chain(args.filter_percent.iter().copied().map(Some))
        .collect();
    let mut rows = Vec::new();
    for &mode in &args.modes {
        for &fp in &filters {
            let filter = fp
                .map(|p| Filter::parse(&format!("bucket < {p}")))
                .transpose()?;
            let label = format!(
                "{} filter {} deleted {} %",
                mode.name(),
                fp.map_or("none".to_string(), |p| format!("bucket < {p}")),
                args.delete_percent
            );
            for pass in 1..=args.ab_passes {
                let mut p50s = [0.0; 2];
                let mut lists: [Vec<List>; 2] = [Vec::new(), Vec::new()];
                for (v, exhaustive) in [false, true].into_iter().enumerate() {
                    cairndb::text::set_exhaustive_for_benchmarks(exhaustive);
                    let a = Args {
                        filter: filter.clone(),
                        ..args.clone()
                    };
                    let r = run_mode(coll, analyzer, mode, queries, &a)?;
                    cairndb::text::set_exhaustive_for_benchmarks(false);
                    let mut sorted = r.lat_us.clone();
                    sorted.sort_by(f64::total_cmp);
                    let total: f64 = sorted.iter().sum();
                    let qps = sorted.len() as f64 / (total / 1e6);
                    let (p50, p99) = (percentile(&sorted, 50.0), percentile(&sorted, 99.0));
                    let hits: usize = r.lists.iter().map(Vec::len).sum();
                    let name = if exhaustive { "exhaustive" } else { "maxscore" };
                    println!(
                        "== ab {label} pass {pass} {name:<10}: QPS {qps:.0}, p50 {p50:.1} µs, \
                         p99 {p99:.1} µs, {:.2} hits per query",
                        hits as f64 / sorted.len() as f64
                    );
                    rows.push(serde_json::json!({
                        "mode": mode.name(), "filter_percent": fp,
                        "delete_percent": args.delete_percent, "pass": pass, "variant": name,
                        "qps": qps, "p50_us": p50, "p99_us": p99,
                    }));
                    p50s[v] = p50;
                    lists[v] = r.lists;
                }
                if lists[0] != lists[1] {
                    return Err(format!("{label}: MaxScore and exhaustive top-k differ").into());
                }
                println!(
                    "   pass {pass}: p50 exhaustive / MaxScore = {:.2}x (identical top-{} lists)",
                    p50s[1] / p50s[0],
                    args.k
                );
            }
        }
    }
    std::fs::write(
        args.out_dir
            .join(format!("cairn_bm25_ab_del{}.json", args.delete_percent)),
        serde_json::to_string_pretty(&serde_json::json!({"rows": rows}))? + "\n",
    )?;
    Ok(())
}

/// Prints both lists of query `i` of `r`, each listed document's rank and score on both
/// sides, and the analyses that differ.
fn inspect(
    coll: &Collection,
    analyzer: &Analyzer,
    r: &ModeResult,
    i: usize,
    peer: List,
    args: &Args,
    doc_text: &HashMap<u64, &str>,
) -> Result<(), BoxError> {
    let text = &r.texts[i];
    println!("\n-- query {} ({}): {text:?}", r.qids[i], r.mode.name());
    println!("   cairn terms: {:?}", analyzer.terms(text));
    println!(
        "   peer terms:  {:?}",
        peer_query(text, args.max_query_tokens)
    );
    // Cairn's rank and score of any document: a deep search.
    let resp = coll.query(&SearchRequest::by_text(text.clone()).k(DEEP).explain(true))?;
    if let Some(plan) = resp.explain.as_ref().and_then(|e| e.text.as_ref()) {
        println!(
            "   cairn N {} avgdl {:.4}; df {:?}",
            plan.documents,
            plan.avg_len,
            plan.terms.iter().zip(&plan.df).collect::<Vec<_>>()
        );
    }
    let deep = resp.hits;
    let cairn_at: HashMap<u64, (usize, f32)> = deep
        .iter()
        .enumerate()
        .map(|(rank, h)| (h.id.as_u64().unwrap(), (rank + 1, h.score)))
        .collect();
    let peer_at: HashMap<u64, (usize, f32)> = peer
        .iter()
        .enumerate()
        .map(|(rank, &(id, s))| (id, (rank + 1, s)))
        .collect();
    let mut ids: Vec<u64> = r.lists[i].iter().map(|x| x.0).collect();
    let mine: HashSet<u64> = ids.iter().copied().collect();
    ids.extend(peer.iter().map(|x| x.0).filter(|id| !mine.contains(id)));
    println!(
        "   {:>7} {:>12} {:>12} {:>8}  text",
        "doc", "cairn", args.inspect_peer, "rel.diff"
    );
    for id in ids {
        let c = cairn_at.get(&id);
        let p = peer_at.get(&id);
        let fmt =
            |x: Option<&(usize, f32)>| x.map_or("-".to_string(), |(r, s)| format!("{r}:{s:.4}"));
        let d = match (c, p) {
            (Some(c), Some(p)) => format!("{:.1e}", rel(c.1, p.1)),
            _ => "-".into(),
        };
        let t = doc_text.get(&id).copied().unwrap_or("");
        println!("   {id:>7} {:>12} {:>12} {d:>8}  {t:?}", fmt(c), fmt(p));
        let (ct, pt) = (analyzer.terms(t), peer_tokens(t));
        if ct != pt {
            println!(
                "   {:>7} analyses differ: cairn {ct:?}\n   {:>7}                  peer  {pt:?}",
                "", ""
            );
        }
    }
    Ok(())
}
