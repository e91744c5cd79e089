//! The write-ahead log: every upsert and delete batch is one checksummed frame.
//!
//! ```text
//! wal/00000000000000000001.wal   header (kind Wal, aux = first LSN), then frames:
//!     len u32 | crc32c u32 | lsn u64 | kind u8 | body …
//!     └ len counts lsn+kind+body; crc covers the same bytes
//! ```
//!
//! * One batch is one frame, so a batch is applied whole or not at all.
//! * LSNs are consecutive across frames and files (a skip frame, written only by a deliberate
//!   recovery, moves the sequence forward). Replay stops at the first frame that is short,
//!   fails its checksum or breaks the LSN sequence. That is a torn tail, cut off, only in the
//!   newest file and only when no intact frame with a fitting LSN follows it anywhere in the
//!   file; otherwise, and in an older file (always fsynced before a newer one was started), it
//!   is corruption: opening fails and changes no file. The manifest's [`LogMark`] (its last
//!   LSN and newest log file) must also still be covered, so a missing or shortened log is
//!   corruption too. `accept_loss` instead cuts at the first bad frame and reports the loss.
//! * Group commit: writers append frames to a shared buffer under a mutex; the first writer
//!   that needs durability writes the buffer and calls `fdatasync` with the mutex released,
//!   the others wait on a condition variable and are released together.
//! * Any failed write or fsync poisons the log: every later write is refused with
//!   [`Error::Poisoned`] until the database is reopened (no retry after a failed fsync).

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use crate::error::{Error, IoContext, Result};
use crate::io::beacon::Beacon;
use crate::io::faults;
use crate::io::fsutil::sync_dir;
use crate::io::header::{FileKind, HEADER_LEN, Header, u32_at, u64_at};
use parking_lot::{Condvar, Mutex};

use super::recover::{LogMark, RecoveryReport};
use super::recover::{Recovery, list_files, lsn_after};

/// Frame kind of an upsert batch.
pub(crate) const KIND_UPSERT: u8 = 1;
/// Frame kind of a delete batch.
pub(crate) const KIND_DELETE: u8 = 2;
/// Frame kind that carries no batch: its body (u64) is the LSN the log continues at. Written
/// only by a deliberate recovery that dropped frames, so that new LSNs stay above the
/// manifest's.
pub(crate) const KIND_SKIP: u8 = 3;
/// Largest frame body; larger batches are refused with [`Error::BatchTooLarge`].
pub(crate) const MAX_FRAME_BODY: usize = 1 << 30;
/// Bytes before the body: len, crc, lsn, kind.
pub(super) const FRAME_PREFIX: usize = 4 + 4 + 8 + 1;
/// The buffer is written to the file once it grows past this, even without a sync.
const BUF_FLUSH_BYTES: usize = 1 << 20;

/// One decoded frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Log sequence number.
    pub lsn: u64,
    /// Record kind.
    pub kind: u8,
    /// Record body.
    pub body: &'a [u8],
}

/// Decodes the frame at the start of `bytes`. Returns the frame and its length, or `None` when
/// the bytes do not hold a whole, intact frame (torn, zeroed or corrupt).
pub fn decode_frame(bytes: &[u8]) -> Option<(Frame<'_>, usize)> {
    if bytes.len() < FRAME_PREFIX {
        return None;
    }
    let len = u32_at(bytes, 0) as usize;
    if !(9..=MAX_FRAME_BODY + 9).contains(&len) {
        return None;
    }
    let total = 8usize.checked_add(len)?;
    if bytes.len() < total {
        return None;
    }
    let crc = u32_at(bytes, 4);
    let covered = &bytes[8..total];
    if crc32c::crc32c(covered) != crc {
        return None;
    }
    Some((
        Frame {
            lsn: u64_at(bytes, 8),
            kind: bytes[16],
            body: &bytes[FRAME_PREFIX..total],
        },
        total,
    ))
}

/// Appends one encoded frame to `out`.
pub(crate) fn encode_frame(out: &mut Vec<u8>, lsn: u64, kind: u8, body: &[u8]) {
    let len = (9 + body.len()) as u32;
    let start = out.len();
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&lsn.to_le_bytes());
    out.push(kind);
    out.extend_from_slice(body);
    let crc = crc32c::crc32c(&out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

pub(super) fn file_name(first_lsn: u64) -> String {
    format!("{first_lsn:020}.wal")
}

pub(super) fn parse_file_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".wal")?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

