//! Entry points for the fuzz targets in `fuzz/`; see "Fuzzing" in `docs/architecture.md`.
//!
//! This module exists only so that the fuzz targets, a separate crate, can reach the decoders
//! of Cairn's files, which are private. It is **not a stable API**: it may change or go away
//! in any release, and nothing else should use it.
//!
//! Each function takes arbitrary bytes, reads them the way the database reads its own files
//! and returns an error for anything malformed. A panic, an overflow or an out-of-bounds
//! access on any input is a bug, and that is what the fuzzer looks for. Some functions also
//! check properties that must hold for every input (re-encoding what was decoded, replaying a
//! repaired log again, ...); they panic when one fails, so that the fuzzer reports it.
//!
//! Nearly every file is checksummed, so random bytes rarely get past a checksum. Inputs
//! therefore carry flags; with [`FIX_CHECKSUMS`] the harness recomputes every checksum over
//! the bytes it was given before they are read, so that the fuzzer also reaches the code that
//! a checksum guards.

mod indexes;
mod log;
mod segment;

use std::fs;
use std::path::Path;

use roaring::RoaringBitmap;

use crate::SearchRequest;
use crate::db::Database;
use crate::error::{Error, IoContext, Result};
use crate::index::fields::{FIELDS_FILE, FieldIndex};
use crate::index::hnsw::layout::GRAPH_FILE;
use crate::index::hnsw::search::{self as hnsw_search, Links};
use crate::index::hnsw::{check, visited};
use crate::index::text::bm25::{self, Source};
use crate::index::text::{Analyzer, TEXT_FILE, TextConfig, TextIndex};
use crate::io::blocks::BLOCK_SIZE;
use crate::io::header::{FileKind, HEADER_LEN, Header, u32_at, u64_at};
use crate::log::batch::{self, decode_delete, decode_upsert};
use crate::log::recover::LogMark;
use crate::log::wal::{KIND_DELETE, KIND_SKIP, KIND_UPSERT, Wal, decode_frame};
use crate::manifest::{CollectionEntry, MANIFEST_FILE, ManifestData};
use crate::model::Quantization;
use crate::model::config::CollectionConfig;
use crate::model::filter::Filter;
use crate::model::id::{IdType, str_key};
use crate::model::record::{Payload, StoredDoc, Value};
use crate::query::filter::{Indexes, evaluate};
use crate::segment::tombstones;
use crate::segment::{CODES_FILE, Codes, IDS_FILE, PAYLOAD_FILE, Segment, VECTORS_FILE};
use crate::vector::distance::Metric;
use crate::vector::quant::{QuantScorer, rabitq_preamble_len, row_bytes};
use crate::vector::rabitq;
use crate::vector::store::Score;
use std::sync::Arc;

/// Flag bit: recompute the checksums of the input before reading it.
pub const FIX_CHECKSUMS: u8 = 1;
/// [`wal`] flag bit: also replay the frames from a log file with the log's own code.
pub const WAL_FILE: u8 = 2;
/// [`wal`] flag bit: also open a database whose log holds the frames (replay into a
/// collection, then search and verify it). The collection has id 1, dimension
/// `1 + (flags >> 4 & 3)` and metric `flags >> 6` (0 cosine, 1 dot, else L2).
pub const WAL_DATABASE: u8 = 4;
/// [`wal`] flag bit: the database's collection has string ids (with [`WAL_DATABASE`]).
pub const WAL_STR_IDS: u8 = 8;
/// [`segment`] flag bit: the segment belongs to a collection of string ids (its documents
/// start with the ids of their rows' keys).
pub const SEGMENT_STR_IDS: u8 = 8;
/// [`manifest`] flag bit: also open a database with the manifest, when it decodes.
pub const MANIFEST_DATABASE: u8 = 2;

/// A directory under the system's temporary directory, removed when dropped (the library
/// does not depend on `tempfile`).
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn tempdir() -> Result<TempDir> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let p = std::env::temp_dir().join(format!("cairn-fuzz-{}-{n}", std::process::id()));
    let _ = fs::remove_dir_all(&p);
    fs::create_dir_all(&p).at(&p)?;
    Ok(TempDir(p))
}

fn put_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

/// A file of `kind` made of a correct header and `body`, as the writers make it.
fn with_header(kind: FileKind, count: u64, aux: u64, body: &[u8]) -> Vec<u8> {
    let mut h = Header::new(kind);
    h.count = count;
    h.aux = aux;
    h.body_len = body.len() as u64;
    h.body_crc = crc32c::crc32c(body);
    let mut out = h.encode().to_vec();
    out.extend_from_slice(body);
    out
}

/// Recomputes the header checksum.
fn fix_header(file: &mut [u8]) {
    if file.len() >= HEADER_LEN {
        let crc = crc32c::crc32c(&file[..60]);
        put_u32(file, 60, crc);
    }
}

/// Sets body length and body checksum of a file whose body is one checksummed unit (ids,
/// fields, text, tombstones), then the header checksum.
fn fix_whole(file: &mut [u8]) {
    if file.len() < HEADER_LEN {
        return;
    }
    let crc = crc32c::crc32c(&file[HEADER_LEN..]);
    put_u64(file, 24, (file.len() - HEADER_LEN) as u64);
    put_u32(file, 32, crc);
    fix_header(file);
}

/// Fills the block table at `table_off` with the checksums of the `data_len` bytes after the
/// header (blocks of `block_size`), then sets body length, body checksum (that of the table)
/// and header checksum: the layout of vectors, payload and graph files.
fn fix_blocked(file: &mut [u8], data_len: usize, table_off: usize, block_size: usize) {
    if file.len() < HEADER_LEN || block_size == 0 {
        return;
    }
    let table_off = table_off.clamp(HEADER_LEN, file.len());
    let (head, table) = file.split_at_mut(table_off);
    let data = &head[HEADER_LEN..head.len().min(HEADER_LEN.saturating_add(data_len))];
    for (slot, block) in table.chunks_exact_mut(4).zip(data.chunks(block_size)) {
        slot.copy_from_slice(&crc32c::crc32c(block).to_le_bytes());
    }
    let crc = crc32c::crc32c(table);
    put_u64(file, 24, (file.len() - HEADER_LEN) as u64);
    put_u32(file, 32, crc);
    fix_header(file);
}

// ---------------------------------------------------------------------------------------------
// The write-ahead log

pub use indexes::{fields, filter, text_index};
pub use log::{manifest, wal};
pub use segment::{SegmentFiles, segment};
