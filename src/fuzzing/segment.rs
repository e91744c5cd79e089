//! A segment's files, opened and read the way a search reads them.

use super::indexes::{exercise_indexes, exercise_text};
use super::log::metric_of;
#[allow(unused_imports)]
use super::*;

/// The files of a segment directory and what the manifest says about it.
#[derive(Debug, Clone, Default)]
pub struct SegmentFiles {
    /// [`FIX_CHECKSUMS`]; bits 1..=2 pick the metric of the graph search (as in [`wal`]);
    /// [`SEGMENT_STR_IDS`].
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
    /// The `codes` file; when empty the segment has none (the manifest names none).
    pub codes: Vec<u8>,
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
            codes: file(),
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

    fn files(&self) -> [&Vec<u8>; 8] {
        [
            &self.vectors,
            &self.ids,
            &self.payload,
            &self.graph,
            &self.fields,
            &self.text,
            &self.tombstones,
            &self.codes,
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
        // ids: version 2, a block table after `s`, the row ids and the sorted table; version
        // 1, one checksum over the body.
        let ids_version = self
            .ids
            .get(8..10)
            .map_or(0, |b| u16::from_le_bytes([b[0], b[1]]));
        if ids_version >= 2 {
            let block = self.ids.get(36..40).map_or(0, |b| u32_at(b, 0) as usize);
            let data_len = self
                .ids
                .get(HEADER_LEN..HEADER_LEN + 8)
                .and_then(|b| usize::try_from(u64_at(b, 0)).ok())
                .and_then(|s| s.checked_mul(12))
                .and_then(|x| x.checked_add(rows.checked_mul(8)?))
                .and_then(|x| x.checked_add(8));
            if let Some(data_len) = data_len
                && block.is_power_of_two()
            {
                fix_blocked(
                    &mut self.ids,
                    data_len,
                    HEADER_LEN.saturating_add(data_len),
                    block,
                );
            }
        } else {
            fix_whole(&mut self.ids);
        }
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
        // codes: int8 rows of whole cache lines, or a RaBitQ preamble and rows; then a block
        // table.
        let block = self.codes.get(36..40).map_or(0, |b| u32_at(b, 0) as usize);
        let (pre, row_len) = match (self.codes.get(10), self.codes.get(HEADER_LEN)) {
            (Some(11), Some(&bits)) => (
                rabitq_preamble_len(dim),
                rabitq::row_len(dim, if bits == 1 { 1 } else { 4 }),
            ),
            _ => (0, row_bytes(dim)),
        };
        if let Some(data_len) = rows.checked_mul(row_len).and_then(|x| x.checked_add(pre))
            && block.is_power_of_two()
        {
            fix_blocked(
                &mut self.codes,
                data_len,
                HEADER_LEN.saturating_add(data_len),
                block,
            );
        }
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
        (CODES_FILE, &files.codes),
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
    // The codes file's kind byte picks int8 or RaBitQ; its preamble's first byte the bits.
    let codes = match (files.codes.get(10), files.codes.get(HEADER_LEN)) {
        _ if files.codes.is_empty() => Codes::Off,
        (Some(11), Some(1)) => Codes::File(Quantization::RaBitQ1),
        (Some(11), _) => Codes::File(Quantization::RaBitQ4),
        _ => Codes::File(Quantization::Int8),
    };
    let seg = Arc::new(Segment::open(
        &seg_dir, files.id, rows, files.dim, files.m, codes,
    )?);
    assert_eq!(seg.rows, files.rows as usize);
    let n = seg.rows.min(MAX_ROWS_READ);
    for row in 0..n {
        // Ids blocks are checked on first touch: a damaged one is an error, never an id.
        let Some(id) = errors.keep(seg.id_at(row)) else {
            continue;
        };
        if let Some(Some(found)) = errors.keep(seg.find(id)) {
            assert!(
                found < seg.rows,
                "id lookup names row {found} of {}",
                seg.rows
            );
            assert_eq!(
                seg.id_at(found).ok(),
                Some(id),
                "id lookup names a row with another id"
            );
        }
        errors.keep(seg.vectors(row, row + 1));
        errors.keep(seg.doc(row));
        // A row's string id, when it reads, is the one of the row's key.
        if files.flags & SEGMENT_STR_IDS != 0
            && let Some(s) = errors.keep(seg.doc_id(row))
        {
            assert_eq!(str_key(&s), id, "row {row} read under another key's id");
        }
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
        hnsw_search::search(seg.graph(), &*seg, metric, &query, 5, 16, v, |r| r % 2 == 0)
    }));
    // The codes, as a walk scores them: every row read must be one of the file's.
    if let Some(q) = seg.quantized() {
        assert_eq!(q.rows(), seg.rows);
        let sc = QuantScorer::new(q, metric, &query);
        for node in 0..n as u32 {
            errors.keep(sc.score(node));
            errors.keep(sc.bound(node));
        }
        assert_eq!(sc.score(seg.rows as u32).ok(), Some(f32::NEG_INFINITY));
    }
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
    let id_type = if files.flags & SEGMENT_STR_IDS != 0 {
        IdType::Str
    } else {
        IdType::Int
    };
    errors.keep(seg.verify_all(id_type));
    errors.result()
}

// ---------------------------------------------------------------------------------------------
// Field and text indexes
