//! Hostile inputs against collections of string ids: damaged segment documents and log
//! frames (every read path must answer right or report `Corruption`, never panic nor name a
//! record by the wrong id), concurrent writers on a few ids, ids of the wrong kind through
//! every entry, and the longest and oddest ids.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use cairndb::{
    CollectionConfig, Database, Error, Filter, Id, IdType, MAX_ID_BYTES, Metric, Options, Record,
    ScanOptions, SearchRequest, Update,
};
use common::{copy_dir, parse_frames, single_wal};

const DIM: usize = 3;

fn cfg() -> CollectionConfig {
    CollectionConfig::new(DIM, Metric::Dot).with_id_type(IdType::Str)
}

fn vector(i: usize) -> Vec<f32> {
    vec![1.0 + i as f32, (i % 3) as f32, 0.5]
}

/// Ids of one length, so that one can be swapped for another in place.
fn ids() -> Vec<String> {
    (0..6).map(|i| format!("rec-{i}{i}{i}")).collect()
}

fn records() -> Vec<Record> {
    ids()
        .into_iter()
        .enumerate()
        .map(|(i, id)| Record::new(id.as_str(), vector(i)).with_text(format!("text of {id}")))
        .collect()
}

/// The first place `needle` occurs in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .unwrap_or_else(|| panic!("{:?} not found", String::from_utf8_lossy(needle)))
}

fn payload_file(db: &Path) -> PathBuf {
    let coll = db.join("collections").join("c");
    let segs: Vec<PathBuf> = fs::read_dir(&coll)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(segs.len(), 1, "one segment: {segs:?}");
    segs[0].join("payload")
}

/// Rewrites every checksum of a payload file (rows' documents, the index block, the header):
/// a document changed in place then reads as intact.
fn fix_payload_checksums(path: &Path) {
    let mut b = fs::read(path).unwrap();
    let rows = u64::from_le_bytes(b[16..24].try_into().unwrap()) as usize;
    let index_end = 64 + 16 * rows;
    assert!(index_end <= 65_536 + 64, "one index block");
    for r in 0..rows {
        let e = 64 + 16 * r;
        let off = u64::from_le_bytes(b[e..e + 8].try_into().unwrap()) as usize;
        let len = u32::from_le_bytes(b[e + 8..e + 12].try_into().unwrap()) as usize;
        let crc = crc32c::crc32c(&b[index_end + off..index_end + off + len]);
        b[e + 12..e + 16].copy_from_slice(&crc.to_le_bytes());
    }
    let table_at = b.len() - 4;
    let block = crc32c::crc32c(&b[64..index_end]);
    b[table_at..].copy_from_slice(&block.to_le_bytes());
    let body = crc32c::crc32c(&b[table_at..]);
    b[32..36].copy_from_slice(&body.to_le_bytes());
    let head = crc32c::crc32c(&b[..60]);
    b[60..64].copy_from_slice(&head.to_le_bytes());
    fs::write(path, b).unwrap();
}

/// Rewrites the checksum of every log frame (a frame changed in place then reads as intact).
fn fix_frame_checksums(path: &Path) {
    let mut b = fs::read(path).unwrap();
    let mut pos = 64;
    while pos + 8 <= b.len() {
        let len = u32::from_le_bytes(b[pos..pos + 4].try_into().unwrap()) as usize;
        if len < 9 || pos + 8 + len > b.len() {
            break;
        }
        let crc = crc32c::crc32c(&b[pos + 8..pos + 8 + len]);
        b[pos + 4..pos + 8].copy_from_slice(&crc.to_le_bytes());
        pos += 8 + len;
    }
    fs::write(path, b).unwrap();
}

fn is_corruption<T: std::fmt::Debug>(r: &cairndb::Result<T>) -> bool {
    matches!(r, Err(Error::Corruption { .. }))
}

