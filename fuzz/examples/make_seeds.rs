//! Writes the seed inputs of every fuzz target into `fuzz/seeds/<target>/` (or the directory
//! given as the first argument), made from a small database written through the public API
//! (a log with upserts and a delete, a manifest, a segment with its indexes and tombstones)
//! and a few filters; then runs every target over them, which must accept each one.
//!
//! The harness exists only when the library is built with `--cfg fuzzing` (as cargo-fuzz
//! does), so:
//!
//! `RUSTFLAGS="--cfg fuzzing" cargo run --manifest-path fuzz/Cargo.toml --example make_seeds`

use std::fs;
use std::path::{Path, PathBuf};

use cairndb::fuzzing::{
    FIX_CHECKSUMS, MANIFEST_DATABASE, SEGMENT_STR_IDS, SegmentFiles, WAL_DATABASE, WAL_FILE,
    WAL_STR_IDS, fields, filter, manifest, segment, text_index, wal,
};
use cairndb::{
    CollectionConfig, Database, Error, IdType, Metric, Options, Quantization, Record, Result, Value,
};

/// Bytes of the header every Cairn file starts with (docs/file-format.md).
const HEADER_LEN: usize = 64;

fn main() -> Result<()> {
    let out = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("seeds"));
    write_seeds(&out)?;
    write_string_seeds(&out)?;
    write_rabitq_seeds(&out)?;
    check_seeds(&out);
    println!(
        "seeds written to {} and accepted by every target",
        out.display()
    );
    Ok(())
}

