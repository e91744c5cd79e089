//! A segment's `ids` file (version 2) is checked block by block as lookups reach it, not at
//! open: a damaged block is found by the first read that needs it — a search hit, a `get`,
//! the lookups of a write — and reported as corruption, never as another record's id, and a
//! write that cannot make its lookups is not applied. Version 1 files (one checksum over the
//! whole body, checked at open) still open and read.

use std::fs;
use std::path::{Path, PathBuf};

use cairndb::{CollectionConfig, Database, Error, Metric, Options, Record, SearchRequest};

const DIM: usize = 8;
const ROWS: u64 = 3000;
const HEADER_LEN: usize = 64;

/// A distinct pseudo-random vector per id (splitmix64).
fn vector(id: u64) -> Vec<f32> {
    (0..DIM as u64)
        .map(|j| {
            let mut z = (id * DIM as u64 + j).wrapping_add(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

/// The id of the record in row `r`: not the row number, so that a row read under another
/// row's id would show.
fn id_of(r: u64) -> u64 {
    r * 7 + 3
}

fn options() -> Options {
    Options::default().background_compaction(false)
}

/// One collection with `ROWS` records in one segment; returns the segment's ids file.
fn build(dir: &Path) -> PathBuf {
    let db = Database::open_with(dir, options()).unwrap();
    let c = db
        .create_collection("c", CollectionConfig::new(DIM, Metric::L2))
        .unwrap();
    let recs: Vec<Record> = (0..ROWS)
        .map(|r| Record::new(id_of(r), vector(id_of(r))))
        .collect();
    c.upsert(recs).unwrap();
    c.flush().unwrap();
    assert_eq!(c.stats().segments.len(), 1);
    drop(c);
    drop(db);
    ids_file(dir)
}

fn ids_file(dir: &Path) -> PathBuf {
    let mut found = Vec::new();
    for e in walk(dir) {
        if e.file_name().is_some_and(|n| n == "ids") {
            found.push(e);
        }
    }
    assert_eq!(found.len(), 1, "one ids file: {found:?}");
    found.pop().unwrap()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn flip(path: &Path, off: usize) {
    let mut b = fs::read(path).unwrap();
    b[off] ^= 0x10;
    fs::write(path, b).unwrap();
}

fn is_corruption<T: std::fmt::Debug>(r: &cairndb::Result<T>) -> bool {
    matches!(r, Err(Error::Corruption { .. }))
}

/// File offset of row `r`'s id (body: `s`, then the row-order ids).
fn row_id_offset(r: u64) -> usize {
    HEADER_LEN + 8 + r as usize * 8
}

/// File offset of the id of sorted entry `i` (after the row-order ids).
fn sorted_id_offset(i: u64) -> usize {
    HEADER_LEN + 8 + (ROWS + i) as usize * 8
}

#[test]
fn new_ids_files_are_version_2_with_a_block_table() {
    let tmp = tempfile::tempdir().unwrap();
    let ids = build(tmp.path());
    let b = fs::read(&ids).unwrap();
    assert_eq!(u16::from_le_bytes([b[8], b[9]]), 2, "version");
    let block = u32::from_le_bytes(b[36..40].try_into().unwrap()) as usize;
    assert_eq!(block, 4096);
    let data = 8 + ROWS as usize * 20;
    assert_eq!(b.len(), HEADER_LEN + data + data.div_ceil(block) * 4);
}

#[test]
fn a_damaged_row_id_block_fails_the_reads_that_need_it_and_only_those() {
    let tmp = tempfile::tempdir().unwrap();
    let ids = build(tmp.path());
    // Row 1000's id lies in the third 4 KiB block of the body (rows 1023..1534). Rows are
    // in the segment's own order: read which records the rows hold.
    let b = fs::read(&ids).unwrap();
    let id_in_row = |r: u64| u64::from_le_bytes(b[row_id_offset(r)..][..8].try_into().unwrap());
    let (damaged, intact) = (id_in_row(1100), id_in_row(2900));
    flip(&ids, row_id_offset(1100));
    // Opening reads none of the ids body: it succeeds.
    let db = Database::open_with(tmp.path(), options()).unwrap();
    let c = db.collection("c").unwrap();
    // The lookup of that row's id finds its sorted entry (intact) and then checks that the
    // row carries the id, which reads the damaged block.
    assert!(is_corruption(&c.get(damaged)), "get of the damaged row");
    // A record whose blocks are intact reads as stored.
    let r = c.get(intact).unwrap().expect("an intact record");
    assert_eq!(r.vector, vector(intact));
    // A search whose hit is in the damaged block fails rather than name another record.
    let hit_damaged = c.search(&SearchRequest::new(vector(damaged)).k(1));
    assert!(is_corruption(&hit_damaged), "search: {hit_damaged:?}");
    let hit_intact = c.search(&SearchRequest::new(vector(intact)).k(1)).unwrap();
    assert_eq!(hit_intact[0].id, cairndb::Id::from(intact));
    // Verify finds it, every time.
    assert!(is_corruption(&db.verify()));
    assert!(is_corruption(&c.get(damaged)), "the error stays");
}

#[test]
fn a_damaged_lookup_table_block_fails_writes_without_applying_them() {
    let tmp = tempfile::tempdir().unwrap();
    let ids = build(tmp.path());
    // The middle entry of the sorted table is read by every binary search.
    flip(&ids, sorted_id_offset(ROWS / 2));
    let db = Database::open_with(tmp.path(), options()).unwrap();
    let c = db.collection("c").unwrap();
    assert!(is_corruption(&c.get(id_of(7))));
    assert!(is_corruption(&c.delete(&[id_of(7)])));
    // The upsert is logged, then its lookups fail: it is not applied, and the database
    // takes no more writes until it is reopened.
    let before = c.len();
    let up = c.upsert(vec![Record::new(1, vector(1))]);
    assert!(is_corruption(&up), "upsert: {up:?}");
    assert_eq!(c.len(), before, "the failed batch is not visible");
    assert!(c.upsert(vec![Record::new(2, vector(2))]).is_err());
    drop(c);
    drop(db);
    // Reopening replays the logged batch against the same damaged segment: a clear error.
    let reopened = Database::open_with(tmp.path(), options());
    assert!(is_corruption(&reopened), "reopen");
}

#[test]
fn version_1_ids_files_still_open_and_are_checked_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let ids = build(tmp.path());
    // Rewrite the file as version 1: the body without its block table, one crc over it.
    let b = fs::read(&ids).unwrap();
    let data = 8 + ROWS as usize * 20;
    let body = &b[HEADER_LEN..HEADER_LEN + data];
    let mut h = b[..HEADER_LEN].to_vec();
    h[8..10].copy_from_slice(&1u16.to_le_bytes());
    h[24..32].copy_from_slice(&(data as u64).to_le_bytes());
    h[32..36].copy_from_slice(&crc32c::crc32c(body).to_le_bytes());
    h[36..40].copy_from_slice(&0u32.to_le_bytes());
    let crc = crc32c::crc32c(&h[..60]);
    h[60..64].copy_from_slice(&crc.to_le_bytes());
    let v1 = [h.as_slice(), body].concat();
    fs::write(&ids, &v1).unwrap();
    {
        let db = Database::open_with(tmp.path(), options()).unwrap();
        let c = db.collection("c").unwrap();
        for r in [0, 1000, ROWS - 1] {
            let got = c.get(id_of(r)).unwrap().expect("record");
            assert_eq!(got.vector, vector(id_of(r)));
        }
        let hits = c
            .search(&SearchRequest::new(vector(id_of(42))).k(1).exact(true))
            .unwrap();
        assert_eq!(hits[0].id, cairndb::Id::from(id_of(42)));
        db.verify().unwrap();
    }
    // A damaged version 1 file fails at open, as before.
    let mut bad = v1;
    bad[row_id_offset(1000)] ^= 0x10;
    fs::write(&ids, bad).unwrap();
    assert!(is_corruption(&Database::open_with(tmp.path(), options())));
}

#[test]
fn a_reader_whose_catch_up_meets_a_damaged_block_reports_it_every_time() {
    let tmp = tempfile::tempdir().unwrap();
    let ids = build(tmp.path());
    let w = Database::open_with(tmp.path(), options()).unwrap();
    let wc = w.collection("c").unwrap();
    // The writer's lookups check the middle block of the sorted table now, while it is
    // intact; the damage comes after (the writer keeps its checked bits and writes on).
    wc.get(id_of(5)).unwrap().expect("record");
    flip(&ids, sorted_id_offset(ROWS / 2));
    let r = Database::open_read_only(tmp.path()).unwrap();
    let rc = r.collection("c").unwrap();
    wc.upsert(vec![Record::new(id_of(5), vector(9))]).unwrap();
    // The reader catches up before its reads: applying the batch needs the damaged block.
    for attempt in 0..3 {
        let got = rc.get(id_of(5));
        assert!(is_corruption(&got), "attempt {attempt}: {got:?}");
    }
}
