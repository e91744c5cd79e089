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
use crate::log::wal::{KIND_DELETE, KIND_SKIP, KIND_UPSERT, LogMark, Wal, decode_frame};
use crate::manifest::{CollectionEntry, MANIFEST_FILE, ManifestData};
use crate::model::config::CollectionConfig;
use crate::model::filter::Filter;
use crate::model::record::{Payload, StoredDoc, Value};
use crate::query::filter::{Indexes, evaluate};
use crate::segment::tombstones;
use crate::segment::{IDS_FILE, PAYLOAD_FILE, Segment, VECTORS_FILE};
use crate::vector::distance::Metric;

/// Flag bit: recompute the checksums of the input before reading it.
pub const FIX_CHECKSUMS: u8 = 1;
/// [`wal`] flag bit: also replay the frames from a log file with the log's own code.
pub const WAL_FILE: u8 = 2;
/// [`wal`] flag bit: also open a database whose log holds the frames (replay into a
/// collection, then search and verify it). The collection has id 1, dimension
/// `1 + (flags >> 4 & 3)` and metric `flags >> 6` (0 cosine, 1 dot, else L2).
pub const WAL_DATABASE: u8 = 4;
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

/// Decodes a frame body the way replay does: the batch, every vector and every document.
/// Returns whether the body is well formed.
fn decode_body(kind: u8, body: &[u8]) -> bool {
    match kind {
        KIND_UPSERT => decode_upsert(body).is_some_and(|view| {
            let mut v = Vec::new();
            view.rows.iter().all(|(_, vector, doc)| {
                v.clear();
                crate::vector::extend_f32(&mut v, vector);
                v.len() == view.dim && StoredDoc::decode(doc).is_some()
            })
        }),
        KIND_DELETE => decode_delete(body).is_some(),
        _ => false,
    }
}

/// Recomputes the checksum of every frame whose length field fits in `frames`.
fn fix_frame_checksums(frames: &mut [u8]) {
    let mut pos = 0usize;
    while frames.len() - pos >= 8 {
        let len = u32_at(frames, pos) as usize;
        let end = pos + 8 + len;
        if len < 9 || end > frames.len() {
            return;
        }
        let crc = crc32c::crc32c(&frames[pos + 8..end]);
        put_u32(frames, pos + 4, crc);
        pos = end;
    }
}

/// Frames of the log file body `frames` (first LSN 1), read as replay reads the newest file:
/// up to the first frame that is torn, corrupt or out of sequence (a skip frame moves the
/// sequence forward as replay does). Returns their count, the last LSN, and where they end.
fn replay_frames(frames: &[u8]) -> (u64, u64, usize) {
    let (mut pos, mut lsn, mut count) = (0usize, 1u64, 0u64);
    while pos < frames.len() {
        match decode_frame(&frames[pos..]) {
            Some((f, len)) if f.lsn == lsn => {
                assert!(len <= frames.len() - pos, "frame runs past the buffer");
                assert_eq!(f.body.len() + 17, len, "frame length and body disagree");
                let next = if f.kind == KIND_SKIP {
                    match f.body.try_into().map(u64::from_le_bytes) {
                        Ok(t) if t > lsn => t,
                        _ => break,
                    }
                } else {
                    decode_body(f.kind, f.body);
                    lsn + 1
                };
                pos += len;
                lsn = next;
                count += 1;
            }
            _ => break,
        }
    }
    (count, lsn - 1, pos)
}

/// The write-ahead log: `data` is a flags byte ([`FIX_CHECKSUMS`], [`WAL_FILE`],
/// [`WAL_DATABASE`]) followed by the frames of a log file (what follows its header).
///
/// Frames are decoded as replay decodes them, batch bodies and documents included. With
/// [`WAL_FILE`] they are also replayed from a real log file, which must read the same frames,
/// cut exactly the torn tail, then append after the last good frame and replay again without
/// loss.
pub fn wal(data: &[u8]) -> Result<()> {
    let Some((&flags, frames)) = data.split_first() else {
        return Ok(());
    };
    let mut frames = frames.to_vec();
    if flags & FIX_CHECKSUMS != 0 {
        fix_frame_checksums(&mut frames);
    }
    let (count, last, end) = replay_frames(&frames);
    if flags & WAL_FILE != 0 {
        wal_file(&frames, count, last, end)?;
    }
    if flags & WAL_DATABASE != 0 {
        wal_database(&frames, flags)?;
    }
    Ok(())
}

