//! Following the log from another process: a read-only handle reads the frames a writer
//! appends, in LSN order, up to the LSN the writer says is durable, and never writes.
//!
//! The tail keeps its file open, so a file the writer trims stays readable; it moves to the
//! next file by name (a rotation starts the file named after the next LSN). When the frame
//! that must come next cannot be found — its file was trimmed, or the bytes there are not
//! that frame although the writer said it is durable — [`TailRead::Lost`] tells the caller
//! to start again from the manifest.

use std::fs::File;
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::io::header::{FileKind, HEADER_LEN, Header};

use super::recover::{find_frame_after, list_files, lsn_after};
use super::wal::{Frame, KIND_SKIP, decode_frame, file_name};

/// How a read of the tail ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TailRead {
    /// Every frame up to the limit that is in the log was read.
    UpTo,
    /// The next frame is no longer where it must be: start again from the manifest.
    Lost(String),
    /// The file that must hold the next frame is gone: the writer trimmed it (it had stored a
    /// manifest that no longer needs it first): start again from the manifest.
    Gone(String),
}

/// A position in the log: the file being read, the offset of the next frame in it, and the
/// LSN that frame must have.
pub(crate) struct LogTail {
    dir: PathBuf,
    file: Option<(PathBuf, File)>,
    offset: u64,
    next_lsn: u64,
    buf: Vec<u8>,
}

impl LogTail {
    /// A tail at the first frame of the newest log file that starts at or before `needed`
    /// (files before it hold only frames below `needed`, which the writer may be trimming);
    /// the oldest file if none does; `fallback_lsn` when there is no file.
    pub(crate) fn covering(dir: &Path, needed: u64, fallback_lsn: u64) -> Result<LogTail> {
        let files = existing_files(dir)?;
        let first = files
            .iter()
            .rev()
            .find(|f| f.0 <= needed)
            .or(files.first())
            .map_or(fallback_lsn, |f| f.0);
        Ok(LogTail {
            dir: dir.to_owned(),
            file: None,
            offset: HEADER_LEN as u64,
            next_lsn: first,
            buf: Vec::new(),
        })
    }

    /// The LSN of the next frame to read.
    pub(crate) fn next_lsn(&self) -> u64 {
        self.next_lsn
    }

    /// Reads the intact frames with LSN up to `durable`, in order, through `apply`: frames
    /// the writer said are durable, so each must be there. With `None` (no writer said
    /// anything) it reads to the first frame that is not intact.
    pub(crate) fn read(
        &mut self,
        durable: Option<u64>,
        mut apply: impl FnMut(Frame<'_>) -> Result<()>,
    ) -> Result<TailRead> {
        let limit = durable.unwrap_or(u64::MAX);
        while self.next_lsn <= limit {
            if self.file.is_none() {
                match self.open_next()? {
                    // No writer said anything: the end of the log — unless later files exist.
                    Some(TailRead::Gone(why)) if durable.is_none() => {
                        let later = existing_files(&self.dir)?
                            .iter()
                            .any(|f| f.0 > self.next_lsn);
                        if later {
                            return Ok(TailRead::Lost(format!(
                                "{why}, but later log files exist: the log is damaged"
                            )));
                        }
                        return Ok(TailRead::UpTo);
                    }
                    Some(_) if durable.is_none() => return Ok(TailRead::UpTo),
                    Some(lost) => return Ok(lost),
                    None if self.file.is_none() => return Ok(TailRead::UpTo),
                    None => {}
                }
            }
            let (path, f) = self.file.as_mut().expect("a file is open");
            self.buf.clear();
            f.seek(SeekFrom::Start(self.offset)).at(&*path)?;
            f.read_to_end(&mut self.buf).at(&*path)?;
            let mut pos = 0;
            while self.next_lsn <= limit {
                let Some((frame, len)) = decode_frame(&self.buf[pos..]) else {
                    break;
                };
                if frame.lsn != self.next_lsn {
                    break;
                }
                let next = lsn_after(&frame).ok_or_else(|| {
                    Error::corruption(&*path, "a skip frame does not move the log forward")
                })?;
                if frame.kind != KIND_SKIP {
                    apply(frame)?;
                }
                pos += len;
                self.next_lsn = next;
            }
            self.offset += pos as u64;
            if self.next_lsn > limit {
                break;
            }
            if pos < self.buf.len() {
                if durable.is_none() {
                    // Torn, or being written: the end of what can be read — unless an intact
                    // frame that could follow comes later (damage, as recovery judges it).
                    if let Some((at, lsn)) = find_frame_after(&self.buf, pos, self.next_lsn, 0) {
                        return Ok(TailRead::Lost(format!(
                            "{}: bad frame at offset {} (LSN {} expected) is followed by an \
                             intact frame at offset {} (LSN {lsn}): the log is damaged",
                            path.display(),
                            self.offset,
                            self.next_lsn,
                            self.offset + (at - pos) as u64
                        )));
                    }
                    return Ok(TailRead::UpTo);
                }
                // Bytes that are not the next frame, although the writer said it is durable.
                return Ok(TailRead::Lost(format!(
                    "{}: bad frame at offset {} (LSN {} expected, and the writer said it is \
                     durable)",
                    path.display(),
                    self.offset,
                    self.next_lsn
                )));
            }
            // The end of this file: the next frame is in the file named after it.
            self.file = None;
        }
        Ok(TailRead::UpTo)
    }

    /// Opens the file that starts with the next LSN. `Ok(None)` with no file open: it does
    /// not exist (yet); `Ok(Some(lost))`: it must exist but does not, or is not that file.
    fn open_next(&mut self) -> Result<Option<TailRead>> {
        let path = self.dir.join(file_name(self.next_lsn));
        let mut f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                // The first file of a tail: it may start below the next LSN (a fresh tail
                // positioned at the oldest file finds it by name, so this is a trimmed file).
                return Ok(Some(TailRead::Gone(format!(
                    "{}: log file not found",
                    path.display()
                ))));
            }
            Err(e) => return Err(Error::io(&path, e)),
        };
        let mut head = vec![0u8; HEADER_LEN];
        if f.read_exact(&mut head).is_err() {
            // Being created by the writer: its header is not there yet.
            return Ok(None);
        }
        match Header::decode(&head, FileKind::Wal, &path) {
            Ok(h) if h.aux == self.next_lsn => {}
            _ => {
                return Ok(Some(TailRead::Lost(format!(
                    "{}: not the log file of LSN {}",
                    path.display(),
                    self.next_lsn
                ))));
            }
        }
        self.file = Some((path, f));
        self.offset = HEADER_LEN as u64;
        Ok(None)
    }
}

/// The log files in `dir`; none while the directory does not exist (a database being created:
/// its log directory comes right after its manifest).
fn existing_files(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    match list_files(dir) {
        Err(Error::Io { source, .. }) if source.kind() == ErrorKind::NotFound => Ok(Vec::new()),
        r => r,
    }
}
