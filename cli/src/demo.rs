//! `cairn demo`: Cairn end to end on a real data set, with the time each step takes.
//!
//! The data set is 5,000 PyPI package summaries (name, one-line summary, year of the latest
//! release), the most downloaded packages with a summary of at least four words. It is
//! compiled into the binary, so the demo runs from any directory.

use std::fs;
use std::io::Write;
use std::time::{Duration, Instant};

use cairndb::{
    Collection, CollectionConfig, Database, Filter, Hit, Metric, PlanKind, Record, SearchRequest,
    Value,
};
use serde::Deserialize;

use crate::DemoArgs;
use crate::embed::{DIM, Embedder};
use crate::read::stats_text;
use crate::util::{
    CliError, CliResult, Table, fail, fmt_bytes, fmt_dur, one_line, per_sec, plural,
    replace_demo_dir, thousands,
};

/// The data set: one JSON object per line.
const PACKAGES: &str = include_str!("../data/demo/pypi-5k.jsonl");
const COLLECTION: &str = "pypi";
const BATCH: usize = 1000;
const QUERIES: &[&str] = &[
    "fast json parser",
    "machine learning library for time series",
    "http client async",
    "command line progress bar",
    "read and write excel spreadsheets",
];

#[derive(Deserialize)]
struct Package {
    name: String,
    summary: String,
    #[serde(default)]
    year: Option<i64>,
}

/// Prints one timed step: label, time, and a note (a rate, a count).
pub fn step(out: &mut impl Write, label: &str, took: Duration, note: &str) -> CliResult<()> {
    let line = format!("     {label:<56} {:>9}  {note}", fmt_dur(took));
    outln!(out, "{}", line.trim_end());
    Ok(())
}

fn field<'a>(h: &'a Hit, name: &str) -> Option<&'a Value> {
    h.payload.as_ref().and_then(|p| p.get(name))
}

fn name_of(h: &Hit) -> String {
    match field(h, "name") {
        Some(Value::Str(s)) => s.clone(),
        _ => format!("#{}", h.id),
    }
}

fn query(coll: &Collection, e: &Embedder, text: &str, k: usize) -> CliResult<(Vec<Hit>, Duration)> {
    let req = SearchRequest::new(e.embed(text))
        .k(k)
        .with_text(true)
        .with_payload(true);
    let t = Instant::now();
    let hits = coll.search(&req)?;
    Ok((hits, t.elapsed()))
}

fn print_hits(out: &mut impl Write, hits: &[Hit]) -> CliResult<()> {
    let mut t = Table::new(&[">#", ">score", "package", ">year", "summary"]);
    for (i, h) in hits.iter().enumerate() {
        let year = match field(h, "year") {
            Some(Value::Int(y)) => y.to_string(),
            _ => String::new(),
        };
        t.row(vec![
            (i + 1).to_string(),
            format!("{:.3}", h.score),
            name_of(h),
            year,
            one_line(h.text.as_deref().unwrap_or(""), 72),
        ]);
    }
    write!(out, "{}", t.render("       ")).map_err(CliError::output)
}

fn search_and_print(
    out: &mut impl Write,
    coll: &Collection,
    e: &Embedder,
    q: &str,
) -> CliResult<Vec<Hit>> {
    let (hits, took) = query(coll, e, q, 5)?;
    outln!(out, "     \"{q}\"  ({})", fmt_dur(took));
    print_hits(out, &hits)?;
    Ok(hits)
}

/// (id, score) of each hit, for comparing result lists.
fn ids_scores(hits: &[Hit]) -> Vec<(cairndb::Id, f32)> {
    hits.iter().map(|h| (h.id.clone(), h.score)).collect()
}

/// `cairn demo`: the numbered steps in order, each its own function.
pub fn run(a: &DemoArgs) -> CliResult<()> {
    let started = Instant::now();
    let mut out = std::io::stdout().lock();
    let out = &mut out;
    let replaced = replace_demo_dir(&a.dir)?;
    intro(out, a, replaced)?;

    outln!(out, "\n  1. Load and ingest");
    let (db, coll, emb, n) = load_and_ingest(out, a)?;

    outln!(
        out,
        "\n  2. Search: cosine similarity, HNSW index (ef 64), top 5"
    );
    let first = vector_searches(out, &coll, &emb)?;

    outln!(out, "\n  3. Filters, full-text (BM25) and hybrid search");
    filtered_search(out, &coll, &emb)?;
    text_search(out, &coll)?;
    hybrid_search(out, &coll, &emb)?;

    outln!(out, "\n  4. Get, delete, upsert");
    let Some(top) = first.first() else {
        return Err(fail("the first demo query found nothing"));
    };
    show_record(out, &coll, &top.id)?;
    delete_and_check(out, &coll, &emb, top)?;
    let extra = upsert_new(out, &coll, &emb, n)?;

    outln!(out, "\n  5. Persistence: close, reopen, search again");
    let (db, coll) = reopen_and_compare(out, a, db, coll, &emb, extra)?;
    verify(out, &db)?;

    outln!(
        out,
        "\n  6. Throughput: synthetic {} × {} vectors, L2",
        thousands(crate::synth::ROWS as u64),
        crate::synth::DIM
    );
    crate::synth::run(&db, out)?;

    outln!(out, "\n  7. The database now");
    database_now(out, db, coll)?;

    outln!(out);
    finish(out, a)?;
    outln!(out, "Demo finished in {}.", fmt_dur(started.elapsed()));
    Ok(())
}

