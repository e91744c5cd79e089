//! The commands about a database's collections and their records as a whole: `list`, `drop`,
//! `count`, `export`, `update`.

use std::io::{BufRead, IsTerminal, Write};

use cairndb::{ScanOptions, Update};
use serde_json::json;

use crate::jsonl::parse_update;
use crate::read::parse_filter;
use crate::util::{
    CliError, CliResult, Table, fail, open_collection, open_collection_read_only, open_existing,
    open_read_only, plural, thousands,
};
use crate::{CountArgs, DropArgs, ExportArgs, ListArgs, UpdateArgs};

/// `cairn list DB`: every collection with its dimension, metric, id type, record count and
/// index settings. Opens the database read-only.
pub fn list(a: &ListArgs) -> CliResult<()> {
    let db = open_read_only(&a.db)?;
    let mut rows = Vec::new();
    for name in db.collections() {
        let c = match db.collection(&name) {
            Ok(c) => c,
            // Dropped by the writer since the names were read.
            Err(cairndb::Error::CollectionNotFound { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        rows.push((name, c.config().clone(), c.len()));
    }
    let mut out = std::io::stdout().lock();
    if a.json {
        let cols: Vec<_> = rows
            .iter()
            .map(|(name, cfg, records)| {
                json!({
                    "name": name,
                    "dim": cfg.dim,
                    "metric": cfg.metric,
                    "id_type": cfg.id_type,
                    "records": records,
                    "m": cfg.m,
                    "ef_construction": cfg.ef_construction,
                    "quantization": cfg.quantization,
                    "text": cfg.text,
                })
            })
            .collect();
        outln!(out, "{}", json!({ "collections": cols }));
        return Ok(());
    }
    if rows.is_empty() {
        outln!(out, "no collections in {}", a.db.display());
        return Ok(());
    }
    let mut t = Table::new(&[
        "collection",
        ">dim",
        "metric",
        "ids",
        ">records",
        ">m",
        ">ef_construction",
        "text",
    ]);
    for (name, cfg, records) in &rows {
        let text = match (cfg.text.stem, cfg.text.stop_words) {
            (false, false) => "words",
            (true, false) => "stem",
            (false, true) => "stop words",
            (true, true) => "stem, stop words",
        };
        t.row(vec![
            name.clone(),
            cfg.dim.to_string(),
            cfg.metric.to_string(),
            cfg.id_type.to_string(),
            thousands(*records as u64),
            cfg.m.to_string(),
            cfg.ef_construction.to_string(),
            text.to_owned(),
        ]);
    }
    write!(out, "{}", t.render("")).map_err(crate::util::CliError::output)?;
    Ok(())
}

/// `cairn drop DB COL`: deletes a collection and its files.
pub fn drop(a: &DropArgs) -> CliResult<()> {
    let db = open_existing(&a.db, cairndb::Durability::Sync)?;
    let records = match db.collection(&a.collection) {
        Ok(c) => c.len(),
        Err(cairndb::Error::CollectionNotFound { .. }) => {
            let names = db.collections();
            return Err(fail(format_args!(
                "collection `{}` does not exist in {}, nothing dropped; existing collections: {}",
                a.collection,
                a.db.display(),
                if names.is_empty() {
                    "(none)".to_owned()
                } else {
                    names.join(", ")
                }
            )));
        }
        Err(e) => return Err(e.into()),
    };
    db.drop_collection(&a.collection)?;
    let mut out = std::io::stdout().lock();
    if a.json {
        outln!(
            out,
            "{}",
            json!({ "dropped": a.collection, "records": records })
        );
    } else {
        outln!(
            out,
            "dropped collection `{}` ({}) from {}",
            a.collection,
            plural(records, "record"),
            a.db.display()
        );
    }
    Ok(())
}

/// `cairn count DB COL [--filter F]`: the number of records (that match). Read-only.
pub fn count(a: &CountArgs) -> CliResult<()> {
    let filter = a.filter.as_deref().map(parse_filter).transpose()?;
    let (_db, coll) = open_collection_read_only(&a.db, &a.collection)?;
    let n = coll.count(filter.as_ref())?;
    let mut out = std::io::stdout().lock();
    if a.json {
        outln!(out, "{}", json!({ "count": n }));
    } else {
        outln!(out, "{n}");
    }
    Ok(())
}

/// Records read per scan batch of `export`.
const EXPORT_BATCH: usize = 1024;

/// `cairn export DB COL [--filter F]`: the records, in id order, as the JSONL `cairn import`
/// reads. Read-only; one snapshot of the collection, whatever is written meanwhile.
pub fn export(a: &ExportArgs) -> CliResult<()> {
    use crate::export::{ExportFormat, Sink};
    let format = a.format.unwrap_or_else(|| {
        a.output
            .as_deref()
            .map_or(ExportFormat::Jsonl, ExportFormat::of_path)
    });
    if format != ExportFormat::Jsonl && a.output.is_none() && std::io::stdout().is_terminal() {
        return Err(fail(format_args!(
            "--format {} writes a binary file: give it --output FILE, or redirect standard \
             output to a file",
            if format == ExportFormat::Parquet {
                "parquet"
            } else {
                "arrow"
            }
        )));
    }
    let filter = a.filter.as_deref().map(parse_filter).transpose()?;
    let (_db, coll) = open_collection_read_only(&a.db, &a.collection)?;
    let (dim, id_type) = (coll.config().dim, coll.config().id_type);
    let vectors = !a.no_vectors;
    let mut options = ScanOptions::new().vectors(vectors);
    if let Some(f) = filter {
        options = options.filter(f);
    }
    let mut scan = coll.scan(options)?;
    let schema = crate::export::schema(id_type, dim, vectors);
    // A file is written beside its destination and renamed into place once complete, so a
    // failed export leaves no partial file behind.
    let mut tmp = match &a.output {
        Some(path) => {
            let dir = path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            Some(
                tempfile::NamedTempFile::new_in(dir)
                    .map_err(|e| fail(format_args!("cannot write {}: {e}", path.display())))?,
            )
        }
        None => None,
    };
    let out: Box<dyn Write + Send> = match &mut tmp {
        Some(t) => Box::new(std::io::BufWriter::with_capacity(
            1 << 20,
            t.as_file().try_clone().map_err(CliError::output)?,
        )),
        None => Box::new(std::io::BufWriter::with_capacity(
            1 << 20,
            std::io::stdout(),
        )),
    };
    let mut sink = Sink::new(format, out, &schema, dim)?;
    let mut n: u64 = 0;
    loop {
        let batch = scan
            .next_batch(EXPORT_BATCH)
            .map_err(|e| fail(format_args!("{e} (after {} records were written)", n)))?;
        if batch.is_empty() {
            break;
        }
        sink.write(&batch, &schema, dim, vectors)?;
        n += batch.len() as u64;
    }
    let _flushed = sink.finish()?;
    if let (Some(t), Some(path)) = (tmp, &a.output) {
        t.as_file().sync_all().map_err(CliError::output)?;
        t.persist(path)
            .map_err(|e| fail(format_args!("cannot write {}: {}", path.display(), e.error)))?;
        eprintln!(
            "exported {} to {}",
            plural(n as usize, "record"),
            path.display()
        );
    }
    log::info!("exported {n} records from `{}`", a.collection);
    Ok(())
}

/// `cairn update DB COL FILE.jsonl`: partial changes, in atomic batches.
pub fn update(a: &UpdateArgs) -> CliResult<()> {
    let body = std::fs::File::open(&a.file)
        .map_err(|e| fail(format_args!("cannot open {}: {e}", a.file.display())))?;
    let (_db, coll) = open_collection(&a.db, &a.collection)?;
    let (dim, id_type) = (coll.config().dim, coll.config().id_type);
    let reader = std::io::BufReader::with_capacity(1 << 20, body);
    let batch_size = a.batch as usize;
    let (mut lines, mut applied, mut committed_lines) = (0u64, 0u64, 0u64);
    let mut batch: Vec<Update> = Vec::new();
    let mut first_line = 0;
    let place = |at: usize| format!("{} line {at}", a.file.display());
    // What a failure leaves standing.
    let after = |m: String, committed: u64| {
        if committed > 0 {
            fail(format_args!(
                "{m} ({} earlier updates were applied and stay)",
                thousands(committed)
            ))
        } else {
            fail(m)
        }
    };
    let flush = |batch: &mut Vec<Update>, first: usize, applied: &mut u64, done: &mut u64| {
        if batch.is_empty() {
            return Ok(());
        }
        let n = batch.len() as u64;
        let got = coll.update(std::mem::take(batch)).map_err(|e| {
            after(
                format!(
                    "{e}; the batch starting at {} was not applied",
                    place(first)
                ),
                *done,
            )
        })?;
        *applied += got as u64;
        *done += n;
        Ok::<(), CliError>(())
    };
    for (i, line) in reader.lines().enumerate() {
        let at = i + 1;
        let line = line.map_err(|e| fail(format_args!("{}: cannot read: {e}", place(at))))?;
        if line.trim().is_empty() {
            continue;
        }
        let u = parse_update(line.trim(), a.replace_payload)
            .map_err(|m| after(format!("{}: {m}", place(at)), committed_lines))?;
        crate::ids::check(&u.id, id_type, &a.collection)
            .map_err(|m| after(format!("{}: {m}", place(at)), committed_lines))?;
        if let Some(v) = &u.vector
            && v.len() != dim
        {
            let e = cairndb::Error::DimensionMismatch {
                collection: a.collection.clone(),
                id: Some(u.id),
                expected: dim,
                got: v.len(),
            };
            return Err(after(format!("{}: {e}", place(at)), committed_lines));
        }
        if batch.is_empty() {
            first_line = at;
        }
        batch.push(u);
        lines += 1;
        if batch.len() >= batch_size {
            flush(&mut batch, first_line, &mut applied, &mut committed_lines)?;
        }
    }
    flush(&mut batch, first_line, &mut applied, &mut committed_lines)?;
    let missing = lines - applied;
    let mut out = std::io::stdout().lock();
    if a.json {
        outln!(out, "{}", json!({ "updated": applied, "missing": missing }));
    } else if missing == 0 {
        outln!(out, "updated {}", plural(applied as usize, "record"));
    } else {
        outln!(
            out,
            "updated {} ({} of the {} lines named ids that do not exist)",
            plural(applied as usize, "record"),
            thousands(missing),
            thousands(lines)
        );
    }
    Ok(())
}
