//! Immutable segments: a sealed memtable, written once, then memory-mapped read-only.
//!
//! ```text
//!  seal:  memtable rows ──▶ writer.rs ──▶ seg-<id>/{vectors, codes, ids, payload, …}  (fsynced)
//!  open:  seg-<id>/… ──mmap──▶ Segment (headers and ids checked; vector, graph and
//!                                        payload-index blocks checked on first touch, blocks.rs)
//! ```
//!
//! | file | body |
//! |---|---|
//! | `vectors` | `rows × dim` f32 LE, zero-padded to 64 bytes; then one crc32c per 64 KiB block |
//! | `codes` | int8 (kind 10): per row `dim` int8 codes, the scale (f32 LE), zeros to a multiple of 64 bytes; RaBitQ (kind 11): a preamble (bits, rotation seed, centroid), then per row three f32 factors and the packed codes; then one crc32c per 64 KiB block |
//! | `ids` | ids by row `[u64; n]`; ids sorted `[u64; n]`; the row of each sorted id `[u32; n]` |
//! | `payload` | index `[(offset u64, len u32, crc32c u32); n]`; the documents (postcard); one crc32c per 64 KiB block of the index |
//!
//! Byte tables: `docs/file-format.md`.

mod open;
pub(crate) mod tombstones;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

pub(crate) use writer::{SealRow, write_segment};

use crate::error::{Error, Result};
use crate::index::fields::{FIELDS_FILE, FieldIndex};
use crate::index::hnsw::layout::{GRAPH_FILE, MappedGraph};
use crate::index::text::{LiveCache, TEXT_FILE, TextIndex};
use crate::io::blocks::BlockCheck;
use crate::io::header::{FileKind, HEADER_LEN, u32_at, u64_at};
use crate::io::mmap::Mmap;
use crate::model::id::{IdType, str_key};
use crate::model::record::EMPTY_DOC;
use crate::model::record::{Payload, StoredDoc};
use crate::vector::Vectors;
use crate::vector::quant::Quantized;

#[cfg(not(target_endian = "little"))]
compile_error!("Cairn maps little-endian f32 rows directly; big-endian targets are not supported");

pub(crate) const VECTORS_FILE: &str = "vectors";
pub(crate) const IDS_FILE: &str = "ids";
pub(crate) const PAYLOAD_FILE: &str = "payload";
pub(crate) const CODES_FILE: &str = "codes";

/// Where the int8 codes that a segment's graph walks score come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Codes {
    /// The segment's `codes` file of this kind, mapped at open (the manifest names it).
    File(crate::model::Quantization),
    /// Built on the heap on first use: a segment written before `codes` files existed, of a
    /// collection that quantizes.
    Build,
    /// None: walks score the f32 vectors (quantization `none`, or the L2 metric).
    Off,
}

impl Codes {
    /// For a segment of `config` whose manifest entry names a codes file of kind `file`, or
    /// none.
    pub(crate) fn of(
        config: &crate::model::CollectionConfig,
        file: Option<crate::model::Quantization>,
    ) -> Codes {
        if let Some(kind) = file {
            Codes::File(kind)
        } else if config.int8_codes() {
            Codes::Build
        } else {
            Codes::Off
        }
    }
}

/// Bytes of a segment's parts that are in memory: the mapped files as the kernel's page
/// tables say (`mincore`: pages read in and not evicted, shared with the page cache), heap
/// copies whole. With [`Options::memory_budget`](crate::Options#structfield.memory_budget),
/// `codes` and `graph` are meant to stay resident and `vectors` to be read only for
/// re-scoring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ResidentBytes {
    /// Quantized codes (the mapped `codes` file, or a heap copy).
    pub codes: u64,
    /// The HNSW graph file.
    pub graph: u64,
    /// The f32 vectors.
    pub vectors: u64,
    /// The ids file.
    pub ids: u64,
    /// The payload file.
    pub payload: u64,
    /// Field and text indexes decoded on the heap.
    pub indexes: u64,
}

impl ResidentBytes {
    /// The sum of the parts.
    pub fn total(&self) -> u64 {
        self.codes + self.graph + self.vectors + self.ids + self.payload + self.indexes
    }
}

