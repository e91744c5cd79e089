//! The commands that change a database: `create`, `import`, `delete`.

use std::io::{IsTerminal, Write};
use std::time::Instant;

use cairndb::{
    Collection, CollectionConfig, Database, Durability, Id, IdType, Metric, Options, Record,
    TextConfig,
};
use indicatif::{ProgressBar, ProgressStyle};

use crate::input::{
    FvecsReader, FvecsRecords, JsonlReader, NpyRecords, Source, fvecs_dim, open_input,
};
use crate::table::{ImportFormat, JsonlMapped, Mapping, TableRecords};
use crate::util::{
    CliError, CliResult, fail, fmt_dur, open_collection, open_existing, open_existing_with,
    per_sec, plural, thousands,
};
use crate::{CompactArgs, CreateArgs, DeleteArgs, DurabilityArg, ImportArgs, RepairArgs};

/// Checks a collection name and dimension before a database directory is created for them
/// (the library checks them again).
fn precheck(name: &str, dim: usize) -> CliResult<()> {
    // Checked before the database is opened, so a bad name or dimension creates nothing.
    cairndb::validate_name(name)?;
    CollectionConfig::new(dim, Metric::Cosine).validate()?;
    Ok(())
}

/// The configuration `cairn create` asks for.
fn create_config(a: &CreateArgs) -> CollectionConfig {
    let mut cfg = CollectionConfig::new(a.dim, a.metric.into())
        .with_id_type(a.id_type.into())
        .with_text(TextConfig::default().stem(a.stem).stop_words(a.stop_words));
    if let Some(m) = a.m {
        cfg.m = m;
    }
    if let Some(ef) = a.ef_construction {
        cfg.ef_construction = ef;
    }
    if let Some(q) = a.quantization {
        cfg.quantization = q.into();
    }
    cfg
}

/// The settings given on the command line that an existing collection does not have (and
/// keeps: they apply only when a collection is created).
fn ignored_settings(a: &CreateArgs, have: &CollectionConfig) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(m) = a.m.filter(|&m| m != have.m) {
        out.push(format!("--m {m} (it has {})", have.m));
    }
    if let Some(ef) = a.ef_construction.filter(|&e| e != have.ef_construction) {
        out.push(format!(
            "--ef-construction {ef} (it has {})",
            have.ef_construction
        ));
    }
    if let Some(q) = a.quantization.map(cairndb::Quantization::from)
        && q != have.quantization
    {
        out.push(format!("--quantization {q} (it has {})", have.quantization));
    }
    if a.stem && !have.text.stem {
        out.push("--stem (it does not stem)".into());
    }
    if a.stop_words && !have.text.stop_words {
        out.push("--stop-words (it keeps stop words)".into());
    }
    out
}

/// `, string ids` for a collection of string ids (integer ids, the default, go unsaid).
fn str_ids_note(cfg: &CollectionConfig) -> &'static str {
    match cfg.id_type {
        IdType::Int => "",
        IdType::Str => ", string ids",
    }
}