/// What the demo is about to do, and where.
fn intro(out: &mut impl Write, a: &DemoArgs, replaced: bool) -> CliResult<()> {
    outln!(out, "Cairn demo: an embedded vector database, end to end");
    outln!(
        out,
        "  database   {} ({})",
        a.dir.display(),
        if replaced {
            "old demo database replaced"
        } else {
            "new"
        }
    );
    outln!(
        out,
        "  data       5,000 real PyPI package summaries (the most downloaded packages), built into this binary"
    );
    outln!(
        out,
        "  vectors    {DIM}-d lexical hashing embedding: words and character trigrams hashed (FNV-1a)\n             \
         into ±1 buckets, L2-normalized. NOT a neural embedding: it finds shared words and word\n             \
         pieces (\"parser\" ~ \"parsing\"), not synonyms (\"fast\" !~ \"quick\")."
    );
    Ok(())
}

/// Step 1: opens the database, parses and embeds the data set, ingests it and seals it.
/// Returns the database, the collection, the embedder and the number of packages.
fn load_and_ingest(
    out: &mut impl Write,
    a: &DemoArgs,
) -> CliResult<(Database, Collection, Embedder, u64)> {
    let t = Instant::now();
    let db = Database::open(&a.dir)?;
    step(out, "open (create) the database", t.elapsed(), "")?;

    let t = Instant::now();
    let packages = parse_packages()?;
    let n = packages.len() as u64;
    step(
        out,
        &format!("parse {} packages", thousands(n)),
        t.elapsed(),
        "",
    )?;

    let t = Instant::now();
    let texts: Vec<String> = packages
        .iter()
        .map(|p| format!("{} {}", p.name, p.summary))
        .collect();
    let emb = Embedder::fit(texts.iter().map(String::as_str));
    let vectors: Vec<Vec<f32>> = texts.iter().map(|t| emb.embed(t)).collect();
    step(
        out,
        &format!("embed {} name + summary texts", thousands(n)),
        t.elapsed(),
        "",
    )?;

    let coll = db.create_collection(COLLECTION, CollectionConfig::new(DIM, Metric::Cosine))?;
    ingest(out, &coll, &packages, vectors)?;
    let t = Instant::now();
    coll.flush()?;
    step(
        out,
        "flush: seal the memtable into a segment",
        t.elapsed(),
        "",
    )?;
    Ok((db, coll, emb, n))
}

/// The built-in data set, one package a line.
fn parse_packages() -> CliResult<Vec<Package>> {
    PACKAGES
        .lines()
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| fail(format_args!("built-in data set, line {}: {e}", i + 1)))
        })
        .collect()
}

/// Upserts the packages (summary as text, name and year as fields) in batches of [`BATCH`].
fn ingest(
    out: &mut impl Write,
    coll: &Collection,
    packages: &[Package],
    vectors: Vec<Vec<f32>>,
) -> CliResult<()> {
    let n = packages.len() as u64;
    let t = Instant::now();
    let records: Vec<Record> = packages
        .iter()
        .zip(vectors)
        .enumerate()
        .map(|(i, (p, v))| {
            let r = Record::new(i as u64, v)
                .with_text(p.summary.clone())
                .with_field("name", p.name.clone());
            match p.year {
                Some(y) => r.with_field("year", y),
                None => r,
            }
        })
        .collect();
    let mut batches = 0;
    for chunk in records.chunks(BATCH) {
        coll.upsert(chunk.to_vec())?;
        batches += 1;
    }
    let took = t.elapsed();
    step(
        out,
        &format!(
            "ingest {} records: {batches} batches, each fsync'ed",
            thousands(n)
        ),
        took,
        &format!("{} records/s", per_sec(n, took)),
    )
}

/// Step 2: the demo queries; returns the hits of the first.
fn vector_searches(out: &mut impl Write, coll: &Collection, emb: &Embedder) -> CliResult<Vec<Hit>> {
    let mut first = Vec::new();
    for (i, q) in QUERIES.iter().enumerate() {
        let hits = search_and_print(out, coll, emb, q)?;
        if i == 0 {
            first = hits;
        }
    }
    Ok(first)
}

