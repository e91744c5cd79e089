//! Opening a segment's mapped files, one opener per file: each maps its file and checks the
//! header, the sizes the manifest implies and the checksums that are checked at open (the
//! rest is checked block by block on first touch, `io/blocks.rs`). Every length and offset
//! is validated before anything slices a map.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::{CODES_FILE, IDS_FILE, PAYLOAD_ENTRY, PAYLOAD_FILE, VECTORS_FILE, padded};
use crate::error::{Error, IoContext, Result};
use crate::io::blocks::{BLOCK_SIZE, BlockCheck};
use crate::io::header::{FileKind, HEADER_LEN, Header, u64_at};
use crate::io::mmap::Mmap;
use crate::model::Quantization;
use crate::vector::quant::{
    Codec, MappedCodes, parse_rabitq_preamble, rabitq_preamble_len, row_bytes,
};
use crate::vector::rabitq;

/// The `vectors` file, checked.
pub(super) struct VectorsFile {
    pub map: Mmap,
    pub path: PathBuf,
    /// Length of the f32 data (without padding and checksum table).
    pub data_len: usize,
    /// Offset of the block checksum table.
    pub table_off: usize,
    pub blocks: BlockCheck,
}

/// The `ids` file, checked as far as open checks it.
pub(super) struct IdsFile {
    pub map: Mmap,
    pub path: PathBuf,
    /// Entries in the id lookup table.
    pub sorted: usize,
    /// Version 2: the lazily checked blocks of the body before the block table (the caller
    /// checks a block before reading from it). `None` for a version 1 file, whose whole body
    /// was checked here (and whose table order `Segment::check_ids` checks at open).
    pub blocks: Option<BlockCheck>,
    /// Offset of the block checksum table (version 2; the file's end for version 1).
    pub table_off: usize,
}

/// The `payload` file, checked: where its documents and checksum table lie.
pub(super) struct PayloadFile {
    pub map: Mmap,
    pub path: PathBuf,
    pub blob_off: usize,
    pub blob_len: usize,
    pub table_off: usize,
    pub blocks: BlockCheck,
    /// Every row has the empty document.
    pub empty: bool,
}

fn bad(p: &Path, what: String) -> Error {
    Error::corruption(p, what)
}

/// The check block size of a block-checksummed file: a power of two from 4 KiB to 16 MiB.
fn check_block_size(h: &Header, path: &Path) -> Result<usize> {
    let bs = h.block_size as usize;
    if !(4096..=(16 << 20)).contains(&bs) || !bs.is_power_of_two() {
        return Err(bad(path, format!("invalid block size {bs}")));
    }
    Ok(bs)
}

fn rows_usize(rows: u64) -> usize {
    // `Segment::open` checked that the row count fits in u32.
    rows as usize
}

pub(super) fn vectors(dir: &Path, id: u64, rows: u64, dim: usize) -> Result<VectorsFile> {
    let rows_usize = rows_usize(rows);
    // vectors
    let vectors_path = dir.join(VECTORS_FILE);
    let vectors = open_map(&vectors_path)?;
    vectors.advise_random();
    let vb = vectors.bytes();
    let vh = Header::decode(vb, FileKind::Vectors, &vectors_path)?;
    let bad = |p: &Path, what: String| Error::corruption(p, what);
    check_common(&vh, &vectors_path, id, rows)?;
    if vh.dim as usize != dim {
        return Err(bad(
            &vectors_path,
            format!("dimension {} but collection has {dim}", vh.dim),
        ));
    }
    let block_size = check_block_size(&vh, &vectors_path)?;
    let data_len = rows_usize
        .checked_mul(dim)
        .and_then(|x| x.checked_mul(4))
        .ok_or_else(|| bad(&vectors_path, "size overflows".into()))?;
    let nblocks = BlockCheck::block_count(block_size, padded(data_len));
    let body_len = padded(data_len) + nblocks * 4;
    if vh.body_len != body_len as u64 || vb.len() != HEADER_LEN + body_len {
        return Err(bad(
            &vectors_path,
            format!(
                "file is {} bytes, expected {} for {rows} rows of dimension {dim}",
                vb.len(),
                HEADER_LEN + body_len
            ),
        ));
    }
    let table_off = HEADER_LEN + padded(data_len);
    if crc32c::crc32c(&vb[table_off..]) != vh.body_crc {
        return Err(bad(&vectors_path, "block checksum table mismatch".into()));
    }
    // The typed view must be possible (alignment); check once here.
    if bytemuck::try_cast_slice::<u8, f32>(&vb[HEADER_LEN..HEADER_LEN + data_len]).is_err() {
        return Err(bad(&vectors_path, "vector data is misaligned".into()));
    }

    Ok(VectorsFile {
        map: vectors,
        path: vectors_path,
        data_len,
        table_off,
        blocks: BlockCheck::new(block_size, padded(data_len)),
    })
}