struct Inner {
    /// The older files still needed, then the file being appended to: first LSN, path,
    /// size (the current file's size is `file_len`).
    files: Vec<(u64, PathBuf, u64)>,
    /// Bytes of the older files.
    older_bytes: u64,
    /// The file appended to (`None` in a read-only log).
    file: Option<Arc<File>>,
    /// Bytes of the current file handed to the OS.
    file_len: u64,
    /// Frames not yet handed to the OS.
    buf: Vec<u8>,
    next_lsn: u64,
    synced_lsn: u64,
    syncing: bool,
    poisoned: Option<String>,
}

/// The database's write-ahead log.
pub(crate) struct Wal {
    dir: PathBuf,
    file_limit: u64,
    inner: Mutex<Inner>,
    synced: Condvar,
    /// Told the durable LSN after every fsync, for read-only handles in other processes.
    beacon: OnceLock<Arc<Beacon>>,
    /// A read-only database's log: every write is refused with [`Error::ReadOnly`].
    read_only: bool,
}

impl Wal {
    /// Opens the log in `dir`, replays every intact frame through `apply` in LSN order, cuts a
    /// torn tail, and gets ready to append. `mark` is what the manifest knows of the log.
    ///
    /// A bad frame (short, bad length or checksum, LSN out of sequence) is a torn tail only
    /// in the newest file and only when no intact frame follows it; anything else is
    /// corruption and changes no file — unless `accept_loss`, which cuts the log at the first
    /// bad frame, removes the files after it, and says what it dropped in the report.
    pub(crate) fn open(
        dir: &Path,
        file_limit: u64,
        mark: LogMark,
        accept_loss: bool,
        apply: impl FnMut(Frame<'_>) -> Result<()>,
    ) -> Result<(Wal, RecoveryReport)> {
        fs::create_dir_all(dir).at(dir)?;
        let mut rec = Recovery::read(dir, mark, accept_loss, apply)?;
        rec.carry_out(dir)?;
        let (file, file_len, next_lsn) = start_appending(dir, &mut rec.keep, rec.next_lsn, mark)?;
        let keep = rec.keep;
        let wal = Wal {
            dir: dir.to_owned(),
            file_limit,
            inner: Mutex::new(Inner {
                older_bytes: keep.iter().rev().skip(1).map(|f| f.2).sum(),
                files: keep,
                file: Some(Arc::new(file)),
                file_len,
                buf: Vec::new(),
                next_lsn,
                synced_lsn: next_lsn - 1,
                syncing: false,
                poisoned: None,
            }),
            synced: Condvar::new(),
            beacon: OnceLock::new(),
            read_only: false,
        };
        Ok((wal, rec.report))
    }

    /// The log of a read-only database: it refuses every write with [`Error::ReadOnly`]
    /// (read-only handles read the log with [`LogTail`](super::tail::LogTail)).
    pub(crate) fn read_only(dir: &Path) -> Wal {
        Wal {
            dir: dir.to_owned(),
            file_limit: u64::MAX,
            inner: Mutex::new(Inner {
                files: Vec::new(),
                older_bytes: 0,
                file: None,
                file_len: 0,
                buf: Vec::new(),
                next_lsn: 1,
                synced_lsn: 0,
                syncing: false,
                poisoned: None,
            }),
            synced: Condvar::new(),
            beacon: OnceLock::new(),
            read_only: true,
        }
    }

    /// From now on every fsync tells `beacon` the durable LSN; it is told the current one now.
    pub(crate) fn set_beacon(&self, beacon: Arc<Beacon>) {
        let g = self.inner.lock();
        beacon.durable(g.synced_lsn);
        let _ = self.beacon.set(beacon);
    }

    /// Refuses writes to a read-only log.
    fn check_writable(&self) -> Result<()> {
        if self.read_only {
            return Err(Error::ReadOnly {
                path: self.dir.parent().unwrap_or(&self.dir).to_owned(),
            });
        }
        Ok(())
    }

    /// First LSN of the log file being appended to.
    pub(crate) fn newest_file(&self) -> u64 {
        self.inner.lock().files.last().map_or(0, |f| f.0)
    }

    /// Reads every log file up to what was handed to the OS and checks every frame: header,
    /// length, checksum, LSN sequence. Returns the files, frames and bytes checked.
    ///
    /// A read-only log checks the files on disk; the newest one up to its last intact frame
    /// (the writer may be appending to it).
    pub(crate) fn verify(&self) -> Result<(usize, u64, u64)> {
        let (files, current_len) = if self.read_only {
            let files: Vec<(u64, PathBuf, u64)> = list_files(&self.dir)?
                .into_iter()
                .map(|(lsn, p)| {
                    let len = fs::metadata(&p).map_or(0, |m| m.len());
                    (lsn, p, len)
                })
                .collect();
            let newest = files.last().map_or(0, |f| f.2);
            (files, newest)
        } else {
            let g = self.inner.lock();
            (g.files.clone(), g.file_len)
        };
        let (mut checked, mut frames, mut total) = (0, 0, 0);
        let mut expected: Option<u64> = None;
        for (i, (first_lsn, path, size)) in files.iter().enumerate() {
            let current = i + 1 == files.len();
            let limit = if current { current_len } else { *size } as usize;
            let bytes = match fs::read(path) {
                Ok(b) => b,
                // Removed meanwhile (after a rotation): its frames are in segments now.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    expected = None;
                    continue;
                }
                Err(e) => return Err(Error::io(path, e)),
            };
            if bytes.len() < limit {
                return Err(Error::corruption(
                    path,
                    format!("log file is {} bytes, {limit} were written", bytes.len()),
                ));
            }
            // The writer is creating it (or died doing so, which its recovery accepts).
            if current && self.read_only && bytes.len() < HEADER_LEN {
                continue;
            }
            let h = Header::decode(&bytes, FileKind::Wal, path)?;
            if h.aux != *first_lsn || expected.is_some_and(|e| e != *first_lsn) {
                return Err(Error::corruption(
                    path,
                    format!("log file does not start at LSN {first_lsn}"),
                ));
            }
            let mut pos = HEADER_LEN;
            let mut lsn = *first_lsn;
            while pos < limit {
                match decode_frame(&bytes[pos..limit]) {
                    Some((f, len)) if f.lsn == lsn => {
                        lsn = lsn_after(&f).ok_or_else(|| {
                            Error::corruption(path, format!("bad skip frame at offset {pos}"))
                        })?;
                        pos += len;
                        frames += 1;
                    }
                    // Being appended to by the writer.
                    _ if current && self.read_only => break,
                    _ => {
                        return Err(Error::corruption(
                            path,
                            format!("bad frame at offset {pos} (LSN {lsn} expected)"),
                        ));
                    }
                }
            }
            expected = Some(lsn);
            checked += 1;
            total += limit as u64;
        }
        Ok((checked, frames, total))
    }

