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

/// The directory holding `path`'s entry: its parent, or the working directory for a relative
/// path of one component (whose parent is the empty path, which cannot be opened).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Creates the directory `path` (whose parent exists) and fsyncs its parent, so that the new
/// entry is durable.
pub(crate) fn create_dir_synced(path: &Path) -> Result<()> {
    check(Op::Create, path).at(path)?;
    fs::create_dir(path).at(path)?;
    sync_dir(parent_dir(path))
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
    sync_dir(parent_dir(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parent_of_a_one_component_relative_path_is_the_working_directory() {
        assert_eq!(parent_dir(Path::new("my-db")), Path::new("."));
        assert_eq!(parent_dir(Path::new("a/b")), Path::new("a"));
        assert_eq!(parent_dir(Path::new("/x")), Path::new("/"));
    }
}
