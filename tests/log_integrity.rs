//! Log integrity: a damaged frame followed by intact ones is corruption, not a torn tail; a
//! missing or shortened log is corruption; opening then changes no file. `accept_log_loss`
//! is the deliberate way out, and says what it dropped. `verify` reads the log too.
//!
//! Two images of a database are used: `Crash`, a copy taken while the database is open (as a
//! crash would leave it: the manifest does not know where the log ends), and `Closed`, a copy
//! taken after a clean close (the manifest records the log's last LSN).

mod common;

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use cairndb::{Collection, CollectionConfig, Database, Error, Metric, Options, Record};

use common::{FrameInfo, HEADER_LEN, copy_dir, parse_frames, single_wal, wal_files};

const NAME: &str = "c";
const DIM: usize = 2;

/// id → vector of every live record.
type Model = HashMap<u64, Vec<f32>>;

fn vector_for(id: u64, salt: u64) -> Vec<f32> {
    (0..DIM as u64)
        .map(|j| ((id * 7 + salt * 3 + j * 13) % 17) as f32 * 0.25 - 2.0)
        .collect()
}

#[derive(Debug, Clone)]
enum Batch {
    /// One record: id, salt of its vector.
    Up(u64, u64),
    Del(Vec<u64>),
}

impl Batch {
    fn apply_db(&self, c: &Collection) {
        match self {
            Batch::Up(id, salt) => c.upsert(Record::new(*id, vector_for(*id, *salt))).unwrap(),
            Batch::Del(ids) => {
                c.delete(ids).unwrap();
            }
        }
    }

    fn apply_model(&self, m: &mut Model) {
        match self {
            Batch::Up(id, salt) => {
                m.insert(*id, vector_for(*id, *salt));
            }
            Batch::Del(ids) => {
                for id in ids {
                    m.remove(id);
                }
            }
        }
    }
}

fn model_of(batches: &[Batch]) -> Model {
    let mut m = Model::new();
    for b in batches {
        b.apply_model(&mut m);
    }
    m
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Image {
    Crash,
    Closed,
}

/// Writes `batches` (Sync durability: each one acknowledged) into a new database under
/// `root/<name>-live` and returns the image of it at `root/<name>`.
fn build(root: &Path, name: &str, batches: &[Batch], image: Image, options: Options) -> PathBuf {
    let live = root.join(format!("{name}-live"));
    let out = root.join(name);
    let db = Database::open_with(&live, options).unwrap();
    let col = db
        .create_collection(NAME, CollectionConfig::new(DIM, Metric::Dot))
        .unwrap();
    for b in batches {
        b.apply_db(&col);
    }
    match image {
        Image::Crash => copy_dir(&live, &out),
        Image::Closed => {
            drop(col);
            drop(db);
            copy_dir(&live, &out);
        }
    }
    out
}

/// Every file of the database but LOCK, with its bytes.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v: Vec<(PathBuf, Vec<u8>)> = common::list_files(dir)
        .into_iter()
        .filter(|p| p.as_os_str() != "LOCK" && dir.join(p).is_file())
        .map(|p| {
            let bytes = fs::read(dir.join(&p)).unwrap();
            (p, bytes)
        })
        .collect();
    v.sort();
    v
}

fn flip(path: &Path, offset: usize, mask: u8) {
    let mut bytes = fs::read(path).unwrap();
    bytes[offset] ^= mask;
    write_at(path, offset, bytes[offset]);
}

fn write_at(path: &Path, offset: usize, byte: u8) {
    let mut f = OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(offset as u64)).unwrap();
    f.write_all(&[byte]).unwrap();
}

fn truncate(path: &Path, len: usize) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len as u64)
        .unwrap();
}

/// The database holds exactly `model` (ids in `universe`).
fn assert_state(db: &Database, model: &Model, universe: impl Iterator<Item = u64>, ctx: &str) {
    let col = db.collection(NAME).unwrap();
    assert_eq!(col.len(), model.len(), "{ctx}: record count");
    for id in universe {
        let got = col.get(id).unwrap().map(|r| r.vector);
        assert_eq!(got.as_ref(), model.get(&id), "{ctx}: record {id}");
    }
}

