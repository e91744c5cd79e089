//! The commands about a database's collections: `list`, `drop`.

use std::io::Write;

use serde_json::json;

use crate::util::{CliResult, Table, fail, open_existing, open_read_only, plural, thousands};
use crate::{DropArgs, ListArgs};

/// `cairn list DB`: every collection with its dimension, metric, record count and index
/// settings. Opens the database read-only.
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
                    "records": records,
                    "m": cfg.m,
                    "ef_construction": cfg.ef_construction,
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