/// A vector search with a filter, and the plan the planner chose for each segment.
fn filtered_search(out: &mut impl Write, coll: &Collection, emb: &Embedder) -> CliResult<()> {
    let q = "http client async";
    let filter = Filter::parse("year >= 2024 AND NOT name IN (\"aiohttp\", \"httpx\")")?;
    let req = SearchRequest::new(emb.embed(q))
        .k(5)
        .filter(filter.clone())
        .explain(true)
        .with_text(true)
        .with_payload(true);
    let t = Instant::now();
    let resp = coll.query(&req)?;
    let took = t.elapsed();
    outln!(out, "     \"{q}\" WHERE {filter}  ({})", fmt_dur(took));
    print_hits(out, &resp.hits)?;
    if let Some(x) = &resp.explain {
        for p in x.vector.iter().filter(|p| p.rows > 0) {
            outln!(
                out,
                "       plan: {} of {} rows match -> {}",
                thousands(p.matched as u64),
                thousands(p.live as u64),
                match p.plan {
                    PlanKind::Graph => format!(
                        "HNSW walk admitting only matches (ef {})",
                        p.ef.unwrap_or(0)
                    ),
                    PlanKind::Exact => "exact scan of the matching rows".to_owned(),
                    PlanKind::Skip => "skipped".to_owned(),
                }
            );
        }
    }
    Ok(())
}

/// A full-text (BM25) search.
fn text_search(out: &mut impl Write, coll: &Collection) -> CliResult<()> {
    let q = "yaml parser";
    let t = Instant::now();
    let hits = coll.search(
        &SearchRequest::by_text(q)
            .k(5)
            .with_text(true)
            .with_payload(true),
    )?;
    outln!(out, "     BM25 \"{q}\"  ({})", fmt_dur(t.elapsed()));
    print_hits(out, &hits)
}

/// A hybrid search, with each hit's rank and score in both legs.
fn hybrid_search(out: &mut impl Write, coll: &Collection, emb: &Embedder) -> CliResult<()> {
    let q = "pdf text extraction";
    let t = Instant::now();
    let hits = coll.search(
        &SearchRequest::new(emb.embed(q))
            .text(q)
            .k(5)
            .with_text(true)
            .with_payload(true),
    )?;
    outln!(
        out,
        "     hybrid \"{q}\": vector and BM25 legs, reciprocal rank fusion  ({})",
        fmt_dur(t.elapsed())
    );
    let mut t = Table::new(&[">#", ">fused", ">vector", ">BM25", "package", "summary"]);
    let leg = |l: Option<cairndb::LegScore>| {
        l.map_or_else(|| "-".to_owned(), |l| format!("#{} {:.2}", l.rank, l.score))
    };
    for (i, h) in hits.iter().enumerate() {
        let legs = h.legs.unwrap_or(cairndb::Legs {
            vector: None,
            text: None,
            fused: h.score,
        });
        t.row(vec![
            (i + 1).to_string(),
            format!("{:.4}", h.score),
            leg(legs.vector),
            leg(legs.text),
            name_of(h),
            one_line(h.text.as_deref().unwrap_or(""), 56),
        ]);
    }
    write!(out, "{}", t.render("       ")).map_err(CliError::output)
}

/// Gets one record and shows its payload, text and the start of its vector.
fn show_record(out: &mut impl Write, coll: &Collection, id: &cairndb::Id) -> CliResult<()> {
    let t = Instant::now();
    let rec = coll.get(id)?;
    let took = t.elapsed();
    if let Some(r) = &rec {
        let nonzero: Vec<(usize, f32)> = r
            .vector
            .iter()
            .copied()
            .enumerate()
            .filter(|&(_, x)| x != 0.0)
            .collect();
        let head: Vec<String> = nonzero
            .iter()
            .take(4)
            .map(|(i, x)| format!("[{i}] {x:.3}"))
            .collect();
        let payload = serde_json::to_string(&r.payload).unwrap_or_default();
        step(out, &format!("get id {id}"), took, "")?;
        outln!(
            out,
            "       id {}  payload {payload}\n       text \"{}\"\n       vector {} floats, unit length, {} non-zero: {}, …",
            r.id,
            one_line(r.text.as_deref().unwrap_or(""), 80),
            r.vector.len(),
            nonzero.len(),
            head.join(", ")
        );
    }
    Ok(())
}

