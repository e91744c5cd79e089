//! The commands that read a database: `search`, `get`, `stats`, `verify`.

use std::io::Write;
use std::time::Instant;

use cairndb::{DbStats, Hit, SearchRequest};
use serde::Serialize;

use crate::input::{parse_vector, read_fvecs};
use crate::util::{
    CliResult, Table, fail, fmt_bytes, fmt_dur, one_line, open_collection, open_existing, plural,
    thousands,
};
use crate::{GetArgs, SearchArgs, StatsArgs, VerifyArgs};

/// One line of `search --json` output.
#[derive(Serialize)]
struct HitsLine<'a> {
    hits: &'a [Hit],
}

fn to_json<T: Serialize>(v: &T) -> CliResult<String> {
    serde_json::to_string(v).map_err(|e| fail(format_args!("cannot write JSON: {e}")))
}

pub fn search(a: &SearchArgs) -> CliResult<()> {
    // The queries are read before the database is opened: bad input fails fast.
    let queries = match (&a.vector, &a.queries) {
        (Some(v), _) => vec![parse_vector(v)?],
        (None, Some(path)) => read_fvecs(path)?,
        (None, None) => return Err(fail("give a query with --vector or --queries")),
    };
    let (_db, coll) = open_collection(&a.db, &a.collection)?;
    let many = queries.len() > 1;
    let mut out = std::io::stdout().lock();
    for (i, q) in queries.into_iter().enumerate() {
        let req = SearchRequest::new(q)
            .k(a.k)
            .exact(a.exact)
            .with_text(a.text)
            .with_payload(a.payload);
        let started = Instant::now();
        let hits = coll.search(&req).map_err(|e| {
            if many {
                fail(format_args!("query {i}: {e}"))
            } else {
                e.into()
            }
        })?;
        let took = started.elapsed();
        if a.json {
            outln!(out, "{}", to_json(&HitsLine { hits: &hits })?);
            continue;
        }
        let label = if many {
            format!("query {i}: ")
        } else {
            String::new()
        };
        outln!(out, "{label}{} hits in {}", hits.len(), fmt_dur(took));
        if !hits.is_empty() {
            write!(out, "{}", hits_table(&hits, a.text, a.payload)?)
                .map_err(crate::util::CliError::output)?;
        }
        if many {
            outln!(out);
        }
    }
    Ok(())
}

/// Hits as an aligned table: rank, id, score, and text and payload when asked for.
fn hits_table(hits: &[Hit], text: bool, payload: bool) -> CliResult<String> {
    let mut headers = vec![">rank", ">id", ">score"];
    if text {
        headers.push("text");
    }
    if payload {
        headers.push("payload");
    }
    let mut t = Table::new(&headers);
    for (rank, h) in hits.iter().enumerate() {
        let mut row = vec![
            (rank + 1).to_string(),
            h.id.to_string(),
            format!("{:.6}", h.score),
        ];
        if text {
            row.push(one_line(h.text.as_deref().unwrap_or(""), 80));
        }
        if payload {
            let p = match &h.payload {
                Some(p) if !p.is_empty() => to_json(p)?,
                _ => String::new(),
            };
            row.push(one_line(&p, 100));
        }
        t.row(row);
    }
    Ok(t.render("  "))
}

pub fn get(a: &GetArgs) -> CliResult<()> {
    let (_db, coll) = open_collection(&a.db, &a.collection)?;
    match coll.get(a.id)? {
        Some(record) => {
            let mut out = std::io::stdout().lock();
            outln!(out, "{}", to_json(&record)?);
            Ok(())
        }
        None => Err(fail(format_args!(
            "record {} not found in collection `{}`",
            a.id, a.collection
        ))),
    }
}

pub fn stats(a: &StatsArgs) -> CliResult<()> {
    let db = open_existing(&a.db, cairndb::Durability::Sync)?;
    let stats = db.stats();
    let mut out = std::io::stdout().lock();
    if a.json {
        let j = serde_json::to_string_pretty(&stats)
            .map_err(|e| fail(format_args!("cannot write JSON: {e}")))?;
        outln!(out, "{j}");
    } else {
        outln!(
            out,
            "database {}: {}, write-ahead log {}",
            a.db.display(),
            plural(stats.collections.len(), "collection"),
            fmt_bytes(stats.wal_bytes)
        );
        write!(out, "{}", stats_text(&stats, "  ")).map_err(crate::util::CliError::output)?;
    }
    Ok(())
}

/// Collections as a table, then each collection's segments.
pub fn stats_text(stats: &DbStats, indent: &str) -> String {
    if stats.collections.is_empty() {
        return String::new();
    }
    let mut t = Table::new(&[
        "collection",
        ">dim",
        "metric",
        ">records",
        ">memtable rows",
        ">memtable bytes",
        ">segments",
        ">segment bytes",
    ]);
    for c in &stats.collections {
        t.row(vec![
            c.name.clone(),
            c.dim.to_string(),
            c.metric.to_string(),
            thousands(c.records as u64),
            thousands(c.memtable_rows as u64),
            fmt_bytes(c.memtable_bytes as u64),
            c.segments.len().to_string(),
            fmt_bytes(c.segments.iter().map(|s| s.bytes).sum()),
        ]);
    }
    let mut s = t.render(indent);
    for c in stats.collections.iter().filter(|c| !c.segments.is_empty()) {
        s.push_str(&format!("{indent}segments of `{}`:\n", c.name));
        let mut t = Table::new(&[">id", ">rows", ">deleted", ">bytes"]);
        for seg in &c.segments {
            t.row(vec![
                seg.id.to_string(),
                thousands(seg.rows as u64),
                thousands(seg.deleted as u64),
                fmt_bytes(seg.bytes),
            ]);
        }
        s.push_str(&t.render(&format!("{indent}  ")));
    }
    s
}

pub fn verify(a: &VerifyArgs) -> CliResult<()> {
    let started = Instant::now();
    let failed = |e: cairndb::Error| {
        fail(format_args!(
            "verification of {} failed: {e}",
            a.db.display()
        ))
    };
    let db = match open_existing(&a.db, cairndb::Durability::Sync) {
        Ok(db) => db,
        Err(crate::util::CliError::Failed(m)) => {
            return Err(fail(format_args!(
                "verification of {} failed: {m}",
                a.db.display()
            )));
        }
        Err(e) => return Err(e),
    };
    let report = db.verify().map_err(failed)?;
    let memtable_rows: usize = db.stats().collections.iter().map(|c| c.memtable_rows).sum();
    let mut out = std::io::stdout().lock();
    outln!(
        out,
        "ok: {}, {}, {} and {} of segment files checked; manifest and log checked \
         on open ({} replayed from the log) in {}",
        plural(report.collections, "collection"),
        plural(report.segments, "segment"),
        plural(report.rows, "segment row"),
        fmt_bytes(report.bytes),
        plural(memtable_rows, "row"),
        fmt_dur(started.elapsed())
    );
    Ok(())
}
