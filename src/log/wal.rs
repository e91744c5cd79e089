//! The write-ahead log: every upsert and delete batch is one checksummed frame.
//!
//! ```text
//! wal/00000000000000000001.wal   header (kind Wal, aux = first LSN), then frames:
//!     len u32 | crc32c u32 | lsn u64 | kind u8 | body …
//!     └ len counts lsn+kind+body; crc covers the same bytes
//! ```
//!
//! * One batch is one frame, so a batch is applied whole or not at all.
//! * LSNs are consecutive across frames and files. Replay stops at the first frame that is
//!   short, fails its checksum or breaks the LSN sequence: in the newest file that is a torn
//!   tail and the file is truncated there; in an older file (always fsynced before a newer one
//!   was started) it is corruption and opening fails.
//! * Group commit: writers append frames to a shared buffer under a mutex; the first writer
//!   that needs durability writes the buffer and calls `fdatasync` with the mutex released,
//!   the others wait on a condition variable and are released together.
//! * Any failed write or fsync poisons the log: every later write is refused with
//!   [`Error::Poisoned`] until the database is reopened (no retry after a failed fsync).

use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use crate::error::{Error, IoContext, Result};
use crate::io::faults;
use crate::io::fsutil::sync_dir;
use crate::io::header::{FileKind, HEADER_LEN, Header, u32_at, u64_at};

/// Frame kind of an upsert batch.
pub(crate) const KIND_UPSERT: u8 = 1;
/// Frame kind of a delete batch.
pub(crate) const KIND_DELETE: u8 = 2;
/// Largest frame body; larger batches are refused with [`Error::BatchTooLarge`].
pub(crate) const MAX_FRAME_BODY: usize = 1 << 30;
/// Bytes before the body: len, crc, lsn, kind.
const FRAME_PREFIX: usize = 4 + 4 + 8 + 1;
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

fn file_name(first_lsn: u64) -> String {
    format!("{first_lsn:020}.wal")
}

fn parse_file_name(name: &str) -> Option<u64> {
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
    file: Arc<File>,
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
}

/// Where replay ended.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReplayStats {
    /// Frames read.
    pub frames: u64,
    /// Bytes cut from a torn tail.
    pub truncated_bytes: u64,
}