/// Writes a log file (first LSN 1) holding `frames` into a new `wal` directory of `dir`.
fn write_log(dir: &Path, frames: &[u8]) -> Result<std::path::PathBuf> {
    let wal_dir = dir.join("wal");
    fs::create_dir_all(&wal_dir).at(&wal_dir)?;
    let path = wal_dir.join(format!("{:020}.wal", 1));
    let mut h = Header::new(FileKind::Wal);
    h.aux = 1;
    let mut file = h.encode().to_vec();
    file.extend_from_slice(frames);
    fs::write(&path, &file).at(&path)?;
    Ok(wal_dir)
}

fn wal_file(frames: &[u8], count: u64, last: u64, end: usize) -> Result<()> {
    let dir = tempdir()?;
    let wal_dir = write_log(dir.path(), frames)?;
    let path = wal_dir.join(format!("{:020}.wal", 1));
    let before = fs::read(&path).at(&path)?;
    let mut seen = 0u64;
    let opened = Wal::open(&wal_dir, u64::MAX, LogMark::default(), false, |f| {
        assert!(f.lsn > seen, "replay out of order");
        seen = f.lsn;
        decode_body(f.kind, f.body);
        Ok(())
    });
    let (log, stats) = match opened {
        Ok(o) => o,
        Err(e) => {
            // A bad frame followed by an intact one: reported, and nothing changed.
            assert_eq!(
                fs::read(&path).at(&path)?,
                before,
                "a failed open changed the log"
            );
            return Err(e);
        }
    };
    assert_eq!(
        stats.frames_replayed, count,
        "the log read other frames than the decoder"
    );
    assert_eq!(
        stats.torn_tail_bytes,
        (frames.len() - end) as u64,
        "the log cut another tail than the torn one"
    );
    assert_eq!(log.last_lsn(), last);
    // Append after the last good frame; a reopen replays everything and cuts nothing.
    let body = batch::encode_delete(1, &[7]);
    let lsn = log.append(KIND_DELETE, &body)?;
    assert_eq!(lsn, last + 1);
    log.sync()?;
    drop(log);
    let mut again = 0u64;
    let (_, stats) = Wal::open(&wal_dir, u64::MAX, LogMark::default(), false, |f| {
        again += 1;
        if f.lsn == lsn {
            assert_eq!(f.body, &body[..], "the appended frame changed");
        }
        Ok(())
    })?;
    assert_eq!(
        stats.frames_replayed,
        count + 1,
        "a reopened log lost frames"
    );
    assert_eq!(stats.torn_tail_bytes, 0, "a repaired log was cut again");
    Ok(())
}

fn metric_of(bits: u8) -> Metric {
    match bits & 3 {
        0 => Metric::Cosine,
        1 => Metric::Dot,
        _ => Metric::L2,
    }
}