/// Runs every read and write path on collection `c` of a reopened database; each must give
/// the right answer (the records of `want`, each under its own id and text) or `Corruption`.
/// Returns what went wrong otherwise.
fn exercise(db: &Database, want: &BTreeMap<String, usize>) -> Vec<String> {
    let mut bad = Vec::new();
    let c = db.collection("c").unwrap();
    let right = |r: &Record| {
        let id = r.id.as_str().unwrap_or_default();
        want.contains_key(id) && r.text.as_deref() == Some(format!("text of {id}").as_str())
    };
    for id in want.keys() {
        match c.get(id.as_str()) {
            Ok(Some(r)) if right(&r) && r.id == *id => {}
            r if is_corruption(&r) => {}
            r => bad.push(format!("get {id}: {r:?}")),
        }
    }
    for exact in [true, false] {
        let req = SearchRequest::new(vector(2))
            .k(want.len())
            .exact(exact)
            .with_text(true);
        match c.search(&req) {
            Ok(hits) => {
                for h in hits {
                    let id = h.id.as_str().unwrap_or_default().to_owned();
                    if !want.contains_key(&id)
                        || h.text.as_deref() != Some(format!("text of {id}").as_str())
                    {
                        bad.push(format!("search hit {:?} text {:?}", h.id, h.text));
                    }
                }
            }
            r if is_corruption(&r) => {}
            r => bad.push(format!("search: {r:?}")),
        }
    }
    match c.scan(ScanOptions::new()) {
        Ok(scan) => {
            for r in scan {
                match r {
                    Ok(r) if right(&r) => {}
                    Err(Error::Corruption { .. }) => break,
                    r => bad.push(format!("scan: {r:?}")),
                }
            }
        }
        r => bad.push(format!("scan: {:?}", r.err())),
    }
    match db.verify() {
        r if is_corruption(&r) => {}
        r => bad.push(format!("verify of a damaged database: {r:?}")),
    }
    for id in want.keys() {
        let r = c.update(Update::new(id.as_str()).set_field("u", 1));
        if !matches!(r, Ok(1)) && !is_corruption(&r) {
            bad.push(format!("update {id}: {r:?}"));
        }
    }
    let r = c.compact();
    if r.is_err() && !is_corruption(&r) {
        bad.push(format!("compact: {r:?}"));
    }
    for id in want.keys() {
        let r = c.delete(&[id.as_str()]);
        if !matches!(r, Ok(1)) && !is_corruption(&r) {
            bad.push(format!("delete {id}: {r:?}"));
        }
    }
    bad
}

fn want() -> BTreeMap<String, usize> {
    ids().into_iter().enumerate().map(|(i, s)| (s, i)).collect()
}

/// A sealed segment of string ids, the database closed.
fn sealed_db() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let c = db.create_collection("c", cfg()).unwrap();
    c.upsert(records()).unwrap();
    c.flush().unwrap();
    dir
}

