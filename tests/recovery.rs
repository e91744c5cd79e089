//! Recovery: torn and garbage log tails, flipped bits in every file, invalid input that must
//! write nothing, collection lifecycle errors, and refusing to touch foreign directories.

mod common;

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use cairndb::{
    Collection, CollectionConfig, Database, Error, Metric, Options, Record, SearchRequest,
};

use common::{
    FrameInfo, HEADER_LEN, Rng, copy_dir, encode_frame, list_files, parse_frames, single_wal,
};

const NAME: &str = "c";

type Model = BTreeMap<u64, Record>;

/// A deterministic vector on a quarter-integer grid (exact L2 and dot scores).
fn vector_for(id: u64, salt: u64, dim: usize) -> Vec<f32> {
    (0..dim as u64)
        .map(|j| ((id * 7 + salt * 3 + j * 13) % 17) as f32 * 0.25 - 2.0)
        .collect()
}

fn record(id: u64, salt: u64, dim: usize) -> Record {
    Record::new(id, vector_for(id, salt, dim))
        .with_text(format!("doc {id} v{salt}"))
        .with_field("id", id as i64)
        .with_field("salt", salt as i64)
        .with_field("tags", vec!["x", "y"])
}

#[derive(Debug, Clone)]
enum Batch {
    Up(Vec<Record>),
    Del(Vec<u64>),
}

impl Batch {
    fn apply_model(&self, m: &mut Model) {
        match self {
            Batch::Up(rs) => {
                for r in rs {
                    m.insert(r.id.as_u64().unwrap(), r.clone());
                }
            }
            Batch::Del(ids) => {
                for id in ids {
                    m.remove(id);
                }
            }
        }
    }

    fn apply_db(&self, c: &Collection) {
        match self {
            Batch::Up(rs) => c.upsert(rs.clone()).unwrap(),
            Batch::Del(ids) => {
                c.delete(ids).unwrap();
            }
        }
    }
}

/// `states[k]` is the model after the first `k` batches.
fn states_of(batches: &[Batch], start: &Model) -> Vec<Model> {
    let mut states = vec![start.clone()];
    let mut m = start.clone();
    for b in batches {
        b.apply_model(&mut m);
        states.push(m.clone());
    }
    states
}

/// Checks that `col` holds exactly `model`, probing every id in `universe`.
fn assert_state(col: &Collection, model: &Model, universe: &[u64], ctx: &str) {
    assert_eq!(col.len(), model.len(), "{ctx}: len");
    for &id in universe {
        let got = col
            .get(id)
            .unwrap_or_else(|e| panic!("{ctx}: get({id}) failed: {e}"));
        assert_eq!(got.as_ref(), model.get(&id), "{ctx}: get({id})");
    }
}

/// Brute-force exact top-k under L2 or Dot (vectors are exact on the grid).
fn model_top(model: &Model, metric: Metric, q: &[f32], k: usize) -> Vec<(f32, u64)> {
    let mut all: Vec<(f32, u64)> = model
        .values()
        .map(|r| {
            let s = match metric {
                Metric::L2 => -cairndb::distance::scalar::l2sq(q, &r.vector),
                _ => cairndb::distance::scalar::dot(q, &r.vector),
            };
            (s + 0.0, r.id.as_u64().unwrap())
        })
        .collect();
    all.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    all.truncate(k);
    all
}

fn write_byte_at(path: &Path, offset: usize, byte: u8) {
    use std::os::unix::fs::FileExt;
    let f = OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(&[byte], offset as u64).unwrap();
}

