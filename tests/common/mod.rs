//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

/// Size of the header every Cairn file starts with.
pub const HEADER_LEN: usize = 64;

/// A small deterministic PRNG (SplitMix64): tests must be reproducible from a seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `[lo, hi)`.
    pub fn f32_in(&mut self, lo: f32, hi: f32) -> f32 {
        let unit = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * unit
    }
}

/// Copies a directory tree (regular files and directories only).
pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// Every file under `dir`, relative to it, sorted.
pub fn list_files(dir: &Path) -> Vec<PathBuf> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                out.push(p.strip_prefix(base).unwrap().to_owned());
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().to_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The log files of the database at `db`, oldest first.
pub fn wal_files(db: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(db.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    v.sort();
    v
}

/// The single log file of the database at `db`.
pub fn single_wal(db: &Path) -> PathBuf {
    let files = wal_files(db);
    assert_eq!(files.len(), 1, "expected exactly one log file: {files:?}");
    files.into_iter().next().unwrap()
}

/// One frame of a log file: where it starts and ends, its LSN and kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameInfo {
    pub start: usize,
    pub end: usize,
    pub lsn: u64,
    pub kind: u8,
}

/// Decodes the frame at the start of `bytes` (`len | crc32c | lsn | kind | body`, `len`
/// counting lsn, kind and body): its LSN, kind and length, or `None` if it is not intact.
fn decode_frame(bytes: &[u8]) -> Option<(FrameHead, usize)> {
    let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(bytes.get(4..8)?.try_into().ok()?);
    let covered = bytes.get(8..8usize.checked_add(len)?)?;
    if len < 9 || crc32c::crc32c(covered) != crc {
        return None;
    }
    let lsn = u64::from_le_bytes(covered[..8].try_into().ok()?);
    Some((
        FrameHead {
            lsn,
            kind: covered[8],
        },
        8 + len,
    ))
}

struct FrameHead {
    lsn: u64,
    kind: u8,
}

/// Parses the frames of a log file's bytes (after the 64-byte header) until the first
/// bytes that are not an intact frame.
pub fn parse_frames(bytes: &[u8]) -> Vec<FrameInfo> {
    let mut out = Vec::new();
    let mut pos = HEADER_LEN;
    while pos < bytes.len() {
        match decode_frame(&bytes[pos..]) {
            Some((f, len)) => {
                out.push(FrameInfo {
                    start: pos,
                    end: pos + len,
                    lsn: f.lsn,
                    kind: f.kind,
                });
                pos += len;
            }
            None => break,
        }
    }
    out
}

/// Encodes a frame the way the log does (`len | crc32c | lsn | kind | body`).
pub fn encode_frame(lsn: u64, kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&((9 + body.len()) as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&lsn.to_le_bytes());
    out.push(kind);
    out.extend_from_slice(body);
    let crc = crc32c::crc32c(&out[8..]);
    out[4..8].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Normalizes like the library does for cosine (norm accumulated in f64).
pub fn normalized(v: &[f32]) -> Vec<f32> {
    let n2: f64 = v.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
    let inv = (1.0 / n2.sqrt()) as f32;
    v.iter().map(|&x| x * inv).collect()
}

/// A spawned child process whose stdout lines arrive on `lines` as it prints them, and whose
/// stderr is collected for error messages.
pub struct Watched {
    pub proc: std::process::Child,
    pub lines: std::sync::mpsc::Receiver<String>,
    reader: std::thread::JoinHandle<()>,
    stderr: std::thread::JoinHandle<String>,
}

/// Spawns `cmd` with stdout and stderr piped and watched.
pub fn watch(cmd: &mut std::process::Command) -> Watched {
    use std::io::{BufRead, BufReader, Read};
    use std::process::Stdio;
    let mut proc = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = proc.stdout.take().unwrap();
    let mut err = proc.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let (tx, lines) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Watched {
        proc,
        lines,
        reader,
        stderr,
    }
}

impl Watched {
    /// After the child has ended: the stdout lines not received yet, and all of stderr.
    pub fn finish(self) -> (Vec<String>, String) {
        self.reader.join().unwrap();
        let late = self.lines.try_iter().collect();
        (late, self.stderr.join().unwrap())
    }
}

/// Opens a database that no one should hold any more, retrying for up to `wait` while it is
/// locked.
///
/// Tests run in parallel threads and some spawn children. A child is forked with a copy of
/// every descriptor of the parent process, LOCK files of other tests included, and holds them
/// until it execs (the descriptors are close-on-exec); a child that was just killed may also
/// still be exiting. A lock that was just released can therefore stay held for a moment. Only
/// opens that must succeed use this.
pub fn open_retrying(
    path: &Path,
    options: cairndb::Options,
    wait: std::time::Duration,
) -> cairndb::Result<cairndb::Database> {
    let deadline = std::time::Instant::now() + wait;
    loop {
        match cairndb::Database::open_with(path, options.clone()) {
            Err(cairndb::Error::Locked { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            r => return r,
        }
    }
}

/// The collection's stats once the background sealer has no frozen memtable left. Polls for
/// at most 30 s (seals of test-sized memtables take milliseconds), then fails the test.
pub fn settled_stats(c: &cairndb::Collection) -> cairndb::CollectionStats {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let s = c.stats();
        if s.frozen_memtables == 0 {
            return s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "frozen memtables never sealed: {s:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}