pub fn create(a: &CreateArgs) -> CliResult<()> {
    let cfg = create_config(a);
    // Checked before the database is opened, so a bad name or setting creates nothing.
    cairndb::validate_name(&a.collection)?;
    cfg.validate()?;
    let db = Database::open(&a.db)?;
    let (coll, created) = if a.exist_ok {
        let existed = db.collections().contains(&a.collection);
        let coll = db
            .get_or_create_collection(&a.collection, cfg)
            .map_err(|e| match e {
                cairndb::Error::CollectionConfigMismatch {
                    ref setting,
                    ref existing,
                    ref requested,
                    ..
                } if setting == "id_type" => fail(format_args!(
                    "collection `{}` exists with {} (--id-type {existing}), asked for {} \
                     (--id-type {requested})",
                    a.collection,
                    crate::ids::kind_plural(existing.parse().unwrap_or_default()),
                    crate::ids::kind_plural(requested.parse().unwrap_or_default()),
                )),
                other => other.into(),
            })?;
        (coll, !existed)
    } else {
        (
            db.create_collection(&a.collection, cfg)
                .map_err(|e| match e {
                    cairndb::Error::CollectionExists { .. } => fail(format_args!(
                        "{e} in {}; add --exist-ok to accept it",
                        a.db.display()
                    )),
                    other => other.into(),
                })?,
            true,
        )
    };
    let have = coll.config();
    let mut out = std::io::stdout().lock();
    if a.json {
        let j = serde_json::json!({
            "collection": a.collection,
            "created": created,
            "dim": have.dim,
            "metric": have.metric,
            "id_type": have.id_type,
            "m": have.m,
            "ef_construction": have.ef_construction,
            "text": have.text,
            "records": coll.len(),
        });
        outln!(out, "{j}");
    } else if created {
        outln!(
            out,
            "created collection `{}` in {} (dim {}, metric {}{})",
            a.collection,
            a.db.display(),
            have.dim,
            have.metric,
            str_ids_note(have)
        );
    } else {
        outln!(
            out,
            "collection `{}` exists in {} (dim {}, metric {}{}, {})",
            a.collection,
            a.db.display(),
            have.dim,
            have.metric,
            str_ids_note(have),
            plural(coll.len(), "record")
        );
    }
    if !created {
        let ignored = ignored_settings(a, have);
        if !ignored.is_empty() {
            eprintln!(
                "note: `{}` keeps the settings it was created with; ignored {}",
                a.collection,
                ignored.join(", ")
            );
        }
    }
    Ok(())
}

pub fn delete(a: &DeleteArgs) -> CliResult<()> {
    if let Some(f) = &a.filter {
        let filter = crate::read::parse_filter(f)?;
        let (_db, coll) = open_collection(&a.db, &a.collection)?;
        let n = coll.delete_where(&filter)?;
        let mut out = std::io::stdout().lock();
        if a.json {
            outln!(out, "{}", serde_json::json!({ "deleted": n }));
        } else {
            outln!(out, "deleted {n}");
        }
        return Ok(());
    }
    let (_db, coll) = open_collection(&a.db, &a.collection)?;
    let id_type = coll.config().id_type;
    let ids = a
        .ids
        .iter()
        .map(|arg| crate::ids::parse_arg(arg, id_type, &a.collection).map_err(fail))
        .collect::<CliResult<Vec<Id>>>()?;
    let existed = coll.delete(&ids)?;
    let mut distinct = ids;
    distinct.sort_unstable();
    distinct.dedup();
    let missing = distinct.len() - existed;
    let mut out = std::io::stdout().lock();
    if a.json {
        let j = serde_json::json!({"deleted": existed, "missing": missing});
        outln!(out, "{j}");
    } else if missing == 0 {
        outln!(out, "deleted {existed}");
    } else {
        outln!(
            out,
            "deleted {existed} ({missing} of the {} ids given did not exist)",
            distinct.len()
        );
    }
    Ok(())
}

pub fn compact(a: &CompactArgs) -> CliResult<()> {
    let (_db, coll) = open_collection(&a.db, &a.collection)?;
    let started = std::time::Instant::now();
    coll.flush()?;
    let r = coll.compact()?;
    let took = started.elapsed();
    let mut out = std::io::stdout().lock();
    if a.json {
        let j =
            serde_json::to_string(&r).map_err(|e| fail(format_args!("cannot write JSON: {e}")))?;
        outln!(out, "{j}");
    } else if r.segments_in == 0 {
        outln!(out, "nothing to compact: one segment without deleted rows");
    } else {
        outln!(
            out,
            "merged {} segments ({} rows, {}) into {} ({} live rows, {}) in {}",
            r.segments_in,
            crate::util::thousands(r.rows_in as u64),
            crate::util::fmt_bytes(r.bytes_in),
            r.segment
                .map_or_else(|| "nothing".to_owned(), |id| format!("segment {id}")),
            crate::util::thousands(r.rows_out as u64),
            crate::util::fmt_bytes(r.bytes_out),
            crate::util::fmt_dur(took)
        );
    }
    Ok(())
}