fn append_file(path: &Path, bytes: &[u8]) {
    OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// a. A log cut at any byte keeps exactly the whole batches before the cut.

const WAL_DIM: usize = 4;

/// Six upsert batches of three records (overlapping ids, so later ones replace earlier ones)
/// and a delete batch among them: seven frames.
fn wal_batches() -> Vec<Batch> {
    let mut v: Vec<Batch> = (0..6u64)
        .map(|b| Batch::Up((0..3).map(|i| record(b * 2 + i, b, WAL_DIM)).collect()))
        .collect();
    v.insert(4, Batch::Del(vec![1, 4, 5]));
    v
}

fn wal_universe() -> Vec<u64> {
    (0..20).chain([1000, 1001]).collect()
}

/// Writes the batches with Sync durability and no flush; returns the path of a copy taken
/// while the database was still open, as a crash would leave it. (A clean close records the
/// log's last LSN in the manifest, and a log cut below it is then corruption, not a torn
/// tail: a torn tail only comes from a crash.)
fn build_wal_db(root: &Path) -> PathBuf {
    let live = root.join("live");
    let path = root.join("src");
    let db = Database::open(&live).unwrap();
    let col = db
        .create_collection(NAME, CollectionConfig::new(WAL_DIM, Metric::Dot))
        .unwrap();
    for b in wal_batches() {
        b.apply_db(&col);
    }
    copy_dir(&live, &path);
    path
}

fn wal_frames(db: &Path) -> (PathBuf, Vec<u8>, Vec<FrameInfo>) {
    let wal = single_wal(db);
    let bytes = fs::read(&wal).unwrap();
    let frames = parse_frames(&bytes);
    (wal, bytes, frames)
}

fn assert_lsns(frames: &[FrameInfo], n: usize, ctx: &str) {
    let lsns: Vec<u64> = frames.iter().map(|f| f.lsn).collect();
    assert_eq!(
        lsns,
        (1..=n as u64).collect::<Vec<_>>(),
        "{ctx}: frame LSNs"
    );
}

/// After a repaired open: opens again, writes, opens again, and checks the result.
fn write_after_repair(dir: &Path, wal_name: &std::ffi::OsStr, state: &Model, ctx: &str) {
    let universe = wal_universe();
    let extra = record(1000, 7, WAL_DIM);
    let frames_before = {
        let db = Database::open(dir).unwrap_or_else(|e| panic!("{ctx}: second open: {e}"));
        let col = db.collection(NAME).unwrap();
        assert_state(&col, state, &universe, &format!("{ctx}, second open"));
        col.upsert(extra.clone())
            .unwrap_or_else(|e| panic!("{ctx}: write after repair: {e}"));
        parse_frames(&fs::read(dir.join("wal").join(wal_name)).unwrap()).len()
    };
    let db = Database::open(dir).unwrap_or_else(|e| panic!("{ctx}: third open: {e}"));
    let col = db.collection(NAME).unwrap();
    let mut want = state.clone();
    want.insert(extra.id.as_u64().unwrap(), extra);
    assert_state(&col, &want, &universe, &format!("{ctx}, after a write"));
    let frames = parse_frames(&fs::read(dir.join("wal").join(wal_name)).unwrap());
    assert_lsns(&frames, frames_before, ctx);
}

#[test]
fn wal_truncated_at_every_offset_keeps_whole_batches() {
    let tmp = tempfile::tempdir().unwrap();
    let src = build_wal_db(tmp.path());
    let states = states_of(&wal_batches(), &Model::new());
    let (wal, bytes, frames) = wal_frames(&src);
    assert_eq!(frames.len(), 7, "one frame per batch");
    assert_eq!(
        frames.last().unwrap().end,
        bytes.len(),
        "no bytes after the frames"
    );
    assert_lsns(&frames, 7, "original log");
    let wal_name = wal.file_name().unwrap().to_owned();
    let universe = wal_universe();

    // Opening and writing below change nothing but the log file and the manifest (a clean
    // close records the log's end), which every iteration rewrites: one copy of the database
    // serves all cuts.
    let dir = tmp.path().join("cut");
    copy_dir(&src, &dir);
    let w = dir.join("wal").join(&wal_name);
    let manifest = fs::read(src.join("MANIFEST")).unwrap();
    for cut in frames[2].start..=bytes.len() {
        let ctx = format!("log cut at byte {cut} of {}", bytes.len());
        fs::write(&w, &bytes[..cut]).unwrap();
        fs::write(dir.join("MANIFEST"), &manifest).unwrap();
        let k = frames.iter().filter(|f| f.end <= cut).count();
        let keep = frames[..k].last().map_or(HEADER_LEN, |f| f.end);
        {
            let db = Database::open(&dir).unwrap_or_else(|e| panic!("{ctx}: open: {e}"));
            let col = db.collection(NAME).unwrap();
            assert_state(&col, &states[k], &universe, &ctx);
            assert_eq!(
                fs::metadata(&w).unwrap().len(),
                keep as u64,
                "{ctx}: the torn tail is cut off"
            );
        }
        // Writing after the repair costs fsyncs: do it at and around every frame boundary
        // and at every 8th cut.
        let near_boundary = frames
            .iter()
            .any(|f| f.end.abs_diff(cut) <= 1 || f.start + 17 == cut);
        if near_boundary || cut % 8 == 0 {
            write_after_repair(&dir, &wal_name, &states[k], &ctx);
        }
    }
    fs::write(&w, &bytes).unwrap();
    fs::write(dir.join("MANIFEST"), &manifest).unwrap();
    assert_same_files(&src, &dir);
}

/// Both database directories hold the same files with the same bytes (LOCK and BEACON
/// aside: every writer's open rewrites them, whatever the data).
fn assert_same_files(a: &Path, b: &Path) {
    let (sa, sb) = (snapshot(a), snapshot(b));
    let strip = |s: Vec<(PathBuf, Option<Vec<u8>>)>| -> Vec<(PathBuf, Option<Vec<u8>>)> {
        s.into_iter()
            .filter(|(p, _)| p.as_os_str() != "LOCK" && p.as_os_str() != "BEACON")
            .collect()
    };
    let (sa, sb) = (strip(sa), strip(sb));
    let names =
        |s: &[(PathBuf, Option<Vec<u8>>)]| s.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>();
    assert_eq!(names(&sa), names(&sb), "file lists differ");
    for ((p, x), (_, y)) in sa.iter().zip(&sb) {
        assert!(x == y, "{} differs", p.display());
    }
}

// ---------------------------------------------------------------------------------------------
// b. Garbage after the last frame is cut off; only valid, consecutive frames are applied.

#[test]
fn wal_garbage_tail_is_cut() {
    let tmp = tempfile::tempdir().unwrap();
    let src = build_wal_db(tmp.path());
    let batches = wal_batches();
    let states = states_of(&batches, &Model::new());
    let (wal, bytes, frames) = wal_frames(&src);
    assert_eq!(frames.len(), 7);
    let wal_name = wal.file_name().unwrap().to_owned();
    let universe = wal_universe();
    let last = *frames.last().unwrap();
    let frame_bytes = |f: &FrameInfo| bytes[f.start..f.end].to_vec();
    let body = |f: &FrameInfo| bytes[f.start + 17..f.end].to_vec();
    // A valid next frame: the first batch (an upsert) again, with the next LSN.
    let next = encode_frame(8, frames[0].kind, &body(&frames[0]));
    let mut after_next = states[7].clone();
    batches[0].apply_model(&mut after_next);

    let mut rng = Rng::new(0xC0FFEE);
    let mut garbage = |n: usize| (0..n).map(|_| rng.next_u64() as u8).collect::<Vec<u8>>();
    // (description, bytes appended, frames that must survive)
    let cases: Vec<(&str, Vec<u8>, usize)> = vec![
        ("1 random byte", garbage(1), 7),
        ("16 random bytes", garbage(16), 7),
        ("300 random bytes", garbage(300), 7),
        ("4 KiB of zeros", vec![0; 4096], 7),
        ("the last frame repeated", frame_bytes(&last), 7),
        ("the first frame repeated", frame_bytes(&frames[0]), 7),
        (
            "a valid frame with a skipped LSN",
            encode_frame(9, frames[0].kind, &body(&frames[0])),
            7,
        ),
        (
            "a valid frame with an old LSN",
            encode_frame(3, frames[0].kind, &body(&frames[0])),
            7,
        ),
        (
            "a valid frame with LSN 0",
            encode_frame(0, frames[0].kind, &body(&frames[0])),
            7,
        ),
        ("half of the next frame", next[..next.len() / 2].to_vec(), 7),
        (
            "the next frame without its last byte",
            next[..next.len() - 1].to_vec(),
            7,
        ),
        (
            "the next frame, then garbage",
            [next.clone(), garbage(50)].concat(),
            8,
        ),
        (
            "the next frame, then itself again",
            [next.clone(), next.clone()].concat(),
            8,
        ),
        (
            "the next frame, then zeros",
            [next.clone(), vec![0; 100]].concat(),
            8,
        ),
    ];
    for (what, tail, survive) in cases {
        let ctx = format!("log + {what}");
        let dir = tmp.path().join("garbage");
        copy_dir(&src, &dir);
        let w = dir.join("wal").join(&wal_name);
        append_file(&w, &tail);
        let want = if survive == 8 {
            &after_next
        } else {
            &states[7]
        };
        {
            let db = Database::open(&dir).unwrap_or_else(|e| panic!("{ctx}: open: {e}"));
            let col = db.collection(NAME).unwrap();
            assert_state(&col, want, &universe, &ctx);
            let valid_end = bytes.len() + if survive == 8 { next.len() } else { 0 };
            assert_eq!(
                fs::metadata(&w).unwrap().len(),
                valid_end as u64,
                "{ctx}: the garbage is gone"
            );
        }
        write_after_repair(&dir, &wal_name, want, &ctx);
        fs::remove_dir_all(&dir).unwrap();
    }
}

/// A frame with a valid checksum and the next LSN but a body that cannot be decoded cannot
/// come from a torn write: opening must report corruption, not skip it silently or panic.
#[test]
fn wal_intact_frame_with_bad_body_is_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    let src = build_wal_db(tmp.path());
    let (wal, _bytes, _frames) = wal_frames(&src);
    let wal_name = wal.file_name().unwrap().to_owned();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("an unknown kind", encode_frame(8, 77, b"whatever")),
        ("a short upsert body", encode_frame(8, 1, &[1, 0, 0])),
        (
            "a short delete body",
            encode_frame(8, 2, &[1, 0, 0, 0, 0, 0, 0, 0, 9]),
        ),
    ];
    for (what, frame) in cases {
        let dir = tmp.path().join("bad-body");
        copy_dir(&src, &dir);
        let w = dir.join("wal").join(&wal_name);
        append_file(&w, &frame);
        let before = list_files(&dir);
        match Database::open(&dir) {
            Err(Error::Corruption { .. }) => {}
            other => panic!("log + {what}: expected Corruption, got {other:?}"),
        }
        assert_eq!(list_files(&dir), before, "{what}: files changed");
        fs::remove_dir_all(&dir).unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// c. A flipped bit anywhere is reported as corruption or loses only un-flushed log frames.

const FLIP_DIM: usize = 64;
const FLIP_METRIC: Metric = Metric::L2;

struct FlipFixture {
    /// The pristine database.
    src: PathBuf,
    /// The state after everything, and after `k` of the un-flushed log batches.
    wal_states: Vec<Model>,
    universe: Vec<u64>,
}

/// Two sealed segments (the first spans two 64 KiB vector blocks), tombstones for both
/// written by a third flush, and un-flushed batches in the log.
fn build_flip_db(root: &Path) -> FlipFixture {
    let src = root.join("src");
    let db = Database::open(&src).unwrap();
    let col = db
        .create_collection(NAME, CollectionConfig::new(FLIP_DIM, FLIP_METRIC))
        .unwrap();
    let mut m = Model::new();
    let run = |b: Batch, m: &mut Model| {
        b.apply_db(&col);
        b.apply_model(m);
    };
    // Segment 1: 300 rows of 256 bytes, two 64 KiB vector blocks.
    for chunk in 0..3u64 {
        let rs = (chunk * 100..chunk * 100 + 100)
            .map(|id| record(id, 0, FLIP_DIM))
            .collect();
        run(Batch::Up(rs), &mut m);
    }
    col.flush().unwrap();
    // Segment 2: new ids and replacements of rows in segment 1.
    run(
        Batch::Up((300..360).map(|id| record(id, 1, FLIP_DIM)).collect()),
        &mut m,
    );
    run(
        Batch::Up((0..10).map(|id| record(id, 1, FLIP_DIM)).collect()),
        &mut m,
    );
    col.flush().unwrap();
    // Deletes in both segments; the third flush writes their tombstone files.
    run(
        Batch::Del((30..40).chain(320..325).chain(5..7).collect()),
        &mut m,
    );
    col.flush().unwrap();
    // Un-flushed: upserts (one replacing segment rows) and a delete, in the log only.
    let pending = vec![
        Batch::Up((360..362).map(|id| record(id, 2, FLIP_DIM)).collect()),
        Batch::Up(
            [100, 330]
                .iter()
                .map(|&id| record(id, 2, FLIP_DIM))
                .collect(),
        ),
        Batch::Del(vec![102, 331, 360]),
        Batch::Up([362].iter().map(|&id| record(id, 2, FLIP_DIM)).collect()),
    ];
    for b in &pending {
        b.apply_db(&col);
    }
    let stats = col.stats();
    assert_eq!(stats.segments.len(), 2, "{stats:?}");
    drop(col);
    drop(db);
    FlipFixture {
        src,
        wal_states: states_of(&pending, &m),
        universe: (0..365).collect(),
    }
}

/// What a check of an opened, possibly damaged database saw.
#[derive(Debug, Default)]
struct Seen {
    /// Some read reported corruption.
    detected: bool,
}

/// Every read must return the truth or `Corruption`.
fn check_reads(db: &Database, truth: &Model, universe: &[u64]) -> Result<Seen, String> {
    let mut seen = Seen::default();
    let col = db
        .collection(NAME)
        .map_err(|e| format!("collection: {e}"))?;
    if col.len() != truth.len() {
        return Err(format!("len {} but truth has {}", col.len(), truth.len()));
    }
    for &id in universe {
        match col.get(id) {
            Ok(got) => {
                if got.as_ref() != truth.get(&id) {
                    return Err(format!("get({id}) returned wrong data: {got:?}"));
                }
            }
            Err(Error::Corruption { .. }) => seen.detected = true,
            Err(e) => return Err(format!("get({id}): unexpected error {e}")),
        }
    }
    for qid in [0u64, 333] {
        let q = vector_for(qid, 9, FLIP_DIM);
        match col.search(&SearchRequest::new(q.clone()).k(10).exact(true)) {
            Ok(hits) => {
                let got: Vec<(f32, u64)> = hits
                    .iter()
                    .map(|h| (h.score + 0.0, h.id.as_u64().unwrap()))
                    .collect();
                let want = model_top(truth, FLIP_METRIC, &q, 10);
                if got != want {
                    return Err(format!("search returned {got:?}, truth {want:?}"));
                }
            }
            Err(Error::Corruption { .. }) => seen.detected = true,
            Err(e) => return Err(format!("search: unexpected error {e}")),
        }
    }
    match db.verify() {
        Ok(_) => {}
        Err(Error::Corruption { .. }) => seen.detected = true,
        Err(e) => return Err(format!("verify: unexpected error {e}")),
    }
    Ok(seen)
}

/// Offsets to flip in a file of `len` bytes: all of them for small files; for larger ones
/// the header, the last bytes, `extra`, and a seeded random sample.
fn flip_offsets(len: usize, extra: &[usize], rng: &mut Rng) -> Vec<usize> {
    if len <= 1024 {
        return (0..len).collect();
    }
    let mut v: Vec<usize> = (0..HEADER_LEN).chain(len - 64..len).collect();
    v.extend_from_slice(extra);
    v.extend((0..200).map(|_| rng.below(len as u64) as usize));
    v.sort_unstable();
    v.dedup();
    v
}

#[test]
fn flipped_bits_are_detected_or_harmless() {
    let tmp = tempfile::tempdir().unwrap();
    let fx = build_flip_db(tmp.path());
    let files: Vec<PathBuf> = list_files(&fx.src)
        .into_iter()
        .filter(|p| fx.src.join(p).is_file() && p.as_os_str() != "LOCK")
        .collect();
    let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    for want in [
        "MANIFEST",
        "seg-00000001/vectors",
        "seg-00000002/payload",
        "seg-00000001/fields",
        "seg-00000002/text",
        ".del",
        ".wal",
        "BEACON",
    ] {
        assert!(
            names.iter().any(|n| n.contains(want)),
            "no {want} in {names:?}"
        );
    }
    let wal_rel = files
        .iter()
        .find(|p| p.extension().is_some_and(|e| e == "wal"))
        .unwrap()
        .clone();
    let wal_bytes = fs::read(fx.src.join(&wal_rel)).unwrap();
    let wal_frames = parse_frames(&wal_bytes);
    assert_eq!(
        wal_frames.len(),
        fx.wal_states.len() - 1,
        "un-flushed frames"
    );
    let truth = fx.wal_states.last().unwrap();

    let mut rng = Rng::new(20240601);
    let mut failures: Vec<String> = Vec::new();
    let mut trials = 0;
    for rel in &files {
        let is_wal = rel == &wal_rel;
        let is_beacon = rel.as_os_str() == "BEACON";
        let pristine = fs::read(fx.src.join(rel)).unwrap();
        // Opening changes no file but the log (a torn tail is cut), and each trial rewrites
        // the damaged file whole: one copy serves all flips of a file. That nothing else
        // changed is checked after the last flip.
        let dir = tmp.path().join("flip");
        copy_dir(&fx.src, &dir);
        // In the log: every byte of every frame prefix (len, crc, lsn, kind) as well.
        let extra: Vec<usize> = if is_wal {
            wal_frames
                .iter()
                .flat_map(|f| f.start..f.start + 17)
                .collect()
        } else {
            Vec::new()
        };
        for off in flip_offsets(pristine.len(), &extra, &mut rng) {
            let bit = rng.below(8) as u8;
            trials += 1;
            let ctx = format!("{} byte {off} bit {bit}", rel.display());
            // Written in place (not truncated and rewritten, which costs a flush on ext4).
            write_byte_at(&dir.join(rel), off, pristine[off] ^ (1 << bit));

            let outcome = catch_unwind(AssertUnwindSafe(|| -> Result<(), String> {
                let db = match Database::open(&dir) {
                    Err(Error::Corruption { .. }) => return Ok(()),
                    Err(e) => return Err(format!("open: unexpected error {e}")),
                    Ok(db) => db,
                };
                if is_wal {
                    // The frame holding the flip is a torn tail; the frames before it stay.
                    let k = wal_frames.iter().filter(|f| f.end <= off).count();
                    if off < HEADER_LEN {
                        return Err("a damaged log header was accepted".into());
                    }
                    let seen = check_reads(&db, &fx.wal_states[k], &fx.universe)?;
                    if seen.detected {
                        return Err("segments reported corruption after a log flip".into());
                    }
                    Ok(())
                } else if is_beacon {
                    // A hint for read-only handles, rewritten by every writer's open: a flip
                    // there must change nothing.
                    let seen = check_reads(&db, truth, &fx.universe)?;
                    if seen.detected {
                        return Err("a damaged BEACON made reads fail".into());
                    }
                    Ok(())
                } else {
                    let seen = check_reads(&db, truth, &fx.universe)?;
                    if !seen.detected {
                        return Err("the flip went unnoticed: open, reads and verify passed".into());
                    }
                    Ok(())
                }
            }));
            match outcome {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failures.push(format!("{ctx}: {e}")),
                Err(p) => {
                    let msg = p
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    failures.push(format!("{ctx}: PANIC {msg}"));
                }
            }
            if is_wal {
                // Opening may have cut the log at the flip.
                fs::write(dir.join(rel), &pristine).unwrap();
            } else {
                write_byte_at(&dir.join(rel), off, pristine[off]);
            }
        }
        fs::write(dir.join(rel), &pristine).unwrap();
        assert_same_files(&fx.src, &dir);
        fs::remove_dir_all(&dir).unwrap();
    }
    assert!(trials > 2500, "only {trials} flips tried");
    assert!(
        failures.is_empty(),
        "{} of {trials} flips misbehaved, e.g.:\n{}",
        failures.len(),
        failures
            .iter()
            .take(25)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// A segment whose rows carry neither text nor fields writes its payload file as the header
/// alone; every byte of that header is checked, and the rows read back without documents,
/// also after a compaction merges them with rows that have documents.
#[test]
fn segment_without_documents_has_a_header_only_payload() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let bare = |id: u64| Record::new(id, vector_for(id, 0, 8));
    {
        let db = Database::open(&dir).unwrap();
        let col = db
            .create_collection(NAME, CollectionConfig::new(8, Metric::L2))
            .unwrap();
        col.upsert((0..50).map(bare).collect::<Vec<_>>()).unwrap();
        col.flush().unwrap();
    }
    let payload = list_files(&dir)
        .into_iter()
        .find(|p| p.ends_with("payload"))
        .map(|p| dir.join(p))
        .unwrap();
    let pristine = fs::read(&payload).unwrap();
    assert_eq!(pristine.len(), HEADER_LEN, "header only");
    {
        let db = Database::open(&dir).unwrap();
        db.verify().unwrap();
        let col = db.collection(NAME).unwrap();
        for id in 0..50 {
            assert_eq!(col.get(id).unwrap(), Some(bare(id)));
        }
    }
    for (off, &byte) in pristine.iter().enumerate() {
        write_byte_at(&payload, off, byte ^ 0x04);
        match Database::open(&dir) {
            Err(Error::Corruption { .. }) => {}
            Err(e) => panic!("byte {off}: unexpected error {e}"),
            Ok(_) => panic!("byte {off}: a damaged payload header was accepted"),
        }
        write_byte_at(&payload, off, byte);
    }
    // Rows with documents join; the compacted segment indexes every row's document.
    let db = Database::open(&dir).unwrap();
    let col = db.collection(NAME).unwrap();
    col.upsert(vec![record(100, 0, 8)]).unwrap();
    col.flush().unwrap();
    col.compact().unwrap();
    assert_eq!(col.get(100).unwrap(), Some(record(100, 0, 8)));
    for id in 0..50 {
        assert_eq!(col.get(id).unwrap(), Some(bare(id)));
    }
    db.verify().unwrap();
    let payloads: Vec<u64> = list_files(&dir)
        .into_iter()
        .filter(|p| p.ends_with("payload"))
        .map(|p| fs::metadata(dir.join(p)).unwrap().len())
        .collect();
    assert_eq!(payloads.len(), 1, "{payloads:?}");
    assert!(payloads[0] > (HEADER_LEN + 51 * 16) as u64, "{payloads:?}");
}

// ---------------------------------------------------------------------------------------------
// d. Invalid input is rejected with the right error and writes nothing.

#[test]
fn invalid_collection_names_create_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("db");
    let db = Database::open(&path).unwrap();
    let cfg = CollectionConfig::new(4, Metric::Cosine);
    let long = "x".repeat(65);
    let bad = [
        "../x",
        "..",
        ".",
        "",
        "a/b",
        "/abs",
        "a\\b",
        "a b",
        "é",
        "x\0",
        "../../escape",
        &long,
    ];
    let before = list_files(tmp.path());
    for name in bad {
        assert!(
            matches!(
                db.create_collection(name, cfg.clone()),
                Err(Error::InvalidName { .. })
            ),
            "create_collection({name:?})"
        );
        assert!(
            matches!(db.drop_collection(name), Err(Error::InvalidName { .. })),
            "drop_collection({name:?})"
        );
        assert!(
            matches!(db.collection(name), Err(Error::CollectionNotFound { .. })),
            "collection({name:?})"
        );
    }
    assert_eq!(list_files(tmp.path()), before, "files appeared");
    assert!(db.collections().is_empty());
    // The longest valid name works.
    db.create_collection(&"x".repeat(64), cfg).unwrap();
    drop(db);
    let top: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        top,
        vec![std::ffi::OsString::from("db")],
        "nothing outside the db dir"
    );
    assert_eq!(
        Database::open(&path).unwrap().collections(),
        vec!["x".repeat(64)]
    );
}