fn wal_database(frames: &[u8], flags: u8) -> Result<()> {
    let dir = tempdir()?;
    let db_dir = dir.path().join("db");
    fs::create_dir_all(db_dir.join("collections")).at(&db_dir)?;
    let dim = 1 + usize::from(flags >> 4 & 3);
    let mut config = CollectionConfig::new(dim, metric_of(flags >> 6));
    config.m = 4;
    config.ef_construction = 16;
    let manifest = ManifestData {
        last_lsn: 0,
        log_file: 0,
        next_collection_id: 2,
        next_segment_id: 1,
        collections: vec![CollectionEntry {
            id: 1,
            name: "c".into(),
            config,
            flushed_lsn: 0,
            segments: Vec::new(),
        }],
    };
    fs::write(db_dir.join(MANIFEST_FILE), manifest.encode()).at(&db_dir)?;
    write_log(&db_dir, frames)?;
    let db = Database::open(&db_dir)?;
    let c = db.collection("c")?;
    let hits = c.search(&SearchRequest::new(vec![0.5; dim]).k(5))?;
    for h in hits {
        c.get(h.id)?;
    }
    c.search(&SearchRequest::new(vec![0.5; dim]).k(5).text("red blue"))?;
    c.flush()?;
    db.verify()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The manifest

/// The manifest: `data` is a flags byte, then the `MANIFEST` file; with [`FIX_CHECKSUMS`] it
/// is the JSON body alone and gets a correct header. What decodes must encode to a manifest
/// that decodes to the same. With [`MANIFEST_DATABASE`] a database is also opened with it.
pub fn manifest(data: &[u8]) -> Result<()> {
    let Some((&flags, rest)) = data.split_first() else {
        return Ok(());
    };
    let bytes = if flags & FIX_CHECKSUMS != 0 {
        with_header(FileKind::Manifest, 0, 0, rest)
    } else {
        rest.to_vec()
    };
    let m = ManifestData::decode(&bytes, Path::new(MANIFEST_FILE))?;
    let again = ManifestData::decode(&m.encode(), Path::new(MANIFEST_FILE))
        .expect("a decoded manifest encodes to a valid one");
    assert_eq!(again, m, "manifest changed in a round trip");
    if flags & MANIFEST_DATABASE != 0 {
        let dir = tempdir()?;
        fs::write(dir.path().join(MANIFEST_FILE), &bytes).at(dir.path())?;
        let db = Database::open(dir.path())?;
        for name in db.collections() {
            let c = db.collection(&name)?;
            c.len();
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Segments

/// The files of a segment directory and what the manifest says about it.
#[derive(Debug, Clone, Default)]
pub struct SegmentFiles {
    /// [`FIX_CHECKSUMS`]; bits 1..=2 pick the metric of the graph search (as in [`wal`]).
    pub flags: u8,
    /// Segment id.
    pub id: u64,
    /// Rows, as the manifest says.
    pub rows: u32,
    /// The collection's dimension (1 to 65,536).
    pub dim: usize,
    /// The collection's `m` (2 to 256).
    pub m: usize,
    /// Rows the manifest says are tombstoned (when there is a tombstone file).
    pub tombstone_count: u64,
    /// The `vectors` file.
    pub vectors: Vec<u8>,
    /// The `ids` file.
    pub ids: Vec<u8>,
    /// The `payload` file.
    pub payload: Vec<u8>,
    /// The `graph` file.
    pub graph: Vec<u8>,
    /// The `fields` file.
    pub fields: Vec<u8>,
    /// The `text` file.
    pub text: Vec<u8>,
    /// The tombstone file; none when empty.
    pub tombstones: Vec<u8>,
}

/// Bytes before the files in [`SegmentFiles::to_bytes`].
const SEGMENT_PARAMS: usize = 1 + 8 + 4 + 2 + 1 + 8;

impl SegmentFiles {
    /// Reads the input of the segment target: flags u8, id u64, rows u32, dim − 1 u16,
    /// m − 2 u8, tombstone count u64 (all LE), then each file (in field order) as its length
    /// (u32 LE) and its bytes. A file cut short is empty or shortened, never an error.
    pub fn from_bytes(data: &[u8]) -> SegmentFiles {
        let mut p = [0u8; SEGMENT_PARAMS];
        let n = data.len().min(SEGMENT_PARAMS);
        p[..n].copy_from_slice(&data[..n]);
        let mut rest = &data[n..];
        let mut file = || {
            if rest.len() < 4 {
                rest = &[];
                return Vec::new();
            }
            let len = (u32_at(rest, 0) as usize).min(rest.len() - 4);
            let f = rest[4..4 + len].to_vec();
            rest = &rest[4 + len..];
            f
        };
        SegmentFiles {
            flags: p[0],
            id: u64_at(&p, 1),
            rows: u32_at(&p, 9),
            dim: 1 + usize::from(u16::from_le_bytes([p[13], p[14]])),
            m: 2 + usize::from(p[15]) % 255,
            tombstone_count: u64_at(&p, 16),
            vectors: file(),
            ids: file(),
            payload: file(),
            graph: file(),
            fields: file(),
            text: file(),
            tombstones: file(),
        }
    }

    /// The inverse of [`from_bytes`](Self::from_bytes), for seed inputs.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![self.flags];
        out.extend_from_slice(&self.id.to_le_bytes());
        out.extend_from_slice(&self.rows.to_le_bytes());
        out.extend_from_slice(&(self.dim.saturating_sub(1) as u16).to_le_bytes());
        out.push(self.m.saturating_sub(2) as u8);
        out.extend_from_slice(&self.tombstone_count.to_le_bytes());
        for f in self.files() {
            out.extend_from_slice(&(f.len() as u32).to_le_bytes());
            out.extend_from_slice(f);
        }
        out
    }

    fn files(&self) -> [&Vec<u8>; 7] {
        [
            &self.vectors,
            &self.ids,
            &self.payload,
            &self.graph,
            &self.fields,
            &self.text,
            &self.tombstones,
        ]
    }

    /// Recomputes every checksum, given the rows and dimension of the segment.
    fn fix_checksums(&mut self) {
        let (rows, dim) = (self.rows as usize, self.dim);
        // vectors: rows × dim f32, padded to 64, then a block table.
        let block = self
            .vectors
            .get(36..40)
            .map_or(0, |b| u32_at(b, 0) as usize);
        if let Some(data_len) = rows
            .checked_mul(dim)
            .and_then(|x| x.checked_mul(4))
            .and_then(|x| x.checked_next_multiple_of(64))
            && block.is_power_of_two()
        {
            fix_blocked(
                &mut self.vectors,
                data_len,
                HEADER_LEN.saturating_add(data_len),
                block,
            );
        }
        fix_whole(&mut self.ids);
        // payload: each document's checksum, then the index's block table at the end.
        let index_len = rows * 16;
        let table_len = index_len.div_ceil(BLOCK_SIZE) * 4;
        let p = &mut self.payload;
        if p.len() >= HEADER_LEN + index_len + table_len {
            let blob = HEADER_LEN + index_len..p.len() - table_len;
            for row in 0..rows {
                let e = HEADER_LEN + row * 16;
                let (off, len) = (u64_at(p, e), u64::from(u32_at(p, e + 8)));
                if let Some(end) = off.checked_add(len)
                    && end <= blob.len() as u64
                {
                    let doc = &p[blob.start + off as usize..blob.start + end as usize];
                    let crc = crc32c::crc32c(doc);
                    put_u32(p, e + 12, crc);
                }
            }
            let table_off = p.len() - table_len;
            fix_blocked(p, index_len, table_off, BLOCK_SIZE);
        }
        // graph: meta, level-0 offsets and lists, levels, upper offsets, upper table, padded
        // to 64; block table.
        let g = &self.graph;
        if g.len() >= HEADER_LEN + 64 {
            let upper = u64_at(g, HEADER_LEN + 16) as usize;
            let lists = u64_at(g, HEADER_LEN + 32) as usize;
            let width = u32_at(g, HEADER_LEN + 28) as usize;
            let end = rows
                .checked_add(1)
                .and_then(|x| x.checked_mul(width))
                .and_then(|x| x.checked_add(lists.checked_next_multiple_of(4)?))
                .and_then(|x| x.checked_add(64 + rows.next_multiple_of(4) + 4 * rows))
                .and_then(|x| x.checked_add(upper.checked_mul(4)?))
                .and_then(|x| x.checked_next_multiple_of(64));
            if let Some(body) = end {
                fix_blocked(
                    &mut self.graph,
                    body,
                    HEADER_LEN.saturating_add(body),
                    BLOCK_SIZE,
                );
            }
        }
        fix_whole(&mut self.fields);
        fix_whole(&mut self.text);
        fix_whole(&mut self.tombstones);
    }
}

/// Keeps the first error of a series of independent checks.
#[derive(Default)]
struct FirstError(Option<Error>);

impl FirstError {
    fn keep<T>(&mut self, r: Result<T>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.0.get_or_insert(e);
                None
            }
        }
    }

    fn result(self) -> Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

/// Rows the segment reads are limited to this many, so that a large fuzzed row count costs
/// no more than a small one.
const MAX_ROWS_READ: usize = 256;

/// A segment: the files are written into a segment directory, which is opened as the
/// database opens it and then read in every way the database reads one: ids and the id
/// lookup, vectors, documents, the graph (checked and searched), field and text indexes
/// (filters and BM25), tombstones, and a full verify. Every id the lookup finds must name a
/// row that carries it.
pub fn segment(files: &SegmentFiles) -> Result<()> {
    let mut files = files.clone();
    if files.flags & FIX_CHECKSUMS != 0 {
        files.fix_checksums();
    }
    let dir = tempdir()?;
    let seg_dir = dir.path().join("seg");
    fs::create_dir(&seg_dir).at(&seg_dir)?;
    for (name, bytes) in [
        (VECTORS_FILE, &files.vectors),
        (IDS_FILE, &files.ids),
        (PAYLOAD_FILE, &files.payload),
        (GRAPH_FILE, &files.graph),
        (FIELDS_FILE, &files.fields),
        (TEXT_FILE, &files.text),
    ] {
        let path = seg_dir.join(name);
        fs::write(&path, bytes).at(&path)?;
    }
    let rows = u64::from(files.rows);
    let mut errors = FirstError::default();
    if !files.tombstones.is_empty() {
        let path = dir.path().join("seg.del");
        errors.keep(tombstones::decode(
            &files.tombstones,
            &path,
            files.id,
            rows,
            files.tombstone_count,
        ));
    }
    let seg = Segment::open(&seg_dir, files.id, rows, files.dim, files.m)?;
    assert_eq!(seg.rows, files.rows as usize);
    let n = seg.rows.min(MAX_ROWS_READ);
    for row in 0..n {
        let id = seg.id_at(row);
        if let Some(found) = seg.find(id) {
            assert!(
                found < seg.rows,
                "id lookup names row {found} of {}",
                seg.rows
            );
            assert_eq!(
                seg.id_at(found),
                id,
                "id lookup names a row with another id"
            );
        }
        errors.keep(seg.vectors(row, row + 1));
        errors.keep(seg.doc(row));
    }
    errors.keep(seg.vectors(0, n));

    // The graph: its invariants, then a search from a row's vector.
    let metric = metric_of(files.flags >> 1);
    errors.keep(check::check(seg.graph(), files.m, |_| true));
    let query = match seg.vectors(0, n.min(1)) {
        Ok(v) if !v.is_empty() => v.to_vec(),
        _ => vec![0.5; seg.dim],
    };
    errors.keep(visited::with_visited(seg.rows, |v| {
        hnsw_search::search(seg.graph(), &seg, metric, &query, 5, 16, v, |r| r % 2 == 0)
    }));
    let mut buf = Vec::new();
    for node in 0..n as u32 {
        if let Some(level) = errors.keep(seg.graph().level(node)) {
            for l in 0..=level {
                errors.keep(seg.graph().neighbors(node, l, &mut buf));
            }
        }
    }

    if let Some(fields) = errors.keep(seg.fields()) {
        let text = errors.keep(seg.text());
        exercise_indexes(fields, text, seg.rows as u32);
    } else if let Some(text) = errors.keep(seg.text()) {
        exercise_text(text);
    }
    errors.keep(seg.verify_all());
    errors.result()
}

// ---------------------------------------------------------------------------------------------
// Field and text indexes

/// Filters over the field names and values of the seeds.
fn sample_filters() -> Vec<Filter> {
    vec![
        Filter::eq("lang", "en"),
        Filter::eq("year", 2021),
        Filter::eq("score", 0.5),
        Filter::eq("draft", true),
        Filter::any_of("tags", ["a", "b"]),
        Filter::range("year").gte(2000).lt(2022),
        Filter::range("score").gt(-1.0),
        Filter::exists("tags").not(),
        Filter::has_term("red").or(Filter::eq("lang", "de")),
    ]
}

/// One source's indexes, as a filter sees them.
struct FuzzIndexes<'a> {
    rows: u32,
    fields: &'a FieldIndex,
    text: &'a TextIndex,
}

impl Indexes for FuzzIndexes<'_> {
    type Fields<'b>
        = &'b FieldIndex
    where
        Self: 'b;
    type Text<'b>
        = &'b TextIndex
    where
        Self: 'b;
    fn rows(&self) -> usize {
        self.rows as usize
    }
    fn fields(&self) -> Result<&FieldIndex> {
        Ok(self.fields)
    }
    fn text(&self) -> Result<&TextIndex> {
        Ok(self.text)
    }
}