pub fn import(a: &ImportArgs) -> CliResult<()> {
    let durability = match a.durability {
        DurabilityArg::Sync => Durability::Sync,
        DurabilityArg::Buffered => Durability::buffered(),
    };
    // A missing or unreadable file is reported before anything is created.
    let total = open_input(&a.file)?.metadata().map_or(0, |m| m.len());
    let format = a.format.unwrap_or_else(|| ImportFormat::detect(&a.file));
    let mapping = Mapping {
        id: a.id_field.clone(),
        vector: a.vector_field.clone(),
        text: a.text_field.clone(),
        payload: a.payload_fields.clone(),
        id_start: a.id_start,
    };
    if format.has_no_ids() {
        if !(mapping.id.is_none()
            && mapping.vector.is_none()
            && mapping.text.is_none()
            && mapping.payload.is_none())
        {
            return Err(fail(format_args!(
                "{}: a {} file holds vectors only; --id-field, --vector-field, --text-field and \
                 --payload-fields are for tables (--id-start numbers its rows)",
                a.file.display(),
                if format == ImportFormat::Npy {
                    ".npy"
                } else {
                    ".fvecs"
                }
            )));
        }
        let db = open_existing(&a.db, durability)?;
        let coll = match db.collection(&a.collection) {
            Ok(c) => c,
            Err(cairndb::Error::CollectionNotFound { .. }) => {
                let dim = match format {
                    ImportFormat::Fvecs => fvecs_dim(&a.file),
                    _ => NpyRecords::open(&a.file, 0).ok().map(|r| r.dim()),
                }
                .map_or_else(|| "N".to_owned(), |d| d.to_string());
                return Err(fail(format_args!(
                    "collection `{c}` does not exist in {db}; create it first: \
                     cairn create {db} {c} --dim {dim} --metric cosine|dot|l2",
                    c = a.collection,
                    db = a.db.display()
                )));
            }
            Err(e) => return Err(e.into()),
        };
        let what = if format == ImportFormat::Npy {
            "an .npy file"
        } else {
            "an .fvecs file"
        };
        let start = numbered_start(&coll, a, what)?;
        let mut src: Box<dyn Source> = match format {
            ImportFormat::Fvecs => Box::new(FvecsRecords(FvecsReader::open(&a.file)?, start)),
            _ => Box::new(NpyRecords::open(&a.file, start)?),
        };
        return ingest(&db, Some(coll), &mut *src, a, total);
    }
    // The file is opened (and a table's columns checked) before the database: a file that
    // cannot be read creates nothing.
    enum Opened {
        Lines(Box<dyn Source>, bool),
        Table(Box<TableRecords>),
    }
    let opened = match format {
        ImportFormat::Jsonl if mapping.is_default() => {
            Opened::Lines(Box::new(JsonlReader::open(&a.file)?), false)
        }
        ImportFormat::Jsonl => {
            let r = JsonlMapped::open(&a.file, &mapping)?;
            let n = r.numbers_rows();
            Opened::Lines(Box::new(r), n)
        }
        _ => Opened::Table(Box::new(TableRecords::open(format, &a.file, &mapping)?)),
    };
    let numbered = match &opened {
        Opened::Lines(_, n) => *n,
        Opened::Table(t) => t.numbers_rows(),
    };
    let options = Options::default()
        .durability(durability)
        .background_compaction(!a.no_compaction);
    let db = Database::open_with(&a.db, options)?;
    let coll = match db.collection(&a.collection) {
        Ok(c) => Some(c),
        Err(cairndb::Error::CollectionNotFound { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    if numbered && let Some(c) = &coll {
        numbered_start(c, a, "a file without ids")?;
    }
    let mut src: Box<dyn Source> = match opened {
        Opened::Lines(src, _) => src,
        Opened::Table(mut t) => {
            // CSV has no types: its ids are strings in a collection of string ids.
            if format == ImportFormat::Csv
                && coll.as_ref().map(|c| c.config().id_type) == Some(IdType::Str)
            {
                t.ids_as_strings();
            }
            t
        }
    };
    ingest(&db, coll, &mut *src, a, total)
}

/// The first id of a file whose rows are numbered: `--id-start`, or 0 into an empty
/// collection. Refuses a collection of string ids, and a collection that has records when
/// no `--id-start` is given: row numbers from 0 would replace them (a second `.fvecs` import
/// of the same size would silently overwrite the first).
fn numbered_start(coll: &Collection, a: &ImportArgs, what: &str) -> CliResult<u64> {
    let cfg = coll.config();
    if cfg.id_type == IdType::Str {
        // Row numbers as decimal strings would be ids nobody chose; refused instead.
        return Err(fail(format_args!(
            "collection `{c}` has string ids, and the rows of {what} have none (they would be \
             numbered 0, 1, 2, …): import records with string ids, or import the file into a \
             collection of integer ids (cairn create {db} NAME --dim {dim} --id-type int)",
            c = a.collection,
            db = a.db.display(),
            dim = cfg.dim
        )));
    }
    match a.id_start {
        Some(n) => Ok(n),
        None if coll.is_empty() => Ok(0),
        None => Err(fail(format_args!(
            "collection `{c}` has {n}, and the rows of {what} have no ids: numbered from 0 they \
             would replace records with the same ids. Give the first id with --id-start N \
             (for example one above the largest id in `{c}`), or --id-start 0 to replace them",
            c = a.collection,
            n = plural(coll.len(), "record"),
        ))),
    }
}

/// The import's progress bar on a terminal: rows (and rows/s) when the file says how many it
/// holds, else bytes read, with the records committed and records/s in its message.
fn progress_bar(total_bytes: u64, total_rows: Option<u64>) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let (template, total) = match total_rows {
        Some(rows) => (
            "{spinner} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} rows \
             ({per_sec}) {msg}",
            rows,
        ),
        None => (
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {msg}",
            total_bytes,
        ),
    };
    let style = ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .with_key(
            "per_sec",
            |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.0} rows/s", s.per_sec());
            },
        );
    ProgressBar::new(total).with_style(style)
}