pub(super) fn ids(dir: &Path, id: u64, rows: u64) -> Result<IdsFile> {
    let rows_usize = rows_usize(rows);
    let ids_path = dir.join(IDS_FILE);
    let ids = open_map(&ids_path)?;
    // Lookups land anywhere: no read-ahead around them.
    ids.advise_random();
    let ib = ids.bytes();
    let ih = Header::decode(ib, FileKind::Ids, &ids_path)?;
    check_common(&ih, &ids_path, id, rows)?;
    if ib.len() < HEADER_LEN + 8 {
        return Err(bad(&ids_path, "file too short for its body".into()));
    }
    // `s` is read before its block is checked: the file's length depends on it exactly, so a
    // damaged `s` fails the length check below.
    let sorted_usize = usize::try_from(u64_at(ib, HEADER_LEN))
        .ok()
        .filter(|&s| s <= rows_usize)
        .ok_or_else(|| bad(&ids_path, "more sorted ids than rows".into()))?;
    let data_len = 8 + rows_usize * 8 + sorted_usize * 12;
    let (block_size, table_len) = if ih.version >= 2 {
        let bs = check_block_size(&ih, &ids_path)?;
        (bs, BlockCheck::block_count(bs, data_len) * 4)
    } else {
        (0, 0)
    };
    let body_len = data_len + table_len;
    if ih.body_len != body_len as u64 || ib.len() != HEADER_LEN + body_len {
        return Err(bad(
            &ids_path,
            format!(
                "file is {} bytes, expected {} for {rows} rows and {sorted_usize} sorted ids",
                ib.len(),
                HEADER_LEN + body_len
            ),
        ));
    }
    let table_off = HEADER_LEN + data_len;
    let blocks = if ih.version >= 2 {
        if crc32c::crc32c(&ib[table_off..]) != ih.body_crc {
            return Err(bad(&ids_path, "block checksum table mismatch".into()));
        }
        Some(BlockCheck::new(block_size, data_len))
    } else {
        if crc32c::crc32c(&ib[HEADER_LEN..]) != ih.body_crc {
            return Err(bad(&ids_path, "body checksum mismatch".into()));
        }
        None
    };

    Ok(IdsFile {
        map: ids,
        path: ids_path,
        sorted: sorted_usize,
        blocks,
        table_off,
    })
}

pub(super) fn payload(dir: &Path, id: u64, rows: u64) -> Result<PayloadFile> {
    let rows_usize = rows_usize(rows);
    // payload
    let payload_path = dir.join(PAYLOAD_FILE);
    let payload = open_map(&payload_path)?;
    payload.advise_random();
    let pb = payload.bytes();
    let ph = Header::decode(pb, FileKind::Payload, &payload_path)?;
    check_common(&ph, &payload_path, id, rows)?;
    // Block size 0 and an empty body: no row has a document (`EMPTY_DOC` for all).
    let payload_empty = ph.block_size == 0;
    let index_len = if payload_empty {
        0
    } else {
        rows_usize * PAYLOAD_ENTRY
    };
    let index_table = BlockCheck::block_count(BLOCK_SIZE, index_len) * 4;
    if (ph.block_size as usize != BLOCK_SIZE && !payload_empty)
        || (payload_empty && ph.body_len != 0)
        || pb.len() as u64 != HEADER_LEN as u64 + ph.body_len
        || (ph.body_len as usize) < index_len + index_table
    {
        return Err(bad(
            &payload_path,
            format!(
                "file is {} bytes, header says body of {} (block size {})",
                pb.len(),
                ph.body_len,
                ph.block_size
            ),
        ));
    }
    let blob_off = HEADER_LEN + index_len;
    let payload_table_off = pb.len() - index_table;
    if crc32c::crc32c(&pb[payload_table_off..]) != ph.body_crc {
        return Err(bad(&payload_path, "index checksum table mismatch".into()));
    }
    let blob_len = payload_table_off - blob_off;

    Ok(PayloadFile {
        map: payload,
        path: payload_path,
        blob_off,
        blob_len,
        table_off: payload_table_off,
        blocks: BlockCheck::new(BLOCK_SIZE, index_len),
        empty: payload_empty,
    })
}

