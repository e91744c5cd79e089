//! The commands that read a database: `search`, `get`, `stats`, `verify`.

use std::io::Write;
use std::time::Instant;

use cairndb::{DbStats, Explain, Filter, Fusion, Hit, SearchRequest};
use serde::{Deserialize, Serialize};

use crate::input::{parse_vector, read_fvecs};
use crate::util::{
    CliResult, Table, fail, fmt_bytes, fmt_dur, one_line, open_collection_read_only,
    open_read_only, plural, thousands,
};
use crate::{FusionArg, GetArgs, SearchArgs, StatsArgs, VerifyArgs};

/// One query of a search command.
struct Query {
    vector: Option<Vec<f32>>,
    text: Option<String>,
    filter: Option<Filter>,
    k: usize,
}

/// One line of a `--queries FILE.jsonl` file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryLine {
    #[serde(default)]
    vector: Option<Vec<f32>>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    filter: Option<serde_json::Value>,
    #[serde(default)]
    k: Option<usize>,
}

fn to_json<T: Serialize>(v: &T) -> CliResult<String> {
    serde_json::to_string(v).map_err(|e| fail(format_args!("cannot write JSON: {e}")))
}

/// A filter parse error on one line: the column, and what was expected.
fn filter_error(e: &cairndb::Error) -> String {
    match e {
        cairndb::Error::FilterSyntax {
            column, message, ..
        } => format!("filter syntax error at column {column}: {message}"),
        other => other.to_string(),
    }
}

/// A filter argument: JSON in the operator form when it starts with `{`, else the text syntax.
pub(crate) fn filter_arg(text: &str) -> cairndb::Result<Filter> {
    if text.trim_start().starts_with('{') {
        Filter::from_json(text)
    } else {
        Filter::parse(text)
    }
}

pub fn parse_filter(text: &str) -> CliResult<Filter> {
    filter_arg(text).map_err(|e| fail(format_args!("--filter: {}", filter_error(&e))))
}

/// The "filter" of a query line: a string (the text syntax, or JSON if it starts with `{`),
/// or an object (the operator form, or the old tree form).
fn query_line_filter(v: &serde_json::Value) -> Result<Filter, String> {
    match v {
        serde_json::Value::String(t) => filter_arg(t),
        serde_json::Value::Object(_) => Filter::from_json_value(v),
        other => {
            let kind = match other {
                serde_json::Value::Null => "null",
                serde_json::Value::Bool(_) => "a bool",
                serde_json::Value::Number(_) => "a number",
                _ => "a list",
            };
            return Err(format!(
                "\"filter\" is a string (the text syntax) or an object such as \
                 {{\"year\": {{\"$gte\": 2020}}}}, not {kind}"
            ));
        }
    }
    .map_err(|e| filter_error(&e))
}

/// Reads the queries of `search`: --vector/--text/--filter, or a .fvecs or .jsonl file.
fn read_queries(a: &SearchArgs) -> CliResult<Vec<Query>> {
    let filter = a.filter.as_deref().map(parse_filter).transpose()?;
    let Some(path) = &a.queries else {
        let vector = a.vector.as_deref().map(parse_vector).transpose()?;
        if vector.is_none() && a.text.is_none() {
            return Err(fail(
                "give a query with --vector, --text, or --queries FILE",
            ));
        }
        return Ok(vec![Query {
            vector,
            text: a.text.clone(),
            filter,
            k: a.k,
        }]);
    };
    if a.vector.is_some() {
        return Err(fail("give either --vector or --queries, not both"));
    }
    let is_jsonl = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("jsonl") || e.eq_ignore_ascii_case("json"));
    if !is_jsonl {
        return Ok(read_fvecs(path)?
            .into_iter()
            .map(|v| Query {
                vector: Some(v),
                text: a.text.clone(),
                filter: filter.clone(),
                k: a.k,
            })
            .collect());
    }
    let body = std::fs::read_to_string(path)
        .map_err(|e| fail(format_args!("cannot read {}: {e}", path.display())))?;
    let mut out = Vec::new();
    for (i, line) in body.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = |what: &dyn std::fmt::Display| {
            fail(format_args!("{}:{}: {what}", path.display(), i + 1))
        };
        let q: QueryLine = serde_json::from_str(line).map_err(|e| at(&e))?;
        let line_filter = match &q.filter {
            Some(v) => Some(query_line_filter(v).map_err(|e| at(&e))?),
            None => filter.clone(),
        };
        let text = q.text.or_else(|| a.text.clone());
        if q.vector.is_none() && text.is_none() {
            return Err(at(&"a query needs \"vector\", \"text\", or both"));
        }
        out.push(Query {
            vector: q.vector,
            text,
            filter: line_filter,
            k: q.k.unwrap_or(a.k),
        });
    }
    Ok(out)
}