#[test]
fn invalid_vectors_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("db");
    let db = Database::open(&path).unwrap();
    let cos = db
        .create_collection("cos", CollectionConfig::new(3, Metric::Cosine))
        .unwrap();
    let dot = db
        .create_collection("dot", CollectionConfig::new(3, Metric::Dot))
        .unwrap();
    cos.upsert(Record::new(1, vec![1.0, 0.0, 0.0])).unwrap();
    dot.upsert(Record::new(1, vec![1.0, 0.0, 0.0])).unwrap();
    let good = |id| Record::new(id, vec![0.5, 0.5, 0.5]);
    for c in [&cos, &dot] {
        let r = c.upsert(vec![good(2), Record::new(3, vec![1.0, 2.0])]);
        assert!(
            matches!(
                r,
                Err(Error::DimensionMismatch {
                    expected: 3,
                    got: 2,
                    ..
                })
            ),
            "{r:?}"
        );
        let r = c.upsert(vec![good(2), Record::new(3, vec![1.0, 2.0, 3.0, 4.0])]);
        assert!(
            matches!(r, Err(Error::DimensionMismatch { got: 4, .. })),
            "{r:?}"
        );
        let r = c.upsert(vec![good(2), Record::new(4, vec![1.0, f32::NAN, 0.0])]);
        assert!(
            matches!(
                r,
                Err(Error::NonFiniteVector {
                    id: cairndb::Id::Int(4),
                    index: 1
                })
            ),
            "{r:?}"
        );
        let r = c.upsert(vec![good(2), Record::new(5, vec![0.0, 1.0, f32::INFINITY])]);
        assert!(
            matches!(
                r,
                Err(Error::NonFiniteVector {
                    id: cairndb::Id::Int(5),
                    index: 2
                })
            ),
            "{r:?}"
        );
        let r = c.upsert(vec![
            Record::new(6, vec![f32::NEG_INFINITY, 0.0, 0.0]),
            good(2),
        ]);
        assert!(
            matches!(
                r,
                Err(Error::NonFiniteVector {
                    id: cairndb::Id::Int(6),
                    index: 0
                })
            ),
            "{r:?}"
        );
        // A replacement of an existing record that is invalid leaves the old one.
        let r = c.upsert(vec![Record::new(1, vec![f32::NAN; 3])]);
        assert!(
            matches!(
                r,
                Err(Error::NonFiniteVector {
                    id: cairndb::Id::Int(1),
                    ..
                })
            ),
            "{r:?}"
        );
        // Queries.
        let q = |v: Vec<f32>| c.search(&SearchRequest::new(v).exact(true));
        assert!(matches!(
            q(vec![1.0, 2.0]),
            Err(Error::DimensionMismatch { .. })
        ));
        assert!(matches!(
            q(vec![1.0, f32::NAN, 2.0]),
            Err(Error::NonFiniteQuery { index: 1 })
        ));
    }
    // Cosine cannot normalize a zero vector; Dot can store it.
    let r = cos.upsert(vec![good(2), Record::new(7, vec![0.0; 3])]);
    assert!(
        matches!(
            r,
            Err(Error::ZeroVector {
                id: cairndb::Id::Int(7)
            })
        ),
        "{r:?}"
    );
    assert!(matches!(
        cos.search(&SearchRequest::new(vec![0.0; 3])),
        Err(Error::ZeroQuery)
    ));
    // An f32 vector whose norm overflows f32 is still fine (accumulated in f64).
    cos.upsert(Record::new(8, vec![f32::MAX, f32::MAX, 0.0]))
        .unwrap();
    dot.upsert(Record::new(7, vec![0.0; 3])).unwrap();

    let check = |cos: &Collection, dot: &Collection, ctx: &str| {
        assert_eq!(cos.len(), 2, "{ctx}");
        assert_eq!(dot.len(), 2, "{ctx}");
        for id in 2..=6 {
            assert_eq!(cos.get(id).unwrap(), None, "{ctx}: cos {id}");
            assert_eq!(dot.get(id).unwrap(), None, "{ctx}: dot {id}");
        }
        assert_eq!(
            cos.get(1).unwrap().unwrap().vector,
            vec![1.0, 0.0, 0.0],
            "{ctx}"
        );
        assert_eq!(
            dot.get(1).unwrap().unwrap().vector,
            vec![1.0, 0.0, 0.0],
            "{ctx}"
        );
        let v8 = cos.get(8).unwrap().unwrap().vector;
        assert!(
            (v8[0] - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6,
            "{ctx}: {v8:?}"
        );
        assert_eq!(dot.get(7).unwrap().unwrap().vector, vec![0.0; 3], "{ctx}");
    };
    check(&cos, &dot, "before reopen");
    let wal_frames_before = parse_frames(&fs::read(single_wal(&path)).unwrap()).len();
    assert_eq!(wal_frames_before, 4, "only the valid batches were logged");
    drop((cos, dot, db));
    let db = Database::open(&path).unwrap();
    check(
        &db.collection("cos").unwrap(),
        &db.collection("dot").unwrap(),
        "after reopen",
    );
}

