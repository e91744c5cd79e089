//! Writes a segment directory. Every file is complete and fsynced, and the directory entry is
//! fsynced, before the segment is named in a manifest.

use std::fs::{self, File};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

use super::{CODES_FILE, IDS_FILE, PAYLOAD_FILE, VECTORS_FILE, padded};
use crate::error::{IoContext, Result};
use crate::index::fields::{FIELDS_FILE, FieldIndex};
use crate::index::hnsw::graph::MemGraph;
use crate::index::hnsw::layout::{self, GRAPH_FILE};
use crate::index::text::{Analyzer, TEXT_FILE, TextIndex};
use crate::io::blocks::{BLOCK_SIZE, BlockCrcs, VECTOR_BLOCK_SIZE, block_crcs};
use crate::io::faults::{Op, check};
use crate::io::fsutil::{sync_dir, write_new_file};
use crate::io::header::{FileKind, HEADER_LEN, Header};
use crate::model::Quantization;
use crate::model::record::EMPTY_DOC;
use crate::model::record::StoredDoc;
use crate::vector::quant::{encode_row, rabitq_preamble, row_bytes};
use crate::vector::rabitq::{self, RaBitQ};

/// One row to seal.
pub(crate) struct SealRow<'a> {
    pub id: u64,
    pub vector: &'a [f32],
    /// The encoded `StoredDoc`.
    pub doc: &'a [u8],
    /// Dead rows (replaced or deleted in the memtable) are written so that the graph keeps
    /// its node numbering, but they are left out of the id lookup table and tombstoned.
    pub live: bool,
}