    /// Appends one frame and returns its LSN. The frame is durable once
    /// [`wait_durable`](Self::wait_durable) returns for that LSN.
    pub(crate) fn append(&self, kind: u8, body: &[u8]) -> Result<u64> {
        if body.len() > MAX_FRAME_BODY {
            return Err(Error::BatchTooLarge {
                bytes: body.len(),
                limit: MAX_FRAME_BODY,
            });
        }
        self.check_writable()?;
        let mut g = self.inner.lock();
        if let Some(cause) = &g.poisoned {
            return Err(Error::Poisoned {
                cause: cause.clone(),
            });
        }
        if g.file_len + g.buf.len() as u64 > self.file_limit && g.file_len > HEADER_LEN as u64 {
            self.rotate_locked(&mut g)?;
        }
        let lsn = g.next_lsn;
        encode_frame(&mut g.buf, lsn, kind, body);
        g.next_lsn += 1;
        if g.buf.len() >= BUF_FLUSH_BYTES {
            self.write_buf_locked(&mut g)?;
        }
        Ok(lsn)
    }

    /// The newest LSN handed out.
    pub(crate) fn last_lsn(&self) -> u64 {
        self.inner.lock().next_lsn - 1
    }

    /// The error that poisoned the log, if any.
    pub(crate) fn check_poisoned(&self) -> Result<()> {
        self.check_writable()?;
        match &self.inner.lock().poisoned {
            Some(cause) => Err(Error::Poisoned {
                cause: cause.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Refuses all further writes, e.g. after a failed fsync elsewhere in the database.
    pub(crate) fn poison(&self, cause: String) {
        let mut g = self.inner.lock();
        let first = g.poisoned.is_none();
        if first {
            g.poisoned = Some(cause.clone());
        }
        self.synced.notify_all();
        drop(g);
        // Logged with no lock held: a logger may block (the Python binding's takes the GIL).
        if first {
            log::error!("writes stop until the database is reopened: {cause}");
        }
    }

    fn poison_locked(&self, g: &mut Inner, what: &str, e: &std::io::Error) -> Error {
        let cause = format!("{what}: {e}");
        g.poisoned.get_or_insert(cause.clone());
        self.synced.notify_all();
        Error::Poisoned { cause }
    }

    fn write_buf_locked(&self, g: &mut Inner) -> Result<()> {
        if g.buf.is_empty() {
            return Ok(());
        }
        let Some(file) = g.file.clone() else {
            return Err(Error::ReadOnly {
                path: self.dir.clone(),
            });
        };
        let buf = std::mem::take(&mut g.buf);
        let path = current_path(g, &self.dir);
        let mut file: &File = &file;
        if let Err(e) = faults::check(faults::Op::Write, &path).and_then(|()| file.write_all(&buf))
        {
            return Err(self.poison_locked(g, "write to the log failed", &e));
        }
        g.file_len += buf.len() as u64;
        // Reuse the allocation.
        g.buf = buf;
        g.buf.clear();
        Ok(())
    }

    /// Blocks until every frame up to `lsn` is on stable storage. Concurrent callers share
    /// one fsync.
    pub(crate) fn wait_durable(&self, lsn: u64) -> Result<()> {
        self.check_writable()?;
        let mut g = self.inner.lock();
        loop {
            if g.synced_lsn >= lsn {
                return Ok(());
            }
            if let Some(cause) = &g.poisoned {
                return Err(Error::Poisoned {
                    cause: cause.clone(),
                });
            }
            if g.syncing {
                self.synced.wait(&mut g);
                continue;
            }
            // Become the syncer for everything appended so far.
            self.write_buf_locked(&mut g)?;
            let target = g.next_lsn - 1;
            let Some(file) = g.file.clone() else {
                return Err(Error::ReadOnly {
                    path: self.dir.clone(),
                });
            };
            let path = current_path(&g, &self.dir);
            g.syncing = true;
            drop(g);
            let res = faults::check(faults::Op::Sync, &path).and_then(|()| file.sync_data());
            g = self.inner.lock();
            g.syncing = false;
            match res {
                Ok(()) => {
                    g.synced_lsn = g.synced_lsn.max(target);
                    self.tell_beacon(g.synced_lsn);
                }
                Err(e) => {
                    let err = self.poison_locked(&mut g, "fsync of the log failed", &e);
                    self.synced.notify_all();
                    return Err(err);
                }
            }
            self.synced.notify_all();
        }
    }

    /// Makes everything appended so far durable.
    pub(crate) fn sync(&self) -> Result<()> {
        let lsn = self.last_lsn();
        self.wait_durable(lsn)
    }

    /// Starts a new log file (after making the current one durable), so that older files can
    /// be removed once their frames are in segments.
    /// Returns the first LSN of the new file: every frame below it is durable.
    pub(crate) fn rotate(&self) -> Result<u64> {
        self.check_writable()?;
        let mut g = self.inner.lock();
        if let Some(cause) = &g.poisoned {
            return Err(Error::Poisoned {
                cause: cause.clone(),
            });
        }
        if g.file_len > HEADER_LEN as u64 || !g.buf.is_empty() {
            self.rotate_locked(&mut g)?;
        }
        Ok(g.next_lsn)
    }

    fn rotate_locked(&self, g: &mut Inner) -> Result<()> {
        self.write_buf_locked(g)?;
        let path = current_path(g, &self.dir);
        let Some(file) = g.file.clone() else {
            return Err(Error::ReadOnly {
                path: self.dir.clone(),
            });
        };
        if let Err(e) = faults::check(faults::Op::Sync, &path).and_then(|()| file.sync_data()) {
            return Err(self.poison_locked(g, "fsync of the log failed", &e));
        }
        g.synced_lsn = g.synced_lsn.max(g.next_lsn - 1);
        self.tell_beacon(g.synced_lsn);
        let next = g.next_lsn;
        match create_file(&self.dir, next) {
            Ok((f, path)) => {
                let old = g.file_len;
                if let Some(last) = g.files.last_mut() {
                    last.2 = old;
                }
                g.older_bytes += old;
                g.files.push((next, path, HEADER_LEN as u64));
                g.file = Some(Arc::new(f));
                g.file_len = HEADER_LEN as u64;
                Ok(())
            }
            Err(e) => {
                let cause = format!("starting a new log file failed: {e}");
                g.poisoned.get_or_insert(cause.clone());
                Err(Error::Poisoned { cause })
            }
        }
    }

    fn tell_beacon(&self, synced_lsn: u64) {
        if let Some(b) = self.beacon.get() {
            b.durable(synced_lsn);
        }
    }

    /// Removes log files all of whose frames have LSN below `min_needed`.
    pub(crate) fn remove_below(&self, min_needed: u64) -> Result<()> {
        self.check_writable()?;
        let mut g = self.inner.lock();
        let mut removed = false;
        while g.files.len() > 1 && g.files[1].0 <= min_needed {
            let (_, path, size) = g.files.remove(0);
            g.older_bytes -= size;
            fs::remove_file(&path).at(&path)?;
            removed = true;
        }
        drop(g);
        if removed {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Total bytes of the log: files on disk plus frames not yet handed to the OS.
    pub(crate) fn disk_bytes(&self) -> u64 {
        if self.read_only {
            return list_files(&self.dir).map_or(0, |files| {
                files
                    .iter()
                    .filter_map(|(_, p)| fs::metadata(p).ok())
                    .map(|m| m.len())
                    .sum()
            });
        }
        let g = self.inner.lock();
        g.older_bytes + g.file_len + g.buf.len() as u64
    }
}

/// Gets the log ready to append: after the last intact frame of the newest file kept, or in a
/// new file when none was. Returns the file, its length and the next LSN.
fn start_appending(
    dir: &Path,
    keep: &mut Vec<(u64, PathBuf, u64)>,
    next_lsn: Option<u64>,
    mark: LogMark,
) -> Result<(File, u64, u64)> {
    match (keep.last_mut(), next_lsn) {
        (Some((_, path, len)), Some(mut next)) => {
            let mut f = OpenOptions::new().write(true).open(&*path).at(&*path)?;
            // Frames replayed from it may not be on stable storage yet (the last writer may
            // have died before its fsync): they are now, before anyone is told so.
            f.sync_data().synced_at(&*path)?;
            f.seek(SeekFrom::Start(*len)).at(&*path)?;
            if next <= mark.last_lsn {
                // Only after a deliberate recovery dropped frames: new LSNs must stay
                // above every LSN a segment may hold, so the log skips to there.
                let mut frame = Vec::new();
                let target = mark.last_lsn + 1;
                encode_frame(&mut frame, next, KIND_SKIP, &target.to_le_bytes());
                f.write_all(&frame).at(&*path)?;
                f.sync_all().at(&*path)?;
                *len += frame.len() as u64;
                next = target;
            }
            if older_version(path)? {
                // Written by an older build: new frames (whose documents may use value tags
                // it does not know) go to a file of the current version, which it refuses.
                let (f, path) = create_file(dir, next)?;
                keep.push((next, path, HEADER_LEN as u64));
                return Ok((f, HEADER_LEN as u64, next));
            }
            Ok((f, *len, next))
        }
        _ => {
            let next = mark.last_lsn + 1;
            let (f, path) = create_file(dir, next)?;
            keep.push((next, path, HEADER_LEN as u64));
            Ok((f, HEADER_LEN as u64, next))
        }
    }
}

/// Whether the log file at `path` has a header of an older format version than this build
/// writes.
fn older_version(path: &Path) -> Result<bool> {
    let mut head = [0u8; HEADER_LEN];
    let mut r = File::open(path).at(path)?;
    r.read_exact(&mut head).at(path)?;
    let h = Header::decode(&head, FileKind::Wal, path)?;
    Ok(h.version < FileKind::Wal.version())
}

/// The log file being appended to (for the fault-injection seam).
fn current_path(g: &Inner, dir: &Path) -> PathBuf {
    g.files
        .last()
        .map_or_else(|| dir.to_owned(), |f| f.1.clone())
}

/// Creates a log file starting at `first_lsn`: header written and fsynced, directory fsynced.
fn create_file(dir: &Path, first_lsn: u64) -> Result<(File, PathBuf)> {
    let path = dir.join(file_name(first_lsn));
    let mut h = Header::new(FileKind::Wal);
    h.aux = first_lsn;
    faults::check(faults::Op::Create, &path).at(&path)?;
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .at(&path)?;
    faults::check(faults::Op::Write, &path).at(&path)?;
    f.write_all(&h.encode()).at(&path)?;
    faults::check(faults::Op::Sync, &path).synced_at(&path)?;
    f.sync_all().synced_at(&path)?;
    sync_dir(dir)?;
    Ok((f, path))
}