/// Every target accepts every seed written for it, and each target has seeds.
fn check_seeds(dir: &Path) {
    let run = |target: &str, f: &dyn Fn(&[u8]) -> Result<()>| {
        let mut n = 0;
        for e in fs::read_dir(dir.join(target)).expect("seed directory") {
            let path = e.expect("entry").path();
            let bytes = fs::read(&path).expect("seed");
            f(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            n += 1;
        }
        assert!(n > 0, "no seeds for {target}");
    };
    run("wal", &wal);
    run("manifest", &manifest);
    run("segment", &|b| segment(&SegmentFiles::from_bytes(b)));
    run("fields", &fields);
    run("text_index", &text_index);
    run("filter", &filter);
}

trait At<T> {
    fn at(self, p: &Path) -> Result<T>;
}

impl<T> At<T> for std::io::Result<T> {
    fn at(self, p: &Path) -> Result<T> {
        self.map_err(|source| Error::Io {
            path: p.to_owned(),
            source,
        })
    }
}

fn write_seeds(out: &Path) -> Result<()> {
    let dir = tempfile::tempdir().at(&std::env::temp_dir())?;
    let db_dir = dir.path().join("db");
    let db = Database::open_with(&db_dir, Options::default())?;
    let mut config = CollectionConfig::new(4, Metric::Cosine);
    config.m = 4;
    config.ef_construction = 16;
    let c = db.create_collection("docs", config)?;
    let records: Vec<Record> = (1..=6u64)
        .map(|i| {
            let x = i as f32;
            let mut r = Record::new(i * 10, vec![x, 1.0, -x / 2.0, 0.25])
                .with_field("lang", ["en", "de", "fr"][i as usize % 3])
                .with_field("year", 2018 + i as i64);
            if i % 2 == 0 {
                r = r
                    .with_text(["red green", "blue red red", "green"][i as usize % 3])
                    .with_field("score", f64::from(x) / 4.0)
                    .with_field("tags", Value::from(vec!["a", "b"]));
            } else {
                r = r.with_field("draft", i % 3 == 0);
            }
            r
        })
        .collect();
    c.upsert(records[..4].to_vec())?;
    c.upsert(records[4..].to_vec())?;
    c.delete(&[20])?;

    let write = |target: &str, name: &str, bytes: &[u8]| -> Result<()> {
        let d = out.join(target);
        fs::create_dir_all(&d).at(&d)?;
        fs::write(d.join(name), bytes).at(&d)
    };
    let read = |p: &Path| fs::read(p).at(p);

    // The log, before any flush: frames follow the header.
    let mut logs: Vec<_> = fs::read_dir(db_dir.join("wal"))
        .at(&db_dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    logs.sort();
    let log = read(&logs[0])?;
    let frames = &log[HEADER_LEN..];
    let dim_bits = 3 << 4; // dimension 4, cosine
    for (name, flags) in [
        ("plain", 0),
        ("file", WAL_FILE),
        ("all", FIX_CHECKSUMS | WAL_FILE | WAL_DATABASE | dim_bits),
    ] {
        write("wal", name, &[&[flags], frames].concat())?;
    }
    let torn = &frames[..frames.len() - 5];
    write(
        "wal",
        "torn",
        &[&[WAL_FILE | WAL_DATABASE | dim_bits], torn].concat(),
    )?;

    // A segment, then a tombstone for one of its rows.
    let first_manifest = read(&db_dir.join("MANIFEST"))?;
    c.flush()?;
    c.delete(&[30])?;
    c.flush()?;
    let manifest = read(&db_dir.join("MANIFEST"))?;
    write("manifest", "plain", &[&[0], &manifest[..]].concat())?;
    write(
        "manifest",
        "body",
        &[&[FIX_CHECKSUMS], &manifest[HEADER_LEN..]].concat(),
    )?;
    // Without segments, a database opens with it.
    write(
        "manifest",
        "database",
        &[
            &[FIX_CHECKSUMS | MANIFEST_DATABASE],
            &first_manifest[HEADER_LEN..],
        ]
        .concat(),
    )?;
    // The manifest's body is JSON (docs/file-format.md).
    let m: serde_json::Value = serde_json::from_slice(&manifest[HEADER_LEN..]).expect("JSON");
    let entry = &m["collections"][0];
    let s = &entry["segments"][0];
    let seg_id = s["id"].as_u64().expect("segment id");
    let cdir = db_dir.join("collections").join("docs");
    let seg_dir = cdir.join(format!("seg-{seg_id:08}"));
    let mut files = SegmentFiles {
        flags: 0,
        id: seg_id,
        rows: s["rows"].as_u64().expect("rows") as u32,
        dim: 4,
        m: 4,
        tombstone_count: 0,
        vectors: read(&seg_dir.join("vectors"))?,
        ids: read(&seg_dir.join("ids"))?,
        payload: read(&seg_dir.join("payload"))?,
        graph: read(&seg_dir.join("graph"))?,
        fields: read(&seg_dir.join("fields"))?,
        text: read(&seg_dir.join("text"))?,
        tombstones: Vec::new(),
        codes: fs::read(seg_dir.join("codes")).unwrap_or_default(),
    };
    if let Some(t) = s["tombstones"].as_object() {
        files.tombstone_count = t["count"].as_u64().expect("count");
        let generation = t["generation"].as_u64().expect("generation");
        files.tombstones = read(&cdir.join(format!("seg-{seg_id:08}.{generation}.del")))?;
    }
    write("segment", "plain", &files.to_bytes())?;
    files.flags = FIX_CHECKSUMS | 2 << 1;
    write("segment", "fixed-l2", &files.to_bytes())?;

    for (target, file) in [("fields", &files.fields), ("text_index", &files.text)] {
        write(target, "plain", &[&[0], &file[..]].concat())?;
        let rows = files.rows.to_le_bytes();
        write(
            target,
            "body",
            &[&[FIX_CHECKSUMS], &rows[..], &file[HEADER_LEN..]].concat(),
        )?;
    }

    for (i, text) in [
        r#"lang = "en" AND year >= 2020 AND tags IN ("a", "b") AND NOT draft = true"#,
        r#"(score > -0.5 OR EXISTS(x)) AND HAS_TERM("red")"#,
        "year < 2021.5 OR NOT (lang != \"de\" AND draft = false)",
        "x = -0.0 OR score <= 1e-3 OR year = 2019",
    ]
    .iter()
    .enumerate()
    {
        write("filter", &format!("seed{i}"), text.as_bytes())?;
    }
    drop(c);
    drop(db);
    Ok(())
}

/// Seeds from a collection of string ids: its log (replayed into a database of string ids)
/// and its segment (read and verified as one of string ids).
fn write_string_seeds(out: &Path) -> Result<()> {
    let dir = tempfile::tempdir().at(&std::env::temp_dir())?;
    let db_dir = dir.path().join("db");
    let db = Database::open_with(&db_dir, Options::default())?;
    let mut config = CollectionConfig::new(4, Metric::Cosine).with_id_type(IdType::Str);
    config.m = 4;
    config.ef_construction = 16;
    let c = db.create_collection("docs", config)?;
    let ids = ["a", "doc-1#2", "é中🦀", "42", "with space"];
    let records: Vec<Record> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let x = 1.0 + i as f32;
            let r = Record::new(*id, vec![x, 1.0, -x / 2.0, 0.25]).with_field("i", i as i64);
            if i % 2 == 0 {
                r.with_text("red blue")
            } else {
                r
            }
        })
        .collect();
    c.upsert(records)?;
    c.delete(&["42"])?;
    let d = out.join("wal");
    fs::create_dir_all(&d).at(&d)?;
    let mut logs: Vec<_> = fs::read_dir(db_dir.join("wal"))
        .at(&db_dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    logs.sort();
    let log = fs::read(&logs[0]).at(&logs[0])?;
    let flags = FIX_CHECKSUMS | WAL_FILE | WAL_DATABASE | WAL_STR_IDS | 3 << 4;
    fs::write(d.join("strings"), [&[flags], &log[HEADER_LEN..]].concat()).at(&d)?;

    c.flush()?;
    let manifest = fs::read(db_dir.join("MANIFEST")).at(&db_dir)?;
    let m: serde_json::Value = serde_json::from_slice(&manifest[HEADER_LEN..]).expect("JSON");
    let s = &m["collections"][0]["segments"][0];
    let seg_id = s["id"].as_u64().expect("segment id");
    let seg_dir = db_dir
        .join("collections")
        .join("docs")
        .join(format!("seg-{seg_id:08}"));
    let read = |name: &str| fs::read(seg_dir.join(name)).at(&seg_dir);
    let files = SegmentFiles {
        flags: FIX_CHECKSUMS | SEGMENT_STR_IDS,
        id: seg_id,
        rows: s["rows"].as_u64().expect("rows") as u32,
        dim: 4,
        m: 4,
        tombstone_count: 0,
        vectors: read("vectors")?,
        ids: read("ids")?,
        payload: read("payload")?,
        graph: read("graph")?,
        fields: read("fields")?,
        text: read("text")?,
        tombstones: Vec::new(),
        codes: fs::read(seg_dir.join("codes")).unwrap_or_default(),
    };
    let d = out.join("segment");
    fs::create_dir_all(&d).at(&d)?;
    fs::write(d.join("strings"), files.to_bytes()).at(&d)?;
    drop(c);
    drop(db);
    Ok(())
}

/// Segments whose `codes` file holds RaBitQ codes (4 and 1 bits, L2 metric).
fn write_rabitq_seeds(out: &Path) -> Result<()> {
    for (kind, name) in [
        (Quantization::RaBitQ4, "rabitq4"),
        (Quantization::RaBitQ1, "rabitq1"),
    ] {
        let dir = tempfile::tempdir().at(&std::env::temp_dir())?;
        let db_dir = dir.path().join("db");
        let db = Database::open_with(&db_dir, Options::default())?;
        let mut config = CollectionConfig::new(4, Metric::L2).with_quantization(kind);
        config.m = 4;
        config.ef_construction = 16;
        let c = db.create_collection("docs", config)?;
        let records: Vec<Record> = (0..40u64)
            .map(|i| {
                let x = i as f32;
                Record::new(i, vec![x, 1.0 - x / 3.0, (x * 0.7).sin(), 0.25])
            })
            .collect();
        c.upsert(records)?;
        c.flush()?;
        let manifest = fs::read(db_dir.join("MANIFEST")).at(&db_dir)?;
        let m: serde_json::Value = serde_json::from_slice(&manifest[HEADER_LEN..]).expect("JSON");
        let s = &m["collections"][0]["segments"][0];
        let seg_id = s["id"].as_u64().expect("segment id");
        let seg_dir = db_dir
            .join("collections")
            .join("docs")
            .join(format!("seg-{seg_id:08}"));
        let read = |name: &str| fs::read(seg_dir.join(name)).at(&seg_dir);
        let files = SegmentFiles {
            flags: FIX_CHECKSUMS | 2 << 1,
            id: seg_id,
            rows: s["rows"].as_u64().expect("rows") as u32,
            dim: 4,
            m: 4,
            tombstone_count: 0,
            vectors: read("vectors")?,
            ids: read("ids")?,
            payload: read("payload")?,
            graph: read("graph")?,
            fields: read("fields")?,
            text: read("text")?,
            tombstones: Vec::new(),
            codes: read("codes")?,
        };
        let d = out.join("segment");
        fs::create_dir_all(&d).at(&d)?;
        fs::write(d.join(name), files.to_bytes()).at(&d)?;
        drop(c);
        drop(db);
    }
    Ok(())
}