impl std::ops::AddAssign for ResidentBytes {
    fn add_assign(&mut self, o: ResidentBytes) {
        self.codes += o.codes;
        self.graph += o.graph;
        self.vectors += o.vectors;
        self.ids += o.ids;
        self.payload += o.payload;
        self.indexes += o.indexes;
    }
}

/// Reads a segment's codes and graph in ahead of use and, with `lock`, locks them; a lock
/// that fails is logged, and the segment stays usable unlocked.
pub(crate) fn keep_resident(seg: &Segment, lock: bool) {
    if let Err(e) = seg.keep_resident(lock) {
        log::warn!(
            "segment {} in {}: cannot lock its codes and graph in memory ({e}); they stay \
             unlocked (raise RLIMIT_MEMLOCK, `ulimit -l`, or open without lock_memory)",
            seg.id,
            seg.dir.display()
        );
    }
}

/// Segments of at most this many floats (rows × dim) are quantized on the searching thread
/// (about 4 ms); larger ones in the background.
pub(crate) const QUANT_INLINE_FLOATS: usize = 1 << 22;

/// Size of one payload index entry.
const PAYLOAD_ENTRY: usize = 16;

/// A sealed, memory-mapped segment.
#[derive(Debug)]
pub(crate) struct Segment {
    pub id: u64,
    pub dir: PathBuf,
    pub rows: usize,
    pub dim: usize,
    vectors: Mmap,
    vectors_path: PathBuf,
    /// Length of the f32 data (without padding and checksum table).
    data_len: usize,
    /// Offset of the block checksum table in the vectors file.
    table_off: usize,
    blocks: BlockCheck,
    ids: Mmap,
    ids_path: PathBuf,
    /// Entries in the id lookup table.
    sorted: usize,
    /// The ids file's lazily checked blocks (version 2); `None`: checked whole at open.
    ids_blocks: Option<BlockCheck>,
    /// Offset of the ids file's block checksum table.
    ids_table_off: usize,
    payload: Mmap,
    graph: MappedGraph,
    payload_path: PathBuf,
    blob_off: usize,
    blob_len: usize,
    payload_table_off: usize,
    /// Lazily checked blocks of the payload index.
    payload_blocks: BlockCheck,
    /// Every row has the empty document: the payload file has no index and no documents.
    payload_empty: bool,
    fields_file: open::LazyFile,
    /// The field indexes, decoded on first use.
    fields: OnceLock<FieldIndex>,
    text_file: open::LazyFile,
    /// The inverted index of the rows' text, decoded on first use.
    text: OnceLock<TextIndex>,
    /// The text statistics' dead-row counts, kept between queries.
    text_live: LiveCache,
    /// Int8 copies of the vectors for graph walks (see [`Segment::quantized`]); `None` inside
    /// when the build failed.
    quant: OnceLock<Option<Quantized>>,
    quant_started: AtomicBool,
}

fn padded(len: usize) -> usize {
    len.div_ceil(64) * 64
}