/// Opening fails with `Corruption` naming `file` (and `offset`, when given), and changes no
/// file.
fn assert_corruption(dir: &Path, file: &Path, offset: Option<usize>, ctx: &str) {
    let before = snapshot(dir);
    match Database::open(dir) {
        Err(Error::Corruption { path, what }) => {
            assert_eq!(path, file, "{ctx}: the error names the file ({what})");
            if let Some(o) = offset {
                assert!(
                    what.contains(&format!("offset {o} ")),
                    "{ctx}: the error names offset {o}: {what}"
                );
            }
        }
        Err(e) => panic!("{ctx}: expected Corruption, got {e}"),
        Ok(db) => {
            let n = db.collection(NAME).map(|c| c.len());
            panic!("{ctx}: opened without an error ({n:?} records)")
        }
    }
    assert!(snapshot(dir) == before, "{ctx}: a file changed");
}

/// After a repair: reopens without `accept_log_loss`, writes, reopens, and checks the state.
fn write_after_repair(dir: &Path, state: &Model, universe: u64, ctx: &str) {
    let mut want = state.clone();
    {
        let db = Database::open(dir).unwrap_or_else(|e| panic!("{ctx}: open after repair: {e}"));
        assert!(!db.recovery_report().lost_data(), "{ctx}");
        assert_state(&db, state, 0..universe, &format!("{ctx}, reopened"));
        let col = db.collection(NAME).unwrap();
        col.upsert(Record::new(900, vector_for(900, 1))).unwrap();
        want.insert(900, vector_for(900, 1));
    }
    let db = Database::open(dir).unwrap_or_else(|e| panic!("{ctx}: open after a write: {e}"));
    assert_state(
        &db,
        &want,
        (0..universe).chain([900]),
        &format!("{ctx}, written"),
    );
    db.verify()
        .unwrap_or_else(|e| panic!("{ctx}: verify after repair: {e}"));
}

fn single_upserts(n: u64) -> Vec<Batch> {
    (0..n).map(|i| Batch::Up(i, 0)).collect()
}

#[test]
fn flipped_bit_in_an_upsert_frame_is_corruption_not_a_torn_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let batches = single_upserts(100);
    for image in [Image::Crash, Image::Closed] {
        let ctx = format!("{image:?}");
        let dir = build(tmp.path(), &ctx, &batches, image, Options::default());
        let wal = single_wal(&dir);
        let frames = parse_frames(&fs::read(&wal).unwrap());
        assert_eq!(frames.len(), 100, "{ctx}: one frame per batch");
        // A bit of the vector of batch 10 (body: collection u64, dim u32, count u32, id u64,
        // vector …).
        let f = frames[10];
        flip(&wal, f.start + 17 + 26, 0x04);
        assert_corruption(&dir, &wal, Some(f.start), &ctx);

        let db = Database::open_with(&dir, Options::default().accept_log_loss(true))
            .unwrap_or_else(|e| panic!("{ctx}: accept_log_loss: {e}"));
        assert_state(&db, &model_of(&batches[..10]), 0..100, &ctx);
        let r = db.recovery_report().clone();
        assert!(r.lost_data(), "{ctx}: {r:?}");
        assert_eq!(r.dropped_frames, 90, "{ctx}: {r:?}");
        assert_eq!(r.dropped_records, 90, "{ctx}: {r:?}");
        assert_eq!(r.frames_replayed, 10, "{ctx}: {r:?}");
        assert_eq!(r.damaged_file.as_deref(), Some(wal.as_path()), "{ctx}");
        assert_eq!(r.damaged_offset, Some(f.start as u64), "{ctx}");
        drop(db);
        write_after_repair(&dir, &model_of(&batches[..10]), 100, &ctx);
    }
}

#[test]
fn flipped_bit_in_a_delete_frame_never_brings_records_back_silently() {
    let tmp = tempfile::tempdir().unwrap();
    // 50 upserts, a delete of ids 0..10, 49 more upserts: 100 frames.
    let mut batches = single_upserts(50);
    batches.push(Batch::Del((0..10).collect()));
    batches.extend((50..99).map(|i| Batch::Up(i, 0)));
    for image in [Image::Crash, Image::Closed] {
        let ctx = format!("{image:?}");
        let dir = build(tmp.path(), &ctx, &batches, image, Options::default());
        let wal = single_wal(&dir);
        let frames = parse_frames(&fs::read(&wal).unwrap());
        assert_eq!(frames.len(), 100);
        let f = frames[50];
        assert_eq!(f.kind, 2, "frame 50 is the delete");
        // A bit of the third deleted id (body: collection u64, count u32, ids u64 …).
        flip(&wal, f.start + 17 + 12 + 16, 0x01);
        assert_corruption(&dir, &wal, Some(f.start), &ctx);

        // Only the deliberate recovery brings them back, and says so.
        let db = Database::open_with(&dir, Options::default().accept_log_loss(true)).unwrap();
        let want = model_of(&batches[..50]);
        assert_state(&db, &want, 0..100, &ctx);
        let r = db.recovery_report().clone();
        assert_eq!(r.dropped_frames, 50, "{ctx}: {r:?}");
        assert_eq!(r.dropped_records, 10 + 49, "{ctx}: {r:?}");
        assert_eq!(r.damaged_offset, Some(f.start as u64), "{ctx}");
        drop(db);
        write_after_repair(&dir, &want, 100, &ctx);
    }

    // A delete that is the last frame of a cleanly closed log: damaging it is corruption
    // too (the manifest knows the log reached it).
    let mut batches = single_upserts(20);
    batches.push(Batch::Del(vec![3, 4]));
    let dir = build(
        tmp.path(),
        "last",
        &batches,
        Image::Closed,
        Options::default(),
    );
    let wal = single_wal(&dir);
    let frames = parse_frames(&fs::read(&wal).unwrap());
    let last = *frames.last().unwrap();
    assert_eq!(last.kind, 2);
    flip(&wal, last.start + 17 + 12, 0x01);
    assert_corruption(&dir, &wal, None, "damaged last delete");
}

