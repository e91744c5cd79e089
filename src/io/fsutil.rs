//! Small file-system helpers with the durability steps spelled out.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

use super::faults::{Op, check};
use crate::error::{IoContext, Result};

/// fsyncs a directory so that entries created, renamed or removed in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    check(Op::Sync, dir).synced_at(dir)?;
    File::open(dir).at(dir)?.sync_all().synced_at(dir)
}

/// Creates the directory `path` (whose parent exists) and fsyncs its parent, so that the new
/// entry is durable.
pub(crate) fn create_dir_synced(path: &Path) -> Result<()> {
    check(Op::Create, path).at(path)?;
    fs::create_dir(path).at(path)?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Creates `path` (which must not exist), writes `chunks` to it and fsyncs it.
/// The caller fsyncs the directory.
pub(crate) fn write_new_file(path: &Path, chunks: &[&[u8]]) -> Result<()> {
    check(Op::Create, path).at(path)?;
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .at(path)?;
    check(Op::Write, path).at(path)?;
    for c in chunks {
        f.write_all(c).at(path)?;
    }
    check(Op::Sync, path).synced_at(path)?;
    f.sync_all().synced_at(path)
}

/// Replaces `path` atomically: write `path.tmp`, fsync it, rename over `path`, fsync the
/// directory. A crash leaves either the old or the new file, never a mix.
pub(crate) fn replace_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    write_new_file(&tmp, &[bytes])?;
    check(Op::Rename, path).at(path)?;
    fs::rename(&tmp, path).at(path)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    sync_dir(dir)
}
