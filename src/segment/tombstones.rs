//! Tombstone files: which rows of a sealed segment are deleted.
//!
//! `seg-<id>.<generation>.del`: the common header (kind Tombstones, count = rows marked,
//! aux = segment id, crc32c of the body) and a body holding the row bitmap in the portable
//! roaring serialization. Each seal that changed a segment's tombstones writes the next
//! generation and names it in the manifest; the previous file is removed after the manifest
//! is published. A segment file itself is never rewritten.

use std::path::Path;

use roaring::RoaringBitmap;

use crate::error::{Error, IoContext, Result};
use crate::io::fsutil::write_new_file;
use crate::io::header::{FileKind, Header};

/// Writes a tombstone file (fsynced; the caller fsyncs the directory).
pub(crate) fn write(path: &Path, segment: u64, rows: &RoaringBitmap) -> Result<()> {
    let mut body = Vec::with_capacity(rows.serialized_size());
    rows.serialize_into(&mut body).at(path)?;
    let mut h = Header::new(FileKind::Tombstones);
    h.count = rows.len();
    h.body_len = body.len() as u64;
    h.body_crc = crc32c::crc32c(&body);
    h.aux = segment;
    write_new_file(path, &[&h.encode(), &body])
}

/// Reads and checks a tombstone file of a segment with `seg_rows` rows.
pub(crate) fn read(path: &Path, segment: u64, seg_rows: u64, count: u64) -> Result<RoaringBitmap> {
    let bytes = std::fs::read(path).at(path)?;
    decode(&bytes, path, segment, seg_rows, count)
}

pub(crate) fn decode(
    bytes: &[u8],
    path: &Path,
    segment: u64,
    seg_rows: u64,
    count: u64,
) -> Result<RoaringBitmap> {
    let (h, body) = Header::checked_body(bytes, FileKind::Tombstones, path, segment)?;
    let bad = |what: String| Error::corruption(path, what);
    let rows = RoaringBitmap::deserialize_from(body)
        .map_err(|e| bad(format!("invalid row bitmap: {e}")))?;
    if rows.len() != h.count || rows.len() != count {
        return Err(bad(format!(
            "marks {} rows, header says {}, manifest says {count}",
            rows.len(),
            h.count
        )));
    }
    if let Some(max) = rows.max()
        && u64::from(max) >= seg_rows
    {
        return Err(bad(format!(
            "marks row {max} of a segment with {seg_rows} rows"
        )));
    }
    Ok(rows)
}