impl Segment {
    /// Opens and checks a segment written by [`write_segment`]. `rows` and `dim` come from the
    /// manifest and must agree with the files.
    pub(crate) fn open(
        dir: &Path,
        id: u64,
        rows: u64,
        dim: usize,
        m: usize,
        codes: Codes,
    ) -> Result<Segment> {
        let rows_usize = usize::try_from(rows)
            .ok()
            .filter(|&r| r <= u32::MAX as usize)
            .ok_or_else(|| Error::corruption(dir, format!("segment row count {rows} too large")))?;
        let v = open::vectors(dir, id, rows, dim)?;
        let i = open::ids(dir, id, rows)?;
        let p = open::payload(dir, id, rows)?;
        let graph = MappedGraph::open(&dir.join(GRAPH_FILE), id, rows_usize, m)?;
        // fields and text: only the header now; the body is decoded on first use.
        let fields_file = open::LazyFile::open(dir.join(FIELDS_FILE), FileKind::Fields, id, rows)?;
        let text_file = open::LazyFile::open(dir.join(TEXT_FILE), FileKind::Text, id, rows)?;
        let quant = OnceLock::new();
        match codes {
            Codes::File(kind) => {
                let (mapped, codec) = open::codes(dir, id, rows, dim, kind)?;
                let _ = quant.set(Some(Quantized::mapped(dim, mapped, codec)));
            }
            Codes::Off => {
                let _ = quant.set(None);
            }
            Codes::Build => {}
        }

        let seg = Segment {
            id,
            dir: dir.to_owned(),
            rows: rows_usize,
            dim,
            blocks: v.blocks,
            vectors: v.map,
            vectors_path: v.path,
            data_len: v.data_len,
            table_off: v.table_off,
            ids: i.map,
            ids_path: i.path,
            sorted: i.sorted,
            ids_blocks: i.blocks,
            ids_table_off: i.table_off,
            payload: p.map,
            payload_path: p.path,
            blob_off: p.blob_off,
            blob_len: p.blob_len,
            payload_table_off: p.table_off,
            payload_blocks: p.blocks,
            payload_empty: p.empty,
            graph,
            fields_file,
            fields: OnceLock::new(),
            text_file,
            text: OnceLock::new(),
            text_live: LiveCache::default(),
            quant,
            quant_started: AtomicBool::new(codes != Codes::Build),
        };
        // A version 1 ids file has one checksum, checked above: its table is checked whole
        // now. A version 2 file is checked block by block as lookups reach it.
        if seg.ids_blocks.is_none() {
            seg.check_ids()?;
        }
        Ok(seg)
    }

    /// The ids table must be a bijection: sorted ids strictly ascending, each naming a row
    /// that carries that id.
    fn check_ids(&self) -> Result<()> {
        let mut prev: Option<u64> = None;
        for i in 0..self.sorted {
            let id = self.sorted_id(i)?;
            let row = self.sorted_row(i)?;
            if prev.is_some_and(|p| p >= id) {
                return Err(Error::corruption(
                    &self.ids_path,
                    format!("sorted ids out of order at {i}"),
                ));
            }
            if row >= self.rows || self.id_at(row)? != id {
                return Err(self.wrong_row(i));
            }
            prev = Some(id);
        }
        Ok(())
    }

    fn wrong_row(&self, i: usize) -> Error {
        Error::corruption(
            &self.ids_path,
            format!("sorted entry {i} names a wrong row"),
        )
    }

    /// Checks (once) the blocks of the ids file holding bytes `start..end` of its body.
    #[inline]
    fn ids_ensure(&self, start: usize, end: usize) -> Result<()> {
        if let Some(b) = &self.ids_blocks {
            let ib = self.ids.bytes();
            b.ensure(
                &ib[HEADER_LEN..self.ids_table_off],
                &ib[self.ids_table_off..],
                start,
                end,
                &self.ids_path,
            )?;
        }
        Ok(())
    }

    /// The u64 at byte `off` of the ids file's body, its block checked.
    #[inline]
    fn ids_u64(&self, off: usize) -> Result<u64> {
        self.ids_ensure(off, off + 8)?;
        Ok(u64_at(&self.ids.bytes()[HEADER_LEN..], off))
    }

    /// The id of `row` (`row < rows`). Its block of the ids file is checked on first touch:
    /// a damaged block is an error, never another id.
    #[inline]
    pub(crate) fn id_at(&self, row: usize) -> Result<u64> {
        debug_assert!(row < self.rows);
        self.ids_u64(8 + row * 8)
    }

    fn sorted_id(&self, i: usize) -> Result<u64> {
        self.ids_u64(8 + (self.rows + i) * 8)
    }

    fn sorted_row(&self, i: usize) -> Result<usize> {
        let off = 8 + (self.rows + self.sorted) * 8 + i * 4;
        self.ids_ensure(off, off + 4)?;
        Ok(u32_at(&self.ids.bytes()[HEADER_LEN..], off) as usize)
    }

    /// Entries of the id lookup table: live rows at seal time, by ascending id.
    pub(crate) fn sorted_len(&self) -> usize {
        self.sorted
    }

    /// Entry `i` of the id lookup table: an id and its row (`i < sorted_len()`), checked to
    /// name a row that carries the id.
    pub(crate) fn sorted_entry(&self, i: usize) -> Result<(u64, u32)> {
        let (id, row) = (self.sorted_id(i)?, self.sorted_row(i)?);
        if row >= self.rows || self.id_at(row)? != id {
            return Err(self.wrong_row(i));
        }
        Ok((id, row as u32))
    }