/// The line saying that `committed` records are durable: `committed N`, or with `json`
/// `{"committed": N}`.
fn committed_line(out: &mut impl Write, committed: u64, json: bool) -> CliResult<()> {
    if json {
        outln!(out, "{}", serde_json::json!({ "committed": committed }));
    } else {
        outln!(out, "committed {committed}");
    }
    Ok(())
}

/// Adds what the error leaves standing: the records committed before it.
fn after(e: CliError, committed: u64) -> CliError {
    match e {
        CliError::Failed(m) if committed > 0 => fail(format_args!(
            "{m} ({} committed before it {} committed)",
            plural(committed as usize, "record"),
            if committed == 1 { "stays" } else { "stay" }
        )),
        other => other,
    }
}

/// Reads records from `src` and upserts them in batches, printing `committed N` after each
/// durable batch.
fn ingest(
    db: &Database,
    mut coll: Option<Collection>,
    src: &mut dyn Source,
    a: &ImportArgs,
    total: u64,
) -> CliResult<()> {
    let started = Instant::now();
    let sync = a.durability == DurabilityArg::Sync;
    let batch_size = a.batch as usize;
    let rows = src.total_rows();
    let pb = progress_bar(total, rows);
    let mut out = std::io::stdout().lock();
    let mut batch: Vec<Record> = Vec::with_capacity(batch_size.min(100_000));
    let mut first_at = 0;
    let mut committed: u64 = 0;
    loop {
        let item = match src.next() {
            Some(item) => Some(item.map_err(|e| after(e, committed))?),
            None => None,
        };
        let done = item.is_none();
        if let Some(item) = item {
            let at = |m: &dyn std::fmt::Display| {
                after(
                    fail(format_args!(
                        "{} {}: {m}",
                        a.file.display(),
                        src.place(item.at)
                    )),
                    committed,
                )
            };
            // The collection's id type, or for a new one the first record's.
            let id_type = coll
                .as_ref()
                .map_or(item.record.id.id_type(), |c| c.config().id_type);
            crate::ids::check(&item.record.id, id_type, &a.collection).map_err(|m| at(&m))?;
            let c = match &coll {
                Some(c) => c,
                None => {
                    let dim = item.record.vector.len();
                    precheck(&a.collection, dim).map_err(|e| after(e, committed))?;
                    let c = db.create_collection(
                        &a.collection,
                        CollectionConfig::new(dim, Metric::Cosine).with_id_type(id_type),
                    )?;
                    pb.suspend(|| {
                        eprintln!(
                            "note: created collection `{}` (dim {dim}, metric cosine, {}) from \
                             the first record; use `cairn create` first to choose another metric",
                            a.collection,
                            crate::ids::kind_plural(id_type)
                        )
                    });
                    coll.insert(c)
                }
            };
            let (dim, got) = (c.config().dim, item.record.vector.len());
            if got != dim {
                let e = cairndb::Error::DimensionMismatch {
                    collection: a.collection.clone(),
                    id: Some(item.record.id.clone()),
                    expected: dim,
                    got,
                };
                return Err(at(&e));
            }
            if batch.is_empty() {
                first_at = item.at;
            }
            batch.push(item.record);
        }
        // A full batch is written at once, so that a bad line after it leaves it committed.
        if (done || batch.len() >= batch_size) && !batch.is_empty() {
            let Some(c) = &coll else { break };
            let n = batch.len() as u64;
            c.upsert(std::mem::take(&mut batch)).map_err(|e| {
                after(
                    fail(format_args!(
                        "{e}; the batch starting at {} {} was not written",
                        a.file.display(),
                        src.place(first_at)
                    )),
                    committed,
                )
            })?;
            committed += n;
            if rows.is_some() {
                pb.set_position(committed);
            } else {
                pb.set_position(src.bytes());
                pb.set_message(format!(
                    "{} records ({} records/s)",
                    thousands(committed),
                    per_sec(committed, started.elapsed())
                ));
            }
            if sync {
                pb.suspend(|| -> CliResult<()> {
                    committed_line(&mut out, committed, a.json)?;
                    out.flush().map_err(CliError::output)?;
                    Ok(())
                })?;
            }
        }
        if done {
            break;
        }
    }
    let flush_started = Instant::now();
    if let Some(c) = &coll {
        // Seal what was imported into a segment (this also syncs the log).
        c.flush().map_err(|e| after(e.into(), committed))?;
    }
    pb.finish_and_clear();
    if !sync || committed == 0 {
        committed_line(&mut out, committed, a.json)?;
        out.flush().map_err(CliError::output)?;
    }
    let took = started.elapsed();
    if a.json {
        let j = serde_json::json!({
            "collection": a.collection,
            "imported": committed,
            "seconds": took.as_secs_f64(),
        });
        outln!(out, "{j}");
        return Ok(());
    }
    eprintln!(
        "imported {} records into `{}` in {} ({} records/s; sealing took {})",
        thousands(committed),
        a.collection,
        fmt_dur(took),
        per_sec(committed, took),
        fmt_dur(flush_started.elapsed())
    );
    Ok(())
}