fn exercise_indexes(fields: &FieldIndex, text: Option<&TextIndex>, rows: u32) {
    let empty = TextIndex::new();
    let analyzer = Analyzer::new(&TextConfig::default());
    let idx = FuzzIndexes {
        rows,
        fields,
        text: text.unwrap_or(&empty),
    };
    for f in sample_filters() {
        let _ = evaluate(&f, &idx, &analyzer);
    }
    if let Some(text) = text {
        exercise_text(text);
    }
}

fn exercise_text(text: &TextIndex) {
    let mut terms: Vec<String> = text.terms().take(8).map(|(t, _)| t.to_owned()).collect();
    terms.push("red".into());
    for t in &terms {
        if let Some(p) = text.postings(t) {
            for &(row, _) in p.as_slice().iter().take(8) {
                assert!(row < text.rows(), "posting of row {row} of {}", text.rows());
                p.tf(row);
                text.doc_len(row);
            }
        }
    }
    let dead: RoaringBitmap = (0..text.rows().min(64)).step_by(3).collect();
    let sources = [Source {
        index: text,
        dead: Some(&dead),
        allow: None,
    }];
    bm25::stats(&sources, &terms);
    bm25::search_keyed(&sources, &terms, 10, |_, row| u64::from(row));
}

/// Splits an index target's input: a flags byte, then the file; with [`FIX_CHECKSUMS`] the
/// segment's row count (u32 LE) and the body, which gets a correct header for segment 1.
/// Returns the file, its segment id and its row count.
fn index_file(data: &[u8], kind: FileKind) -> Option<(Vec<u8>, u64, u64)> {
    let (&flags, rest) = data.split_first()?;
    if flags & FIX_CHECKSUMS != 0 {
        let rows = u64::from(u32_at(rest.get(..4)?, 0));
        Some((with_header(kind, rows, 1, &rest[4..]), 1, rows))
    } else {
        // Belonging to the segment is checked elsewhere: take the header's word for it.
        let (id, rows) = match rest.get(..HEADER_LEN) {
            Some(h) => (u64_at(h, 40), u64_at(h, 16)),
            None => (0, 0),
        };
        Some((rest.to_vec(), id, rows))
    }
}

