//! Reading the log back at open: replay of the intact frames, a torn tail told apart from
//! damage, and the deliberate recovery that drops frames (`accept_loss`).
//!
//! [`Recovery::read`] reads every log file and plans its changes (a cut, files to remove)
//! without making them; [`Recovery::carry_out`] makes them once every check passed, so that an
//! open that fails leaves every file as it was.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, IoContext, Result};
use crate::io::fsutil::sync_dir;
use crate::io::header::{FileKind, HEADER_LEN, Header, u32_at, u64_at};

use super::batch;
use super::wal::{
    FRAME_PREFIX, Frame, KIND_DELETE, KIND_SKIP, KIND_UPSERT, decode_frame, file_name,
    parse_file_name,
};

/// What the manifest says about the log: the position it was published at.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LogMark {
    /// Every frame with an LSN up to this one was durable when the manifest was written.
    pub last_lsn: u64,
    /// First LSN of the newest log file when the manifest was written (0: not recorded). That
    /// file, or a newer one, must exist.
    pub log_file: u64,
}

/// What opening the log found and did: frames replayed, a torn tail cut, and — only when
/// [`Options::accept_log_loss`](crate::Options::accept_log_loss) allowed it — frames dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RecoveryReport {
    /// Frames replayed from the log.
    pub frames_replayed: u64,
    /// Bytes cut from a torn tail: the end of the newest log file, where a crash interrupted
    /// a write that was never acknowledged. Cutting them loses nothing.
    pub torn_tail_bytes: u64,
    /// Frames dropped by a deliberate recovery (`accept_log_loss`), the damaged one included,
    /// plus frames the manifest says existed but that were missing from the log.
    pub dropped_frames: u64,
    /// Records (upserted rows, deleted ids) of the dropped frames that could still be read.
    pub dropped_records: u64,
    /// The log file holding the first damaged frame, when frames were dropped.
    pub damaged_file: Option<PathBuf>,
    /// Byte offset of the first damaged frame in `damaged_file`.
    pub damaged_offset: Option<u64>,
    /// Log files removed by the recovery (they followed the damage).
    pub removed_files: Vec<PathBuf>,
    /// Every loss found, in words.
    pub problems: Vec<String>,
}

impl RecoveryReport {
    /// Whether the recovery dropped data (beyond a torn tail).
    pub fn lost_data(&self) -> bool {
        !self.problems.is_empty()
    }
}

/// The number of records in a frame body (0 for one that does not decode).
fn records_in(kind: u8, body: &[u8]) -> u64 {
    match kind {
        KIND_UPSERT => batch::decode_upsert(body).map_or(0, |v| v.rows.len() as u64),
        KIND_DELETE => batch::decode_delete(body).map_or(0, |(_, ids)| ids.len() as u64),
        _ => 0,
    }
}

/// The LSN that follows an intact frame: the target of a skip frame, else the next one.
pub(super) fn lsn_after(frame: &Frame<'_>) -> Option<u64> {
    if frame.kind == KIND_SKIP {
        let target = frame
            .body
            .try_into()
            .ok()
            .map(u64::from_le_bytes)
            .filter(|&t| t > frame.lsn)?;
        Some(target)
    } else {
        frame.lsn.checked_add(1)
    }
}

/// Looks for an intact frame after the bad one at `pos`, at any byte from `pos + 1` on, whose
/// LSN could follow the last good one: at least `expected`, and at most one more than the
/// frames that fit in between (each is at least [`FRAME_PREFIX`] bytes). The LSN is also
/// accepted just above `alt` (where a recovery continued the log), within the same bound.
/// Returns its offset and LSN.
pub(super) fn find_frame_after(
    bytes: &[u8],
    pos: usize,
    expected: u64,
    alt: u64,
) -> Option<(usize, u64)> {
    let mut p = pos + 1;
    while p + FRAME_PREFIX <= bytes.len() {
        let lsn = u64_at(bytes, p + 8);
        let slack = ((p - pos) / FRAME_PREFIX) as u64 + 1;
        let fits = |base: u64| lsn >= base && lsn <= base.saturating_add(slack);
        if (fits(expected) || (alt > expected && fits(alt)))
            && let Some((f, _)) = decode_frame(&bytes[p..])
            && f.lsn == lsn
        {
            return Some((p, lsn));
        }
        p += 1;
    }
    None
}

