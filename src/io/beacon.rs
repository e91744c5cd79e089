//! `BEACON`: the writer's signal to read-only handles in other processes.
//!
//! ```text
//! BEACON (48 bytes, rewritten in place, never fsynced)
//!   magic "CAIRNBCN" | version u32 | crc32c u32 (of bytes 16..48)
//!   epoch u64         one per writer open: a new writer (after a crash, say) moves it on
//!   manifest_gen u64  moved on after every manifest the writer stores
//!   durable_lsn u64   every log frame up to this LSN is on stable storage
//!   pid u64           the writer's process (for people)
//! ```
//!
//! The writer rewrites the record after each log fsync and each manifest store; a reader reads
//! it before each call (one `pread` of 48 bytes) and catches up when it changed. The record
//! is a hint, not a source of truth: it is checksummed, a torn or stale one is read again or
//! ignored, and everything it points to is checked where it is read.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::error::{IoContext, Result};

/// The file's name in the database directory.
pub(crate) const BEACON_FILE: &str = "BEACON";
const MAGIC: &[u8; 8] = b"CAIRNBCN";
const VERSION: u32 = 1;
const LEN: usize = 48;

/// What the beacon says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Signal {
    pub epoch: u64,
    pub manifest_gen: u64,
    pub durable_lsn: u64,
    pub pid: u64,
}

impl Signal {
    fn encode(&self) -> [u8; LEN] {
        let mut b = [0u8; LEN];
        b[0..8].copy_from_slice(MAGIC);
        b[8..12].copy_from_slice(&VERSION.to_le_bytes());
        b[16..24].copy_from_slice(&self.epoch.to_le_bytes());
        b[24..32].copy_from_slice(&self.manifest_gen.to_le_bytes());
        b[32..40].copy_from_slice(&self.durable_lsn.to_le_bytes());
        b[40..48].copy_from_slice(&self.pid.to_le_bytes());
        let crc = crc32c::crc32c(&b[16..]);
        b[12..16].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// `None` for a record that is torn, zeroed or of another version.
    fn decode(b: &[u8]) -> Option<Signal> {
        let b: &[u8; LEN] = b.get(..LEN)?.try_into().ok()?;
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        if &b[0..8] != MAGIC || u32_at(8) != VERSION || crc32c::crc32c(&b[16..]) != u32_at(12) {
            return None;
        }
        Some(Signal {
            epoch: u64_at(16),
            manifest_gen: u64_at(24),
            durable_lsn: u64_at(32),
            pid: u64_at(40),
        })
    }
}

/// The writer's side: owns the record and rewrites it.
pub(crate) struct Beacon {
    path: PathBuf,
    state: Mutex<(File, Signal)>,
}

impl Beacon {
    /// Starts a new epoch in `db`'s beacon (after the last one found there, if any), with the
    /// log durable up to `durable_lsn`.
    pub(crate) fn start(db: &Path, durable_lsn: u64) -> Result<Beacon> {
        let path = db.join(BEACON_FILE);
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .at(&path)?;
        let mut old = Vec::new();
        f.read_to_end(&mut old).at(&path)?;
        let old = Signal::decode(&old).unwrap_or_default();
        let signal = Signal {
            epoch: old.epoch.wrapping_add(1),
            manifest_gen: old.manifest_gen.wrapping_add(1),
            durable_lsn,
            pid: u64::from(std::process::id()),
        };
        write_at_start(&f, &signal).at(&path)?;
        Ok(Beacon {
            path,
            state: Mutex::new((f, signal)),
        })
    }

    /// The log is durable up to `lsn`.
    pub(crate) fn durable(&self, lsn: u64) {
        let mut g = self.state.lock();
        if lsn > g.1.durable_lsn {
            g.1.durable_lsn = lsn;
            self.rewrite(&g.0, &g.1);
        }
    }

    /// A new manifest was stored.
    pub(crate) fn manifest_stored(&self) {
        let mut g = self.state.lock();
        g.1.manifest_gen = g.1.manifest_gen.wrapping_add(1);
        self.rewrite(&g.0, &g.1);
    }

    fn rewrite(&self, f: &File, s: &Signal) {
        // A failed rewrite only delays readers until the next one; the writer goes on.
        if let Err(e) = write_at_start(f, s) {
            log::warn!("{}: {e}", self.path.display());
        }
    }
}

fn write_at_start(mut f: &File, s: &Signal) -> std::io::Result<()> {
    f.seek(SeekFrom::Start(0))?;
    f.write_all(&s.encode())
}

/// A reader's side: reads the record, never writes.
pub(crate) struct BeaconReader {
    path: PathBuf,
    file: Option<File>,
    buf: Vec<u8>,
}

impl BeaconReader {
    pub(crate) fn new(db: &Path) -> BeaconReader {
        BeaconReader {
            path: db.join(BEACON_FILE),
            file: None,
            buf: Vec::with_capacity(LEN),
        }
    }