#[test]
fn collection_lifecycle_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("db");
    let db = Database::open(&path).unwrap();
    let cfg = CollectionConfig::new(2, Metric::L2);
    assert!(matches!(
        db.collection("nope"),
        Err(Error::CollectionNotFound { .. })
    ));
    assert!(matches!(
        db.drop_collection("nope"),
        Err(Error::CollectionNotFound { .. })
    ));
    let a = db.create_collection("a", cfg.clone()).unwrap();
    assert!(matches!(
        db.create_collection("a", cfg.clone()),
        Err(Error::CollectionExists { .. })
    ));
    // A configuration that is out of range.
    assert!(matches!(
        db.create_collection("zero", CollectionConfig::new(0, Metric::L2)),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        db.collection("zero"),
        Err(Error::CollectionNotFound { .. })
    ));

    a.upsert(vec![
        Record::new(1, vec![1.0, 2.0]),
        Record::new(2, vec![3.0, 4.0]),
    ])
    .unwrap();
    a.flush().unwrap();
    a.upsert(Record::new(3, vec![5.0, 6.0])).unwrap();
    a.delete(&[1]).unwrap();
    let a2 = db.collection("a").unwrap();
    db.drop_collection("a").unwrap();
    assert!(
        !path.join("collections").join("a").exists(),
        "files of a dropped collection"
    );
    for h in [&a, &a2] {
        let dropped = |r: Result<(), Error>| matches!(r, Err(Error::CollectionDropped { .. }));
        assert!(dropped(h.upsert(Record::new(9, vec![1.0, 1.0]))));
        assert!(dropped(h.delete(&[2]).map(drop)));
        assert!(dropped(h.get(2).map(drop)));
        assert!(dropped(
            h.search(&SearchRequest::new(vec![1.0, 1.0])).map(drop)
        ));
        assert!(dropped(h.flush()));
    }
    assert!(matches!(
        db.collection("a"),
        Err(Error::CollectionNotFound { .. })
    ));
    assert!(matches!(
        db.drop_collection("a"),
        Err(Error::CollectionNotFound { .. })
    ));

    // Recreated with the same name (and another dimension): empty.
    let b = db
        .create_collection("a", CollectionConfig::new(3, Metric::Dot))
        .unwrap();
    assert_eq!(b.len(), 0);
    for id in 1..=3 {
        assert_eq!(b.get(id).unwrap(), None);
    }
    assert!(
        b.search(&SearchRequest::new(vec![1.0; 3]))
            .unwrap()
            .is_empty()
    );
    // The old handle still refuses, the new one works.
    assert!(matches!(a.get(2), Err(Error::CollectionDropped { .. })));
    b.upsert(Record::new(10, vec![1.0, 1.0, 1.0])).unwrap();
    drop((a, a2, b, db));

    let db = Database::open(&path).unwrap();
    assert_eq!(db.collections(), vec!["a".to_owned()]);
    let b = db.collection("a").unwrap();
    assert_eq!(b.config().dim, 3);
    assert_eq!(
        b.len(),
        1,
        "the dropped collection's log records must not be replayed"
    );
    assert_eq!(b.get(10).unwrap().unwrap().vector, vec![1.0; 3]);
    for id in 1..=3 {
        assert_eq!(b.get(id).unwrap(), None);
    }
    // Drop it again and recreate after a reopen.
    db.drop_collection("a").unwrap();
    drop((b, db));
    let db = Database::open(&path).unwrap();
    assert!(db.collections().is_empty());
    let c = db.create_collection("a", cfg).unwrap();
    assert_eq!(c.len(), 0);
    drop((c, db));
    let db = Database::open(&path).unwrap();
    assert_eq!(db.collection("a").unwrap().len(), 0);
}