pub fn search(a: &SearchArgs) -> CliResult<()> {
    // The queries are read before the database is opened: bad input fails fast.
    let queries = read_queries(a)?;
    let fusion = match a.fusion {
        None => Fusion::default(),
        Some(FusionArg::Rrf) => Fusion::Rrf { k: a.rrf_k },
        Some(FusionArg::Weighted) => Fusion::Weighted { alpha: a.alpha },
        Some(FusionArg::Dbsf) => Fusion::Dbsf,
    };
    let (_db, coll) = open_collection_read_only(&a.db, &a.collection)?;
    let many = queries.len() > 1;
    let mut out = std::io::stdout().lock();
    for (i, q) in queries.into_iter().enumerate() {
        let mut req = match (q.vector, q.text) {
            (Some(v), Some(t)) => SearchRequest::new(v).text(t),
            (Some(v), None) => SearchRequest::new(v),
            (None, Some(t)) => SearchRequest::by_text(t),
            (None, None) => unreachable!("read_queries requires a vector or a text"),
        };
        req = req
            .k(q.k)
            .exact(a.exact)
            .fusion(fusion)
            .explain(a.explain)
            .with_text(a.with_text)
            .with_payload(a.with_payload);
        if let Some(f) = q.filter {
            req = req.filter(f);
        }
        if let Some(ef) = a.ef {
            req = req.ef(ef);
        }
        if let Some(c) = a.candidates {
            req = req.candidates(c);
        }
        let started = Instant::now();
        let resp = coll.query(&req).map_err(|e| {
            if many {
                fail(format_args!("query {i}: {e}"))
            } else {
                e.into()
            }
        })?;
        let took = started.elapsed();
        if a.json {
            outln!(out, "{}", to_json(&resp)?);
            continue;
        }
        let label = if many {
            format!("query {i}: ")
        } else {
            String::new()
        };
        let hits = &resp.hits;
        outln!(out, "{label}{} hits in {}", hits.len(), fmt_dur(took));
        if !hits.is_empty() {
            write!(out, "{}", hits_table(hits, a.with_text, a.with_payload)?)
                .map_err(crate::util::CliError::output)?;
        }
        if let Some(x) = &resp.explain {
            write!(out, "{}", explain_text(x)).map_err(crate::util::CliError::output)?;
        }
        if many {
            outln!(out);
        }
    }
    Ok(())
}

/// The explain block of the text output.
fn explain_text(x: &Explain) -> String {
    let mut s = String::new();
    if let Some(f) = &x.filter {
        s += &format!("filter    {f}\n");
    }
    if !x.unknown_fields.is_empty() {
        let names: Vec<String> = x.unknown_fields.iter().map(|f| format!("{f:?}")).collect();
        s += &format!(
            "note      no record has the field {} (a condition on it matches nothing)\n",
            names.join(", ")
        );
    }
    if !x.vector.is_empty() {
        let mut t = Table::new(&[
            "source",
            ">rows",
            ">live",
            ">estimated",
            ">matched",
            "plan",
            ">ef",
            "fallback",
            ">returned",
        ]);
        for p in &x.vector {
            t.row(vec![
                p.source.clone(),
                thousands(p.rows as u64),
                thousands(p.live as u64),
                thousands(p.estimated as u64),
                thousands(p.matched as u64),
                format!("{:?}", p.plan).to_lowercase(),
                p.ef.map_or_else(String::new, |e| e.to_string()),
                if p.fallback { "yes" } else { "" }.to_owned(),
                p.returned.to_string(),
            ]);
        }
        s += "vector leg\n";
        s += &t.render("  ");
    }
    if let Some(tp) = &x.text {
        s += &format!(
            "text leg  terms {:?}, df {:?}, {} documents, average length {:.1}, {} returned\n",
            tp.terms, tp.df, tp.documents, tp.avg_len, tp.returned
        );
    }
    s += &format!(
        "depth {} per leg; complete: {}\n",
        x.depth,
        if x.complete { "yes" } else { "no" }
    );
    s
}