impl Wal {
    /// Opens the log in `dir`, replays every intact frame through `apply` in LSN order, cuts a
    /// torn tail, and gets ready to append. `last_lsn` is the newest LSN the manifest knows of.
    pub(crate) fn open(
        dir: &Path,
        file_limit: u64,
        last_lsn: u64,
        mut apply: impl FnMut(Frame<'_>) -> Result<()>,
    ) -> Result<(Wal, ReplayStats)> {
        fs::create_dir_all(dir).at(dir)?;
        let mut files = Vec::new();
        for entry in fs::read_dir(dir).at(dir)? {
            let entry = entry.at(dir)?;
            let name = entry.file_name();
            if let Some(lsn) = name.to_str().and_then(parse_file_name) {
                files.push((lsn, entry.path()));
            }
        }
        files.sort();

        let mut stats = ReplayStats::default();
        let mut next_lsn: Option<u64> = None;
        let mut keep = Vec::new();
        let mut tail_len = 0u64;
        let n = files.len();
        for (i, (first_lsn, path)) in files.into_iter().enumerate() {
            let newest = i + 1 == n;
            let bytes = fs::read(&path).at(&path)?;
            let header = match Header::decode(&bytes, FileKind::Wal, &path) {
                Ok(h) => h,
                // A crash while a new log file was being created leaves it shorter than its
                // header; it holds no frames.
                Err(_) if newest && bytes.len() <= HEADER_LEN => {
                    fs::remove_file(&path).at(&path)?;
                    sync_dir(dir)?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if header.aux != first_lsn {
                return Err(Error::corruption(
                    &path,
                    format!(
                        "header says first LSN {}, name says {first_lsn}",
                        header.aux
                    ),
                ));
            }
            if let Some(expected) = next_lsn
                && expected != first_lsn
            {
                return Err(Error::corruption(
                    &path,
                    format!(
                        "log starts at LSN {first_lsn}, but the previous file ended before {expected}"
                    ),
                ));
            }
            let mut pos = HEADER_LEN;
            let mut lsn = first_lsn;
            while pos < bytes.len() {
                match decode_frame(&bytes[pos..]) {
                    Some((frame, len)) if frame.lsn == lsn => {
                        apply(frame)?;
                        stats.frames += 1;
                        pos += len;
                        lsn += 1;
                    }
                    _ if newest => {
                        stats.truncated_bytes = (bytes.len() - pos) as u64;
                        let f = OpenOptions::new().write(true).open(&path).at(&path)?;
                        f.set_len(pos as u64).at(&path)?;
                        f.sync_all().at(&path)?;
                        break;
                    }
                    _ => {
                        return Err(Error::corruption(
                            &path,
                            format!("bad frame at offset {pos} in a log file that was complete"),
                        ));
                    }
                }
            }
            next_lsn = Some(lsn);
            tail_len = pos as u64;
            keep.push((first_lsn, path, pos as u64));
        }

        let (file, file_len, next_lsn) = match (keep.last(), next_lsn) {
            (Some((_, path, _)), Some(replayed_next)) => {
                // The manifest's LSN always lies in a file that was fsynced before the
                // manifest was written, and the newest file is never removed.
                if replayed_next <= last_lsn {
                    return Err(Error::corruption(
                        path,
                        format!(
                            "log ends before LSN {replayed_next} but the manifest holds LSN {last_lsn}"
                        ),
                    ));
                }
                // Keep appending to the newest file, right after its last intact frame.
                let mut f = OpenOptions::new().write(true).open(path).at(path)?;
                f.seek(SeekFrom::Start(tail_len)).at(path)?;
                (f, tail_len, replayed_next)
            }
            _ => {
                let next = last_lsn + 1;
                let (f, path) = create_file(dir, next)?;
                keep.push((next, path, HEADER_LEN as u64));
                (f, HEADER_LEN as u64, next)
            }
        };
        let wal = Wal {
            dir: dir.to_owned(),
            file_limit,
            inner: Mutex::new(Inner {
                older_bytes: keep.iter().rev().skip(1).map(|f| f.2).sum(),
                files: keep,
                file: Arc::new(file),
                file_len,
                buf: Vec::new(),
                next_lsn,
                synced_lsn: next_lsn - 1,
                syncing: false,
                poisoned: None,
            }),
            synced: Condvar::new(),
        };
        Ok((wal, stats))
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
        let buf = std::mem::take(&mut g.buf);
        let path = current_path(g, &self.dir);
        let mut file: &File = &g.file;
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
            let file = Arc::clone(&g.file);
            let path = current_path(&g, &self.dir);
            g.syncing = true;
            drop(g);
            let res = faults::check(faults::Op::Sync, &path).and_then(|()| file.sync_data());
            g = self.inner.lock();
            g.syncing = false;
            match res {
                Ok(()) => g.synced_lsn = g.synced_lsn.max(target),
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
        if let Err(e) = faults::check(faults::Op::Sync, &path).and_then(|()| g.file.sync_data()) {
            return Err(self.poison_locked(g, "fsync of the log failed", &e));
        }
        g.synced_lsn = g.synced_lsn.max(g.next_lsn - 1);
        let next = g.next_lsn;
        match create_file(&self.dir, next) {
            Ok((f, path)) => {
                let old = g.file_len;
                if let Some(last) = g.files.last_mut() {
                    last.2 = old;
                }
                g.older_bytes += old;
                g.files.push((next, path, HEADER_LEN as u64));
                g.file = Arc::new(f);
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

    /// Removes log files all of whose frames have LSN below `min_needed`.
    pub(crate) fn remove_below(&self, min_needed: u64) -> Result<()> {
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
        let g = self.inner.lock();
        g.older_bytes + g.file_len + g.buf.len() as u64
    }
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