/// Frames and records from `pos` on: intact frames in sequence, and past damaged bytes
/// whatever intact frames a scan finds.
fn tally(bytes: &[u8], mut pos: usize, mut expected: u64, alt: u64) -> (u64, u64) {
    let (mut frames, mut records) = (0, 0);
    while pos < bytes.len() {
        match decode_frame(&bytes[pos..]) {
            Some((f, len)) if f.lsn >= expected => {
                frames += 1;
                records += records_in(f.kind, f.body);
                expected = lsn_after(&f).unwrap_or(u64::MAX);
                pos += len;
            }
            _ => match find_frame_after(bytes, pos, expected, alt) {
                Some((at, _)) => pos = at,
                None => break,
            },
        }
    }
    (frames, records)
}

/// Frames and records dropped from the damaged frame at `pos` on. The damaged frame counts
/// as one frame; its records count when its body still decodes.
fn tally_damaged(bytes: &[u8], pos: usize, expected: u64, alt: u64) -> (u64, u64) {
    let rest = &bytes[pos..];
    let mut records = 0;
    if rest.len() >= FRAME_PREFIX {
        let len = u32_at(rest, 0) as usize;
        if len >= 9 && len.saturating_add(8) <= rest.len() {
            records = records_in(rest[16], &rest[FRAME_PREFIX..8 + len]);
        }
    }
    let (f, r) = match find_frame_after(bytes, pos, expected, alt) {
        Some((at, _)) => tally(bytes, at, expected, alt),
        None => (0, 0),
    };
    (1 + f, records + r)
}

/// The log files in `dir` (`(first LSN, path)`), oldest first.
pub(super) fn list_files(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let name = entry.file_name();
        if let Some(lsn) = name.to_str().and_then(parse_file_name) {
            files.push((lsn, entry.path()));
        }
    }
    files.sort();
    Ok(files)
}

/// How a log file's header and place in the sequence check out.
enum FileCheck {
    Usable,
    /// A crash while a new log file was being created left it shorter than its header; it
    /// holds no frames and is removed.
    Unfinished,
    /// The whole file is unusable (bad header, out of sequence).
    Unusable(String),
}

/// What reading the log found, and the changes it plans.
pub(super) struct Recovery {
    mark: LogMark,
    accept_loss: bool,
    /// LSN just above the manifest's: where a recovery that dropped frames continued the log.
    alt: u64,
    pub(super) report: RecoveryReport,
    /// The files kept: first LSN, path, length up to the last intact frame.
    pub(super) keep: Vec<(u64, PathBuf, u64)>,
    /// The LSN after the last intact frame kept (`None`: no file kept).
    pub(super) next_lsn: Option<u64>,
    /// A file to cut at a length (a torn tail, or the first damaged frame).
    cut: Option<(PathBuf, u64)>,
    remove: Vec<PathBuf>,
    /// A deliberate recovery dropped frames: every later file goes too.
    lost: bool,
}