/// Writes `rows` and their graph into the new directory `dir` as segment `id`.
#[allow(clippy::too_many_arguments)] // each is one thing the files need; a struct would only rename them
pub(crate) fn write_segment(
    dir: &Path,
    id: u64,
    dim: usize,
    rows: &[SealRow<'_>],
    graph: &MemGraph,
    order: &[u32],
    analyzer: &Analyzer,
    codes: Option<Quantization>,
) -> Result<()> {
    check(Op::Create, dir).at(dir)?;
    fs::create_dir(dir).at(dir)?;
    write_vectors(&dir.join(VECTORS_FILE), id, dim, rows)?;
    match codes {
        Some(Quantization::Int8) => write_codes(&dir.join(CODES_FILE), id, dim, rows)?,
        Some(Quantization::RaBitQ4) => write_rabitq(&dir.join(CODES_FILE), id, dim, rows, 4)?,
        Some(Quantization::RaBitQ1) => write_rabitq(&dir.join(CODES_FILE), id, dim, rows, 1)?,
        _ => {}
    }
    write_ids(&dir.join(IDS_FILE), id, rows)?;
    write_payload(&dir.join(PAYLOAD_FILE), id, rows)?;
    write_indexes(dir, id, rows, analyzer)?;
    layout::write(&dir.join(GRAPH_FILE), id, graph, order)?;
    sync_dir(dir)?;
    if let Some(parent) = dir.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

/// Writes the f32 vectors, streaming (one row at a time to the file and to the block
/// checksums), in check blocks of [`VECTOR_BLOCK_SIZE`].
fn write_vectors(path: &Path, id: u64, dim: usize, rows: &[SealRow<'_>]) -> Result<()> {
    let data_len = rows.len() * dim * 4;
    let mut h = Header::new(FileKind::Vectors);
    h.dim = dim as u32;
    h.count = rows.len() as u64;
    h.block_size = VECTOR_BLOCK_SIZE as u32;
    h.aux = id;
    write_streamed(path, |w| {
        let mut crcs = BlockCrcs::new(VECTOR_BLOCK_SIZE);
        let mut row = Vec::with_capacity(dim * 4);
        for r in rows {
            debug_assert_eq!(r.vector.len(), dim);
            row.clear();
            row.extend(r.vector.iter().flat_map(|x| x.to_le_bytes()));
            crcs.update(&row);
            w.write_all(&row)?;
        }
        let pad = vec![0u8; padded(data_len) - data_len];
        crcs.update(&pad);
        w.write_all(&pad)?;
        let table = crcs.finish();
        w.write_all(&table)?;
        h.body_len = (padded(data_len) + table.len()) as u64;
        h.body_crc = crc32c::crc32c(&table);
        Ok(h)
    })
}

/// Writes the int8 codes of the rows (`vector/quant.rs` row layout), streaming: one row's
/// bytes at a time go to the file and to the block checksums.
fn write_codes(path: &Path, id: u64, dim: usize, rows: &[SealRow<'_>]) -> Result<()> {
    let row_len = row_bytes(dim);
    let mut h = Header::new(FileKind::Codes);
    h.dim = dim as u32;
    h.count = rows.len() as u64;
    h.block_size = BLOCK_SIZE as u32;
    h.aux = id;
    write_streamed(path, |w| {
        let mut crcs = BlockCrcs::new(BLOCK_SIZE);
        let mut row = vec![0u8; row_len];
        for r in rows {
            debug_assert_eq!(r.vector.len(), dim);
            encode_row(r.vector, &mut row);
            crcs.update(&row);
            w.write_all(&row)?;
        }
        let table = crcs.finish();
        w.write_all(&table)?;
        h.body_len = (rows.len() * row_len + table.len()) as u64;
        h.body_crc = crc32c::crc32c(&table);
        Ok(h)
    })
}

/// Writes the RaBitQ codes of the rows (`vector/rabitq.rs`): the preamble with the rows'
/// centroid (a first pass over the rows), then each row's factors and codes, streaming.
fn write_rabitq(path: &Path, id: u64, dim: usize, rows: &[SealRow<'_>], bits: u8) -> Result<()> {
    let centroid = rabitq::centroid(dim, rows.iter().map(|r| r.vector));
    let rq = RaBitQ::new(dim, bits, rabitq::DEFAULT_SEED, centroid);
    let row_len = rq.row_len();
    let pre = rabitq_preamble(&rq);
    let mut h = Header::new(FileKind::RaBitQCodes);
    h.dim = dim as u32;
    h.count = rows.len() as u64;
    h.block_size = BLOCK_SIZE as u32;
    h.aux = id;
    write_streamed(path, |w| {
        let mut crcs = BlockCrcs::new(BLOCK_SIZE);
        crcs.update(&pre);
        w.write_all(&pre)?;
        let mut row = vec![0u8; row_len];
        let mut scratch = rabitq::Scratch::default();
        for r in rows {
            debug_assert_eq!(r.vector.len(), dim);
            rq.encode(r.vector, &mut row, &mut scratch);
            crcs.update(&row);
            w.write_all(&row)?;
        }
        let table = crcs.finish();
        w.write_all(&table)?;
        h.body_len = (pre.len() + rows.len() * row_len + table.len()) as u64;
        h.body_crc = crc32c::crc32c(&table);
        Ok(h)
    })
}

/// Writes the `ids` file (version 2), streaming: the row-order ids, then the lookup table
/// of the live rows by id (sorted in memory: 12 bytes a live row), then one crc32c per
/// [`VECTOR_BLOCK_SIZE`] block of all of it, so that a reader checks only the blocks it
/// touches (a lookup touches about log₂(rows) / 9 of them).
fn write_ids(path: &Path, id: u64, rows: &[SealRow<'_>]) -> Result<()> {
    let n = rows.len();
    let mut sorted: Vec<(u64, u32)> = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r.live)
        .map(|(i, r)| (r.id, i as u32))
        .collect();
    sorted.sort_unstable();
    let mut h = Header::new(FileKind::Ids);
    h.count = n as u64;
    h.block_size = VECTOR_BLOCK_SIZE as u32;
    h.aux = id;
    write_streamed(path, |w| {
        let mut crcs = BlockCrcs::new(VECTOR_BLOCK_SIZE);
        let mut put = |w: &mut dyn Write, bytes: &[u8]| -> std::io::Result<()> {
            crcs.update(bytes);
            w.write_all(bytes)
        };
        put(w, &(sorted.len() as u64).to_le_bytes())?;
        for r in rows {
            put(w, &r.id.to_le_bytes())?;
        }
        for (id, _) in &sorted {
            put(w, &id.to_le_bytes())?;
        }
        for (_, row) in &sorted {
            put(w, &row.to_le_bytes())?;
        }
        let table = crcs.finish();
        w.write_all(&table)?;
        h.body_len = (8 + n * 8 + sorted.len() * 12 + table.len()) as u64;
        h.body_crc = crc32c::crc32c(&table);
        Ok(h)
    })
}

/// Writes the `fields` and `text` files: the payload field indexes and the inverted index of
/// the rows' text, both in segment row order.
fn write_indexes(dir: &Path, id: u64, rows: &[SealRow<'_>], analyzer: &Analyzer) -> Result<()> {
    let mut fields = FieldIndex::new();
    let mut text = TextIndex::new();
    for (row, r) in rows.iter().enumerate() {
        let row = row as u32;
        match StoredDoc::decode_ref(r.doc) {
            Some((t, payload)) => {
                fields.push(row, &payload);
                if let Some(t) = t {
                    text.push_text(row, &t, analyzer);
                }
            }
            None => fields.set_rows(row + 1),
        }
    }
    fields.set_rows(rows.len() as u32);
    text.extend_rows(rows.len() as u32);
    write_new_file(&dir.join(FIELDS_FILE), &[&fields.encode(id)])?;
    write_new_file(&dir.join(TEXT_FILE), &[&text.encode(id)])
}

fn write_payload(path: &Path, id: u64, rows: &[SealRow<'_>]) -> Result<()> {
    if rows.iter().all(|r| r.doc == EMPTY_DOC) {
        // No row has text or fields: the header alone (block size 0, empty body) says so.
        let mut h = Header::new(FileKind::Payload);
        h.count = rows.len() as u64;
        h.aux = id;
        h.body_crc = crc32c::crc32c(&[]);
        return write_new_file(path, &[&h.encode()]);
    }
    let mut index = Vec::with_capacity(rows.len() * 16);
    let mut off = 0u64;
    for r in rows {
        index.extend_from_slice(&off.to_le_bytes());
        index.extend_from_slice(&(r.doc.len() as u32).to_le_bytes());
        index.extend_from_slice(&crc32c::crc32c(r.doc).to_le_bytes());
        off += r.doc.len() as u64;
    }
    // The index is checked block by block on first use (like vectors): its table goes last.
    let table = block_crcs(&index, BLOCK_SIZE);
    let mut h = Header::new(FileKind::Payload);
    h.count = rows.len() as u64;
    h.body_len = index.len() as u64 + off + table.len() as u64;
    h.body_crc = crc32c::crc32c(&table);
    h.block_size = BLOCK_SIZE as u32;
    h.aux = id;
    write_streamed(path, |w| {
        w.write_all(&index)?;
        for r in rows {
            w.write_all(r.doc)?;
        }
        w.write_all(&table)?;
        Ok(h)
    })
}

/// Writes a new file whose body is streamed: room for the header, the body `body` writes
/// (returning the header that describes it), then the header in its place, and an fsync.
fn write_streamed(
    path: &Path,
    body: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<Header>,
) -> Result<()> {
    check(Op::Create, path).at(path)?;
    let f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .at(path)?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    check(Op::Write, path).at(path)?;
    w.write_all(&[0u8; HEADER_LEN]).at(path)?;
    let h = body(&mut w).at(path)?;
    let mut f: File = w.into_inner().map_err(|e| e.into_error()).at(path)?;
    f.seek(SeekFrom::Start(0)).at(path)?;
    f.write_all(&h.encode()).at(path)?;
    check(Op::Sync, path).synced_at(path)?;
    f.sync_all().synced_at(path)
}