/// The `codes` file of `kind`, checked: header, sizes and checksum table (the blocks are
/// checked on first touch; a RaBitQ file's preamble, which holds the centroid, now).
pub(super) fn codes(
    dir: &Path,
    id: u64,
    rows: u64,
    dim: usize,
    kind: Quantization,
) -> Result<(MappedCodes, Codec)> {
    let path = dir.join(CODES_FILE);
    let bits = match kind {
        Quantization::Int8 => 0,
        Quantization::RaBitQ4 => 4,
        Quantization::RaBitQ1 => 1,
        other => {
            return Err(bad(
                &path,
                format!("the manifest names a codes file of kind `{other}`"),
            ));
        }
    };
    let map = open_map(&path)?;
    map.advise_walked();
    let b = map.bytes();
    let file_kind = if bits == 0 {
        FileKind::Codes
    } else {
        FileKind::RaBitQCodes
    };
    let h = Header::decode(b, file_kind, &path)?;
    check_common(&h, &path, id, rows)?;
    if h.dim as usize != dim {
        return Err(bad(
            &path,
            format!("dimension {} but collection has {dim}", h.dim),
        ));
    }
    let block_size = check_block_size(&h, &path)?;
    let rows = rows_usize(rows);
    let (pre_len, row_len) = if bits == 0 {
        (0, row_bytes(dim))
    } else {
        (rabitq_preamble_len(dim), rabitq::row_len(dim, bits))
    };
    let data_len = rows
        .checked_mul(row_len)
        .and_then(|x| x.checked_add(pre_len))
        .ok_or_else(|| bad(&path, "size overflows".into()))?;
    let body_len = data_len + BlockCheck::block_count(block_size, data_len) * 4;
    if h.body_len != body_len as u64 || b.len() != HEADER_LEN + body_len {
        return Err(bad(
            &path,
            format!(
                "file is {} bytes, expected {} for {rows} rows of dimension {dim}",
                b.len(),
                HEADER_LEN + body_len
            ),
        ));
    }
    let table_off = HEADER_LEN + data_len;
    if crc32c::crc32c(&b[table_off..]) != h.body_crc {
        return Err(bad(&path, "block checksum table mismatch".into()));
    }
    let blocks = BlockCheck::new(block_size, data_len);
    let codec = if bits == 0 {
        Codec::Int8
    } else {
        let data = &b[HEADER_LEN..table_off];
        blocks.ensure(data, &b[table_off..], 0, pre_len, &path)?;
        Codec::RaBitQ(
            parse_rabitq_preamble(&data[..pre_len], dim, bits).map_err(|e| bad(&path, e))?,
        )
    };
    Ok((
        MappedCodes {
            map,
            path,
            rows,
            blocks,
            table_off,
            rows_off: pre_len,
        },
        codec,
    ))
}

/// Checks the header and length of a file whose body is decoded later; returns its length.
/// A segment file decoded on first use (fields, text). Its header is checked at open, and the
/// file stays open: a writer that removes the segment after a compaction — in this process or
/// another — does not take the bytes from a search still holding the segment.
#[derive(Debug)]
pub(super) struct LazyFile {
    pub(super) path: PathBuf,
    file: File,
    pub(super) len: u64,
}

impl LazyFile {
    pub(super) fn open(path: PathBuf, kind: FileKind, id: u64, rows: u64) -> Result<LazyFile> {
        use std::io::Read;
        let mut f = File::open(&path).at(&path)?;
        let len = f.metadata().at(&path)?.len();
        let mut head = [0u8; HEADER_LEN];
        f.read_exact(&mut head)
            .map_err(|_| Error::corruption(&path, "file too short for its header"))?;
        let h = Header::decode(&head, kind, &path)?;
        check_common(&h, &path, id, rows)?;
        if len != HEADER_LEN as u64 + h.body_len {
            return Err(Error::corruption(
                &path,
                format!("file is {len} bytes, header says body of {}", h.body_len),
            ));
        }
        Ok(LazyFile { path, file: f, len })
    }

    /// The whole file, read through the handle opened at open (positioned reads: callers on
    /// several threads do not share a cursor).
    pub(super) fn read(&self) -> Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let len = usize::try_from(self.len)
            .map_err(|_| Error::corruption(&self.path, "file too large for memory"))?;
        let mut buf = vec![0u8; len];
        self.file.read_exact_at(&mut buf, 0).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                Error::corruption(&self.path, format!("file shrank below its {len} bytes"))
            } else {
                Error::io(&self.path, e)
            }
        })?;
        Ok(buf)
    }
}

fn check_common(h: &Header, path: &Path, id: u64, rows: u64) -> Result<()> {
    if h.aux != id {
        return Err(Error::corruption(
            path,
            format!("belongs to segment {}, expected {id}", h.aux),
        ));
    }
    if h.count != rows {
        return Err(Error::corruption(
            path,
            format!("holds {} rows, manifest says {rows}", h.count),
        ));
    }
    Ok(())
}

fn open_map(path: &Path) -> Result<Mmap> {
    let f = File::open(path).at(path)?;
    Mmap::map(&f, path)
}