/// A segment's `fields` file (input as described for [`text_index`]). What decodes must
/// answer filters, and re-encode to a file that decodes and encodes to the same bytes.
pub fn fields(data: &[u8]) -> Result<()> {
    let Some((bytes, id, rows)) = index_file(data, FileKind::Fields) else {
        return Ok(());
    };
    let rows = usize::try_from(rows).unwrap_or(usize::MAX);
    let path = Path::new("fields");
    let idx = FieldIndex::decode(&bytes, path, id, rows)?;
    exercise_indexes(&idx, None, rows as u32);
    let once = idx.clone().encode(id);
    let again = FieldIndex::decode(&once, path, id, rows)
        .expect("a decoded field index encodes to a valid file");
    assert!(
        again.encode(id) == once,
        "field index changed in a round trip"
    );
    let decoded = FieldIndex::decode(&once, path, id, rows).expect("decoded above");
    let (empty, analyzer) = (TextIndex::new(), Analyzer::new(&TextConfig::default()));
    let index = |fields| FuzzIndexes {
        rows: rows as u32,
        fields,
        text: &empty,
    };
    let (a, b) = (index(&idx), index(&decoded));
    for f in sample_filters() {
        assert_eq!(
            evaluate(&f, &a, &analyzer).ok(),
            evaluate(&f, &b, &analyzer).ok(),
            "{f}: a re-encoded index answers differently"
        );
    }
    Ok(())
}