impl Recovery {
    /// Reads every log file in `dir`, replays every intact frame through `apply` in LSN order,
    /// and checks the log against the manifest's `mark`. Changes no file.
    pub(super) fn read(
        dir: &Path,
        mark: LogMark,
        accept_loss: bool,
        mut apply: impl FnMut(Frame<'_>) -> Result<()>,
    ) -> Result<Recovery> {
        let files = list_files(dir)?;
        let mut r = Recovery {
            mark,
            accept_loss,
            alt: mark.last_lsn.saturating_add(1),
            report: RecoveryReport::default(),
            keep: Vec::new(),
            next_lsn: None,
            cut: None,
            remove: Vec::new(),
            lost: false,
        };
        let n = files.len();
        for (i, (first_lsn, path)) in files.into_iter().enumerate() {
            r.read_file(first_lsn, path, i + 1 == n, &mut apply)?;
        }
        if !r.lost {
            r.check_mark(dir)?;
        }
        Ok(r)
    }

    fn read_file(
        &mut self,
        first_lsn: u64,
        path: PathBuf,
        newest: bool,
        apply: &mut impl FnMut(Frame<'_>) -> Result<()>,
    ) -> Result<()> {
        let bytes = fs::read(&path).at(&path)?;
        if self.lost {
            let (f, r) = tally(&bytes, HEADER_LEN.min(bytes.len()), first_lsn, self.alt);
            self.report.dropped_frames += f;
            self.report.dropped_records += r;
            self.report.removed_files.push(path.clone());
            self.remove.push(path);
            return Ok(());
        }
        match self.check_file(&bytes, &path, first_lsn, newest) {
            FileCheck::Usable => {}
            FileCheck::Unfinished => {
                self.remove.push(path);
                return Ok(());
            }
            FileCheck::Unusable(what) => return self.drop_unusable(&bytes, first_lsn, path, what),
        }
        let (pos, lsn, bad) = replay(&bytes, &path, first_lsn, &mut self.report, apply)?;
        if bad {
            self.bad_frame(&bytes, &path, pos, lsn, newest)?;
        }
        self.next_lsn = Some(lsn);
        self.keep.push((first_lsn, path, pos as u64));
        Ok(())
    }

    /// Problems that make the whole file unusable.
    fn check_file(&self, bytes: &[u8], path: &Path, first_lsn: u64, newest: bool) -> FileCheck {
        match Header::decode(bytes, FileKind::Wal, path) {
            // Only a file newer than the one the manifest was published with can be unfinished.
            Err(_) if newest && bytes.len() <= HEADER_LEN && first_lsn > self.mark.log_file => {
                FileCheck::Unfinished
            }
            Err(e) => FileCheck::Unusable(match e {
                Error::Corruption { what, .. } => what,
                e => e.to_string(),
            }),
            Ok(h) if h.aux != first_lsn => FileCheck::Unusable(format!(
                "header says first LSN {}, name says {first_lsn}",
                h.aux
            )),
            Ok(_) => match self.next_lsn {
                Some(expected) if expected != first_lsn => FileCheck::Unusable(format!(
                    "log starts at LSN {first_lsn}, but the previous file ended before {expected}"
                )),
                _ => FileCheck::Usable,
            },
        }
    }

    /// An unusable file: opening fails, or with `accept_loss` the file and every later one
    /// are dropped.
    fn drop_unusable(
        &mut self,
        bytes: &[u8],
        first_lsn: u64,
        path: PathBuf,
        what: String,
    ) -> Result<()> {
        if !self.accept_loss {
            return Err(Error::corruption(&path, what));
        }
        let (f, r) = tally(bytes, HEADER_LEN.min(bytes.len()), first_lsn, self.alt);
        self.report.dropped_frames += f;
        self.report.dropped_records += r;
        self.report.damaged_file = Some(path.clone());
        self.report.damaged_offset = Some(0);
        self.report.problems.push(format!(
            "{}: {what}; dropped with every later log file",
            path.display()
        ));
        self.report.removed_files.push(path.clone());
        self.remove.push(path);
        self.lost = true;
        Ok(())
    }

    /// A bad frame at `pos` where LSN `lsn` was expected: a torn tail (cut), damage dropped by
    /// `accept_loss` (cut, and every later file removed), or corruption (an error).
    fn bad_frame(
        &mut self,
        bytes: &[u8],
        path: &Path,
        pos: usize,
        lsn: u64,
        newest: bool,
    ) -> Result<()> {
        let follower = find_frame_after(bytes, pos, lsn, self.alt);
        if newest && follower.is_none() {
            self.report.torn_tail_bytes = (bytes.len() - pos) as u64;
            self.cut = Some((path.to_owned(), pos as u64));
            return Ok(());
        }
        if self.accept_loss {
            let (f, r) = tally_damaged(bytes, pos, lsn, self.alt);
            self.report.dropped_frames += f;
            self.report.dropped_records += r;
            self.report.damaged_file = Some(path.to_owned());
            self.report.damaged_offset = Some(pos as u64);
            self.report.problems.push(format!(
                "{}: bad frame at offset {pos} (LSN {lsn} expected); {f} frames with {r} \
                 readable records dropped from there on",
                path.display()
            ));
            self.cut = Some((path.to_owned(), pos as u64));
            self.lost = true;
            return Ok(());
        }
        let what = match follower {
            Some((at, flsn)) => format!(
                "bad frame at offset {pos} (LSN {lsn} expected) is followed by an \
                 intact frame at offset {at} (LSN {flsn}): the log is damaged, not \
                 torn; nothing was changed (Options::accept_log_loss or `cairn \
                 repair` drops the frames from offset {pos} on)"
            ),
            None => format!(
                "bad frame at offset {pos} (LSN {lsn} expected) in a log file that \
                 was complete; nothing was changed (Options::accept_log_loss or \
                 `cairn repair` drops the frames from offset {pos} on)"
            ),
        };
        Err(Error::corruption(path, what))
    }

    /// The log must still hold what the manifest was published with.
    fn check_mark(&mut self, dir: &Path) -> Result<()> {
        let mark = self.mark;
        let newest_first = self.keep.last().map(|k| k.0);
        if mark.log_file > 0 && newest_first.is_none_or(|f| f < mark.log_file) {
            let missing = dir.join(file_name(mark.log_file));
            let what = "log file is missing: the manifest was published while it was the \
                        newest log file, so frames from its first LSN on are lost";
            if !self.accept_loss {
                return Err(Error::corruption(&missing, what));
            }
            self.report
                .problems
                .push(format!("{}: {what}", missing.display()));
        }
        if let (Some(next), Some((_, path, _))) = (self.next_lsn, self.keep.last())
            && next <= mark.last_lsn
        {
            let what = format!(
                "log ends before LSN {next} but the manifest was published at LSN {}: \
                 acknowledged frames {next}..={} are missing",
                mark.last_lsn, mark.last_lsn
            );
            if !self.accept_loss {
                return Err(Error::corruption(path, what));
            }
            self.report.dropped_frames += mark.last_lsn - next + 1;
            self.report
                .problems
                .push(format!("{}: {what}", path.display()));
        }
        Ok(())
    }

    /// Makes the planned changes: the cut (fsynced) and the removals (directory fsynced).
    pub(super) fn carry_out(&self, dir: &Path) -> Result<()> {
        if let Some((path, len)) = &self.cut {
            let f = OpenOptions::new().write(true).open(path).at(path)?;
            f.set_len(*len).at(path)?;
            f.sync_all().at(path)?;
        }
        for path in &self.remove {
            fs::remove_file(path).at(path)?;
        }
        if !self.remove.is_empty() {
            sync_dir(dir)?;
        }
        Ok(())
    }
}

/// Replays the intact frames of one file from its header on, through `apply`. Returns where
/// replay stopped, the LSN expected there, and whether it stopped at a bad frame.
fn replay(
    bytes: &[u8],
    path: &Path,
    first_lsn: u64,
    report: &mut RecoveryReport,
    apply: &mut impl FnMut(Frame<'_>) -> Result<()>,
) -> Result<(usize, u64, bool)> {
    let mut pos = HEADER_LEN;
    let mut lsn = first_lsn;
    while pos < bytes.len() {
        let Some((frame, len)) = decode_frame(&bytes[pos..]).filter(|(f, _)| f.lsn == lsn) else {
            return Ok((pos, lsn, true));
        };
        let next = lsn_after(&frame).ok_or_else(|| {
            Error::corruption(
                path,
                format!("skip frame at offset {pos} does not move the log forward"),
            )
        })?;
        if frame.kind != KIND_SKIP {
            apply(frame)?;
        }
        report.frames_replayed += 1;
        pos += len;
        lsn = next;
    }
    Ok((pos, lsn, false))
}