/// A second handle in the same process is refused as well.
#[test]
fn second_open_in_process_is_locked() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("db");
    let db = Database::open(&path).unwrap();
    let col = db
        .create_collection("c", CollectionConfig::new(2, Metric::Dot))
        .unwrap();
    assert!(matches!(Database::open(&path), Err(Error::Locked { .. })));
    drop(db);
    // A collection handle keeps the database open.
    assert!(matches!(Database::open(&path), Err(Error::Locked { .. })));
    drop(col);
    Database::open(&path).unwrap();
}

// ---------------------------------------------------------------------------------------------
// e. A directory that is not a database is left alone.

fn snapshot(dir: &Path) -> Vec<(PathBuf, Option<Vec<u8>>)> {
    list_files(dir)
        .into_iter()
        .map(|p| {
            let full = dir.join(&p);
            let content = full.is_file().then(|| fs::read(&full).unwrap());
            (p, content)
        })
        .collect()
}

fn foreign_dir(root: &Path) -> PathBuf {
    let dir = root.join("photos");
    fs::create_dir_all(dir.join("collections").join("seg-00000001")).unwrap();
    fs::create_dir_all(dir.join("wal")).unwrap();
    fs::write(dir.join("holiday.jpg"), b"not really a jpeg").unwrap();
    fs::write(dir.join("collections").join("notes.txt"), b"keep me").unwrap();
    fs::write(
        dir.join("collections").join("seg-00000001").join("x"),
        b"keep me too",
    )
    .unwrap();
    fs::write(dir.join("wal").join("00000000000000000001.wal"), b"mine").unwrap();
    fs::write(dir.join("MANIFEST.tmp"), b"also mine").unwrap();
    dir
}