    /// The first entry of the id lookup table whose id is greater than `id`.
    pub(crate) fn sorted_after(&self, id: u64) -> Result<usize> {
        let (mut lo, mut hi) = (0usize, self.sorted);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.sorted_id(mid)? <= id {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }

    /// The row holding `id`, if any. Rows that were dead when the segment was sealed are not
    /// in the lookup table; rows deleted later are (the caller checks the tombstones). The
    /// blocks a lookup reads are checked on first touch, and the row found must carry `id`.
    pub(crate) fn find(&self, id: u64) -> Result<Option<usize>> {
        let (mut lo, mut hi) = (0usize, self.sorted);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.sorted_id(mid)?.cmp(&id) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => {
                    let row = self.sorted_row(mid)?;
                    if row >= self.rows || self.id_at(row)? != id {
                        return Err(self.wrong_row(mid));
                    }
                    return Ok(Some(row));
                }
            }
        }
        Ok(None)
    }

    /// The vectors of rows `start..end`, after checking the checksums of the blocks they lie in.
    pub(crate) fn vectors(&self, start: usize, end: usize) -> Result<&[f32]> {
        debug_assert!(start <= end && end <= self.rows);
        let vb = self.vectors.bytes();
        let data = &vb[HEADER_LEN..HEADER_LEN + padded(self.data_len)];
        let table = &vb[self.table_off..];
        let (s, e) = (start * self.dim * 4, end * self.dim * 4);
        self.blocks.ensure(data, table, s, e, &self.vectors_path)?;
        bytemuck::try_cast_slice(&data[s..e])
            .map_err(|_| Error::corruption(&self.vectors_path, "vector data is misaligned"))
    }

    /// The int8 copy of the vectors for graph walks: the mapped `codes` file, or (a segment
    /// written before those existed) a heap copy once built. The first call builds that: on the calling thread when the segment is small (at most
    /// [`QUANT_INLINE_FLOATS`] floats, a few milliseconds), otherwise on a background thread
    /// while walks keep using the f32 vectors, so opening a large segment and answering its first
    /// query stays fast. A build that fails (a corrupted vector block) is not retried; the f32
    /// path reports the corruption.
    pub(crate) fn quantized(self: &Arc<Self>) -> Option<&Quantized> {
        if let Some(q) = self.quant.get() {
            return q.as_ref();
        }
        if self.quant_started.swap(true, Ordering::AcqRel) {
            return None;
        }
        if self.rows * self.dim <= QUANT_INLINE_FLOATS {
            self.build_quantized();
            return self.quant.get().and_then(Option::as_ref);
        }
        let seg = Arc::clone(self);
        rayon::spawn(move || seg.build_quantized());
        None
    }

    /// Builds the int8 copy now (or waits for a build in progress); see [`Segment::quantized`].
    pub(crate) fn build_quantized(&self) {
        self.quant_started.store(true, Ordering::Release);
        self.quant
            .get_or_init(|| Quantized::build(self.dim, self.rows, |s, e| self.vectors(s, e)).ok());
    }

    /// The index entry of `row` (`row < rows`): its block checked, its range validated.
    fn payload_entry(&self, row: usize) -> Result<(usize, usize, u32)> {
        let pb = self.payload.bytes();
        let s = row * PAYLOAD_ENTRY;
        self.payload_blocks.ensure(
            &pb[HEADER_LEN..self.blob_off],
            &pb[self.payload_table_off..],
            s,
            s + PAYLOAD_ENTRY,
            &self.payload_path,
        )?;
        let b = &pb[HEADER_LEN + s..];
        let (off, len, crc) = (u64_at(b, 0), u64::from(u32_at(b, 8)), u32_at(b, 12));
        match off.checked_add(len) {
            Some(end) if end <= self.blob_len as u64 => Ok((off as usize, len as usize, crc)),
            _ => Err(Error::corruption(
                &self.payload_path,
                format!(
                    "row {row}: document at {off}+{len} lies outside the {}-byte data",
                    self.blob_len
                ),
            )),
        }
    }

    /// The encoded document of `row`, checked against its checksum.
    pub(crate) fn doc_bytes(&self, row: usize) -> Result<&[u8]> {
        if self.payload_empty {
            return Ok(EMPTY_DOC);
        }
        let (off, len, crc) = self.payload_entry(row)?;
        let bytes = &self.payload.bytes()[self.blob_off + off..self.blob_off + off + len];
        if crc32c::crc32c(bytes) != crc {
            return Err(Error::corruption(
                &self.payload_path,
                format!("checksum mismatch in the document of row {row}"),
            ));
        }
        Ok(bytes)
    }

    /// The text and payload of `row`, checked against its checksum.
    pub(crate) fn doc(&self, row: usize) -> Result<(Option<String>, Payload)> {
        let bytes = self.doc_bytes(row)?;
        StoredDoc::decode(bytes).ok_or_else(|| {
            Error::corruption(
                &self.payload_path,
                format!("undecodable document in row {row}"),
            )
        })
    }

    /// The string id that the document of `row` starts with (collections of string ids).
    /// It must be the string whose key the row carries: a row that names another record is
    /// corrupt (checksums protect the bytes, this the meaning).
    pub(crate) fn doc_id(&self, row: usize) -> Result<String> {
        let key = self.id_at(row)?;
        match StoredDoc::id(self.doc_bytes(row)?) {
            Some(Some(id)) if str_key(id) == key => Ok(id.to_owned()),
            Some(Some(id)) => Err(Error::corruption(
                &self.payload_path,
                format!(
                    "row {row}: the string id {:?} is not the one of the row's key {key}",
                    &id[..id.floor_char_boundary(64)],
                ),
            )),
            Some(None) => Err(Error::corruption(
                &self.payload_path,
                format!("the document of row {row} has no string id"),
            )),
            None => Err(Error::corruption(
                &self.payload_path,
                format!("undecodable string id in the document of row {row}"),
            )),
        }
    }

    /// Checks everything that opening did not: every vector block and every document.
    pub(crate) fn verify_all(&self, id_type: IdType) -> Result<()> {
        if let Some(b) = &self.ids_blocks {
            let ib = self.ids.bytes();
            b.ensure_all(
                &ib[HEADER_LEN..self.ids_table_off],
                &ib[self.ids_table_off..],
                &self.ids_path,
            )?;
        }
        self.check_ids()?;
        let vb = self.vectors.bytes();
        self.blocks.ensure_all(
            &vb[HEADER_LEN..HEADER_LEN + padded(self.data_len)],
            &vb[self.table_off..],
            &self.vectors_path,
        )?;
        for row in 0..self.rows {
            self.doc(row)?;
            // A string id must be the one whose key the row carries; an integer id has none.
            StoredDoc::check_id(id_type, self.id_at(row)?, self.doc_bytes(row)?).map_err(|e| {
                Error::corruption(
                    &self.payload_path,
                    format!("row {row} in a collection of {id_type} ids: {e}"),
                )
            })?;
        }
        if let Some(Some(q)) = self.quant.get() {
            q.verify_against(|s, e| self.vectors(s, e))?;
        }
        self.fields()?;
        self.text()?;
        self.graph.verify_all()
    }

    /// Where BM25 keeps the counts of this segment's dead rows between queries.
    pub(crate) fn text_live(&self) -> &LiveCache {
        &self.text_live
    }

    /// The inverted text index, read and checked on first use.
    pub(crate) fn text(&self) -> Result<&TextIndex> {
        if let Some(t) = self.text.get() {
            return Ok(t);
        }
        let path = &self.text_file.path;
        let idx = TextIndex::decode(&self.text_file.read()?, path, self.id)?;
        if idx.rows() as usize != self.rows {
            return Err(Error::corruption(
                path,
                format!("indexes {} rows, the segment has {}", idx.rows(), self.rows),
            ));
        }
        let _ = self.text.set(idx);
        Ok(self.text.get().expect("set above"))
    }

    /// The payload field indexes, read and checked on first use.
    pub(crate) fn fields(&self) -> Result<&FieldIndex> {
        if let Some(f) = self.fields.get() {
            return Ok(f);
        }
        let path = &self.fields_file.path;
        let idx = FieldIndex::decode(&self.fields_file.read()?, path, self.id, self.rows)?;
        // Another thread may have won the race with an identical index.
        let _ = self.fields.set(idx);
        Ok(self.fields.get().expect("set above"))
    }

    /// Bytes of the segment's files.
    pub(crate) fn disk_bytes(&self) -> u64 {
        (self.vectors.bytes().len() + self.ids.bytes().len() + self.payload.bytes().len()) as u64
            + self.graph.disk_bytes()
            + self.codes_file_bytes()
            + self.fields_file.len
            + self.text_file.len
    }

    /// Bytes of the memory-mapped files.
    pub(crate) fn mapped_bytes(&self) -> u64 {
        (self.vectors.bytes().len() + self.ids.bytes().len() + self.payload.bytes().len()) as u64
            + self.graph.disk_bytes()
            + self.codes_file_bytes()
    }

    /// Bytes of the mapped `codes` file (0 without one).
    pub(crate) fn codes_file_bytes(&self) -> u64 {
        self.quant
            .get()
            .and_then(Option::as_ref)
            .map_or(0, Quantized::mapped_bytes) as u64
    }

    /// Heap bytes of the decoded field and text indexes and of the int8 vectors (0 for those
    /// not built yet).
    pub(crate) fn index_heap_bytes(&self) -> u64 {
        (self.fields.get().map_or(0, FieldIndex::bytes)
            + self.text.get().map_or(0, TextIndex::heap_bytes)
            + self
                .quant
                .get()
                .and_then(Option::as_ref)
                .map_or(0, Quantized::heap_bytes)) as u64
    }

    /// Bytes a memory budget keeps resident: the mapped codes and the graph.
    pub(crate) fn pinned_bytes(&self) -> u64 {
        self.codes_file_bytes() + self.graph_bytes()
    }

    /// Reads the codes and the graph in ahead of use and, with `lock`, locks them in memory.
    /// Fails only when locking fails (the hint cannot).
    pub(crate) fn keep_resident(&self, lock: bool) -> std::io::Result<()> {
        let codes = self
            .quant
            .get()
            .and_then(Option::as_ref)
            .and_then(Quantized::mapped_file);
        for map in codes.into_iter().chain([self.graph.map()]) {
            map.advise_willneed();
            if lock {
                map.lock()?;
            }
        }
        Ok(())
    }

    /// Bytes of each part in memory now: mapped files as the page table says (`mincore`),
    /// heap copies whole.
    pub(crate) fn resident(&self) -> ResidentBytes {
        let quant = self.quant.get().and_then(Option::as_ref);
        ResidentBytes {
            codes: quant.map_or(0, |q| {
                q.mapped_file().map_or(0, Mmap::resident_bytes) + q.heap_bytes() as u64
            }),
            graph: self.graph.map().resident_bytes(),
            vectors: self.vectors.resident_bytes(),
            ids: self.ids.resident_bytes(),
            payload: self.payload.resident_bytes(),
            indexes: (self.fields.get().map_or(0, FieldIndex::bytes)
                + self.text.get().map_or(0, TextIndex::heap_bytes)) as u64,
        }
    }

    /// Bytes of the graph file.
    pub(crate) fn graph_bytes(&self) -> u64 {
        self.graph.disk_bytes()
    }

    /// The segment's HNSW graph.
    pub(crate) fn graph(&self) -> &MappedGraph {
        &self.graph
    }
}

/// Checks the header of a file that is read in full only when first needed: it must exist,
/// belong to this segment, and be as long as its header says. Returns its length.
impl Vectors for Segment {
    #[inline]
    fn vector(&self, node: u32) -> Result<&[f32]> {
        let r = node as usize;
        if r >= self.rows {
            return Err(Error::corruption(
                &self.vectors_path,
                format!("row {r} of {}", self.rows),
            ));
        }
        self.vectors(r, r + 1)
    }

    #[inline]
    fn prefetch(&self, node: u32) {
        let off = HEADER_LEN + node as usize * self.dim * 4;
        if let Some(b) = self.vectors.bytes().get(off..off + self.dim * 4) {
            crate::io::mmap::prefetch(b);
        }
    }
}