/// Deletes the first query's top hit, and checks that search and get no longer find it.
fn delete_and_check(
    out: &mut impl Write,
    coll: &Collection,
    emb: &Embedder,
    top: &Hit,
) -> CliResult<()> {
    let (gone_id, gone_name) = (top.id.clone(), name_of(top));
    let t = Instant::now();
    let existed = coll.delete(std::slice::from_ref(&gone_id))?;
    step(
        out,
        &format!("delete id {gone_id} ({gone_name}), durable on return"),
        t.elapsed(),
        &format!("{existed} existed"),
    )?;
    let after = search_and_print(out, coll, emb, QUERIES[0])?;
    let absent = !after.iter().any(|h| h.id == gone_id) && coll.get(gone_id)?.is_none();
    outln!(
        out,
        "       {gone_name} is {} (search and get)",
        if absent {
            "gone"
        } else {
            "STILL THERE (unexpected)"
        }
    );
    Ok(())
}

/// Upserts a new record with id `new_id` and finds it; returns the query that finds it.
fn upsert_new(
    out: &mut impl Write,
    coll: &Collection,
    emb: &Embedder,
    new_id: u64,
) -> CliResult<&'static str> {
    let t = Instant::now();
    coll.upsert(
        Record::new(new_id, emb.embed("cairndb Embedded vector database: crash-safe storage and HNSW nearest-neighbor search"))
            .with_text("Embedded vector database: crash-safe storage and HNSW nearest-neighbor search")
            .with_field("name", "cairndb")
            .with_field("year", 2026),
    )?;
    step(
        out,
        &format!("upsert id {new_id} (cairndb), durable on return"),
        t.elapsed(),
        "",
    )?;
    let extra = "embedded vector database";
    search_and_print(out, coll, emb, extra)?;
    Ok(extra)
}

/// Step 5: closes the database, opens it again, and checks that every query (the demo's and
/// `extra`) returns the same hits and the collection the same number of records.
fn reopen_and_compare(
    out: &mut impl Write,
    a: &DemoArgs,
    db: Database,
    coll: Collection,
    emb: &Embedder,
    extra: &str,
) -> CliResult<(Database, Collection)> {
    let mut before = Vec::new();
    for q in QUERIES.iter().chain([&extra]) {
        before.push(ids_scores(&query(&coll, emb, q, 5)?.0));
    }
    let count = coll.len();
    drop(coll);
    drop(db);
    let t = Instant::now();
    let db = Database::open(&a.dir)?;
    let coll = db.collection(COLLECTION)?;
    step(
        out,
        "reopen: manifest, segment checks, log replay",
        t.elapsed(),
        "",
    )?;
    let mut same = 0;
    for (q, b) in QUERIES.iter().chain([&extra]).zip(&before) {
        if ids_scores(&query(&coll, emb, q, 5)?.0) == *b {
            same += 1;
        }
    }
    outln!(
        out,
        "       {same} of {} queries return identical hits (ids and scores); records {} before, {} after",
        before.len(),
        thousands(count as u64),
        thousands(coll.len() as u64)
    );
    if same != before.len() || count != coll.len() {
        return Err(fail("results changed after reopening the database"));
    }
    search_and_print(out, &coll, emb, QUERIES[0])?;
    Ok((db, coll))
}

/// Checks every checksum of every segment.
fn verify(out: &mut impl Write, db: &Database) -> CliResult<()> {
    let t = Instant::now();
    let report = db.verify()?;
    step(
        out,
        "verify: every checksum of every segment",
        t.elapsed(),
        &format!(
            "{}, {}",
            plural(report.segments, "segment"),
            fmt_bytes(report.bytes)
        ),
    )
}

/// Step 7: seals the demo collection's last changes, then shows the database's statistics.
fn database_now(out: &mut impl Write, db: Database, coll: Collection) -> CliResult<()> {
    // `pypi` still holds the upsert and delete of step 4 in its memtable, so the log that
    // carries them (and, after them, the synthetic rows) must be kept until it is sealed.
    let wal_before = db.stats().wal_bytes;
    let t = Instant::now();
    coll.flush()?;
    let stats = db.stats();
    step(
        out,
        &format!("flush `{COLLECTION}`: seal its last changes, trim the log"),
        t.elapsed(),
        &format!(
            "log {} -> {}",
            fmt_bytes(wal_before),
            fmt_bytes(stats.wal_bytes)
        ),
    )?;
    write!(out, "{}", stats_text(&stats, "     ")).map_err(CliError::output)?;
    drop(coll);
    drop(db);
    Ok(())
}

/// Keeps the database (`--keep`) or removes it.
fn finish(out: &mut impl Write, a: &DemoArgs) -> CliResult<()> {
    if a.keep {
        outln!(
            out,
            "Kept the database in {d}. Try: cairn stats {d}   or   cairn get {d} {COLLECTION} 0",
            d = a.dir.display()
        );
    } else {
        fs::remove_dir_all(&a.dir)
            .map_err(|e| fail(format_args!("cannot remove {}: {e}", a.dir.display())))?;
        outln!(
            out,
            "Removed the demo database (run with --keep to keep it)."
        );
    }
    Ok(())
}