    /// The current signal; `None` when there is no beacon (no writer of this version has
    /// opened the database) or no intact record could be read.
    pub(crate) fn read(&mut self) -> Option<Signal> {
        if self.file.is_none() {
            self.file = File::open(&self.path).ok();
        }
        let mut f = self.file.as_ref()?;
        // A record being rewritten can be read torn: read again (it is 48 bytes).
        for _ in 0..100 {
            self.buf.clear();
            let ok = f.seek(SeekFrom::Start(0)).is_ok()
                && f.take(LEN as u64).read_to_end(&mut self.buf).is_ok();
            if let Some(s) = ok.then(|| Signal::decode(&self.buf)).flatten() {
                return Some(s);
            }
            std::thread::yield_now();
        }
        None
    }
}

/// A lock-free check, for every call of a read-only handle, that the beacon still says what
/// it said at the handle's last catch-up: one positioned 48-byte read, no lock, so many
/// threads calling at once do not queue behind each other.
pub(crate) struct BeaconWatch {
    path: PathBuf,
    file: std::sync::OnceLock<File>,
    /// The last catch-up's signal (`valid` false: none yet, or there was no beacon).
    seen: [AtomicU64; 3],
    valid: AtomicBool,
}

impl BeaconWatch {
    pub(crate) fn new(db: &Path) -> BeaconWatch {
        BeaconWatch {
            path: db.join(BEACON_FILE),
            file: std::sync::OnceLock::new(),
            seen: [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)],
            valid: AtomicBool::new(false),
        }
    }

    /// Whether the beacon says what it said at the last [`mark`](Self::mark): then the
    /// handle's state is current.
    pub(crate) fn unchanged(&self) -> bool {
        if !self.valid.load(Ordering::Acquire) {
            return false;
        }
        let file = match self.file.get() {
            Some(f) => f,
            None => match File::open(&self.path) {
                Ok(f) => self.file.get_or_init(|| f),
                Err(_) => return false,
            },
        };
        let mut b = [0u8; LEN];
        if read_exact_at(file, &mut b).is_err() {
            return false;
        }
        let Some(s) = Signal::decode(&b) else {
            return false;
        };
        s.epoch == self.seen[0].load(Ordering::Acquire)
            && s.manifest_gen == self.seen[1].load(Ordering::Acquire)
            && s.durable_lsn == self.seen[2].load(Ordering::Acquire)
            && self.valid.load(Ordering::Acquire)
    }

    /// The handle has caught up with `signal` (`None`: with no beacon, which is never
    /// taken as unchanged). Called with the catch-up's lock held, after the new state is
    /// published.
    pub(crate) fn mark(&self, signal: Option<Signal>) {
        self.valid.store(false, Ordering::Release);
        if let Some(s) = signal {
            self.seen[0].store(s.epoch, Ordering::Release);
            self.seen[1].store(s.manifest_gen, Ordering::Release);
            self.seen[2].store(s.durable_lsn, Ordering::Release);
            self.valid.store(true, Ordering::Release);
        }
    }
}

#[cfg(unix)]
fn read_exact_at(f: &File, b: &mut [u8]) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(f, b, 0)
}

#[cfg(windows)]
fn read_exact_at(f: &File, b: &mut [u8]) -> std::io::Result<()> {
    let n = std::os::windows::fs::FileExt::seek_read(f, b, 0)?;
    if n == b.len() {
        Ok(())
    } else {
        Err(std::io::ErrorKind::UnexpectedEof.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let s = Signal {
            epoch: 3,
            manifest_gen: 9,
            durable_lsn: 1234,
            pid: 42,
        };
        let b = s.encode();
        assert_eq!(Signal::decode(&b), Some(s));
        for i in 0..LEN {
            let mut d = b;
            d[i] ^= 0x10;
            assert_eq!(Signal::decode(&d), None, "byte {i} flipped");
        }
        assert_eq!(Signal::decode(&b[..LEN - 1]), None);
    }

    #[test]
    fn writer_moves_on_and_reader_follows() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = BeaconReader::new(dir.path());
        assert_eq!(r.read(), None);
        let b = Beacon::start(dir.path(), 5).unwrap();
        let first = r.read().unwrap();
        assert_eq!(first.durable_lsn, 5);
        b.durable(9);
        b.durable(7); // never backwards
        b.manifest_stored();
        let s = r.read().unwrap();
        assert_eq!((s.epoch, s.durable_lsn), (first.epoch, 9));
        assert_eq!(s.manifest_gen, first.manifest_gen + 1);
        drop(b);
        let b2 = Beacon::start(dir.path(), 9).unwrap();
        let s2 = r.read().unwrap();
        assert_eq!(s2.epoch, first.epoch + 1);
        assert!(s2.manifest_gen > s.manifest_gen);
        drop(b2);
    }

    #[test]
    fn a_watch_says_unchanged_only_for_the_signal_it_was_given() {
        let dir = tempfile::tempdir().unwrap();
        let w = BeaconWatch::new(dir.path());
        assert!(!w.unchanged(), "nothing seen yet");
        let b = Beacon::start(dir.path(), 5).unwrap();
        let mut r = BeaconReader::new(dir.path());
        w.mark(r.read());
        assert!(w.unchanged());
        b.durable(6);
        assert!(!w.unchanged(), "the durable LSN moved on");
        w.mark(r.read());
        assert!(w.unchanged());
        b.manifest_stored();
        assert!(!w.unchanged(), "a new manifest");
        w.mark(None);
        assert!(!w.unchanged(), "no beacon is never unchanged");
    }
}