#[test]
fn missing_or_shortened_log_is_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    let batches = single_upserts(100);
    let all = model_of(&batches);
    let mut n = 0;
    let mut fresh = |image: Image| {
        n += 1;
        let dir = build(
            tmp.path(),
            &format!("{image:?}-{n}"),
            &batches,
            image,
            Options::default(),
        );
        let wal = single_wal(&dir);
        let frames = parse_frames(&fs::read(&wal).unwrap());
        assert_eq!(frames.len(), 100);
        (dir, wal, frames)
    };
    for image in [Image::Crash, Image::Closed] {
        // The newest log file deleted.
        let (dir, wal, _) = fresh(image);
        fs::remove_file(&wal).unwrap();
        assert_corruption(&dir, &wal, None, &format!("{image:?}: log file deleted"));
        assert!(wal_files(&dir).is_empty(), "no new log file was created");
        if image == Image::Closed {
            let db = Database::open_with(&dir, Options::default().accept_log_loss(true)).unwrap();
            assert!(db.recovery_report().lost_data());
            assert_state(&db, &Model::new(), 0..100, "log deleted, repaired");
            drop(db);
            write_after_repair(&dir, &Model::new(), 100, "log deleted");
        }

        // Truncated below its header.
        for len in [0, 30, HEADER_LEN - 1] {
            let (dir, wal, _) = fresh(image);
            truncate(&wal, len);
            assert_corruption(
                &dir,
                &wal,
                None,
                &format!("{image:?}: log cut to {len} bytes"),
            );
            assert!(wal.exists());
        }
    }

    // After a clean close, the manifest knows the log's last LSN: a log cut at a frame
    // boundary (or to its bare header) lost acknowledged frames.
    for keep in [50, 99, 0] {
        let ctx = format!("log cut after {keep} frames");
        let (dir, wal, frames) = fresh(Image::Closed);
        let len = if keep == 0 {
            HEADER_LEN
        } else {
            frames[keep - 1].end
        };
        truncate(&wal, len);
        assert_corruption(&dir, &wal, None, &ctx);
        let db = Database::open_with(&dir, Options::default().accept_log_loss(true)).unwrap();
        let r = db.recovery_report().clone();
        assert_eq!(r.dropped_frames, 100 - keep as u64, "{ctx}: {r:?}");
        assert!(r.lost_data(), "{ctx}");
        let want = model_of(&batches[..keep]);
        assert_state(&db, &want, 0..100, &ctx);
        drop(db);
        write_after_repair(&dir, &want, 100, &ctx);
    }
    assert_eq!(all.len(), 100);

    // A log that moved to new files by size (no seal, so no other manifest write): the newest
    // file is recorded all the same.
    let opts = Options::default().wal_file_bytes(1024);
    let dir = build(tmp.path(), "rotated", &batches, Image::Crash, opts);
    let files = wal_files(&dir);
    assert!(files.len() >= 3, "{files:?}");
    let newest = files.last().unwrap().clone();
    fs::remove_file(&newest).unwrap();
    assert_corruption(&dir, &newest, None, "newest of several log files deleted");
    let db = Database::open_with(&dir, Options::default().accept_log_loss(true)).unwrap();
    let r = db.recovery_report().clone();
    assert!(r.lost_data() && r.frames_replayed < 100, "{r:?}");
    let want = model_of(&batches[..r.frames_replayed as usize]);
    assert_state(&db, &want, 0..100, "newest log file deleted, repaired");
    drop(db);
    write_after_repair(&dir, &want, 100, "newest log file deleted");
}