/// Hits as an aligned table: rank, id, score, and text and payload when asked for.
fn hits_table(hits: &[Hit], text: bool, payload: bool) -> CliResult<String> {
    // Integer ids align right like the other numbers; string ids left.
    let str_ids = hits.iter().any(|h| h.id.as_str().is_some());
    let mut headers = vec![">rank", if str_ids { "id" } else { ">id" }, ">score"];
    if text {
        headers.push("text");
    }
    if payload {
        headers.push("payload");
    }
    let legs = hits.iter().any(|h| h.legs.is_some());
    if legs {
        headers.extend(["vector leg", "text leg"]);
    }
    let mut t = Table::new(&headers);
    let leg = |l: Option<cairndb::LegScore>| {
        l.map_or_else(|| "-".to_owned(), |l| format!("#{} {:.4}", l.rank, l.score))
    };
    for (rank, h) in hits.iter().enumerate() {
        let mut row = vec![
            (rank + 1).to_string(),
            crate::ids::cell(&h.id),
            format!("{:.6}", h.score),
        ];
        if legs {
            let l = h.legs.unwrap_or(cairndb::Legs {
                vector: None,
                text: None,
                fused: h.score,
            });
            row.push(leg(l.vector));
            row.push(leg(l.text));
        }
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
    let (_db, coll) = open_collection_read_only(&a.db, &a.collection)?;
    let id = crate::ids::parse_arg(&a.id, coll.config().id_type, &a.collection).map_err(fail)?;
    match coll.get(&id)? {
        Some(record) => {
            let mut out = std::io::stdout().lock();
            outln!(out, "{}", to_json(&record)?);
            Ok(())
        }
        None => Err(fail(format_args!(
            "record {} not found in collection `{}`",
            crate::ids::show(&id),
            a.collection
        ))),
    }
}

pub fn stats(a: &StatsArgs) -> CliResult<()> {
    let db = open_read_only(&a.db)?;
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
        "ids",
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
            c.id_type.to_string(),
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
        let mut t = Table::new(&[
            ">id",
            ">rows",
            ">deleted",
            ">bytes",
            ">mapped",
            ">resident",
            ">index heap",
        ]);
        for seg in &c.segments {
            t.row(vec![
                seg.id.to_string(),
                thousands(seg.rows as u64),
                thousands(seg.deleted as u64),
                fmt_bytes(seg.bytes),
                fmt_bytes(seg.mapped_bytes),
                fmt_bytes(seg.resident.total()),
                fmt_bytes(seg.index_heap_bytes),
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
    let db = match open_read_only(&a.db) {
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
    if a.json {
        let mut j = serde_json::to_value(report)
            .map_err(|e| fail(format_args!("cannot write JSON: {e}")))?;
        j["ok"] = true.into();
        j["memtable_rows"] = memtable_rows.into();
        j["seconds"] = started.elapsed().as_secs_f64().into();
        outln!(out, "{j}");
        return Ok(());
    }
    outln!(
        out,
        "ok: {}, {}, {} and {} of segment files checked; {} in {} checked; manifest \
         checked on open ({} replayed from the log) in {}",
        plural(report.collections, "collection"),
        plural(report.segments, "segment"),
        plural(report.rows, "segment row"),
        fmt_bytes(report.bytes),
        plural(report.log_frames as usize, "log frame"),
        plural(report.log_files, "log file"),
        plural(memtable_rows, "row"),
        fmt_dur(started.elapsed())
    );
    Ok(())
}