#[test]
fn foreign_directory_is_refused_and_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = foreign_dir(tmp.path());
    let before = snapshot(&dir);
    let err = Database::open(&dir).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, Error::InvalidArgument(_)) && msg.contains("not a Cairn database"),
        "unclear error: {msg}"
    );
    let after = snapshot(&dir);
    for (p, content) in &before {
        let now = after.iter().find(|(q, _)| q == p);
        assert_eq!(
            now.map(|(_, c)| c),
            Some(content),
            "{} was deleted or changed",
            p.display()
        );
    }

    // A foreign file that happens to be called MANIFEST.
    fs::write(
        dir.join("MANIFEST"),
        b"include README.md\ninclude LICENSE\nrecursive-include docs *.md\nglobal-exclude *.pyc\n",
    )
    .unwrap();
    let before = snapshot(&dir);
    let err = Database::open(&dir).unwrap_err();
    assert!(matches!(err, Error::Corruption { .. }), "{err}");
    assert!(err.to_string().contains("not a Cairn file"), "{err}");
    let after = snapshot(&dir);
    for (p, content) in &before {
        let now = after.iter().find(|(q, _)| q == p);
        assert_eq!(
            now.map(|(_, c)| c),
            Some(content),
            "{} was deleted or changed",
            p.display()
        );
    }

    // With create_if_missing(false) a missing directory is an error and is not created.
    let missing = tmp.path().join("missing");
    let err =
        Database::open_with(&missing, Options::default().create_if_missing(false)).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert!(!missing.exists());
}

/// Refusing a foreign directory should not leave a file of ours in it either.
#[test]
fn foreign_directory_gets_no_lock_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = foreign_dir(tmp.path());
    let before = list_files(&dir);
    assert!(Database::open(&dir).is_err());
    assert_eq!(
        list_files(&dir),
        before,
        "files were added to a foreign directory"
    );
}