/// Opens the database with `accept_log_loss` and prints what the recovery dropped.
pub fn repair(a: &RepairArgs) -> CliResult<()> {
    let db = open_existing_with(&a.db, Options::default().accept_log_loss(true))?;
    db.sync()?;
    let r = db.recovery_report().clone();
    drop(db);
    let mut out = std::io::stdout().lock();
    if a.json {
        let json = serde_json::to_string(&r).map_err(fail)?;
        outln!(out, "{json}");
        return Ok(());
    }
    if !r.lost_data() {
        outln!(
            out,
            "nothing to repair: the log is intact ({} replayed{})",
            plural(r.frames_replayed as usize, "frame"),
            if r.torn_tail_bytes > 0 {
                format!(
                    ", a torn tail of {} cut",
                    plural(r.torn_tail_bytes as usize, "byte")
                )
            } else {
                String::new()
            }
        );
        return Ok(());
    }
    outln!(
        out,
        "repaired {}: dropped {} ({}); kept {}",
        a.db.display(),
        plural(r.dropped_frames as usize, "log frame"),
        plural(r.dropped_records as usize, "readable record"),
        plural(r.frames_replayed as usize, "frame")
    );
    if let (Some(file), Some(offset)) = (&r.damaged_file, r.damaged_offset) {
        outln!(
            out,
            "first damaged frame: {} at byte {offset}",
            file.display()
        );
    }
    for f in &r.removed_files {
        outln!(out, "removed log file: {}", f.display());
    }
    for p in &r.problems {
        outln!(out, "lost: {p}");
    }
    Ok(())
}