/// Flips one bit of every byte of the active log file, one byte at a time, and opens:
/// the result is exactly the acknowledged state or `Corruption` (with no file changed).
fn flip_every_byte(root: &Path, image: Image) -> (usize, usize) {
    // 100 batches: upserts, replacements and deletes of single small records.
    let batches: Vec<Batch> = (0..100u64)
        .map(|i| match i % 10 {
            9 => Batch::Del(vec![i - 5, i - 7]),
            4 => Batch::Up(i / 2, 1),
            _ => Batch::Up(i, 0),
        })
        .collect();
    let model = model_of(&batches);
    let before_last = model_of(&batches[..99]);
    let name = format!("every-byte-{image:?}");
    // A small memtable limit keeps each open cheap (its graph is reserved up front); the
    // 100 rows stay below it, so nothing is sealed.
    let opts = || Options::default().memtable_max_rows(128);
    let dir = build(root, &name, &batches, image, opts());
    let wal = single_wal(&dir);
    let pristine = fs::read(&wal).unwrap();
    let manifest = fs::read(dir.join("MANIFEST")).unwrap();
    let frames: Vec<FrameInfo> = parse_frames(&pristine);
    assert_eq!(frames.len(), 100);
    assert!(
        pristine.len() <= 20 << 10,
        "log of {} bytes",
        pristine.len()
    );
    let last_start = frames.last().unwrap().start;

    let (mut corrupt, mut opened) = (0, 0);
    for off in 0..pristine.len() {
        let mask = 1u8 << (off % 8);
        let ctx = format!("{image:?}: byte {off} ^ {mask:#04x}");
        let damaged = pristine[off] ^ mask;
        write_at(&wal, off, damaged);
        match Database::open_with(&dir, opts()) {
            Err(Error::Corruption { .. }) => {
                corrupt += 1;
                let now = fs::read(&wal).unwrap();
                assert!(
                    now.len() == pristine.len()
                        && now[off] == damaged
                        && now[..off] == pristine[..off]
                        && now[off + 1..] == pristine[off + 1..],
                    "{ctx}: the log changed"
                );
                assert_eq!(wal_files(&dir), vec![wal.clone()], "{ctx}");
            }
            Err(e) => panic!("{ctx}: unexpected error {e}"),
            Ok(db) => {
                opened += 1;
                // A crash image cannot tell a damaged last frame from a torn one: that frame
                // was the one write a crash could have interrupted.
                let want = if image == Image::Crash && off >= last_start {
                    &before_last
                } else {
                    &model
                };
                assert_state(&db, want, 0..100, &ctx);
                drop(db);
                fs::write(&wal, &pristine).unwrap();
                fs::write(dir.join("MANIFEST"), &manifest).unwrap();
            }
        }
        write_at(&wal, off, pristine[off]);
    }
    (corrupt, opened)
}

#[test]
fn a_bit_flipped_anywhere_in_the_log_is_never_silent_loss() {
    let tmp = tempfile::tempdir().unwrap();
    // After a clean close every flip is caught: an intact frame follows it, or the manifest
    // knows the log went further.
    let (corrupt, opened) = flip_every_byte(tmp.path(), Image::Closed);
    assert_eq!(opened, 0, "{corrupt} flips reported");
    // In a crash image, the scan for an intact frame after the damage catches every flip
    // before the last frame.
    let (corrupt, opened) = flip_every_byte(tmp.path(), Image::Crash);
    assert!(corrupt > 0 && opened > 0, "{corrupt} {opened}");
}

#[test]
fn verify_reads_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let db = Database::open(&dir).unwrap();
    let col = db
        .create_collection(NAME, CollectionConfig::new(DIM, Metric::Dot))
        .unwrap();
    for b in single_upserts(20) {
        b.apply_db(&col);
    }
    let r = db.verify().unwrap();
    assert_eq!((r.log_files, r.log_frames), (1, 20), "{r:?}");
    let wal = single_wal(&dir);
    let frames = parse_frames(&fs::read(&wal).unwrap());
    flip(&wal, frames[5].start + 30, 0x10);
    match db.verify() {
        Err(Error::Corruption { path, what }) => {
            assert_eq!(path, wal);
            assert!(
                what.contains(&format!("offset {}", frames[5].start)),
                "{what}"
            );
        }
        other => panic!("verify of a damaged log: {other:?}"),
    }
}