/// Every byte of a row's document (its id prefix, its id, its text) flipped in turn, on
/// disk: every read path reports `Corruption` or answers right.
#[test]
fn flipped_bytes_in_a_string_id_document_are_corruption() {
    let pristine = sealed_db();
    let path = payload_file(pristine.path());
    let bytes = fs::read(&path).unwrap();
    // The document of rec-222: its prefix (2, length) starts 2 bytes before the id.
    let at = find(&bytes, b"rec-222") - 2;
    let mut problems = Vec::new();
    for pos in at..at + 2 + 7 + 4 {
        for mask in [0x01u8, 0x80] {
            let dir = tempfile::tempdir().unwrap();
            copy_dir(pristine.path(), dir.path());
            let p = payload_file(dir.path());
            let mut b = fs::read(&p).unwrap();
            b[pos] ^= mask;
            fs::write(&p, &b).unwrap();
            match Database::open(dir.path()) {
                Ok(db) => problems.extend(
                    exercise(&db, &want())
                        .into_iter()
                        .map(|m| format!("byte {pos} ^ {mask:#x}: {m}")),
                ),
                Err(Error::Corruption { .. }) => {}
                Err(e) => problems.push(format!("byte {pos}: open: {e}")),
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// A row whose stored id was changed in place, with every checksum made to fit (a bug or a
/// crafted file, not a flipped bit): no read names the record by the wrong id.
#[test]
fn a_segment_row_whose_id_does_not_hash_to_its_key_is_corruption() {
    let pristine = sealed_db();
    for (from, to) in [("rec-222", "rec-999"), ("rec-222", "rec-333")] {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(pristine.path(), dir.path());
        let p = payload_file(dir.path());
        let mut b = fs::read(&p).unwrap();
        let at = find(&b, from.as_bytes());
        b[at..at + 7].copy_from_slice(to.as_bytes());
        fs::write(&p, &b).unwrap();
        fix_payload_checksums(&p);
        let db = Database::open(dir.path()).unwrap();
        let problems = exercise(&db, &want());
        assert!(problems.is_empty(), "{from} -> {to}: {problems:#?}");
        // The damaged row is reported, not skipped as "another string with this key".
        let c = db.collection("c").unwrap();
        let r = c.get(from);
        assert!(is_corruption(&r), "get {from}: {r:?}");
    }
}

/// A log frame whose row carries a string that does not hash to the row's key, or no string
/// at all, with the frame checksum made to fit: replay refuses it as `Corruption` rather than
/// serve a record that `get` cannot find under the id a search names it by.
#[test]
fn a_log_row_whose_id_does_not_fit_its_key_is_corruption() {
    let pristine = tempfile::tempdir().unwrap();
    {
        let db = Database::open(pristine.path()).unwrap();
        let c = db.create_collection("c", cfg()).unwrap();
        c.upsert(records()).unwrap();
    }
    // (what to find, what to write over it)
    let damage: [(&[u8], &[u8]); 3] = [
        (b"rec-222", b"rec-999"),
        (b"rec-222", b"rec-333"),
        // The id prefix's tag: the row then has no string id.
        (b"\x02\x07rec-444", b"\x00\x07rec-444"),
    ];
    for (from, to) in damage {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(pristine.path(), dir.path());
        let wal = single_wal(dir.path());
        let mut b = fs::read(&wal).unwrap();
        assert_eq!(parse_frames(&b).len(), 1);
        let at = find(&b, from);
        b[at..at + to.len()].copy_from_slice(to);
        fs::write(&wal, &b).unwrap();
        fix_frame_checksums(&wal);
        assert_eq!(parse_frames(&fs::read(&wal).unwrap()).len(), 1);
        let what = String::from_utf8_lossy(to).into_owned();
        match Database::open(dir.path()) {
            Err(Error::Corruption { .. }) => {}
            Err(e) => panic!("{what}: {e}"),
            Ok(db) => {
                let problems = exercise(&db, &want());
                panic!("{what}: opened; {problems:#?}");
            }
        }
        // A read-only handle replays the same log the same way.
        let r = Database::open_read_only(dir.path());
        assert!(is_corruption(&r), "{what}: read-only: {:?}", r.err());
    }
}

/// Every entry point refuses an id of the wrong kind, before writing anything.
#[test]
fn mixed_kinds_through_every_entry_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let s = db.create_collection("c", cfg()).unwrap();
    let n = db
        .create_collection("n", CollectionConfig::new(DIM, Metric::Dot))
        .unwrap();
    s.upsert(records()).unwrap();
    n.upsert(Record::new(1, vector(1))).unwrap();
    let invalid = |r: cairndb::Result<usize>, what: &str| {
        assert!(matches!(r, Err(Error::InvalidArgument(_))), "{what}: {r:?}");
    };
    // A delete mixing kinds: the valid ids before the bad one are not deleted.
    let mixed = vec![Id::from("rec-000"), Id::from(5), Id::from("rec-111")];
    invalid(s.delete(&mixed), "delete str,int,str");
    invalid(
        n.delete(&[Id::from(1), Id::from("1")]),
        "delete int,str on ints",
    );
    invalid(
        s.delete(&[Id::from("rec-000"), Id::from("x".repeat(MAX_ID_BYTES + 1))]),
        "delete with a too long id",
    );
    invalid(s.delete(&[Id::from("")]), "delete the empty id");
    // Update lists: one bad id refuses the batch.
    invalid(
        s.update(vec![
            Update::new("rec-000").set_field("x", 1),
            Update::new(3).set_field("x", 1),
        ]),
        "update str,int",
    );
    invalid(
        n.update(vec![
            Update::new(1).set_field("x", 1),
            Update::new("1").set_field("x", 1),
        ]),
        "update int,str",
    );
    invalid(
        s.update(vec![
            Update::new("rec-000").set_field("x", 1),
            Update::new("").set_field("x", 1),
        ]),
        "update with the empty id",
    );
    for after in [Id::from(0), Id::from(""), Id::from("y".repeat(2000))] {
        let r = s.scan(ScanOptions::new().after(after.clone()));
        assert!(
            matches!(r, Err(Error::InvalidArgument(_))),
            "scan after {after:?}"
        );
    }
    let r = n.scan(ScanOptions::new().after("7"));
    assert!(matches!(r, Err(Error::InvalidArgument(_))));
    // Nothing changed.
    assert_eq!((s.len(), n.len()), (6, 1));
    assert_eq!(s.count(Some(&Filter::exists("x"))).unwrap(), 0);
    assert_eq!(n.count(Some(&Filter::exists("x"))).unwrap(), 0);
    drop((s, n));
    drop(db);
    // And nothing was logged: the log replays to the same state.
    let db = Database::open(dir.path()).unwrap();
    assert_eq!(db.collection("c").unwrap().len(), 6);
}

/// The longest ids (multi-byte characters up to the last byte), ids with NUL and control
/// characters, ids that look like numbers or like JSON, through a seal, a reopen and a
/// compaction.
#[test]
fn odd_ids_survive_every_stage() {
    let mut odd: Vec<String> = vec![
        "0".into(),
        "18446744073709551615".into(),
        "-1".into(),
        "1e3".into(),
        " 7".into(),
        "\0".into(),
        "a\0b".into(),
        "\u{7f}\u{1}\n\r".into(),
        "null".into(),
        "{\"id\":1}".into(),
        "\u{feff}bom".into(),
        "\u{10ffff}".into(),
    ];
    // 1024 bytes: 341 three-byte characters and one byte; 256 four-byte characters.
    odd.push(format!("{}x", "中".repeat(341)));
    odd.push("🦀".repeat(256));
    odd.push("é".repeat(512));
    for s in &odd {
        assert!(s.len() <= MAX_ID_BYTES, "{}", s.len());
    }
    let too_long = format!("{}é", "x".repeat(MAX_ID_BYTES - 1));
    let dir = tempfile::tempdir().unwrap();
    let check = |c: &cairndb::Collection| {
        for (i, s) in odd.iter().enumerate() {
            let r = c
                .get(s.as_str())
                .unwrap()
                .unwrap_or_else(|| panic!("{s:?}"));
            assert_eq!((r.id.as_str(), r.vector), (Some(s.as_str()), vector(i)));
        }
        let scanned: BTreeSet<String> = c
            .scan(ScanOptions::new())
            .unwrap()
            .map(|r| r.unwrap().id.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(scanned, odd.iter().cloned().collect());
        let hits = c
            .search(&SearchRequest::new(vector(1)).k(odd.len()).exact(true))
            .unwrap();
        assert_eq!(hits.len(), odd.len());
    };
    {
        let db = Database::open_with(dir.path(), Options::default().memtable_max_rows(4)).unwrap();
        let c = db.create_collection("c", cfg()).unwrap();
        let r = c.upsert(Record::new(too_long.as_str(), vector(0)));
        assert!(matches!(r, Err(Error::InvalidArgument(_))), "{r:?}");
        for (i, s) in odd.iter().enumerate() {
            c.upsert(Record::new(s.as_str(), vector(i))).unwrap();
        }
        check(&c);
        c.flush().unwrap();
        c.compact().unwrap();
        check(&c);
        // Numbers as strings are not integers.
        assert!(matches!(c.get(0), Err(Error::InvalidArgument(_))));
    }
    let db = Database::open(dir.path()).unwrap();
    check(&db.collection("c").unwrap());
    db.verify().unwrap();
}