/// A segment's `text` file: a flags byte, then the file; with [`FIX_CHECKSUMS`] the row count
/// (u32 LE) and the body, which gets a correct header. What decodes must answer BM25 queries
/// and re-encode to an equal index.
pub fn text_index(data: &[u8]) -> Result<()> {
    let Some((bytes, id, _)) = index_file(data, FileKind::Text) else {
        return Ok(());
    };
    let idx = TextIndex::decode(&bytes, Path::new("text"), id)?;
    exercise_text(&idx);
    let again = TextIndex::decode(&idx.encode(id), Path::new("text"), id)
        .expect("a decoded text index encodes to a valid file");
    assert_eq!(again, idx, "text index changed in a round trip");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Filters

/// The filter text syntax: `data` as UTF-8 (invalid input is ignored). What parses must print
/// as text that parses back to the same filter, and its index evaluation must agree with the
/// reference matcher on a few payloads.
pub fn filter(data: &[u8]) -> Result<()> {
    let Ok(text) = std::str::from_utf8(data) else {
        return Ok(());
    };
    let f = Filter::parse(text)?;
    let printed = f.to_string();
    match Filter::parse(&printed) {
        Ok(back) => assert_eq!(back, f, "{text:?} printed as {printed:?}"),
        Err(e) => panic!("{text:?} printed as {printed:?}, which does not parse: {e}"),
    }
    let payloads = sample_payloads();
    let mut fields = FieldIndex::new();
    for (row, p) in payloads.iter().enumerate() {
        fields.push(row as u32, p);
    }
    let rows = payloads.len() as u32;
    fields.set_rows(rows);
    let want: RoaringBitmap = payloads
        .iter()
        .enumerate()
        .filter(|(_, p)| f.matches(p, &|_| false))
        .map(|(i, _)| i as u32)
        .collect();
    for fields in [
        fields.clone(),
        FieldIndex::decode(&fields.encode(1), Path::new("fields"), 1, rows as usize)
            .expect("a fresh field index decodes"),
    ] {
        let (empty, analyzer) = (TextIndex::new(), Analyzer::new(&TextConfig::default()));
        let idx = FuzzIndexes {
            rows,
            fields: &fields,
            text: &empty,
        };
        assert_eq!(
            evaluate(&f, &idx, &analyzer)?,
            want,
            "{f}: index and matcher disagree"
        );
    }
    Ok(())
}

fn sample_payloads() -> Vec<Payload> {
    let mut out = Vec::new();
    for i in 0..6i64 {
        let mut p = Payload::new();
        p.insert(
            "lang".into(),
            Value::from(["en", "de", "fr"][i as usize % 3]),
        );
        p.insert("year".into(), Value::Int(2018 + i));
        if i % 2 == 0 {
            p.insert("score".into(), Value::Float(i as f64 / 4.0 - 0.5));
            p.insert(
                "tags".into(),
                Value::StrList(vec!["a".into(), format!("t{i}")]),
            );
        } else {
            p.insert("draft".into(), Value::Bool(i % 3 == 0));
            p.insert("x".into(), Value::Float(-0.0));
        }
        out.push(p);
    }
    out.push(Payload::new());
    out
}
